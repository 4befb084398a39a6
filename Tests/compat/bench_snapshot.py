"""Snapshot save and restore, rusd against etcd, side by side in one run (issue 18).

Fills a real etcd 3.4 and rusd (each engine given) with the same store: KEYS keys of
256-byte values in Txns of 100 puts, then every 10th key updated twice (history). Then, for
each server: `etcdctl snapshot save` (wall time, and the growth of the server's anonymous RSS while
it streams), and the restore of that file with the server's own tool (`etcdctl snapshot
restore` for etcd, `rusd snapshot restore --engine E` for rusd). Prints a Markdown table.

Usage: RUSD_BIN=.build/release/rusd .venv/bin/python Tests/compat/bench_snapshot.py \
           [--keys 1000000] [--engines lmdb leveldb lsm]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import grpc  # noqa: E402

from etcd_api import EtcdAPI  # noqa: E402
from servers import Server, free_port, temp_root  # noqa: E402


def anon_kib(pid: int) -> int:
    """Anonymous resident memory (heap), without the mapped store file's pages: both etcd's
    bbolt and rusd's lmdb read through mmap, and those pages are page cache, not buffering."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    return 0


def timed_sampling(cmd: list[str], pid: int, env=None) -> tuple[float, int]:
    """Runs `cmd`; returns its wall time and the peak of `pid`'s anonymous RSS meanwhile."""
    t = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    peak = anon_kib(pid)
    while proc.poll() is None:
        peak = max(peak, anon_kib(pid))
        time.sleep(0.02)
    elapsed = time.monotonic() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed with {proc.returncode}")
    return elapsed, peak


def fill(api: EtcdAPI, server: Server, keys: int) -> int:
    ch = grpc.insecure_channel(server.endpoint)
    txn = api.callable(ch, "KV.Txn")
    value = b"v" * 256

    def batch(indices):
        ops = [{"request_put": {"key": f"/registry/pods/ns-{i % 100}/pod-{i:07d}".encode(), "value": value}}
               for i in indices]
        return txn(api.request("KV.Txn", {"success": ops}), timeout=60)

    for start in range(0, keys, 100):
        batch(range(start, min(keys, start + 100)))
    for _ in range(2):
        for start in range(0, keys, 1000):
            batch(range(start, min(keys, start + 1000), 10))
    rev = batch([0]).header.revision
    ch.close()
    return rev


def timed(cmd: list[str], env=None) -> float:
    t = time.monotonic()
    subprocess.run(cmd, check=True, capture_output=True, env=env, timeout=3600)
    return time.monotonic() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--engines", nargs="*", default=["lmdb"])
    args = ap.parse_args()
    rusd = os.environ["RUSD_BIN"]
    api = EtcdAPI()
    work = tempfile.mkdtemp(prefix="bench-snapshot-", dir=temp_root())
    env = dict(os.environ, ETCDCTL_API="3")
    rows = []
    try:
        for target in ["etcd"] + [f"rusd-{e}" for e in args.engines]:
            server = Server(target, extra_args=["--quota-backend-bytes=8589934592"])
            server.start()
            try:
                t = time.monotonic()
                rev = fill(api, server, args.keys)
                fill_s = time.monotonic() - t
                snap = os.path.join(work, f"{target}.db")
                before = anon_kib(server.proc.pid)
                save_s, peak = timed_sampling(["etcdctl", f"--endpoints={server.endpoint}", "--command-timeout=3600s",
                                               "snapshot", "save", snap], server.proc.pid, env)
            finally:
                server.stop()
            size = os.path.getsize(snap)
            out = os.path.join(work, f"{target}.restored")
            if target == "etcd":
                peer = f"http://127.0.0.1:{free_port()}"
                restore_s = timed(["etcdctl", "snapshot", "restore", snap, "--data-dir", out, "--name", "bench",
                                   "--initial-cluster", f"bench={peer}", "--initial-advertise-peer-urls", peer], env)
            else:
                restore_s = timed([rusd, "snapshot", "restore", snap, "--data-dir", out,
                                   "--engine", target.removeprefix("rusd-")])
            shutil.rmtree(out, ignore_errors=True)
            os.remove(snap)
            rows.append((target, rev, size, fill_s, save_s, max(0, peak - before), restore_s))
            print(f"{target}: revision {rev}, file {size / 1e6:.0f} MB, fill {fill_s:.0f} s, save {save_s:.2f} s, "
                  f"anonymous RSS growth during save {max(0, peak - before) / 1024:.0f} MiB, restore {restore_s:.2f} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        api.close()
    base = rows[0]
    print(f"\n{args.keys:,} keys, 256-byte values, every 10th key updated twice\n")
    print("| server | file MB | save s | save vs etcd | anon. RSS growth while saving MiB | restore s | restore vs etcd |")
    print("|---|---|---|---|---|---|---|")
    for name, rev, size, fill_s, save_s, growth, restore_s in rows:
        print(f"| {name} | {size / 1e6:.0f} | {save_s:.2f} | {save_s / base[4]:.2f}x | {growth / 1024:.0f} | "
              f"{restore_s:.2f} | {restore_s / base[6]:.2f}x |")


if __name__ == "__main__":
    main()
