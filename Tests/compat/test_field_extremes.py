"""Extreme values in every numeric request field: etcd's answer or a clear gRPC error, never a crash.

The cases are generated from the protobuf descriptors (issue 17): every method of every
service (KV, Watch, Lease, Cluster, Maintenance, Auth), its request message walked
recursively (Txn's compares and RequestOps, one nested Txn level, Watch's create / cancel
requests, auth Permission), and every int32/int64/uint32/uint64/sint/fixed/enum field found
gets 0, 1, -1, the type's minimum and maximum (UInt64.max and the Int64 bit patterns for
unsigned 64-bit fields; one past the last value and the Int32 extremes for enums) in an
otherwise valid request. A field added to Protos/ later is covered without editing this file.

A real etcd 3.4.23 answers every case once (module fixture); the first target (conftest's
engine_independent: validation lies above the engine) then gets the same sequence on fresh servers and must give the same normalized answer (normalize.py), or,
where etcd itself died, any clear answer. After every case the candidate must still be alive
(`proc.poll()`) and answer a Range on a new connection; at the end every acknowledged write
(each case writes under its own key) must still be there. A server that dies is restarted on
its data dir and the case is recorded. The table of cases where etcd died (and any failure)
is printed and written to FIELD_EXTREMES_TABLE ($TMPDIR/rusd-field-extremes.md); the
committed copy is Tests/compat/field-extremes.md.
"""
from __future__ import annotations

import copy
import os
import queue
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor as D
from google.protobuf import message_factory

import servers
from differential import error_outcome
from etcd_api import PACKAGE, STREAM_STREAM, UNARY_STREAM, to_dict
from normalize import TargetState, normalize
from watch_streams import flatten

pytestmark = pytest.mark.engine_independent   # request validation lies above the engine: first target only

SERVICES = ["KV", "Watch", "Lease", "Cluster", "Maintenance", "Auth"]
# RPCs of the API etcd 3.4 lacks (it answers UNIMPLEMENTED): survival is checked, answers not.
NOT_IN_34 = {"Maintenance.Downgrade", "Auth.AuthStatus"}
I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1
I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1
U32_MAX, U64_MAX = (1 << 32) - 1, (1 << 64) - 1
PREFIX = "/fx/"
# RPCs that change nothing a later case sees (skipped when the reference replays its cases).
READ_ONLY = {"KV.Range", "Watch.Watch", "Lease.LeaseKeepAlive", "Lease.LeaseTimeToLive",
             "Maintenance.HashKV", "Maintenance.MoveLeader"}
CALL_TIMEOUT = 10
QUIET = 0.4           # a stream is read until it has been quiet this long (CI is loaded)

F = D.FieldDescriptor
SIGNED64 = {F.TYPE_INT64, F.TYPE_SINT64, F.TYPE_SFIXED64}
SIGNED32 = {F.TYPE_INT32, F.TYPE_SINT32, F.TYPE_SFIXED32}
UNSIGNED64 = {F.TYPE_UINT64, F.TYPE_FIXED64}
UNSIGNED32 = {F.TYPE_UINT32, F.TYPE_FIXED32}


def extremes(fd: D.FieldDescriptor) -> list[int] | None:
    """The values a numeric field gets; None for a field that is not numeric."""
    if fd.type in SIGNED64:
        return [0, 1, -1, I64_MIN, I64_MAX]
    if fd.type in SIGNED32:
        return [0, 1, -1, I32_MIN, I32_MAX]
    if fd.type in UNSIGNED64:   # -1, Int64.min and Int64.max as bit patterns
        return [0, 1, U64_MAX, 1 << 63, I64_MAX]
    if fd.type in UNSIGNED32:
        return [0, 1, U32_MAX, 1 << 31]
    if fd.type == F.TYPE_ENUM:
        top = max(v.number for v in fd.enum_type.values)
        return [0, 1, -1, top + 1, I32_MIN, I32_MAX]
    return None


def is_repeated(fd: D.FieldDescriptor) -> bool:
    r = getattr(fd, "is_repeated", None)
    return fd.label == fd.LABEL_REPEATED if r is None else r


