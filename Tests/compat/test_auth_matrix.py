"""Auth matrix: every RPC of every etcd service x every principal x auth enabled / disabled,
differential against a real etcd 3.4.23.

The RPCs are enumerated from the service descriptors of the generated stubs (`etcd_api`), so a
new RPC in Protos/ is covered without editing this file (with an empty request until a
request is written for it in `REQUESTS`). Each RPC is one case per mode, marked with its RPC;
inside it every principal (and, for KV and Watch, several key ranges) is sent the same request
on both servers, and the answers are compared as: the same error code and message, or both
succeeded with the same auth-relevant content (`summary`).

One etcd and one rusd per engine serve every case (plain HTTP for tokens, HTTPS with
--client-cert-auth for the certificate principals); destructive requests (UserDelete,
AuthDisable, LeaseRevoke, ...) have a `RESTORE` step run as root after each principal, so later
cases see the same state. Simple tokens live 2 s (--auth-token-ttl 2): each principal's token is
renewed before it is used, and the "expired" principal's token is left to expire at setup.

Rows where rusd follows a stricter etcd than 3.4.23 are listed in `STRICTER` with their reason:
there the candidate must give the stricter answer, whatever etcd 3.4 says.
"""
from __future__ import annotations

import itertools
import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import grpc
import pytest

from differential import diff_text, error_outcome
from etcd_api import EtcdAPI, build, to_dict
from normalize import TargetState, normalize
from servers import rusd_bin, temp_root
from test_tls import Proc, _make_ca, _make_leaf

pytestmark = [pytest.mark.skipif(
    not all(shutil.which(t) for t in ("etcd", "openssl")), reason="needs etcd and openssl"),
    pytest.mark.engine_independent]   # auth lies above the engine: first target only

TTL = 2             # --auth-token-ttl (seconds)
CALL_TIMEOUT = 10
ROOT_PW = "rootpw"
PASSWORDS = {"root": ROOT_PW, "ro-user": "ropw", "wo-user": "wopw", "rw-user": "rwpw",
             "norole-user": "nrpw", "exp-user": "exppw", "certuser": "certpw", "victim": "vpw",
             "victim2": "v2pw"}
ROLES = {   # role: [(permType, key, range_end)]
    "ro": [("READ", "/ro/", "/ro0")],
    "wo": [("WRITE", "/wo/", "/wo0")],
    "rw": [("READWRITE", "/rw/", "/rw0")],
    "victimrole": [], "victimrole2": [], "victimrole3": [("READ", "/v3/", "")],
}
GRANTS = {"root": "root", "ro-user": "ro", "wo-user": "wo", "rw-user": "rw", "exp-user": "rw",
          "certuser": "ro", "victim2": "victimrole"}
# Principals: (name, how it calls). "token:<user>" sends a fresh token of <user>.
PRINCIPALS = [
    ("none", None), ("malformed-token", "raw:not-a-token"), ("expired-token", "expired"),
    ("unknown-user-cert", "cert:ghost"), ("no-role", "token:norole-user"),
    ("read-only", "token:ro-user"), ("write-only", "token:wo-user"),
    ("read-write-other", "token:rw-user"), ("root", "token:root"), ("cert-user", "cert:certuser"),
]
MODES = ["enabled", "disabled"]

# Key ranges KV reads/writes and Watch use (one sub-case each).
RANGES = {"ro-key": ("/ro/a", ""), "wo-key": ("/wo/a", ""), "rw-key": ("/rw/a", ""),
          "ro-prefix": ("/ro/", "/ro0"), "ro-from-key": ("/ro/", "\0"), "all": ("\0", "\0")}
LEASE_RW, LEASE_RO, LEASE_REVOKE, LEASE_GRANT = 7001, 7002, 7003, 7100


class Variants(dict):
    """Several requests for one RPC, by name (each a sub-case)."""


