"""`replicate diff`: compare what the two buckets hold now, trusting no local state.

Only the latest state of each key is compared (live object or not, size, and
content hash where both ETags are plain MD5s); this is the independent check
an operator runs when the queue's numbers are in doubt.
"""

from __future__ import annotations

from engine.aliases import AliasBook
from engine.checks.report import Difference
from engine.errors import MirrorlineError
from engine.policy import Policy
from engine.s3 import ListedVersion
from engine.s3.client import S3Client
from engine.s3.listing import latest


def compare(policy: Policy, source: ListedVersion | None, target: ListedVersion | None) -> str:
    """'' when in sync, else the kind of difference."""
    if source is None and target is None:
        return ""
    if target is None:
        return "missing"
    if source is None:
        return "extra" if policy.wants("delete-marker") else ""
    if source.size != target.size:
        return "size-differs"
    plain = "-" not in source.etag and "-" not in target.etag
    if plain and source.etag and target.etag and source.etag != target.etag:
        return "content-differs"
    return ""


async def diff_policy(policy: Policy, book: AliasBook) -> list[Difference]:
    source_alias, target_alias = book.get(policy.source_alias), book.get(policy.target_alias)
    clients = [S3Client.for_alias(a) for a in (source_alias, target_alias)]
    try:
        found: dict[str, list[ListedVersion | None]] = {}
        for side, (client, bucket) in enumerate(
            zip(clients, (policy.source_bucket, policy.target_bucket), strict=True)
        ):
            async for version in latest(client, bucket, policy.prefix):
                if not version.is_delete_marker:
                    found.setdefault(version.key, [None, None])[side] = version
    except MirrorlineError as exc:
        raise exc.within(f"diff {policy.id}") from None
    finally:
        for client in clients:
            await client.close()
    out = []
    for key in sorted(found):
        source, target = found[key]
        status = compare(policy, source, target)
        if status:
            detail = f"source {source.size if source else '-'} B, target {target.size if target else '-'} B"
            out.append(Difference(policy.id, status, key, detail))
    return out
