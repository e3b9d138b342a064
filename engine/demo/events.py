"""MinIO-style bucket notifications for what a workload wrote.

SeaweedFS sends no bucket notifications, so without them the engine learns of
a change only at its next scan, and scans pause while the target's link is
down. The demo (and the fault tests) post what MinIO's `notify_webhook` would
post for each write, to the engine's `/v1/events/minio`: changes then reach the
queue at once, and a backlog builds up during an outage as it would in front
of MinIO.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any
from urllib.parse import quote_plus

import httpx

from engine.demo.mix import Kind
from engine.demo.workload import Write

log = logging.getLogger("mirrorline.demo.events")

EVENT_NAMES = {
    Kind.CREATE: "s3:ObjectCreated:Put",
    Kind.OVERWRITE: "s3:ObjectCreated:Put",
    Kind.DELETE: "s3:ObjectRemoved:DeleteMarkerCreated",
    Kind.RETAG: "s3:ObjectCreated:PutTagging",
}


def minio_record(bucket: str, write: Write) -> dict[str, Any]:
    """One S3 event record as MinIO sends it (the key URL-encoded, as S3 events do)."""
    when = dt.datetime.fromtimestamp(write.accepted_at, dt.UTC)
    return {
        "eventVersion": "2.0",
        "eventSource": "minio:s3",
        "eventTime": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "eventName": EVENT_NAMES[write.op.kind],
        "s3": {
            "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
            "object": {
                "key": quote_plus(write.op.key, safe="/"),
                "size": write.op.size,
                "eTag": write.etag,
                "versionId": write.version_id,
            },
        },
    }


class WebhookFeed:
    """Posts one event per write to an engine, as MinIO's notify_webhook would.

    An engine that does not answer loses the event (MinIO would queue and retry
    it); the engine's scan is the backstop, as it is for MinIO. Use it as a
    workload's `on_write`.
    """

    def __init__(self, url: str, token: str, bucket: str, alias: str | None = None) -> None:
        self._url = url.rstrip("/") + "/v1/events/minio"
        self._params = {"alias": alias} if alias else {}
        self._headers = {"Authorization": f"Bearer {token}"}
        self.bucket = bucket
        self.posted = 0
        self.failed = 0
        self._session: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        return f"WebhookFeed({self._url!r}, bucket={self.bucket!r})"

    async def __call__(self, write: Write) -> None:
        if self._session is None:
            self._session = httpx.AsyncClient(timeout=10)
        record = minio_record(self.bucket, write)
        body = {"EventName": record["eventName"], "Records": [record]}
        try:
            resp = await self._session.post(
                self._url, json=body, params=self._params, headers=self._headers
            )
            resp.raise_for_status()
        except httpx.HTTPError as exc:
            if not self.failed:
                log.warning("webhook feed: the engine did not take an event: %s", exc)
            self.failed += 1
            return
        self.posted += 1

    async def close(self) -> None:
        if self._session is not None:
            await self._session.aclose()
            self._session = None
