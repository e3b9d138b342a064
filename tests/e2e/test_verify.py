"""`replicate verify`: the real CLI against two real SeaweedFS servers, after a real engine run."""

from __future__ import annotations

import asyncio
import io
import json
import os
import random
import socket
import subprocess
from collections import Counter
from collections.abc import AsyncIterator

from minio.commonconfig import Tags

from engine.checks.verify import Copy, describe, reservoir
from tests.conftest import Pair, eventually

MiB = 1024 * 1024


def tags_of(**kv: str) -> Tags:
    tags = Tags(for_object=True)
    tags.update(kv)
    return tags


def verify(
    pair: Pair, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return pair.ml("replicate", "verify", f"src/{pair.src_bucket}", *args, check=False, env=env)


def verify_json(pair: Pair, *args: str) -> tuple[int, dict]:
    result = verify(pair, "--json", *args)
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, json.loads(result.stdout)


def sync(pair: Pair) -> None:
    """Run the engine until it reports everything copied, and wait for it to exit 0."""
    proc = pair.start_engine("--until-synced")
    eventually(lambda: proc.poll() is not None, timeout=180)
    assert proc.returncode == 0, pair.engine_log()


def put_target(pair: Pair, key: str, data: bytes, **kwargs: object) -> None:
    pair.dst.put_object(pair.dst_bucket, key, io.BytesIO(data), len(data), **kwargs)  # type: ignore[arg-type]


def found(report: dict) -> set[tuple[str, str, str]]:
    return {(d["key"], d["status"], d["detail"]) for d in report["differences"]}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_synced_buckets_match_then_every_tampering_is_named(pair: Pair) -> None:
    pair.add_policy("--prefix", "data/")
    pair.put("data/plain.txt", b"plain", content_type="text/plain", metadata={"owner": "ops"})
    pair.put("data/content.bin", b"0123456789")
    pair.put("data/tagged.txt", b"t", tags=tags_of(a="1", keep="yes"))
    pair.put("data/meta.txt", b"m", content_type="text/x-a", metadata={"colour": "red"})
    pair.put("data/deleted-on-target.txt", b"d")
    pair.put("data/deleted-on-source.txt", b"s")
    pair.put("data/ünïcødé ファイル +&.txt", b"odd key")
    pair.put("data/empty", b"")
    big = os.urandom(12 * MiB)  # multipart on both sides, with different part sizes
    pair.put("data/big.bin", big, part_size=5 * MiB)
    pair.put("other/diverged.txt", b"source side")  # outside the policy's prefix
    sync(pair)
    assert "other/diverged.txt" not in pair.target_latest()

    code, report = verify_json(pair)
    assert (code, report["checked"], report["differ"], report["differences"]) == (0, 9, 0, [])
    text = verify(pair)
    assert text.returncode == 0, text.stderr
    assert text.stdout.strip().splitlines()[-1] == "checked 9 objects: 0 differ"

    put_target(pair, "data/content.bin", b"9876543210")  # same size, other bytes
    pair.dst.set_object_tags(pair.dst_bucket, "data/tagged.txt", tags_of(a="2", keep="yes"))
    put_target(pair, "data/meta.txt", b"m", content_type="text/x-b", metadata={"colour": "blue"})
    pair.dst.remove_object(pair.dst_bucket, "data/deleted-on-target.txt")
    pair.src.remove_object(pair.src_bucket, "data/deleted-on-source.txt")
    put_target(pair, "data/only-on-target.txt", b"stray")
    put_target(pair, "other/diverged.txt", b"target side, other length")
    put_target(pair, "other/only-on-target.txt", b"stray, excluded")

    code, report = verify_json(pair)
    assert code == 1
    assert found(report) == {
        ("data/content.bin", "differs", "content sha256 differs"),
        ("data/tagged.txt", "differs", "tags differ: source a=1, target a=2"),
        (
            "data/meta.txt",
            "differs",
            "content-type differs: source text/x-a, target text/x-b; metadata differs: colour",
        ),
        ("data/deleted-on-target.txt", "missing", "not on the target"),
        ("data/deleted-on-source.txt", "extra", "live on the target, deleted on the source"),
        ("data/only-on-target.txt", "extra", "live on the target, absent on the source"),
    }
    # 8 live source keys compared, plus the 2 target keys with no live source.
    assert (report["checked"], report["differ"], report["skipped"]) == (10, 6, 0)
    assert report["sample"] is None
    assert report["policies"] == [
        {
            "id": "p1",
            "source": f"src/{pair.src_bucket}",
            "target": f"dst/{pair.dst_bucket}",
            "checked": 10,
            "differ": 6,
            "skipped": 0,
        }
    ]
    assert all(d["policy"] == "p1" for d in report["differences"])

    text = verify(pair)
    assert text.returncode == 1, text.stderr
    lines = text.stdout.strip().splitlines()
    assert lines[-1] == "checked 10 objects: 6 differ"
    assert sorted(line.split()[2] for line in lines[:-1]) == sorted(k for k, _, _ in found(report))
    assert "other/" not in text.stdout

    # Without delete replication, keys left on the target are expected there.
    pair.ml("replicate", "update", "--id", "p1", "--replicate", "existing-objects")
    code, report = verify_json(pair)
    assert code == 1
    assert {(k, s) for k, s, _ in found(report)} == {
        ("data/content.bin", "differs"),
        ("data/tagged.txt", "differs"),
        ("data/meta.txt", "differs"),
        ("data/deleted-on-target.txt", "missing"),
    }


def test_tag_filter_objects_are_not_expected_on_the_target(pair: Pair) -> None:
    pair.add_policy("--tags", "ship=yes")
    pair.put("shipped.txt", b"a", tags=tags_of(ship="yes"))
    pair.put("kept-back.txt", b"b", tags=tags_of(ship="no"))
    sync(pair)
    assert set(pair.target_latest()) == {"shipped.txt"}
    code, report = verify_json(pair)
    assert (code, report["checked"], report["skipped"], report["differences"]) == (0, 1, 1, [])


def test_sample_checks_exactly_n_keys_reproducibly(pair: Pair) -> None:
    pair.add_policy()
    pair.seed("k/", 10, 100)
    # No engine: every key is missing on the target, so the report names the sampled keys.
    code, report = verify_json(pair, "--sample", "3", "--seed", "7")
    assert code == 1
    sampled = {d["key"] for d in report["differences"]}
    assert (report["checked"], report["sample"], len(sampled)) == (3, 3, 3)
    assert sampled <= {f"k/{i:04}" for i in range(10)}
    assert {d["status"] for d in report["differences"]} == {"missing"}
    again = verify_json(pair, "--sample", "3", "--seed", "7")[1]
    assert {d["key"] for d in again["differences"]} == sampled

    code, report = verify_json(pair, "--sample", "25")
    assert (code, report["checked"], report["differ"]) == (1, 10, 10)

    sync(pair)
    result = verify(pair, "--sample", "3")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "checked 3 objects: 0 differ"


def assert_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert (result.returncode, result.stdout) == (2, ""), (result.returncode, result.stdout)
    err = result.stderr.strip()
    assert err.startswith("mirrorline: error: ") and "\n" not in err, result.stderr
    for fragment in fragments:
        assert fragment in err, (fragment, err)


def test_bad_inputs_exit_2_with_one_line(pair: Pair) -> None:
    assert_error(verify(pair), "no replication policy for src/")
    pair.add_policy()
    pair.put("x.txt", b"x")
    ml = pair.ml
    assert_error(ml("replicate", "verify", "ghost/bucket-a", check=False), "unknown alias 'ghost'")
    assert_error(ml("replicate", "verify", "no-slash", check=False), "expected ALIAS/BUCKET")
    assert_error(
        ml("replicate", "verify", "src/other-bucket", check=False), "no replication policy"
    )
    assert_error(ml("replicate", "verify", check=False), "Missing argument")
    assert_error(verify(pair, "--id", "nope"), "no policy with id 'nope'")
    assert_error(verify(pair, "--sample", "0"), "--sample")
    assert_error(verify(pair, "--concurrency", "0"), "--concurrency")

    secret = "very-secret-key-42"
    down = {"MIRRORLINE_HOST_DST": f"http://dstadmin:{secret}@127.0.0.1:{closed_port()}"}
    result = verify(pair, env=down)
    assert_error(result, "verify p1:", "Cannot connect")
    assert secret not in result.stderr

    wrong = {
        "MIRRORLINE_HOST_DST": f"{pair.target.endpoint.replace('//', f'//dstadmin:{secret}@')}"
    }
    result = verify(pair, env=wrong)
    assert_error(result, "verify p1:", "SignatureDoesNotMatch")
    assert secret not in result.stderr


def test_describe_names_each_difference() -> None:
    same = Copy(3, "aa", {"content-type": "text/plain"}, {"colour": "red"}, {"a": "1", "b": "2"})
    assert describe(same, same) == []
    other = Copy(4, "bb", {"content-type": "text/html"}, {"colour": "red", "x": "1"}, {"a": "1"})
    assert describe(same, other) == [
        "size differs: source 3 B, target 4 B",
        "content-type differs: source text/plain, target text/html",
        "metadata differs: x",
        "tags differ: source b=2, target -",
    ]


def test_reservoir_is_uniform_and_bounded() -> None:
    async def items() -> AsyncIterator[int]:
        for i in range(10):
            yield i

    async def draws(rng: random.Random) -> Counter[int]:
        counts: Counter[int] = Counter()
        for _ in range(20000):
            chosen = await reservoir(items(), 3, rng)
            assert len(chosen) == len(set(chosen)) == 3
            counts.update(chosen)
        return counts

    counts = asyncio.run(draws(random.Random(1)))
    # Each of 10 items is drawn with probability 3/10: 6000 of 20000, within 5 %.
    assert all(5700 <= counts[i] <= 6300 for i in range(10)), counts
