"""Chaos against rusd cluster mode (issue 19.7): three members (lmdb, leveldb, lsm) on one
PostgreSQL, concurrent grpcio clients on random members (puts of unique values, linearizable
gets, CAS by Txn on a few keys), while a nemesis kills members with -9 and restarts them and
restarts PostgreSQL. Afterwards (cluster_chaos.verify): no acknowledged write lost, equal
revision and HashKV on every member, identical Watch streams from revision 1 on every member
(fresh ones, and ones that resumed across the kills), and the history linearizable per key
(linearizability.py, Wing & Gong / Lowe search).

Knobs: CHAOS_SECONDS (run length, 60; CHAOS_LONG=1 makes it 600), CHAOS_SEED (19; printed),
CHAOS_CLIENTS (6), CHAOS_HISTORY (where to save the history; always saved on failure, in the
data dir's temp root). Skips only when PostgreSQL or rusd is not installed (CI installs both).
"""
from __future__ import annotations

import os
import tempfile
import time

import pytest

import cluster_chaos
import pg_cluster
import servers


def settings() -> tuple[float, int, int]:
    seconds = float(os.environ.get("CHAOS_SECONDS", "600" if os.environ.get("CHAOS_LONG") == "1" else "60"))
    return seconds, int(os.environ.get("CHAOS_SEED", "19")), int(os.environ.get("CHAOS_CLIENTS", "6"))


@pytest.fixture
def cluster():
    with pg_cluster.running_cluster() as c:
        yield c


def test_chaos_kill9_and_postgres_restarts_keep_the_cluster_linearizable(api, cluster):
    seconds, seed, clients = settings()
    print(f"\nchaos: seed {seed} (CHAOS_SEED={seed} replays the choices), {seconds:.0f} s, {clients} clients")
    members = cluster.members
    start_revision = cluster_chaos.converge(api, members)
    watches = [cluster_chaos.ResumingWatch(api, m) for m in members]
    workload = cluster_chaos.Workload(api, members, seed=seed, clients=clients)
    nemesis = cluster_chaos.Nemesis(cluster, seed, workload.now, pg_every=min(25.0, seconds / 3))
    began = time.monotonic()
    try:
        workload.start()
        nemesis.start()
        time.sleep(seconds)
        nemesis.finish()
        # A quiet stretch at the end, so that the last writes are acknowledged normally.
        time.sleep(min(5.0, seconds / 10))
        workload.finish()
        verdict = cluster_chaos.verify(api, members, workload, watches, start_revision)
    finally:
        for w in watches:
            w.close()
    elapsed = time.monotonic() - began
    print(f"chaos: {elapsed:.0f} s; nemesis:\n  " + "\n  ".join(nemesis.log))
    print(f"chaos: ops {workload.counts()}; final revision {verdict.revision}; "
          f"watch reopenings {[w.reopened for w in watches]}")
    print("chaos: client errors " + "; ".join(f"{n} x {e}" for e, n in sorted(workload.errors.items(), key=lambda x: -x[1])))
    if verdict.checker is not None:
        print("chaos: " + verdict.checker.report().replace("\n", "\n  "))
    path = os.environ.get("CHAOS_HISTORY")
    failed = bool(verdict.problems) or nemesis.error is not None
    if failed and not path:
        fd, path = tempfile.mkstemp(prefix=f"chaos-history-seed{seed}-", suffix=".json", dir=servers.temp_root() or None)
        os.close(fd)
    if path:
        cluster_chaos.save_history(path, workload.history, nemesis.log, seed)
        print(f"chaos: history saved to {path} (python Tests/compat/cluster_chaos.py --check {path})")
    assert nemesis.error is None, f"seed {seed}: {nemesis.error}\n" + "\n".join(nemesis.log)
    assert not verdict.problems, f"seed {seed}, history {path}:\n" + "\n".join(verdict.problems[:20])
    # The run must have exercised something, or it proves nothing.
    counts = workload.counts()
    assert counts.get("put ok", 0) > 50 and counts.get("get ok", 0) > 50 and counts.get("cas ok", 0) > 10, counts
    assert sum(1 for line in nemesis.log if "kill -9" in line) >= 2, nemesis.log
    assert any("postgres stop" in line for line in nemesis.log), nemesis.log
