"""rusd --unsafe-no-fsync (etcd 3.5's flag; 3.4.23, the oracle here, has no such flag).

Judged by the kernel, through strace attached to the server: sequential puts on a default
rusd make at least one fsync/fdatasync each (durable before acknowledged); with
--unsafe-no-fsync the puts make almost none (an engine's background work, such as an LMDB
checkpoint, may still sync). A process crash (SIGKILL) loses no acknowledged put either way:
unsynced writes are in the kernel's page cache; only a machine crash may lose them.

Needs RUSD_BIN and strace (skipped otherwise). About 2 s per engine.
"""
from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time

import grpc
import pytest

from servers import Server, rusd_bin, rusd_engines

STRACE = shutil.which("strace")
pytestmark = [pytest.mark.skipif(rusd_bin() is None, reason="RUSD_BIN is not set"),
              pytest.mark.skipif(STRACE is None, reason="strace is not installed")]

PUTS = 60
SYNC_CALLS = ("fsync(", "fdatasync(", "sync_file_range(", "msync(", "syncfs(")


def put_request(key: bytes, value: bytes) -> bytes:
    """PutRequest{key, value}, serialised by hand (fields 1 and 2, bytes; short values)."""
    return b"\x0a" + bytes([len(key)]) + key + b"\x12" + bytes([len(value)]) + value


def range_value(channel: grpc.Channel, key: bytes) -> bytes | None:
    """The value of `key` from a Range, parsed by hand (kvs field 2 -> KeyValue.value field 5)."""
    call = channel.unary_unary("/etcdserverpb.KV/Range", request_serializer=lambda b: b,
                               response_deserializer=lambda b: b)
    raw = call(b"\x0a" + bytes([len(key)]) + key, timeout=10)
    marker = b"\x2a" + bytes([len(b"value-") + len(key)])
    i = raw.find(marker + b"value-" + key)
    return None if i < 0 else raw[i + 2:i + 2 + len(b"value-") + len(key)]


def traced_puts(server: Server, prefix: bytes) -> int:
    """Puts PUTS keys one after the other under strace; returns the sync calls it saw."""
    fd, path = tempfile.mkstemp(prefix="rusd-strace-")
    os.close(fd)
    tracer = subprocess.Popen([STRACE, "-f", "-qq", "-p", str(server.proc.pid), "-o", path,
                               "-e", "trace=fsync,fdatasync,sync_file_range,msync,syncfs"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        tasks = glob.glob(f"/proc/{server.proc.pid}/task/*/status")
        while True:   # every thread attached
            traced = [t for t in tasks if _tracer_pid(t) not in (0, None)]
            if len(traced) == len(tasks):
                break
            if tracer.poll() is not None:
                why = tracer.stderr.read().decode(errors="replace")
                if "Operation not permitted" in why:   # a sandbox without ptrace: nothing to judge by
                    pytest.skip(f"strace cannot attach here: {why.strip()}")
            assert time.monotonic() < deadline, f"strace did not attach: {tracer.stderr.read1() if tracer.poll() is not None else ''}"
            time.sleep(0.05)
        channel = grpc.insecure_channel(server.endpoint)
        put = channel.unary_unary("/etcdserverpb.KV/Put", request_serializer=lambda b: b,
                                  response_deserializer=lambda b: b)
        for i in range(PUTS):
            key = prefix + b"%03d" % i
            put(put_request(key, b"value-" + key), timeout=10)
        channel.close()
    finally:
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=20)
    with open(path) as f:
        lines = f.read().splitlines()
    os.unlink(path)
    return sum(1 for line in lines if any(c in line for c in SYNC_CALLS))


def _tracer_pid(status_path: str) -> int | None:
    try:
        with open(status_path) as f:
            for line in f:
                if line.startswith("TracerPid:"):
                    return int(line.split()[1])
    except OSError:
        return None   # the thread ended
    return None


@pytest.mark.parametrize("engine", rusd_engines())
def test_unsafe_no_fsync(engine):
    synced = Server(f"rusd-{engine}")
    unsynced = Server(f"rusd-{engine}", extra_args=["--unsafe-no-fsync"])
    synced.start()
    unsynced.start()
    try:
        with_fsync = traced_puts(synced, b"s")
        without_fsync = traced_puts(unsynced, b"u")
        assert with_fsync >= PUTS, f"default rusd: {with_fsync} sync calls for {PUTS} sequential puts"
        assert without_fsync <= PUTS // 6, f"--unsafe-no-fsync: {without_fsync} sync calls for {PUTS} puts"

        # A process crash loses no acknowledged put.
        os.kill(unsynced.proc.pid, signal.SIGKILL)
        unsynced.proc.wait(timeout=10)
        unsynced._launch()
        channel = grpc.insecure_channel(unsynced.endpoint)
        missing = [i for i in range(PUTS)
                   if range_value(channel, b"u%03d" % i) != b"value-u%03d" % i]
        channel.close()
        assert missing == [], f"lost after SIGKILL: {missing}"
    finally:
        synced.stop()
        unsynced.stop()
