"""Maintenance and Cluster: Status, Hash, HashKV, Alarm, Defragment, MemberList; compaction."""
import pytest

from kv_helpers import prefix_end, put_all


@pytest.mark.rpc("Maintenance.Status")
def test_status(pair, ns):
    pair.call("Maintenance.Status")
    put_all(pair, ns, {"a": "1"})
    pair.call("Maintenance.Status")


@pytest.mark.fresh
@pytest.mark.rpc("Maintenance.Hash", "Maintenance.HashKV")
def test_hash_and_hashkv(pair, ns):
    pair.call("Maintenance.Hash")
    pair.call("Maintenance.HashKV", revision=0)
    revs = [put_all(pair, ns, {"a": str(i), f"k{i}": "v"}) for i in range(5)]
    pair.call("KV.DeleteRange", key=ns + "k1")
    pair.call("Maintenance.Hash")
    for rev in [0, 1, *revs, revs[-1] + 1, revs[-1] + 100]:
        pair.call("Maintenance.HashKV", revision=rev)
    pair.call("KV.Compact", revision=revs[2])
    for rev in [0, revs[1], revs[2], revs[3]]:
        pair.call("Maintenance.HashKV", revision=rev)


@pytest.mark.rpc("Maintenance.Alarm")
def test_alarm_list_and_disarm(pair):
    pair.call("Maintenance.Alarm", action="GET")
    pair.call("Maintenance.Alarm", action="GET", alarm="NOSPACE")
    pair.call("Maintenance.Alarm", action="DEACTIVATE", alarm="NOSPACE")
    pair.call("Maintenance.Alarm", action="GET")


@pytest.mark.rpc("Maintenance.Defragment")
def test_defragment(pair, ns):
    put_all(pair, ns, {"a": "1"})
    pair.call("Maintenance.Defragment")
    pair.call("KV.Range", key=ns + "a")


@pytest.mark.rpc("Cluster.MemberList")
def test_member_list(pair):
    pair.call("Cluster.MemberList")


@pytest.mark.rpc("Cluster.MemberRemove", "Cluster.MemberUpdate", "Cluster.MemberPromote")
def test_member_changes_without_peers(pair):
    pair.call("Cluster.MemberRemove", ID=12345)
    pair.call("Cluster.MemberUpdate", ID=12345, peerURLs=["http://127.0.0.1:1"])
    pair.call("Cluster.MemberPromote", ID=12345)


@pytest.mark.fresh
@pytest.mark.rpc("KV.Compact")
def test_compaction_errors_and_reads(pair, ns):
    revs = [put_all(pair, ns, {"k": f"v{i}"}) for i in range(6)]
    pair.call("KV.Compact", revision=revs[-1] + 1)          # future
    pair.call("KV.Compact", revision=revs[2])
    pair.call("KV.Compact", revision=revs[2])               # same again
    pair.call("KV.Compact", revision=revs[1])               # older
    pair.call("KV.Compact", revision=revs[3], physical=True)
    pair.call("KV.Compact", revision=0)
    pair.call("KV.Compact", revision=-1)
    for rev in [revs[2], revs[3], revs[4], 1, revs[-1]]:
        pair.call("KV.Range", key=ns + "k", revision=rev)
    pair.call("KV.Txn", success=[{"request_range": {"key": ns + "k", "revision": revs[1]}}])
    pair.call("KV.Range", key=ns, range_end=prefix_end(ns), revision=revs[3], count_only=True)


@pytest.mark.rpc("Maintenance.MoveLeader")
def test_move_leader_single_member(pair):
    status = pair.call("Maintenance.Status")
    pair.call("Maintenance.MoveLeader", lambda ep: {"targetID": status.raw(ep).header.member_id})
    pair.call("Maintenance.MoveLeader", targetID=12345)
    pair.call("Maintenance.MoveLeader", targetID=0)
