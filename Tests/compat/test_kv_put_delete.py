"""Put options and DeleteRange forms, with their errors."""
import pytest

from kv_helpers import prefix_end, put_all


@pytest.mark.rpc("KV.Put")
def test_put_basic_and_overwrite(pair, ns):
    pair.call("KV.Put", key=ns + "k", value="v1")
    pair.call("KV.Put", key=ns + "k", value="v2")
    pair.call("KV.Put", key=ns + "k", value="")
    pair.call("KV.Range", key=ns + "k")


@pytest.mark.rpc("KV.Put")
def test_put_prev_kv(pair, ns):
    pair.call("KV.Put", key=ns + "k", value="v1", prev_kv=True)
    pair.call("KV.Put", key=ns + "k", value="v2", prev_kv=True)


@pytest.mark.rpc("KV.Put")
def test_put_ignore_value(pair, ns):
    pair.call("KV.Put", key=ns + "missing", ignore_value=True)
    pair.call("KV.Put", key=ns + "k", value="v1")
    pair.call("KV.Put", key=ns + "k", ignore_value=True, prev_kv=True)
    pair.call("KV.Put", key=ns + "k", value="other", ignore_value=True)
    pair.call("KV.Range", key=ns + "k")


@pytest.mark.rpc("KV.Put", "Lease.LeaseGrant")
def test_put_lease_options(pair, ns):
    pair.call("KV.Put", key=ns + "k", value="v", lease=424242)          # unknown lease
    pair.call("KV.Put", key=ns + "missing", value="v", ignore_lease=True)
    pair.call("Lease.LeaseGrant", ID=31001, TTL=600)
    pair.call("KV.Put", key=ns + "k", value="v", lease=31001)
    pair.call("KV.Put", key=ns + "k", value="v2", ignore_lease=True, prev_kv=True)
    pair.call("KV.Put", key=ns + "k", value="v3", lease=31001, ignore_lease=True)
    pair.call("KV.Put", key=ns + "k", value="v4")                       # detaches the lease
    pair.call("KV.Range", key=ns + "k")
    pair.call("Lease.LeaseRevoke", ID=31001)


@pytest.mark.rpc("KV.Put")
def test_put_empty_key(pair):
    pair.call("KV.Put", key=b"", value="v")


@pytest.mark.rpc("KV.Put")
@pytest.mark.parametrize("size", [1024, 1024 * 1024, 1536 * 1024 - 64, 1536 * 1024 + 1,
                                  1900 * 1024, 3 * 1024 * 1024])
def test_put_value_sizes(pair, ns, size):
    """Up to --max-request-bytes (1.5 MiB) passes; above it etcd answers "request is too
    large"; above the gRPC receive limit (max-request-bytes + 512 KiB) gRPC itself refuses."""
    pair.call("KV.Put", key=ns + "big", value=b"x" * size)
    pair.call("KV.Range", key=ns + "big", keys_only=True)


@pytest.mark.rpc("KV.DeleteRange")
def test_delete_single_and_missing(pair, ns):
    put_all(pair, ns, {"a": "1", "b": "2"})
    pair.call("KV.DeleteRange", key=ns + "a")
    pair.call("KV.DeleteRange", key=ns + "a")
    pair.call("KV.DeleteRange", key=ns + "b", prev_kv=True)
    pair.call("KV.Range", key=ns, range_end=prefix_end(ns))


@pytest.mark.rpc("KV.DeleteRange")
def test_delete_range_prefix_fromkey(pair, ns):
    put_all(pair, ns, {k: k * 2 for k in ["a", "b", "c", "d", "e", "f", "g"]})
    pair.call("KV.DeleteRange", key=ns + "b", range_end=ns + "d", prev_kv=True)
    pair.call("KV.DeleteRange", key=ns + "e", range_end=prefix_end(ns + "e"))
    pair.call("KV.DeleteRange", key=ns + "f", range_end=ns + "a")   # end before key
    pair.call("KV.Range", key=ns, range_end=prefix_end(ns))
    pair.call("KV.DeleteRange", key=ns + "f", range_end=prefix_end(ns), prev_kv=True)
    pair.call("KV.DeleteRange", key=ns, range_end=prefix_end(ns), prev_kv=True)


@pytest.mark.rpc("KV.DeleteRange")
def test_delete_empty_key(pair):
    pair.call("KV.DeleteRange", key=b"")
    pair.call("KV.DeleteRange", key=b"", range_end=b"a")


@pytest.mark.rpc("KV.Put", "KV.DeleteRange", "KV.Range")
def test_recreate_after_delete_resets_version(pair, ns):
    put_all(pair, ns, {"k": "1"})
    put_all(pair, ns, {"k": "2"})
    pair.call("KV.DeleteRange", key=ns + "k")
    put_all(pair, ns, {"k": "3"})
    pair.call("KV.Range", key=ns + "k")
