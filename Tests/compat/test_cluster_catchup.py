"""rusd cluster mode (issue 19.5): snapshots in PostgreSQL, trimming of `rusd_log`, and catch-up
from the newest snapshot. Three members (lmdb, leveldb, lsm) run with a small
`--snapshot-count` and `--experimental-snapshot-catchup-entries`; grpcio and psql judge:

- writes go on until the leader has written a snapshot and trimmed the log: `rusd_log`'s oldest
  entry (read with psql) is past the applied index of a member killed -9 before the writes;
- a 4th member started on an empty data dir restores the snapshot and tails the rest: same
  revision and same HashKV (at the head and at an older revision) as the others, same keys;
- the killed member, restarted on its old data dir, finds its next entry trimmed and catches up
  through the snapshot too;
- a member frozen (SIGSTOP) while the log is trimmed past it re-bootstraps in place once it
  runs again (same process ID: it stops, runs itself again, restores) instead of skipping.

Skips only when PostgreSQL or rusd is not installed (CI installs both).
"""
from __future__ import annotations

import os
import signal
import threading
import time

import grpc
import pytest

import pg_cluster
import servers

TIMEOUT = 10
SNAPSHOT_COUNT = 300
CATCHUP_ENTRIES = 50
ARGS = ["--snapshot-count", str(SNAPSHOT_COUNT), "--experimental-snapshot-catchup-entries", str(CATCHUP_ENTRIES)]


@pytest.fixture(scope="module")
def cluster():
    with pg_cluster.running_cluster(extra_args=ARGS) as c:
        yield c


class Client:
    def __init__(self, api, member: servers.Server):
        self.api = api
        self.member = member
        self.channel = grpc.insecure_channel(member.endpoint)

    def call(self, rpc: str, **fields):
        """Retried while the member is unreachable (it may be running itself again to catch up:
        a put refused then was never applied)."""
        deadline = time.monotonic() + 20
        while True:
            try:
                return self.api.callable(self.channel, rpc)(self.api.request(rpc, fields), timeout=TIMEOUT)
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.UNAVAILABLE or "connect" not in (e.details() or "") \
                        or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def close(self):
        self.channel.close()


def revision(c: Client) -> int:
    return c.call("KV.Range", key=b"\0").header.revision


def converged(cs: list[Client], deadline_s: float = 30) -> int:
    """Waits until every member serves the same revision (linearizable reads); returns it."""
    return pg_cluster.wait_converged(lambda: [revision(c) for c in cs], deadline_s)


def assert_same_store(cs: list[Client], older: int) -> int:
    rev = converged(cs)
    for at in (rev, older):
        hashes = {c.member.name: (r.hash, r.compact_revision)
                  for c in cs for r in [c.call("Maintenance.HashKV", revision=at)]}
        assert len(set(hashes.values())) == 1, f"HashKV at revision {at} differs: {hashes}"
    views = {c.member.name: [(kv.key, kv.value, kv.mod_revision, kv.create_revision, kv.version)
                             for kv in c.call("KV.Range", key=b"/c/", range_end=b"/c0").kvs] for c in cs}
    first = next(iter(views.values()))
    assert first, "no keys written"
    for name, v in views.items():
        assert v == first, f"{name} lists other keys than {cs[0].member.name}"
    return rev


def write(cs: list[Client], prefix: str, n: int, threads: int = 6, value_bytes: int = 0) -> None:
    """n puts (one log entry each) spread over the clients, from concurrent threads; values
    padded to `value_bytes`."""
    errors: list[str] = []

    def run(t: int) -> None:
        for i in range(t, n, threads):
            c = cs[i % len(cs)]
            try:
                value = f"{prefix}-{i}".encode()
                c.call("KV.Put", key=f"/c/{prefix}/{i % 97}".encode(), value=value + b"." * (value_bytes - len(value)))
            except grpc.RpcError as e:
                errors.append(f"put on {c.member.name}: {e.code()} {e.details()}")

    ts = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors[:5]


def head(pg) -> int:
    """The log's newest index: no member has applied more."""
    return int(pg.psql("SELECT last FROM rusd_head"))


def log_start(pg) -> tuple[int, int]:
    """(trimmed through, oldest entry kept or head + 1)."""
    row = pg.psql("SELECT (SELECT through FROM rusd_trimmed), "
                  "COALESCE((SELECT min(idx) FROM rusd_log), (SELECT last + 1 FROM rusd_head))")
    through, oldest = row.split("|")
    return int(through), int(oldest)


