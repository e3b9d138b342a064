"""MinIO bucket-notification webhooks in, durable tasks out.

MinIO posts S3 event records (`notify_webhook`) and retries, from its own
queue_dir, whatever does not get a 2xx. So a record is committed to the queue
before the request is answered, and the queue's identity index makes a record
delivered twice (a retry, a replay) one task. The periodic scan stays the
backstop for anything a webhook never told us.

    mc admin config set ALIAS notify_webhook:mirrorline \\
        endpoint="http://ENGINE:PORT/v1/events/minio?alias=ALIAS" auth_token="TOKEN"
    mc admin service restart ALIAS
    mc event add ALIAS/BUCKET arn:minio:sqs::mirrorline:webhook --event put,delete

MinIO sends a one-word auth_token as `Authorization: Bearer TOKEN`, which is
exactly the API's token check.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from engine.errors import UserError
from engine.model import NewTask, Op
from engine.policy import BUCKET_RE, Policy
from engine.printable import printable
from engine.state.queue import TaskQueue


@dataclass(frozen=True)
class Record:
    """One S3 event record, reduced to what replication needs."""

    event: str  # e.g. s3:ObjectCreated:Put
    bucket: str
    key: str
    version_id: str
    size: int
    etag: str
    at: float


@dataclass(frozen=True)
class Ingested:
    """What a batch of records queued: how many tasks were new, and for which policies
    (whose dispatchers then have work; a record queued twice still names its policy)."""

    enqueued: int
    policies: frozenset[str]


MAX_SIZE = 5 * 1024**4  # S3's largest object (5 TiB)
MAX_KEY = 1024  # bytes of an S3 key
MAX_VERSION = 1024  # characters of a version id (S3's are 32 to 64)


def parse(payload: Any) -> list[Record]:
    """Records of a MinIO webhook body; a malformed one is a UserError (HTTP 422).

    All or none: one bad record refuses the post, so MinIO keeps it in its queue
    and the operator sees the error, instead of a half-applied batch."""
    if not isinstance(payload, dict) or not isinstance(payload.get("Records"), list):
        raise UserError("expected a MinIO event: a JSON object with a 'Records' list")
    out = []
    for n, raw in enumerate(payload["Records"]):
        try:
            out.append(_record(raw))
        except (KeyError, TypeError, ValueError) as exc:
            # str(exc) of a KeyError is the repr of the missing name: printable already
            raise UserError(
                f"record {n}: missing or malformed field {printable(str(exc))}"
            ) from None
    return out


def _record(raw: Any) -> Record:
    s3 = raw["s3"]
    obj = s3["object"]
    # S3 events URL-encode keys; bytes that are not UTF-8 name no key we could fetch
    key = unquote_plus(_text(obj["key"], "key"), errors="strict")
    if not key or len(key.encode()) > MAX_KEY:
        raise ValueError(f"'key' must be 1 to {MAX_KEY} bytes")
    bucket = _text(s3["bucket"]["name"], "bucket")
    if not BUCKET_RE.fullmatch(bucket):
        raise ValueError(f"'bucket' {bucket!r} is not a bucket name")
    version = _text(obj.get("versionId") or "null", "versionId")
    if len(version) > MAX_VERSION or printable(version) != version:
        raise ValueError("'versionId' is not a version id")
    size = obj.get("size") or 0
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_SIZE:
        raise ValueError(f"'size' must be a whole number of bytes, 0 to {MAX_SIZE}")
    return Record(
        event=_text(raw["eventName"], "eventName"),
        bucket=bucket,
        key=key,
        version_id=version,
        size=size,
        etag=_text(obj.get("eTag") or "", "eTag").strip('"'),
        at=_time(raw.get("eventTime")),
    )


def _text(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"'{name}' must be a string")
    return value


def _time(value: object) -> float:
    if not value:
        return 0.0
    at = dt.datetime.fromisoformat(_text(value, "eventTime").replace("Z", "+00:00"))
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)  # a naive time would be read in the engine's zone
    return at.timestamp()


def _op(event: str, policy: Policy) -> Op | None:
    """The task an event asks of a policy, or None when the policy does not replicate it."""
    kind = event.removeprefix("s3:")
    if kind.startswith("ObjectRemoved:DeleteMarkerCreated"):
        return Op.DELETE_MARKER if policy.wants("delete-marker") else None
    if kind.startswith("ObjectRemoved:"):
        return Op.DELETE_VERSION if policy.wants("delete") else None
    if kind in ("ObjectCreated:PutTagging", "ObjectCreated:DeleteTagging"):
        return Op.METADATA if policy.wants("metadata-sync") else None
    if kind.startswith("ObjectCreated:"):
        return Op.PUT
    return None


async def ingest(
    records: Sequence[Record], policies: Sequence[Policy], queue: TaskQueue, alias: str | None
) -> Ingested:
    """Commit a task per record and matching policy."""
    tasks: list[NewTask] = []
    for record in records:
        for policy in policies:
            if not policy.enabled or policy.source_bucket != record.bucket:
                continue
            if alias is not None and policy.source_alias != alias:
                continue
            if not policy.matches_key(record.key):
                continue
            op = _op(record.event, policy)
            if op is None:
                continue
            replica = ""
            if op in (Op.DELETE_VERSION, Op.METADATA):
                # Both act on the replica of that version: nothing to do if there is none.
                replica = await queue.replica_of(policy.id, record.key, record.version_id) or ""
                if not replica:
                    continue
            tasks.append(
                NewTask(
                    policy=policy.id,
                    key=record.key,
                    version_id=record.version_id,
                    op=op,
                    size=record.size if op is Op.PUT else 0,
                    etag=record.etag,
                    src_mtime=record.at,
                    target_version=replica,
                    # The target may hold it already (a scan got there first): look first.
                    target_has_key=op is Op.PUT,
                )
            )
    added = await queue.enqueue(tasks)
    return Ingested(added, frozenset(t.policy for t in tasks) if added else frozenset())
