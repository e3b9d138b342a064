"""The data path: a lean asyncio S3 client on our own HTTP/1.1 pool (http1.py).

Only what replication needs (the ObjectStore Protocol of engine/s3/__init__.py):
list versions, get, put, multipart, delete, tags.
Measured on these machines (copy-path-perf.md) this path costs about half the
CPU per object of the minio SDK in threads, and CPU per object is what bounds a
bulk copy on two shared cores; aiohttp's request machinery was then half of what
was left (copy-path-profile.md), hence http1.py. The minio SDK stays in charge
of the control plane (engine/s3/control.py).
"""

from __future__ import annotations

import ssl
import xml.etree.ElementTree as ET
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import TracebackType
from urllib.parse import unquote_plus, urlsplit

from engine.aliases import Alias
from engine.errors import MirrorlineError, TransientError
from engine.s3 import chunked, uploads
from engine.s3.errors import classify
from engine.s3.heads import head_from, parse_time
from engine.s3.http1 import Response
from engine.s3.pool import Pool
from engine.s3.sigv4 import UNSIGNED_PAYLOAD, Signer, encode_path, encode_query
from engine.s3.types import Body, ListedVersion, ObjectHead

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def _text(elem: ET.Element, name: str, default: str = "") -> str:
    child = elem.find(NS + name)
    return (child.text or default) if child is not None else default


