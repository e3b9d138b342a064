"""Every bad input: one clear line on stderr, a non-zero exit, no traceback, nothing half-written.

All against the real CLI (a subprocess) and the real SeaweedFS servers of conftest;
no engine runs, so every test here is quick.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import MIRRORLINE, Pair, client_for, make_bucket

OPS = ["delete", "delete-marker", "existing-objects", "metadata-sync"]


def assert_user_error(
    result: subprocess.CompletedProcess[str], *fragments: str, code: int = 1
) -> str:
    """Exit `code`, exactly one `mirrorline: error:` line on stderr naming `fragments`."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    err = result.stderr.strip()
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


def snapshot(pair: Pair) -> tuple[str, str, bytes]:
    """Everything a failed command must leave alone."""
    aliases = pair.ml("alias", "ls", "--json").stdout
    policies = pair.ml("replicate", "ls", "--json").stdout
    return aliases, policies, (pair.state_dir / "aliases.json").read_bytes()


def policies(pair: Pair) -> list[dict[str, object]]:
    return json.loads(pair.ml("replicate", "ls", "--json").stdout)


# ---------------------------------------------------------------- alias set / rm / ls


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
    pair: Pair, tmp_path: Path, name: str, url: str | None, fragment: str
) -> None:
    url = (url or pair.source.endpoint).format(port=pair.source.port)
    args = ("alias", "set", name, url, pair.source.access_key, pair.source.secret_key)
    fresh = tmp_path / "fresh"
    assert_user_error(run_cli(fresh, *args), fragment)
    assert not (fresh / "aliases.json").exists()
    # The same mistake against a populated state dir changes nothing.
    before = snapshot(pair)
    assert_user_error(pair.ml(*args, check=False), fragment)
    assert snapshot(pair) == before


def test_alias_set_unreachable_endpoint(pair: Pair, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    fresh = tmp_path / "fresh"
    err = assert_user_error(
        run_cli(fresh, "alias", "set", "gone", url, "ak", "sk"), "does not answer"
    )
    assert url in err
    assert not (fresh / "aliases.json").exists()
    # Replacing a working alias with an unreachable one keeps the working one.
    before = snapshot(pair)
    assert_user_error(
        pair.ml("alias", "set", "src", url, "ak", "sk-secret", check=False), "does not answer"
    )
    assert snapshot(pair) == before


@pytest.mark.parametrize("wrong", ["secret", "access"])
def test_alias_set_rejected_credentials(pair: Pair, tmp_path: Path, wrong: str) -> None:
    access, secret = pair.source.access_key, pair.source.secret_key
    if wrong == "secret":
        secret = "not-the-secret-999"
    else:
        access = "nosuchaccesskey"
    args = ("alias", "set", "src", pair.source.endpoint, access, secret)
    fresh = tmp_path / "fresh"
    err = assert_user_error(run_cli(fresh, *args), "credentials rejected", pair.source.endpoint)
    if wrong == "secret":
        assert "SignatureDoesNotMatch" in err
    else:
        assert "InvalidAccessKeyId" in err or "AccessDenied" in err
    assert secret not in err
    assert not (fresh / "aliases.json").exists()
    before = snapshot(pair)
    assert_user_error(pair.ml(*args, check=False), "credentials rejected")
    assert snapshot(pair) == before


def test_alias_set_empty_keys(pair: Pair) -> None:
    before = snapshot(pair)
    result = pair.ml("alias", "set", "new", pair.source.endpoint, "", "x", check=False)
    assert_user_error(result, "must not be empty")
    assert snapshot(pair) == before


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


def test_alias_rm_unknown(pair: Pair) -> None:
    before = snapshot(pair)
    assert_user_error(pair.ml("alias", "rm", "nope", check=False), "unknown alias", "nope")
    assert snapshot(pair) == before


def test_alias_rm_removes_a_saved_alias(pair: Pair) -> None:
    pair.ml("alias", "set", "spare", pair.source.endpoint, "ak", "sk", "--no-check")
    pair.ml("alias", "rm", "spare")
    names = [a["name"] for a in json.loads(pair.ml("alias", "ls", "--json").stdout)]
    assert names == ["dst", "src"]


def test_aliases_file_is_private(pair: Pair) -> None:
    path = pair.state_dir / "aliases.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    pair.ml("alias", "set", "again", pair.target.endpoint, "ak", "sk", "--no-check")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # No temporary file left beside it.
    assert sorted(p.name for p in pair.state_dir.iterdir() if p.name.startswith(".")) == []


def test_alias_ls_never_shows_secrets(pair: Pair) -> None:
    secrets = [pair.source.secret_key, pair.target.secret_key]
    text = pair.ml("alias", "ls").stdout
    as_json = pair.ml("alias", "ls", "--json").stdout
    assert "src" in text and "dst" in text
    assert pair.source.endpoint in text and pair.target.endpoint in text
    for secret in secrets:
        assert secret not in text
        assert secret not in as_json
    entries = json.loads(as_json)
    assert [e["name"] for e in entries] == ["dst", "src"]
    assert all(e["secret_key"] == "********" for e in entries)
    # The secrets are on disk (0600), just never shown.
    on_disk = (pair.state_dir / "aliases.json").read_text()
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
    "value",
    [
        "not a url",
        "http://127.0.0.1:9000",  # no credentials
        "http://onlyaccess@127.0.0.1:9000",
        "http://ak:sk@127.0.0.1:notaport",
        "http://ak:sk@127.0.0.1:99999",
        "http://ak:sk@[::1",
        "http://ak:sk@127.0.0.1:9000/with/path",
        "ftp://ak:sk@127.0.0.1:9000",
    ],
)
def test_malformed_env_alias(pair: Pair, value: str) -> None:
    env = {"MIRRORLINE_HOST_X": value}
    before = snapshot(pair)
    for args in (("alias", "ls"), ("replicate", "ls", "--json")):
        err = assert_user_error(pair.ml(*args, env=env, check=False))
        assert "MIRRORLINE_HOST_X" in err or "endpoint URL" in err, err
        assert ":sk@" not in err
    assert snapshot(pair) == before


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
        ("nobucket", None, [], ["invalid source", "ALIAS/BUCKET"]),
        ("src/Bad_Bucket", None, [], ["invalid bucket name", "Bad_Bucket"]),
        ("src/a/b", None, [], ["invalid source", "ALIAS/BUCKET"]),
        (None, "nobucket", [], ["invalid --remote-target", "ALIAS/BUCKET"]),
        (None, "dst/Bad_Bucket", [], ["invalid bucket name", "Bad_Bucket"]),
    ],
)
def test_replicate_add_rejects(
    pair: Pair,
    source: str | None,
    target: str | None,
    extra: list[str],
    fragments: list[str],
) -> None:
    names = {"src": pair.src_bucket, "dst": pair.dst_bucket}
    before = snapshot(pair)
    args = add_args(pair, source and source.format(**names), target and target.format(**names))
    assert_user_error(pair.ml(*args, *extra, check=False), *fragments)
    assert snapshot(pair) == before
    assert policies(pair) == []


