"""Defragment on rusd while clients keep writing and reading: every write and read succeeds,
and the data is unchanged afterwards (HashKV before == after for the same revision).

Needs RUSD_BIN (skipped otherwise).
"""
from __future__ import annotations

import json
import os
import subprocess
import threading

import pytest

from servers import Server, rusd_bin, rusd_engines

pytestmark = pytest.mark.skipif(rusd_bin() is None, reason="RUSD_BIN is not set")


def etcdctl(server: Server, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ETCDCTL_API="3")
    return subprocess.run(["etcdctl", f"--endpoints={server.endpoint}", "--command-timeout=30s", *args],
                          capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize("engine", rusd_engines())
def test_defrag_while_writing(engine):
    server = Server(f"rusd-{engine}")
    server.start()
    try:
        for i in range(40):
            assert etcdctl(server, "put", f"k{i % 10}", "x" * 5000).returncode == 0
        rev = json.loads(etcdctl(server, "endpoint", "status", "-w", "json").stdout)[0]["Status"]["header"]["revision"]
        assert etcdctl(server, "compaction", "--physical", str(rev - 5)).returncode == 0
        before = json.loads(etcdctl(server, "endpoint", "hashkv", f"--rev={rev}", "-w", "json").stdout)[0]["HashKV"]["hash"]

        failures: list[str] = []
        stop = threading.Event()

        def writer():
            n = 0
            while not stop.is_set():
                out = etcdctl(server, "put", f"w{n % 5}", str(n))
                if out.returncode != 0:
                    failures.append(out.stderr)
                out = etcdctl(server, "get", "k1")
                if out.returncode != 0 or "k1" not in out.stdout:
                    failures.append("get: " + out.stdout + out.stderr)
                n += 1

        t = threading.Thread(target=writer)
        t.start()
        try:
            for _ in range(3):
                out = etcdctl(server, "defrag")
                assert out.returncode == 0 and "Finished defragmenting" in out.stdout, out.stdout + out.stderr
        finally:
            stop.set()
            t.join()
        assert failures == []
        after = json.loads(etcdctl(server, "endpoint", "hashkv", f"--rev={rev}", "-w", "json").stdout)[0]["HashKV"]["hash"]
        assert after == before
    finally:
        server.stop()
