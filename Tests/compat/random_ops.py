"""Seeded random operation sequences applied to both servers in lockstep, every answer compared.

An operation is a plain JSON-able dict, so a failing sequence can be printed, saved, replayed
(COMPAT_REPLAY=file) and shrunk. Operations are generated one at a time from the seed and
from etcd's previous answers (current and compacted revision), then frozen: replaying the
list sends exactly the same requests.

Kinds: Put (prev_kv, lease, ignore_value, ignore_lease), DeleteRange, Range with random
options (ranges, limit, revision incl. compacted/future, sort, keys_only, count_only,
serializable, min/max revisions), Txn with random compares and nested Txn, Compact, Watch from
a random revision (history replay or compacted), and leases (grant/revoke/time-to-live/list).
"""
from __future__ import annotations

import json
import random
import sys
import time
from dataclasses import dataclass

from differential import Difference, Pair
from watch_streams import PairWatch

PREFIX = "/r/"
KEYS = [f"{PREFIX}k{i:02d}" for i in range(32)]
LEASE_IDS = [7000 + i for i in range(6)]
SORT_ORDERS = ["NONE", "ASCEND", "DESCEND"]
SORT_TARGETS = ["KEY", "VERSION", "CREATE", "MOD", "VALUE"]
COMPARE_TARGETS = {"VERSION": "version", "CREATE": "create_revision", "MOD": "mod_revision",
                   "VALUE": "value", "LEASE": "lease"}
RESULTS = ["EQUAL", "GREATER", "LESS", "NOT_EQUAL"]
READ_ONLY = {"KV.Range", "Lease.LeaseTimeToLive", "Lease.LeaseLeases"}


def prefix_end(prefix: str) -> str:
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


@dataclass
class GenState:
    rev: int = 1
    compacted: int = 0


KINDS = ("put", "delete", "range", "txn", "compact", "watch", "lease")


