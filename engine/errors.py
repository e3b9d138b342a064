"""Errors are values with a class and a readable reason.

    MirrorlineError                 .reason (one readable line), .retryable
    ├── TransientError              retry with backoff: connection errors, timeouts, 5xx, SlowDown
    ├── PermanentError              park the task as failed: AccessDenied, NoSuchBucket, bad keys
    │   └── NotFoundError           the source object or version is gone: the task is skipped
    └── UserError                   a mistake in what the operator asked for: one line, exit 1

Every S3 failure is translated into one of these where it happens (engine/s3/),
so no other module looks at vendor codes or at HTTP statuses.
"""

from __future__ import annotations


class MirrorlineError(Exception):
    """Base class; `reason` is safe to show (it never carries a secret)."""

    retryable = False
    kind = "error"

    def __init__(self, reason: str, *, code: str = "", endpoint: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.endpoint = endpoint  # which endpoint failed, when an endpoint did

    @property
    def link_down(self) -> bool:
        """The endpoint could not be reached at all (not: it answered with an error)."""
        return self.code == "Connection"

    def __str__(self) -> str:
        return self.reason


class TransientError(MirrorlineError):
    """Likely to succeed later: the link, the server or its load is the cause."""

    retryable = True
    kind = "retryable"


class PermanentError(MirrorlineError):
    """Will fail the same way until an operator changes something."""

    kind = "permanent"


class NotFoundError(PermanentError):
    """The object or version no longer exists where we looked."""

    kind = "not-found"


class UserError(MirrorlineError):
    """Bad input from the command line or the API."""

    kind = "user"


PERMANENT_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "NoSuchBucket",
        "InvalidBucketName",
        "AuthorizationHeaderMalformed",
        "InvalidArgument",
        "InvalidRequest",
        "MethodNotAllowed",
        "EntityTooLarge",
        "KeyTooLongError",
        "MetadataTooLarge",
        "InvalidTag",
        "NotImplemented",
    }
)
NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchVersion", "NoSuchObject"})


def classify(status: int, code: str, message: str, what: str) -> MirrorlineError:
    """Map one S3 error response to our tree; `what` names the request for the reason."""
    detail = f"{code}: {message}" if message else code or f"HTTP {status}"
    reason = f"{what}: {detail}"
    if code in NOT_FOUND_CODES or (status == 404 and code not in PERMANENT_CODES):
        return NotFoundError(reason, code=code or "NotFound")
    if code in PERMANENT_CODES:
        return PermanentError(reason, code=code)
    if status >= 500 or status in (408, 429) or code in ("SlowDown", "RequestTimeout"):
        return TransientError(reason, code=code or f"HTTP{status}")
    return PermanentError(reason, code=code or f"HTTP{status}")
