"""Txn: every compare target and result, compares over ranges, every op kind, nested txns,
failure branches, one revision per txn, and etcd's errors."""
import pytest

from kv_helpers import prefix_end, put_all

TARGET_FIELD = {"VERSION": "version", "CREATE": "create_revision", "MOD": "mod_revision",
                "VALUE": "value", "LEASE": "lease"}


def cmp(key, target, result, value, range_end=None):
    c = {"key": key, "target": target, "result": result, TARGET_FIELD[target]: value}
    if range_end is not None:
        c["range_end"] = range_end
    return c


def rng(key, **kw):
    return {"request_range": {"key": key, **kw}}


def put(key, value, **kw):
    return {"request_put": {"key": key, "value": value, **kw}}


def delete(key, **kw):
    return {"request_delete_range": {"key": key, **kw}}


@pytest.fixture
def seeded(pair, ns):
    pair.call("Lease.LeaseGrant", ID=32001, TTL=600)
    put_all(pair, ns, {"a": "1", "b": "22", "c": "333"})
    pair.call("KV.Put", key=ns + "l", value="leased", lease=32001)
    put_all(pair, ns, {"b": "23"})
    yield ns
    pair.call("Lease.LeaseRevoke", ID=32001)


@pytest.mark.rpc("KV.Txn")
@pytest.mark.parametrize("what", ["VERSION", "CREATE", "MOD", "VALUE", "LEASE"])
@pytest.mark.parametrize("result", ["EQUAL", "GREATER", "LESS", "NOT_EQUAL"])
def test_compare_targets_results(pair, seeded, what, result):
    ns = seeded
    kvs = {kv["key"]: kv for kv in pair.call("KV.Range", key=ns, range_end=prefix_end(ns)).ok["kvs"]}
    for key in ("a", "b", "l", "missing"):
        current = kvs.get(ns + key, {}).get(TARGET_FIELD[what], 0 if what != "VALUE" else "")
        candidates = ([current, "0", "333", "zzz", ""] if what == "VALUE"
                      else [current, current - 1, current + 1, 0])
        for value in candidates:
            pair.call("KV.Txn", compare=[cmp(ns + key, what, result, value)],
                      success=[rng(ns + key)], failure=[rng(ns + "c", keys_only=True)])


@pytest.mark.rpc("KV.Txn")
def test_compare_over_range(pair, seeded):
    ns = seeded
    end = prefix_end(ns)
    for target, values in {"VERSION": [0, 1, 2, 3], "MOD": [0, 10**6], "CREATE": [1, 10**6],
                           "VALUE": ["1", "", "zzzz"], "LEASE": [0, 32001]}.items():
        for result in ("EQUAL", "GREATER", "LESS", "NOT_EQUAL"):
            for value in values:
                pair.call("KV.Txn", compare=[cmp(ns, target, result, value, range_end=end)],
                          success=[rng(ns, range_end=end, count_only=True)])
    pair.call("KV.Txn", compare=[cmp(ns + "x", "VERSION", "EQUAL", 0, range_end=ns + "y")],
              success=[put(ns + "x", "created")])
    pair.call("KV.Txn", compare=[cmp(ns + "a", "VERSION", "GREATER", 0, range_end=b"\0")],
              success=[rng(ns + "a", range_end=b"\0", count_only=True)])


@pytest.mark.rpc("KV.Txn")
def test_multiple_compares_all_must_hold(pair, seeded):
    ns = seeded
    pair.call("KV.Txn", compare=[cmp(ns + "a", "VALUE", "EQUAL", "1"),
                                 cmp(ns + "b", "VERSION", "EQUAL", 2)],
              success=[put(ns + "ok", "1")], failure=[put(ns + "bad", "1")])
    pair.call("KV.Txn", compare=[cmp(ns + "a", "VALUE", "EQUAL", "1"),
                                 cmp(ns + "b", "VERSION", "EQUAL", 1)],
              success=[put(ns + "ok", "2")], failure=[put(ns + "bad", "2"), rng(ns + "ok")])
    pair.call("KV.Range", key=ns, range_end=prefix_end(ns))


@pytest.mark.rpc("KV.Txn")
def test_all_op_kinds_one_revision(pair, seeded):
    ns = seeded
    pair.call("KV.Txn", success=[put(ns + "n1", "x", prev_kv=True), put(ns + "a", "y", prev_kv=True),
                                 delete(ns + "c", prev_kv=True), rng(ns, range_end=prefix_end(ns)),
                                 rng(ns + "a", revision=2), rng(ns + "b", count_only=True)])
    pair.call("KV.Range", key=ns, range_end=prefix_end(ns))


@pytest.mark.rpc("KV.Txn")
def test_empty_and_read_only(pair, seeded):
    ns = seeded
    pair.call("KV.Txn")
    pair.call("KV.Txn", compare=[cmp(ns + "a", "VALUE", "EQUAL", "1")])
    pair.call("KV.Txn", success=[rng(ns + "a"), rng(ns + "b", limit=1)])
    pair.call("KV.Txn", compare=[cmp(ns + "a", "VALUE", "EQUAL", "no")], success=[put(ns + "z", "1")])


