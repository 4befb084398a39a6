"""Cluster members without local fsync (the default of lmdb and lsm members, docs/cluster.md
"Local fsync"): what each member reports to the log for trimming, judged by PostgreSQL's own
rows (psql) and etcdctl, not by rusd's client.

- the lmdb and lsm members run without local fsync, the leveldb member syncs every group
  (their logs say so);
- `rusd_members.applied` (the durable applied index each member reports) never runs ahead
  of the log head, and once writes stop it reaches the head on every member (the idle sync);
- a member killed -9 right after a burst of writes, restarted, has every acknowledged write
  (the kill -9 path of `test_cluster_basic.py` and `test_cluster_chaos.py` runs in this mode
  too, since it is the default).

Takes about 15 s.
"""
from __future__ import annotations

import os
import subprocess
import time

import pytest

import pg_cluster
import servers


@pytest.fixture(scope="module")
def cluster():
    with pg_cluster.running_cluster(engines=("lmdb", "leveldb", "lsm")) as c:
        yield c


def etcdctl(member: servers.Server, *args: str) -> str:
    r = subprocess.run(["etcdctl", f"--endpoints={member.endpoint}", *args], capture_output=True, text=True,
                       timeout=30, env={**os.environ, "ETCDCTL_API": "3"})
    assert r.returncode == 0, f"etcdctl {' '.join(args)} on {member.name}: {r.stderr}"
    return r.stdout


def reported(cluster) -> tuple[int, dict[str, int]]:
    """The log head and each member's reported (durable) applied index, in one snapshot."""
    rows = cluster.pg.psql("SELECT (SELECT last FROM rusd_head), name, applied FROM rusd_members ORDER BY name")
    head = 0
    applied = {}
    for line in rows.splitlines():
        h, name, a = line.split("|")
        head, applied[name] = int(h), int(a)
    return head, applied


def test_lmdb_and_lsm_members_run_without_local_fsync(cluster):
    logs = {m.name: open(m.log_path, errors="replace").read() for m in cluster.members}
    assert "cluster mode without local fsync" in logs["m1"], logs["m1"][-2000:]      # lmdb
    assert "cluster mode without local fsync" in logs["m3"], logs["m3"][-2000:]      # lsm
    assert "cluster mode without local fsync" not in logs["m2"]                      # leveldb
    assert "synced at every group commit" in logs["m2"], logs["m2"][-2000:]


def test_reported_applied_index_never_passes_the_head_and_reaches_it_when_idle(cluster):
    m1 = cluster.members[0]
    etcdctl(m1, "put", "/fsync/start", "x")
    samples = []
    for i in range(60):
        etcdctl(m1, "put", f"/fsync/{i}", str(i))
        if i % 10 == 0:
            samples.append(reported(cluster))
    for head, applied in samples:
        assert all(a <= head for a in applied.values()), f"a member reported more than the log holds: {head} {applied}"
    deadline = time.monotonic() + 6
    while True:
        head, applied = reported(cluster)
        if len(applied) == 3 and all(a == head for a in applied.values()):
            break
        assert time.monotonic() < deadline, f"reported applied indexes {applied} did not reach the head {head} within 6 s of the last write"
        time.sleep(0.2)


def test_kill9_right_after_writes_loses_nothing(cluster):
    m1 = cluster.members[0]
    for i in range(40):
        etcdctl(m1, "put", f"/kill/{i}", str(i))
    cluster.kill9(m1)
    cluster.restart_killed(m1)
    out = etcdctl(m1, "get", "/kill/", "--prefix", "--print-value-only")
    assert out.split() == [str(i) for i in sorted(range(40), key=str)]
    revisions = {etcdctl(m, "get", "/kill/39", "-w", "fields").split("\"ModRevision\" : ")[1].split()[0]
                 for m in cluster.members}
    assert len(revisions) == 1, revisions
