"""Watch cases beyond the differential suite: behaviour of etcd 3.5+ that the reference etcd
3.4 does not have (RequestProgress without watchers), many watchers on one stream, a client
that stops reading (the server must keep serving writes and other watchers, then catch the
slow stream up from history with no gap), periodic progress notifications, and fragmentation
of one huge revision (compared with etcd)."""
from __future__ import annotations

import queue
import threading
import time

import grpc
import pytest

import servers
from etcd_api import EtcdAPI
from kv_helpers import prefix_end
from watch_streams import PairWatch

pytestmark = pytest.mark.skipif(servers.rusd_bin() is None, reason="RUSD_BIN not set")


class Stream:
    """A raw Watch stream on one server; `pause()` stops reading responses."""

    def __init__(self, api: EtcdAPI, channel: grpc.Channel):
        self.api = api
        self.requests: queue.Queue = queue.Queue()
        self.responses: queue.Queue = queue.Queue()
        self.reading = threading.Event()
        self.reading.set()
        self.call = api.callable(channel, "Watch.Watch")(self._iter(), timeout=300)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _iter(self):
        while True:
            r = self.requests.get()
            if r is None:
                return
            yield r

    def _read(self):
        try:
            for resp in self.call:
                self.reading.wait()
                self.responses.put(resp)
        except grpc.RpcError:
            pass

    def send(self, **fields):
        self.requests.put(self.api.request("Watch.Watch", fields))

    def get(self, timeout=10.0):
        return self.responses.get(timeout=timeout)

    def nothing(self, wait=0.5) -> bool:
        try:
            self.responses.get(timeout=wait)
            return False
        except queue.Empty:
            return True

    def close(self):
        self.requests.put(None)
        self.call.cancel()


def start_rusd(*args):
    [s] = servers.start_servers(["rusd-" + servers.rusd_engines()[0]], list(args))
    return s


@pytest.fixture(scope="module")
def rusd():
    s = start_rusd()
    yield s
    s.stop()


@pytest.fixture
def channel(rusd):
    ch = grpc.insecure_channel(rusd.endpoint, options=[("grpc.max_receive_message_length", 64 << 20)])
    yield ch
    ch.close()


def put(api, channel, key, value):
    return api.callable(channel, "KV.Put")(api.request("KV.Put", key=key, value=value), timeout=10).header.revision


def test_request_progress_semantics_of_etcd_3_5(api, channel):
    w = Stream(api, channel)
    try:
        w.send(progress_request={})
        assert w.nothing(), "etcd 3.5+ does not answer RequestProgress on a stream without watchers"
        w.send(create_request={"key": b"/rp/a"})
        assert w.get().created
        rev = put(api, channel, b"/rp/other", b"x")
        w.send(progress_request={})
        p = w.get()
        assert p.watch_id == -1 and not p.events and not p.created and not p.canceled
        assert p.header.revision == rev
    finally:
        w.close()


def test_many_watchers_on_one_stream(api, channel):
    w = Stream(api, channel)
    try:
        n, puts = 200, 300
        for _ in range(n):
            w.send(create_request={"key": b"/many/", "range_end": b"/many0", "prev_kv": True})
        ids = [w.get().watch_id for _ in range(n)]
        assert sorted(ids) == list(range(n))
        revs = [put(api, channel, f"/many/{i % 7}".encode(), str(i).encode()) for i in range(puts)]
        got: dict[int, list[int]] = {i: [] for i in ids}
        deadline = time.monotonic() + 60
        while sum(map(len, got.values())) < n * puts and time.monotonic() < deadline:
            r = w.get()
            got[r.watch_id] += [e.kv.mod_revision for e in r.events]
        for i in ids:
            assert got[i] == revs, f"watcher {i}"
    finally:
        w.close()


def test_stalled_reader_does_not_block_writes_and_catches_up(api, channel, rusd):
    slow = Stream(api, channel)
    # The fast watcher uses its own connection: a stalled stream only stalls its own stream.
    ch2 = grpc.insecure_channel(rusd.endpoint)
    fast = Stream(api, ch2)
    try:
        for s in (slow, fast):
            s.send(create_request={"key": b"/slow/", "range_end": b"/slow0", "prev_kv": True})
            assert s.get().created
        slow.reading.clear()
        value = b"v" * 2000
        revs = [put(api, channel, f"/slow/{i % 50}".encode(), value + str(i).encode()) for i in range(3000)]
        # The fast watcher has everything while the slow one is not reading (~12 MB pending).
        fast_revs = []
        while len(fast_revs) < len(revs):
            fast_revs += [e.kv.mod_revision for e in fast.get().events]
        assert fast_revs == revs
        slow.reading.set()
        events = []
        while len(events) < len(revs):
            events += list(slow.get(timeout=30).events)
        assert [e.kv.mod_revision for e in events] == revs
        assert [e.kv.value for e in events] == [value + str(i).encode() for i in range(3000)]
        for i, e in enumerate(events[50:], start=50):
            assert e.prev_kv.value == value + str(i - 50).encode()
        # Live again afterwards.
        rev = put(api, channel, b"/slow/x", b"live")
        assert [e.kv.mod_revision for e in slow.get().events] == [rev]
    finally:
        slow.close()
        fast.close()
        ch2.close()


def test_progress_notify_interval(api):
    s = start_rusd("--experimental-watch-progress-notify-interval", "300ms")
    ch = grpc.insecure_channel(s.endpoint)
    w = Stream(api, ch)
    try:
        w.send(create_request={"key": b"/pn/a", "progress_notify": True})
        w.send(create_request={"key": b"/pn/b"})
        assert w.get().created and w.get().created
        rev = put(api, ch, b"/pn/zzz", b"1")
        p = w.get(timeout=5)
        assert p.watch_id == 0 and not p.events and not p.created
        assert p.header.revision == rev
        p2 = w.get(timeout=5)
        assert p2.watch_id == 0 and not p2.events
    finally:
        w.close()
        ch.close()
        s.stop()


