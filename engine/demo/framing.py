"""Where HTTP/1.1 request bodies begin and end in one connection's byte stream.

The fault proxy forwards bytes, not requests, but "reset after N bytes of
request body" has to land *inside* a body: a reset between two requests, or in
a request's head, only tests reconnecting, not what a half-written object does
to the store. So the proxy follows the client's stream with this meter: heads
are searched for their blank line (they are small), bodies are skipped by
Content-Length in arithmetic, so large uploads cost no per-byte Python.

A chunked request body (no Content-Length) is not parsed: from there on the
rest of the connection counts as one body of unknown length. The S3 clients
the engine and the demo use always send a Content-Length.
"""

from __future__ import annotations

from collections.abc import Callable

HEAD_LIMIT = 64 * 1024  # a longer head is not HTTP we know: treat the rest as body
UNBOUNDED = -1  # body length of a chunked (or unparsable) request


def request_target(head: bytes) -> tuple[str, int]:
    """("METHOD /path", body length) of a request head; the query is left out.

    The query is dropped so the parts and retries of one object's upload name
    the same target (`PUT /bucket/key`), whatever their uploadId or partNumber.
    """
    lines = head.decode("latin-1").split("\r\n")
    method, _, rest = lines[0].partition(" ")
    path = rest.rpartition(" ")[0] or rest
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length" and value.strip().isdigit():
            length = int(value.strip())
        elif name == "transfer-encoding" and "chunked" in value.lower():
            return f"{method} {path.partition('?')[0]}", UNBOUNDED
    return f"{method} {path.partition('?')[0]}", length


class BodyMeter:
    """Follows one connection's request stream, request after request (keep-alive)."""

    def __init__(self, armed: Callable[[str], bool]) -> None:
        self._armed = armed  # asked once per request: may this one be cut?
        self._head = bytearray()
        self._in_body = False
        self._length = 0  # of the current body; UNBOUNDED when unknown
        self._seen = 0  # body bytes of the current request already passed
        self._cuttable = False
        self.target = ""  # "METHOD /path" of the request being followed

    def feed(self, data: bytes, limit: int | None) -> int | None:
        """Follow `data`; return where to cut it, if a body passes `limit` bytes inside it.

        The offset returned is just past body byte number `limit`, and only for a
        body longer than `limit`: the store then holds a request that stopped
        mid-body, never a complete one. After a cut the meter must not be fed again.
        """
        pos, end = 0, len(data)
        while pos < end:
            if not self._in_body:
                pos = self._read_head(data, pos)
                continue
            left = end - pos if self._length == UNBOUNDED else self._length - self._seen
            take = min(left, end - pos)
            if self._cuts(limit, take):
                assert limit is not None
                return pos + max(0, limit - self._seen)
            self._seen += take
            pos += take
            if self._length != UNBOUNDED and self._seen == self._length:
                self._in_body = False
        return None

    def _cuts(self, limit: int | None, take: int) -> bool:
        if limit is None or not self._cuttable or self._seen + take <= limit:
            return False
        return self._length == UNBOUNDED or self._length > limit

    def _read_head(self, data: bytes, pos: int) -> int:
        """Consume head bytes from `pos`; return where the head ended (or `len(data)`)."""
        before = len(self._head)
        self._head += data[pos : pos + HEAD_LIMIT - before]
        taken = len(self._head) - before
        blank = self._head.find(b"\r\n\r\n", max(0, before - 3))
        if blank >= 0:
            target, length = request_target(bytes(self._head[:blank]))
            self._begin_body(target, length)
            return pos + blank + 4 - before
        if len(self._head) >= HEAD_LIMIT:
            self._begin_body("", UNBOUNDED)
        return pos + taken

    def _begin_body(self, target: str, length: int) -> None:
        self._head.clear()
        self.target, self._length, self._seen = target, length, 0
        self._in_body = length != 0
        self._cuttable = bool(target) and length != 0 and self._armed(target)
