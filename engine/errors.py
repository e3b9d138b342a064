"""Errors are values with a class, a readable reason and an HTTP status.

    MirrorlineError                 .reason (one readable line), .retryable, .kind, .status   500
    ├── TransientError              retry with backoff: connection errors, timeouts, 5xx, SlowDown  503
    ├── PermanentError              park the task as failed: AccessDenied, NoSuchBucket, bad keys   422
    │   ├── NotFoundError           the source object or version is gone: the task is skipped    404
    │   └── AccessDeniedError       the endpoint refused the credentials or their rights          422
    └── UserError                   a mistake in what the operator asked for: one line, exit 1   422
        ├── MissingError            the policy, alias or resync named does not exist             404
        └── MalformedError          the request itself is malformed (bad JSON, wrong types)      400

Every S3 failure is translated into one of these where it happens (engine/s3/),
so no other module looks at vendor codes (engine/s3/errors.py maps them). The HTTP API answers each error with
its class's `status` and `kind`, and the API's client raises the class that
`kind` names again: a retryable failure in the engine stays retryable for the
caller, whichever side of the wire it is on.
"""

from __future__ import annotations

from typing import Self, TypeVar

E = TypeVar("E", bound=BaseException)


class MirrorlineError(Exception):
    """Base class; `reason` is safe to show (it never carries a secret)."""

    retryable = False
    kind = "error"
    status = 500

    def __init__(self, reason: str, *, code: str = "", endpoint: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.endpoint = endpoint  # which endpoint failed, when an endpoint did

    @property
    def link_down(self) -> bool:
        """The endpoint could not be reached at all (not: it answered with an error)."""
        return self.code == "Connection"

    def within(self, what: str) -> Self:
        """The same error, its reason prefixed with what was being done ("diff p1")."""
        return type(self)(f"{what}: {self.reason}", code=self.code, endpoint=self.endpoint)

    def __str__(self) -> str:
        return self.reason


class TransientError(MirrorlineError):
    """Likely to succeed later: the link, the server or its load is the cause."""

    retryable = True
    kind = "retryable"
    status = 503


class PermanentError(MirrorlineError):
    """Will fail the same way until an operator changes something."""

    kind = "permanent"
    status = 422


class NotFoundError(PermanentError):
    """The object or version no longer exists where we looked."""

    kind = "not-found"
    status = 404


class AccessDeniedError(PermanentError):
    """The endpoint refused these credentials, or their rights on what was asked.

    Its kind stays "permanent": a task shows the same class as before; the checks
    ask for this subclass to tell the operator which keys to fix.
    """


class UserError(MirrorlineError):
    """Bad input from the command line or the API."""

    kind = "user"
    status = 422


class MissingError(UserError):
    """What the request names (a policy, an alias, a resync) does not exist."""

    kind = "missing"
    status = 404


class MalformedError(UserError):
    """The request cannot be read at all: not JSON, a field of the wrong type, one missing."""

    kind = "malformed"
    status = 400


BY_KIND: dict[str, type[MirrorlineError]] = {
    cls.kind: cls
    for cls in (
        MirrorlineError,
        TransientError,
        PermanentError,
        NotFoundError,
        UserError,
        MissingError,
        MalformedError,
    )
}


def reason_code(error: MirrorlineError) -> str:
    """The code errors are counted and grouped by: the store's (NoSuchBucket, Connection,
    HTTP503...) or, when it gave none, the error's class. Telemetry and the queue agree."""
    return error.code or error.kind


def first_error(group: BaseExceptionGroup[E]) -> E:
    """The first error of a (nested) group: a TaskGroup wraps errors that callers decide on
    by class (retry, park, link down), and a group has none of those."""
    found = group.exceptions[0]
    return first_error(found) if isinstance(found, BaseExceptionGroup) else found
