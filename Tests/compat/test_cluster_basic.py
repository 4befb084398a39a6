"""rusd cluster mode (issue 19, first milestone): three members on different engines share one
log in PostgreSQL (`--shared-log`); independent clients (grpcio, etcdctl) judge that they agree.

- a put on m1 is seen by a linearizable get on m2 and m3 at once (read index = log head);
- 300 random writes from concurrent clients spread over the members, then equal revision and
  equal HashKV at that revision on all three;
- a watch on m3 sees a write made on m1, with the revision m1 acknowledged;
- kill -9 of a member: writes go on through the others; restarted on its data dir, it resumes
  from its own applied index and catches up (same revision, same HashKV).

Skips only when PostgreSQL or rusd is not installed (CI installs both).
"""
from __future__ import annotations

import json
import os
import random
import shutil
import re
import subprocess
import threading
import time

import grpc
import pytest

import pg_cluster
import servers

TIMEOUT = 10


@pytest.fixture(scope="module")
def cluster():
    with pg_cluster.running_cluster() as c:
        yield c


class Client:
    """grpcio calls to one member."""

    def __init__(self, api, member: servers.Server):
        self.api = api
        self.channel = grpc.insecure_channel(member.endpoint)

    def call(self, rpc: str, **fields):
        return self.api.callable(self.channel, rpc)(self.api.request(rpc, fields), timeout=TIMEOUT)

    def close(self):
        self.channel.close()


def etcdctl(member: servers.Server, *args: str) -> str:
    r = subprocess.run(["etcdctl", f"--endpoints={member.endpoint}", *args], capture_output=True, text=True,
                       timeout=30, env={**os.environ, "ETCDCTL_API": "3"})
    assert r.returncode == 0, f"etcdctl {' '.join(args)} on {member.name}: {r.stderr}"
    return r.stdout


def clients(api, cluster) -> list[Client]:
    return [Client(api, m) for m in cluster.members]


def revision(c: Client, serializable: bool = False) -> int:
    return c.call("KV.Range", key=b"\0", serializable=serializable).header.revision


def converged(cs: list[Client], deadline_s: float = 15) -> int:
    """Waits until every member serves the same revision (linearizable reads); returns it."""
    return pg_cluster.wait_converged(lambda: [revision(c) for c in cs], deadline_s)


def hash_kv(c: Client, rev: int) -> tuple[int, int]:
    r = c.call("Maintenance.HashKV", revision=rev)
    return r.hash, r.compact_revision


def test_put_on_one_member_is_read_on_the_others(api, cluster):
    m1, m2, m3 = cluster.members
    etcdctl(m1, "put", "/cluster/a", "one")
    for m in (m2, m3):
        out = json.loads(etcdctl(m, "get", "/cluster/a", "-w", "json"))
        assert [(kv["key"], kv["value"]) for kv in out.get("kvs", [])] == [("L2NsdXN0ZXIvYQ==", "b25l")], \
            f"{m.name} did not see the put made on m1: {out}"
    cs = clients(api, cluster)
    try:
        put = cs[0].call("KV.Put", key=b"/cluster/b", value=b"two")
        for c in cs[1:]:
            got = c.call("KV.Range", key=b"/cluster/b")
            assert [(kv.key, kv.value, kv.mod_revision) for kv in got.kvs] == [(b"/cluster/b", b"two", put.header.revision)]
            assert got.header.revision >= put.header.revision
    finally:
        for c in cs:
            c.close()


