"""Chaos against rusd cluster mode (issue 19.7): concurrent grpcio clients on random members,
a nemesis that kills members with -9 and restarts them and restarts PostgreSQL, watchers that
resume on every member, and the checks run afterwards.

- `Workload`: N client threads, each op on a random member: put of a unique value, linearizable
  get, compare-and-swap by Txn (compare VALUE, or VERSION = 0 for "absent"; the failure branch
  reads the key) on a small key set. Every op goes into `history` (linearizability.Op) with
  invoke/complete times on one monotonic clock and an outcome: ok; failed when the request
  certainly never reached a server (grpc could not connect); unknown otherwise (timeouts,
  etcd's "request timed out", a connection lost mid-call: the write may have been applied).
- `Nemesis`: every few seconds kills one or two members with SIGKILL and restarts them on
  their data dirs (sometimes killing one again while it catches up), freezes one (SIGSTOP,
  SIGCONT), or stops PostgreSQL (fast or immediate shutdown; sometimes while a member is
  down) and starts it again.
- `ResumingWatch`: one Watch per member over the whole keyspace from revision 1; when the
  stream breaks (member killed) it reopens from the last revision it delivered + 1, as etcd
  clients do.
- `verify(...)`: after the run (everything up again): equal revision and HashKV on every
  member, a fresh Watch from revision 1 on every member delivers the same events (and so do the
  resumed watches), every acknowledged write is the event at its revision, no failed write and
  no value twice in the events, reads' mod revisions agree with the events, and the history
  is linearizable per key (linearizability.check).

The seed fixes each client's and the nemesis's choices; thread timing is not replayable, so a
failure also saves the history (JSON) for `python cluster_chaos.py --check <file>`.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field

import grpc

import linearizability as lin
from linearizability import CAS, FAILED, GET, OK, PUT, UNKNOWN, Op

PREFIX = b"/chaos/"
CHANNEL_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
                   ("grpc.max_reconnect_backoff_ms", 1000)]


def channel(endpoint: str) -> grpc.Channel:
    return grpc.insecure_channel(endpoint, options=CHANNEL_OPTIONS)


def outcome_of(err: grpc.RpcError) -> str:
    """failed only when grpc never sent the request (no connection); otherwise unknown."""
    details = (err.details() or "").lower()
    if err.code() == grpc.StatusCode.UNAVAILABLE and ("failed to connect" in details or "connection refused" in details):
        return FAILED
    return UNKNOWN


class Workload:
    """Concurrent clients over `members` (servers.Server); see the module comment."""

    def __init__(self, api, members, seed: int, clients: int = 6, keys: int = 4, call_timeout: float = 10.0):
        self.api, self.members, self.seed = api, members, seed
        self.clients, self.call_timeout = clients, call_timeout
        self.keys = [PREFIX + f"k{i}".encode() for i in range(keys)]
        self.history: list[Op] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.errors: dict[str, int] = {}
        self.crashed: list[str] = []
        self.threads: list[threading.Thread] = []
        self.t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def start(self) -> None:
        for cid in range(self.clients):
            t = threading.Thread(target=self._client, args=(cid,), name=f"chaos-client-{cid}", daemon=True)
            t.start()
            self.threads.append(t)

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=self.call_timeout + 10)
        assert not any(t.is_alive() for t in self.threads), "a client thread did not stop"
        assert not self.crashed, f"a client thread crashed: {self.crashed}"

    def run_for(self, seconds: float) -> None:
        self.start()
        time.sleep(seconds)
        self.finish()

    def _client(self, cid: int) -> None:
        try:
            self._client_loop(cid)
        except Exception as e:  # noqa: BLE001 - reported by finish()
            import traceback
            self.crashed.append(f"client {cid}: {e!r}\n{traceback.format_exc()}")

    def _client_loop(self, cid: int) -> None:
        rng = random.Random(self.seed * 1000 + cid)
        chans = [channel(m.endpoint) for m in self.members]
        rpcs = {name: [self.api.callable(ch, name) for ch in chans] for name in ("KV.Put", "KV.Range", "KV.Txn")}
        last_seen: dict[bytes, bytes | None] = {}
        seq = 0
        try:
            while not self.stop.is_set():
                m = rng.randrange(len(self.members))
                key = rng.choice(self.keys)
                r = rng.random()
                seq += 1
                value = f"c{cid}-{seq}".encode()
                if r < 0.4:
                    op = Op(cid, key, PUT, OK, 0.0, value=value)
                    req = self.api.request("KV.Put", key=key, value=value)
                    call = rpcs["KV.Put"][m]
                elif r < 0.8:
                    op = Op(cid, key, GET, OK, 0.0)
                    req = self.api.request("KV.Range", key=key)
                    call = rpcs["KV.Range"][m]
                else:
                    expected = last_seen.get(key) if rng.random() < 0.85 else None
                    cmp = ({"key": key, "target": "VERSION", "result": "EQUAL", "version": 0} if expected is None
                           else {"key": key, "target": "VALUE", "result": "EQUAL", "value": expected})
                    op = Op(cid, key, CAS, OK, 0.0, value=value, expected=expected)
                    req = self.api.request("KV.Txn", compare=[cmp], success=[{"request_put": {"key": key, "value": value}}],
                                           failure=[{"request_range": {"key": key}}])
                    call = rpcs["KV.Txn"][m]
                op.meta["member"] = self.members[m].name
                op.invoke = self.now()
                try:
                    resp = call(req, timeout=self.call_timeout)
                except grpc.RpcError as e:
                    op.complete = None
                    op.status = outcome_of(e)
                    op.meta["error"] = f"{e.code().name}: {e.details()}"
                    with self.lock:
                        self.errors[op.meta["error"][:80]] = self.errors.get(op.meta["error"][:80], 0) + 1
                        self.history.append(op)
                    if op.status == FAILED:
                        time.sleep(0.05)    # that member is down: do not spin
                    continue
                op.complete = self.now()
                op.meta["rev"] = resp.header.revision
                if op.kind == GET:
                    op.output = resp.kvs[0].value if resp.kvs else None
                    if resp.kvs:
                        op.meta["mod_rev"] = resp.kvs[0].mod_revision
                    last_seen[key] = op.output
                elif op.kind == CAS:
                    if resp.succeeded:
                        op.output = (True, None)
                        last_seen[key] = value
                    else:
                        kvs = resp.responses[0].response_range.kvs
                        op.output = (False, kvs[0].value if kvs else None)
                        last_seen[key] = op.output[1]
                else:
                    last_seen[key] = value
                with self.lock:
                    self.history.append(op)
        finally:
            for ch in chans:
                ch.close()

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for op in self.history:
            k = f"{op.kind} {op.status}"
            out[k] = out.get(k, 0) + 1
        return dict(sorted(out.items()))


def start_member(member, ready_timeout: float = 60.0) -> None:
    """(Re)starts a killed member with its command, data dir and ports, and waits until a
    serializable Range is answered. Unlike servers.Server._launch it never deletes the data
    dir when the start fails: a member that cannot restart is a finding, not a clean-up."""
    spawn(member)
    deadline = time.monotonic() + ready_timeout
    while True:
        if member.proc.poll() is not None:
            raise RuntimeError(f"{member.name} exited with {member.proc.returncode} on restart:\n{member.log_tail()}")
        ch = channel(member.endpoint)
        try:
            probe = ch.unary_unary("/etcdserverpb.KV/Range", request_serializer=lambda _: b"\n\x01a\x38\x01",
                                   response_deserializer=lambda b: b)   # key "a", serializable
            probe(None, timeout=1)
            return
        except grpc.RpcError:
            pass
        finally:
            ch.close()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{member.name} not serving {ready_timeout:.0f} s after restart:\n{member.log_tail()}")
        time.sleep(0.1)


def spawn(member) -> None:
    """Starts a stopped member's process (same command, data dir and ports); no waiting."""
    with open(member.log_path, "ab") as log:
        member.proc = subprocess.Popen(member.command(), stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)


