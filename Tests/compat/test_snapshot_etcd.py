"""Snapshots in etcd's format, both ways, judged by a real etcd 3.4 and etcdctl.

- etcd → rusd (each engine) → etcd: a store written to a real etcd (Kubernetes-shaped keys,
  history with updates and deletions, a compaction, leases with attached keys, users and
  roles) is saved with `etcdctl snapshot save`, restored with `rusd snapshot restore` into
  each engine, served by rusd, saved again from rusd with `etcdctl snapshot save`, restored
  with `etcdctl snapshot restore` and served by etcd. At every step HashKV (hash, revision,
  compact revision), every key (value, create/mod revision, version, lease), every lease with
  its keys, and the users and roles equal the original etcd's.
- rusd → etcd → rusd, the same from a rusd store.
- Alarms: etcd carries its `alarm` bucket through a restore and starts with them raised; rusd
  does the same both ways (each engine), and keeps them (and their disarm) across restarts.
- `etcdctl snapshot status` and `rusd snapshot status` agree on every file either side wrote,
  with the right revision and size; etcd's `member/snap/db` of a stopped etcd restores too; a
  corrupt or truncated file is refused and leaves nothing behind.

SNAPSHOT_KEYS sets the store size (default 10,000 keys; the issue's long mode is 100,000).
Needs RUSD_BIN (skipped otherwise).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile

import grpc
import pytest

from etcd_api import EtcdAPI  # the session fixture `api` (conftest.py) is one
from servers import Server, free_port, rusd_bin, rusd_engines, temp_root

pytestmark = pytest.mark.skipif(rusd_bin() is None, reason="RUSD_BIN is not set")

KEYS = int(os.environ.get("SNAPSHOT_KEYS", "10000"))
BATCH = 100


class DirServer(Server):
    """A server on a data dir prepared before it starts: `prepare(server)` runs once the ports
    are chosen (etcdctl snapshot restore needs the peer URL)."""

    def __init__(self, target: str, root: str, prepare):
        super().__init__(target)
        self._given_root = root
        self._prepare = prepare

    def start(self, attempts: int = 1) -> None:
        self.data_dir = os.path.join(self._given_root, "data")
        self.log_path = os.path.join(self._given_root, "server.log")
        self.client_port, self.peer_port = free_port(), free_port()
        self._prepare(self)
        self._launch()


def etcdctl(endpoint: str | None, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, ETCDCTL_API="3")
    cmd = ["etcdctl", *([f"--endpoints={endpoint}", "--command-timeout=60s"] if endpoint else []), *args]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)}: {out.stdout}{out.stderr}")
    return out


def rusd(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run([rusd_bin(), *args], capture_output=True, text=True, timeout=300)
    if check and out.returncode != 0:
        raise AssertionError(f"rusd {' '.join(args)}: {out.stdout}{out.stderr}")
    return out


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="rusd-etcdsnap-", dir=temp_root())
    yield d
    shutil.rmtree(d, ignore_errors=True)


class Client:
    def __init__(self, api: EtcdAPI, server: Server):
        self.api = api
        self.channel = grpc.insecure_channel(server.endpoint, options=[("grpc.max_receive_message_length", 256 << 20)])

    def call(self, rpc: str, **fields):
        return self.api.callable(self.channel, rpc)(self.api.request(rpc, fields), timeout=120)

    def close(self):
        self.channel.close()


def populate(api: EtcdAPI, server: Server) -> None:
    """Kubernetes-shaped objects with history, a compaction, leases with keys, users, roles."""
    c = Client(api, server)
    try:
        def txn(ops):
            c.call("KV.Txn", success=ops)

        def put(k, v, lease=0):
            return {"request_put": {"key": k.encode(), "value": v.encode(), "lease": lease}}

        def obj(i, gen):
            return json.dumps({"kind": "Pod", "apiVersion": "v1", "metadata": {
                "name": f"pod-{i}", "namespace": f"ns-{i % 25}", "resourceVersion": str(gen),
                "labels": {"app": f"app-{i % 50}"}}, "spec": {"nodeName": f"node-{i % 7}"}})

        keys = [f"/registry/pods/ns-{i % 25}/pod-{i}" for i in range(KEYS)]
        for start in range(0, KEYS, BATCH):
            txn([put(keys[i], obj(i, 0)) for i in range(start, min(KEYS, start + BATCH))])
        # History: every 10th object updated twice, every 20th deleted.
        for gen in (1, 2):
            for start in range(0, KEYS, BATCH * 10):
                txn([put(keys[i], obj(i, gen)) for i in range(start, min(KEYS, start + BATCH * 10), 10)])
        for start in range(0, KEYS, BATCH * 20):
            txn([{"request_delete_range": {"key": keys[i].encode()}}
                 for i in range(start + 5, min(KEYS, start + BATCH * 20), 20)])
        rev = c.call("KV.Range", key=b"/registry/", range_end=b"/registry0", limit=1).header.revision
        c.call("KV.Compact", revision=rev - 3, physical=True)
        # After the compaction: leases with keys, more updates and a deletion.
        for n in range(3):
            lease = c.call("Lease.LeaseGrant", TTL=3600 + n).ID
            txn([put(f"/registry/leases/kube-node-lease/node-{n}-{j}", f"renew-{j}", lease) for j in range(5)])
        c.call("Lease.LeaseGrant", TTL=7200)   # a lease with no keys
        txn([put(keys[i], obj(i, 3)) for i in range(0, min(KEYS, 300), 3)])
        c.call("KV.DeleteRange", key=keys[1].encode())
        c.call("KV.Put", key=b"/registry/events/big", value=b"e" * 70000)  # overflow pages
    finally:
        c.close()
    ep = server.endpoint
    etcdctl(ep, "user", "add", "root", "--new-user-password=rootpw")
    etcdctl(ep, "user", "grant-role", "root", "root")
    etcdctl(ep, "role", "add", "reader")
    etcdctl(ep, "role", "grant-permission", "reader", "read", "/registry/pods/", "--prefix")
    etcdctl(ep, "role", "grant-permission", "reader", "readwrite", "/registry/leases/", "/registry/leases0")
    etcdctl(ep, "user", "add", "kube", "--new-user-password=kubepw")
    etcdctl(ep, "user", "grant-role", "kube", "reader")


def state(api: EtcdAPI, server: Server) -> dict:
    """Everything a snapshot must carry, as the server reports it."""
    ep = server.endpoint
    c = Client(api, server)
    try:
        h = c.call("Maintenance.HashKV", revision=0)
        kvs = c.call("KV.Range", key=b"\0", range_end=b"\0").kvs
        leases = sorted(l.ID for l in c.call("Lease.LeaseLeases").leases)
        lease_keys = {}
        for lid in leases:
            ttl = c.call("Lease.LeaseTimeToLive", ID=lid, keys=True)
            lease_keys[lid] = (ttl.grantedTTL, sorted(ttl.keys))
    finally:
        c.close()
    roles = etcdctl(ep, "role", "list").stdout.split()
    users = etcdctl(ep, "user", "list").stdout.split()
    return {
        "hashkv": (h.hash, h.header.revision, h.compact_revision),
        "kvs": [(kv.key, hashlib.sha256(kv.value).hexdigest(), kv.create_revision, kv.mod_revision, kv.version, kv.lease)
                for kv in kvs],
        "leases": lease_keys,
        "users": {u: etcdctl(ep, "user", "get", u).stdout for u in users},
        "roles": {r: etcdctl(ep, "role", "get", r).stdout for r in roles},
    }


def assert_same(got: dict, want: dict, where: str) -> None:
    for field in ("hashkv", "leases", "users", "roles"):
        assert got[field] == want[field], f"{where}: {field} differs: {got[field]} != {want[field]}"
    assert len(got["kvs"]) == len(want["kvs"]), where
    assert got["kvs"] == want["kvs"], where


def save(server: Server, path: str) -> dict:
    """etcdctl snapshot save; checks the trailer and that both status commands agree."""
    etcdctl(server.endpoint, "snapshot", "save", path)
    data = open(path, "rb").read()
    assert len(data) % 512 == 32 and hashlib.sha256(data[:-32]).digest() == data[-32:]
    theirs = json.loads(etcdctl(None, "snapshot", "status", path, "-w", "json").stdout)
    ours = json.loads(rusd("snapshot", "status", path, "-w", "json").stdout)
    assert ours == theirs, path
    assert theirs["totalSize"] == len(data) - 32
    assert rusd("snapshot", "status", path).stdout == etcdctl(None, "snapshot", "status", path).stdout
    assert rusd("snapshot", "status", path, "-w", "table").stdout == etcdctl(None, "snapshot", "status", path, "-w", "table").stdout
    return theirs


def etcd_from(snapshot: str, root: str) -> DirServer:
    def prepare(s: Server) -> None:
        peer = f"http://127.0.0.1:{s.peer_port}"
        etcdctl(None, "snapshot", "restore", snapshot, "--data-dir", s.data_dir, "--name", s.name,
                "--initial-cluster", f"{s.name}={peer}", "--initial-advertise-peer-urls", peer)
    os.makedirs(root)
    return DirServer("etcd", root, prepare)


def rusd_from(snapshot: str, root: str, engine: str) -> DirServer:
    def prepare(s: Server) -> None:
        out = rusd("snapshot", "restore", snapshot, "--data-dir", s.data_dir, "--engine", engine)
        assert "restored snapshot" in out.stdout
    os.makedirs(root)
    return DirServer(f"rusd-{engine}", root, prepare)


def check_writable(server: Server) -> None:
    """A restored server takes new writes (its applied index does not swallow them)."""
    etcdctl(server.endpoint, "put", "/after/restore", "yes")
    assert etcdctl(server.endpoint, "get", "/after/restore", "--print-value-only").stdout.strip() == "yes"


def test_etcd_to_rusd_to_etcd(api, workdir):
    source = Server("etcd")
    source.start()
    try:
        populate(api, source)
        want = state(api, source)
        first = os.path.join(workdir, "etcd.db")
        status = save(source, first)
        assert status["revision"] == want["hashkv"][1]
    finally:
        source.stop()
    assert want["hashkv"][2] > 0 and len(want["leases"]) == 4 and len(want["kvs"]) > KEYS * 0.9

    for engine in rusd_engines():
        server = rusd_from(first, os.path.join(workdir, f"rusd-{engine}"), engine)
        server.start()
        try:
            assert_same(state(api, server), want, f"rusd {engine} restored from etcd")
            second = os.path.join(workdir, f"rusd-{engine}.db")
            assert save(server, second)["revision"] == want["hashkv"][1]
        finally:
            server.stop()
        back = etcd_from(second, os.path.join(workdir, f"etcd-from-{engine}"))
        back.start()
        try:
            assert_same(state(api, back), want, f"etcd restored from rusd {engine}")
            check_writable(back)
        finally:
            back.stop()


def test_rusd_to_etcd_to_rusd(api, workdir):
    engines = rusd_engines()
    source = Server(f"rusd-{engines[0]}")
    source.start()
    try:
        populate(api, source)
        want = state(api, source)
        first = os.path.join(workdir, "rusd.db")
        assert save(source, first)["revision"] == want["hashkv"][1]
    finally:
        source.stop()
    etcd = etcd_from(first, os.path.join(workdir, "etcd"))
    etcd.start()
    try:
        assert_same(state(api, etcd), want, "etcd restored from rusd")
        second = os.path.join(workdir, "etcd.db")
        save(etcd, second)
    finally:
        etcd.stop()
    for engine in engines:
        server = rusd_from(second, os.path.join(workdir, f"rusd-{engine}"), engine)
        server.start()
        try:
            assert_same(state(api, server), want, f"rusd {engine} restored from etcd")
            check_writable(server)
        finally:
            server.stop()


def test_member_snap_db_of_stopped_etcd_and_corrupt_files(api, workdir):
    """A cleanly stopped etcd's member/snap/db (no SHA-256 trailer) restores; corrupt and
    truncated snapshots are refused with an offset and leave nothing behind."""
    import signal
    source = Server("etcd")
    source.start()
    try:
        c = Client(api, source)
        for i in range(200):
            c.call("KV.Put", key=f"/m/{i}".encode(), value=b"v" * i)
        c.close()
        want = state(api, source)
        good = os.path.join(workdir, "good.db")
        etcdctl(source.endpoint, "snapshot", "save", good)
        os.kill(source.proc.pid, signal.SIGTERM)
        source.proc.wait(timeout=30)
        db = os.path.join(workdir, "member-snap-db")
        shutil.copy(os.path.join(source.data_dir, "member", "snap", "db"), db)
    finally:
        source.stop()
    engine = rusd_engines()[0]
    server = rusd_from(db, os.path.join(workdir, "from-db"), engine)
    server.start()
    try:
        assert_same(state(api, server), want, "rusd restored from member/snap/db")
    finally:
        server.stop()

    data = open(good, "rb").read()
    cases = {
        "flipped": data[:5000] + bytes([data[5000] ^ 0xFF]) + data[5001:],   # SHA-256 catches it
        "truncated": data[:len(data) // 2],                                   # pages missing
        "garbage": b"\x42" * 8192,
    }
    for name, bytes_ in cases.items():
        path = os.path.join(workdir, name)
        open(path, "wb").write(bytes_)
        target = os.path.join(workdir, f"restored-{name}")
        out = rusd("snapshot", "restore", path, "--data-dir", target, "--engine", engine, check=False)
        assert out.returncode != 0, name
        assert path in out.stderr and "offset" in out.stderr, out.stderr
        assert not os.path.exists(target), name
        if name != "flipped":   # status, like etcdctl's, reads pages without the trailer check
            assert rusd("snapshot", "status", path, check=False).returncode != 0, name
    assert not [n for n in os.listdir(workdir) if "restoring" in n]


def test_auth_enabled_carries_over(workdir):
    """etcd with auth on → rusd → etcd: each restored server refuses an anonymous read and
    serves root with its password (bcrypt hash carried over)."""
    root = "--user=root:rootpw"
    source = Server("etcd")
    source.start()
    try:
        ep = source.endpoint
        etcdctl(ep, "user", "add", "root", "--new-user-password=rootpw")
        etcdctl(ep, "user", "grant-role", "root", "root")
        etcdctl(ep, "put", "/secret", "s3")
        etcdctl(ep, "auth", "enable")
        first = os.path.join(workdir, "etcd-auth.db")
        etcdctl(ep, root, "snapshot", "save", first)
    finally:
        source.stop()

    def check(server: Server, where: str) -> None:
        anonymous = etcdctl(server.endpoint, "get", "/secret", check=False)
        assert anonymous.returncode != 0, f"{where}: anonymous read allowed: {anonymous.stdout}"
        got = etcdctl(server.endpoint, root, "get", "/secret", "--print-value-only").stdout.strip()
        assert got == "s3", where

    engine = rusd_engines()[0]
    server = rusd_from(first, os.path.join(workdir, "rusd-auth"), engine)
    server.start()
    try:
        check(server, f"rusd {engine} from etcd")
        second = os.path.join(workdir, "rusd-auth.db")
        etcdctl(server.endpoint, root, "snapshot", "save", second)
    finally:
        server.stop()
    back = etcd_from(second, os.path.join(workdir, "etcd-auth"))
    back.start()
    try:
        check(back, "etcd from rusd")
    finally:
        back.stop()


def raise_alarm(api: EtcdAPI, server: Server, alarm: str) -> int:
    """Raises `alarm` on the server's own member through Maintenance.Alarm; returns its ID."""
    c = Client(api, server)
    try:
        member = c.call("Maintenance.Status").header.member_id
        c.call("Maintenance.Alarm", action="ACTIVATE", memberID=member, alarm=alarm)
        return member
    finally:
        c.close()


