"""Which bucket an alias really reaches, whatever the URL spells.

`http://127.0.0.1:9000` and `http://localhost:9000` are one server; two aliases
for it make `src/b -> srclocal/b` a policy that copies a bucket onto itself, and
replicas that name their origin one way must be recognised when the policy
spells it the other. So endpoints are compared by what they resolve to:
scheme, port and the set of addresses (two names meet if they share one), and
the bucket. A name that does not resolve is compared as spelled, lower-cased.

Resolution goes through the event loop's resolver (never blocking it) and is
cached for a few minutes: the loop guard asks for every replica it sees.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from engine.aliases import Alias

CACHE_SECONDS = 300.0
_resolved: dict[tuple[str, int], tuple[float, frozenset[str]]] = {}


@dataclass(frozen=True)
class Place:
    """A bucket on an endpoint, as the network sees it."""

    scheme: str
    addresses: frozenset[str]
    port: int
    bucket: str

    def same(self, other: Place) -> bool:
        return (self.scheme, self.port, self.bucket) == (
            other.scheme,
            other.port,
            other.bucket,
        ) and bool(self.addresses & other.addresses)

    def __str__(self) -> str:
        return f"{'/'.join(sorted(self.addresses))}:{self.port}/{self.bucket}"


async def addresses(host: str, port: int) -> frozenset[str]:
    """The addresses `host` resolves to (cached), or the name itself if it resolves to none."""
    host = host.lower().strip("[]")
    now = time.monotonic()
    cached = _resolved.get((host, port))
    if cached is not None and now - cached[0] < CACHE_SECONDS:
        return cached[1]
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        found = frozenset(str(info[4][0]) for info in infos) or frozenset({host})
    except (OSError, UnicodeError):  # socket.gaierror is an OSError; a bad IDNA name too
        found = frozenset({host})
    _resolved[(host, port)] = (now, found)
    return found


async def place_of(alias: Alias, bucket: str) -> Place:
    parts = urlsplit(alias.url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return Place(parts.scheme, await addresses(parts.hostname or "", port), port, bucket)


async def same_origin(a: str, b: str) -> bool:
    """Do two origins ("host:port/bucket", as replicas record them) name one bucket?

    The scheme is not in an origin: a port speaks one of them."""
    if a == b:
        return True
    first, second = _split(a), _split(b)
    if first is None or second is None or first[1:] != second[1:]:
        return False
    (host_a, port, _), (host_b, _, _) = first, second
    return bool(await addresses(host_a, port) & await addresses(host_b, port))


def _split(origin: str) -> tuple[str, int, str] | None:
    netloc, sep, bucket = origin.partition("/")
    if not sep or not bucket:
        return None
    try:
        parts = urlsplit(f"//{netloc}")
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.hostname, port or 80, bucket
