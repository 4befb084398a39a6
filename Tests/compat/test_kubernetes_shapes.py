"""The request shapes kube-apiserver's etcd3 storage sends (k8s.io/apiserver/pkg/storage/etcd3)."""
import pytest

from kv_helpers import prefix_end, put_all
from watch_streams import PairWatch


def mod_is(key, rev):
    return {"key": key, "target": "MOD", "result": "EQUAL", "mod_revision": rev}


@pytest.mark.rpc("KV.Txn")
def test_create_update_delete(pair, ns):
    key = ns + "pods/default/p1"
    create = lambda value: dict(compare=[mod_is(key, 0)],
                                success=[{"request_put": {"key": key, "value": value, "lease": 0}}],
                                failure=[{"request_range": {"key": key}}])
    r = pair.call("KV.Txn", create("v1")).ok
    pair.call("KV.Txn", create("again"))               # AlreadyExists: failure range answered
    rv = r["header"]["revision"]
    update = lambda rev, value: dict(compare=[mod_is(key, rev)],
                                     success=[{"request_put": {"key": key, "value": value}}],
                                     failure=[{"request_range": {"key": key}}])
    r = pair.call("KV.Txn", update(rv, "v2")).ok
    pair.call("KV.Txn", update(rv, "stale"))           # conflict: current object returned
    rv2 = r["header"]["revision"]
    delete = lambda rev: dict(compare=[mod_is(key, rev)],
                              success=[{"request_delete_range": {"key": key, "prev_kv": True}}],
                              failure=[{"request_range": {"key": key}}])
    pair.call("KV.Txn", delete(rv))                    # precondition failed
    pair.call("KV.Txn", delete(rv2))
    pair.call("KV.Txn", delete(rv2))                   # already gone: failure range is empty


@pytest.mark.rpc("KV.Txn", "Lease.LeaseGrant")
def test_create_with_shared_lease(pair, ns):
    pair.call("Lease.LeaseGrant", ID=33001, TTL=3600)
    for i in range(20):
        key = f"{ns}events/e{i}"
        pair.call("KV.Txn", compare=[mod_is(key, 0)],
                  success=[{"request_put": {"key": key, "value": f"event {i}", "lease": 33001}}],
                  failure=[{"request_range": {"key": key}}])
    pair.call("Lease.LeaseTimeToLive", ID=33001, keys=True)
    pair.call("Lease.LeaseRevoke", ID=33001)
    pair.call("KV.Range", key=ns, range_end=prefix_end(ns), count_only=True)


@pytest.mark.rpc("KV.Range")
def test_paginated_list_pinned_to_revision(pair, ns):
    prefix = ns + "pods/"
    put_all(pair, prefix, [(f"p{i:03d}", f"v{i}") for i in range(23)])
    first = pair.call("KV.Range", key=prefix, range_end=prefix_end(prefix), limit=5).ok
    rev = first["header"]["revision"]
    put_all(pair, prefix, {"p001": "changed", "p100": "new"})   # after the list started
    pair.call("KV.DeleteRange", key=prefix + "p010")
    last = first["kvs"][-1]["key"]
    while True:
        page = pair.call("KV.Range", key=last + "\0", range_end=prefix_end(prefix), limit=5,
                         revision=rev).ok
        if not page["more"]:
            break
        last = page["kvs"][-1]["key"]
    pair.call("KV.Range", key=prefix, range_end=prefix_end(prefix), revision=rev, count_only=True)
    pair.call("KV.Range", key=prefix, range_end=prefix_end(prefix), count_only=True)
    pair.call("KV.Range", key=prefix, range_end=prefix_end(prefix), keys_only=True, limit=3)
    pair.call("KV.Range", key=prefix + "p005", range_end=prefix_end(prefix), limit=1,
              revision=rev, serializable=True)


@pytest.mark.fresh
@pytest.mark.rpc("KV.Txn", "KV.Compact", "KV.Range")
def test_compact_rev_key(pair, ns):
    """The kube-apiserver compactor: a Txn on the version of "compact_rev_key", then Compact."""
    key = "compact_rev_key"
    put_all(pair, ns, [(f"k{i}", "x") for i in range(10)])
    version = 0
    for _ in range(3):
        rev = pair.call("KV.Range", key=b"\0", count_only=True).ok["header"]["revision"]
        txn = pair.call("KV.Txn", compare=[{"key": key, "target": "VERSION", "result": "EQUAL",
                                            "version": version}],
                        success=[{"request_put": {"key": key, "value": str(rev)}}],
                        failure=[{"request_range": {"key": key}}]).ok
        pair.call("KV.Txn", compare=[{"key": key, "target": "VERSION", "result": "EQUAL",
                                      "version": version}],   # a second apiserver loses
                  success=[{"request_put": {"key": key, "value": str(rev)}}],
                  failure=[{"request_range": {"key": key}}])
        assert txn["succeeded"]
        version += 1
        pair.call("KV.Compact", revision=rev)
        put_all(pair, ns, [(f"k{i}", "y") for i in range(5)])
    pair.call("KV.Range", key=ns, range_end=prefix_end(ns), revision=rev - 1)
    pair.call("KV.Range", key=ns, range_end=prefix_end(ns), revision=rev)


@pytest.mark.rpc("Watch.Watch")
def test_watch_from_rv_plus_one_with_prev_kv(pair, ns):
    prefix = ns + "pods/"
    rv = put_all(pair, prefix, {"a": "1", "b": "2"})
    put_all(pair, prefix, {"a": "1b"})
    pair.call("KV.DeleteRange", key=prefix + "b")
    with PairWatch(pair) as w:
        w.create(key=prefix, range_end=prefix_end(prefix), start_revision=rv + 1, prev_kv=True,
                 progress_notify=True)
        w.expect(1 + 2)                      # created, then the two events after rv
        put_all(pair, prefix, {"c": "3"})
        w.expect(1)
        w.send(progress_request={})
        w.expect(1)
        w.quiet()
