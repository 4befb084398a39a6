"""Self-checks of the differential machinery (not compatibility cases: no rpc marker)."""
import pytest

import random_ops
from differential import Difference
from etcd_api import build, to_dict

pytestmark = pytest.mark.engine_independent   # checks the suite's own machinery: first target only


def test_detects_a_difference(pair, ns):
    """A write that only the candidate saw must show up as a difference."""
    ep = pair.cand
    ep.stub("KV.Put")(pair.api.request("KV.Put", key=ns + "only-cand", value="x"), timeout=10)
    with pytest.raises(Difference) as err:
        pair.call("KV.Range", key=ns + "only-cand")
    assert "only-cand" in str(err.value)


def test_detects_different_errors(pair, ns):
    """An error on one side and a response on the other is a difference."""
    pair.cand.stub("Lease.LeaseGrant")(pair.api.request("Lease.LeaseGrant", ID=88001, TTL=60),
                                        timeout=10)
    with pytest.raises(Difference):
        pair.call("Lease.LeaseGrant", ID=88001, TTL=60)


def test_messages_round_trip(api):
    msg = build(api.message_class("TxnRequest"),
                {"compare": [{"key": "k", "target": "MOD", "result": "LESS", "mod_revision": 3}],
                 "success": [{"request_put": {"key": b"\xff", "value": "v"}}]})
    d = to_dict(api.message_class("TxnRequest").FromString(msg.SerializeToString()))
    assert d["compare"][0]["target"] == "MOD" and d["compare"][0]["mod_revision"] == 3
    assert d["success"][0]["request_put"]["key"] == repr(b"\xff")
    assert d["failure"] == [] and d["success"][0]["request_put"]["lease"] == 0


def test_ddmin_finds_the_culprits():
    ops = [{"rpc": "x", "i": i} for i in range(200)]
    fails = lambda l: {13, 150} <= {o["i"] for o in l}
    small = random_ops.ddmin(ops, fails, deadline=float("inf"))
    assert [o["i"] for o in small] == [13, 150]


def test_generator_is_deterministic():
    a, b = random_ops.Generator(42), random_ops.Generator(42)
    assert [a.next() for _ in range(300)] == [b.next() for _ in range(300)]
