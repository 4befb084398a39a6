"""Auth checks on leases, against etcd 3.4: a Put with a lease needs WRITE on every key already
attached to the lease (etcd's checkLeasePuts), LeaseRevoke needs WRITE on every attached key;
Grant and Revoke refuse invalid tokens; TimeToLive without keys, Leases and KeepAlive check
nothing, not even the token; puts inside a Txn get no lease check (etcd 3.4). TimeToLive with
keys follows etcd 3.4.26 / 3.5.9 (READ on the lease's keys): see test_auth_matrix.py."""
import pytest

from kv_helpers import prefix_end
from test_auth import ALICE_PW, ROOT_PW, token_md
from test_lease import keepalive

# Client-chosen lease IDs: L_RO carries a key alice may only read, L_EMPTY none, L_OK only keys
# alice may write, L_MIXED both kinds.
L_RO, L_EMPTY, L_OK, L_MIXED, L_ANON, L_UNKNOWN = 51001, 51002, 51003, 51004, 51005, 51999


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
    # etcd 3.4 checks only the key of a put inside a Txn, not its lease.
    pair.call("KV.Txn", success=[{"request_put": {"key": "/ok/f", "value": "1", "lease": L_RO}}],
              metadata=alice)
    pair.call("KV.Txn", success=[{"request_put": {"key": "/ro/f", "value": "1", "lease": L_EMPTY}}],
              metadata=alice)

    # Reading a lease without its keys needs nothing (with keys: READ on them, which alice has
    # on L_RO's key; the rows she is refused are in test_auth_matrix.py).
    pair.call("Lease.LeaseTimeToLive", ID=L_RO, keys=True, metadata=alice)
    pair.call("Lease.LeaseTimeToLive", ID=L_MIXED)
    pair.call("Lease.LeaseLeases", metadata=alice)
    pair.call("Lease.LeaseTimeToLive", ID=L_OK, metadata=[("token", "bogus.1")])
    pair.call("Lease.LeaseLeases", metadata=[("token", "bogus.1")])
    keepalive(pair, [L_RO, L_OK])
    pair.call("Lease.LeaseGrant", ID=51006, TTL=600, metadata=alice)
    pair.call("Lease.LeaseGrant", ID=51007, TTL=600)                                 # no token
    pair.call("Lease.LeaseGrant", ID=51008, TTL=600, metadata=[("token", "bogus.1")])

    # Revoke: WRITE on every attached key.
    pair.call("Lease.LeaseRevoke", ID=L_RO, metadata=alice)                         # denied
    pair.call("Lease.LeaseRevoke", ID=L_MIXED, metadata=alice)                      # denied
    pair.call("Lease.LeaseRevoke", ID=L_OK, metadata=alice)
    pair.call("Lease.LeaseRevoke", ID=L_EMPTY, metadata=alice)                      # holds /ok/c
    pair.call("Lease.LeaseRevoke", ID=L_UNKNOWN, metadata=alice)                    # not found
    pair.call("Lease.LeaseRevoke", ID=L_ANON)                                       # no token, keys
    pair.call("Lease.LeaseRevoke", ID=51007)                                        # no token, none
    pair.call("Lease.LeaseRevoke", ID=L_ANON, metadata=[("token", "bogus.1")])
    pair.call("Lease.LeaseRevoke", ID=L_MIXED, metadata=root)
    pair.call("KV.Range", key="/", range_end=prefix_end("/"), metadata=root)
    pair.call("Lease.LeaseLeases", metadata=root)
    pair.call("Auth.AuthDisable", metadata=root)
    for lid in (L_RO, L_ANON, 51006):
        pair.call("Lease.LeaseRevoke", ID=lid)
