#!/usr/bin/env python3
"""Where the time of one client's sequential puts goes, stage by stage, on rusd and etcd.

    scripts/put-stages.py [--puts 10000] [--engines lmdb,leveldb,lsm] [--rusd PATH] [--no-etcd]

Each server (a fresh one per target, data dir under /var/tmp, loopback port) gets --puts
sequential unary Puts from one h2load connection (-c1 -m1: one request in flight, etcd's
"put, 1 client" case), after 500 puts of warm-up: once untraced (the rate to compare), then
again while `perf trace` records the server's
socket reads and writes, its file writes and its fdatasyncs with their start times and
durations (kernel tracepoints: nothing in the server is switched on, so it costs nothing when
not used; tracing adds a few microseconds per traced system call, to both servers alike).

The requests are strictly one after the other, so each one's system calls follow in order:
  socket read (request in) -> file write(s) (log append) -> fdatasync -> socket write (response)
and the gaps between them are the server's stages:
  in -> write:      decode, hand-off to the applier, apply, building the engine batch
  write:            the engine's write system call(s) of the group commit
  write -> fsync:   engine work between its write and its sync
  fsync:            fdatasync
  fsync -> out:     hand-back to the connection's event loop, encode, HTTP/2 framing; for
                    rusd split at the applier's wake-up of the event loop (an eventfd write):
                    fsync -> wake (the group's completions) and wake -> out (the loop wakes,
                    encodes, frames)
  out:              the socket write
  client:           response out -> next request in (h2load and loopback)
Prints one Markdown table per target (p50 / p90 / p99 in microseconds) and h2load's rate.
Needs h2load and perf (Debian nghttp2-client, linux-perf); run as root or with perf allowed.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# PutRequest{key: "foo", value: "bar"} with its 5-byte gRPC prefix.
PUT_BODY = b"\x00\x00\x00\x00\x0a" + b"\x0a\x03foo\x12\x03bar"
SOCKET_READS = {"read", "readv", "recvfrom", "recvmsg"}
SOCKET_WRITES = {"write", "writev", "sendmsg", "sendto"}
FILE_WRITES = {"write", "writev", "pwrite64", "pwritev", "pwritev2"}
SYNCS = {"fdatasync", "fsync"}
LINE = re.compile(r"^\s*([\d.]+) \(\s*([\d.]+) ms\): [^/]*/(\d+) (\w+)\(fd: (\d+)[^)]*\)\s+= (-?\d+)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        r = subprocess.run(["etcdctl", f"--endpoints=127.0.0.1:{port}", "put", "warm", "up"],
                           capture_output=True)
        if r.returncode == 0:
            return
        time.sleep(0.2)
    raise SystemExit("server not ready")


def h2load(port: int, n: int, body: str) -> float:
    out = subprocess.run(["h2load", "-n", str(n), "-c", "1", "-m", "1", "-d", body,
                          "-H", "content-type: application/grpc", "-H", "te: trailers",
                          f"http://127.0.0.1:{port}/etcdserverpb.KV/Put"],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    ok = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", out)
    if not m or not ok or int(ok.group(1)) != n:
        raise SystemExit(f"h2load failed:\n{out}")
    return float(m.group(1))


def fd_kinds(pid: int) -> dict[int, str]:
    """The server's open descriptors: "socket", "eventfd" or "file" (others left out)."""
    kinds = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            kinds[int(fd)] = "socket"
        elif target == "anon_inode:[eventfd]":
            kinds[int(fd)] = "eventfd"
        elif target.startswith("/"):
            kinds[int(fd)] = "file"
    return kinds


def parse(path: str, kinds: dict[int, str]):
    """(start_us, end_us, kind) per relevant system call, in start order."""
    calls = []
    with open(path, errors="replace") as f:
        for line in f:
            m = LINE.match(line)
            if not m:
                continue   # a call split by another thread's ("... [continued]") is left out
            start = float(m.group(1)) * 1000
            dur = float(m.group(2)) * 1000
            name, fd, ret = m.group(4), int(m.group(5)), int(m.group(6))
            if ret < 0 or start > 1e12:
                continue   # EAGAIN on a non-blocking socket; perf's clock glitch on a new thread
            kind = kinds.get(fd)
            if ret == 0 and name not in SYNCS:
                kind = None
            elif kind == "socket":
                kind = "in" if name in SOCKET_READS else "out" if name in SOCKET_WRITES else None
            elif kind == "eventfd":
                kind = "wake" if name in FILE_WRITES else None
            elif kind == "file" or name in SYNCS:
                kind = "sync" if name in SYNCS else "write" if name in FILE_WRITES else None
            else:
                kind = None
            if kind:
                calls.append((start, start + dur, kind))
    calls.sort()
    return calls


STAGES = ["in -> write", "write", "write -> fsync", "fsync", "fsync -> wake", "wake -> out",
          "fsync -> out", "out", "client", "server total"]


