"""State after a graceful restart (SIGTERM, same data dir): keys and their history, the
compacted revision, leases with their keys, watch history."""
import pytest

from kv_helpers import prefix_end, put_all
from watch_streams import PairWatch


def history(pair, ns):
    """Six revisions of puts, a delete, a compaction; returns the put revisions."""
    revs = [put_all(pair, ns, {"a": str(i), f"k{i}": "v"}) for i in range(6)]
    pair.call("KV.DeleteRange", key=ns + "k2")
    pair.call("KV.Compact", revision=revs[2])
    return revs


@pytest.mark.fresh
@pytest.mark.rpc("KV.Range", "KV.Compact", "KV.Put", "restart")
def test_kv_state_survives_restart(pair, ns):
    revs = history(pair, ns)
    before = pair.call("KV.Range", key=b"\0", count_only=True).ok["header"]["revision"]

    pair.restart_servers()

    pair.call("KV.Range", key=ns, range_end=prefix_end(ns))
    for rev in (revs[1], revs[2], revs[4], before, before + 1):
        pair.call("KV.Range", key=ns, range_end=prefix_end(ns), revision=rev)
    pair.call("KV.Compact", revision=revs[1])
    r = pair.call("KV.Put", key=ns + "after", value="v").ok
    assert r["header"]["revision"] == before + 1
    pair.call("KV.Range", key=ns, range_end=prefix_end(ns))


@pytest.mark.fresh
@pytest.mark.rpc("Lease.LeaseTimeToLive", "Lease.LeaseLeases", "Lease.LeaseRevoke",
                 "Maintenance.HashKV", "Watch.Watch", "restart")
def test_leases_hash_and_watch_history_survive_restart(pair, ns):
    revs = history(pair, ns)
    pair.call("Lease.LeaseGrant", ID=35001, TTL=3600)
    pair.call("KV.Put", key=ns + "leased", value="v", lease=35001)
    pair.call("Lease.LeaseGrant", ID=35002, TTL=3600)
    before = pair.call("KV.Range", key=b"\0", count_only=True).ok["header"]["revision"]

    pair.restart_servers()

    pair.call("Lease.LeaseTimeToLive", ID=35001, keys=True)
    pair.call("Lease.LeaseLeases")
    pair.call("Maintenance.HashKV", revision=0)
    with PairWatch(pair) as w:
        w.create(key=ns, range_end=prefix_end(ns), start_revision=revs[3], prev_kv=True)
        w.expect(1 + (before - revs[3] + 1))   # created + one event per revision from revs[3]
        w.quiet()
    pair.call("Lease.LeaseRevoke", ID=35001)
    pair.call("KV.Range", key=ns, range_end=prefix_end(ns))
