"""/metrics: gRPC call counters (go-grpc-prometheus' names and labels) and the disk latency
histograms, parsed with prometheus_client's text parser.

The differential case sends the same RPCs to etcd and the candidate and requires the same
counter increments and the same histogram buckets; the rusd-only case checks that every
group commit is one observation of both disk histograms.
"""
from __future__ import annotations

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from test_lease import keepalive

STARTED, HANDLED = "grpc_server_started_total", "grpc_server_handled_total"
DISK = ("etcd_disk_wal_fsync_duration_seconds", "etcd_disk_backend_commit_duration_seconds")


def scrape(endpoint: str) -> dict:
    """{sample name: {frozenset(labels.items()): value}} and {family name: type}."""
    with urllib.request.urlopen(f"http://{endpoint}/metrics", timeout=10) as r:
        text = r.read().decode()
    samples: dict = {}
    types: dict = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            samples.setdefault(s.name, {})[frozenset(s.labels.items())] = s.value
    return {"samples": samples, "types": types}


def calls(m: dict, name: str, method: str, service: str, kind: str = "unary", code: str | None = None) -> float:
    labels = {"grpc_method": method, "grpc_service": service, "grpc_type": kind}
    if code is not None:
        labels["grpc_code"] = code
    return m["samples"].get(name, {}).get(frozenset(labels.items()), 0.0)


# (service, method, kind, code) of each call the differential case makes, with its count.
EXPECTED = [
    ("etcdserverpb.KV", "Put", "unary", "OK", 3),
    ("etcdserverpb.KV", "Put", "unary", "InvalidArgument", 1),
    ("etcdserverpb.KV", "Range", "unary", "OK", 2),
    ("etcdserverpb.KV", "Txn", "unary", "OK", 1),
    ("etcdserverpb.Lease", "LeaseGrant", "unary", "OK", 1),
    ("etcdserverpb.Lease", "LeaseRevoke", "unary", "OK", 1),
    ("etcdserverpb.Lease", "LeaseRevoke", "unary", "NotFound", 2),
    ("etcdserverpb.Lease", "LeaseKeepAlive", "bidi_stream", "OK", 1),
    ("etcdserverpb.Maintenance", "Status", "unary", "OK", 1),
    ("etcdserverpb.Auth", "UserGet", "unary", "FailedPrecondition", 1),
]


@pytest.mark.rpc("KV.Put", "KV.Range", "Lease.LeaseKeepAlive")
def test_grpc_counters_move_as_etcds(pair, ns):
    before = [scrape(ep.server.endpoint) for ep in pair.endpoints]
    for i in range(3):
        pair.call("KV.Put", key=f"{ns}k{i}", value="v")
    pair.call("KV.Put", key="", value="v")                                  # key is not provided
    pair.call("KV.Range", key=ns + "k0")
    pair.call("KV.Range", key=ns + "k9")
    pair.call("KV.Txn", success=[{"request_range": {"key": ns + "k0"}}])
    pair.call("Lease.LeaseGrant", ID=53001, TTL=600)
    keepalive(pair, 53001)
    pair.call("Lease.LeaseRevoke", ID=53001)
    pair.call("Lease.LeaseRevoke", ID=53001)                                # not found
    pair.call("Lease.LeaseRevoke", ID=53002)
    pair.call("Maintenance.Status")
    pair.call("Auth.UserGet", name="nobody")                                # user not found
    after = [scrape(ep.server.endpoint) for ep in pair.endpoints]

    for (service, method, kind, code, n) in EXPECTED:
        for ep, b, a in zip(pair.endpoints, before, after):
            handled = calls(a, HANDLED, method, service, kind, code) - calls(b, HANDLED, method, service, kind, code)
            assert handled == n, f"{ep.role}: {HANDLED} {service}/{method} {code}: +{handled}, want +{n}"
    for service, method, kind in {(s, m, k) for s, m, k, _, _ in EXPECTED}:
        n = sum(c for s, m, _, _, c in EXPECTED if (s, m) == (service, method))
        for ep, b, a in zip(pair.endpoints, before, after):
            started = calls(a, STARTED, method, service, kind) - calls(b, STARTED, method, service, kind)
            assert started == n, f"{ep.role}: {STARTED} {service}/{method}: +{started}, want +{n}"

    ref, cand = after
    for name in ("grpc_server_started", "grpc_server_handled", *DISK):
        assert cand["types"].get(name) == ref["types"].get(name), name
    # Every method etcd lists (its services are registered with zero counts) rusd lists too.
    ref_methods = {dict(k)["grpc_service"] + "/" + dict(k)["grpc_method"] for k in ref["samples"][STARTED]}
    cand_methods = {dict(k)["grpc_service"] + "/" + dict(k)["grpc_method"] for k in cand["samples"][STARTED]}
    etcd_api = {m for m in ref_methods if m.startswith("etcdserverpb.")}
    assert etcd_api - cand_methods == set()
    # Same bucket bounds as etcd's disk histograms.
    for name in DISK:
        bounds = [sorted(float(dict(k)["le"]) for k in m["samples"][name + "_bucket"]) for m in after]
        assert bounds[0] == bounds[1], name


