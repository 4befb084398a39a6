"""Auth checks on leases, against etcd 3.4.23, with the newest etcd's stricter rules
(GHSA-q8m4-xhhv-38mg / CVE-2026-33413; etcd PRs 21681 / 21685) where they differ: every lease RPC
needs an authenticated caller while auth is enabled; a Put with a lease (plain or inside a Txn)
needs WRITE on every key already attached to the lease (checkLeasePuts); LeaseRevoke and
LeaseKeepAlive WRITE on every attached key; LeaseLeases READ on every leased key;
TimeToLive with keys READ on the lease's keys (see also test_auth_matrix.py). Grant and Revoke
refuse invalid tokens. A stricter row asserts both that etcd 3.4.23 answers otherwise and that
rusd gives the newer etcd's answer."""
import pytest

from kv_helpers import prefix_end
from test_auth import ALICE_PW, ROOT_PW, token_md
from differential import error_outcome

pytestmark = pytest.mark.engine_independent   # auth lies above the engine: first target only

USER_EMPTY = {"error": {"code": "INVALID_ARGUMENT", "details": "etcdserver: user name is empty"}}
PERMISSION_DENIED = {"error": {"code": "PERMISSION_DENIED", "details": "etcdserver: permission denied"}}
INVALID_TOKEN = {"error": {"code": "UNAUTHENTICATED", "details": "etcdserver: invalid auth token"}}

def stricter(pair, rpc, expected, *, metadata=None, **fields):
    """A row where the newest etcd is stricter than 3.4.23: etcd 3.4 must answer otherwise
    (else the row is stale) and rusd must answer `expected`."""
    ref, cand, _, _ = pair.send(rpc, metadata=metadata, **fields)
    assert ref != expected, f"{rpc} {fields}: etcd 3.4.23 already answers {ref}"
    assert cand == expected, f"{rpc} {fields}: expected {expected} (newest etcd), rusd answered {cand}"


def keepalive_outcomes(pair, ids, metadata=None):
    """One LeaseKeepAlive stream per server sending `ids`: "ok" with the count of answers, or
    the error that ended the stream."""
    pair.rpcs_called.add("Lease.LeaseKeepAlive")
    out = []
    for ep in pair.endpoints:
        md = metadata(ep) if callable(metadata) else metadata
        reqs = [pair.api.request("Lease.LeaseKeepAlive", ID=i) for i in ids]
        try:
            out.append({"ok": len(list(ep.stub("Lease.LeaseKeepAlive")(iter(reqs), timeout=10, metadata=md)))})
        except Exception as e:  # grpc.RpcError
            out.append(error_outcome(e))
    return out


# Client-chosen lease IDs: L_RO carries a key alice may only read, L_EMPTY none, L_OK only keys
# alice may write, L_MIXED both kinds.
L_RO, L_EMPTY, L_OK, L_MIXED, L_ANON, L_UNKNOWN = 51001, 51002, 51003, 51004, 51005, 51999
L_HIDDEN = 51010   # carries a key alice may not read


def setup_users(pair):
    """root (root role) and alice: READWRITE on /ok/, READ on /ro/."""
    pair.call("Auth.UserAdd", name="root", password=ROOT_PW)
    pair.call("Auth.UserGrantRole", user="root", role="root")
    pair.call("Auth.UserAdd", name="alice", password=ALICE_PW)
    pair.call("Auth.RoleAdd", name="partial")
    pair.call("Auth.RoleGrantPermission", name="partial",
              perm={"permType": "READWRITE", "key": "/ok/", "range_end": prefix_end("/ok/")})
    pair.call("Auth.RoleGrantPermission", name="partial",
              perm={"permType": "READ", "key": "/ro/", "range_end": prefix_end("/ro/")})
    pair.call("Auth.UserGrantRole", user="alice", role="partial")


@pytest.mark.fresh
@pytest.mark.rpc("KV.Put", "KV.Txn", "Lease.LeaseRevoke", "Lease.LeaseGrant",
                 "Lease.LeaseTimeToLive", "Lease.LeaseLeases", "Lease.LeaseKeepAlive")