# -- valid baselines -------------------------------------------------------------------------
# Each message a walk passes through starts from one of these (keys under PREFIX; `{n}` is
# replaced by the case number, so every write goes to its own key and every lease ID is new).
BASE: dict[str, dict] = {
    "RangeRequest": {"key": PREFIX, "range_end": PREFIX[:-1] + "0"},
    "PutRequest": {"key": PREFIX + "put/{n}", "value": "v{n}"},
    "DeleteRangeRequest": {"key": PREFIX + "del/{n}"},
    "Compare": {"key": PREFIX + "put/0", "result": "EQUAL", "target": "VERSION", "version": 0},
    "WatchCreateRequest": {"key": PREFIX, "range_end": PREFIX[:-1] + "0"},
    "LeaseGrantRequest": {"TTL": 600, "ID": "{lease}"},
    "LeaseTimeToLiveRequest": {"ID": "{lease}"},
    "MemberUpdateRequest": {"peerURLs": ["http://127.0.0.1:1"]},
    "AlarmRequest": {"action": "GET"},
    "DowngradeRequest": {"version": "3.4.0"},
    "AuthRoleGrantPermissionRequest": {"name": "fxrole", "perm": {"key": PREFIX}},
    "TxnRequest": {},
}
# Where rusd answers differently from etcd 3.4.23 on purpose: (rpc, path) -> (predicate on
# the value, rusd's exact answer, why). The test checks that rusd gives exactly that answer.
DELIBERATE = {
    ("Auth.RoleGrantPermission", "perm.permType"): (
        lambda v: v not in (0, 1, 2),
        {"error": {"code": "INVALID_ARGUMENT", "details": "etcdserver: invalid permission type"}},
        "etcd stores a permission type outside READ/WRITE/READWRITE, which then grants nothing; "
        "rusd refuses it"),
}
# Compare's target_union: the target that makes the field set the one compared.
COMPARE_TARGET = {"version": "VERSION", "create_revision": "CREATE", "mod_revision": "MOD",
                  "lease": "LEASE", "value": "VALUE"}
# A failing compare, so that a Txn's failure branch runs.
FAILING_COMPARE = {"key": PREFIX + "put/0", "result": "LESS", "target": "VERSION", "version": 0}


def base_of(desc: D.Descriptor) -> dict:
    return copy.deepcopy(BASE.get(desc.name, {}))


@dataclass
class Case:
    n: int
    rpc: str
    path: str            # e.g. "success[0].request_range.limit"
    value: int
    request: dict        # the whole request, as dicts (etcd_api.build)

    @property
    def name(self) -> str:
        return f"{self.rpc} {self.path}={self.value}"


def _field_paths(desc: D.Descriptor, seen: tuple[str, ...]):
    """(path, field descriptor, message dict builder steps) for every numeric field below desc.

    Yields (steps, fd): steps is a list of (descriptor, field descriptor) from desc down to the
    message holding the numeric field fd."""
    for fd in desc.fields:
        if fd.type == F.TYPE_MESSAGE:
            sub = fd.message_type
            if sub.full_name.startswith("google.") or seen.count(sub.full_name) >= 2:
                continue   # recursive types (Txn in a RequestOp) are walked one level deep
            for steps, leaf in _field_paths(sub, seen + (sub.full_name,)):
                yield [(desc, fd), *steps], leaf
        elif extremes(fd) is not None:
            yield [(desc, fd)], fd


def _build(steps, leaf_value) -> dict:
    """The request dict for one walk: baselines all the way down, the leaf field set."""
    desc, fd = steps[0]
    msg = base_of(desc)
    if len(steps) == 1:
        if desc.name == "Compare" and fd.name in COMPARE_TARGET:
            msg.pop("version", None)
            msg["target"] = COMPARE_TARGET[fd.name]
        msg[fd.name] = [leaf_value] if is_repeated(fd) else leaf_value
        return msg
    child = _build(steps[1:], leaf_value)
    if desc.name == "TxnRequest" and fd.name == "failure":
        msg["compare"] = [copy.deepcopy(FAILING_COMPARE)]
    msg[fd.name] = [child] if is_repeated(fd) else child
    return msg


def _path_text(steps) -> str:
    return ".".join(fd.name + ("[0]" if is_repeated(fd) and i < len(steps) - 1 else "")
                    for i, (_, fd) in enumerate(steps))


def _fill(node, n: int):
    """Replaces the `{n}` / `{lease}` placeholders of a baseline."""
    if isinstance(node, dict):
        return {k: _fill(v, n) for k, v in node.items()}
    if isinstance(node, list):
        return [_fill(v, n) for v in node]
    if node == "{lease}":
        return 7_000_000 + n
    if isinstance(node, str):
        return node.replace("{n}", str(n))
    return node


def generate_cases(api) -> list[Case]:
    cases: list[Case] = []
    for service in SERVICES:
        sd = api.pool.FindServiceByName(f"{PACKAGE}.{service}")
        for method in sd.methods:
            rpc = f"{service}.{method.name}"
            for steps, leaf in _field_paths(method.input_type, (method.input_type.full_name,)):
                for value in extremes(leaf):
                    n = len(cases) + 1
                    req = _fill(_build(steps, value), n)
                    cases.append(Case(n, rpc, _path_text(steps), value, req))
    return cases


