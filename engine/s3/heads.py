"""What response headers and listings say about a version: its head, its times.

Parsed on every GET and HEAD of the copy, so without the general tools: the fixed
RFC 7231 date form directly (email.utils cost 2% of the copy path's CPU).
"""

from __future__ import annotations

import calendar
from datetime import datetime
from email.utils import parsedate_to_datetime

from engine.s3.types import ObjectHead


def parse_time(value: str) -> float:
    """ISO 8601 (listings) to epoch seconds."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


_MONTHS = {
    m: i
    for i, m in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1
    )
}


def parse_http_date(value: str) -> float:
    """An HTTP date to epoch seconds: the fixed RFC 7231 form directly (every S3 server
    sends it; email.utils cost 2% of the copy path's CPU), anything else through email."""
    if not value:
        return 0.0
    parts = value.split()
    if len(parts) == 6 and parts[5] == "GMT" and parts[2] in _MONTHS:
        try:
            hour, minute, second = (int(x) for x in parts[4].split(":"))
            fields = (int(parts[3]), _MONTHS[parts[2]], int(parts[1]), hour, minute, second)
            return float(calendar.timegm(fields))
        except ValueError:
            pass
    return parsedate_to_datetime(value).timestamp()


def head_from(lowered: dict[str, str]) -> ObjectHead:
    """The head of a GET or HEAD from its response headers (names in lower case)."""
    meta = {k[11:]: v for k, v in lowered.items() if k.startswith("x-amz-meta-")}
    return ObjectHead(
        version_id=lowered.get("x-amz-version-id", "null"),
        size=int(lowered.get("content-length", "0")),
        etag=lowered.get("etag", "").strip('"'),
        last_modified=parse_http_date(lowered.get("last-modified", "")),
        headers=lowered,
        metadata=meta,
        tag_count=int(lowered.get("x-amz-tagging-count", "0") or 0),
        is_delete_marker=lowered.get("x-amz-delete-marker") == "true",
    )