def test_lease_permissions_of_a_partial_user(pair):
    setup_users(pair)
    for lid in (L_RO, L_EMPTY, L_OK, L_MIXED, L_ANON):
        pair.call("Lease.LeaseGrant", ID=lid, TTL=600)
    pair.call("KV.Put", key="/ro/x", value="1", lease=L_RO)
    pair.call("KV.Put", key="/ok/a", value="1", lease=L_OK)
    pair.call("KV.Put", key="/ok/b", value="1", lease=L_MIXED)
    pair.call("KV.Put", key="/ro/y", value="1", lease=L_MIXED)
    pair.call("KV.Put", key="/ok/anon", value="1", lease=L_ANON)
    pair.call("Auth.AuthEnable")
    alice = token_md(pair.call("Auth.Authenticate", name="alice", password=ALICE_PW))
    root = token_md(pair.call("Auth.Authenticate", name="root", password=ROOT_PW))

    # Put with a lease: the key, then every key on the lease, then prev_kv.
    pair.call("KV.Put", key="/ok/c", value="2", lease=L_RO, metadata=alice)        # denied
    pair.call("KV.Put", key="/ok/c", value="2", lease=L_MIXED, metadata=alice)     # denied
    pair.call("KV.Put", key="/ok/c", value="2", lease=L_OK, metadata=alice)
    pair.call("KV.Put", key="/ok/c", value="3", lease=L_EMPTY, prev_kv=True, metadata=alice)
    pair.call("KV.Put", key="/ro/z", value="2", lease=L_EMPTY, metadata=alice)     # key itself
    pair.call("KV.Put", key="/ok/d", value="2", lease=L_UNKNOWN, metadata=alice)   # lease not found
    pair.call("KV.Put", key="/ok/e", value="2", lease=L_RO)                        # no token
    pair.call("KV.Put", key="/ok/e", value="2", lease=L_RO, metadata=root)
    # A put inside a Txn: etcd 3.4.23 checks only its key; the newest etcd its lease too
    # (etcd PRs 21681 / 21685). The put sits in the failure branch of an always-true compare, so it is
    # checked but never applied (the servers stay alike).
    never = [{"key": "/ok/never", "target": "CREATE", "result": "EQUAL", "create_revision": 0}]
    stricter(pair, "KV.Txn", PERMISSION_DENIED, metadata=alice, compare=never,
             failure=[{"request_put": {"key": "/ok/f", "value": "1", "lease": L_RO}}])
    pair.call("KV.Txn", compare=never, failure=[{"request_put": {"key": "/ok/f", "value": "1", "lease": L_OK}}],
              metadata=alice)
    pair.call("KV.Txn", success=[{"request_put": {"key": "/ro/f", "value": "1", "lease": L_EMPTY}}],
              metadata=alice)

    # TimeToLive with keys: READ on them, which alice has on L_RO's key (the rows she is
    # refused are in test_auth_matrix.py); without a token nothing (newest etcd: refused).
    pair.call("Lease.LeaseTimeToLive", ID=L_RO, keys=True, metadata=alice)
    pair.call("Lease.LeaseTimeToLive", ID=L_MIXED, metadata=alice)
    stricter(pair, "Lease.LeaseTimeToLive", USER_EMPTY, ID=L_MIXED)
    stricter(pair, "Lease.LeaseTimeToLive", INVALID_TOKEN, ID=L_OK, metadata=[("token", "bogus.1")])
    # Leases: alice may read every leased key so far; then one she may not.
    pair.call("Lease.LeaseLeases", metadata=alice)
    stricter(pair, "Lease.LeaseLeases", INVALID_TOKEN, metadata=[("token", "bogus.1")])
    stricter(pair, "Lease.LeaseLeases", USER_EMPTY)
    pair.call("Lease.LeaseGrant", ID=L_HIDDEN, TTL=600, metadata=root)
    pair.call("KV.Put", key="/hidden/x", value="1", lease=L_HIDDEN, metadata=root)
    stricter(pair, "Lease.LeaseLeases", PERMISSION_DENIED, metadata=alice)
    pair.call("Lease.LeaseLeases", metadata=root)
    pair.call("Lease.LeaseRevoke", ID=L_HIDDEN, metadata=root)
    # KeepAlive: root, or WRITE on every key of the lease (etcd 3.4.23: anyone).
    for ids, md, expected in (([L_OK], alice, None), ([L_RO], alice, PERMISSION_DENIED),
                              ([L_OK], None, USER_EMPTY), ([L_RO, L_OK], root, None)):
        ref, cand = keepalive_outcomes(pair, ids, md)
        assert ref == {"ok": len(ids)}, f"etcd 3.4.23 keep-alive of {ids}: {ref}"
        assert cand == (expected or ref), f"keep-alive of {ids}: expected {expected or ref}, rusd {cand}"
    pair.call("Lease.LeaseGrant", ID=51006, TTL=600, metadata=alice)
    stricter(pair, "Lease.LeaseGrant", USER_EMPTY, ID=51007, TTL=600)             # etcd 3.4 grants it
    pair.call("Lease.LeaseGrant", ID=51008, TTL=600, metadata=[("token", "bogus.1")])

    # Revoke: WRITE on every attached key.
    pair.call("Lease.LeaseRevoke", ID=L_RO, metadata=alice)                         # denied
    pair.call("Lease.LeaseRevoke", ID=L_MIXED, metadata=alice)                      # denied
    pair.call("Lease.LeaseRevoke", ID=L_OK, metadata=alice)
    pair.call("Lease.LeaseRevoke", ID=L_EMPTY, metadata=alice)                      # holds /ok/c
    pair.call("Lease.LeaseRevoke", ID=L_UNKNOWN, metadata=alice)                    # not found
    pair.call("Lease.LeaseRevoke", ID=L_ANON)                                       # no token, keys
    stricter(pair, "Lease.LeaseRevoke", USER_EMPTY, ID=51007)   # etcd 3.4 revokes its (keyless) 51007
    pair.call("Lease.LeaseRevoke", ID=L_ANON, metadata=[("token", "bogus.1")])
    pair.call("Lease.LeaseRevoke", ID=L_MIXED, metadata=root)
    pair.call("KV.Range", key="/", range_end=prefix_end("/"), metadata=root)
    pair.call("Lease.LeaseLeases", metadata=root)
    pair.call("Auth.AuthDisable", metadata=root)
    for lid in (L_RO, L_ANON, 51006):
        pair.call("Lease.LeaseRevoke", ID=lid)