# -- running cases against one server --------------------------------------------------------
class Runner:
    """One server, its channel and normalization state; runs cases and survives crashes."""

    def __init__(self, api, server: servers.Server):
        self.api, self.server = api, server
        self.state = TargetState()
        self.channel = None
        self.crashes: dict[int, str] = {}     # case number -> what happened
        self.acked: dict[str, str] = {}       # key -> value of every acknowledged put
        self.done: list[Case] = []            # cases run so far, in order
        self.may_replay = False               # the reference may start over (see _restart)
        self._connect()

    def _connect(self):
        if self.channel is not None:
            self.channel.close()
        self.channel = grpc.insecure_channel(self.server.endpoint)

    def close(self):
        if self.channel is not None:
            self.channel.close()

    def call(self, rpc: str, request: dict, timeout: float = CALL_TIMEOUT):
        msg = self.api.request(rpc, request)
        stub = self.api.callable(self.channel, rpc)
        if rpc in STREAM_STREAM:
            return self._stream(stub, msg, rpc)
        try:
            if rpc in UNARY_STREAM:
                resps = [to_dict(r) for r in stub(msg, timeout=timeout)]
                return {"ok": {"messages": len(resps)}}
            raw = stub(msg, timeout=timeout)
            return {"ok": to_dict(raw)}
        except grpc.RpcError as e:
            return error_outcome(e)

    def _stream(self, stub, msg, rpc: str) -> dict:
        """Sends one message on a new stream (a Watch cancel first creates a watch to cancel);
        gathers the answers until the stream is quiet."""
        requests: queue.Queue = queue.Queue()
        if rpc == "Watch.Watch" and msg.HasField("cancel_request"):
            requests.put(self.api.request("Watch.Watch", {"create_request": {"key": PREFIX + "w"}}))
        requests.put(msg)
        answers: list = []
        ended = threading.Event()

        def gen():
            while True:
                item = requests.get()
                if item is None:
                    return
                yield item

        call = stub(gen(), timeout=30)

        def read():
            try:
                for r in call:
                    answers.append(to_dict(r))
            except grpc.RpcError as e:
                if not ended.is_set():
                    answers.append({"stream_error": error_outcome(e)["error"]})
            finally:
                ended.set()

        t = threading.Thread(target=read, daemon=True)
        t.start()
        deadline = time.monotonic() + 3
        seen = -1
        while time.monotonic() < deadline:   # wait for a first answer, then for quiet
            if ended.wait(QUIET):
                break
            if answers and len(answers) == seen:
                break
            seen = len(answers)
        ended.set()
        requests.put(None)
        call.cancel()
        t.join(timeout=5)
        if rpc == "Watch.Watch":
            return {"ok": {"items": flatten([normalize(rpc, {"ok": a}, None, self.state)["ok"]
                                             if "stream_error" not in a else a for a in answers])}}
        return {"ok": {"items": [normalize(rpc, {"ok": a}, None, self.state)["ok"]
                                 if "stream_error" not in a else a for a in answers]}}

    def alive(self) -> str | None:
        """None when the process runs and a Range on a new connection answers; else why not."""
        proc = self.server.proc
        if proc is None or proc.poll() is not None:
            return f"exited with {None if proc is None else proc.returncode}"
        ch = grpc.insecure_channel(self.server.endpoint)
        try:
            stub = self.api.callable(ch, "KV.Range")
            stub(self.api.request("KV.Range", key=b"\0", count_only=True), timeout=5)
            return None
        except grpc.RpcError as e:
            return f"Range on a new connection: {e.code().name} {e.details()}"
        finally:
            ch.close()

    def run(self, case: Case) -> dict:
        self.done.append(case)
        out = self.call(case.rpc, case.request)
        if case.rpc not in STREAM_STREAM:
            out = normalize(case.rpc, out, case.request, self.state)
        if "ok" in out:
            self._record_writes(case.rpc, case.request, out["ok"])
        problem = self.alive()
        if problem is not None:
            self.crashes[case.n] = f"{_cause(self.server.log_tail(80))} ({problem})"
            out = {"crashed": problem}
            try:
                self._restart()
            except servers.ServerStartError as e:
                raise AssertionError(f"{case.name}: {self.server.target} died "
                                     f"({self.crashes[case.n]}) and did not restart on its data "
                                     f"dir: {str(e).splitlines()[0][:200]}") from None
        self._cleanup(case)
        return out

    def _record_writes(self, rpc: str, req: dict, resp: dict) -> None:
        if rpc == "KV.Put":
            self.acked[req["key"]] = req["value"]
        elif rpc == "KV.Txn":
            branch = req.get("success" if resp.get("succeeded") else "failure") or []
            for op in branch:
                if "request_put" in op:
                    self.acked[op["request_put"]["key"]] = op["request_put"]["value"]

    def _cleanup(self, case: Case) -> None:
        """Alarms raised by a case are disarmed (a NOSPACE alarm would refuse later writes)."""
        if case.rpc != "Maintenance.Alarm":
            return
        got = self.call("Maintenance.Alarm", {"action": "GET"})
        for a in (got.get("ok") or {}).get("alarms") or []:
            self.call("Maintenance.Alarm", {"action": "DEACTIVATE", "memberID": a["memberID"],
                                            "alarm": a["alarm"]})

    def _restart(self) -> None:
        """Restarts the server on its data dir. etcd dies in its applier on some cases, and
        the committed entry kills it again on every restart: the reference then starts over
        on a fresh data dir and replays the cases that did not kill it (answers ignored), so
        its state keeps matching the candidate's. A candidate must restart on its data dir."""
        if not self.may_replay:
            self.server.restart()
            self._connect()
            return
        self.server.stop()
        self.server.start()
        self._connect()
        prepare(self)
        for c in self.done:
            if c.n not in self.crashes and c.rpc not in READ_ONLY:
                self.call(c.rpc, c.request)
                self._cleanup(c)

    def missing_writes(self) -> list[str]:
        got = self.call("KV.Range", {"key": PREFIX, "range_end": PREFIX[:-1] + "0"})
        if "ok" not in got:
            return [f"final Range failed: {got}"]
        have = {kv["key"]: kv["value"] for kv in got["ok"]["kvs"]}
        return [f"{k}: acknowledged {v!r}, now {have.get(k)!r}"
                for k, v in self.acked.items() if have.get(k) != v]