def kill9(member) -> None:
    if member.proc is not None and member.proc.poll() is None:
        os.kill(member.proc.pid, signal.SIGKILL)
        member.proc.wait(timeout=10)


class Nemesis:
    """Kills and restarts members and restarts PostgreSQL, one action at a time: every
    `pause` seconds (uniform) one action; PostgreSQL is stopped (fast or immediate shutdown)
    and started again when `pg_every` seconds passed since the run began or since its last
    restart; else one of: a member killed again 0.05-1 s into its restart (10%), a member
    killed and PostgreSQL restarted while it is down (10%), a member frozen (SIGSTOP) for
    0.5-3 s (15%), one member (or, one time in four, two) killed with SIGKILL and restarted
    after 0.2-3 s (65%)."""

    def __init__(self, cluster, seed: int, clock, pause=(2.0, 6.0), pg_every: float = 25.0):
        self.cluster, self.clock = cluster, clock
        self.rng = random.Random(seed)
        self.pause, self.pg_every = pause, pg_every
        self.stop = threading.Event()
        self.log: list[str] = []
        self.error: str | None = None
        self.thread = threading.Thread(target=self._run, name="chaos-nemesis", daemon=True)

    def note(self, what: str) -> None:
        self.log.append(f"{self.clock():8.3f} {what}")

    def start(self) -> None:
        self.thread.start()

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(timeout=120)
        assert not self.thread.is_alive(), "the nemesis did not stop"

    def _run(self) -> None:
        last_pg = 0.0
        try:
            while not self.stop.wait(self.rng.uniform(*self.pause)):
                members = self.cluster.members
                if self.clock() - last_pg > self.pg_every:
                    self._restart_postgres(immediate=self.rng.random() < 0.5, down=self.rng.uniform(1.0, 5.0))
                    last_pg = self.clock()
                    continue
                r = self.rng.random()
                if r < 0.1:
                    # Killed again while starting up / catching up from its applied index.
                    v = self.rng.choice(members)
                    kill9(v)
                    spawn(v)
                    again = self.rng.uniform(0.05, 1.0)
                    time.sleep(again)
                    kill9(v)
                    self.note(f"kill -9 {v.name}, restarted, kill -9 again {again:.2f} s into its start")
                    start_member(v)
                    self.note(f"{v.name} serving again")
                    continue
                if r < 0.2:
                    # PostgreSQL restarted while a member is down.
                    v = self.rng.choice(members)
                    kill9(v)
                    self.note(f"kill -9 {v.name}, then PostgreSQL restarted while it is down")
                    self._restart_postgres(immediate=self.rng.random() < 0.5, down=self.rng.uniform(0.5, 3.0))
                    start_member(v)
                    self.note(f"{v.name} serving again")
                    continue
                if r < 0.35:
                    v = self.rng.choice(members)
                    frozen = self.rng.uniform(0.5, 3.0)
                    os.kill(v.proc.pid, signal.SIGSTOP)
                    self.note(f"SIGSTOP {v.name}, {frozen:.1f} s frozen")
                    time.sleep(frozen)
                    os.kill(v.proc.pid, signal.SIGCONT)
                    self.note(f"SIGCONT {v.name}")
                    continue
                victims = self.rng.sample(members, 2 if self.rng.random() < 0.25 else 1)
                down = self.rng.uniform(0.2, 3.0)
                for v in victims:
                    kill9(v)
                self.note(f"kill -9 {', '.join(v.name for v in victims)}, {down:.1f} s down")
                time.sleep(down)
                for v in victims:
                    start_member(v)
                    self.note(f"{v.name} serving again")
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = f"{e}"
            self.note(f"nemesis error: {e}")

    def _restart_postgres(self, immediate: bool, down: float) -> None:
        """Fast shutdown (SIGINT: sessions ended, checkpoint) or immediate (SIGQUIT: no
        checkpoint, crash recovery from the WAL at the next start), then a start on the same
        data dir and port."""
        pg = self.cluster.pg
        if immediate:
            self.note(f"postgres stop (immediate), {down:.1f} s down")
            os.kill(pg.proc.pid, signal.SIGQUIT)
            pg.proc.wait(timeout=30)
            pg.proc = None
        else:
            self.note(f"postgres stop (fast), {down:.1f} s down")
            pg.stop_keeping_data()
        time.sleep(down)
        pg.launch()
        self.note("postgres started")