# Request per RPC: a dict, a callable of the server side, or Variants of either. An RPC not
# listed gets an empty request.
REQUESTS: dict[str, Any] = {
    "KV.Range": Variants({v: {"key": k, "range_end": e} for v, (k, e) in RANGES.items()}),
    "KV.Put": Variants({"ro-key": {"key": "/ro/a", "value": "p"}, "wo-key": {"key": "/wo/a", "value": "p"},
               "rw-key": {"key": "/rw/a", "value": "p"},
               "rw-lease": {"key": "/rw/b", "value": "p", "lease": LEASE_RW}}),
    "KV.DeleteRange": Variants({"ro-key": {"key": "/ro/none"}, "wo-key": {"key": "/wo/none"},
                       "rw-prefix": {"key": "/rw/none/", "range_end": "/rw/none0"}}),
    "KV.Txn": Variants({"rw": {"compare": [{"key": "/rw/a", "target": "VERSION", "result": "GREATER", "version": 0}],
                      "success": [{"request_put": {"key": "/rw/t", "value": "t"}}]},
               "ro-compare-wo-put": {"compare": [{"key": "/ro/a", "target": "VERSION", "result": "GREATER", "version": 0}],
                                     "success": [{"request_put": {"key": "/wo/t", "value": "t"}}]},
               # No compare (which would need READ): a Put with prev_kv needs READ on its key.
               "wo-put-prev-kv": {"success": [{"request_put": {"key": "/wo/t", "value": "t", "prev_kv": True}}]},
               # The Put with a lease sits in the failure branch of an always-true compare: checked,
               # never applied (the lease keeps its keys for the Lease rows).
               "rw-put-ro-lease": {"compare": [{"key": "/rw/never", "target": "CREATE", "result": "EQUAL",
                                                "create_revision": 0}],
                                   "failure": [{"request_put": {"key": "/rw/t", "value": "t", "lease": LEASE_RO}}]}}),
    # A fresh revision per principal: otherwise one compaction by an earlier principal (etcd
    # 3.4: anyone) makes root's "required revision has been compacted" on one server only.
    "KV.Compact": lambda ep: {"revision": ep.bumped_revision()},
    "Watch.Watch": Variants({v: {"create_request": {"key": k, "range_end": e}} for v, (k, e) in RANGES.items()}),
    "Lease.LeaseGrant": lambda ep: {"ID": LEASE_GRANT, "TTL": 600},
    "Lease.LeaseRevoke": {"ID": LEASE_REVOKE},
    "Lease.LeaseKeepAlive": {"ID": LEASE_RW},
    "Lease.LeaseTimeToLive": Variants({"rw-keys": {"ID": LEASE_RW, "keys": True},
                              "ro-keys": {"ID": LEASE_RO, "keys": True},
                              "no-keys": {"ID": LEASE_RW}}),
    "Cluster.MemberAdd": lambda ep: {"peerURLs": list(ep.member["peerURLs"])},   # refused: exists
    "Cluster.MemberRemove": {"ID": 12345},
    "Cluster.MemberUpdate": lambda ep: {"ID": ep.member["ID"], "peerURLs": list(ep.member["peerURLs"])},
    "Cluster.MemberPromote": lambda ep: {"ID": ep.member["ID"]},
    "Maintenance.Alarm": Variants({"get": {"action": "GET"},
                          "deactivate-none": {"action": "DEACTIVATE", "alarm": "NOSPACE"}}),
    "Maintenance.MoveLeader": lambda ep: {"targetID": ep.member["ID"]},
    "Maintenance.Downgrade": {"action": "VALIDATE", "version": "3.4.0"},
    "Auth.Authenticate": {"name": "rw-user", "password": PASSWORDS["rw-user"]},
    "Auth.UserAdd": {"name": "newuser", "password": "x"},
    "Auth.UserGet": {"name": "ro-user"},
    "Auth.UserDelete": {"name": "victim"},
    "Auth.UserChangePassword": {"name": "victim", "password": "changed"},
    "Auth.UserGrantRole": {"user": "victim", "role": "victimrole"},
    "Auth.UserRevokeRole": {"name": "victim2", "role": "victimrole"},
    "Auth.RoleAdd": {"name": "newrole"},
    "Auth.RoleGet": {"role": "ro"},
    "Auth.RoleDelete": {"role": "victimrole2"},
    "Auth.RoleGrantPermission": {"name": "victimrole", "perm": {"permType": "READ", "key": "/v/"}},
    "Auth.RoleRevokePermission": {"role": "victimrole3", "key": "/v3/"},
}

