"""Where a replica came from: the metadata every copy carries, and what a copy keeps.

Each replica names its first origin ("host:port/bucket"), its version id there and
the ETag the origin reported. That makes a repeated copy a no-op (the target already
holds a replica of this very version), stops a replica from travelling back where it
came from, and lets a resync tell our copies from out-of-band writes without trusting
listing ETags (multipart ETags depend on part sizes).
"""

from __future__ import annotations

from engine.aliases import Alias
from engine.s3.identity import same_origin
from engine.s3.types import ObjectHead

ORIGIN = "mirrorline-origin"  # endpoint/bucket the version was first written to
ORIGIN_VERSION = "mirrorline-version"  # its version id there
ORIGIN_ETAG = "mirrorline-etag"  # its ETag there (the content hash the source reported)
ORIGIN_METADATA = frozenset({ORIGIN, ORIGIN_VERSION, ORIGIN_ETAG})  # differ from the source's
COPIED_HEADERS = (
    "content-type",
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
)


def origin_of(alias: Alias, bucket: str) -> str:
    """The origin string of a bucket, as replicas name it."""
    return f"{alias.netloc}/{bucket}"


async def replica_of(head: ObjectHead, origin: str) -> str:
    """The version id at `origin` that this version replicates; '' if none of origin's.

    The origin is compared by what it resolves to: an alias whose URL changed from
    `localhost` to `127.0.0.1` still recognises the replicas it wrote."""
    if not await same_origin(head.metadata.get(ORIGIN, ""), origin):
        return ""
    return head.metadata.get(ORIGIN_VERSION, "")


async def came_from(head: ObjectHead, origin: str) -> bool:
    """Was this version first written at `origin`? (The loop guard: never copy it back.)"""
    return ORIGIN in head.metadata and await same_origin(head.metadata[ORIGIN], origin)
