"""Durability through the gRPC API: rusd is SIGKILLed at random moments while clients write.

Writers send Txns that each put three keys (one atomic write); a write counts as acknowledged
when its response arrives. After every kill, rusd restarts on the same data dir and the test
checks, with an independent client (Python grpcio): every acknowledged Txn is fully present,
and no Txn is partially present (acknowledged or not); Txns checked at an earlier restart are
counted each time and read back whole every tenth restart and after the last (Verifier).
CRASH_KILL_POINTS (default 50) kill points per engine. Not a differential test: etcd has no
part in it.
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
FULL_CHECK_EVERY = 10   # restarts: keys of earlier windows read back whole (Verifier)
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


def _advance(next_seq: dict[int, int], acked: dict[int, list[int]]) -> None:
    """Each writer's next window starts above every sequence number it used: unacknowledged
    Txns that did land are fine, their numbers are never reused."""
    for w in range(WRITERS):
        next_seq[w] = max([next_seq[w]] + [s + 1 for s in acked[w]]) + 1000


def _writer_prefix(writer: int) -> bytes:
    return f"crash/{writer:02d}/".encode()


def _kvs_bytes(resp) -> bytes:
    """The answer's key-values alone, serialized (header, count and more dropped): the
    encoding of two answers over adjacent key ranges concatenates to that of the union."""
    resp.ClearField("header")
    resp.ClearField("count")
    resp.ClearField("more")
    return resp.SerializeToString()


class Verifier:
    """What each restart checks through an independent client (grpcio): every acknowledged
    Txn whole, no Txn partial, every value the one written.

    A writer's keys below `checked_below` were checked whole at an earlier restart, and no
    writer writes there again (each window starts its sequence numbers above every earlier
    one). Those are counted at every restart (a lost or an extra key fails) and, at every
    FULL_CHECK_EVERY-th restart and the last, must come back byte for byte as they were
    checked (keys, values, revisions, versions): reading all of them back at every restart
    made the test grow with the square of the kill points (about 0.4 s a restart at the
    end, most of the test). Keys at and above it (the last window's) are checked one by one."""

    def __init__(self, api):
        self.api = api
        self.checked_below = {w: 0 for w in range(WRITERS)}   # sequence number
        self.checked = {w: b"" for w in range(WRITERS)}       # _kvs_bytes of the keys below it
        self.keys = {w: 0 for w in range(WRITERS)}            # how many keys are below it
        self.present = {w: 0 for w in range(WRITERS)}         # Txns present below it

    def verify(self, channel, acked: dict[int, list[int]], next_seq: dict[int, int],
               full: bool) -> tuple[int, int]:
        """Checks every writer; afterwards everything below next_seq counts as checked.
        Returns (Txns present, acknowledged Txns checked)."""
        rng = self.api.callable(channel, "KV.Range")
        for w in range(WRITERS):
            prefix, below = _writer_prefix(w), self.checked_below[w]
            bound = prefix + f"{below:08d}".encode()
            old = rng(self.api.request("KV.Range", key=prefix, range_end=bound, count_only=not full),
                      timeout=30)
            if not full and old.count != self.keys[w]:
                raise AssertionError(f"writer {w}: {self.keys[w]} keys below sequence {below} were "
                                     f"checked whole at an earlier restart, {old.count} came back")
            if full and _kvs_bytes(old) != self.checked[w]:
                raise AssertionError(f"writer {w}: keys below sequence {below}, checked whole at "
                                     f"an earlier restart, came back changed: "
                                     f"{self._first_change(self.checked[w], old)}")
            new = rng(self.api.request("KV.Range", key=bound, range_end=prefix[:-1] + b"0"), timeout=30)
            present: dict[int, set[bytes]] = {}
            for kv in new.kvs:
                _, writer, seq, part = kv.key.split(b"/")
                assert kv.value == str(int(seq)).encode(), f"wrong value under {kv.key!r}: {kv.value!r}"
                present.setdefault(int(seq), set()).add(part)
            partial = {s: v for s, v in present.items() if v != set(PARTS)}
            assert not partial, f"partially applied Txns of writer {w} after a kill: {sorted(partial.items())[:5]}"
            missing = [s for s in acked[w] if s >= below and s not in present]
            assert not missing, (f"acknowledged Txns of writer {w} lost after a kill: {missing[:10]} "
                                 f"(of {len(missing)})")
            assert all(s < next_seq[w] for s in present), f"writer {w}: a sequence number above {next_seq[w]}"
            self.keys[w] += len(new.kvs)
            self.checked[w] += _kvs_bytes(new)
            self.present[w] += len(present)
            self.checked_below[w] = next_seq[w]
        return sum(self.present.values()), sum(len(s) for s in acked.values())

    def _first_change(self, expected: bytes, got) -> str:
        before = type(got).FromString(expected).kvs
        for i, (a, b) in enumerate(zip(before, got.kvs)):
            if a != b:
                return f"key {i}: was {a.key!r}={a.value!r} (mod {a.mod_revision}), now {b.key!r}={b.value!r} (mod {b.mod_revision})"
        return f"{len(before)} keys before, {len(got.kvs)} now"


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
    verifier = Verifier(api)
    checked = whole = 0
    proc = None
    try:
        for point in range(KILL_POINTS):
            proc, endpoint = _start(binary, engine, data_dir, log_path)
            channel = _wait_ready(api, proc, endpoint, log_path)
            _advance(next_seq, acked)
            try:
                whole, checked = verifier.verify(channel, acked, next_seq,
                                                 full=(point + 1) % FULL_CHECK_EVERY == 0)
            except AssertionError as e:
                raise AssertionError(f"after kill point {point} {seed_note}: {e}") from None
            finally:
                channel.close()
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
        _advance(next_seq, acked)
        try:
            whole, checked = verifier.verify(channel, acked, next_seq, full=True)
        except AssertionError as e:
            raise AssertionError(f"after the last kill point {seed_note}: {e}") from None
        finally:
            channel.close()
        print(f"\n{engine}: {KILL_POINTS} SIGKILL points, {checked} acknowledged Txns verified "
              f"whole, {whole} Txns present, none partial {seed_note}")
        assert checked > KILL_POINTS, "too few writes were acknowledged to mean anything"
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)
