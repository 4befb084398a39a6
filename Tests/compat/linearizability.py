"""A linearizability checker for histories of a key-value store used as one register per key.

A history is a list of `Op`s recorded by concurrent clients: what each asked (put a value, get,
compare-and-swap by Txn), when it was invoked and when its answer arrived (one monotonic clock
shared by all clients), and the outcome:

- ``ok``: the answer arrived; the operation took effect exactly once, between invoke and
  complete, and its output is known;
- ``failed``: a definite error (the request never reached a server, or was refused before
  taking effect): the operation did not take effect and is ignored;
- ``unknown``: no answer (timeout, connection lost, etcd's "request timed out"): it may or may
  not have taken effect, at any time after its invocation; its output is unknown.

`check(history)` decides whether some total order of the operations (1) respects real time
(an operation that completed before another was invoked comes first), and (2) is a legal
sequential history of a register per key (every get returns the latest value put, or absent).

Algorithm: keys are independent (a history is linearizable iff each key's sub-history is:
P-compositionality), so each key is checked alone. Per key, Wing & Gong's search with Lowe's
just-in-time linearization and memoization, the way Knossos' and Porcupine's checkers do it:
call and return events in time order in a doubly linked list; walking it from the front, an
operation whose call is reached may be linearized now if the register model accepts it in the
current state (its call and return events are lifted out of the list and the walk restarts);
reaching a return event means that operation should have been linearized already, so the
search backtracks. A configuration (set of linearized operations, register state) is explored
only once. An ``unknown`` operation has its return at +infinity: it may be linearized at any
point after its call, including after everything else (which is "it never happened"), and its
output is not checked.

Before the search, ``failed`` operations, ``unknown`` gets, and ``unknown`` writes whose value
nobody ever observed are dropped: such a write can always be linearized last (after every
other operation, where it affects nothing), so dropping it changes no verdict. "Observed"
means returned by a get or by a failed CAS, or named as a CAS's expected value. Values written
to one key must be unique (the client makes them so); `check` refuses a history where they
are not, since the reduction above relies on it.

Our own code, written from the published algorithms (Wing & Gong 1993; Lowe 2017; the
Knossos and Porcupine descriptions); no code copied.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Hashable

OK, FAILED, UNKNOWN = "ok", "failed", "unknown"
PUT, GET, CAS = "put", "get", "cas"
ABSENT = None   # the register's value when the key does not exist


@dataclass
class Op:
    """One client operation on one key.

    kind: ``put`` (value), ``get`` (output: the value read, or None for absent), ``cas``
    (expected -> value; expected None means "the key is absent"; output: ``(True, None)`` when
    it swapped, ``(False, current)`` when it did not, current being what the failure branch
    read). invoke/complete: one monotonic clock (any unit); complete is None when unknown.
    """
    client: int
    key: Hashable
    kind: str
    status: str
    invoke: float
    complete: float | None = None
    value: Hashable = None
    expected: Hashable = None
    output: object = None
    meta: dict = field(default_factory=dict)   # free-form (member, revision, error) for reports

    def describe(self) -> str:
        if self.kind == PUT:
            what = f"put({self.value!r})"
        elif self.kind == GET:
            what = "get()" + (f" -> {self.output!r}" if self.status == OK else "")
        else:
            what = f"cas({self.expected!r} -> {self.value!r})" + (f" -> {self.output!r}" if self.status == OK else "")
        end = f"{self.complete}" if self.complete is not None else "inf"
        extra = "".join(f" {k}={v}" for k, v in sorted(self.meta.items()))
        return f"client {self.client} key {self.key!r} {what} {self.status} [{self.invoke}, {end}]{extra}"


@dataclass
class KeyResult:
    key: Hashable
    ok: bool | None                  # None: gave up (budget)
    ops_checked: int
    ops_dropped: int
    explored: int                    # configurations cached
    report: str = ""                 # why not linearizable / why it gave up


@dataclass
class Result:
    ok: bool | None                  # False if any key fails; None if none fails but one gave up
    keys: list[KeyResult]

    def report(self) -> str:
        lines = []
        for k in self.keys:
            verdict = {True: "linearizable", False: "NOT linearizable", None: "undecided"}[k.ok]
            lines.append(f"key {k.key!r}: {verdict} ({k.ops_checked} ops checked, {k.ops_dropped} dropped, "
                         f"{k.explored} configurations)")
            if k.report:
                lines.append(k.report)
        return "\n".join(lines)


def step(state, op: Op):
    """The register model: (accepted, next state) for `op` applied in `state`."""
    if op.kind == PUT:
        return True, op.value
    if op.kind == GET:
        return op.output == state, state
    swapped = state == op.expected
    if op.status == OK:
        done, current = op.output
        if done != swapped or (not done and current != state):
            return False, state
    return True, (op.value if swapped else state)


def reduce(ops: list[Op]) -> list[Op]:
    """Drops what cannot affect the verdict (see the module comment)."""
    observed = set()
    for op in ops:
        if op.status == FAILED:
            continue
        if op.kind == CAS:
            observed.add(op.expected)
        if op.status == OK and op.kind == GET:
            observed.add(op.output)
        if op.status == OK and op.kind == CAS and not op.output[0]:
            observed.add(op.output[1])
    kept = []
    for op in ops:
        if op.status == FAILED:
            continue
        if op.status == UNKNOWN and (op.kind == GET or op.value not in observed):
            continue
        kept.append(op)
    return kept


def _check_unique_writes(key, ops: list[Op]) -> None:
    seen = {}
    for op in ops:
        if op.kind in (PUT, CAS) and op.status != FAILED:
            if op.value is ABSENT:
                raise ValueError(f"key {key!r}: a write of the absent value ({op.describe()})")
            if op.value in seen:
                raise ValueError(f"key {key!r}: value {op.value!r} written twice ({seen[op.value].describe()}; "
                                 f"{op.describe()}): values must be unique per key")
            seen[op.value] = op


def check_key(key, ops: list[Op], initial=ABSENT, budget_s: float = 60.0) -> KeyResult:
    """Wing & Gong / Lowe search with memoization on one key's operations."""
    _check_unique_writes(key, ops)
    kept = reduce(ops)
    n = len(kept)
    # Events: (time, 0 = call / 1 = return, op index). At equal times calls sort first, so
    # operations that merely touch count as concurrent (the permissive reading).
    inf = float("inf")
    events = []
    for i, op in enumerate(kept):
        events.append((op.invoke, 0, i))
        events.append((op.complete if op.status == OK else inf, 1, i))
        if op.status == OK and op.complete < op.invoke:
            raise ValueError(f"completed before invoked: {op.describe()}")
    events.sort()
    # Doubly linked list over event slots 1..2n; slot 0 is the head sentinel.
    m = len(events)
    nxt = list(range(1, m + 2))
    prv = list(range(-1, m))
    nxt[m] = -1     # the last event has no successor
    is_call = [False] * (m + 1)
    op_of = [-1] * (m + 1)
    ret_slot = [0] * n
    for slot, (_, kind, i) in enumerate(events, start=1):
        op_of[slot] = i
        is_call[slot] = kind == 0
        if kind == 1:
            ret_slot[i] = slot

    def unlink(s):
        nxt[prv[s]] = nxt[s]
        if nxt[s] != -1:
            prv[nxt[s]] = prv[s]

    def relink(s):
        nxt[prv[s]] = s
        if nxt[s] != -1:
            prv[nxt[s]] = s

    cache: set = set()
    stack: list = []                 # (call slot, state before)
    state, linearized = initial, 0
    best_depth, best = -1, ([], initial, None)
    entry = nxt[0]
    started = time.monotonic()
    steps = 0
    while nxt[0] != -1:
        steps += 1
        if steps & 0xFFFF == 0 and time.monotonic() - started > budget_s:
            return KeyResult(key, None, n, len(ops) - n, len(cache),
                             f"gave up after {budget_s:.0f} s ({len(cache)} configurations, depth {best_depth} of {n})")
        if is_call[entry]:
            i = op_of[entry]
            accepted, new_state = step(state, kept[i])
            if accepted:
                bits = linearized | (1 << i)
                if (bits, new_state) not in cache:
                    cache.add((bits, new_state))
                    stack.append((entry, state))
                    state, linearized = new_state, bits
                    unlink(entry)
                    unlink(ret_slot[i])
                    entry = nxt[0]
                    continue
            entry = nxt[entry]
        else:
            if len(stack) > best_depth:
                best_depth = len(stack)
                best = ([op_of[s] for s, _ in stack], state, op_of[entry])
            if not stack:
                break
            entry, state = stack.pop()
            i = op_of[entry]
            linearized &= ~(1 << i)
            relink(ret_slot[i])
            relink(entry)
            entry = nxt[entry]
    else:
        return KeyResult(key, True, n, len(ops) - n, len(cache))
    return KeyResult(key, False, n, len(ops) - n, len(cache), _explain(kept, *best))