@pytest.mark.parametrize("side", ["source", "target"])
def test_replicate_add_needs_versioning(pair: Pair, side: str) -> None:
    if side == "source":
        bucket = make_bucket(client_for(pair.source), f"{pair.src_bucket}-nv", versioned=False)
        args = add_args(pair, source=f"src/{bucket}")
    else:
        bucket = make_bucket(client_for(pair.target), f"{pair.dst_bucket}-nv", versioned=False)
        args = add_args(pair, target=f"dst/{bucket}")
    before = snapshot(pair)
    assert_user_error(
        pair.ml(*args, check=False), "versioning is not enabled", f"{side} bucket", bucket
    )
    assert snapshot(pair) == before


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


@pytest.mark.parametrize(
    ("path", "extra", "fragments"),
    [
        ("src/nonexistent-bucket", [], ["no replication policy"]),
        ("nobucket", [], ["ALIAS/BUCKET"]),
        ("src/{src}", ["--id", "nope"], ["no policy", "'nope'"]),
    ],
)
def test_replicate_diff_errors_exit_2(
    pair: Pair, path: str, extra: list[str], fragments: list[str]
) -> None:
    pair.add_policy()
    before = snapshot(pair)
    result = pair.ml("replicate", "diff", path.format(src=pair.src_bucket), *extra, check=False)
    assert_user_error(result, *fragments, code=2)
    assert snapshot(pair) == before


def test_replicate_diff_unreachable_target_exits_2(pair: Pair) -> None:
    pair.add_policy()
    s = pair.target
    url = f"http://127.0.0.1:{closed_port()}"
    pair.ml("alias", "set", "dst", url, s.access_key, s.secret_key, "--no-check")
    result = pair.ml("replicate", "diff", f"src/{pair.src_bucket}", check=False)
    err = assert_user_error(result, "diff p1", code=2)
    assert s.secret_key not in err