class S3Client:
    """One endpoint, one credential set, one pool of keep-alive connections."""

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        region: str = "us-east-1",
        *,
        insecure: bool = False,
        ca_file: str | None = None,
        max_connections: int = 64,
        read_timeout: float = 120.0,
    ) -> None:
        parts = urlsplit(endpoint)
        self.endpoint = f"{parts.scheme}://{parts.netloc}"
        self._host = parts.netloc
        self._signer = Signer(access_key, secret_key, region)
        context: ssl.SSLContext | None = None
        if parts.scheme == "https":
            context = ssl.create_default_context(cafile=ca_file or None)
            if insecure:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
        self._pool = Pool(
            self.endpoint,
            ssl_context=context,
            limit=max_connections,
            connect_timeout=10.0,
            read_timeout=read_timeout,
        )

    def __repr__(self) -> str:
        return f"S3Client({self.endpoint!r})"

    @classmethod
    def for_alias(cls, alias: Alias, max_connections: int = 64) -> S3Client:
        return cls(
            alias.url,
            alias.access_key,
            alias.secret_key,
            alias.region,
            insecure=alias.insecure,
            ca_file=alias.ca_file or None,
            max_connections=max_connections,
        )

    async def close(self) -> None:
        await self._pool.close()

    def request(
        self,
        method: str,
        bucket: str,
        key: str = "",
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: Body | None = None,
        what: str = "",
        payload_hash: str = UNSIGNED_PAYLOAD,
    ) -> _Call:
        """Send one signed request; S3 errors come out as MirrorlineError values.

        The pool adds no header of its own, so Content-Length is set here, before
        signing: a PUT or POST always carries one (S3 wants it even for no body)."""
        path = encode_path(f"/{bucket}/{key}" if key else f"/{bucket}" if bucket else "/")
        query = encode_query(params) if params else ""
        hdrs = dict(headers) if headers else {}
        if "Content-Length" not in hdrs and "content-length" not in hdrs:
            if isinstance(body, bytes):
                hdrs["Content-Length"] = str(len(body))
            elif body is None and method in ("PUT", "POST"):
                hdrs["Content-Length"] = "0"
        hdrs = self._signer.sign(method, self._host, path, query, hdrs, payload_hash)
        target = f"{path}?{query}" if query else path
        label = what or f"{method} {bucket}/{key}"
        return _Call(self.endpoint, label, self._pool.request(method, target, hdrs, body))

    async def list_buckets(self) -> list[str]:
        """GET / : cheap, and proves both reachability and credentials."""
        async with self.request("GET", "", what="list buckets") as resp:
            root = ET.fromstring(await resp.read())
        return [b.findtext(NS + "Name") or "" for b in root.iter(NS + "Bucket")]

    async def head_bucket(self, bucket: str) -> None:
        async with self.request("HEAD", bucket, what=f"HEAD {bucket}"):
            pass

    async def list_versions(
        self, bucket: str, prefix: str = "", key_marker: str = "", page_size: int = 1000
    ) -> AsyncGenerator[list[ListedVersion], None]:
        """Pages of versions and delete markers, keys ascending, newest version first.

        Asks for `encoding-type=url`: XML 1.0 cannot carry most control characters,
        so a server that honours it (AWS, MinIO) lists such keys exactly, and they
        are decoded here. SeaweedFS 4.48 ignores it (no `EncodingType` in the answer)
        and lists `\x01` or `\x1b` as U+FFFD: such a key then cannot be fetched by
        its listed name, which the copy reports as a permanent failure (transfer.py).
        Keys are decoded only when the answer says they were encoded, since a server
        that ignores the request sends `+` and `%` literally."""
        version_marker = ""
        while True:
            params = {"versions": "", "max-keys": str(page_size), "encoding-type": "url"}
            if prefix:
                params["prefix"] = prefix
            if key_marker:
                params["key-marker"] = key_marker
            if version_marker:
                params["version-id-marker"] = version_marker
            async with self.request("GET", bucket, params=params, what=f"list {bucket}") as resp:
                root = ET.fromstring(await resp.read())
            name = _decoder(root)
            page = [
                ListedVersion(
                    key=name(_text(el, "Key")),
                    version_id=_text(el, "VersionId", "null"),
                    is_latest=_text(el, "IsLatest") == "true",
                    is_delete_marker=el.tag == NS + "DeleteMarker",
                    last_modified=parse_time(_text(el, "LastModified")),
                    size=int(_text(el, "Size", "0")),
                    etag=_text(el, "ETag").strip('"'),
                )
                for el in root
                if el.tag in (NS + "Version", NS + "DeleteMarker")
            ]
            if page:
                yield page
            if _text(root, "IsTruncated") != "true":
                return
            key_marker = name(_text(root, "NextKeyMarker"))
            version_marker = _text(root, "NextVersionIdMarker")
            if not key_marker:
                return

    @asynccontextmanager
    async def get(
        self,
        bucket: str,
        key: str,
        version_id: str = "",
        byte_range: tuple[int, int] | None = None,
        if_match: str = "",
    ) -> AsyncIterator[tuple[ObjectHead, Response]]:
        params = {"versionId": version_id} if version_id and version_id != "null" else None
        headers = {}
        if byte_range is not None:
            headers["Range"] = f"bytes={byte_range[0]}-{byte_range[1]}"
        if if_match:
            headers["If-Match"] = f'"{if_match}"'
        what = f"GET {bucket}/{key}"
        async with self.request("GET", bucket, key, params, headers, what=what) as resp:
            yield head_from(resp.headers), resp

    async def head(self, bucket: str, key: str, version_id: str = "") -> ObjectHead:
        params = {"versionId": version_id} if version_id and version_id != "null" else None
        async with self.request("HEAD", bucket, key, params, what=f"HEAD {bucket}/{key}") as resp:
            return head_from(resp.headers)

    async def put(
        self, bucket: str, key: str, body: Body, headers: dict[str, str]
    ) -> tuple[str, str]:
        """Single PUT; returns (version id, etag)."""
        body, headers, payload = _framed(body, headers)
        async with self.request(
            "PUT", bucket, key, None, headers, body, f"PUT {bucket}/{key}", payload
        ) as r:
            return r.headers.get("x-amz-version-id", "null"), r.headers.get("etag", "").strip('"')

    async def create_multipart(self, bucket: str, key: str, headers: dict[str, str]) -> str:
        what = f"create multipart {bucket}/{key}"
        async with self.request("POST", bucket, key, {"uploads": ""}, headers, what=what) as r:
            return _text(ET.fromstring(await r.read()), "UploadId")

    async def upload_part(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        number: int,
        body: Body,
        md5: str,
        length: int,
    ) -> str:
        params = {"partNumber": str(number), "uploadId": upload_id}
        what = f"upload part {number} {bucket}/{key}"
        headers = {"Content-Length": str(length)}
        if md5:
            headers["Content-MD5"] = md5
        body, headers, payload = _framed(body, headers)
        async with self.request("PUT", bucket, key, params, headers, body, what, payload) as r:
            return r.headers.get("etag", "")

    async def complete_multipart(
        self, bucket: str, key: str, upload_id: str, etags: list[str]
    ) -> tuple[str, str]:
        parts = "".join(
            f"<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"
            for n, etag in enumerate(etags, 1)
        )
        body = f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()
        what = f"complete multipart {bucket}/{key}"
        async with self.request("POST", bucket, key, {"uploadId": upload_id}, {}, body, what) as r:
            raw = await r.read()
            version = r.headers.get("x-amz-version-id", "null")
        root = ET.fromstring(raw)
        if root.tag in ("Error", NS + "Error"):
            code = root.findtext("Code") or root.findtext(NS + "Code") or ""
            raise classify(500, code, root.findtext("Message") or "", what)
        return version, _text(root, "ETag").strip('"')

    async def abort_multipart(self, bucket: str, key: str, upload_id: str) -> None:
        what = f"abort multipart {bucket}/{key}"
        async with self.request("DELETE", bucket, key, {"uploadId": upload_id}, what=what):
            pass

    async def pending_uploads(self, bucket: str, key: str) -> dict[str, int]:
        """ListMultipartUploads by the key as prefix (the first 1,000: one key never has
        more in flight), then ListParts of each, every page."""
        params = {"uploads": "", "prefix": key, "encoding-type": "url"}
        async with self.request("GET", bucket, params=params, what=f"list uploads {key}") as r:
            ids = uploads.ids_of(ET.fromstring(await r.read()), key)
        return {upload_id: await self._uploaded(bucket, key, upload_id) for upload_id in ids}

    async def _uploaded(self, bucket: str, key: str, upload_id: str) -> int:
        total, marker = 0, ""
        while True:
            params = {"uploadId": upload_id, **({"part-number-marker": marker} if marker else {})}
            async with self.request("GET", bucket, key, params, what=f"list parts {key}") as r:
                page = uploads.parts_of(ET.fromstring(await r.read()))
            total += page.size
            if not page.next_marker:
                return total
            marker = page.next_marker

    async def delete(self, bucket: str, key: str, version_id: str = "") -> tuple[str, bool]:
        """DELETE; without a version this makes a delete marker. Returns (version id, is marker)."""
        params = {"versionId": version_id} if version_id else None
        async with self.request("DELETE", bucket, key, params, what=f"DELETE {bucket}/{key}") as r:
            return (
                r.headers.get("x-amz-version-id", version_id or "null"),
                r.headers.get("x-amz-delete-marker") == "true",
            )

    async def get_tags(self, bucket: str, key: str, version_id: str = "") -> dict[str, str]:
        params = {"tagging": ""}
        if version_id and version_id != "null":
            params["versionId"] = version_id
        async with self.request("GET", bucket, key, params, what=f"get tags {bucket}/{key}") as r:
            root = ET.fromstring(await r.read())
        return {_text(t, "Key"): _text(t, "Value") for t in root.iter(NS + "Tag")}

    async def put_tags(self, bucket: str, key: str, version_id: str, tags: dict[str, str]) -> None:
        params = {"tagging": ""}
        if version_id and version_id != "null":
            params["versionId"] = version_id
        if not tags:
            async with self.request("DELETE", bucket, key, params, what=f"delete tags {key}"):
                return
        body = "".join(
            f"<Tag><Key>{_xml(k)}</Key><Value>{_xml(v)}</Value></Tag>" for k, v in tags.items()
        )
        xml = f"<Tagging><TagSet>{body}</TagSet></Tagging>".encode()
        async with self.request("PUT", bucket, key, params, {}, xml, f"put tags {key}"):
            pass