# After a case that succeeded on a server: requests (as root when auth is enabled) putting
# back what it changed. "reauth" renews every token (auth was toggled).
RESTORE: dict[str, list] = {
    "Lease.LeaseGrant": [("Lease.LeaseRevoke", {"ID": LEASE_GRANT})],
    "Lease.LeaseRevoke": [("Lease.LeaseGrant", {"ID": LEASE_REVOKE, "TTL": 600}),
                          ("KV.Put", {"key": "/wo/leased", "value": "l", "lease": LEASE_REVOKE})],
    "Auth.UserAdd": [("Auth.UserDelete", {"name": "newuser"})],
    "Auth.UserDelete": [("Auth.UserAdd", {"name": "victim", "password": PASSWORDS["victim"]})],
    "Auth.UserGrantRole": [("Auth.UserRevokeRole", {"name": "victim", "role": "victimrole"})],
    "Auth.UserRevokeRole": [("Auth.UserGrantRole", {"user": "victim2", "role": "victimrole"})],
    "Auth.RoleAdd": [("Auth.RoleDelete", {"role": "newrole"})],
    "Auth.RoleDelete": [("Auth.RoleAdd", {"name": "victimrole2"})],
    "Auth.RoleGrantPermission": [("Auth.RoleRevokePermission", {"role": "victimrole", "key": "/v/"})],
    "Auth.RoleRevokePermission": [("Auth.RoleGrantPermission",
                                   {"name": "victimrole3", "perm": {"permType": "READ", "key": "/v3/"}})],
}
# Auth toggles: after one succeeded, the test puts the mode's state back (see _restore).
TOGGLES = {"Auth.AuthEnable": True, "Auth.AuthDisable": False}

PERMISSION_DENIED = {"error": {"code": "PERMISSION_DENIED", "details": "etcdserver: permission denied"}}
USER_EMPTY = {"error": {"code": "INVALID_ARGUMENT", "details": "etcdserver: user name is empty"}}
INVALID_TOKEN = {"error": {"code": "UNAUTHENTICATED", "details": "etcdserver: invalid auth token"}}


USER_NOT_FOUND = {"error": {"code": "FAILED_PRECONDITION", "details": "etcdserver: user name not found"}}


def _watch_refused(reason: str) -> dict:
    return {"ok": {"created": True, "canceled": True, "watch_id": -1, "cancel_reason": reason, "events": 0}}


def _stricter_watch(principal: str) -> dict | None:
    """A from-key watch on /ro/ by a principal who may read /ro/ only: etcd 3.4.23 checks the
    start key alone (GHSA-xg4h-6gfc-h4m8, fixed in later etcd releases)."""
    if principal in ("read-only", "cert-user"):
        return _watch_refused("rpc error: code = PermissionDenied desc = etcdserver: permission denied")
    return None


def _admin_only(principal: str) -> dict | None:
    """The root role (etcd's isPermitted / IsAdminPermitted), with its errors as gRPC errors."""
    return {"root": None, "none": USER_EMPTY, "malformed-token": INVALID_TOKEN, "expired-token": INVALID_TOKEN,
            "unknown-user-cert": USER_NOT_FOUND}.get(principal, PERMISSION_DENIED)


def _authenticated(principal: str) -> dict | None:
    """Any authenticated caller (newest etcd's requireAuthInfo): no token is "user name is
    empty", a bad token "invalid auth token"; a certificate naming no user passes, as in etcd."""
    return {"none": USER_EMPTY, "malformed-token": INVALID_TOKEN, "expired-token": INVALID_TOKEN}.get(principal)


def _root_or(*allowed: str) -> Callable[[str], dict | None]:
    """An authenticated caller who is root or one of `allowed` (the principals holding the key
    permissions the rule asks for); everyone else "permission denied"."""
    def expected(principal: str) -> dict | None:
        if principal == "root" or principal in allowed:
            return None
        return _authenticated(principal) or PERMISSION_DENIED
    return expected