def test_disk_histograms_count_group_commits_on_rusd(pair, ns):
    if pair.cand.server.target == "etcd":
        pytest.skip("rusd-only: one observation per group commit")
    cand = pair.cand.server.endpoint
    before = scrape(cand)
    n = 7
    for i in range(n):   # sequential: each put is its own group commit
        pair.call("KV.Put", key=f"{ns}k{i}", value="v")
    pair.call("KV.Range", key=ns + "k0")                                    # reads commit nothing
    after = scrape(cand)
    commits = after["samples"]["rusd_server_group_commits_total"][frozenset()] - \
        before["samples"]["rusd_server_group_commits_total"][frozenset()]
    assert commits == n
    for name in DISK:
        count = after["samples"][name + "_count"][frozenset()] - before["samples"][name + "_count"][frozenset()]
        assert count == n, f"{name}_count +{count}, want +{n}"
        inf = frozenset({("le", "+Inf")})
        assert after["samples"][name + "_bucket"][inf] == after["samples"][name + "_count"][frozenset()]
        buckets = sorted((float(dict(k)["le"]), v) for k, v in after["samples"][name + "_bucket"].items())
        assert [b for b, _ in buckets[:-1]] == [0.001 * 2 ** i for i in range(14)]
        assert all(x[1] <= y[1] for x, y in zip(buckets, buckets[1:])), "buckets must be cumulative"
        assert after["samples"][name + "_sum"][frozenset()] >= before["samples"][name + "_sum"][frozenset()]


WATCH_GAUGES = ("etcd_debugging_mvcc_watch_stream_total", "etcd_debugging_mvcc_watcher_total",
                "etcd_debugging_mvcc_slow_watcher_total")


def _watch_gauges(endpoint: str) -> tuple:
    samples = scrape(endpoint)["samples"]
    return tuple(samples[name][frozenset()] for name in WATCH_GAUGES)


@pytest.mark.rpc("Watch.Watch")
def test_watch_gauges_move_as_etcds(pair, ns):
    """etcd counts every open Watch stream, watchers or not, and each created watcher until it
    is cancelled or its stream closes."""
    import time
    from watch_streams import WatchStream

    def settle(want):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            got = [tuple(g - b for g, b in zip(_watch_gauges(ep.server.endpoint), base))
                   for ep, base in zip(pair.endpoints, before)]
            if all(g == want for g in got):
                return
            time.sleep(0.05)
        assert got == [want, want], f"(streams, watchers, slow) moved by {got}, want {want} on both"

    before = [_watch_gauges(ep.server.endpoint) for ep in pair.endpoints]
    streams = [WatchStream(pair, ep) for ep in pair.endpoints]
    try:
        for s in streams:   # a stream without a watcher yet
            s.send({"progress_request": {}})
        settle((1, 0, 0))
        for s in streams:
            for key in ("a", "b"):
                s.send({"create_request": {"key": ns + key, "watch_id": 7 if key == "a" else 8}})
        settle((1, 2, 0))
        for s in streams:
            s.send({"cancel_request": {"watch_id": 7}})
        settle((1, 1, 0))
    finally:
        for s in streams:
            s.close()
    settle((0, 0, 0))
