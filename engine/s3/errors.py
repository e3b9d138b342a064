"""S3 error responses to the error tree: the one place that knows vendor codes.

Both stores (the data-path client, the minio control plane) and the in-memory store
raise through `classify`, so the replication code and the checks only ever ask an
error's class (NotFoundError, AccessDeniedError, retryable), never its code.
"""

from __future__ import annotations

from engine.errors import (
    AccessDeniedError,
    MirrorlineError,
    NotFoundError,
    PermanentError,
    TransientError,
)

ACCESS_DENIED_CODES = frozenset({"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"})
PERMANENT_CODES = ACCESS_DENIED_CODES | frozenset(
    {
        "AllAccessDisabled",
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
NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchVersion", "NoSuchObject", "NoSuchUpload"})
TRANSIENT_CODES = frozenset({"SlowDown", "RequestTimeout"})


def classify(status: int, code: str, message: str, what: str) -> MirrorlineError:
    """Map one S3 error response to our tree; `what` names the request for the reason."""
    detail = f"{code}: {message}" if message else code or f"HTTP {status}"
    reason = f"{what}: {detail}"
    if code in NOT_FOUND_CODES or (status == 404 and code not in PERMANENT_CODES):
        return NotFoundError(reason, code=code or "NotFound")
    if code in ACCESS_DENIED_CODES:
        return AccessDeniedError(reason, code=code)
    if code in PERMANENT_CODES:
        return PermanentError(reason, code=code)
    if status >= 500 or status in (408, 429) or code in TRANSIENT_CODES:
        return TransientError(reason, code=code or f"HTTP{status}")
    return PermanentError(reason, code=code or f"HTTP{status}")