def _denied_for(*principals: str) -> Callable[[str], dict | None]:
    """"permission denied" for `principals`; everyone else as etcd 3.4."""
    return lambda principal: PERMISSION_DENIED if principal in principals else None


# etcd 3.4's authMaintenanceServer (and Alarm) return the auth store's errors unconverted: gRPC
# UNKNOWN "auth: ...". etcd 3.6 converts them (togRPCError), as rusd does for that whole
# service, whose rules follow 3.6's (stricter) ones.
AUTH_STORE_ERRORS = {
    "auth: user name is empty": USER_EMPTY, "auth: invalid auth token": INVALID_TOKEN,
    "auth: user not found": USER_NOT_FOUND, "auth: permission denied": PERMISSION_DENIED,
}
CONVERTED_AS_ETCD_36 = {"Maintenance.Defragment", "Maintenance.Snapshot", "Maintenance.Hash",
                        "Maintenance.HashKV", "Maintenance.Alarm"}


def _as_etcd_36(outcome: dict) -> dict:
    err = outcome.get("error", {})
    if err.get("code") == "UNKNOWN" and err.get("details") in AUTH_STORE_ERRORS:
        return AUTH_STORE_ERRORS[err["details"]]
    return outcome


def _stricter_ttl_keys(readers: set[str]) -> Callable[[str], dict | None]:
    """LeaseTimeToLive with keys needs a valid token and READ on every key of the lease since
    etcd 3.4.26 / 3.5.9 (CVE-2023-32082: key names leaked through TimeToLive); 3.4.23 checks
    nothing. `readers` may read the lease's keys (their answer is etcd's)."""
    def expected(principal: str) -> dict | None:
        if principal in readers or principal == "root":
            return None
        if principal == "none":
            return USER_EMPTY
        if principal in ("malformed-token", "expired-token"):
            return INVALID_TOKEN
        return PERMISSION_DENIED
    return expected