class Generator:
    """Draws operations; `kinds` restricts them (e.g. while a server lacks leases)."""

    def __init__(self, seed: int, kinds: tuple[str, ...] = KINDS):
        unknown = set(kinds) - set(KINDS)
        if unknown or not kinds:
            raise ValueError(f"random op kinds must be among {KINDS}, got {kinds}")
        self.rng = random.Random(seed)
        self.state = GenState()
        self.kinds = set(kinds)

    # -- pieces ----------------------------------------------------------------------------
    def key(self) -> str:
        return self.rng.choice(KEYS)

    def value(self) -> str:
        r = self.rng.random()
        if r < 0.05:
            return ""
        if r < 0.07:
            return "x" * self.rng.randint(500, 3000)
        return "".join(self.rng.choice("abcdefgh") for _ in range(self.rng.randint(1, 8)))

    def key_range(self) -> dict:
        r = self.rng.random()
        if r < 0.4:
            return {"key": self.key()}
        if r < 0.7:
            a, b = sorted(self.rng.sample(KEYS, 2))
            if self.rng.random() < 0.1:
                a, b = b, a
            return {"key": a, "range_end": b}
        if r < 0.9:
            p = self.key()[: self.rng.randint(len(PREFIX), len(PREFIX) + 2)]
            return {"key": p, "range_end": prefix_end(p)}
        return {"key": self.key(), "range_end": "\0"}

    def revision(self) -> int:
        r = self.rng.random()
        if r < 0.6:
            return 0
        if r < 0.9:
            return self.rng.randint(max(1, self.state.compacted), self.state.rev)
        if r < 0.95:
            return self.rng.randint(1, max(1, self.state.compacted))
        return self.state.rev + self.rng.randint(1, 3)

    def put_req(self) -> dict:
        req = {"key": self.key(), "value": self.value()}
        if self.rng.random() < 0.3:
            req["prev_kv"] = True
        if self.rng.random() < 0.12:
            req["lease"] = self.rng.choice(LEASE_IDS)
        if self.rng.random() < 0.04:
            req["ignore_value"] = True
            req["value"] = ""
        if self.rng.random() < 0.04:
            req["ignore_lease"] = True
        return req

    def delete_req(self) -> dict:
        req = self.key_range()
        if self.rng.random() < 0.4:
            req["prev_kv"] = True
        return req

    def range_req(self) -> dict:
        req = self.key_range()
        rng = self.rng
        if rng.random() < 0.3:
            req["limit"] = rng.randint(0, 5)
        if rng.random() < 0.3:
            req["revision"] = self.revision()
        if rng.random() < 0.25:
            req["sort_order"] = rng.choice(SORT_ORDERS)
            req["sort_target"] = rng.choice(SORT_TARGETS)
            if req["sort_target"] != "KEY":
                req.pop("limit", None)   # ties are cut by Go's unstable sort (normalize.py "sort ties")
        if rng.random() < 0.1:
            req["keys_only"] = True
        if rng.random() < 0.1:
            req["count_only"] = True
        if rng.random() < 0.1:
            req["serializable"] = True
        for f in ("min_mod_revision", "max_mod_revision", "min_create_revision",
                  "max_create_revision"):
            if rng.random() < 0.04:
                req[f] = rng.randint(0, self.state.rev + 1)
        return req

    def compare(self) -> dict:
        target = self.rng.choice(list(COMPARE_TARGETS))
        c = {"target": target, "result": self.rng.choice(RESULTS), **self.key_range()}
        if c.get("range_end") and self.rng.random() < 0.5:
            del c["range_end"]
        if target == "VALUE":
            c["value"] = self.value()[:4]
        elif target == "LEASE":
            c["lease"] = self.rng.choice([0, *LEASE_IDS])
        else:
            c[COMPARE_TARGETS[target]] = self.rng.randint(0, self.state.rev + 1) if target != "VERSION" \
                else self.rng.randint(0, 4)
        return c

    def ops(self, depth: int) -> list[dict]:
        out = []
        for _ in range(self.rng.choice([0, 1, 1, 2, 2, 3, 4])):
            r = self.rng.random()
            if r < 0.4:
                out.append({"request_put": self.put_req()})
            elif r < 0.55:
                out.append({"request_delete_range": self.delete_req()})
            elif r < 0.93 or depth >= 2:
                out.append({"request_range": self.range_req()})
            else:
                out.append({"request_txn": self.txn_req(depth + 1)})
        return out

    def txn_req(self, depth: int = 0) -> dict:
        txn = {"compare": [self.compare() for _ in range(self.rng.choice([0, 1, 1, 2, 3]))],
               "success": self.ops(depth), "failure": self.ops(depth)}
        if depth == 0 and _has_from_key_delete(txn):
            _drop_ignore_flags(txn)
        return txn

    def watch_op(self) -> dict:
        rng = self.rng
        create = self.key_range()
        if create.get("range_end") == "\0" or create["key"] > create.get("range_end", "\xff"):
            create = {"key": create["key"]}
        start = (0 if rng.random() < 0.2 else
                 rng.randint(max(1, self.state.compacted - 2), self.state.rev + 1))
        if start:
            create["start_revision"] = start
        if rng.random() < 0.5:
            create["prev_kv"] = True
        filt = rng.choice([[], [], [], ["NOPUT"], ["NODELETE"]])
        if filt:
            create["filters"] = filt
        # Writes inside the watched range whose event ends the wait (the last one passes the
        # filter): every earlier event is delivered before it.
        key = create["key"]
        sentinel = [{"key": key, "value": self.value()}]
        compacted = 0 < start < self.state.compacted
        return {"rpc": "Watch.Watch", "create": create, "sentinel": sentinel,
                "sentinel_delete": filt == ["NOPUT"], "compacted": compacted}

    # -- one operation -------------------------------------------------------------------
    def kind(self) -> str:
        while True:
            r = self.rng.random()
            kind = ("put" if r < 0.30 else "delete" if r < 0.38 else "range" if r < 0.63 else
                    "txn" if r < 0.88 else "compact" if r < 0.89 else "watch" if r < 0.895 else
                    "lease")
            if kind in self.kinds:
                return kind

    def next(self) -> dict:
        kind = self.kind()
        if kind == "put":
            return {"rpc": "KV.Put", "req": self.put_req()}
        if kind == "delete":
            return {"rpc": "KV.DeleteRange", "req": self.delete_req()}
        if kind == "range":
            return {"rpc": "KV.Range", "req": self.range_req()}
        if kind == "txn":
            return {"rpc": "KV.Txn", "req": self.txn_req()}
        if kind == "compact":
            lo = max(1, self.state.compacted - 1)
            return {"rpc": "KV.Compact", "req": {"revision": self.rng.randint(lo, self.state.rev + 1),
                                                  "physical": self.rng.random() < 0.3}}
        if kind == "watch":
            return self.watch_op()
        lease = self.rng.choice(LEASE_IDS)
        r = self.rng.random()
        if r < 0.35:
            return {"rpc": "Lease.LeaseGrant", "req": {"ID": lease, "TTL": 3600}}
        if r < 0.6:
            return {"rpc": "Lease.LeaseRevoke", "req": {"ID": lease}}
        if r < 0.95:
            return {"rpc": "Lease.LeaseTimeToLive", "req": {"ID": lease, "keys": self.rng.random() < 0.5}}
        return {"rpc": "Lease.LeaseLeases", "req": {}}

    def observe(self, op: dict, ref: dict | None) -> None:
        """Updates the generator's view from etcd's answer (the candidate's is never used)."""
        if not ref or "ok" not in ref:
            return
        header = ref["ok"].get("header") or {}
        self.state.rev = max(self.state.rev, header.get("revision", 0))
        if op["rpc"] == "KV.Compact":
            self.state.compacted = max(self.state.compacted, op["req"]["revision"])


