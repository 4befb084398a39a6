"""etcd's HTTP/JSON gateway (POST /v3/...): the same HTTP requests to etcd 3.4.23 and to rusd,
JSON answers compared after normalize.py's rules.

The client is Python's http.client (independent of rusd). An answer is compared as
(HTTP status, Content-Type, JSON body): first the JSON *shape* (every value's JSON type, so an
int64 sent as a number instead of etcd's string is a difference), then the values, after
normalize.RULES under the gRPC method's name (int64 strings of lease IDs and TTLs are read
as integers for those rules). Malformed-JSON errors are compared by status and gRPC code only:
the parser's message is Go's encoding/json text in etcd and swift-protobuf's in rusd.
Streams (Watch, LeaseKeepAlive) are compared as their sequences of {"result": ...} objects;
Watch events are compared flattened (normalize.STRUCTURAL "watch batching").
"""
from __future__ import annotations

import base64
import http.client
import json
import socket
import time

import pytest

from normalize import normalize

pytestmark = pytest.mark.engine_independent   # the HTTP/JSON gateway lies above the engine: first target only

TIMEOUT = 10
INT64_KEYS = {"ID", "lease", "TTL", "grantedTTL"}


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def _ints(node):
    """Lease IDs and TTLs as ints (normalize's lease rules work on ints); recursively."""
    if isinstance(node, dict):
        return {k: (int(v) if k in INT64_KEYS and isinstance(v, str) and v.lstrip("-").isdigit()
                    else _ints(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_ints(v) for v in node]
    return node


def _shape(node):
    """The JSON types of a value, recursively (dict keys kept, list items each)."""
    if isinstance(node, dict):
        return {k: _shape(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_shape(v) for v in node]
    return type(node).__name__


def post(ep, path: str, body, headers=None) -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", ep.server.client_port, timeout=TIMEOUT)
    try:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        conn.request("POST", path, body=data, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type", ""), resp.read()
    finally:
        conn.close()


def outcome(rpc: str, status: int, ctype: str, body: bytes, request, ep, loose_error: bool) -> dict:
    try:
        doc = json.loads(body)
    except ValueError:
        return {"status": status, "content_type": ctype, "text": body.decode(errors="replace")}
    if isinstance(doc, dict) and "error" in doc and "code" in doc:
        err = dict(doc)
        if loose_error:   # the JSON parser's own message (see the module docstring)
            assert err["error"] == err["message"] and err["message"], doc
            err["error"] = err["message"] = "<json parser message>"
        return {"status": status, "content_type": ctype, "error": err}
    shape = _shape(doc)
    resp = normalize(rpc, {"ok": _ints(doc)}, request, ep.state)
    return {"status": status, "content_type": ctype, "shape": shape, **resp}


class Gateway:
    """Sends the same gateway request to both servers of a `pair` and compares."""

    def __init__(self, pair):
        self.pair = pair

    def call(self, rpc: str, path: str, body=None, *, token=None, loose_error=False) -> list[dict]:
        """POSTs `body` (dict, or raw str/bytes) to both; asserts equal outcomes; returns the
        parsed JSON answers (etcd's, rusd's). `token`: callable(ep) -> Authorization value."""
        self.pair.rpcs_called.add(rpc)
        outs, docs = [], []
        for ep in self.pair.endpoints:
            headers = {"Authorization": token(ep)} if token else None
            status, ctype, raw = post(ep, path, {} if body is None else body, headers)
            outs.append(outcome(rpc, status, ctype, raw, body if isinstance(body, dict) else None,
                                ep, loose_error))
            try:
                docs.append(json.loads(raw))
            except ValueError:
                docs.append(None)
        self.pair.compare(f"POST {path}", outs[0], outs[1], body if isinstance(body, dict) else None)
        return docs


class Stream:
    """One streaming gateway request (Watch, LeaseKeepAlive) open on one server."""

    def __init__(self, ep, path: str, body: str, headers=None):
        self.ep = ep
        self.conn = http.client.HTTPConnection("127.0.0.1", ep.server.client_port, timeout=TIMEOUT)
        self.conn.request("POST", path, body=body, headers=headers or {})
        self.resp = self.conn.getresponse()
        self.status, self.ctype = self.resp.status, self.resp.getheader("Content-Type", "")

    def next(self) -> dict | None:
        line = self.resp.readline()
        return json.loads(line) if line.strip() else None

    def rest(self) -> bytes:
        return self.resp.read()

    def quiet(self, seconds: float = 0.3) -> bytes:
        """Whatever arrives within `seconds` (b"" when nothing does)."""
        self.conn.sock.settimeout(seconds)
        try:
            return self.resp.read1(65536) if hasattr(self.resp, "read1") else self.resp.read(1)
        except (socket.timeout, TimeoutError):
            return b""
        finally:
            self.conn.sock.settimeout(TIMEOUT)

    def close(self):
        self.conn.close()


def _watch_items(rpc: str, results: list[dict], ep) -> list:
    """Watch results flattened: control responses as they are, events one by one."""
    items = []
    for r in results:
        res = normalize(rpc, {"ok": _ints(r["result"])}, None, ep.state)["ok"]
        events = res.pop("events", None)
        if events is None:
            items.append(res)
        else:
            for e in events:
                items.append({"event": e, "shape": _shape(e)})
    return items


# -- unary KV ---------------------------------------------------------------------------------

@pytest.mark.rpc("gateway KV.Put", "gateway KV.Range", "gateway KV.DeleteRange", "gateway KV.Txn",
                 "gateway KV.Compact")
def test_gateway_kv(pair, ns):
    g = Gateway(pair)
    k = lambda s: b64(ns + s)  # noqa: E731
    g.call("KV.Put", "/v3/kv/put", {"key": k("a"), "value": b64("1")})
    g.call("KV.Put", "/v3/kv/put", {"key": k("b"), "value": b64("2"), "prev_kv": True})
    g.call("KV.Put", "/v3/kv/put", {"key": k("a"), "value": b64("3"), "prev_kv": True})
    g.call("KV.Put", "/v3/kv/put", {"key": k("e"), "value": ""})
    g.call("KV.Range", "/v3/kv/range", {"key": k("a")})
    g.call("KV.Range", "/v3/kv/range", {"key": k(""), "range_end": b64(ns[:-1] + "0")})
    g.call("KV.Range", "/v3/kv/range", {"key": k(""), "range_end": b64(ns[:-1] + "0"),
                                        "sort_order": "DESCEND", "sort_target": "MOD", "limit": "2"})
    g.call("KV.Range", "/v3/kv/range", {"key": k(""), "rangeEnd": b64(ns[:-1] + "0"),
                                        "sortOrder": 2, "countOnly": True})           # camelCase, enum number
    g.call("KV.Range", "/v3/kv/range", {"key": k(""), "range_end": b64(ns[:-1] + "0"),
                                        "keys_only": True, "unknown_field": 1})     # unknown ignored
    g.call("KV.Range", "/v3beta/kv/range", {"key": k("b")})                         # 3.4's alias
    g.call("KV.Range", "/v3/kv/range", {"key": k("nothing")})
    g.call("KV.Range", "/v3/kv/range", {})                                           # key is not provided
    g.call("KV.Range", "/v3/kv/range", {"key": k("a"), "revision": "1000000"})       # future revision
    g.call("KV.Put", "/v3/kv/put", {"key": k("l"), "value": "", "lease": "12345"})  # lease not found
    g.call("KV.Put", "/v3/kv/put", {"key": ""})
    g.call("KV.Txn", "/v3/kv/txn", {
        "compare": [{"key": k("a"), "target": "VALUE", "result": "EQUAL", "value": b64("3")},
                    {"key": k("b"), "target": "VERSION", "result": "GREATER", "version": "0"}],
        "success": [{"request_put": {"key": k("c"), "value": b64("t"), "prev_kv": True}},
                    {"request_range": {"key": k(""), "range_end": b64(ns[:-1] + "0")}},
                    {"request_delete_range": {"key": k("e"), "prev_kv": True}},
                    {"request_txn": {"success": [{"request_range": {"key": k("c")}}]}}],
        "failure": [{"request_put": {"key": k("f"), "value": b64("f")}}]})
    g.call("KV.Txn", "/v3/kv/txn", {
        "compare": [{"key": k("a"), "target": "MOD", "result": "LESS", "mod_revision": "1"}],
        "success": [{"request_put": {"key": k("x"), "value": b64("x")}}],
        "failure": [{"request_range": {"key": k("a")}}]})
    g.call("KV.Txn", "/v3/kv/txn", {"success": [{"request_put": {"key": k("d"), "value": ""}},
                                                {"request_put": {"key": k("d"), "value": ""}}]})
    g.call("KV.DeleteRange", "/v3/kv/deleterange", {"key": k("c"), "prev_kv": True})
    g.call("KV.DeleteRange", "/v3/kv/deleterange", {"key": k("zzz")})
    g.call("KV.Compact", "/v3/kv/compaction", {"revision": "1000000"})


@pytest.mark.rpc("gateway KV.Put", "gateway KV.Range")
def test_gateway_large_values(pair, ns):
    """Bodies as large as --max-request-bytes allows (1.5 MiB, base64 in JSON: ~2 MiB of body)
    are served, one over it is refused with etcd's "request is too large"."""
    g = Gateway(pair)
    g.call("KV.Put", "/v3/kv/put", {"key": b64(ns + "big"), "value": b64("v" * 1_400_000)})
    g.call("KV.Range", "/v3/kv/range", {"key": b64(ns + "big"), "count_only": True})
    g.call("KV.Put", "/v3/kv/put", {"key": b64(ns + "big"), "value": b64("v" * 1_600_000)})


@pytest.mark.fresh
@pytest.mark.rpc("gateway KV.Compact")
def test_gateway_compaction(pair, ns):
    g = Gateway(pair)
    for i in range(3):
        g.call("KV.Put", "/v3/kv/put", {"key": b64(ns + "k"), "value": b64(str(i))})
    g.call("KV.Compact", "/v3/kv/compaction", {"revision": "3", "physical": True})
    g.call("KV.Compact", "/v3/kv/compaction", {"revision": "2"})                   # compacted
    g.call("KV.Range", "/v3/kv/range", {"key": b64(ns + "k"), "revision": "2"})   # compacted


@pytest.mark.rpc("gateway errors")
def test_gateway_malformed_requests(pair, ns):
    g = Gateway(pair)
    for body in ("{bad", "[1]", '{"key": 1}', '{"key": "Zm9v", "limit": "abc"}',
                 '{"key": "Zm9v", "sort_order": "BOGUS"}'):
        g.call("KV.Range", "/v3/kv/range", body, loose_error=True)
    g.call("KV.Range", "/v3/kv/range", "")        # empty body: the empty request
    g.call("KV.Range", "/v3/kv/range", "null")
    g.call("KV.Put", "/v3/kv/put", "{bad", loose_error=True)
    g.call("Watch.Watch", "/v3/watch", "{bad", loose_error=True)   # 500 UNKNOWN in etcd
    g.call("none", "/v3/kv/nothing", {})                          # 404 text
    g.call("none", "/v3beta/nothing", {})
    for ep in pair.endpoints:                                      # GET: 405 on both
        conn = http.client.HTTPConnection("127.0.0.1", ep.server.client_port, timeout=TIMEOUT)
        conn.request("GET", "/v3/kv/range")
        r = conn.getresponse()
        ep.gateway_get = (r.status, r.read())
        conn.close()
    pair.compare("GET /v3/kv/range", pair.ref.gateway_get, pair.cand.gateway_get)


# -- leases -----------------------------------------------------------------------------------

@pytest.mark.rpc("gateway Lease.LeaseGrant", "gateway Lease.LeaseRevoke",
                 "gateway Lease.LeaseTimeToLive", "gateway Lease.LeaseLeases",
                 "gateway Lease.LeaseKeepAlive")
def test_gateway_leases(pair, ns):
    g = Gateway(pair)
    ref, cand = g.call("Lease.LeaseGrant", "/v3/lease/grant", {"TTL": "60"})
    ids = {"ref": ref["ID"], "cand": cand["ID"]}
    g.call("Lease.LeaseGrant", "/v3/lease/grant", {"TTL": 30, "ID": "777001"})
    g.call("Lease.LeaseGrant", "/v3/lease/grant", {"TTL": 30, "ID": "777001"})      # exists
    g.call("KV.Put", "/v3/kv/put", {"key": b64(ns + "l"), "value": "", "lease": "777001"})
    g.call("Lease.LeaseTimeToLive", "/v3/lease/timetolive", {"ID": "777001", "keys": True})
    g.call("Lease.LeaseTimeToLive", "/v3/kv/lease/timetolive", {"ID": "777001"})
    g.call("Lease.LeaseTimeToLive", "/v3/lease/timetolive", {"ID": "5"})
    g.call("Lease.LeaseLeases", "/v3/lease/leases", {})
    g.call("Lease.LeaseLeases", "/v3/kv/lease/leases", {})
    # KeepAlive: the body's requests, then the stream ends (the gateway half-closes).
    streams = [Stream(ep, "/v3/lease/keepalive",
                      json.dumps({"ID": "777001"}) + "\n" + json.dumps({"ID": "31337"}) + "\n"
                      + json.dumps({"ID": ids[ep.role]}))
               for ep in pair.endpoints]
    got = []
    for s in streams:
        results = []
        while (item := s.next()) is not None:
            results.append(normalize("Lease.LeaseKeepAlive", {"ok": _ints(item["result"])}, None,
                                     s.ep.state)["ok"] if "result" in item else item)
        got.append((s.status, s.ctype, results, [_shape(r) for r in results]))
        s.close()
    pair.compare("POST /v3/lease/keepalive", got[0], got[1])
    assert len(got[0][2]) == 3, got[0]
    g.call("Lease.LeaseRevoke", "/v3/kv/lease/revoke", {"ID": "777001"})
    g.call("Lease.LeaseRevoke", "/v3/lease/revoke", {"ID": "777001"})              # not found
    g.call("KV.Range", "/v3/kv/range", {"key": b64(ns + "l")})
    for ep in pair.endpoints:   # the server-chosen lease: revoke on each with its own ID
        status, _, body = post(ep, "/v3/lease/revoke", {"ID": ids[ep.role]})
        assert status == 200, (ep.role, body)


# -- watch ------------------------------------------------------------------------------------

@pytest.mark.rpc("gateway Watch.Watch")
def test_gateway_watch(pair, ns):
    g = Gateway(pair)
    end = b64(ns[:-1] + "0")
    first = g.call("KV.Put", "/v3/kv/put", {"key": b64(ns + "h"), "value": b64("0")})[0]
    rev = int(first["header"]["revision"])
    body = json.dumps({"create_request": {"key": b64(ns), "range_end": end, "prev_kv": True}})
    history = json.dumps({"create_request": {"key": b64(ns), "range_end": end,
                                             "start_revision": str(rev)}})
    live = [Stream(ep, "/v3/watch", body) for ep in pair.endpoints]
    past = [Stream(ep, "/v3/watch", history) for ep in pair.endpoints]
    try:
        created = [[s.next()] for s in live]
        g.call("KV.Put", "/v3/kv/put", {"key": b64(ns + "a"), "value": b64("1")})
        g.call("KV.Put", "/v3/kv/put", {"key": b64(ns + "a"), "value": b64("2")})
        g.call("KV.Txn", "/v3/kv/txn", {"success": [
            {"request_put": {"key": b64(ns + "b"), "value": b64("t")}},
            {"request_delete_range": {"key": b64(ns + "a")}}]})
        g.call("KV.Put", "/v3/kv/put", {"key": b64("/elsewhere"), "value": b64("x")})
        for streams, expected in ((live, 1 + 4), (past, 1 + 5)):
            got = []
            for s in streams:
                results = created[live.index(s)] if streams is live else []
                items = _watch_items("Watch.Watch", results, s.ep)
                deadline = time.monotonic() + TIMEOUT
                while len(items) < expected and time.monotonic() < deadline:
                    item = s.next()
                    assert item is not None and "result" in item, (s.ep.role, item)
                    items += _watch_items("Watch.Watch", [item], s.ep)
                got.append((s.status, s.ctype, items, s.quiet()))
            pair.compare("POST /v3/watch", got[0], got[1])
            assert len(got[0][2]) == expected, got[0]
    finally:
        for s in live + past:
            s.close()
    g.call("KV.Put", "/v3/kv/put", {"key": b64(ns + "after"), "value": ""})  # both still serve


# -- maintenance and cluster ------------------------------------------------------------------

@pytest.mark.rpc("gateway Maintenance.Status", "gateway Maintenance.Hash",
                 "gateway Maintenance.Alarm", "gateway Maintenance.Defragment",
                 "gateway Cluster.MemberList", "gateway Maintenance.Snapshot")
def test_gateway_maintenance_and_cluster(pair):
    g = Gateway(pair)
    g.call("Maintenance.Status", "/v3/maintenance/status", {})
    g.call("Maintenance.Hash", "/v3/maintenance/hash", {})
    g.call("Maintenance.Alarm", "/v3/maintenance/alarm", {"action": "GET"})
    g.call("Maintenance.Defragment", "/v3/maintenance/defragment", {})
    g.call("Cluster.MemberList", "/v3/cluster/member/list", {})
    g.call("Cluster.MemberRemove", "/v3/cluster/member/remove", {"ID": "1"})       # not found
    shapes = []
    for ep in pair.endpoints:    # the bytes differ (bolt layouts); the stream's form must not
        s = Stream(ep, "/v3/maintenance/snapshot", "{}")
        first = s.next()
        s.rest()
        s.close()
        # (rusd also fills header and remaining_bytes in the first message, as etcd 3.5 does)
        shapes.append((s.status, s.ctype, sorted(first), type(first["result"].get("blob")).__name__))
    pair.compare("POST /v3/maintenance/snapshot", shapes[0], shapes[1])


# -- auth -------------------------------------------------------------------------------------

@pytest.mark.fresh
@pytest.mark.rpc("gateway Auth.UserAdd", "gateway Auth.RoleAdd", "gateway Auth.AuthEnable",
                 "gateway Auth.Authenticate", "gateway Auth.AuthDisable", "gateway Auth.UserGet",
                 "gateway Auth.RoleGrantPermission", "gateway Auth.UserGrantRole")
def test_gateway_auth(pair, ns):
    g = Gateway(pair)
    g.call("Auth.UserAdd", "/v3/auth/user/add", {"name": "root", "password": "rootpw"})
    g.call("Auth.UserAdd", "/v3/auth/user/add", {"name": "alice", "password": "alicepw"})
    g.call("Auth.UserGrantRole", "/v3/auth/user/grant", {"user": "root", "role": "root"})
    g.call("Auth.RoleAdd", "/v3/auth/role/add", {"name": "reader"})
    g.call("Auth.RoleGrantPermission", "/v3/auth/role/grant", {
        "name": "reader", "perm": {"permType": "READ", "key": b64(ns), "range_end": b64(ns[:-1] + "0")}})
    g.call("Auth.UserGrantRole", "/v3/auth/user/grant", {"user": "alice", "role": "reader"})
    g.call("Auth.UserGet", "/v3/auth/user/get", {"name": "alice"})
    g.call("Auth.AuthEnable", "/v3/auth/enable", {})
    g.call("Auth.Authenticate", "/v3/auth/authenticate", {"name": "alice", "password": "wrong"})
    tokens = {}
    for who, pw in (("root", "rootpw"), ("alice", "alicepw")):
        ref, cand = g.call("Auth.Authenticate", "/v3/auth/authenticate", {"name": who, "password": pw})
        tokens[who] = {"ref": ref["token"], "cand": cand["token"]}
    root = lambda ep: tokens["root"][ep.role]    # noqa: E731
    alice = lambda ep: tokens["alice"][ep.role]  # noqa: E731
    g.call("KV.Put", "/v3/kv/put", {"key": b64(ns + "k"), "value": b64("v")})            # no token
    g.call("KV.Put", "/v3/kv/put", {"key": b64(ns + "k"), "value": b64("v")}, token=lambda ep: "bogus")
    g.call("KV.Put", "/v3/kv/put", {"key": b64(ns + "k"), "value": b64("v")}, token=root)
    g.call("KV.Range", "/v3/kv/range", {"key": b64(ns + "k")}, token=alice)
    g.call("KV.Put", "/v3/kv/put", {"key": b64(ns + "k"), "value": b64("w")}, token=alice)  # denied
    g.call("KV.Range", "/v3/kv/range", {"key": b64("/outside")}, token=alice)               # denied
    g.call("Auth.UserAdd", "/v3/auth/user/add", {"name": "eve", "password": "x"}, token=alice)
    g.call("Auth.AuthDisable", "/v3/auth/disable", {}, token=alice)                          # denied
    g.call("Auth.AuthDisable", "/v3/auth/disable", {}, token=root)
    g.call("KV.Range", "/v3/kv/range", {"key": b64(ns + "k")})


# -- TLS --------------------------------------------------------------------------------------

from test_tls import launch, pki  # noqa: E402,F401  (fixtures: a throwaway PKI, servers by PID)


def _curl(url: str, path: str, body: str, tls: list[str], *extra: str) -> tuple[int, str, str]:
    """curl's exit code, HTTP status + version, and body (JSON with header ids hidden)."""
    import subprocess
    r = subprocess.run(["curl", "-sS", "--max-time", "2", *tls, *extra, "-X", "POST", "-d", body,
                        "-w", "\n%{http_code} %{http_version}", f"{url}{path}"],
                       capture_output=True, text=True, timeout=20)
    text, _, status = r.stdout.rpartition("\n")
    lines = []
    for line in text.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            lines.append(line)
            continue
        inner = doc.get("result", doc)
        for key in ("cluster_id", "member_id", "raft_term"):
            inner.get("header", {}).pop(key, None)
        lines.append(doc)
    # exit 28: --max-time ended a stream that stays open (Watch), as intended
    return r.returncode if r.returncode != 28 else 0, status, json.dumps(lines, sort_keys=True)


@pytest.mark.rpc("gateway TLS")
def test_gateway_over_tls_with_client_certs(pki, launch):
    import shutil
    if shutil.which("curl") is None:
        pytest.skip("needs curl")
    from servers import rusd_bin
    if rusd_bin() is None:
        pytest.skip("needs RUSD_BIN")
    tls_args = ["--cert-file", str(pki / "server.crt"), "--key-file", str(pki / "server.key"),
                "--trusted-ca-file", str(pki / "ca.crt"), "--client-cert-auth"]
    good = (str(pki / "client.crt"), str(pki / "client.key"))
    cert = ["--cacert", str(pki / "ca.crt"), "--cert", good[0], "--key", good[1]]
    results = {}
    for kind in ("etcd", "rusd"):
        url = launch(kind, ["https"], tls_args, client_cert=good).urls[0]
        out = []
        for version in ("--http1.1", "--http2"):
            out.append(_curl(url, "/v3/kv/put", json.dumps({"key": b64("k"), "value": b64(version)}),
                             cert, version))
            out.append(_curl(url, "/v3/kv/range", json.dumps({"key": b64("k")}), cert, version))
            out.append(_curl(url, "/v3/watch", json.dumps({"create_request": {"key": b64("k"),
                                                                              "start_revision": "2"}}),
                             cert, version))
        out.append(_curl(url, "/v3/kv/range", json.dumps({"key": b64("k")}),
                         ["--cacert", str(pki / "ca.crt")], "--http1.1")[0] != 0)   # no client cert
        results[kind] = out
    assert results["rusd"] == results["etcd"], (results["etcd"], results["rusd"])
    assert all(o[0] == 0 for o in results["etcd"][:-1]) and results["etcd"][-1] is True
