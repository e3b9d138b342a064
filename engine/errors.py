"""Errors are values with a class and a readable reason.

    MirrorlineError                 .reason (one readable line), .retryable
    ├── TransientError              retry with backoff: connection errors, timeouts, 5xx, throttling
    ├── PermanentError              park the task as failed: a missing bucket, a refused request
    │   ├── NotFoundError           the source object or version is gone: the task is skipped
    │   └── AccessDeniedError       the endpoint refused the credentials or their rights
    └── UserError                   a mistake in what the operator asked for: one line, exit 1

Every S3 failure is translated into one of these where it happens (engine/s3/errors.py
maps the vendor codes), so no other module looks at vendor codes or at HTTP statuses:
they ask the class. `code` keeps the vendor's word for reasons and counters only.
"""

from __future__ import annotations

from typing import TypeVar

E = TypeVar("E", bound=BaseException)


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


class AccessDeniedError(PermanentError):
    """The endpoint refused these credentials, or their rights on what was asked.

    Its kind stays "permanent": a task shows the same class as before; the checks
    ask for this subclass to tell the operator which keys to fix.
    """


class UserError(MirrorlineError):
    """Bad input from the command line or the API."""

    kind = "user"


def first_error(group: BaseExceptionGroup[E]) -> E:
    """The first error of a (nested) group: a TaskGroup wraps errors that callers decide on
    by class (retry, park, link down), and a group has none of those."""
    found = group.exceptions[0]
    return first_error(found) if isinstance(found, BaseExceptionGroup) else found
