"""Watch streams opened on both servers of a Pair and compared as flat item sequences.

Events of different revisions may be grouped into WatchResponses differently (it depends on
timing), so each stream is flattened into items: one item per event (with its watch_id and
the response's header revision) and one per control response (created, canceled, progress,
compacted). Separately, each server is checked for splitting one revision's events across
responses (not allowed except in fragments).
"""
from __future__ import annotations

import queue
import threading
import time

import grpc

from differential import Endpoint, Pair, error_outcome
from etcd_api import to_dict
from normalize import normalize

STREAM_TIMEOUT = 300


class WatchStream:
    """One Watch stream on one server; responses gathered by a reader thread."""

    def __init__(self, pair: Pair, ep: Endpoint):
        self.pair, self.ep = pair, ep
        self.requests: queue.Queue = queue.Queue()
        self.responses: list[dict] = []
        self.ended = False
        self.cond = threading.Condition()
        self.call = ep.stub("Watch.Watch")(self._request_iter(), timeout=STREAM_TIMEOUT)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _request_iter(self):
        while True:
            req = self.requests.get()
            if req is None:
                return
            yield req

    def _read(self):
        try:
            for resp in self.call:
                d = normalize("Watch.Watch", {"ok": to_dict(resp)}, None, self.ep.state)["ok"]
                with self.cond:
                    self.responses.append(d)
                    self.cond.notify_all()
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.CANCELLED or not self.ended:
                with self.cond:
                    self.responses.append({"stream_error": error_outcome(e)["error"]})
        finally:
            with self.cond:
                self.ended = True
                self.cond.notify_all()

    def send(self, fields: dict):
        self.requests.put(self.pair.api.request("Watch.Watch", fields))

    def items(self) -> list[dict]:
        with self.cond:
            responses = list(self.responses)
        return flatten(responses)

    def wait_items(self, count: int, deadline: float) -> None:
        with self.cond:
            while len(flatten(self.responses)) < count and not self.ended:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self.cond.wait(left)

    def close(self):
        self.ended = True
        self.requests.put(None)
        self.call.cancel()
        self.thread.join(timeout=5)


def flatten(responses: list[dict]) -> list[dict]:
    items = []
    for r in responses:
        events = r.get("events") or []
        if events and not r.get("created") and not r.get("canceled"):
            rev = (r.get("header") or {}).get("revision")
            top = max((e.get("kv") or {}).get("mod_revision", 0) for e in events)
            # The header revision of an event response is the store's revision when the batch
            # was sent (timing-dependent while catching up); only "not below its events" is
            # a contract.
            shown = "<at or above its events>" if isinstance(rev, int) and rev >= top else rev
            for e in events:
                items.append({"watch_id": r["watch_id"], "header_revision": shown,
                              "fragment": r.get("fragment", False), "event": e})
        else:
            items.append(r)
    return items


def by_watcher(items: list[dict]) -> list[dict]:
    """Stable sort by watch_id: etcd orders responses per watcher, not across watchers (the
    watchers of one event are notified in map order)."""
    return sorted(items, key=lambda i: i.get("watch_id", -2) if isinstance(i.get("watch_id"), int) else -2)


def split_revisions(responses: list[dict]) -> list[str]:
    """Revisions whose events a server spread over several responses of one watcher."""
    seen: dict[tuple, int] = {}
    problems = []
    for i, r in enumerate(responses):
        if r.get("fragment"):
            continue
        for e in r.get("events") or []:
            key = (r.get("watch_id"), (e.get("kv") or {}).get("mod_revision"))
            if key in seen and seen[key] != i:
                problems.append(f"watch {key[0]}: revision {key[1]} split over responses")
            seen[key] = i
    return sorted(set(problems))


class PairWatch:
    """Watch streams on both servers; requests go to both, items are compared in order."""

    def __init__(self, pair: Pair):
        self.pair = pair
        pair.rpcs_called.add("Watch.Watch")
        self.streams = [WatchStream(pair, ep) for ep in pair.endpoints]
        self.cursor = 0

    def send(self, request=None, **fields):
        for s in self.streams:
            req = request(s.ep) if callable(request) else {**(request or {}), **fields}
            s.send(req)

    def create(self, **create_request):
        self.send(create_request=create_request)

    def expect(self, count: int, timeout: float = 5.0) -> list[dict]:
        """Waits for `count` more items on each server and compares them; returns etcd's."""
        deadline = time.monotonic() + timeout
        for s in self.streams:
            s.wait_items(self.cursor + count, deadline)
        got = [by_watcher(s.items()[self.cursor:self.cursor + count]) for s in self.streams]
        self.cursor += count
        self.pair.compare("Watch.Watch items", got[0], got[1])
        if len(got[0]) < count:   # both short: the case itself expects the wrong thing
            raise AssertionError(f"etcd sent {len(got[0])} of {count} expected watch items: "
                                 f"{got[0]}")
        return got[0]

    def quiet(self, wait: float = 0.3) -> None:
        """Waits, then compares whatever both servers sent meanwhile (usually nothing)."""
        time.sleep(wait)
        # A slow side gets up to 2 s more to send as many items as the other.
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            counts = {len(s.items()) for s in self.streams}
            if len(counts) == 1:
                break
            time.sleep(0.05)
        got = [by_watcher(s.items()[self.cursor:]) for s in self.streams]
        self.pair.compare("Watch.Watch unexpected items", got[0], got[1])
        self.cursor += len(got[0])

    def check_batching(self) -> None:
        got = [split_revisions(list(s.responses)) for s in self.streams]
        self.pair.compare("Watch.Watch revision batching", got[0], got[1])

    def close(self, check: bool = True):
        try:
            if check:
                self.check_batching()
        finally:
            for s in self.streams:
                s.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *rest):
        self.close(check=exc_type is None)