# (rpc, variant, mode) -> (reason, principal -> expected candidate outcome or None for "as etcd")
# The newest etcd (main, Aug 2026) is the reference for these rows. The 2026 advisories:
# GHSA-q8m4-xhhv-38mg / CVE-2026-33413 (commit a07ecd124, "guard unauthenticated endpoints with
# auth checks"; MemberList, Alarm GET and Status relaxed to any authenticated user by PRs 21538
# and 21666), the RBAC bypass through PrevKv and lease of a Put inside a Txn (PRs 21681 / 21685,
# commit 778237265), GHSA-xg4h-6gfc-h4m8 (from-key watch, commit 7cf71ec9e).
CVE_2026_33413 = "GHSA-q8m4-xhhv-38mg / CVE-2026-33413 (etcd a07ecd124)"
STRICTER: dict[tuple[str, str, str], tuple[str, Callable[[str], dict | None]]] = {
    ("Watch.Watch", "ro-from-key", "enabled"): ("etcd 3.4.23 checks a from-key watch as its start key only "
                                                "(GHSA-xg4h-6gfc-h4m8, etcd 7cf71ec9e)", _stricter_watch),
    ("KV.Compact", "", "enabled"): (f"{CVE_2026_33413}: root only (isPermitted)", _admin_only),
    ("KV.Txn", "wo-put-prev-kv", "enabled"): ("etcd PRs 21681 / 21685 (checkPutAuth): a Put's prev_kv "
                                              "inside a Txn needs READ", _denied_for("write-only")),
    ("KV.Txn", "rw-put-ro-lease", "enabled"): ("etcd PRs 21681 / 21685 (checkPutAuth): a Put's lease "
                                               "inside a Txn needs WRITE on the lease's keys",
                                               _denied_for("read-write-other")),
    ("Maintenance.Status", "", "enabled"): (f"{CVE_2026_33413}, relaxed to any user by etcd PR 21666: "
                                            "requireAuthInfo", _authenticated),
    ("Maintenance.Alarm", "get", "enabled"): (f"{CVE_2026_33413}, relaxed by etcd PR 21538: requireAuthInfo",
                                              _authenticated),
    ("Maintenance.Alarm", "deactivate-none", "enabled"): (f"{CVE_2026_33413}: root only (isPermitted)",
                                                          _admin_only),
    ("Maintenance.MoveLeader", "", "enabled"): ("etcd 3.6 authMaintenanceServer: root only", _admin_only),
    ("Cluster.MemberList", "", "enabled"): (f"{CVE_2026_33413}, relaxed to any user by etcd PR 21538: "
                                            "requireAuthInfo", _authenticated),
    ("Lease.LeaseGrant", "", "enabled"): (f"{CVE_2026_33413}: requireAuthInfo", _authenticated),
    ("Lease.LeaseKeepAlive", "", "enabled"): (f"{CVE_2026_33413}: checkLeaseRenew, root or WRITE on the "
                                              "lease's keys (/rw/)", _root_or("read-write-other")),
    ("Lease.LeaseLeases", "", "enabled"): (f"{CVE_2026_33413}: checkLeaseLeases, root or READ on every "
                                           "leased key", _root_or()),
    ("Lease.LeaseTimeToLive", "no-keys", "enabled"): (f"{CVE_2026_33413}: requireAuthInfo", _authenticated),
    ("Lease.LeaseTimeToLive", "rw-keys", "enabled"): ("CVE-2023-32082 (etcd 3.4.26, 3.5.9)",
                                                      _stricter_ttl_keys({"read-write-other"})),
    ("Lease.LeaseTimeToLive", "ro-keys", "enabled"): ("CVE-2023-32082 (etcd 3.4.26, 3.5.9)",
                                                      _stricter_ttl_keys({"read-only", "cert-user"})),
}
# RPCs etcd 3.4 does not have (rusd answers them as etcd 3.5 does; see test_auth_status_downgrade_rusd.py).
NEWER_THAN_34 = {"Auth.AuthStatus", "Maintenance.Downgrade"}


# -- the servers --------------------------------------------------------------------------------

@dataclass
class Side:
    """One server: a plain channel (tokens), TLS channels per client certificate, its tokens."""

    name: str
    proc: Proc
    api: EtcdAPI
    pki: Path
    plain: grpc.Channel = None
    tls: dict[str, grpc.Channel] = field(default_factory=dict)
    tokens: dict[str, tuple[str, float]] = field(default_factory=dict)
    expired: str = ""
    member: dict = field(default_factory=dict)
    state: TargetState = field(default_factory=TargetState)
    auth_enabled: bool = False

    def __post_init__(self):
        self.plain = grpc.insecure_channel(self.proc.urls[0].removeprefix("http://"))
        https = self.proc.urls[1].removeprefix("https://")
        for cn in ("certuser", "ghost"):
            creds = grpc.ssl_channel_credentials(
                root_certificates=(self.pki / "ca.crt").read_bytes(),
                private_key=(self.pki / f"{cn}.key").read_bytes(),
                certificate_chain=(self.pki / f"{cn}.crt").read_bytes())
            self.tls[cn] = grpc.secure_channel(https, creds)

    def close(self):
        self.plain.close()
        for c in self.tls.values():
            c.close()

    def callable(self, rpc: str, channel: grpc.Channel):
        service, method = rpc.split(".")
        m = self.api.method(rpc)
        req = self.api.message_class(m.input_type.full_name)
        resp = self.api.message_class(m.output_type.full_name)
        kind = {(False, False): channel.unary_unary, (False, True): channel.unary_stream,
                (True, True): channel.stream_stream, (True, False): channel.stream_unary}[
            (m.client_streaming, m.server_streaming)]
        return kind(f"/etcdserverpb.{service}/{method}", request_serializer=req.SerializeToString,
                    response_deserializer=resp.FromString)

    def admin(self, rpc: str, fields: dict) -> Any:
        """A call as root (no token while auth is disabled); raises on error."""
        md = [("token", self.token("root"))] if self.auth_enabled else None
        return self.callable(rpc, self.plain)(self.api.request(rpc, fields), timeout=CALL_TIMEOUT, metadata=md)

    def token(self, user: str) -> str:
        """A live token of `user`, renewed when it may be near its TTL."""
        cached = self.tokens.get(user)
        if cached and time.monotonic() - cached[1] < TTL / 3:
            self.tokens[user] = (cached[0], time.monotonic())
            return cached[0]
        resp = self.callable("Auth.Authenticate", self.plain)(
            self.api.request("Auth.Authenticate", name=user, password=PASSWORDS[user]), timeout=CALL_TIMEOUT)
        self.tokens[user] = (resp.token, time.monotonic())
        return resp.token

    def last_token(self, user: str) -> str:
        """The last token issued to `user` (revoked once auth was disabled)."""
        return self.tokens[user][0] if user in self.tokens else "unknown.1"

    def channel_and_metadata(self, how: str | None):
        if how is None:
            return self.plain, None
        kind, _, arg = how.partition(":")
        if kind == "cert":
            return self.tls[arg], None
        if kind == "raw":
            return self.plain, [("token", arg)]
        if kind == "expired":
            return self.plain, [("token", self.expired)]
        return self.plain, [("token", self.token(arg) if self.auth_enabled else self.last_token(arg))]

    def revision(self) -> int:
        r = self.admin("KV.Range", {"key": "\0", "count_only": True})
        return r.header.revision

    def bumped_revision(self) -> int:
        """A new revision (a put as root), not compacted yet."""
        return self.admin("KV.Put", {"key": "/rw/compact-bump", "value": "b"}).header.revision

    def set_auth(self, enabled: bool) -> None:
        if enabled == self.auth_enabled:
            return
        if enabled:
            self.admin("Auth.AuthEnable", {})
            self.auth_enabled = True
            self.tokens.clear()
        else:
            self.admin("Auth.AuthDisable", {})
            self.auth_enabled = False