def stages(calls):
    """Per request, the stage durations (us), from the in / write / sync / wake / out sequence."""
    out = {s: [] for s in STAGES}
    i, n = 0, len(calls)
    prev_out_end = None
    while i < n:
        while i < n and calls[i][2] != "in":
            i += 1
        if i >= n:
            break
        in_end = calls[i][1]
        if prev_out_end is not None:
            out["client"].append(calls[i][0] - prev_out_end)
        j = i + 1
        writes, sync, wake, resp = [], None, None, None
        while j < n:
            kind = calls[j][2]
            if kind == "in" and not writes:
                in_end = calls[j][1]   # the request spanned reads (or a WINDOW_UPDATE / PING)
            elif kind == "write" and sync is None:
                writes.append(calls[j])
            elif kind == "sync" and writes and sync is None:
                sync = calls[j]
            elif kind == "wake" and sync is not None and wake is None:
                wake = calls[j]
            elif kind == "out" and sync is not None:
                resp = calls[j]
                break
            j += 1
        if resp is None:
            break
        out["in -> write"].append(writes[0][0] - in_end)
        out["write"].append(writes[-1][1] - writes[0][0])
        out["write -> fsync"].append(sync[0] - writes[-1][1])
        out["fsync"].append(sync[1] - sync[0])
        if wake is not None:
            out["fsync -> wake"].append(wake[0] - sync[1])
            out["wake -> out"].append(resp[0] - wake[0])
        out["fsync -> out"].append(resp[0] - sync[1])
        out["out"].append(resp[1] - resp[0])
        out["server total"].append(resp[1] - in_end)
        prev_out_end = resp[1]
        i = j + 1
    return out


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * p))] if v else float("nan")


def measure(name: str, argv: list[str], port: int, puts: int, body: str, work: str) -> str:
    log = open(os.path.join(work, f"{name}.log"), "w")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(port, proc)
        h2load(port, 500, body)
        untraced = h2load(port, puts, body)
        trace_path = os.path.join(work, f"{name}.trace")
        trace = subprocess.Popen(["perf", "trace", "-p", str(proc.pid), "-o", trace_path, "-e",
                                  ",".join(sorted(SOCKET_READS | SOCKET_WRITES | FILE_WRITES | SYNCS))],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)   # perf attaches
        kinds: dict[int, str] = {}
        load = threading.Thread(target=lambda: results.append(h2load(port, puts, body)))
        results: list[float] = []
        load.start()
        while load.is_alive():   # the descriptors while h2load's connection is open
            kinds.update({fd: k for fd, k in fd_kinds(proc.pid).items() if fd not in kinds})
            time.sleep(0.05)
        load.join()
        if not results:
            raise SystemExit("h2load failed")
        rate = results[0]
        time.sleep(0.2)
        trace.send_signal(signal.SIGINT)
        try:
            trace.wait(timeout=120)   # perf writes out what it buffered
        except subprocess.TimeoutExpired:
            trace.kill()
            trace.wait()
        with open(os.path.join(work, f"{name}.fds"), "w") as f:
            f.write(repr(kinds))
        traced = stages(parse(trace_path, kinds))
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()
    n = len(traced["server total"])
    rows = [f"### {name}: {untraced:,.0f} puts/s untraced, {rate:,.0f} traced (h2load -c1 -m1, {puts} puts each); "
            f"{n} traced requests paired\n",
            "| stage | p50 µs | p90 µs | p99 µs |", "|---|---:|---:|---:|"]
    for s in STAGES:
        v = traced[s]
        rows.append(f"| {s} | {pct(v, 0.5):.0f} | {pct(v, 0.9):.0f} | {pct(v, 0.99):.0f} |")
    return "\n".join(rows) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--puts", type=int, default=10_000)
    ap.add_argument("--engines", default="lmdb,leveldb,lsm")
    ap.add_argument("--rusd", default=os.path.join(ROOT, ".build/release/rusd"))
    ap.add_argument("--no-etcd", action="store_true")
    ap.add_argument("--work-dir", default="/var/tmp")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (traces, logs)")
    args = ap.parse_args()
    for tool in ("h2load", "perf", "etcdctl"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found")
    work = tempfile.mkdtemp(prefix="put-stages-", dir=args.work_dir)
    body = os.path.join(work, "put.bin")
    with open(body, "wb") as f:
        f.write(PUT_BODY)
    targets = [(f"rusd-{e}", e) for e in args.engines.split(",") if e]
    if not args.no_etcd and shutil.which("etcd"):
        targets.append(("etcd", None))
    try:
        for name, engine in targets:
            port = free_port()
            data = os.path.join(work, name)
            if engine:
                argv = [args.rusd, "--engine", engine, "--data-dir", data,
                        "--listen-client-urls", f"http://127.0.0.1:{port}",
                        "--advertise-client-urls", f"http://127.0.0.1:{port}"]
            else:
                peer = free_port()
                argv = ["etcd", "--name", "stages", "--data-dir", data,
                        "--listen-client-urls", f"http://127.0.0.1:{port}",
                        "--advertise-client-urls", f"http://127.0.0.1:{port}",
                        "--listen-peer-urls", f"http://127.0.0.1:{peer}",
                        "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
                        "--initial-cluster", f"stages=http://127.0.0.1:{peer}"]
            print(measure(name, argv, port, args.puts, body, work), flush=True)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