class _Call:
    """One request as an `async with`: the response on entry, failures as the error tree.

    A class rather than an @asynccontextmanager: a bulk copy makes two of these per
    object, and the generator machinery was a visible share of the request's CPU.
    A link failure inside the block (a body that breaks off) is mapped on the way out.
    """

    __slots__ = ("_endpoint", "_label", "_response")

    def __init__(self, endpoint: str, label: str, response: Response) -> None:
        self._endpoint, self._label, self._response = endpoint, label, response

    async def __aenter__(self) -> Response:
        resp = self._response
        try:
            await resp.__aenter__()
            if resp.status >= 300 and resp.status != 304:
                error = await _error(resp, self._label)
                await resp.__aexit__(None, None, None)
                raise error
        except (TimeoutError, OSError) as exc:
            await resp.__aexit__(None, None, None)
            raise self._link_error(exc) from exc
        return resp

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._response.__aexit__(kind, exc, tb)
        if isinstance(exc, TimeoutError | OSError):
            raise self._link_error(exc) from exc

    def _link_error(self, exc: BaseException) -> TransientError:
        return TransientError(
            f"{self._label}: {type(exc).__name__}: {exc or 'timed out'}",
            code="Connection",
            endpoint=self._endpoint,  # the dispatcher marks this endpoint's link offline
        )


async def _error(resp: Response, what: str) -> MirrorlineError:
    """An S3 error response (its XML read whole) as the error tree's value."""
    code, message = "", ""
    if resp.method != "HEAD":
        raw = await resp.read()
        try:
            root = ET.fromstring(raw)
            code = root.findtext("Code") or root.findtext(NS + "Code") or ""
            message = root.findtext("Message") or root.findtext(NS + "Message") or ""
        except ET.ParseError:
            message = raw[:200].decode(errors="replace").strip()
    elif resp.status == 403:
        code = "AccessDenied"
    return classify(resp.status, code, message, what)


def _decoder(listing: ET.Element) -> Callable[[str], str]:
    """How to read the key names of a listing: URL-decoded if the server encoded them."""
    if _text(listing, "EncodingType").lower() == "url":
        return unquote_plus
    return lambda name: name


def _framed(body: Body, headers: dict[str, str]) -> tuple[Body, dict[str, str], str]:
    """A streamed body without Content-MD5 goes aws-chunked with a CRC32 trailer (see
    chunked.py): the target then checks it all the same. Returns what to send."""
    plain = {k.lower(): v for k, v in headers.items()}
    if isinstance(body, bytes) or "content-md5" in plain:
        return body, headers, UNSIGNED_PAYLOAD
    length = int(plain["content-length"])
    rest = {k: v for k, v in headers.items() if k.lower() != "content-length"}
    return (
        chunked.framed(body, length),
        {**rest, **chunked.headers_for(length)},
        chunked.STREAMING_TRAILER,
    )


def _xml(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