def _setup(side: Side) -> None:
    """Users, roles, keys and leases (auth disabled), then auth enabled and an expired token."""
    for user, pw in PASSWORDS.items():
        side.admin("Auth.UserAdd", {"name": user, "password": pw})
    for role, perms in ROLES.items():
        side.admin("Auth.RoleAdd", {"name": role})
        for kind, key, end in perms:
            side.admin("Auth.RoleGrantPermission", {"name": role, "perm": {"permType": kind, "key": key, "range_end": end}})
    for user, role in GRANTS.items():
        side.admin("Auth.UserGrantRole", {"user": user, "role": role})
    for key in ("/ro/a", "/wo/a", "/rw/a", "/other/a"):
        side.admin("KV.Put", {"key": key, "value": "v"})
    for lease, key in ((LEASE_RW, "/rw/leased"), (LEASE_RO, "/ro/leased"), (LEASE_REVOKE, "/wo/leased")):
        side.admin("Lease.LeaseGrant", {"ID": lease, "TTL": 600})
        side.admin("KV.Put", {"key": key, "value": "l", "lease": lease})
    side.member = to_dict(side.admin("Cluster.MemberList", {}).members[0])
    side.set_auth(True)
    side.expired = side.token("exp-user")


@pytest.fixture(scope="module")
def pki():
    d = Path(tempfile.mkdtemp(prefix="auth-pki-", dir=temp_root()))
    try:
        _make_ca(d, "ca")
        _make_leaf(d, "server", "ca", "auth-matrix-server",
                   "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n")
        for cn in ("certuser", "ghost"):
            _make_leaf(d, cn, "ca", cn, "extendedKeyUsage=clientAuth\n")
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def world(api, target, pki):
    if target != "etcd" and rusd_bin() is None:
        pytest.skip("needs RUSD_BIN")
    args = ["--cert-file", str(pki / "server.crt"), "--key-file", str(pki / "server.key"),
            "--trusted-ca-file", str(pki / "ca.crt"), "--client-cert-auth",
            "--auth-token-ttl", str(TTL), "--bcrypt-cost", "4"]
    kinds = ["etcd", "etcd" if target == "etcd" else "rusd"]
    engine = [] if target == "etcd" else ["--engine", target.removeprefix("rusd-")]
    procs = [Proc(k, ["http", "https"], args + (engine if i == 1 else [])) for i, k in enumerate(kinds)]
    sides = []
    try:
        for p in procs:
            p.wait_ready((str(pki / "certuser.crt"), str(pki / "certuser.key")))
        sides = [Side(n, p, api, pki) for n, p in zip(("etcd", target), procs)]
        for s in sides:
            _setup(s)
        time.sleep(TTL + 1.5)   # the expired principal's token (and every other) expires
        yield sides
    finally:
        for s in sides:
            s.close()
        for p in procs:
            p.stop()


