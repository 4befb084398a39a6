"""Durability through the gRPC API: rusd is SIGKILLed at random moments while clients write.

Writers send Txns that each put three keys (one atomic write); a write counts as acknowledged
when its response arrives. After every kill, rusd restarts on the same data dir and the test
checks, with an independent client (Python grpcio): every acknowledged Txn is fully present,
and no Txn is partially present (acknowledged or not). CRASH_KILL_POINTS (default 50) kill points
per engine. Not a differential test: etcd has no part in it.
"""
from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import grpc
import pytest

import servers

KILL_POINTS = int(os.environ.get("CRASH_KILL_POINTS", "50"))
WRITERS = 4
PARTS = (b"a", b"b", b"c")


def _start(binary: str, engine: str, data_dir: str, log_path: str):
    port = servers.free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(log_path, "ab")
    proc = subprocess.Popen([binary, "--engine", engine, "--data-dir", data_dir,
                             "--listen-client-urls", url, "--advertise-client-urls", url],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    log.close()
    return proc, f"127.0.0.1:{port}"


def _wait_ready(api, proc, endpoint: str, log_path: str):
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            with open(log_path, "rb") as f:
                tail = f.read()[-3000:].decode(errors="replace")
            pytest.fail(f"rusd exited with {proc.returncode} after a kill:\n{tail}")
        # The verifying Range returns every key written so far: allow large responses.
        channel = grpc.insecure_channel(endpoint, options=[("grpc.max_receive_message_length", 256 << 20)])
        try:
            api.callable(channel, "KV.Range")(api.request("KV.Range", key="probe"), timeout=1)
            return channel
        except grpc.RpcError:
            channel.close()
            if time.monotonic() > deadline:
                pytest.fail(f"rusd not serving on {endpoint} after a restart")
            time.sleep(0.05)


def _txn(api, writer: int, seq: int):
    ops = [{"request_put": {"key": f"crash/{writer:02d}/{seq:08d}/".encode() + p,
                            "value": str(seq)}} for p in PARTS]
    return api.request("KV.Txn", success=ops)


def _writer(api, endpoint: str, writer: int, first_seq: int, acked: list[int], stop: threading.Event):
    channel = grpc.insecure_channel(endpoint)
    txn = api.callable(channel, "KV.Txn")
    seq = first_seq
    try:
        while not stop.is_set():
            try:
                txn(_txn(api, writer, seq), timeout=5)
            except grpc.RpcError:
                return   # the server died: this write is unacknowledged
            acked.append(seq)
            seq += 1
    finally:
        channel.close()


def _verify(api, channel, acked: dict[int, list[int]]) -> tuple[int, int]:
    """Checks every acknowledged Txn is whole and no Txn is partial; returns (whole, checked)."""
    resp = api.callable(channel, "KV.Range")(
        api.request("KV.Range", key="crash/", range_end="crash0"), timeout=30)
    present: dict[tuple[int, int], set[bytes]] = {}
    for kv in resp.kvs:
        _, writer, seq, part = kv.key.split(b"/")
        assert kv.value == str(int(seq)).encode(), f"wrong value under {kv.key!r}: {kv.value!r}"
        present.setdefault((int(writer), int(seq)), set()).add(part)
    partial = {k: v for k, v in present.items() if v != set(PARTS)}
    assert not partial, f"partially applied Txns after a kill: {sorted(partial.items())[:5]}"
    missing = [(w, s) for w, seqs in acked.items() for s in seqs if (w, s) not in present]
    assert not missing, f"acknowledged Txns lost after a kill: {missing[:10]} (of {len(missing)})"
    return len(present), sum(len(s) for s in acked.values())


@pytest.mark.parametrize("engine", servers.rusd_engines())
def test_acknowledged_writes_survive_sigkill(api, engine):
    binary = servers.rusd_bin()
    if binary is None:
        pytest.skip("RUSD_BIN is not set: the crash test needs the rusd binary")
    seed = int(os.environ.get("CRASH_SEED", str(random.randrange(1 << 30))))
    rng = random.Random(seed)
    seed_note = f"(engine {engine}; kill times from CRASH_SEED={seed})"
    root = tempfile.mkdtemp(prefix=f"crash-{engine}-", dir=servers.temp_root())
    data_dir, log_path = os.path.join(root, "data"), os.path.join(root, "rusd.log")
    acked: dict[int, list[int]] = {w: [] for w in range(WRITERS)}
    next_seq = {w: 0 for w in range(WRITERS)}
    checked = whole = 0
    proc = None
    try:
        for point in range(KILL_POINTS):
            proc, endpoint = _start(binary, engine, data_dir, log_path)
            channel = _wait_ready(api, proc, endpoint, log_path)
            try:
                whole, checked = _verify(api, channel, acked)
            except AssertionError as e:
                raise AssertionError(f"after kill point {point} {seed_note}: {e}") from None
            finally:
                channel.close()
            # Unacknowledged Txns that did land are fine; never reuse their sequence numbers.
            for w in range(WRITERS):
                next_seq[w] = max([next_seq[w]] + [s + 1 for s in acked[w]]) + 1000
            stop = threading.Event()
            threads = [threading.Thread(target=_writer, args=(api, endpoint, w, next_seq[w], acked[w], stop))
                       for w in range(WRITERS)]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.02, 0.4))
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            stop.set()
            for t in threads:
                t.join(timeout=10)
        proc, endpoint = _start(binary, engine, data_dir, log_path)
        channel = _wait_ready(api, proc, endpoint, log_path)
        whole, checked = _verify(api, channel, acked)
        channel.close()
        print(f"\n{engine}: {KILL_POINTS} SIGKILL points, {checked} acknowledged Txns verified "
              f"whole, {whole} Txns present, none partial {seed_note}")
        assert checked > KILL_POINTS, "too few writes were acknowledged to mean anything"
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)
