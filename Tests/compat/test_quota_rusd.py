"""NOSPACE on rusd through etcdctl and HTTP: puts, txns with puts and lease grants refused (not
differential: etcd's quota counts bbolt pages, so the point at which the alarm fires differs;
the behaviour after it must be etcd's, see test_nospace.py).

Needs RUSD_BIN (skipped otherwise).
"""
from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from servers import Server, rusd_bin

pytestmark = pytest.mark.skipif(rusd_bin() is None, reason="RUSD_BIN is not set")

NOSPACE = "etcdserver: mvcc: database space exceeded"


def etcdctl(server: Server, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ETCDCTL_API="3")
    return subprocess.run(["etcdctl", f"--endpoints={server.endpoint}", "--command-timeout=10s", *args],
                          capture_output=True, text=True, env=env, timeout=60)


def health(server: Server) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://{server.endpoint}/health", timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_nospace_alarm_blocks_puts_until_disarmed():
    server = Server("rusd-" + os.environ.get("RUSD_ENGINES", "lmdb").split()[0],
                    extra_args=["--quota-backend-bytes", "200000"])
    server.start()
    try:
        assert health(server) == (200, {"health": "true", "reason": ""})
        granted = etcdctl(server, "lease", "grant", "600")
        assert granted.returncode == 0, granted.stderr
        lease_id = granted.stdout.split()[1]          # "lease 694d... granted with TTL(600s)"
        value = "v" * 20000
        deadline = time.monotonic() + 30
        while True:
            out = etcdctl(server, "put", "big", value)
            if out.returncode != 0:
                break
            assert time.monotonic() < deadline, "NOSPACE never raised"
        assert NOSPACE in out.stderr, out.stderr
        alarms = etcdctl(server, "alarm", "list")
        assert "alarm:NOSPACE" in alarms.stdout, alarms.stdout + alarms.stderr
        status = json.loads(etcdctl(server, "endpoint", "status", "-w", "json").stdout)[0]["Status"]
        assert any("alarm:NOSPACE" in e for e in status["errors"]), status
        assert health(server) == (503, {"health": "false", "reason": "ALARM NOSPACE"})
        # Reads, deletes and compaction keep working; txns with a put fail too.
        assert etcdctl(server, "get", "big").returncode == 0
        txn = subprocess.run(["etcdctl", f"--endpoints={server.endpoint}", "txn"], input="\nput t 1\n\n\n",
                             capture_output=True, text=True, env=dict(os.environ, ETCDCTL_API="3"), timeout=30)
        assert NOSPACE in txn.stderr, txn.stdout + txn.stderr
        # LeaseGrant is refused too (etcd's capped applier); revoking frees space and works.
        refused = etcdctl(server, "lease", "grant", "600")
        assert refused.returncode != 0 and NOSPACE in refused.stderr, refused.stdout + refused.stderr
        revoked = etcdctl(server, "lease", "revoke", lease_id)
        assert revoked.returncode == 0, revoked.stderr
        assert etcdctl(server, "del", "big").returncode == 0
        rev = json.loads(etcdctl(server, "endpoint", "status", "-w", "json").stdout)[0]["Status"]["header"]["revision"]
        assert etcdctl(server, "compaction", "--physical", str(rev)).returncode == 0
        assert etcdctl(server, "defrag").returncode == 0
        # Still raised until disarmed, as in etcd.
        assert NOSPACE in etcdctl(server, "put", "small", "1").stderr
        assert etcdctl(server, "alarm", "disarm").returncode == 0
        assert etcdctl(server, "alarm", "list").stdout.strip() == ""
        assert etcdctl(server, "put", "small", "1").returncode == 0
        assert etcdctl(server, "lease", "grant", "600").returncode == 0
        assert health(server)[0] == 200
    finally:
        server.stop()
