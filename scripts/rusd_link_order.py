"""One round of scripts/generate-rusd-link-order.sh: runs a release rusd under `perf record -e
page-faults`, drives the common RPCs at it with grpcio, and appends to the order file the symbols
(functions and data) whose pages faulted first that were not listed yet, in first-touch order.

Usage: rusd_link_order.py RUSD_BINARY ORDER_FILE ENGINE...

Why faults: a fault on a file-backed page maps the whole page-cache folio around it (16 pages
or more on this kernel), so resident memory is set by how many distinct places in the binary
are touched, not by how much code runs. lld places the listed symbols' sections first and in
this order (--symbol-ordering-file), so what rusd touches shares pages. A symbol placed by an
earlier round no longer faults when a neighbour already brought its page in, so each round
finds a few more; a handful of rounds converges.
"""
from __future__ import annotations

import bisect
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "Tests" / "compat"))
import grpc  # noqa: E402
from etcd_api import EtcdAPI  # noqa: E402

KEYS = 10_000  # as rusd-compare's range preload: 8-byte keys, 256-byte values
SECTIONS = (".text", ".rodata", ".data", ".bss")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def workload(api: EtcdAPI, endpoint: str) -> None:
    """Put, range, txn, delete, watch, lease, compact and status, as a Kubernetes API server
    and the benchmarks use them."""
    channel = grpc.insecure_channel(endpoint)
    grpc.channel_ready_future(channel).result(timeout=30)
    put = api.callable(channel, "KV.Put")
    rng = api.callable(channel, "KV.Range")
    value = bytes(0x61 + i % 26 for i in range(256))
    PutRequest = api.message_class("PutRequest")

    events = []
    done = threading.Event()

    def watch_requests():
        yield api.request("Watch.Watch", create_request={"key": b"\x00", "range_end": b"\x00\x00\x00\x00\x00\x00\x02",
                                                         "prev_kv": True})
        done.wait(60)

    watch = api.callable(channel, "Watch.Watch")(watch_requests())

    def read_watch():
        for resp in watch:
            events.extend(resp.events)
            if len(events) >= 100:
                break

    reader = threading.Thread(target=read_watch, daemon=True)
    reader.start()
    time.sleep(0.5)

    def writer(w: int) -> None:
        for i in range(w, KEYS, 8):
            put(PutRequest(key=struct.pack(">Q", i), value=value), timeout=30)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(writer, range(8)))
    reader.join(10)
    done.set()
    watch.cancel()

    for i in range(0, KEYS, 5):
        rng(api.request("KV.Range", key=struct.pack(">Q", i)), timeout=10)
    rng(api.request("KV.Range", key=b"\x00", range_end=b"\x00\x00\x00\x00\x00\x00\x01", limit=100), timeout=10)
    rng(api.request("KV.Range", key=b"\x00", range_end=b"\x01", count_only=True), timeout=10)
    txn = api.callable(channel, "KV.Txn")
    for i in range(500):
        key = struct.pack(">Q", i)
        current = rng(api.request("KV.Range", key=key), timeout=10).kvs[0].mod_revision
        txn(api.request("KV.Txn",
                        compare=[{"key": key, "target": "MOD", "result": "EQUAL", "mod_revision": current}],
                        success=[{"request_put": {"key": key, "value": value, "prev_kv": True}}],
                        failure=[{"request_range": {"key": key}}]), timeout=10)
    delete = api.callable(channel, "KV.DeleteRange")
    for i in range(500, 1000):
        delete(api.request("KV.DeleteRange", key=struct.pack(">Q", i)), timeout=10)

    lease = api.callable(channel, "Lease.LeaseGrant")(api.request("Lease.LeaseGrant", TTL=60), timeout=10)
    put(api.request("KV.Put", key=b"leased", value=b"v", lease=lease.ID), timeout=10)
    keepalive = api.callable(channel, "Lease.LeaseKeepAlive")(iter([api.request("Lease.LeaseKeepAlive", ID=lease.ID)]))
    for _ in keepalive:
        break
    keepalive.cancel()
    api.callable(channel, "Lease.LeaseRevoke")(api.request("Lease.LeaseRevoke", ID=lease.ID), timeout=10)

    revision = rng(api.request("KV.Range", key=b"leased"), timeout=10).header.revision
    api.callable(channel, "KV.Compact")(api.request("KV.Compact", revision=revision - 100), timeout=30)
    api.callable(channel, "Maintenance.Status")(api.request("Maintenance.Status"), timeout=10)
    channel.close()


