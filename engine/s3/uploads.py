"""Reading ListMultipartUploads and ListParts answers: which uploads of a key are open,
and how many bytes each holds.

Kept apart from the client, which only sends the requests: a task run again after a
crash asks this (engine/replication/rerun.py), no other path does. Element names are
matched without their namespace, which servers differ on sending.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from urllib.parse import unquote_plus


@dataclass(frozen=True, slots=True)
class PartsPage:
    size: int  # bytes of the parts on this page
    next_marker: str  # part-number-marker of the next page; '' when this was the last


def _local(element: ET.Element) -> str:
    return element.tag.rpartition("}")[2]


def _child(element: ET.Element, name: str) -> str:
    return next((c.text or "" for c in element if _local(c) == name), "")


def ids_of(listing: ET.Element, key: str) -> list[str]:
    """Upload ids of exactly `key` (a prefix listing also names longer keys)."""
    encoded = _child(listing, "EncodingType").lower() == "url"
    found = []
    for upload in listing:
        if _local(upload) != "Upload":
            continue
        name = _child(upload, "Key")
        if (unquote_plus(name) if encoded else name) == key:
            found.append(_child(upload, "UploadId"))
    return found


def parts_of(listing: ET.Element) -> PartsPage:
    size = sum(int(_child(p, "Size") or 0) for p in listing if _local(p) == "Part")
    truncated = _child(listing, "IsTruncated") == "true"
    return PartsPage(size, _child(listing, "NextPartNumberMarker") if truncated else "")