@pytest.mark.rpc("Watch.Watch")
def test_fragment_of_one_huge_revision(pair, ns):
    """A DeleteRange of 30 keys of 100 KB with prev_kv is one revision of ~3 MB: above
    --max-request-bytes + 512 KiB, so a watcher that asked for fragments gets it split, in the
    same places as etcd."""
    for i in range(30):
        pair.call("KV.Put", key=f"{ns}{i:02d}", value=b"x" * 100_000)
    with PairWatch(pair) as w:
        w.create(key=ns, range_end=prefix_end(ns), prev_kv=True, fragment=True)
        w.expect(1)
        pair.call("KV.DeleteRange", key=ns, range_end=prefix_end(ns))
        items = w.expect(30, timeout=15)
        flags = [i["fragment"] for i in items]
        assert flags[-1] is False and True in flags
        w.quiet()


@pytest.mark.rpc("etcdctl watch", "Watch.Watch")
def test_etcdctl_watch_text_output_replays_same_history(pair, ns):
    """`etcdctl watch --prefix --rev N --prev-kv` (simple output) prints the same history."""
    import subprocess

    import etcdctl_runner as ctl
    from kv_helpers import put_all

    first = put_all(pair, ns, {"a": "1", "b": "2"})
    put_all(pair, ns, {"a": "3"})
    pair.call("KV.DeleteRange", key=ns + "b")
    pair.call("KV.Txn", success=[{"request_put": {"key": ns + "c", "value": "4"}},
                                 {"request_delete_range": {"key": ns + "a"}}])
    outputs = []
    for ep in pair.endpoints:
        p = subprocess.Popen(ctl.command(ep, ["watch", ns, "--prefix", f"--rev={first - 1}", "--prev-kv"]),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ctl.env())
        try:
            out, _ = p.communicate(timeout=2)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
        outputs.append(out)
    pair.compare("etcdctl watch (simple output)", outputs[0], outputs[1])
    assert outputs[0].count("PUT") == 4 and outputs[0].count("DELETE") == 2


def _metric(server, name: str) -> float:
    import urllib.request
    with urllib.request.urlopen(f"http://{server.endpoint}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"{name} not on /metrics")


def _rss_kib(pid: int, field: str = "VmRSS") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field}")


def _wait_for(what, condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_ten_thousand_watchers_whose_clients_stop_reading_keep_memory_bounded(api):
    """10,000 watchers (100 streams of 100, on 10 connections) whose client never reads and
    keeps its flow-control windows closed: 25 GB of events would pile up if the server queued
    them. The server's memory must stay flat while the writes go on, writes and a reading
    watcher must not wait for them, and closing their connections must free them."""
    import transport_h2raw as h2

    server = start_rusd()
    conns = []
    fast = None
    ch = grpc.insecure_channel(server.endpoint)
    try:
        create = api.request("Watch.Watch", create_request={"key": b"/stall/", "range_end": prefix_end(b"/stall/")})
        creates = h2.grpc_message(create.SerializeToString()) * 100
        for _ in range(10):
            c = h2.RawH2(server.client_port, window=1024)   # never reads: windows stay closed
            out = b""
            for stream_id in range(1, 21, 2):
                out += c.request(stream_id, "/etcdserverpb.Watch/Watch", body=creates, end_stream=False)
            c.send(out)
            conns.append(c)
        _wait_for("10,000 watchers", lambda: _metric(server, "etcd_debugging_mvcc_watcher_total") == 10_000)
        assert _metric(server, "etcd_debugging_mvcc_watch_stream_total") == 100

        fast = Stream(api, ch)
        fast.send(create_request={"key": b"/stall/", "range_end": prefix_end(b"/stall/")})
        assert fast.get().created
        value = b"v" * 1000
        put_ = api.callable(ch, "KV.Put")

        def put_range(start, end):
            return [put_(api.request("KV.Put", key=b"/stall/%d" % (i % 100), value=value + b"%d" % i),
                         timeout=30).header.revision for i in range(start, end)]

        revs = put_range(0, 500)
        # The stalled watchers fell behind (their streams took what their windows allow).
        _wait_for("slow watchers", lambda: _metric(server, "etcd_debugging_mvcc_slow_watcher_total") >= 9_000)
        after_first = _rss_kib(server.proc.pid)
        t0 = time.monotonic()
        revs += put_range(500, 2500)
        seconds = time.monotonic() - t0
        after_second = _rss_kib(server.proc.pid)
        peak = _rss_kib(server.proc.pid, "VmHWM")
        print(f"\n10,000 stalled watchers: RSS {after_first // 1024} MiB after 500 puts, "
              f"{after_second // 1024} MiB after 2,500 (peak {peak // 1024} MiB); "
              f"2,000 puts in {seconds:.1f} s")
        assert after_second - after_first < 64 * 1024, "memory grew with the events the stalled watchers miss"
        assert peak < 1024 * 1024
        # The reading watcher got everything, in order.
        got = []
        while len(got) < len(revs):
            got += [e.kv.mod_revision for e in fast.get(timeout=30).events]
        assert got == revs
        # Closing the stalled connections removes their watchers.
        for c in conns:
            c.close()
        conns = []
        _wait_for("stalled watchers removed", lambda: _metric(server, "etcd_debugging_mvcc_watcher_total") == 1)
        assert _metric(server, "etcd_debugging_mvcc_slow_watcher_total") == 0
    finally:
        for c in conns:
            c.close()
        if fast is not None:
            fast.close()
        ch.close()
        server.stop()