def wait_trimmed_past(pg, index: int, deadline_s: float = 20) -> None:
    deadline = time.monotonic() + deadline_s
    while True:
        through, oldest = log_start(pg)
        if through > index and oldest > index + 1:
            return
        assert time.monotonic() < deadline, \
            f"the log was not trimmed past {index}: through {through}, oldest entry {oldest}, " \
            f"snapshots {pg.psql('SELECT idx FROM rusd_snapshots ORDER BY idx')!r}"
        time.sleep(0.2)


def leader_name(cs: list[Client]) -> str:
    ids = {c.call("Maintenance.Status").header.member_id: c.member.name for c in cs}
    leader = cs[0].call("Maintenance.Status").leader
    assert leader in ids, f"leader {leader:x} is none of {ids}"
    return ids[leader]


def log_count(member: servers.Server, text: str) -> int:
    with open(member.log_path, errors="replace") as f:
        return f.read().count(text)


RESTORED = "restored the shared log's snapshot"
AGAIN = "starting again to catch up"


def test_new_and_stopped_members_catch_up_from_the_snapshot(api, cluster):
    pg = cluster.pg
    m1, m2, m3 = cluster.members
    cs = [Client(api, m) for m in cluster.members]
    m4 = servers.Server("rusd-lmdb", name="m4", extra_args=["--shared-log", pg.url, *ARGS])
    try:
        write(cs, "a", 60)
        older = converged(cs)
        # m3 stops before anything is trimmed (it applied at most the head).
        cluster.kill9(m3)
        stopped_at = head(pg)
        assert log_start(pg) == (1, 2), "trimmed before any snapshot was due"
        live = cs[:2]
        # 4 KiB values: the snapshots (every version kept) span several 1 MiB chunks.
        write(live, "b", 3 * SNAPSHOT_COUNT, value_bytes=4096)
        wait_trimmed_past(pg, stopped_at)
        chunks = pg.psql("SELECT chunks FROM rusd_snapshots ORDER BY idx DESC LIMIT 1")
        assert int(chunks) >= 2, f"the newest snapshot has {chunks} chunk(s)"
        through, oldest = log_start(pg)
        assert oldest > stopped_at + 1 and through >= oldest - 1

        # A new member: nothing in its data dir, the log's start is gone.
        m4.start()
        # (A snapshot taken while it restored an older one may trim past it once more: then
        # it restores again.)
        assert log_count(m4, RESTORED) >= 1, m4.log_tail()
        c4 = Client(api, m4)
        write(live + [c4], "c", 40)
        assert_same_store(live + [c4], older)

        # The killed member restarts on its old data dir: its next entry was trimmed.
        cluster.restart_killed(m3)
        cs[2] = Client(api, m3)
        assert log_count(m3, RESTORED) >= 1, m3.log_tail()
        assert_same_store(cs + [c4], older)
        c4.close()
    finally:
        m4.stop()
        for c in cs:
            c.close()


def test_member_trimmed_past_while_running_rebootstraps(api, cluster):
    pg = cluster.pg
    cs = [Client(api, m) for m in cluster.members]
    try:
        rev0 = converged(cs)
        leader = leader_name(cs)
        frozen = next(c for c in cs if c.member.name != leader)
        others = [c for c in cs if c is not frozen]
        restored_before = log_count(frozen.member, RESTORED)
        again_before = log_count(frozen.member, AGAIN)
        pid = frozen.member.proc.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            frozen_at = head(pg)
            write(others, "d", 2 * SNAPSHOT_COUNT + CATCHUP_ENTRIES)
            wait_trimmed_past(pg, frozen_at)
        finally:
            os.kill(pid, signal.SIGCONT)
        # It finds its next entry trimmed, stops, runs itself again and restores the snapshot.
        deadline = time.monotonic() + 30
        while log_count(frozen.member, RESTORED) == restored_before:
            assert frozen.member.proc.poll() is None, frozen.member.log_tail()
            assert time.monotonic() < deadline, frozen.member.log_tail()
            time.sleep(0.2)
        while True:
            assert frozen.member.proc.poll() is None, frozen.member.log_tail()
            if frozen.member._probe():
                break
            assert time.monotonic() < deadline, frozen.member.log_tail()
            time.sleep(0.1)
        assert frozen.member.proc.pid == pid
        assert log_count(frozen.member, AGAIN) > again_before, frozen.member.log_tail()
        assert_same_store(cs, rev0)
    finally:
        for c in cs:
            c.close()
