"""Watch fan-out measurement (not a test): W watchers on one prefix while P puts run, against
rusd and a real etcd in the same run.

    RUSD_BIN=.build/debug/rusd python Tests/compat/bench_watch_fanout.py [watchers] [puts]

For each server: Put throughput without watchers, then with the watchers (spread over worker
processes, 100 watchers per stream); every watcher must receive every put, in revision order,
exactly once. Delivery latency = receive time - the send time carried in the value (sampled
on every 10th watcher). Reports the server's peak RSS (VmHWM).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc

sys.path.insert(0, os.path.dirname(__file__))
import servers  # noqa: E402
from etcd_api import EtcdAPI  # noqa: E402

PREFIX = b"/fanout/"
PER_STREAM = 100


def watcher_proc(endpoint: str, n: int, puts: int, start_rev: int, ready, out):
    api = EtcdAPI()
    resp_cls = api.response_class("Watch.Watch")
    streams = []
    counts = []
    lat: list[float] = []
    errors: list[str] = []
    done = threading.Event()
    remaining = [n]
    lock = threading.Lock()

    def run_stream(k: int):
        ch = grpc.insecure_channel(endpoint, options=[("grpc.max_receive_message_length", 64 << 20)])
        reqs = [api.request("Watch.Watch", create_request={"key": PREFIX, "range_end": b"/fanout0",
                                                           "start_revision": start_rev})
                for _ in range(k)]
        gate = threading.Event()

        def it():
            yield from reqs
            gate.wait()

        call = ch.stream_stream("/etcdserverpb.Watch/Watch", request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=resp_cls.FromString)(it())
        streams.append((ch, call, gate))
        last: dict[int, int] = {}
        got: dict[int, int] = {}
        created = 0
        for r in call:
            if r.created:
                created += 1
                last[r.watch_id] = start_rev - 1
                got[r.watch_id] = 0
                if created == k:
                    ready.release()
                continue
            now = time.time_ns()
            wid = r.watch_id
            for e in r.events:
                rev = e.kv.mod_revision
                if rev != last[wid] + 1:
                    errors.append(f"watch {wid}: revision {rev} after {last[wid]}")
                last[wid] = rev
                got[wid] += 1
                if wid % 10 == 0:
                    lat.append((now - int(e.kv.value)) / 1e6)
            if got[wid] == puts:
                with lock:
                    remaining[0] -= 1
                    if remaining[0] == 0:
                        done.set()
        counts.append(got)

    threads = []
    left = n
    while left > 0:
        k = min(PER_STREAM, left)
        left -= k
        t = threading.Thread(target=run_stream, args=(k,), daemon=True)
        t.start()
        threads.append(t)
    ok = done.wait(600)
    out.put({"complete": ok, "errors": errors[:5], "latencies": lat})
    for ch, call, gate in streams:
        call.cancel()
        gate.set()
        ch.close()


def put_many(api, endpoint: str, puts: int, concurrency: int = 32) -> float:
    ch = grpc.insecure_channel(endpoint)
    put = api.callable(ch, "KV.Put")
    t0 = time.monotonic()

    def one(i):
        put(api.request("KV.Put", key=PREFIX + str(i % 1000).encode(), value=str(time.time_ns()).encode()), timeout=60)

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(puts)))
    dt = time.monotonic() - t0
    ch.close()
    return puts / dt


def rss_peak(pid: int) -> str:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM"):
                return line.split(":")[1].strip()
    return "?"


def measure(target: str, watchers: int, puts: int) -> dict:
    api = EtcdAPI()
    [s] = servers.start_servers([target])
    try:
        base = put_many(api, s.endpoint, puts)
        ch = grpc.insecure_channel(s.endpoint)
        rev = api.callable(ch, "KV.Range")(api.request("KV.Range", key=b"a"), timeout=10).header.revision
        ch.close()
        procs, ready, out = [], mp.Semaphore(0), mp.Queue()
        nproc = 2
        nstreams = 0
        for i in range(nproc):
            n = watchers // nproc + (1 if i < watchers % nproc else 0)
            nstreams += (n + PER_STREAM - 1) // PER_STREAM
            p = mp.Process(target=watcher_proc, args=(s.endpoint, n, puts, rev + 1, ready, out))
            p.start()
            procs.append(p)
        for _ in range(nstreams):
            if not ready.acquire(timeout=120):
                break
        with_w = put_many(api, s.endpoint, puts)
        results = [out.get(timeout=900) for _ in procs]
        for p in procs:
            p.join(10)
        lat = sorted(x for r in results for x in r["latencies"])
        return {"target": target, "puts/s without watchers": round(base), "puts/s with watchers": round(with_w),
                "ratio": round(with_w / base, 2), "complete": all(r["complete"] for r in results),
                "errors": [e for r in results for e in r["errors"]],
                "latency ms p50": round(statistics.median(lat), 1) if lat else None,
                "latency ms p99": round(lat[int(len(lat) * 0.99)], 1) if lat else None,
                "server peak RSS": rss_peak(s.proc.pid)}
    finally:
        s.stop()


if __name__ == "__main__":
    w = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    p = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
    for target in ["rusd-" + servers.rusd_engines()[0], "etcd"]:
        print(measure(target, w, p), flush=True)
