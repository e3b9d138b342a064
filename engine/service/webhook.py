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
from engine.policy import Policy
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


def parse(payload: Any) -> list[Record]:
    """Records of a MinIO webhook body; a malformed one is a UserError (HTTP 422)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("Records"), list):
        raise UserError("expected a MinIO event: a JSON object with a 'Records' list")
    out = []
    for n, raw in enumerate(payload["Records"]):
        try:
            s3 = raw["s3"]
            obj = s3["object"]
            out.append(
                Record(
                    event=str(raw["eventName"]),
                    bucket=str(s3["bucket"]["name"]),
                    key=unquote_plus(str(obj["key"])),  # S3 events URL-encode keys
                    version_id=str(obj.get("versionId") or "null"),
                    size=int(obj.get("size") or 0),
                    etag=str(obj.get("eTag") or "").strip('"'),
                    at=_time(raw.get("eventTime")),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"record {n}: missing or malformed field {exc}") from None
    return out


def _time(value: object) -> float:
    if not value:
        return 0.0
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


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
) -> int:
    """Commit a task per record and matching policy; returns how many were new."""
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
    return await queue.enqueue(tasks)
