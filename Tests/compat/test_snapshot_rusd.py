"""rusd's snapshot, hash and HTTP endpoints through independent clients (not differential).

- `etcdctl snapshot save` against rusd succeeds; the file ends with the SHA-256 of the rest
  (checked with Python's hashlib) and has etcd's 512·n + 32 shape.
- `rusd snapshot restore` migrates the store through every engine (lmdb → leveldb → … → the
  first again); after each step a rusd serving the restored dir answers the same
  `etcdctl endpoint hashkv` and the same keys. A corrupt snapshot is refused and leaves nothing.
- /health, /version and /metrics over HTTP; /metrics parses with prometheus_client.

Needs RUSD_BIN (skipped otherwise).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import urllib.request

import pytest

from servers import Server, rusd_bin, temp_root

pytestmark = pytest.mark.skipif(rusd_bin() is None, reason="RUSD_BIN is not set")


def engines() -> list[str]:
    out = subprocess.run([rusd_bin(), "--version"], capture_output=True, text=True, check=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("Engines:"))
    return [e.strip() for e in line.split(":", 1)[1].split(",")]


class DataDirServer(Server):
    """rusd on an existing data dir (Server.start makes a fresh one)."""

    def __init__(self, target: str, data_dir: str):
        super().__init__(target)
        self._given = data_dir

    def start(self) -> None:
        super().start()  # fresh dir, then restart on ours
        self.stop_keep()
        self.data_dir = self._given
        cmd = self.command()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        self._wait_ready(cmd)

    def stop_keep(self) -> None:
        """Kills the process, keeping the temp root (its log) for the next start."""
        import signal
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None


def etcdctl(server: Server, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, ETCDCTL_API="3")
    return subprocess.run(["etcdctl", f"--endpoints={server.endpoint}", "--command-timeout=20s", *args],
                          capture_output=True, text=True, env=env, check=check, timeout=60)


def hashkv(server: Server) -> tuple[int, int, int]:
    doc = json.loads(etcdctl(server, "endpoint", "hashkv", "-w", "json").stdout)[0]["HashKV"]
    return doc["hash"], doc["header"]["revision"], doc.get("compact_revision", 0)


def all_kvs(server: Server) -> list[tuple[str, str, int, int, int]]:
    doc = json.loads(etcdctl(server, "get", "", "--from-key", "-w", "json").stdout)
    import base64
    return [(base64.b64decode(kv["key"]).decode(), base64.b64decode(kv.get("value", "")).decode(),
             kv["create_revision"], kv["mod_revision"], kv["version"]) for kv in doc.get("kvs", [])]


def fill(server: Server, round_: int) -> None:
    for i in range(30):
        etcdctl(server, "put", f"k{i % 9}", f"v{round_}-{i}-" + "x" * (i * 37))
        if i % 7 == 3:
            etcdctl(server, "del", f"k{(i + 1) % 9}")


def save_snapshot(server: Server, path: str) -> bytes:
    out = etcdctl(server, "snapshot", "save", path)
    assert "Snapshot saved at" in out.stdout, out.stdout + out.stderr
    data = open(path, "rb").read()
    assert len(data) % 512 == 32
    assert hashlib.sha256(data[:-32]).digest() == data[-32:]
    return data


def restore(snapshot: str, data_dir: str, engine: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([rusd_bin(), "snapshot", "restore", snapshot, "--data-dir", data_dir,
                           "--engine", engine], capture_output=True, text=True, check=check, timeout=120)


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="rusd-snap-", dir=temp_root())
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_snapshot_round_trip_through_every_engine(workdir):
    names = engines()
    chain = names + [names[0]]
    server = Server(f"rusd-{chain[0]}")
    server.start()
    try:
        fill(server, 0)
        etcdctl(server, "compact", str(hashkv(server)[1] - 10))
        fill(server, 1)
        expected_hash, expected_rev, expected_compact = hashkv(server)
        expected_kvs = all_kvs(server)
        assert expected_compact > 0 and len(expected_kvs) > 3
        snap = os.path.join(workdir, "snap0.db")
        save_snapshot(server, snap)
    finally:
        server.stop()

    for step, engine in enumerate(chain[1:], start=1):
        data_dir = os.path.join(workdir, f"data{step}")
        out = restore(snap, data_dir, engine)
        assert f"hashkv {expected_hash}" in out.stdout, out.stdout
        restored = DataDirServer(f"rusd-{engine}", data_dir)
        restored.start()
        try:
            assert hashkv(restored) == (expected_hash, expected_rev, expected_compact), engine
            assert all_kvs(restored) == expected_kvs, engine
            snap = os.path.join(workdir, f"snap{step}.db")
            save_snapshot(restored, snap)
        finally:
            restored.stop()  # removes its own temp root; the restored data dir is in workdir


def test_corrupt_snapshot_is_refused_and_writes_nothing(workdir):
    server = Server(f"rusd-{engines()[0]}")
    server.start()
    try:
        fill(server, 0)
        data = save_snapshot(server, os.path.join(workdir, "good.db"))
    finally:
        server.stop()
    bad = bytearray(data)
    bad[len(bad) // 2] ^= 0xFF
    bad_path = os.path.join(workdir, "bad.db")
    open(bad_path, "wb").write(bad)
    target = os.path.join(workdir, "restored")
    out = restore(bad_path, target, engines()[-1], check=False)
    assert out.returncode != 0
    assert "SHA-256 mismatch" in out.stderr and bad_path in out.stderr, out.stderr
    assert not os.path.exists(target)
    assert not [n for n in os.listdir(workdir) if "restoring" in n]
    # An existing data dir is refused too.
    os.mkdir(target)
    out = restore(os.path.join(workdir, "good.db"), target, engines()[0], check=False)
    assert out.returncode != 0 and "exists" in out.stderr


def http_get(server: Server, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://{server.endpoint}{path}", timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_http_endpoints_and_metrics_parse():
    from prometheus_client.parser import text_string_to_metric_families

    server = Server(f"rusd-{engines()[0]}")
    server.start()
    try:
        fill(server, 0)
        assert http_get(server, "/health") == (200, '{"health":"true","reason":""}')
        status, body = http_get(server, "/version")
        assert status == 200 and set(json.loads(body)) == {"etcdserver", "etcdcluster"}
        status, text = http_get(server, "/metrics")
        assert status == 200
        families = {f.name: f for f in text_string_to_metric_families(text)}
        value = lambda name: families[name].samples[0].value
        assert value("etcd_server_has_leader") == 1
        db_status = json.loads(etcdctl(server, "endpoint", "status", "-w", "json").stdout)[0]["Status"]
        assert value("etcd_debugging_mvcc_current_revision") == db_status["header"]["revision"]
        assert value("etcd_mvcc_db_total_size_in_bytes") > 0
        assert value("etcd_mvcc_db_total_size_in_use_in_bytes") > 0
        assert value("etcd_debugging_mvcc_keys_total") == 9
        assert value("etcd_server_proposals_committed_total") == db_status["raftIndex"]
        # prometheus_client strips _total from counter family names.
        assert families["rusd_engine_bytes_written"].samples[0].value > 0
    finally:
        server.stop()
