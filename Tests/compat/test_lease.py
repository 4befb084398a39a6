"""Lease: grant (client and server IDs, errors), revoke (keys deleted in one revision),
keep-alive, time-to-live with keys, leases listing, puts with leases."""
import threading

import pytest

from kv_helpers import prefix_end, put_all
from watch_streams import PairWatch


def keepalive(pair, lease_id):
    """LeaseKeepAlive requests (one ID or a list) on a fresh stream per server; compares the
    answers."""
    pair.rpcs_called.add("Lease.LeaseKeepAlive")
    from differential import error_outcome
    from etcd_api import to_dict
    from normalize import normalize
    outcomes = []
    for ep in pair.endpoints:
        lid = lease_id(ep) if callable(lease_id) else lease_id
        ids = lid if isinstance(lid, list) else [lid]
        reqs = [pair.api.request("Lease.LeaseKeepAlive", ID=i) for i in ids]
        try:
            responses = ep.stub("Lease.LeaseKeepAlive")(iter(reqs), timeout=10)
            out = {"ok": [to_dict(r) for r in responses]}
        except Exception as e:  # grpc.RpcError
            out = error_outcome(e)
        if "ok" in out:
            out["ok"] = [normalize("Lease.LeaseKeepAlive", {"ok": r}, None, ep.state)["ok"]
                         for r in out["ok"]]
        outcomes.append(out)
    pair.compare("Lease.LeaseKeepAlive", outcomes[0], outcomes[1])
    if "ok" in outcomes[0]:
        assert len(outcomes[0]["ok"]) == len(reqs), f"etcd answered {outcomes[0]}"
    return outcomes[0]


@pytest.mark.rpc("Lease.LeaseGrant", "Lease.LeaseRevoke")
def test_grant_client_ids_and_errors(pair):
    pair.call("Lease.LeaseGrant", ID=34001, TTL=60)
    pair.call("Lease.LeaseGrant", ID=34001, TTL=60)          # duplicate
    pair.call("Lease.LeaseGrant", ID=34002, TTL=1)           # below the minimum TTL
    pair.call("Lease.LeaseGrant", ID=34003, TTL=0)
    pair.call("Lease.LeaseGrant", ID=34004, TTL=-5)
    pair.call("Lease.LeaseGrant", ID=34005, TTL=9_000_000_001)   # above MaxLeaseTTL
    pair.call("Lease.LeaseGrant", ID=34006, TTL=9_000_000_000)
    pair.call("Lease.LeaseGrant", ID=-7, TTL=60)
    for lid in (34001, 34002, 34003, 34004, 34005, 34006, -7, 34001, 99):
        pair.call("Lease.LeaseRevoke", ID=lid)


@pytest.mark.rpc("Lease.LeaseGrant", "Lease.LeaseTimeToLive", "Lease.LeaseRevoke")
def test_server_chosen_ids(pair, ns):
    a = pair.call("Lease.LeaseGrant", TTL=60)
    b = pair.call("Lease.LeaseGrant", TTL=120)
    ids = lambda ans: (lambda ep: {"ID": ans.raw(ep).ID})
    pair.call("KV.Put", lambda ep: {"key": ns + "k", "value": "v", "lease": a.raw(ep).ID})
    pair.call("KV.Range", key=ns + "k")
    pair.call("Lease.LeaseTimeToLive", lambda ep: {"ID": a.raw(ep).ID, "keys": True})
    pair.call("Lease.LeaseTimeToLive", lambda ep: {"ID": b.raw(ep).ID})
    pair.call("Lease.LeaseRevoke", ids(a))
    pair.call("Lease.LeaseRevoke", ids(b))
    pair.call("KV.Range", key=ns + "k")


@pytest.mark.rpc("Lease.LeaseRevoke", "Watch.Watch")
def test_revoke_deletes_keys_in_one_revision(pair, ns):
    pair.call("Lease.LeaseGrant", ID=34101, TTL=600)
    for i in range(12):
        pair.call("KV.Put", key=f"{ns}k{i:02d}", value="v", lease=34101)
    put_all(pair, ns, {"unleased": "v"})
    with PairWatch(pair) as w:
        w.create(key=ns, range_end=prefix_end(ns), prev_kv=True)
        w.expect(1)
        pair.call("Lease.LeaseRevoke", ID=34101)
        w.expect(12)
        w.quiet()
    pair.call("KV.Range", key=ns, range_end=prefix_end(ns))
    pair.call("Lease.LeaseTimeToLive", ID=34101, keys=True)


@pytest.mark.rpc("Lease.LeaseKeepAlive")
def test_keepalive(pair):
    pair.call("Lease.LeaseGrant", ID=34201, TTL=60)
    keepalive(pair, 34201)
    keepalive(pair, 34299)                                   # unknown lease: TTL 0
    pair.call("Lease.LeaseRevoke", ID=34201)
    keepalive(pair, 34201)
    pair.call("Lease.LeaseGrant", ID=34202, TTL=45)
    keepalive(pair, [34202, 34299, 34202, 34202])             # several on one stream, in order
    pair.call("Lease.LeaseRevoke", ID=34202)
    b = pair.call("Lease.LeaseGrant", TTL=30)
    keepalive(pair, lambda ep: b.raw(ep).ID)
    pair.call("Lease.LeaseRevoke", lambda ep: {"ID": b.raw(ep).ID})


@pytest.mark.rpc("Lease.LeaseTimeToLive")
def test_time_to_live(pair, ns):
    pair.call("Lease.LeaseGrant", ID=34301, TTL=90)
    pair.call("Lease.LeaseTimeToLive", ID=34301)
    pair.call("Lease.LeaseTimeToLive", ID=34301, keys=True)
    for k in ("b", "a", "c"):
        pair.call("KV.Put", key=ns + k, value="v", lease=34301)
    pair.call("Lease.LeaseTimeToLive", ID=34301, keys=True)
    pair.call("Lease.LeaseTimeToLive", ID=34399, keys=True)   # unknown: TTL -1
    pair.call("Lease.LeaseRevoke", ID=34301)


@pytest.mark.fresh
@pytest.mark.rpc("Lease.LeaseLeases")
def test_leases(pair):
    pair.call("Lease.LeaseLeases")
    for i in range(5):
        pair.call("Lease.LeaseGrant", ID=34401 + i, TTL=60)
    pair.call("Lease.LeaseGrant", TTL=60)
    pair.call("Lease.LeaseLeases")
    pair.call("Lease.LeaseRevoke", ID=34402)
    pair.call("Lease.LeaseLeases")


@pytest.mark.fresh
@pytest.mark.rpc("Lease.LeaseGrant", "Watch.Watch")
def test_expiry_deletes_keys(pair, ns):
    """A lease that is not kept alive expires (minimum TTL) and its keys go in one revision."""
    pair.call("Lease.LeaseGrant", ID=34501, TTL=2)
    for i in range(5):
        pair.call("KV.Put", key=f"{ns}k{i}", value="v", lease=34501)
    with PairWatch(pair) as w:
        w.create(key=ns, range_end=prefix_end(ns))
        w.expect(1)
        w.expect(5, timeout=12)
    pair.call("Lease.LeaseTimeToLive", ID=34501, keys=True)
    pair.call("KV.Range", key=ns, range_end=prefix_end(ns), count_only=True)
