"""Range: key / range_end forms, limit, count, revision, sorting, filters, options."""
import pytest

from kv_helpers import prefix_end, put_all

pytestmark = pytest.mark.rpc("KV.Range")

KEYS = {"a": "1", "b": "22", "c": "333", "c/x": "4", "d": "55555", "e": "6"}


@pytest.fixture
def seeded(pair, ns):
    put_all(pair, ns, KEYS)
    put_all(pair, ns, {"b": "222", "d": "5"})  # versions and mod revisions differ from create
    return ns


def test_single_key(pair, seeded):
    pair.call("KV.Range", key=seeded + "b")


def test_missing_key(pair, seeded):
    pair.call("KV.Range", key=seeded + "zz")


def test_range_end(pair, seeded):
    pair.call("KV.Range", key=seeded + "b", range_end=seeded + "d")


def test_prefix(pair, seeded):
    pair.call("KV.Range", key=seeded + "c", range_end=prefix_end(seeded + "c"))


def test_from_key(pair, seeded):
    """range_end "\\0": every key >= key (the answer includes other tests' keys: both servers
    have the same ones)."""
    pair.call("KV.Range", key=seeded + "c", range_end=b"\0", count_only=True)
    pair.call("KV.Range", key=seeded + "c", range_end=b"\0", limit=3)


def test_range_end_before_key(pair, seeded):
    pair.call("KV.Range", key=seeded + "d", range_end=seeded + "b")


@pytest.mark.parametrize("limit", [0, 1, 2, 6, 7, 100, -1])
def test_limit_more_count(pair, seeded, limit):
    pair.call("KV.Range", key=seeded, range_end=prefix_end(seeded), limit=limit)


@pytest.mark.parametrize("order", ["NONE", "ASCEND", "DESCEND"])
@pytest.mark.parametrize("target_field", ["KEY", "VERSION", "CREATE", "MOD", "VALUE"])
def test_sort(pair, seeded, order, target_field):
    pair.call("KV.Range", key=seeded, range_end=prefix_end(seeded), sort_order=order,
              sort_target=target_field)
    pair.call("KV.Range", key=seeded, range_end=prefix_end(seeded), sort_order=order,
              sort_target=target_field, limit=2)


def test_keys_only_count_only(pair, seeded):
    r = prefix_end(seeded)
    pair.call("KV.Range", key=seeded, range_end=r, keys_only=True)
    pair.call("KV.Range", key=seeded, range_end=r, count_only=True)
    pair.call("KV.Range", key=seeded, range_end=r, count_only=True, limit=2)
    pair.call("KV.Range", key=seeded, range_end=r, keys_only=True, count_only=True)


def test_serializable(pair, seeded):
    pair.call("KV.Range", key=seeded, range_end=prefix_end(seeded), serializable=True)


def test_min_max_revisions(pair, seeded):
    r = prefix_end(seeded)
    rev = pair.call("KV.Range", key=seeded + "a").ok["kvs"][0]["mod_revision"]
    for f in ("min_mod_revision", "max_mod_revision", "min_create_revision", "max_create_revision"):
        for delta in (0, 1, 3, 7):
            pair.call("KV.Range", {f: rev + delta}, key=seeded, range_end=r)
    pair.call("KV.Range", key=seeded, range_end=r, min_mod_revision=rev + 2,
              max_mod_revision=rev + 6, limit=1)
    pair.call("KV.Range", key=seeded, range_end=r, min_create_revision=rev + 1,
              count_only=True)


def test_historical(pair, ns):
    revs = [put_all(pair, ns, {"h": f"v{i}"}) for i in range(4)]
    pair.call("KV.Put", key=ns + "h2", value="x")
    pair.call("KV.DeleteRange", key=ns + "h")
    for rev in revs + [revs[-1] + 1, revs[-1] + 2]:
        pair.call("KV.Range", key=ns + "h", range_end=prefix_end(ns + "h"), revision=rev)


def test_future_revision(pair, ns):
    rev = put_all(pair, ns, {"f": "1"})
    pair.call("KV.Range", key=ns + "f", revision=rev + 1)
    pair.call("KV.Range", key=ns + "f", revision=rev + 1000)
    pair.call("KV.Range", key=ns + "f", revision=-1)


def test_empty_key(pair):
    pair.call("KV.Range", key=b"")
    pair.call("KV.Range", key=b"", range_end=b"z")


def test_binary_keys(pair, ns):
    pair.call("KV.Put", key=ns.encode() + b"\x00\xff\x01", value=b"\x00\x01\xfe")
    pair.call("KV.Put", key=ns.encode() + b"\xff\xff", value=b"")
    pair.call("KV.Range", key=ns.encode(), range_end=prefix_end(ns))
    pair.call("KV.Range", key=ns.encode() + b"\xff", range_end=b"\0")
