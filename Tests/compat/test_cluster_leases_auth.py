"""rusd cluster mode (issue 19.3): leases kept alive on any member, auth changes through the log.

Three members on lmdb, leveldb and lsm share one log in a scratch PostgreSQL. One of them (the
lease holder, which Status names as leader) decides lease expiry for the cluster; independent clients
(grpcio, etcdctl, and a real single-member etcd 3.4.23 as the oracle for auth answers) judge:

- a lease with TTL 3 s kept alive for 10 s by `etcdctl lease keep-alive` through a member that
  is NOT the holder survives, and LeaseTimeToLive answers alike on every member meanwhile;
  once the keep-alives stop it is revoked on every member within TTL + 2 s, not before ~TTL;
- a lease nobody keeps alive is revoked on every member within TTL + 2 s;
- the holder killed with -9 while a lease is kept alive through another member: another member
  takes the role over and the lease lives on (then expires once the keep-alives stop);
- an etcdctl script of auth changes made on m1 (users, roles, permissions, auth enable,
  password change, permission revoke, auth disable) and checks made on m2 and m3, run without
  pauses, gets the same answers, command by command, as the same script run against etcd
  (writes are checked again when applied, admin reads wait for the read index); the log
  carries the password hashes, never the passwords; every member ends with the same auth
  revision;
- a simple token issued by Authenticate on m1 (a log entry) works at once on m2 and m3, names
  its user there (not root), is forgotten everywhere when the password changes, and lives
  --auth-token-ttl on each member from its last use there (etcd's TTL); a forged one is refused;
- JWTs (same key on every member) issued by one member work on another;
- a version-1 log is upgraded in place to the current version by a member of this version.

Skips only when PostgreSQL or rusd is not installed (CI installs both).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time

import grpc
import pytest

import pg_cluster
import servers

TIMEOUT = 10
TTL = 3
SCHEMA_VERSION = 3      # LogSchema.version
TOKEN_TTL = 4


@pytest.fixture(scope="module")
def cluster():
    with pg_cluster.running_cluster(extra_args=["--bcrypt-cost", "4", "--auth-token-ttl", str(TOKEN_TTL)]) as c:
        yield c


class Client:
    def __init__(self, api, member: servers.Server):
        self.api, self.member = api, member
        self.channel = grpc.insecure_channel(member.endpoint)

    def call(self, rpc: str, token: str | None = None, **fields):
        return self.api.callable(self.channel, rpc)(self.api.request(rpc, fields), timeout=TIMEOUT,
                                                    metadata=[("token", token)] if token else None)

    def close(self):
        self.channel.close()


def holder(api, cluster, among=None) -> servers.Server:
    """The member every live member's Status names as leader (the lease holder), waiting up to
    10 s for them to agree on one of `among` (default: every member)."""
    candidates = among or cluster.members
    deadline = time.monotonic() + 10
    while True:
        leaders, ids = set(), {}
        for m in cluster.members:
            if m.proc is None or m.proc.poll() is not None:
                continue
            c = Client(api, m)
            try:
                st = c.call("Maintenance.Status")
                leaders.add(st.leader)
                ids[st.header.member_id] = m
            except grpc.RpcError:
                leaders.add(None)
            finally:
                c.close()
        if len(leaders) == 1:
            found = ids.get(next(iter(leaders)))
            if found is not None and found in candidates:
                return found
        assert time.monotonic() < deadline, f"no agreed lease holder among {[m.name for m in candidates]}: {leaders}"
        time.sleep(0.2)


def ttls(cs: list[Client], lease: int) -> list[int]:
    return [c.call("Lease.LeaseTimeToLive", ID=lease).TTL for c in cs]


def key_on_all(cs: list[Client], key: bytes) -> list[int]:
    """How many kvs each member has under `key` (linearizable reads)."""
    return [len(c.call("KV.Range", key=key).kvs) for c in cs]


def keep_alive(member: servers.Server, lease: int) -> subprocess.Popen:
    """etcdctl's keep-alive loop (a request every TTL/3) on `member` only."""
    return subprocess.Popen(["etcdctl", f"--endpoints={member.endpoint}", "lease", "keep-alive", f"{lease:x}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "ETCDCTL_API": "3"})


def stop(p: subprocess.Popen) -> str:
    p.terminate()
    try:
        out, _ = p.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate(timeout=5)
    return out


def wait_revoked(cs: list[Client], lease: int, key: bytes, limit: float) -> float:
    """Seconds until every member reports the lease gone (TTL -1) and the key deleted."""
    started = time.monotonic()
    while True:
        if ttls(cs, lease) == [-1] * len(cs) and key_on_all(cs, key) == [0] * len(cs):
            return time.monotonic() - started
        assert time.monotonic() - started < limit, \
            f"lease {lease:x} not revoked everywhere after {limit} s: TTLs {ttls(cs, lease)}, keys {key_on_all(cs, key)}"
        time.sleep(0.1)


def grant_with_key(c: Client, key: bytes) -> int:
    lease = c.call("Lease.LeaseGrant", TTL=TTL).ID
    c.call("KV.Put", key=key, value=b"held", lease=lease)
    return lease


def test_keepalive_on_a_non_holder_keeps_the_lease_cluster_wide(api, cluster):
    h = holder(api, cluster)
    others = [m for m in cluster.members if m is not h]
    cs = [Client(api, m) for m in cluster.members]
    via = Client(api, others[0])
    try:
        lease = grant_with_key(via, b"/lease/kept")
        ka = keep_alive(others[0], lease)
        try:
            started = time.monotonic()
            samples = []
            while time.monotonic() - started < 10:
                time.sleep(1)
                assert ka.poll() is None, f"etcdctl lease keep-alive exited: {ka.stdout.read()}"
                t = ttls(cs, lease)
                samples.append(t)
                # Every member knows the renewals made on others[0]: the same remaining TTL (the
                # integer seconds may straddle a boundary between two reads).
                assert min(t) > 0 and max(t) - min(t) <= 1, f"TTLs on {[m.name for m in cluster.members]}: {t}"
            assert key_on_all(cs, b"/lease/kept") == [1, 1, 1]
            assert holder(api, cluster) is h, "the holder changed during the test"
        finally:
            out = stop(ka)
        assert out.count(f"lease {lease:016x} keepalived with TTL({TTL})") >= 8, out
        # No keep-alive any more: the holder revokes it once the last renewal's TTL is over.
        # The last keep-alive was at most ~1 s (TTL/3) before the stop.
        time.sleep(TTL - 1.5)
        assert min(ttls(cs, lease)) >= 0 and key_on_all(cs, b"/lease/kept") == [1, 1, 1], "revoked early"
        waited = (TTL - 1.5) + wait_revoked(cs, lease, b"/lease/kept", limit=5)
        assert waited <= TTL + 2, f"revoked {waited:.1f} s after the keep-alives stopped (TTL {TTL})"
    finally:
        for c in cs + [via]:
            c.close()


def test_a_lease_without_keepalive_is_revoked_everywhere_within_ttl(api, cluster):
    h = holder(api, cluster)
    others = [m for m in cluster.members if m is not h]
    cs = [Client(api, m) for m in cluster.members]
    try:
        lease = grant_with_key(cs[cluster.members.index(others[1])], b"/lease/forgotten")
        granted = time.monotonic()
        waited = wait_revoked(cs, lease, b"/lease/forgotten", limit=TTL + 4)
        total = time.monotonic() - granted
        assert TTL - 0.5 <= total <= TTL + 2, f"revoked {total:.1f} s after the grant (TTL {TTL}, waited {waited:.1f})"
    finally:
        for c in cs:
            c.close()


def etcdctl(endpoint: str, *args: str, user: str | None = None, stdin: str | None = None) -> tuple[int, str]:
    """(exit code, output) with etcdctl's log lines and timestamps dropped."""
    cmd = ["etcdctl", f"--endpoints={endpoint}", *(["--user", user] if user else []), *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30, input=stdin,
                       env={**os.environ, "ETCDCTL_API": "3"})
    lines = [line for line in (r.stdout + r.stderr).splitlines() if line.strip() and not line.startswith("{")]
    return r.returncode, "\n".join(lines)


# (member index, user, etcdctl arguments, stdin): changes on m1, checks on m2 and m3.
AUTH_SCRIPT = [
    (0, None, ["role", "add", "root"], None),
    (0, None, ["user", "add", "root:rootpw"], None),
    (0, None, ["user", "grant-role", "root", "root"], None),
    (0, None, ["role", "add", "reader"], None),
    (0, None, ["role", "grant-permission", "reader", "read", "/auth/", "--prefix"], None),
    (0, None, ["user", "add", "alice:alicepw"], None),
    (0, None, ["user", "grant-role", "alice", "reader"], None),
    (0, None, ["put", "/auth/a", "1"], None),
    (1, None, ["user", "get", "alice"], None),
    (0, None, ["auth", "enable"], None),
    (1, None, ["get", "/auth/a"], None),                          # no user: refused
    (2, None, ["put", "/auth/a", "x"], None),
    (1, "alice:alicepw", ["get", "/auth/a"], None),               # allowed
    (2, "alice:wrong", ["get", "/auth/a"], None),                 # wrong password
    (2, "alice:alicepw", ["put", "/auth/a", "2"], None),          # read only
    (2, "root:rootpw", ["put", "/auth/a", "2"], None),
    (1, "alice:alicepw", ["get", "/auth/a"], None),
    (1, "alice:alicepw", ["user", "add", "mallory:x"], None),     # not root
    (2, "root:rootpw", ["user", "list"], None),
    (0, "root:rootpw", ["user", "passwd", "alice", "--interactive=false"], "newpw\n"),
    (1, "alice:alicepw", ["get", "/auth/a"], None),               # old password
    (2, "alice:newpw", ["get", "/auth/a"], None),
    (0, "root:rootpw", ["role", "revoke-permission", "reader", "/auth/", "--prefix"], None),
    (2, "alice:newpw", ["get", "/auth/a"], None),                 # no permission any more
    (1, "root:rootpw", ["role", "get", "reader"], None),
    (0, "root:rootpw", ["user", "delete", "alice"], None),
    (2, "alice:newpw", ["get", "/auth/a"], None),
    (0, "root:rootpw", ["auth", "disable"], None),
    (2, None, ["get", "/auth/a"], None),
    (1, None, ["user", "list"], None),
]


def test_auth_changes_on_one_member_apply_on_every_member_as_etcd_answers(api, cluster):
    etcd = servers.Server("etcd", name="oracle", extra_args=["--bcrypt-cost", "4"])
    etcd.start()
    try:
        expected = [etcdctl(etcd.endpoint, *args, user=user, stdin=stdin) for _, user, args, stdin in AUTH_SCRIPT]
    finally:
        etcd.stop()
    # No pause between commands, on whichever member: writes are checked again when applied,
    # reads and the admin reads wait for the read index (docs/cluster.md, Auth).
    got = [etcdctl(cluster.members[i].endpoint, *args, user=user, stdin=stdin) for i, user, args, stdin in AUTH_SCRIPT]
    diffs = [f"m{i + 1} {user or ''} {' '.join(args)}: etcd {e!r}, cluster {g!r}"
             for (i, user, args, _), e, g in zip(AUTH_SCRIPT, expected, got) if e != g]
    assert not diffs, "\n".join(diffs)
    # The script did get refused and allowed answers (so the comparison above means something).
    assert any(code != 0 for code, _ in got) and any(code == 0 and out == "/auth/a\n2" for code, out in got)
    # Every member applied the same changes: same auth revision (auth is disabled again, so
    # AuthStatus needs no token).
    cs = [Client(api, m) for m in cluster.members]
    try:
        revisions = {c.call("Auth.AuthStatus").authRevision for c in cs}
        assert len(revisions) == 1 and revisions.pop() > 1
    finally:
        for c in cs:
            c.close()
    # The log carries bcrypt hashes, never a password.
    entries = bytes.fromhex(cluster.pg.psql("SELECT string_agg(encode(entry, 'hex'), '') FROM rusd_log"))
    for password in (b"rootpw", b"alicepw", b"newpw"):
        assert password not in entries
    assert entries.count(b"$2a$04$") + entries.count(b"$2b$04$") >= 3


def code_and_message(call) -> tuple[grpc.StatusCode | None, str]:
    """(status code, details) of a call that fails; (None, "") when it succeeds."""
    try:
        call()
        return None, ""
    except grpc.RpcError as e:
        return e.code(), e.details()


def test_simple_token_issued_on_one_member_works_on_every_member(api, cluster):
    cs = [Client(api, m) for m in cluster.members]
    m1, m2, m3 = cs
    try:
        # Auth is disabled here (the script above ends with auth disable): no token needed yet.
        for rpc, fields in [("Auth.RoleAdd", {"name": "root"}), ("Auth.UserAdd", {"name": "root", "password": "rootpw"}),
                            ("Auth.UserGrantRole", {"user": "root", "role": "root"}),
                            ("Auth.RoleAdd", {"name": "tok"}), ("Auth.UserAdd", {"name": "bob", "password": "bobpw"})]:
            code, details = code_and_message(lambda: m1.call(rpc, **fields))
            assert code is None or "already exists" in details, (rpc, code, details)
        m1.call("Auth.RoleGrantPermission", name="tok", perm={"permType": "READWRITE", "key": b"/tok/", "range_end": b"/tok0"})
        m1.call("Auth.UserGrantRole", user="bob", role="tok")
        m1.call("Auth.AuthEnable")
        root = m1.call("Auth.Authenticate", name="root", password="rootpw").token
        try:
            token = m1.call("Auth.Authenticate", name="bob", password="bobpw").token
            # etcd's simple token: 16 letters, ".", the index of the Authenticate log entry.
            assert re.fullmatch(r"[A-Za-z]{16}\.[0-9]+", token), token
            # At once on the other members (no pause): they wait for the entry if need be.
            m2.call("KV.Put", token=token, key=b"/tok/a", value=b"from-m2")
            assert [kv.value for kv in m3.call("KV.Range", token=token, key=b"/tok/a").kvs] == [b"from-m2"]
            m3.call("KV.Put", token=token, key=b"/tok/b", value=b"from-m3")
            # The token names bob there, not anyone else: outside /tok/ is refused.
            for c in (m2, m3):
                code, details = code_and_message(lambda: c.call("KV.Put", token=token, key=b"/other", value=b"x"))
                assert (code, details) == (grpc.StatusCode.PERMISSION_DENIED, "etcdserver: permission denied")
            # Forged tokens: a known index with another prefix, an index not in the log yet.
            index = int(token.split(".")[1])
            for forged in ("A" * 16 + f".{index}", "B" * 16 + f".{index + 1_000_000}", token + "0"):
                for c in (m2, m3):
                    code, details = code_and_message(lambda: c.call("KV.Range", token=forged, key=b"/tok/a"))
                    assert (code, details) == (grpc.StatusCode.UNAUTHENTICATED, "etcdserver: invalid auth token"), forged

            # etcd's TTL: each member's TTL starts when it applies the grant and is renewed by
            # each use made there. Used on m2 every second, the token lives on there past
            # TOKEN_TTL; unused on m1 and m3 since, it has expired there.
            fresh = m1.call("Auth.Authenticate", name="bob", password="bobpw").token
            started = time.monotonic()
            while time.monotonic() - started < TOKEN_TTL + 1.5:
                m2.call("KV.Range", token=fresh, key=b"/tok/a")
                time.sleep(1)
            for c in (m1, m3):
                code, details = code_and_message(lambda: c.call("KV.Range", token=fresh, key=b"/tok/a"))
                assert (code, details) == (grpc.StatusCode.UNAUTHENTICATED, "etcdserver: invalid auth token"), c.member.name
            m2.call("KV.Range", token=fresh, key=b"/tok/a")

            # A password change made on m1 forgets bob's tokens on every member.
            token = m3.call("Auth.Authenticate", name="bob", password="bobpw").token
            m1.call("Auth.UserChangePassword", token=m1.call("Auth.Authenticate", name="root", password="rootpw").token,
                    name="bob", password="newpw")
            for c in cs:
                code, details = code_and_message(lambda: c.call("KV.Range", token=token, key=b"/tok/a"))
                assert (code, details) == (grpc.StatusCode.UNAUTHENTICATED, "etcdserver: invalid auth token"), c.member.name
        finally:
            root = m2.call("Auth.Authenticate", name="root", password="rootpw").token
            m2.call("Auth.AuthDisable", token=root)
    finally:
        for c in cs:
            c.close()


def test_jwt_issued_by_one_member_works_on_another(api, cluster):
    """JWTs need nothing from the log: every member verifies them with the same key."""
    keys = tempfile.mkdtemp(prefix="rusd-cluster-jwt-")
    priv, pub = os.path.join(keys, "k.pem"), os.path.join(keys, "k.pub.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", priv],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", priv, "-pubout", "-out", pub], check=True, capture_output=True)
    cluster.pg.psql("CREATE DATABASE jwt", database="postgres")
    url = f"postgres://{pg_cluster.PG_USER}@127.0.0.1:{cluster.pg.port}/jwt"
    jwt = pg_cluster.Cluster(cluster.pg, ["lmdb", "lsm"], shared_logs=[url, url])
    for m in jwt.members:
        m.extra_args += ["--bcrypt-cost", "4", "--auth-token", f"jwt,pub-key={pub},priv-key={priv},sign-method=ES256"]
    cs = []
    try:
        jwt.start()
        cs = [Client(api, m) for m in jwt.members]
        j1, j2 = cs
        j1.call("Auth.RoleAdd", name="root")
        j1.call("Auth.UserAdd", name="root", password="rootpw")
        j1.call("Auth.UserGrantRole", user="root", role="root")
        j1.call("Auth.AuthEnable")
        token = j1.call("Auth.Authenticate", name="root", password="rootpw").token
        assert token.count(".") == 2, token
        j2.call("KV.Put", token=token, key=b"/jwt", value=b"v")
        assert len(j1.call("KV.Range", token=token, key=b"/jwt").kvs) == 1
        code, details = code_and_message(lambda: j2.call("KV.Put", key=b"/jwt", value=b"v"))
        assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: user name is empty")
    finally:
        for c in cs:
            c.close()
        jwt.stop()
        shutil.rmtree(keys, ignore_errors=True)


def test_holder_killed_lease_kept_alive_elsewhere_survives(api, cluster):
    h = holder(api, cluster)
    others = [m for m in cluster.members if m is not h]
    cs = [Client(api, m) for m in others]
    try:
        lease = grant_with_key(cs[0], b"/lease/takeover")
        ka = keep_alive(others[0], lease)
        try:
            time.sleep(1.5)
            cluster.kill9(h)
            killed = time.monotonic()
            new = holder(api, cluster, among=others)
            took_over = time.monotonic() - killed
            while time.monotonic() - killed < 8:
                time.sleep(1)
                assert ka.poll() is None, f"etcdctl lease keep-alive exited: {ka.stdout.read()}"
                t = ttls(cs, lease)
                assert min(t) > 0, f"TTLs on {[m.name for m in others]} after the holder's kill: {t}"
            assert key_on_all(cs, b"/lease/takeover") == [1, 1]
        finally:
            stop(ka)
        assert took_over < 5, f"{new.name} took the lease-holder role {took_over:.1f} s after the kill"
        waited = wait_revoked(cs, lease, b"/lease/takeover", limit=TTL + 4)
        assert waited <= TTL + 2, f"revoked by {new.name} {waited:.1f} s after the last keep-alive"
    finally:
        for c in cs:
            c.close()
        cluster.restart_killed(h)


def test_version_1_log_is_upgraded_in_place(cluster):
    pg = cluster.pg
    pg.psql("CREATE DATABASE v1", database="postgres")
    pg.psql("""
        CREATE TABLE rusd_meta (id int PRIMARY KEY CHECK (id = 1), schema_version int NOT NULL,
            cluster_id bigint NOT NULL, created timestamptz NOT NULL DEFAULT now());
        CREATE TABLE rusd_head (id int PRIMARY KEY CHECK (id = 1), last bigint NOT NULL);
        CREATE TABLE rusd_log (idx bigint PRIMARY KEY, member text NOT NULL, entry bytea NOT NULL);
        CREATE TABLE rusd_members (name text PRIMARY KEY, member_id bigint NOT NULL,
            client_urls text NOT NULL, applied bigint NOT NULL, heartbeat timestamptz NOT NULL);
        INSERT INTO rusd_meta (id, schema_version, cluster_id) VALUES (1, 1, 4242);
        INSERT INTO rusd_head VALUES (1, 1);
        """, database="v1")
    url = f"postgres://{pg_cluster.PG_USER}@127.0.0.1:{pg.port}/v1"
    m = servers.Server("rusd-lmdb", name="upgraded", extra_args=["--shared-log", url])
    m.start()
    try:
        out = subprocess.run(["etcdctl", f"--endpoints={m.endpoint}", "put", "k", "v"], capture_output=True,
                             text=True, timeout=30, env={**os.environ, "ETCDCTL_API": "3"})
        assert out.returncode == 0, out.stderr
        assert pg.psql("SELECT schema_version, cluster_id FROM rusd_meta", database="v1") == f"{SCHEMA_VERSION}|4242"
        assert pg.psql("SELECT count(*) FROM rusd_lease_renewals", database="v1") == "0"
        assert re.search(r"upgraded the shared log's schema", open(m.log_path, errors="replace").read())
    finally:
        m.stop()