@pytest.mark.rpc("KV.Txn")
def test_nested_txn(pair, seeded):
    ns = seeded
    inner_ok = {"request_txn": {"compare": [cmp(ns + "a", "VALUE", "EQUAL", "1")],
                                "success": [put(ns + "in1", "s", prev_kv=True), rng(ns + "a")],
                                "failure": [put(ns + "in1", "f")]}}
    inner_fail = {"request_txn": {"compare": [cmp(ns + "a", "VALUE", "EQUAL", "no")],
                                  "success": [put(ns + "in2", "s")],
                                  "failure": [delete(ns + "b", prev_kv=True), rng(ns + "b")]}}
    pair.call("KV.Txn", success=[inner_ok, inner_fail, put(ns + "outer", "1")])
    pair.call("KV.Txn", compare=[cmp(ns + "outer", "VERSION", "EQUAL", 5)],
              failure=[{"request_txn": {"success": [{"request_txn": {"success": [rng(ns + "outer")]}}]}}])
    pair.call("KV.Range", key=ns, range_end=prefix_end(ns))


@pytest.mark.rpc("KV.Txn")
def test_duplicate_keys(pair, seeded):
    ns = seeded
    pair.call("KV.Txn", success=[put(ns + "d", "1"), put(ns + "d", "2")])
    pair.call("KV.Txn", success=[put(ns + "d", "1"), delete(ns + "d")])
    pair.call("KV.Txn", success=[delete(ns + "a"), put(ns + "a", "2")])
    pair.call("KV.Txn", success=[delete(ns + "a", range_end=ns + "c"), put(ns + "b", "2")])
    pair.call("KV.Txn", success=[delete(ns + "a"), delete(ns + "a")])      # allowed by etcd
    pair.call("KV.Txn", success=[put(ns + "d", "1")], failure=[put(ns + "d", "2")])  # branches
    pair.call("KV.Txn", success=[put(ns + "e", "1"),
                                 {"request_txn": {"success": [put(ns + "e", "2")]}}])
    pair.call("KV.Txn", success=[{"request_txn": {"success": [put(ns + "f", "1")]}},
                                 {"request_txn": {"success": [put(ns + "f", "2")]}}])
    pair.call("KV.Range", key=ns, range_end=prefix_end(ns))


@pytest.mark.rpc("KV.Txn")
@pytest.mark.parametrize("count", [128, 129, 500])
def test_too_many_ops(pair, ns, count):
    pair.call("KV.Txn", success=[put(f"{ns}k{i}", "v") for i in range(count)])
    pair.call("KV.Txn", compare=[cmp(f"{ns}k{i}", "VERSION", "GREATER", -1) for i in range(count)])
    pair.call("KV.Txn", failure=[rng(f"{ns}k{i}") for i in range(count)])
    pair.call("KV.Range", key=ns, range_end=prefix_end(ns), count_only=True)


@pytest.mark.rpc("KV.Txn")
def test_errors_inside_txn(pair, seeded):
    ns = seeded
    pair.call("KV.Txn", success=[put(b"", "v")])
    pair.call("KV.Txn", success=[rng(b"")])
    pair.call("KV.Txn", success=[delete(b"")])
    pair.call("KV.Txn", compare=[cmp(b"", "VERSION", "EQUAL", 0)])
    pair.call("KV.Txn", success=[put(ns + "x", "v", lease=999999)])
    pair.call("KV.Txn", success=[put(ns + "missing", "", ignore_value=True)])
    pair.call("KV.Txn", success=[rng(ns + "a", revision=10**9)])
    pair.call("KV.Txn", success=[put(ns + "y", "v")], failure=[put(ns + "y", "v", lease=999999)])
    pair.call("KV.Range", key=ns, range_end=prefix_end(ns))


@pytest.mark.rpc("KV.Txn")
def test_txn_too_large(pair, ns):
    pair.call("KV.Txn", success=[put(f"{ns}{i}", b"v" * 200_000) for i in range(8)])
    pair.call("KV.Txn", success=[put(f"{ns}{i}", b"v" * 200_000) for i in range(7)])


@pytest.mark.rpc("KV.Txn")
def test_from_key_delete_is_not_a_duplicate(pair, seeded):
    """etcd's duplicate-key check does not see a from-key DeleteRange (range_end "\\0"): the
    ops simply apply in order."""
    ns = seeded
    pair.call("KV.Txn", success=[delete(ns + "b", range_end=b"\0", prev_kv=True),
                                 put(ns + "c", "again", prev_kv=True)])
    pair.call("KV.Range", key=ns, range_end=prefix_end(ns))
    pair.call("KV.Txn", success=[put(ns + "c", "x"), delete(ns + "c", range_end=b"\0")])
    pair.call("KV.Range", key=ns, range_end=prefix_end(ns))
