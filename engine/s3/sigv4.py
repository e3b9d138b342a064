"""AWS Signature Version 4 for the data path (client.py).

The copy path is CPU-bound on these machines (see copy-path-perf.md): the
signing key is derived once per day instead of with four HMACs per request,
and bodies are sent as UNSIGNED-PAYLOAD so no request hashes its payload
twice. Integrity is still checked end to end with Content-MD5 and ETags.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import datetime
from urllib.parse import quote

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def encode_path(path: str) -> str:
    """URI-encode an object path the way SigV4 canonicalises it (RFC 3986, '/' kept)."""
    return quote(path, safe="/~")


def encode_query(params: dict[str, str]) -> str:
    """Canonical query string: sorted by name, both sides encoded."""
    return "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in sorted(params.items()))


def _canonical_value(value: object) -> str:
    """Trimmed, inner runs of whitespace as one space (SigV4); most values need nothing."""
    text = str(value)
    if "  " in text or "\t" in text or "\n" in text or text[:1] == " " or text[-1:] == " ":
        return " ".join(text.split())
    return text


class Signer:
    """Signs S3 requests for one set of credentials and one region.

    Per request it costs two SHA-256 passes over short strings: the signing key
    is derived once a day, and the x-amz-date string and credential scope are
    kept for the second they belong to (a bulk copy signs hundreds a second).
    """

    def __init__(self, access_key: str, secret_key: str, region: str) -> None:
        self._access_key = access_key
        self._secret_key = secret_key
        self._region = region
        self._day = ""
        self._key = b""
        self._second = -1
        self._stamp = ("", "", "")  # amz date, scope, credential for self._second

    def __repr__(self) -> str:
        return f"Signer(access_key={self._access_key!r}, region={self._region!r})"

    def _signing_key(self, day: str) -> bytes:
        if day != self._day:
            key = ("AWS4" + self._secret_key).encode()
            for part in (day, self._region, "s3", "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            self._day, self._key = day, key
        return self._key

    def _stamps(self, now: datetime | None) -> tuple[str, str, str]:
        if now is None:
            second = int(time.time())
            if second == self._second:
                return self._stamp
            amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))
        else:
            second, amz_date = -1, now.strftime("%Y%m%dT%H%M%SZ")
        scope = f"{amz_date[:8]}/{self._region}/s3/aws4_request"
        stamp = (amz_date, scope, f"AWS4-HMAC-SHA256 Credential={self._access_key}/{scope}")
        if second >= 0:
            self._second, self._stamp = second, stamp
        return stamp

    def sign(
        self,
        method: str,
        host: str,
        path: str,
        query: str,
        headers: dict[str, str],
        payload_hash: str = UNSIGNED_PAYLOAD,
        now: datetime | None = None,
    ) -> dict[str, str]:
        """Add x-amz-date, x-amz-content-sha256 and Authorization to `headers`.

        `path` and `query` must already be encoded exactly as they go on the wire.
        """
        amz_date, scope, credential = self._stamps(now)
        headers["host"] = host
        headers["x-amz-date"] = amz_date
        headers["x-amz-content-sha256"] = payload_hash
        signed = sorted((k.lower(), _canonical_value(v)) for k, v in headers.items())
        signed_names = ";".join([name for name, _ in signed])
        canonical = (
            f"{method}\n{path}\n{query}\n"
            + "".join([f"{name}:{value}\n" for name, value in signed])
            + f"\n{signed_names}\n{payload_hash}"
        )
        to_sign = (
            f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n"
            f"{hashlib.sha256(canonical.encode()).hexdigest()}"
        )
        key = self._signing_key(amz_date[:8])
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["Authorization"] = (
            f"{credential}, SignedHeaders={signed_names}, Signature={signature}"
        )
        return headers
