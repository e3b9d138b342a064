"""The control plane: buckets, versioning and event hints through the minio SDK.

The SDK is synchronous; every call runs in a worker thread so the event loop
never blocks, and every failure leaves as one of our error values.
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import urllib3
from minio import Minio
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError
from minio.versioningconfig import ENABLED, VersioningConfig

from engine.aliases import Alias
from engine.errors import MirrorlineError, PermanentError, TransientError, UserError
from engine.s3.errors import classify

T = TypeVar("T")
NOT_S3 = "NotS3"  # the error code of an answer that is not S3's (HTML, plain text, no XML)


@contextmanager
def map_minio_errors(what: str) -> Iterator[None]:
    """The one place that turns minio/urllib3 exceptions into ours."""
    try:
        yield
    except MirrorlineError:
        raise
    except S3Error as exc:
        raise classify(exc.response.status, exc.code or "", exc.message or "", what) from exc
    except ServerError as exc:
        raise TransientError(f"{what}: server error {exc.status_code}") from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise TransientError(
            f"{what}: cannot reach the endpoint ({type(reason).__name__})"
        ) from exc
    except InvalidResponseError as exc:
        status, kind = getattr(exc, "_code", "?"), getattr(exc, "_content_type", None) or "no type"
        raise PermanentError(
            f"{what}: not an S3 answer (HTTP {status}, {kind})", code=NOT_S3
        ) from exc
    except ET.ParseError as exc:  # a 200 whose body is not XML: a web server, a proxy's page
        raise PermanentError(
            f"{what}: not an S3 answer (a body that is not XML)", code=NOT_S3
        ) from exc
    except MinioException as exc:
        raise PermanentError(f"{what}: {exc}") from exc
    except ValueError as exc:
        raise UserError(f"{what}: {exc}") from exc


class ControlClient:
    """minio SDK calls for one alias, each off the event loop."""

    def __init__(self, alias: Alias, timeout: float = 10.0) -> None:
        self.alias = alias
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            retries=urllib3.Retry(total=0),
            cert_reqs="CERT_NONE" if alias.insecure else "CERT_REQUIRED",
            ca_certs=alias.ca_file or None,
        )
        self._minio = Minio(
            alias.netloc,
            access_key=alias.access_key,
            secret_key=alias.secret_key,
            secure=alias.secure,
            region=alias.region,
            http_client=http,
        )

    async def _call(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        def run() -> T:
            with map_minio_errors(what):
                return fn(*args)

        return await asyncio.to_thread(run)

    async def check(self) -> None:
        """The endpoint answers and the credentials are accepted."""
        await self._call(f"{self.alias.name}: list buckets", self._minio.list_buckets)

    async def bucket_exists(self, bucket: str) -> bool:
        what = f"{self.alias.name}/{bucket}: bucket exists"
        return await self._call(what, self._minio.bucket_exists, bucket)

    async def versioning(self, bucket: str) -> str:
        what = f"{self.alias.name}/{bucket}: get versioning"
        config = await self._call(what, self._minio.get_bucket_versioning, bucket)
        return config.status or "Off"

    async def make_bucket(self, bucket: str, versioned: bool = True) -> None:
        """Create `bucket` if it is missing, with versioning on (replication needs it)."""
        if not await self.bucket_exists(bucket):
            await self._call(
                f"{self.alias.name}/{bucket}: make bucket", self._minio.make_bucket, bucket
            )
        if versioned:
            config = VersioningConfig(ENABLED)
            what = f"{self.alias.name}/{bucket}: set versioning"
            await self._call(what, self._minio.set_bucket_versioning, bucket, config)

    def notifications(self, bucket: str, prefix: str) -> Any:
        """MinIO's stream of created and removed keys under `prefix` (blocking, a context
        manager yielding event dicts): for listen.py's thread, never the event loop."""
        events = ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
        return self._minio.listen_bucket_notification(bucket, prefix, "", events)
