"""What the NOSPACE alarm refuses, against etcd 3.4: with the alarm raised through
Maintenance.Alarm ACTIVATE (etcd then applies requests through its capped applier, exactly
as when the quota is exceeded), Put, Txns with a put and LeaseGrant fail with "etcdserver:
mvcc: database space exceeded"; reads, deletes, Txns without puts, lease revocation,
keep-alives and compaction keep working; disarming restores writes."""
import pytest

from kv_helpers import prefix_end
from test_lease import keepalive


def alarm(pair, action, status):
    return pair.call("Maintenance.Alarm", lambda ep: {
        "action": action, "alarm": "NOSPACE", "memberID": status.raw(ep).header.member_id})


@pytest.mark.fresh
@pytest.mark.rpc("Maintenance.Alarm", "Lease.LeaseGrant", "Lease.LeaseRevoke", "KV.Put", "KV.Txn",
                 "KV.DeleteRange", "KV.Compact", "Lease.LeaseTimeToLive", "Lease.LeaseKeepAlive")
def test_nospace_refuses_grants_puts_and_txn_puts(pair, ns):
    status = pair.call("Maintenance.Status")
    pair.call("Lease.LeaseGrant", ID=52001, TTL=600)
    pair.call("KV.Put", key=ns + "leased", value="v", lease=52001)
    pair.call("KV.Put", key=ns + "a", value="v")
    alarm(pair, "ACTIVATE", status)
    pair.call("Maintenance.Alarm", action="GET")

    pair.call("Lease.LeaseGrant", ID=52002, TTL=600)                    # refused
    pair.call("Lease.LeaseGrant", TTL=600)                              # refused
    pair.call("KV.Put", key=ns + "b", value="v")                        # refused
    pair.call("KV.Put", key=ns + "a", value="")                         # refused (even empty)
    pair.call("KV.Txn", success=[{"request_put": {"key": ns + "c", "value": "v"}}])
    pair.call("KV.Txn", compare=[{"key": ns + "a", "target": "VALUE", "result": "EQUAL", "value": "x"}],
              failure=[{"request_put": {"key": ns + "c", "value": "v"}}])
    pair.call("KV.Txn", success=[{"request_range": {"key": ns + "a"}}])
    pair.call("KV.Txn", success=[{"request_delete_range": {"key": ns + "a"}}])
    pair.call("KV.Range", key=ns, range_end=prefix_end(ns))
    pair.call("Lease.LeaseTimeToLive", ID=52001, keys=True)
    keepalive(pair, 52001)
    pair.call("Lease.LeaseRevoke", ID=52001)                            # allowed: frees space
    pair.call("KV.DeleteRange", key=ns, range_end=prefix_end(ns))
    rev = pair.call("KV.Range", key=ns, count_only=True).ok["header"]["revision"]
    pair.call("KV.Compact", revision=rev)

    alarm(pair, "DEACTIVATE", status)
    pair.call("Lease.LeaseGrant", ID=52002, TTL=600)
    pair.call("KV.Put", key=ns + "b", value="v", lease=52002)
    pair.call("Lease.LeaseRevoke", ID=52002)