# -- one call -----------------------------------------------------------------------------------

def _summary(rpc: str, responses: list) -> dict:
    """What the matrix compares of a successful answer: whether it succeeded, plus what auth
    decides (data read, watch creation)."""
    first = to_dict(responses[0]) if responses else {}
    if rpc == "KV.Range":
        return {"count": first["count"], "keys": [kv["key"] for kv in first["kvs"]]}
    if rpc == "KV.Txn":
        return {"succeeded": first["succeeded"]}
    if rpc == "Watch.Watch":
        return {k: first.get(k) for k in ("created", "canceled", "watch_id", "cancel_reason")} | {
            "events": len(first.get("events", []))}
    if rpc == "Lease.LeaseTimeToLive":
        return {"keys": sorted(first["keys"])}   # etcd lists them in map order
    if rpc in ("Auth.UserGet", "Auth.UserList", "Auth.RoleList"):
        return {k: first[k] for k in ("roles", "users") if k in first}
    if rpc == "Auth.RoleGet":
        return {"perm": first["perm"]}
    return {"responses": "some" if responses else "none"}


def _call(side: Side, rpc: str, request: dict, how: str | None) -> dict:
    channel, md = side.channel_and_metadata(how)
    m = side.api.method(rpc)
    msg = side.api.request(rpc, request)
    fn = side.callable(rpc, channel)
    try:
        if m.client_streaming:
            call = fn(iter([msg]), timeout=CALL_TIMEOUT, metadata=md)
            try:
                responses = [next(call)]
            finally:
                call.cancel()
        elif m.server_streaming:
            responses = list(fn(msg, timeout=CALL_TIMEOUT, metadata=md))
        else:
            responses = [fn(msg, timeout=CALL_TIMEOUT, metadata=md)]
    except grpc.RpcError as e:
        return normalize(rpc, error_outcome(e), request, side.state)
    except StopIteration:
        return {"ok": "stream ended without a response"}
    return {"ok": _summary(rpc, responses)}


def _restore(side: Side, rpc: str, mode: str) -> None:
    """After `rpc` succeeded on `side`: undo what it changed."""
    if rpc in TOGGLES:
        side.auth_enabled = TOGGLES[rpc]
        if side.auth_enabled:
            side.tokens.clear()
        side.set_auth(mode == "enabled")
    for step in RESTORE.get(rpc, []):
        side.admin(*step)


def _variants(rpc: str) -> dict[str, Any]:
    spec = REQUESTS.get(rpc, {})
    return spec if isinstance(spec, Variants) else {"": spec}


_API: EtcdAPI | None = None


def all_rpcs(api: EtcdAPI) -> list[str]:
    """Every method of every service in etcd's rpc.proto, from the descriptors."""
    file = api.pool.FindFileContainingSymbol("etcdserverpb.KV")
    return [f"{s.name}.{m.name}" for s in file.services_by_name.values() for m in s.methods]


def pytest_generate_tests(metafunc):
    global _API
    if "rpc" in metafunc.fixturenames:
        if _API is None:
            # The stubs, for their descriptors (the session's `api` fixture imports the same
            # modules later); their temp dir is not needed once imported.
            _API = EtcdAPI()
            _API.close()
        params = [pytest.param(mode, rpc, marks=pytest.mark.rpc(rpc), id=f"{mode}-{rpc}")
                  for mode in MODES for rpc in all_rpcs(_API)]
        metafunc.parametrize("mode,rpc", params)


