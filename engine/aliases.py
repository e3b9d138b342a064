"""Aliases: named S3 endpoints with their credentials, like `mc alias`.

Kept in aliases.json (mode 0600) in the state dir; MIRRORLINE_HOST_<NAME>
environment variables add or override aliases for one process, the way mc
reads MC_HOST_<alias>. Secrets never leave this module unmasked except to
build a client.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from urllib.parse import unquote, urlsplit

from engine.config import write_private
from engine.errors import MissingError, UserError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
ENV_PREFIX = "MIRRORLINE_HOST_"


@dataclass(frozen=True)
class Alias:
    name: str
    url: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    insecure: bool = False
    ca_file: str = ""
    from_env: bool = False

    def __repr__(self) -> str:
        return f"Alias(name={self.name!r}, url={self.url!r}, access_key={self.access_key!r})"

    @property
    def netloc(self) -> str:
        return urlsplit(self.url).netloc

    @property
    def secure(self) -> bool:
        return urlsplit(self.url).scheme == "https"

    def public(self) -> dict[str, object]:
        """What may be shown: the secret masked, the access key shortened."""
        key = self.access_key
        shown = key if len(key) <= 4 else key[:4] + "*" * min(len(key) - 4, 12)
        return {
            "name": self.name,
            "url": self.url,
            "access_key": shown,
            "secret_key": "*" * 8,
            "region": self.region,
            "insecure": self.insecure,
            "ca_file": self.ca_file,
            "source": "env" if self.from_env else "config",
        }


def validate_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise UserError(
            f"invalid alias name {name!r}: use letters, digits, '-' and '_' (max 63 characters)"
        )
    return name


def validate_url(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        raise UserError(f"invalid endpoint URL {url!r}: expected http(s)://host[:port]") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(f"invalid endpoint URL {url!r}: expected http(s)://host[:port]")
    if parts.path not in ("", "/") or parts.query or parts.username:
        raise UserError(f"invalid endpoint URL {parts.scheme}://{parts.hostname}: no path or query")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise UserError(f"invalid port in endpoint URL {parts.scheme}://{parts.netloc}") from None
    return f"{parts.scheme}://{parts.netloc}"


def from_env_url(name: str, value: str) -> Alias:
    var = f"{ENV_PREFIX}{name.upper()}"
    usage = f"{var}: expected http(s)://ACCESS:SECRET@host:port"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise UserError(usage) from None
    if not parts.username or parts.password is None:
        raise UserError(usage)
    if not NAME_RE.fullmatch(name):
        raise UserError(f"{var}: invalid alias name {name!r}")
    # The URL without its credentials (so no error below can show the secret).
    host = parts.netloc.rpartition("@")[2]
    rest = parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        url = validate_url(f"{parts.scheme}://{host}{rest}")
    except UserError as exc:
        raise UserError(f"{var}: {exc.reason}") from None
    return Alias(
        name=name,
        url=url,
        access_key=unquote(parts.username),
        secret_key=unquote(parts.password),
        from_env=True,
    )


def unknown_alias(name: str) -> UserError:
    """A policy names an alias nobody set (a request refers to it: a 422, not a 404)."""
    return UserError(f"unknown alias {name!r}: add it with `mirrorline alias set`")


class AliasBook:
    """The aliases of one state dir plus those from the environment."""

    def __init__(self, path: Path, environ: dict[str, str] | None = None) -> None:
        self.path = path
        self._saved: dict[str, Alias] = {}
        if path.exists():
            try:
                raw = json.loads(path.read_text())
                self._saved = {n: Alias(**a) for n, a in raw.get("aliases", {}).items()}
            except (ValueError, TypeError) as exc:
                raise UserError(f"{path} is not a valid aliases file: {exc}") from None
        self._environ = environ
        self._env: dict[str, Alias] = {}
        for key, value in (os.environ if environ is None else environ).items():
            if key.startswith(ENV_PREFIX) and value:
                name = key[len(ENV_PREFIX) :].lower()
                self._env[name] = from_env_url(name, value)

    def all(self) -> dict[str, Alias]:
        return {**self._saved, **self._env}

    def get(self, name: str) -> Alias:
        found = self.all().get(name)
        if found is None:
            raise unknown_alias(name)
        return found

    def fresh(self) -> AliasBook:
        """The book as its file says now: another process (the CLI) may have changed it."""
        return AliasBook(self.path, self._environ)

    def set(self, alias: Alias) -> None:
        self._saved[alias.name] = replace(alias, from_env=False)
        self._save()

    def remove(self, name: str) -> None:
        if name not in self._saved:
            if name in self._env:
                raise UserError(f"alias {name!r} comes from ${ENV_PREFIX}{name.upper()}; unset it")
            raise MissingError(f"unknown alias {name!r}")
        del self._saved[name]
        self._save()

    def _save(self) -> None:
        body = {n: asdict(a) for n, a in sorted(self._saved.items())}
        for entry in body.values():
            entry.pop("from_env", None)
        write_private(self.path, json.dumps({"version": 1, "aliases": body}, indent=2) + "\n")