def test_concurrent_random_writes_converge(api, cluster):
    cs = clients(api, cluster)
    rng = random.Random(int(os.environ.get("COMPAT_SEED", "19")))
    plans = [[(rng.randrange(3), rng.choice(["put", "put", "delete", "txn"]), f"/rand/{rng.randrange(40)}".encode(),
               rng.randbytes(rng.randrange(1, 64))) for _ in range(50)] for _ in range(6)]
    errors: list[str] = []
    acked: list[int] = []
    lock = threading.Lock()

    def run(plan):
        for member, op, key, value in plan:
            c = cs[member]
            try:
                if op == "put":
                    rev = c.call("KV.Put", key=key, value=value).header.revision
                elif op == "delete":
                    rev = c.call("KV.DeleteRange", key=key).header.revision
                else:
                    rev = c.call("KV.Txn", compare=[{"key": key, "target": "VERSION", "result": "EQUAL", "version": 0}],
                                 success=[{"request_put": {"key": key, "value": value}}],
                                 failure=[{"request_put": {"key": key + b"/else", "value": value}}]).header.revision
                with lock:
                    acked.append(rev)
            except grpc.RpcError as e:
                with lock:
                    errors.append(f"{op} on m{member + 1}: {e.code()} {e.details()}")

    try:
        start = revision(cs[0])
        threads = [threading.Thread(target=run, args=(p,)) for p in plans]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors[:5]
        assert len(acked) == 300
        rev = converged(cs)
        # Puts, txns and deletes of existing keys take one revision each; deletes of absent keys none.
        assert max(acked) <= rev and rev - start <= 300
        hashes = [hash_kv(c, rev) for c in cs]
        assert len(set(hashes)) == 1, f"HashKV at revision {rev} differs: {hashes}"
        # And at an earlier revision in the middle of the run.
        mid = start + (rev - start) // 2
        hashes = [hash_kv(c, mid) for c in cs]
        assert len(set(hashes)) == 1, f"HashKV at revision {mid} differs: {hashes}"
        # Every member lists the same keys with the same mod revisions.
        views = [[(kv.key, kv.value, kv.mod_revision, kv.version)
                  for kv in c.call("KV.Range", key=b"/rand/", range_end=b"/rand0").kvs] for c in cs]
        assert views[0] == views[1] == views[2]
    finally:
        for c in cs:
            c.close()


def test_watch_on_one_member_sees_write_on_another(api, cluster):
    cs = clients(api, cluster)
    try:
        watch = api.callable(cs[2].channel, "Watch.Watch")
        done = threading.Event()

        def requests():     # keeps the send side open until the test is over
            yield api.request("Watch.Watch", {"create_request": {"key": b"/watched", "prev_kv": True}})
            done.wait(TIMEOUT)

        responses = watch(requests(), timeout=TIMEOUT)
        created = next(responses)
        assert created.created
        put = cs[0].call("KV.Put", key=b"/watched", value=b"from-m1")
        events = []
        for resp in responses:
            events.extend(resp.events)
            if events:
                break
        assert [(e.kv.key, e.kv.value, e.kv.mod_revision) for e in events] == [(b"/watched", b"from-m1", put.header.revision)]
        responses.cancel()
        done.set()
    finally:
        for c in cs:
            c.close()


def test_kill9_member_catches_up_from_its_applied_index(api, cluster):
    m1, m2, m3 = cluster.members
    cs = clients(api, cluster)
    try:
        for i in range(20):
            cs[1].call("KV.Put", key=f"/before/{i}".encode(), value=b"x")
        before = converged(cs)
        cluster.kill9(m2)
        cs[1].close()
        for i in range(50):
            (cs[0] if i % 2 else cs[2]).call("KV.Put", key=f"/during/{i}".encode(), value=str(i).encode())
        last = cs[2].call("KV.Put", key=b"/during/last", value=b"end").header.revision
        cluster.restart_killed(m2)
        cs[1] = Client(api, m2)
        got = cs[1].call("KV.Range", key=b"/during/last")
        assert [(kv.value, kv.mod_revision) for kv in got.kvs] == [(b"end", last)]
        rev = converged(cs)
        assert rev >= last
        hashes = [hash_kv(c, rev) for c in cs]
        assert len(set(hashes)) == 1, f"HashKV at revision {rev} differs after the restart: {hashes}"
        # It resumed from its own applied index (not from the start of the log).
        opened = [json.loads(line) for line in open(m2.log_path, errors="replace")
                  if "opened the MVCC store" in line]
        assert len(opened) == 2, opened
        assert int(opened[-1]["applied-index"]) > 20 and int(opened[-1]["revision"]) >= before
    finally:
        for c in cs:
            c.close()