def test_auth_matrix(world, mode, rpc):
    ref, cand = world
    for s in world:
        s.set_auth(mode == "enabled")
    problems, cases = [], 0
    for (variant, spec), (principal, how) in itertools.product(_variants(rpc).items(), PRINCIPALS):
        outcomes = []
        for s in world:
            request = spec(s) if callable(spec) else spec
            outcomes.append(_call(s, rpc, request, how))
            if "ok" in outcomes[-1]:
                _restore(s, rpc, mode)
        cases += 1
        label = f"{rpc}[{variant or '-'}] as {principal}, auth {mode}"
        # etcd vs etcd (the self-check): the stricter rows are etcd 3.4's answers too.
        stricter = STRICTER.get((rpc, variant, mode)) if cand.name != "etcd" else None
        expected = stricter[1](principal) if stricter else None
        if expected is not None:
            if outcomes[1] != expected:
                problems.append(f"{label} (stricter than etcd 3.4: {stricter[0]}; etcd 3.4 answers "
                                f"{outcomes[0]}):\n" + diff_text(label, "expected", cand.name, expected, outcomes[1]))
        elif rpc in NEWER_THAN_34 and outcomes[0].get("error", {}).get("code") == "UNIMPLEMENTED":
            continue   # etcd 3.4 has no such RPC; its auth rows are checked in test_auth_status_downgrade_rusd.py
        elif rpc in CONVERTED_AS_ETCD_36 and cand.name != "etcd":
            if _as_etcd_36(outcomes[0]) != outcomes[1]:
                problems.append(diff_text(label + " (etcd 3.4's auth errors as etcd 3.6 converts them)",
                                          "etcd", cand.name, _as_etcd_36(outcomes[0]), outcomes[1]))
        elif outcomes[0] != outcomes[1]:
            problems.append(diff_text(label, "etcd", cand.name, outcomes[0], outcomes[1]))
    assert cases
    assert not problems, f"{len(problems)} of {cases} cases differ:\n\n" + "\n\n".join(problems)


# -- the other doors --------------------------------------------------------------------------

def _http_get(side: Side, path: str) -> tuple[int, str]:
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(f"{side.proc.urls[0]}{path}", timeout=CALL_TIMEOUT) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")


def test_http_endpoints_and_secrets_under_auth(world):
    """/health, /version and /metrics answer without credentials while auth is enabled, as
    etcd's do; no password or token of the matrix appears in rusd's /metrics or log."""
    ref, cand = world
    for s in world:
        s.set_auth(True)
    for path in ("/health", "/version", "/metrics"):
        got = [_http_get(s, path) for s in world]
        assert got[0][0] == 200 and got[1][0] == 200, (path, got[0][0], got[1][0])
        if path == "/health":   # rusd answers in etcd 3.5's shape (a "reason" field too)
            assert json.loads(got[0][1])["health"] == json.loads(got[1][1])["health"] == "true", got
    if cand.name == "etcd":
        return
    # A failed Authenticate is logged (the user name, not the password) and, for an unknown
    # user too, answers no faster than a wrong password would (bcrypt runs either way).
    fn = cand.callable("Auth.Authenticate", cand.plain)
    for name, pw in (("ro-user", "wrong-password-1"), ("nobody", "wrong-password-2")):
        with pytest.raises(grpc.RpcError):
            fn(cand.api.request("Auth.Authenticate", name=name, password=pw), timeout=CALL_TIMEOUT)
    time.sleep(0.5)
    log = Path(cand.proc.log_path).read_text(errors="replace")
    assert "invalid authentication was requested" in log, log[-2000:]
    metrics = _http_get(cand, "/metrics")[1]
    secrets = list(PASSWORDS.values()) + ["wrong-password-1", "wrong-password-2", cand.expired] + \
        [t for t, _ in cand.tokens.values()]
    leaked = [x for x in secrets if x and (x in log or x in metrics)]
    assert not leaked, f"secrets in rusd's log or /metrics: {leaked}"