def prepare(runner: Runner) -> None:
    """State every case may rely on: a role for the permission cases."""
    runner.call("Auth.RoleAdd", {"name": "fxrole"})


def run_all(api, server: servers.Server, cases: list[Case],
            reference: bool = False) -> tuple[list[dict], Runner]:
    runner = Runner(api, server)
    runner.may_replay = reference
    prepare(runner)
    outcomes = [runner.run(c) for c in cases]
    return outcomes, runner


# -- fixtures and the table ------------------------------------------------------------------
@dataclass
class Table:
    cases: list[Case]
    rows: dict[str, dict[int, str]] = field(default_factory=dict)   # target -> case -> text
    reference: list[dict] = field(default_factory=list)
    etcd_crashes: dict[int, str] = field(default_factory=dict)
    _thread: threading.Thread | None = None
    _error: BaseException | None = None

    def start_reference(self, api) -> None:
        """etcd answers every case once, in the background (while the first candidate runs)."""
        def run():
            try:
                [etcd] = servers.start_servers(["etcd"])
                try:
                    self.reference, runner = run_all(api, etcd, self.cases, reference=True)
                    self.etcd_crashes = dict(runner.crashes)
                    runner.close()
                finally:
                    etcd.stop()
            except BaseException as e:  # noqa: BLE001 - re-raised by wait_reference
                self._error = e
        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def wait_reference(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error

    def markdown(self) -> str:
        targets = sorted(self.rows)
        fields = {(c.rpc, c.path) for c in self.cases}
        lines = [f"{len(self.cases)} cases: {len(fields)} numeric fields of the request messages "
                 f"of {', '.join(SERVICES)} (generated from the descriptors), each with 0, 1, -1 "
                 "and the type's extremes.", ""]
        shown = sorted(set(self.etcd_crashes) | {n for r in self.rows.values() for n in r})
        if not shown:
            return "\n".join(lines + ["etcd 3.4.23 and rusd survived every case.", ""])
        lines += ["| request field | values | etcd 3.4.23 | " + " | ".join(targets) + " |",
                  "|---|---|---|" + "---|" * len(targets)]
        groups: dict[tuple, list[int]] = {}   # cases of one field with the same cells
        for n in shown:
            c = self.cases[n - 1]
            etcd = (f"dies: {self.etcd_crashes[n].split(' (')[0][:80]}" if n in self.etcd_crashes
                    else _brief(self.reference[n - 1]) if self.reference else "answers")
            cells = tuple([etcd] + [self.rows[t].get(n, "same as etcd") for t in targets])
            groups.setdefault((c.rpc, c.path, cells), []).append(c.value)
        for (rpc, path, cells), values in groups.items():
            lines.append(f"| `{rpc}` `{path}` | {', '.join(map(str, values))} | "
                         + " | ".join(x.replace("|", "/") for x in cells) + " |")
        notes = sorted({f"- Deliberate: `{rpc}` `{path}`: {rule[2]}."
                        for (rpc, path), rule in DELIBERATE.items()
                        if any(c.rpc == rpc and c.path == path and rule[0](c.value) for c in self.cases)})
        return "\n".join(lines + [""] + notes + [""])


@pytest.fixture(scope="module")
def table(api):
    t = Table(generate_cases(api))
    t.start_reference(api)
    yield t
    t.wait_reference()
    text = t.markdown()
    path = os.environ.get("FIELD_EXTREMES_TABLE") or os.path.join(tempfile.gettempdir(),
                                                                   "rusd-field-extremes.md")
    Path(path).write_text("# Extreme values in numeric request fields\n\n"
                          "Generated by `Tests/compat/test_field_extremes.py`.\n\n" + text)
    print("\n" + text + f"\n(written to {path})")


def test_descriptor_walk_covers_known_fields(api):
    """The walk finds fields at every depth this file relies on (so a broken walk fails)."""
    paths = {(c.rpc, c.path) for c in generate_cases(api)}
    for expected in [("KV.Range", "limit"), ("KV.Txn", "compare[0].mod_revision"),
                     ("KV.Txn", "success[0].request_range.limit"),
                     ("KV.Txn", "failure[0].request_txn.success[0].request_range.revision"),
                     ("Watch.Watch", "create_request.filters"),
                     ("Watch.Watch", "cancel_request.watch_id"), ("Lease.LeaseKeepAlive", "ID"),
                     ("Cluster.MemberRemove", "ID"), ("Maintenance.Alarm", "memberID"),
                     ("Auth.RoleGrantPermission", "perm.permType")]:
        assert expected in paths, f"{expected} not generated"


def test_field_extremes(api, table, target):
    """Every case on the candidate: same answer as etcd (or a clear one where etcd died), alive
    after each, every acknowledged write there at the end."""
    if target == "etcd":
        [cand] = servers.start_servers(["etcd"])
    else:
        [cand] = servers.start_servers([target])
    try:
        outcomes, runner = run_all(api, cand, table.cases, reference=target == "etcd")
        table.wait_reference()
        rows = table.rows.setdefault(target, {})
        failures = []
        for c, ref, got in zip(table.cases, table.reference, outcomes):
            if "crashed" in got:
                rows[c.n] = "**dies**"
                failures.append(f"{c.name}: {target} {runner.crashes[c.n]}")
            elif c.n in table.etcd_crashes:
                rows[c.n] = "survives: " + _brief(got)
            elif c.rpc in NOT_IN_34:
                continue
            elif deliberate(c) is not None:
                _, expected, why = deliberate(c)
                rows[c.n] = f"{_brief(got)} (deliberate, see below)"
                if got != expected:
                    failures.append(f"{c.name}: expected {expected} (deliberate), {target}: {_short(got)}")
            elif ref != got:
                rows[c.n] = "differs"
                failures.append(f"{c.name}:\n  etcd: {_short(ref)}\n  {target}: {_short(got)}")
        missing, acked = runner.missing_writes(), dict(runner.acked)
        runner.close()
    finally:
        cand.stop()
    assert acked, "no case's write was acknowledged: the final check would check nothing"
    assert not missing, "acknowledged writes lost:\n" + "\n".join(missing)
    assert not failures, f"{len(failures)} of {len(table.cases)} cases failed:\n" + "\n".join(failures)


def deliberate(c: Case):
    rule = DELIBERATE.get((c.rpc, c.path))
    return rule if rule is not None and rule[0](c.value) else None


def _brief(outcome: dict) -> str:
    if "error" in outcome:
        return f"{outcome['error']['code']} \"{outcome['error']['details']}\""
    return "OK"


def _short(v) -> str:
    s = repr(v)
    return s if len(s) < 600 else s[:600] + "..."


def _cause(log: str) -> str:
    """The line of a server log that says why it died (Go panic, Swift trap), else its end."""
    for line in log.splitlines():
        if line.startswith("panic:") or "Fatal error" in line or "fatal error" in line:
            return line.strip()[:200]
        if " C | " in line:   # etcd's critical log line before it exits
            return line.split(" C | ", 1)[1].strip()[:200]
    return " / ".join(log.splitlines()[-2:])[:200]
