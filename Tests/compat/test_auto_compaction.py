"""--auto-compaction-mode / --auto-compaction-retention: the server compacts on its own.

Periodic mode with a 2 s retention (etcd 3.4 takes any Go duration): etcd and the candidate
both get a put every ~50 ms for 8 s while HashKV is polled for their compact revision. Each
server is judged by the same model of etcd's compactor (v3compactor/periodic.go: compact to
the revision sampled one retention or more ago, again every retention), which the reference
etcd must satisfy too:

- safe: a revision written less than one retention before an observation is never compacted;
- live: everything written more than LIVE_LAG before an observation is compacted;
- similar: both servers compacted about as often in the same 8 s.

Revision mode waits 5 minutes in etcd (too slow here): AutoCompactorTests checks its rule.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time

import pytest

import servers

pytestmark = pytest.mark.engine_independent   # the compactor's schedule lies above the engine: first target only

RETENTION = 2.0                 # seconds (--auto-compaction-retention=2s)
WRITE_SECONDS = 8.0
# etcd compacts every retention (checked every retention/10) to the oldest of the last 11
# samples taken retention/10 apart: what it compacts is at most 2.2 retentions + a check old.
LIVE_LAG = 2.2 * RETENTION + 0.2 * RETENTION + 0.8   # + scheduling slack on a busy machine
SAFE_SLACK = 0.05


def _drive(ep, api, ns: str, deadline: float, out: dict) -> None:
    """Puts and HashKV polls on one server until `deadline`: out["puts"] = [(sent, acked, rev)],
    out["seen"] = [(sent, received, compact_revision)]."""
    put, hashkv = ep.stub("KV.Put"), ep.stub("Maintenance.HashKV")
    puts, seen = [], []
    i = 0
    try:
        while time.monotonic() < deadline:
            sent = time.monotonic()
            r = put(api.request("KV.Put", key=f"{ns}k{i % 7}".encode(), value=str(i).encode()),
                    timeout=servers.CALL_TIMEOUT)
            puts.append((sent, time.monotonic(), r.header.revision))
            sent = time.monotonic()
            h = hashkv(api.request("Maintenance.HashKV", revision=0), timeout=servers.CALL_TIMEOUT)
            seen.append((sent, time.monotonic(), h.compact_revision))
            i += 1
            time.sleep(0.05)
    except Exception as e:  # noqa: BLE001 - reported by the test
        out["error"] = e
    out["puts"], out["seen"] = puts, seen


def _judge(name: str, puts: list, seen: list) -> list[str]:
    """The model's violations for one server (empty: it behaved like etcd's compactor)."""
    problems = []
    start = puts[0][0]
    for sent, received, compacted in seen:
        # safe: writes sent after received - retention came after any sample compacted so far.
        young = [rev for s, _, rev in puts if s > received - RETENTION + SAFE_SLACK]
        if young and compacted >= min(young):
            problems.append(f"{name}: at +{received - start:.2f}s compact revision {compacted} >= "
                            f"revision {min(young)} written less than {RETENTION}s before")
        # live: writes acknowledged more than LIVE_LAG before the poll was sent are compacted.
        old = [rev for _, a, rev in puts if a < sent - LIVE_LAG]
        if old and compacted < max(old):
            problems.append(f"{name}: at +{sent - start:.2f}s compact revision {compacted} < "
                            f"revision {max(old)} acknowledged more than {LIVE_LAG:.1f}s before")
    return problems


@pytest.mark.fresh
@pytest.mark.server_args("--auto-compaction-retention", "2s")
@pytest.mark.rpc("KV.Compact")
def test_periodic_auto_compaction(pair, ns):
    deadline = time.monotonic() + WRITE_SECONDS
    results = {"etcd": {}, pair.target: {}}
    threads = [threading.Thread(target=_drive, args=(ep, pair.api, ns, deadline, results[name]))
               for name, ep in zip(results, pair.endpoints)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name, out in results.items():
        assert "error" not in out, f"{name}: {out['error']!r}"
        assert len(out["puts"]) > 15, f"{name}: only {len(out['puts'])} puts in {WRITE_SECONDS}s"

    ref_problems = _judge("etcd", results["etcd"]["puts"], results["etcd"]["seen"])
    assert not ref_problems, "the model of etcd's compactor is wrong:\n" + "\n".join(ref_problems[:10])
    problems = _judge(pair.target, results[pair.target]["puts"], results[pair.target]["seen"])
    assert not problems, "\n".join(problems[:10])

    # Both compacted repeatedly (every ~retention) and about equally often.
    counts = {name: len({c for _, _, c in out["seen"] if c > 1}) for name, out in results.items()}
    assert counts["etcd"] >= 2, counts
    assert abs(counts["etcd"] - counts[pair.target]) <= 1, counts

    # Old revisions answer etcd's error, compared field by field.
    pair.call("KV.Range", key=f"{ns}k0".encode(), revision=2)


@pytest.mark.parametrize("mode,retention", [("periodic", "abc"), ("revision", "5x"), ("hourly", "1")])
def test_bad_retention_refused(target, mode, retention):
    """Both refuse an unparsable retention or unknown mode at start with etcd's words."""
    words = {"abc": 'error parsing CompactionRetention: time: invalid duration "abc"',
             "5x": "error parsing CompactionRetention: time:",
             "1": 'unknown auto-compaction-mode "hourly"'}[retention]
    for name in ["etcd", target]:
        with tempfile.TemporaryDirectory(dir=servers.temp_root()) as root:
            s = servers.Server(name, data_dir=os.path.join(root, "data"),
                               client_port=servers.free_port(), peer_port=servers.free_port(),
                               extra_args=[f"--auto-compaction-mode={mode}",
                                           f"--auto-compaction-retention={retention}"])
            try:
                p = subprocess.run(s.command(), capture_output=True, text=True, timeout=15)
            except subprocess.TimeoutExpired:
                pytest.fail(f"{name} started with --auto-compaction-mode={mode} "
                            f"--auto-compaction-retention={retention}")
            assert p.returncode != 0, f"{name} exited 0"
            assert words in p.stdout + p.stderr, f"{name}: {(p.stdout + p.stderr)[-600:]}"