def _walk_ops(txn: dict):
    for branch in ("success", "failure"):
        for op in txn.get(branch, []):
            yield op
            if "request_txn" in op:
                yield from _walk_ops(op["request_txn"])


def _has_from_key_delete(txn: dict) -> bool:
    return any(op.get("request_delete_range", {}).get("range_end") == "\0"
               for op in _walk_ops(txn))


def _drop_ignore_flags(txn: dict) -> None:
    """etcd 3.4.23 crashes (panic "unexpected error during txn: etcdserver: key not found")
    on a Txn that deletes a key with a from-key DeleteRange (range_end "\\0", which its
    duplicate-key check does not see) and then puts it with ignore_value or ignore_lease.
    The reference cannot answer that, so the generator never sends it (docs/compatibility.md)."""
    for op in _walk_ops(txn):
        put = op.get("request_put")
        if put:
            put.pop("ignore_value", None)
            put.pop("ignore_lease", None)


def execute(pair: Pair, op: dict) -> dict | None:
    """Runs one op on both servers; raises Difference; returns etcd's answer (unary ops)."""
    if op["rpc"] == "Watch.Watch":
        run_watch(pair, op)
        return None
    ref, cand, _, _ = pair.send(op["rpc"], op["req"])
    pair.compare(op["rpc"], ref, cand, op["req"])
    return ref


def run_watch(pair: Pair, op: dict) -> None:
    with PairWatch(pair) as w:
        w.create(**op["create"])
        w.expect(1)   # the created response, before any write (its header revision is "now")
        if op["compacted"]:
            w.quiet(0.3)
            return
        last = None
        for put in op["sentinel"]:
            last = execute(pair, {"rpc": "KV.Put", "req": put})
        if op["sentinel_delete"]:
            last = execute(pair, {"rpc": "KV.DeleteRange", "req": {"key": op["sentinel"][-1]["key"]}})
        want = last["ok"]["header"]["revision"] if last and "ok" in last else None
        deadline = time.monotonic() + 5
        for s in w.streams:
            while time.monotonic() < deadline and not s.ended:
                if any(i.get("event", {}).get("kv", {}).get("mod_revision") == want
                       for i in s.items()):
                    break
                with s.cond:
                    s.cond.wait(0.02)
        w.quiet(0.0)


def run_sequence(pair: Pair, seed: int, count: int, ops: list[dict],
                 kinds: tuple[str, ...] = KINDS) -> None:
    """Generates and runs `count` ops from `seed`, appending each to `ops` before running it."""
    gen = Generator(seed, kinds)
    started = time.monotonic()
    for i in range(count):
        op = gen.next()
        ops.append(op)
        gen.observe(op, execute(pair, op))
        if (i + 1) % 50_000 == 0:   # long local runs (COMPAT_OPS=1000000): show progress
            print(f"random ops: {i + 1}/{count} after {time.monotonic() - started:.0f}s, "
                  f"revision {gen.state.rev}", file=sys.stderr, flush=True)


def replay(pair: Pair, ops: list[dict]) -> tuple[int, str] | None:
    """Replays frozen ops; returns (index, diff) of the first difference, or None."""
    for i, op in enumerate(ops):
        try:
            execute(pair, op)
        except Difference as d:
            return i, str(d)
    return None


def ddmin(ops: list[dict], fails, deadline: float) -> list[dict]:
    """Zeller's delta debugging: a smaller op list for which `fails(list)` still holds,
    stopping (with the best so far) at `deadline` (time.monotonic())."""
    n = 2
    while len(ops) >= 2 and time.monotonic() < deadline:
        chunk = max(1, len(ops) // n)
        subsets = [ops[i:i + chunk] for i in range(0, len(ops), chunk)]
        reduced = False
        for i in range(len(subsets)):
            if time.monotonic() >= deadline:
                return ops
            complement = [op for j, s in enumerate(subsets) if j != i for op in s]
            if complement and fails(complement):
                ops, n, reduced = complement, max(n - 1, 2), True
                break
        if not reduced:
            if n >= len(ops):
                break
            n = min(len(ops), n * 2)
    return ops


def dumps(ops: list[dict]) -> str:
    return json.dumps(ops, indent=None, separators=(",", ":"))