def alarm_list(server: Server) -> list[str]:
    """etcdctl alarm list's lines ("memberID:N alarm:NOSPACE "), trailing space dropped."""
    return [line.strip() for line in etcdctl(server.endpoint, "alarm", "list").stdout.splitlines() if line.strip()]


def refused_put(server: Server) -> str:
    """etcdctl put's error on a server whose NOSPACE alarm is raised ("" when it succeeds)."""
    out = etcdctl(server.endpoint, "put", "/alarm/probe", "x", check=False)
    if out.returncode == 0:
        return ""
    # etcdctl's last line ("Error: ..."); the retry log lines above it carry timestamps.
    return out.stderr.strip().splitlines()[-1]


def test_alarms_travel_as_etcd_carries_them(api, workdir):
    """etcd keeps the `alarm` bucket through `etcdctl snapshot restore`: the restored etcd
    starts with the alarm raised, under the old member's ID, and refuses puts. rusd restores
    etcd's file into every engine and starts the same way (the alarm listed, puts refused with
    etcd's error); rusd persists alarms, so a restart keeps them and a disarm stays disarmed.
    rusd's snapshot carries its raised alarms the same way (judged by etcd restored from it)."""
    source = Server("etcd")
    source.start()
    try:
        etcd_member = raise_alarm(api, source, "NOSPACE")
        want = [f"memberID:{etcd_member} alarm:NOSPACE"]
        assert alarm_list(source) == want
        from_etcd = os.path.join(workdir, "etcd-alarm.db")
        etcdctl(source.endpoint, "snapshot", "save", from_etcd)
    finally:
        source.stop()
    back = etcd_from(from_etcd, os.path.join(workdir, "etcd-alarm"))
    back.start()
    try:
        assert alarm_list(back) == want, "etcd's own restore keeps the alarm (the behaviour matched)"
        etcd_refusal = refused_put(back)
        assert "database space exceeded" in etcd_refusal, etcd_refusal
    finally:
        back.stop()

    for engine in rusd_engines():
        outputs = []

        def prepare(s: Server, engine=engine) -> None:
            outputs.append(rusd("snapshot", "restore", from_etcd, "--data-dir", s.data_dir, "--engine", engine).stdout)
        os.makedirs(os.path.join(workdir, f"rusd-alarm-{engine}"))
        restored = DirServer(f"rusd-{engine}", os.path.join(workdir, f"rusd-alarm-{engine}"), prepare)
        restored.start()
        try:
            assert f"NOSPACE (member {etcd_member:x})" in outputs[0], outputs[0]
            assert alarm_list(restored) == want, f"{engine}: restored as etcd restores it"
            assert refused_put(restored) == etcd_refusal, engine
            restored.restart()
            assert alarm_list(restored) == want, f"{engine}: the alarm survives a restart"
            assert refused_put(restored) == etcd_refusal, engine
            etcdctl(restored.endpoint, "alarm", "disarm")
            assert alarm_list(restored) == [] and refused_put(restored) == "", engine
            restored.restart()
            assert alarm_list(restored) == [] and refused_put(restored) == "", f"{engine}: the disarm survives a restart"
        finally:
            restored.stop()

    rusd_server = Server(f"rusd-{rusd_engines()[0]}")
    rusd_server.start()
    try:
        rusd_member = raise_alarm(api, rusd_server, "CORRUPT")
        assert alarm_list(rusd_server) == [f"memberID:{rusd_member} alarm:CORRUPT"]
        rusd_server.restart()
        assert alarm_list(rusd_server) == [f"memberID:{rusd_member} alarm:CORRUPT"], "raised again after a restart"
        from_rusd = os.path.join(workdir, "rusd-alarm.db")
        etcdctl(rusd_server.endpoint, "snapshot", "save", from_rusd)
    finally:
        rusd_server.stop()
    etcd = etcd_from(from_rusd, os.path.join(workdir, "etcd-from-rusd-alarm"))
    etcd.start()
    try:
        assert alarm_list(etcd) == [f"memberID:{rusd_member} alarm:CORRUPT"]
    finally:
        etcd.stop()