@dataclass(frozen=True)
class Event:
    kind: int
    key: bytes
    value: bytes
    mod_revision: int
    create_revision: int
    version: int


def _event(e) -> Event:
    return Event(e.type, e.kv.key, e.kv.value, e.kv.mod_revision, e.kv.create_revision, e.kv.version)


class ResumingWatch:
    """A Watch over the whole keyspace on one member, from revision 1, reopened from the last
    delivered revision + 1 whenever the stream breaks."""

    def __init__(self, api, member):
        self.api, self.member = api, member
        self.events: list[Event] = []
        self.reopened = 0
        self.problems: list[str] = []
        self.stop = threading.Event()
        self.call = None
        self.thread = threading.Thread(target=self._run, name=f"chaos-watch-{member.name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            start = self.events[-1].mod_revision + 1 if self.events else 1
            ch = channel(self.member.endpoint)
            try:
                done = threading.Event()

                def requests():
                    yield self.api.request("Watch.Watch", {"create_request": {"key": b"\0", "range_end": b"\0",
                                                                              "start_revision": start}})
                    done.wait()
                self.call = self.api.callable(ch, "Watch.Watch")(requests())
                try:
                    for resp in self.call:
                        if resp.canceled:
                            self.problems.append(f"canceled at {start}: {resp.cancel_reason}")
                            break
                        for e in resp.events:
                            ev = _event(e)
                            if self.events and ev.mod_revision <= self.events[-1].mod_revision:
                                self.problems.append(f"revision went back: {self.events[-1]} then {ev}")
                            self.events.append(ev)
                except grpc.RpcError:
                    pass
                finally:
                    done.set()
            finally:
                ch.close()
            if not self.stop.is_set():
                self.reopened += 1
                self.stop.wait(0.2)

    def wait_for(self, revision: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.events and self.events[-1].mod_revision >= revision:
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self.stop.set()
        if self.call is not None:
            self.call.cancel()
        self.thread.join(timeout=10)


def watch_from_1(api, member, revision: int, timeout: float = 60.0) -> list[Event]:
    """A fresh Watch over everything from revision 1 on `member`, read up to `revision`."""
    ch = channel(member.endpoint)
    done = threading.Event()

    def requests():
        yield api.request("Watch.Watch", {"create_request": {"key": b"\0", "range_end": b"\0", "start_revision": 1}})
        done.wait()
    call = api.callable(ch, "Watch.Watch")(requests(), timeout=timeout)
    events: list[Event] = []
    try:
        for resp in call:
            assert not resp.canceled, f"watch from 1 on {member.name} canceled: {resp.cancel_reason}"
            events.extend(_event(e) for e in resp.events)
            if events and events[-1].mod_revision >= revision:
                break
    finally:
        done.set()
        call.cancel()
        ch.close()
    return events


def converge(api, members, timeout: float = 60.0) -> int:
    """Waits until every member answers a linearizable Range at the same revision."""
    deadline = time.monotonic() + timeout
    chans = [channel(m.endpoint) for m in members]
    try:
        while True:
            revs = []
            for ch in chans:
                try:
                    revs.append(api.callable(ch, "KV.Range")(api.request("KV.Range", key=b"\0"), timeout=10).header.revision)
                except grpc.RpcError as e:
                    revs.append(f"{e.code().name}")
            if len(set(revs)) == 1 and isinstance(revs[0], int):
                return revs[0]
            assert time.monotonic() < deadline, f"members did not converge in {timeout:.0f} s: {revs}"
            time.sleep(0.2)
    finally:
        for ch in chans:
            ch.close()


def hash_kv(api, member, revision: int) -> tuple[int, int]:
    ch = channel(member.endpoint)
    try:
        r = api.callable(ch, "Maintenance.HashKV")(api.request("Maintenance.HashKV", revision=revision), timeout=30)
        return r.hash, r.compact_revision
    finally:
        ch.close()


@dataclass
class Verdict:
    revision: int = 0
    problems: list[str] = field(default_factory=list)
    checker: lin.Result | None = None


def verify(api, members, workload: Workload, watches: list[ResumingWatch], start_revision: int) -> Verdict:
    """The checks of the module comment; problems are collected, not raised, so that one run
    reports everything it found."""
    v = Verdict()
    v.revision = rev = converge(api, members)
    hashes = {m.name: hash_kv(api, m, rev) for m in members}
    if len(set(hashes.values())) != 1:
        v.problems.append(f"HashKV at revision {rev} differs: {hashes}")
    streams = {m.name: watch_from_1(api, m, rev) for m in members}
    reference_name = members[0].name
    events = streams[reference_name]
    for name, evs in streams.items():
        if evs != events:
            v.problems.append(f"watch from 1 on {name} differs from {reference_name}'s: {_first_difference(events, evs)}")
    for w in watches:
        if not w.wait_for(rev, 30):
            v.problems.append(f"resumed watch on {w.member.name} stopped at "
                              f"{w.events[-1].mod_revision if w.events else 0} < {rev}")
        got = [e for e in w.events if e.mod_revision <= rev]
        if got != events:
            v.problems.append(f"resumed watch on {w.member.name} ({w.reopened} reopenings) differs: "
                              f"{_first_difference(events, got)}")
        v.problems.extend(f"resumed watch on {w.member.name}: {p}" for p in w.problems)
    # Every revision after the start is one put of the workload: no gap, nothing else.
    ours = [e for e in events if e.mod_revision > start_revision]
    if [e.mod_revision for e in ours] != list(range(start_revision + 1, rev + 1)):
        v.problems.append(f"events after {start_revision} are not one per revision up to {rev}")
    at_revision = {e.mod_revision: e for e in ours}
    written = {}
    for e in ours:
        if e.value in written:
            v.problems.append(f"value {e.value!r} written twice: {written[e.value]} and {e}")
        written[e.value] = e
    for op in workload.history:
        if op.kind == GET and op.status == OK and op.output is not None:
            e = written.get(op.output)
            if e is None or e.mod_revision != op.meta.get("mod_rev") or e.key != op.key:
                v.problems.append(f"read returned a value/revision the events do not have: {op.describe()} (event {e})")
            continue
        if op.kind == GET:
            continue
        acked = op.status == OK and (op.kind == PUT or op.output[0])
        e = written.get(op.value)
        if acked:
            got = at_revision.get(op.meta["rev"])
            if got is None or got.value != op.value or got.key != op.key:
                v.problems.append(f"acknowledged write lost: {op.describe()}; event at its revision: {got}")
        elif op.status == FAILED and e is not None:
            v.problems.append(f"a write that failed to connect was applied: {op.describe()} -> {e}")
        elif op.status == OK and e is not None:
            v.problems.append(f"a CAS that did not swap was applied: {op.describe()} -> {e}")
    v.checker = lin.check(workload.history, budget_s=120)
    if v.checker.ok is not True:
        v.problems.append("history " + ("NOT linearizable" if v.checker.ok is False else "undecided") +
                          ":\n" + v.checker.report())
    return v


def _first_difference(a: list[Event], b: list[Event]) -> str:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return f"event {i}: {x} vs {y}"
    return f"lengths {len(a)} vs {len(b)}" + (f"; next {a[len(b)]}" if len(a) > len(b) else
                                              f"; extra {b[len(a)]}" if len(b) > len(a) else "")


def save_history(path: str, history: list[Op], nemesis_log: list[str], seed: int) -> None:
    def enc(x):
        if isinstance(x, bytes):
            return {"b": x.decode(errors="surrogateescape")}
        if isinstance(x, tuple):
            return [enc(i) for i in x]
        return x
    with open(path, "w") as f:
        json.dump({"seed": seed, "nemesis": nemesis_log,
                   "history": [{"client": op.client, "key": enc(op.key), "kind": op.kind, "status": op.status,
                                "invoke": op.invoke, "complete": op.complete, "value": enc(op.value),
                                "expected": enc(op.expected), "output": enc(op.output), "meta": op.meta}
                               for op in history]}, f)


def load_history(path: str) -> list[Op]:
    def dec(x):
        if isinstance(x, dict) and set(x) == {"b"}:
            return x["b"].encode(errors="surrogateescape")
        if isinstance(x, list):
            return tuple(dec(i) for i in x)
        return x
    with open(path) as f:
        data = json.load(f)
    return [Op(d["client"], dec(d["key"]), d["kind"], d["status"], d["invoke"], d["complete"], dec(d["value"]),
               dec(d["expected"]), dec(d["output"]), d["meta"]) for d in data["history"]]


if __name__ == "__main__":
    import argparse
    p = argparse.ArgumentParser(description="Re-check a history saved by test_cluster_chaos.py")
    p.add_argument("--check", required=True, help="history JSON")
    args = p.parse_args()
    result = lin.check(load_history(args.check))
    print(result.report())
    raise SystemExit(0 if result.ok else 1)