def _explain(ops: list[Op], order: list[int], state, stuck: int | None, tail: int = 8) -> str:
    """The longest linearizable prefix found (its last operations), the register's value after
    it, and the operation that could not be placed with what was concurrent with it."""
    lines = [f"  longest linearizable prefix: {len(order)} of {len(ops)} ops; its last {min(tail, len(order))}:"]
    for i in order[-tail:]:
        lines.append(f"    {ops[i].describe()}")
    lines.append(f"  register after it: {state!r}")
    if stuck is not None:
        s = ops[stuck]
        lines.append(f"  then no order fits before this one completes:\n    {s.describe()}")
        done = set(order)
        rivals = [op for j, op in enumerate(ops) if j not in done and j != stuck
                  and op.invoke <= (s.complete if s.complete is not None else float('inf'))]
        rivals.sort(key=lambda op: op.invoke)
        if rivals:
            lines.append("  not yet linearized and invoked before it completed:")
            lines.extend(f"    {op.describe()}" for op in rivals[:tail])
    return "\n".join(lines)


def check(history: list[Op], budget_s: float = 60.0) -> Result:
    """Checks every key of `history` on its own; `budget_s` bounds the search per key."""
    by_key: dict = {}
    for op in history:
        by_key.setdefault(op.key, []).append(op)
    results = [check_key(k, ops, budget_s=budget_s) for k, ops in sorted(by_key.items(), key=lambda kv: repr(kv[0]))]
    if any(r.ok is False for r in results):
        ok = False
    elif any(r.ok is None for r in results):
        ok = None
    else:
        ok = True
    return Result(ok, results)