def start_failure(*args: str, data_dir: str | None = None) -> tuple[int, str]:
    """Runs rusd expected to refuse to start; returns (exit code, output)."""
    import tempfile
    with tempfile.TemporaryDirectory(prefix="rusd-cluster-fail-") as tmp:
        port = servers.free_port()
        cmd = [servers.rusd_bin(), "--data-dir", data_dir or os.path.join(tmp, "data"),
               "--listen-client-urls", f"http://127.0.0.1:{port}", *args]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        return r.returncode, r.stdout + r.stderr


def test_unreachable_shared_log_exits_with_the_url():
    if servers.rusd_bin() is None:
        pytest.skip("RUSD_BIN is not an executable")
    port = servers.free_port()      # nothing listens there
    url = f"postgres://postgres@127.0.0.1:{port}/rusd"
    code, out = start_failure("--shared-log", url)
    assert code == 1 and f"cannot use the shared log at {url}" in out and "refused" in out.lower(), out
    code, out = start_failure("--shared-log", "mysql://x@y/z")
    assert code == 1 and 'invalid --shared-log "mysql://x@y/z"' in out, out


def test_bad_configuration_is_refused_with_a_clear_message(cluster):
    pg = cluster.pg
    base = f"postgres://postgres@127.0.0.1:{pg.port}"
    code, out = start_failure("--shared-log", f"{base}/nosuchdb")
    assert code == 1 and 'database "nosuchdb" does not exist' in out, out
    # A log written by another schema version is refused, naming both versions.
    pg.psql("CREATE DATABASE future", database="postgres")
    pg.psql("CREATE TABLE rusd_meta (id int PRIMARY KEY, schema_version int NOT NULL, cluster_id bigint NOT NULL,"
            " created timestamptz NOT NULL DEFAULT now()); INSERT INTO rusd_meta VALUES (1, 99, 7)", database="future")
    code, out = start_failure("--shared-log", f"{base}/future")
    # (The version this rusd writes grows with the schema: named, whatever it is.)
    assert code == 1 and "schema version 99" in out and re.search(r"this rusd reads only schema version [1-9]\d*\b", out), out
    # A data dir that applied entries of its own (single member) cannot join a fresh log.
    import tempfile
    with tempfile.TemporaryDirectory(prefix="rusd-single-") as tmp:
        single = servers.Server("rusd-lmdb", name="single")
        single.start()
        try:
            for i in range(3):
                etcdctl(single, "put", f"k{i}", "v")
            data = single.data_dir
            cluster.kill9(single)
            kept = os.path.join(tmp, "data")
            shutil.copytree(data, kept)
        finally:
            single.stop()
        pg.psql("CREATE DATABASE fresh", database="postgres")
        code, out = start_failure("--engine", "lmdb", "--shared-log", f"{base}/fresh", data_dir=kept)
        assert code == 1 and "start this member on an empty data dir" in out, out


def test_postgres_down_then_back(api, cluster):
    """PostgreSQL stopped: a write fails with etcd's request timed out (UNAVAILABLE, which etcd
    clients retry), serializable reads keep serving; PostgreSQL back: writes work again on every
    member without restarting any. Runs last: it stops the module's PostgreSQL for a while."""
    cs = clients(api, cluster)
    try:
        before = cs[0].call("KV.Put", key=b"/pgdown/before", value=b"1").header.revision
        converged(cs)
        cluster.pg.stop_keeping_data()
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as failed:
            cs[1].call("KV.Put", key=b"/pgdown/during", value=b"2")
        waited = time.monotonic() - started
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE, failed.value
        assert failed.value.details() == "etcdserver: request timed out" and 5 < waited < 9.5, (failed.value.details(), waited)
        for c in cs:
            got = c.call("KV.Range", key=b"/pgdown/before", serializable=True)
            assert [kv.mod_revision for kv in got.kvs] == [before]
        cluster.pg.launch()
        deadline = time.monotonic() + 15
        while True:
            try:
                after = cs[2].call("KV.Put", key=b"/pgdown/after", value=b"3").header.revision
                break
            except grpc.RpcError as e:
                assert time.monotonic() < deadline, f"writes did not recover: {e.code()} {e.details()}"
                time.sleep(0.2)
        rev = converged(cs)
        assert rev >= after
        assert len({hash_kv(c, rev) for c in cs}) == 1
    finally:
        for c in cs:
            c.close()
