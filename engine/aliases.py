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
from engine.errors import MissingError, StateFileError, UserError
from engine.printable import printable

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
ENV_PREFIX = "MIRRORLINE_HOST_"
FILE_VERSION = 1  # the aliases.json layout this version reads and writes
FIELDS: dict[str, type] = {
    "name": str,
    "url": str,
    "access_key": str,
    "secret_key": str,
    "region": str,
    "insecure": bool,
    "ca_file": str,
}
REQUIRED = ("url", "access_key", "secret_key")


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
        self._saved = read_book(path)
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


def read_book(path: Path) -> dict[str, Alias]:
    """The aliases saved in `path` ({} when there is no file), or what is wrong with it.

    Every field is checked for its type, so a hand-edited file of the wrong shape is
    one StateFileError naming the file, the alias and the field, and never a crash
    later in whatever first touches the bad value. No message quotes a value: a
    mistyped line may hold a secret."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except IsADirectoryError:
        raise StateFileError(f"{path} is a directory, not an aliases file") from None
    except UnicodeDecodeError:
        raise StateFileError(f"{path} is not UTF-8 text, so not an aliases file") from None
    except OSError as exc:
        raise StateFileError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StateFileError(
            f"{path} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    if not isinstance(raw, dict):
        raise StateFileError(f'{path}: expected an object with "aliases", found {_kind(raw)}')
    version = raw.get("version", FILE_VERSION)
    if not isinstance(version, int) or isinstance(version, bool):
        raise StateFileError(f'{path}: "version" must be a whole number, found {_kind(version)}')
    if version > FILE_VERSION:
        raise StateFileError(
            f"{path} was written by a newer mirrorline (version {version}; "
            f"this one reads {FILE_VERSION}); upgrade mirrorline to use it"
        )
    entries = raw.get("aliases", {})
    if not isinstance(entries, dict):
        raise StateFileError(f'{path}: "aliases" must be an object by name, found {_kind(entries)}')
    return {name: _entry(path, name, entry) for name, entry in entries.items()}


def _entry(path: Path, name: str, entry: object) -> Alias:
    where = f"{path}: alias {printable(name)!r}"
    if not NAME_RE.match(name):
        raise StateFileError(f"{where}: invalid name (letters, digits, '-' and '_')")
    if not isinstance(entry, dict):
        raise StateFileError(f"{where} must be an object, found {_kind(entry)}")
    unknown = sorted(printable(str(k)) for k in set(entry) - set(FIELDS))
    if unknown:
        raise StateFileError(f"{where}: unknown field {', '.join(unknown)}")
    missing = [f for f in REQUIRED if f not in entry]
    if missing:
        raise StateFileError(f"{where}: missing {', '.join(missing)}")
    for field, value in entry.items():
        if not isinstance(value, FIELDS[field]):
            wanted = "true or false" if FIELDS[field] is bool else "a string"
            raise StateFileError(f"{where}: {field} must be {wanted}, found {_kind(value)}")
    if entry.get("name", name) != name:
        raise StateFileError(f"{where}: its name field names another alias")
    try:
        url = validate_url(entry["url"])
    except UserError:
        raise StateFileError(f"{where}: url is not an http(s)://host[:port] endpoint") from None
    return Alias(**{**entry, "name": name, "url": url})


def _kind(value: object) -> str:
    """A JSON value's type in JSON's words, for messages (never the value itself)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"