def profile(rusd: str, engine: str, api: EtcdAPI, perf_data: str) -> None:
    data_dir = tempfile.mkdtemp(prefix="rusd-link-order-")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = ["perf", "record", "-q", "-e", "page-faults", "-c", "1", "-d", "-o", perf_data, "--",
           rusd, "--engine", engine, "--data-dir", data_dir,
           "--listen-client-urls", url, "--advertise-client-urls", url]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        workload(api, f"127.0.0.1:{port}")
    finally:
        proc.send_signal(signal.SIGINT)  # perf stops its child and writes the data file
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(data_dir, ignore_errors=True)


def faulted_symbols(rusd: str, perf_data: str) -> list[str]:
    """Symbols of the binary containing faulting addresses, in first-fault order."""
    real = os.path.realpath(rusd)
    script = subprocess.run(["perf", "script", "-i", perf_data, "--show-mmap-events", "-F", "addr"],
                            capture_output=True, text=True, check=True).stdout
    base = None
    addresses = []
    for line in script.splitlines():
        if "PERF_RECORD_MMAP" in line:
            m = re.search(r"\[(0x[0-9a-f]+)\(0x[0-9a-f]+\) @ 0 .*\s(\S+)$", line)
            if m and base is None and os.path.realpath(m.group(2)) == real:
                base = int(m.group(1), 16)
        elif line.strip():
            addresses.append(int(line.strip(), 16))
    if base is None:
        raise SystemExit(f"no mapping of {rusd} in {perf_data}")
    ranges = []
    for line in subprocess.run(["readelf", "-SW", rusd], capture_output=True, text=True, check=True).stdout.splitlines():
        fields = line.replace("[ ", "[").split()
        for name in SECTIONS:
            if name in fields:
                i = fields.index(name)
                start = int(fields[i + 2], 16)
                ranges.append((start, start + int(fields[i + 4], 16)))
    symbols = []
    for line in subprocess.run(["nm", "-n", "--defined-only", rusd], capture_output=True, text=True, check=True).stdout.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[1] in "tTwWdDrRbBvV":
            symbols.append((int(parts[0], 16), parts[2]))
    starts = [a for a, _ in symbols]
    seen: dict[str, None] = {}
    for address in addresses:
        a = address - base
        if not any(lo <= a < hi for lo, hi in ranges):
            continue
        i = bisect.bisect_right(starts, a) - 1
        if i >= 0:
            seen.setdefault(symbols[i][1], None)
    return list(seen)


def main() -> None:
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    rusd, order_path, engines = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
    order = [line for line in order_path.read_text().splitlines() if line] if order_path.exists() else []
    known = set(order)
    api = EtcdAPI()
    try:
        with tempfile.TemporaryDirectory(prefix="rusd-link-order-perf-") as tmp:
            for engine in engines:
                perf_data = os.path.join(tmp, f"{engine}.data")
                profile(rusd, engine, api, perf_data)
                new = [s for s in faulted_symbols(rusd, perf_data) if s not in known]
                known.update(new)
                order.extend(new)
                print(f"{engine}: {len(new)} new symbols, {len(order)} in all")
    finally:
        api.close()
    order_path.write_text("\n".join(order) + "\n")


if __name__ == "__main__":
    main()
