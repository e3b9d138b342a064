"""Every bad input: one clear line on stderr, a non-zero exit, no traceback, nothing half-written.

All against the real CLI (a subprocess) and the real SeaweedFS servers of conftest;
no engine runs, so every test here is quick.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest

from engine.demo.seaweed import SeaweedServer
from tests.conftest import MIRRORLINE, Pair, client_for, make_bucket, new_pair

OPS = ["delete", "delete-marker", "existing-objects", "metadata-sync"]


def assert_user_error(
    result: subprocess.CompletedProcess[str], *fragments: str, code: int = 1
) -> str:
    """Exit `code`, exactly one `mirrorline: error:` line on stderr naming `fragments`."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    # A secret typed on argv earns a warning line of its own (engine/cli/secrets.py).
    lines = result.stderr.strip().splitlines()
    err = "\n".join(line for line in lines if not line.startswith("mirrorline: warning: "))
    assert err.startswith("mirrorline: error: "), result.stderr
    assert "\n" not in err, result.stderr
    for fragment in fragments:
        assert fragment.lower() in err.lower(), (fragment, err)
    assert result.stdout == "", result.stdout
    return err


def run_cli(
    state_dir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The real CLI against any state dir (pair.ml always uses the pair's own)."""
    return subprocess.run(
        [*MIRRORLINE, "--state-dir", str(state_dir), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def snapshot(pair: Pair) -> tuple[bytes | None, dict[str, list[tuple[object, ...]]]]:
    """Everything a failed command must leave alone: aliases.json and every row of the db.

    Read in-process (stronger than `alias ls --json` / `replicate ls --json`, and
    without two more CLI start-ups per check); a missing db counts as an empty one.
    """
    aliases = pair.state_dir / "aliases.json"
    db = pair.state_dir / "mirrorline.db"
    rows: dict[str, list[tuple[object, ...]]] = {}
    if db.exists():
        with contextlib.closing(sqlite3.connect(db)) as conn:
            tables = conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            ).fetchall()
            for (table,) in tables:
                found = conn.execute(f'SELECT * FROM "{table}"').fetchall()
                if found:
                    rows[table] = found
    return (aliases.read_bytes() if aliases.exists() else None), rows


def policies(pair: Pair) -> list[dict[str, object]]:
    return json.loads(pair.ml("replicate", "ls", "--json").stdout)


# ---------------------------------------------------------------- alias set / rm / ls


@pytest.fixture(scope="module")
def shared(
    servers: tuple[SeaweedServer, SeaweedServer], tmp_path_factory: pytest.TempPathFactory
) -> Pair:
    """One pair (aliases src and dst, no policy) for the many cases that must change nothing.

    Sharing is sound because every test using it asserts its state is left untouched;
    it spares a fresh pair (two checked `alias set` runs) per case.
    """
    p = new_pair(
        servers, "cli-errors-src", "cli-errors-dst", tmp_path_factory.mktemp("cli-errors") / "state"
    )
    return p


@pytest.mark.parametrize(
    ("name", "url", "fragment"),
    [
        ("bad name", None, "invalid alias name"),
        ("_lead", None, "invalid alias name"),
        ("a/b", None, "invalid alias name"),
        ("new", "127.0.0.1:{port}", "invalid endpoint url"),
        ("new", "localhost:{port}", "invalid endpoint url"),
        ("new", "ftp://127.0.0.1:{port}", "invalid endpoint url"),
        ("new", "http://127.0.0.1:{port}/some/path", "no path or query"),
        ("new", "http://127.0.0.1:{port}?x=1", "no path or query"),
        ("new", "http://127.0.0.1:99999", "invalid port"),
        ("new", "http://[::1", "invalid endpoint url"),
    ],
)
def test_alias_set_rejects_bad_name_or_url(
    shared: Pair, tmp_path: Path, name: str, url: str | None, fragment: str
) -> None:
    url = (url or shared.source.endpoint).format(port=shared.source.port)
    args = ("alias", "set", name, url, shared.source.access_key, shared.source.secret_key)
    fresh = tmp_path / "fresh"
    assert_user_error(run_cli(fresh, *args), fragment)
    assert not (fresh / "aliases.json").exists()
    # The same mistake against a populated state dir changes nothing.
    before = snapshot(shared)
    assert_user_error(shared.ml(*args, check=False), fragment)
    assert snapshot(shared) == before


def test_alias_set_unreachable_endpoint(shared: Pair, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    fresh = tmp_path / "fresh"
    err = assert_user_error(
        run_cli(fresh, "alias", "set", "gone", url, "ak", "sk"), "does not answer"
    )
    assert url in err
    assert not (fresh / "aliases.json").exists()
    # Replacing a working alias with an unreachable one keeps the working one.
    before = snapshot(shared)
    assert_user_error(
        shared.ml("alias", "set", "src", url, "ak", "sk-secret", check=False), "does not answer"
    )
    assert snapshot(shared) == before


@pytest.mark.parametrize("wrong", ["secret", "access"])
def test_alias_set_rejected_credentials(shared: Pair, tmp_path: Path, wrong: str) -> None:
    access, secret = shared.source.access_key, shared.source.secret_key
    if wrong == "secret":
        secret = "not-the-secret-999"
    else:
        access = "nosuchaccesskey"
    args = ("alias", "set", "src", shared.source.endpoint, access, secret)
    fresh = tmp_path / "fresh"
    err = assert_user_error(run_cli(fresh, *args), "credentials rejected", shared.source.endpoint)
    if wrong == "secret":
        assert "SignatureDoesNotMatch" in err
    else:
        assert "InvalidAccessKeyId" in err or "AccessDenied" in err
    assert secret not in err
    assert not (fresh / "aliases.json").exists()
    before = snapshot(shared)
    assert_user_error(shared.ml(*args, check=False), "credentials rejected")
    assert snapshot(shared) == before


def test_alias_set_empty_keys(shared: Pair) -> None:
    before = snapshot(shared)
    result = shared.ml("alias", "set", "new", shared.source.endpoint, "", "x", check=False)
    assert_user_error(result, "must not be empty")
    assert snapshot(shared) == before


def test_alias_set_no_check_saves_without_checking(pair: Pair) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    result = pair.ml("alias", "set", "later", url, "ak", "sk-later", "--no-check", check=False)
    assert result.returncode == 0, result.stderr
    assert "Added `later`" in result.stdout
    saved = {a["name"]: a for a in json.loads(pair.ml("alias", "ls", "--json").stdout)}
    assert saved["later"]["url"] == url
    assert saved["later"]["source"] == "config"
    # Without --no-check the same alias is refused.
    assert_user_error(
        pair.ml("alias", "set", "later2", url, "ak", "sk", check=False), "does not answer"
    )


def test_alias_rm_unknown(shared: Pair) -> None:
    before = snapshot(shared)
    assert_user_error(shared.ml("alias", "rm", "nope", check=False), "unknown alias", "nope")
    assert snapshot(shared) == before


def test_alias_rm_removes_a_saved_alias(pair: Pair) -> None:
    pair.ml("alias", "set", "spare", pair.source.endpoint, "ak", "sk", "--no-check")
    pair.ml("alias", "rm", "spare")
    names = [a["name"] for a in json.loads(pair.ml("alias", "ls", "--json").stdout)]
    assert names == ["dst", "src"]


def test_alias_rm_refuses_an_alias_a_policy_uses(pair: Pair) -> None:
    pair.add_policy()
    before = snapshot(pair)
    assert_user_error(pair.ml("alias", "rm", "dst", check=False), "used by policy", "p1")
    assert snapshot(pair) == before
    pair.ml("replicate", "rm", "--id", "p1")
    pair.ml("alias", "rm", "dst")
    assert [a["name"] for a in json.loads(pair.ml("alias", "ls", "--json").stdout)] == ["src"]


def test_aliases_file_is_private(pair: Pair) -> None:
    path = pair.state_dir / "aliases.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(pair.state_dir.stat().st_mode) == 0o700
    pair.ml("alias", "set", "again", pair.target.endpoint, "ak", "sk", "--no-check")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # No temporary file left beside it.
    assert sorted(p.name for p in pair.state_dir.iterdir() if p.name.startswith(".")) == []


def test_alias_ls_never_shows_secrets(shared: Pair) -> None:
    secrets = [shared.source.secret_key, shared.target.secret_key]
    text = shared.ml("alias", "ls").stdout
    as_json = shared.ml("alias", "ls", "--json").stdout
    assert "src" in text and "dst" in text
    assert shared.source.endpoint in text and shared.target.endpoint in text
    for secret in secrets:
        assert secret not in text
        assert secret not in as_json
    entries = json.loads(as_json)
    assert [e["name"] for e in entries] == ["dst", "src"]
    assert all(e["secret_key"] == "********" for e in entries)
    # The secrets are on disk (0600), just never shown.
    on_disk = (shared.state_dir / "aliases.json").read_text()
    assert all(secret in on_disk for secret in secrets)


def test_env_alias_listed_masked_and_usable(pair: Pair) -> None:
    s = pair.source
    env = {"MIRRORLINE_HOST_ENVSRC": f"http://{s.access_key}:{s.secret_key}@127.0.0.1:{s.port}"}
    text = pair.ml("alias", "ls", env=env).stdout
    as_json = pair.ml("alias", "ls", "--json", env=env).stdout
    assert "envsrc" in text
    assert s.secret_key not in text and s.secret_key not in as_json
    entry = {e["name"]: e for e in json.loads(as_json)}["envsrc"]
    assert entry["source"] == "env"
    assert entry["url"] == s.endpoint
    assert entry["secret_key"] == "********"
    # Only for that process: never saved.
    assert "envsrc" not in (pair.state_dir / "aliases.json").read_text()
    assert "envsrc" not in pair.ml("alias", "ls").stdout

    result = pair.ml(
        "replicate",
        "add",
        f"envsrc/{pair.src_bucket}",
        "--remote-target",
        f"dst/{pair.dst_bucket}",
        "--id",
        "e1",
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert [(p["id"], p["source"]) for p in policies(pair)] == [("e1", f"envsrc/{pair.src_bucket}")]
    # An env alias cannot be removed from the file; it is unset instead.
    assert_user_error(
        pair.ml("alias", "rm", "envsrc", env=env, check=False), "MIRRORLINE_HOST_ENVSRC"
    )


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("X", "not a url", "expected http(s)://ACCESS:SECRET@host:port"),
        ("X", "http://127.0.0.1:9000", "expected http(s)://ACCESS:SECRET@host:port"),
        ("X", "http://onlyaccess@127.0.0.1:9000", "expected http(s)://ACCESS:SECRET@host:port"),
        ("X", "http://ak:sk@127.0.0.1:notaport", "expected http(s)://ACCESS:SECRET@host:port"),
        ("X", "http://ak:sk@127.0.0.1:99999", "expected http(s)://ACCESS:SECRET@host:port"),
        ("X", "http://ak:sk@[::1", "expected http(s)://ACCESS:SECRET@host:port"),
        ("X", "http://ak:sk@127.0.0.1:9000/with/path", "no path or query"),
        ("X", "http://ak:sk@127.0.0.1:9000?q=1", "no path or query"),
        ("X", "ftp://ak:sk@127.0.0.1:9000", "invalid endpoint URL"),
        ("BAD.NAME", "http://ak:sk@127.0.0.1:9000", "invalid alias name"),
    ],
)
def test_malformed_env_alias(shared: Pair, name: str, value: str, fragment: str) -> None:
    env = {f"MIRRORLINE_HOST_{name}": value}
    before = snapshot(shared)
    for args in (("alias", "ls"), ("replicate", "ls", "--json")):
        err = assert_user_error(
            shared.ml(*args, env=env, check=False), f"MIRRORLINE_HOST_{name}", fragment
        )
        assert ":sk@" not in err and "sk@" not in err
    assert snapshot(shared) == before


# ---------------------------------------------------------------- replicate add


def add_args(pair: Pair, source: str | None = None, target: str | None = None) -> list[str]:
    return [
        "replicate",
        "add",
        source or f"src/{pair.src_bucket}",
        "--remote-target",
        target or f"dst/{pair.dst_bucket}",
    ]


@pytest.mark.parametrize(
    ("source", "target", "extra", "fragments"),
    [
        ("nosuch/{src}", None, [], ["unknown alias", "nosuch"]),
        (None, "nosuch/{dst}", [], ["unknown alias", "nosuch"]),
        ("src/{src}-missing", None, [], ["source bucket", "does not exist"]),
        (None, "dst/{dst}-missing", [], ["target bucket", "does not exist"]),
        (None, "src/{src}", [], ["same bucket"]),
        (None, None, ["--prefix", "a\x01b"], ["--prefix", "control characters"]),
        (None, None, ["--tags", "a"], ["invalid tag", "'a'"]),
        (None, None, ["--tags", "=v"], ["invalid tag", "'=v'"]),
        (None, None, ["--tags", "a=1&a=2"], ["duplicate tag key", "'a'"]),
        (None, None, ["--bandwidth", "fast"], ["invalid bandwidth", "fast"]),
        (None, None, ["--bandwidth", "10 parsecs"], ["invalid bandwidth", "10 parsecs"]),
        (None, None, ["--bandwidth", "12"], ["below 1 KiB/s"]),
        (None, None, ["--replicate", "everything"], ["invalid --replicate", "everything"]),
        (None, None, ["--replicate", "delete,put"], ["invalid --replicate", "put"]),
        (None, None, ["--id", " "], ["--id must not be empty"]),
        (None, None, ["--id", "a\nb"], ["invalid --id", "'a\\nb'"]),
        (None, None, ["--id", "has space"], ["invalid --id"]),
        (None, None, ["--id", "x" * 65], ["invalid --id"]),
        ("nobucket", None, [], ["invalid source", "ALIAS/BUCKET"]),
        ("src/Bad_Bucket", None, [], ["invalid bucket name", "Bad_Bucket"]),
        ("src/a/b", None, [], ["invalid source", "ALIAS/BUCKET"]),
        (None, "nobucket", [], ["invalid --remote-target", "ALIAS/BUCKET"]),
        (None, "dst/Bad_Bucket", [], ["invalid bucket name", "Bad_Bucket"]),
    ],
)
def test_replicate_add_rejects(
    shared: Pair,
    source: str | None,
    target: str | None,
    extra: list[str],
    fragments: list[str],
) -> None:
    names = {"src": shared.src_bucket, "dst": shared.dst_bucket}
    before = snapshot(shared)
    args = add_args(shared, source and source.format(**names), target and target.format(**names))
    assert_user_error(shared.ml(*args, *extra, check=False), *fragments)
    assert snapshot(shared) == before
    assert policies(shared) == []


@pytest.mark.parametrize("side", ["source", "target"])
def test_replicate_add_needs_versioning(shared: Pair, side: str) -> None:
    if side == "source":
        bucket = make_bucket(client_for(shared.source), f"{shared.src_bucket}-nv", versioned=False)
        args = add_args(shared, source=f"src/{bucket}")
    else:
        bucket = make_bucket(client_for(shared.target), f"{shared.dst_bucket}-nv", versioned=False)
        args = add_args(shared, target=f"dst/{bucket}")
    before = snapshot(shared)
    assert_user_error(
        shared.ml(*args, check=False), "versioning is not enabled", f"{side} bucket", bucket
    )
    assert snapshot(shared) == before


def test_replicate_add_same_bucket_through_two_aliases(pair: Pair) -> None:
    s = pair.source
    pair.ml("alias", "set", "src2", s.endpoint, s.access_key, s.secret_key)
    before = snapshot(pair)
    result = pair.ml(*add_args(pair, target=f"src2/{pair.src_bucket}"), check=False)
    assert_user_error(result, "same bucket")
    assert snapshot(pair) == before


def test_replicate_add_duplicates(pair: Pair) -> None:
    pair.ml(*add_args(pair), "--id", "p1", "--priority", "5")
    other = make_bucket(client_for(pair.target), f"{pair.dst_bucket}-b")
    before = snapshot(pair)
    # Same id.
    result = pair.ml(*add_args(pair, target=f"dst/{other}"), "--id", "p1", check=False)
    assert_user_error(result, "already exists", "'p1'")
    # Same priority.
    result = pair.ml(
        *add_args(pair, target=f"dst/{other}"), "--id", "p2", "--priority", "5", check=False
    )
    assert_user_error(result, "priority 5", "p1")
    # Same route and prefix under another id.
    result = pair.ml(*add_args(pair), "--id", "p3", check=False)
    assert_user_error(result, "already replicates")
    assert snapshot(pair) == before
    assert [p["id"] for p in policies(pair)] == ["p1"]
    # And through update: a priority or a route another policy has.
    pair.ml(*add_args(pair, target=f"dst/{other}"), "--id", "p2", "--priority", "4")
    before = snapshot(pair)
    result = pair.ml("replicate", "update", "--id", "p2", "--priority", "5", check=False)
    assert_user_error(result, "priority 5", "p1")
    result = pair.ml(
        "replicate",
        "update",
        "--id",
        "p2",
        "--remote-target",
        f"dst/{pair.dst_bucket}",
        check=False,
    )
    assert_user_error(result, "already replicates")
    assert snapshot(pair) == before


def test_replicate_add_endpoint_down_or_credentials_rejected(pair: Pair) -> None:
    """Aliases saved with --no-check are checked when a policy would use them."""
    t = pair.target
    pair.ml("alias", "set", "down", f"http://127.0.0.1:{closed_port()}", "ak", "sk", "--no-check")
    pair.ml("alias", "set", "badkey", t.endpoint, t.access_key, "wrong-secret-000", "--no-check")
    before = snapshot(pair)
    result = pair.ml(*add_args(pair, source=f"down/{pair.src_bucket}"), check=False)
    assert_user_error(result, "source down", "does not answer")
    result = pair.ml(*add_args(pair, target=f"badkey/{pair.dst_bucket}"), check=False)
    err = assert_user_error(
        result, f"target badkey/{pair.dst_bucket}: access refused by {t.endpoint}", "alias badkey"
    )
    assert "wrong-secret-000" not in err
    assert snapshot(pair) == before
    assert policies(pair) == []


@pytest.mark.parametrize(
    ("args", "fragment", "code"),
    [
        (["replicate", "add", "src/{src}"], "Missing option '--remote-target'", 1),
        (
            ["replicate", "add", "src/{src}", "--remote-target", "dst/{dst}", "--priority", "hi"],
            "'hi' is not a valid integer",
            1,
        ),
        (["replicate", "backlog", "src/{src}", "--limit", "0"], "--limit", 1),
        (["replicate", "update", "--prefix", "x/"], "Missing option '--id'", 1),
        (["replicate", "bogus"], "No such command 'bogus'", 1),
        (["alias", "set", "x"], "Missing argument", 1),
        (
            ["alias", "set", "x", "http://127.0.0.1:1", "ak", "sk", "--ca-file", "/no/ca.pem"],
            "does not exist",
            1,
        ),
        (["--bogus", "alias", "ls"], "No such option '--bogus'", 1),
        (["replicate", "diff"], "Missing argument", 2),
        (["replicate", "diff", "src/{src}", "--bogus"], "No such option '--bogus'", 2),
    ],
)
def test_usage_errors_are_one_line(shared: Pair, args: list[str], fragment: str, code: int) -> None:
    """Click's own usage errors follow the same rule (diff: 2, as 1 means differences)."""
    names = {"src": shared.src_bucket, "dst": shared.dst_bucket}
    before = snapshot(shared)
    result = shared.ml(*(a.format(**names) for a in args), check=False)
    err = assert_user_error(result, fragment, "--help`", code=code)
    assert "Usage:" not in err
    assert snapshot(shared) == before


# ---------------------------------------------------------------- update / rm / ls


def test_replicate_add_update_rm(pair: Pair) -> None:
    result = pair.ml(*add_args(pair), "--id", "p1", check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "p1" in result.stdout
    [policy] = policies(pair)
    assert policy["id"] == "p1"
    assert policy["source"] == f"src/{pair.src_bucket}"
    assert policy["target"] == f"dst/{pair.dst_bucket}"
    assert policy["replicate"] == OPS
    assert policy["prefix"] == ""
    assert policy["tags"] == {}
    assert policy["enabled"] is True

    result = pair.ml("replicate", "update", "--id", "p1", "--prefix", "x/", check=False)
    assert result.returncode == 0, result.stderr
    [policy] = policies(pair)
    assert policy["prefix"] == "x/"
    assert policy["replicate"] == OPS

    before = snapshot(pair)
    for args, fragments in [
        (("update", "--id", "nope", "--prefix", "y/"), ("no policy", "'nope'")),
        (("update", "--id", "p1"), ("nothing to update",)),
        (("update", "--id", "p1", "--tags", "a"), ("invalid tag",)),
        (("update", "--id", "p1", "--bandwidth", "fast"), ("invalid bandwidth",)),
        (("update", "--id", "p1", "--prefix", "a\tb"), ("control characters",)),
        (("update", "--id", "p1", "--remote-target", "nosuch/x-bucket"), ("unknown alias",)),
        (("update", "--id", "p1", "--remote-target", f"src/{pair.src_bucket}"), ("same bucket",)),
        (
            ("update", "--id", "p1", "--remote-target", f"dst/{pair.dst_bucket}-missing"),
            ("target bucket", "does not exist"),
        ),
        (("rm",), ("exactly one of --id", "--all")),
        (("rm", "--id", "p1", "--all"), ("exactly one of --id",)),
        (("rm", "--all"), ("--force",)),
        (("rm", "--id", "nope"), ("no policy", "'nope'")),
    ]:
        assert_user_error(pair.ml("replicate", *args, check=False), *fragments)
        assert snapshot(pair) == before, args

    result = pair.ml("replicate", "rm", "--id", "p1", check=False)
    assert result.returncode == 0, result.stderr
    assert "p1 removed" in result.stdout
    assert policies(pair) == []


def test_replicate_ls_unknown_path(pair: Pair) -> None:
    pair.add_policy()
    before = snapshot(pair)
    assert_user_error(
        pair.ml("replicate", "ls", "src/nonexistent-bucket", check=False),
        "no replication policy",
        "src/nonexistent-bucket",
    )
    assert_user_error(pair.ml("replicate", "ls", "nobucket", check=False), "ALIAS/BUCKET")
    assert snapshot(pair) == before


# ---------------------------------------------------------------- retry / pause / backlog / diff


def test_replicate_operational_commands_reject(pair: Pair) -> None:
    pair.add_policy()
    before = snapshot(pair)
    for args, fragments in [
        (("retry",), ("task ids or --all",)),
        (("retry", "1", "--all"), ("task ids or --all",)),
        (("retry", "--all", "--id", "nope"), ("no policy", "'nope'")),
        (("retry", "999"), ("no failed or retrying task", "999")),
        (("pause", "--id", "nope"), ("no policy", "'nope'")),
        (("resume", "--id", "nope"), ("no policy", "'nope'")),
        (("backlog", "src/nonexistent-bucket"), ("no replication policy",)),
        (("backlog", f"src/{pair.src_bucket}", "--id", "nope"), ("no policy", "'nope'")),
        (("status", "src/nonexistent-bucket"), ("no replication policy",)),
    ]:
        assert_user_error(pair.ml("replicate", *args, check=False), *fragments)
        assert snapshot(pair) == before, args
    status = json.loads(pair.ml("replicate", "status", "--json").stdout)
    assert status["engine_paused"] is False
    assert status["policies"][0]["state"] == "enabled"


def test_replicate_diff_errors_exit_2(pair: Pair) -> None:
    pair.add_policy()
    before = snapshot(pair)
    for args, fragments in [
        (("src/nonexistent-bucket",), ("no replication policy", "src/nonexistent-bucket")),
        (("nobucket",), ("ALIAS/BUCKET",)),
        ((f"src/{pair.src_bucket}", "--id", "nope"), ("no policy", "'nope'")),
    ]:
        result = pair.ml("replicate", "diff", *args, check=False)
        assert_user_error(result, *fragments, code=2)
        assert snapshot(pair) == before, args


def test_replicate_diff_unreachable_target_exits_2(pair: Pair) -> None:
    pair.add_policy()
    s = pair.target
    url = f"http://127.0.0.1:{closed_port()}"
    pair.ml("alias", "set", "dst", url, s.access_key, s.secret_key, "--no-check")
    result = pair.ml("replicate", "diff", f"src/{pair.src_bucket}", check=False)
    err = assert_user_error(result, "diff p1", code=2)
    assert s.secret_key not in err
