"""etcd's whole /metrics set against rusd's, and etcd's dashboard and alert rules against both.

1. Every family etcd 3.4 exports is exported by the candidate or listed as absent, with a
   reason, in docs/metrics.md (and the table is true: no "present" row rusd lacks, no
   "absent" row rusd exports). Families both export have the same type, label names and
   histogram bucket bounds.
2. After the same workload on both, the counters of that workload moved by the same amounts
   (MVCC operations, leases, gRPC messages, received bytes).
3. Every metric selector of etcd's Grafana dashboard and alert rules (Debian ships them under
   /usr/share/doc/etcd-server/op-guide) and of contrib/prometheus/rusd-alerts.yml that finds
   data on etcd finds data on the candidate; one that finds none on the candidate names a
   family docs/metrics.md lists as absent.

Scraped with prometheus_client's text parser; the families come from the `# TYPE` lines.
"""
from __future__ import annotations

import gzip
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from test_lease import keepalive

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "docs" / "metrics.md"
OP_GUIDE = Path("/usr/share/doc/etcd-server/op-guide")
SCRAPE_LABELS = {"job", "instance"}   # added by Prometheus, never in /metrics


def scrape(endpoint: str) -> dict:
    """{"types": {family: type}, "samples": [(name, labels, value)]}."""
    with urllib.request.urlopen(f"http://{endpoint}/metrics", timeout=10) as r:
        text = r.read().decode()
    types = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind.strip()
    samples = [(s.name, dict(s.labels), s.value)
               for family in text_string_to_metric_families(text) for s in family.samples]
    return {"types": types, "samples": samples}


def family_samples(m: dict, family: str) -> list:
    kind = m["types"][family]
    names = {f"{family}_bucket", f"{family}_sum", f"{family}_count"} if kind in ("histogram", "summary") else {family}
    if kind == "summary":
        names.add(family)
    return [s for s in m["samples"] if s[0] in names]


def label_names(m: dict, family: str) -> set:
    return {k for _, labels, _ in family_samples(m, family) for k in labels if k not in ("le", "quantile")}


def buckets(m: dict, family: str) -> list:
    return sorted(float(labels["le"]) for name, labels, _ in family_samples(m, family) if name == family + "_bucket")


def value(m: dict, name: str, **labels) -> float:
    return sum(v for n, ls, v in m["samples"] if n == name and all(ls.get(k) == w for k, w in labels.items()))


def load_table() -> dict:
    """docs/metrics.md rows: {family or prefix*: (type, status, why)}."""
    rows = {}
    for line in TABLE.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 4 or not cells[0].startswith("`"):
            continue
        name = cells[0].strip("`")
        rows[name] = (cells[1], cells[2].split()[0].lower() if cells[2] else "", cells[3])
    assert rows, f"no rows in {TABLE}"
    return rows


def table_row(rows: dict, family: str):
    if family in rows:
        return rows[family]
    for name, row in rows.items():
        if name.endswith("*") and family.startswith(name[:-1]):
            return row
    return None


def workload(pair, ns: str) -> None:
    """The same requests to both servers: the counts of each are known (see test 2)."""
    for i in range(4):
        pair.call("KV.Put", key=f"{ns}k{i}", value="v" * i)
    pair.call("KV.Put", key=f"{ns}k0", value="w", prev_kv=True)            # range + put: a txn
    pair.call("KV.Range", key=f"{ns}k0")
    pair.call("KV.Range", key=f"{ns}k", range_end=f"{ns}l")
    pair.call("KV.DeleteRange", key=f"{ns}k3")
    pair.call("KV.DeleteRange", key=f"{ns}k2", prev_kv=True)               # range + delete
    pair.call("KV.Txn", compare=[{"key": f"{ns}k0", "target": "VERSION", "result": "GREATER", "version": 0}],
              success=[{"request_put": {"key": f"{ns}t", "value": "x"}},
                       {"request_range": {"key": f"{ns}k0"}}])
    pair.call("KV.Txn", compare=[{"key": f"{ns}k0", "target": "VERSION", "result": "GREATER", "version": 0},
                                 {"key": f"{ns}k1", "target": "VERSION", "result": "GREATER", "version": 0}],
              success=[{"request_range": {"key": f"{ns}k0"}}])                # read-only: one txn
    pair.call("Lease.LeaseGrant", ID=61001, TTL=300)
    keepalive(pair, 61001)
    pair.call("Lease.LeaseRevoke", ID=61001)
    pair.call("Maintenance.Status")
    for ep in pair.endpoints:                                            # 3 healthy /health
        for _ in range(3):
            with urllib.request.urlopen(f"http://{ep.server.endpoint}/health", timeout=10) as r:
                assert r.status == 200


# Counters of the workload that must move by the same amount on both servers.
SAME_DELTA = [
    "etcd_mvcc_put_total", "etcd_mvcc_range_total", "etcd_mvcc_delete_total", "etcd_mvcc_txn_total",
    "etcd_debugging_mvcc_put_total", "etcd_debugging_mvcc_range_total", "etcd_debugging_mvcc_delete_total",
    "etcd_debugging_mvcc_txn_total", "etcd_debugging_mvcc_total_put_size_in_bytes",
    "etcd_debugging_lease_granted_total", "etcd_debugging_lease_revoked_total", "etcd_debugging_lease_renewed_total",
    "etcd_debugging_lease_ttl_total_count", "etcd_debugging_lease_ttl_total_sum",
    "etcd_network_client_grpc_received_bytes_total", "etcd_server_proposals_failed_total",
    "etcd_server_health_success", "etcd_server_health_failures",
]
MESSAGES = [("etcdserverpb.KV", "Put"), ("etcdserverpb.KV", "Range"), ("etcdserverpb.KV", "Txn"),
            ("etcdserverpb.KV", "DeleteRange"), ("etcdserverpb.Lease", "LeaseKeepAlive"),
            ("etcdserverpb.Lease", "LeaseGrant"), ("etcdserverpb.Maintenance", "Status")]


@pytest.fixture
def scraped(pair, ns):
    before = [scrape(ep.server.endpoint) for ep in pair.endpoints]
    workload(pair, ns)
    after = [scrape(ep.server.endpoint) for ep in pair.endpoints]
    return before, after


@pytest.mark.rpc("KV.Put", "KV.Range", "KV.Txn", "Lease.LeaseKeepAlive")
def test_every_etcd_family_is_exported_or_listed(pair, scraped):
    _, (ref, cand) = scraped
    rows = load_table()
    problems = []
    # The suite's self-check runs etcd as the candidate: it exports what rusd leaves absent.
    cand_is_etcd = "etcd_server_go_version" in cand["types"]
    for family, kind in sorted(ref["types"].items()):
        row = table_row(rows, family)
        if row is None:
            problems.append(f"{family} ({kind}): etcd exports it; docs/metrics.md does not list it")
            continue
        status, why = row[1], row[2]
        exported = family in cand["types"]
        if status == "absent":
            if exported and not cand_is_etcd:
                problems.append(f"{family}: listed absent but the candidate exports it")
            if not why:
                problems.append(f"{family}: absent without a reason")
            continue
        if not exported:
            problems.append(f"{family}: listed {status} but the candidate does not export it")
            continue
        if cand["types"][family] != kind:
            problems.append(f"{family}: type {cand['types'][family]}, etcd {kind}")
        if row[0] != kind:
            problems.append(f"{family}: docs/metrics.md says {row[0]}, etcd {kind}")
        ref_labels, cand_labels = label_names(ref, family), label_names(cand, family)
        if ref_labels and ref_labels != cand_labels:
            problems.append(f"{family}: labels {sorted(cand_labels)}, etcd {sorted(ref_labels)}")
        if kind == "histogram" and buckets(ref, family) != buckets(cand, family):
            problems.append(f"{family}: buckets {buckets(cand, family)}, etcd {buckets(ref, family)}")
    # The table lists no family etcd does not have (a typo would hide a missing one).
    for name, row in rows.items():
        if row[1] == "n/a":                                      # used by dashboards, not by etcd 3.4
            if name in ref["types"]:
                problems.append(f"docs/metrics.md says etcd does not export {name}; it does")
        elif not name.endswith("*") and name not in ref["types"]:
            problems.append(f"docs/metrics.md lists {name}, which etcd 3.4 does not export")
    assert not problems, "\n".join(problems)


@pytest.mark.rpc("KV.Put", "KV.Range", "KV.Txn", "Lease.LeaseKeepAlive")
def test_workload_counters_move_as_etcds(pair, scraped):
    (ref0, cand0), (ref1, cand1) = scraped
    problems = []
    for name in SAME_DELTA:
        d_ref, d_cand = value(ref1, name) - value(ref0, name), value(cand1, name) - value(cand0, name)
        if d_ref != d_cand:
            problems.append(f"{name}: +{d_cand}, etcd +{d_ref}")
    for service, method in MESSAGES:
        for name in ("grpc_server_msg_received_total", "grpc_server_msg_sent_total"):
            d_ref = value(ref1, name, grpc_service=service, grpc_method=method) - value(ref0, name, grpc_service=service, grpc_method=method)
            d_cand = value(cand1, name, grpc_service=service, grpc_method=method) - value(cand0, name, grpc_service=service, grpc_method=method)
            if d_ref != d_cand:
                problems.append(f"{name} {service}/{method}: +{d_cand}, etcd +{d_ref}")
    # Sent bytes: the same responses, whose headers (member ID, revision) may differ in size.
    name = "etcd_network_client_grpc_sent_bytes_total"
    d_ref, d_cand = value(ref1, name) - value(ref0, name), value(cand1, name) - value(cand0, name)
    if not 0.75 * d_ref <= d_cand <= 1.25 * d_ref:
        problems.append(f"{name}: +{d_cand}, etcd +{d_ref}")
    for m in (ref1, cand1):
        assert value(m, "process_resident_memory_bytes") > 1 << 20
        assert value(m, "process_open_fds") >= 3
        assert any(n == "process_cpu_seconds_total" for n, _, _ in m["samples"])
        assert abs(value(m, "process_start_time_seconds") - time.time()) < 86400
    assert not problems, "\n".join(problems)


# --- dashboards and alert rules ------------------------------------------------------------

PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
                "unless", "offset", "inf", "nan"}
SELECTOR = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?')
MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')


def selectors(expr: str) -> list:
    """(metric, [(label, op, value)]) of every instant or range selector in a PromQL expression."""
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr, flags=re.IGNORECASE)
    expr = re.sub(r'\[[^\]]*\]', " ", expr)                      # range durations
    found = []
    for m in SELECTOR.finditer(expr):
        name, braces = m.group(1), m.group(2)
        rest = expr[m.end():].lstrip()
        if name.lower() in PROMQL_WORDS or (rest.startswith("(") and not braces):
            continue                                             # a keyword or a function
        if re.fullmatch(r'\d+(\.\d+)?(e\d+)?', name):
            continue
        if m.start() > 0 and (expr[m.start() - 1].isdigit() or expr[m.start() - 1] == "."):
            continue                                             # the exponent of a number
        found.append((name, MATCHER.findall(braces or "")))
    return found


def has_data(m: dict, name: str, matchers: list) -> bool:
    def ok(labels: dict) -> bool:
        for label, op, want in matchers:
            if label in SCRAPE_LABELS:
                continue
            got = labels.get(label, "")
            if op == "=" and got != want or op == "!=" and got == want:
                return False
            if op in ("=~", "!~") and (re.fullmatch(want, got) is not None) != (op == "=~"):
                return False
        return True
    return any(n == name and ok(labels) for n, labels, _ in m["samples"])


def json_exprs(node) -> list:
    """Every "expr" string anywhere in a Grafana dashboard."""
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "expr" and isinstance(v, str)] + \
            [e for k, v in node.items() if k != "expr" for e in json_exprs(v)]
    if isinstance(node, list):
        return [e for v in node for e in json_exprs(v)]
    return []


def yaml_exprs(text: str) -> list:
    """The `expr:` values of a Prometheus rules file (inline, or a `|` / `>` block)."""
    out, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r'^(\s*)(?:- )?expr:\s*(.*)$', line)
        if not m:
            continue
        value = m.group(2).strip()
        if value and value[0] not in "|>":
            out.append(value.strip("'\""))
            continue
        block, indent = [], None
        for nxt in lines[i + 1:]:
            if not nxt.strip():
                continue
            width = len(nxt) - len(nxt.lstrip())
            if indent is None:
                indent = width
            if width < indent or width <= len(m.group(1)):
                break
            block.append(nxt.strip())
        out.append(" ".join(block))
    return out


def expressions() -> dict:
    """{source: [PromQL expression]} for the dashboards and rules available here."""
    import json
    out = {}
    dashboard = OP_GUIDE / "grafana.json.gz"
    if dashboard.exists():
        out["etcd grafana.json"] = json_exprs(json.loads(gzip.decompress(dashboard.read_bytes())))
    rules = OP_GUIDE / "etcd3_alert.rules.yml.gz"
    if rules.exists():
        out["etcd3_alert.rules.yml"] = yaml_exprs(gzip.decompress(rules.read_bytes()).decode())
    ours = ROOT / "contrib" / "prometheus" / "rusd-alerts.yml"
    if ours.exists():
        out["rusd-alerts.yml"] = yaml_exprs(ours.read_text())
    return out


def test_selector_parser():
    got = selectors('histogram_quantile(0.99, sum(rate(a_bucket{job="$c",x!="OK"}[5m])) by (instance, le)) > 1.5e2')
    assert got == [("a_bucket", [("job", "=", "$c"), ("x", "!=", "OK")])]
    assert selectors("(b / c) * 100 > 80") == [("b", []), ("c", [])]
    assert selectors("sum by (i) (rate(d[5m])) / sum without(j) (e)") == [("d", []), ("e", [])]


@pytest.mark.rpc("KV.Put", "KV.Range", "KV.Txn", "Lease.LeaseKeepAlive")
def test_dashboard_and_alert_selectors_find_data(pair, scraped):
    _, (ref, cand) = scraped
    sources = expressions()
    if not sources:
        pytest.skip("no dashboard or rules here (Debian etcd-server's op-guide)")
    rows = load_table()
    problems, report = [], []
    for source, exprs in sources.items():
        if source == "rusd-alerts.yml" and "etcd_server_go_version" in cand["types"]:
            continue                                             # the self-check: etcd as candidate
        for expr in exprs:
            for name, matchers in selectors(expr):
                if name == "up":                                 # Prometheus' own per target
                    continue
                on_ref, on_cand = has_data(ref, name, matchers), has_data(cand, name, matchers)
                report.append(f"{source}: {name} etcd={'data' if on_ref else 'none'} rusd={'data' if on_cand else 'none'}")
                family = re.sub(r'_(bucket|sum|count)$', "", name)
                row = table_row(rows, family) or table_row(rows, name)
                if on_cand:
                    continue
                if on_ref:
                    problems.append(f"{source}: {name}{matchers} has data on etcd, none on the candidate")
                elif source == "rusd-alerts.yml":
                    problems.append(f"{source}: {name}{matchers} finds no data on the candidate")
                elif row is None or row[1] not in ("absent", "n/a"):
                    problems.append(f"{source}: {name} finds no data on either; docs/metrics.md must say why")
    print("\n".join(report))
    assert not problems, "\n".join(problems)


MAINTENANCE_HISTOGRAMS = ["etcd_mvcc_hash_duration_seconds", "etcd_mvcc_hash_rev_duration_seconds",
                          "etcd_disk_backend_defrag_duration_seconds", "etcd_disk_backend_snapshot_duration_seconds",
                          "etcd_debugging_mvcc_index_compaction_pause_duration_milliseconds",
                          "etcd_debugging_mvcc_db_compaction_total_duration_milliseconds"]


@pytest.mark.fresh
@pytest.mark.rpc("KV.Compact", "Maintenance.Hash", "Maintenance.HashKV", "Maintenance.Defragment", "Maintenance.Snapshot")
def test_maintenance_and_compaction_histograms_move_as_etcds(pair, ns):
    """One Hash, HashKV, Defragment, Snapshot and physical Compact each: one observation in
    each of etcd's histograms on both servers, and the same number of records compacted."""
    before = [scrape(ep.server.endpoint) for ep in pair.endpoints]
    for i in range(5):
        pair.call("KV.Put", key=f"{ns}c", value=f"v{i}")
    pair.call("KV.Put", key=f"{ns}d", value="x")
    pair.call("KV.DeleteRange", key=f"{ns}d")
    revision = pair.call("KV.Range", key=f"{ns}c").ok["header"]["revision"]
    pair.call("KV.Compact", revision=int(revision), physical=True)
    pair.call("Maintenance.Hash")
    pair.call("Maintenance.HashKV", revision=0)
    pair.call("Maintenance.Defragment")
    for ep in pair.endpoints:
        chunks = list(ep.stub("Maintenance.Snapshot")(pair.api.request("Maintenance.Snapshot"), timeout=20))
        assert chunks, ep.role
    after = [scrape(ep.server.endpoint) for ep in pair.endpoints]
    problems = []
    for family in MAINTENANCE_HISTOGRAMS:
        moved = [value(a, family + "_count") - value(b, family + "_count") for a, b in zip(after, before)]
        if moved[0] != moved[1] or moved[0] < 1:
            problems.append(f"{family}_count: etcd +{moved[0]}, candidate +{moved[1]}")
    keys = [value(a, "etcd_debugging_mvcc_db_compaction_keys_total") - value(b, "etcd_debugging_mvcc_db_compaction_keys_total")
            for a, b in zip(after, before)]
    if keys[0] != keys[1] or keys[0] < 1:
        problems.append(f"etcd_debugging_mvcc_db_compaction_keys_total: etcd +{keys[0]}, candidate +{keys[1]}")
    for m in after:
        assert value(m, "etcd_disk_defrag_inflight") == 0
    assert not problems, "\n".join(problems)


# --- --metrics extensive, and the JSON gateway's calls in the gRPC families ------------------

def gateway_post(endpoint: str, path: str, body: str) -> int:
    """POSTs JSON to the HTTP gateway; the HTTP status (errors are answers too)."""
    req = urllib.request.Request(f"http://{endpoint}{path}", data=body.encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        e.read()
        return e.code


GATEWAY_CALLS = [("/v3/kv/put", '{"key":"Z3cx","value":"dg=="}'),        # gw1 = v
                 ("/v3/kv/put", '{"key":"Z3cy","value":"dnY="}'),        # gw2 = vv
                 ("/v3/kv/range", '{"key":"Z3cx"}'),
                 ("/v3/kv/range", '{"key":"Z3cx","revision":"999999"}'),  # future revision: OutOfRange
                 ("/v3/lease/grant", '{"TTL":"60","ID":"62001"}'),
                 ("/v3/maintenance/status", "{}")]
GATEWAY_METHODS = [("etcdserverpb.KV", "Put", "unary"), ("etcdserverpb.KV", "Range", "unary"),
                   ("etcdserverpb.Lease", "LeaseGrant", "unary"), ("etcdserverpb.Maintenance", "Status", "unary")]


@pytest.mark.fresh
@pytest.mark.server_args("--metrics", "extensive")
@pytest.mark.rpc("KV.Put", "KV.Range", "Lease.LeaseGrant", "Maintenance.Status")
def test_extensive_handling_time_and_gateway_calls_count_as_grpc(pair):
    """With --metrics extensive both export grpc_server_handling_seconds (same type, labels and
    buckets), and calls through the HTTP/JSON gateway move grpc_server_* and the received
    bytes exactly as etcd's (its gateway is a gRPC client of itself)."""
    before = [scrape(ep.server.endpoint) for ep in pair.endpoints]
    statuses = [[gateway_post(ep.server.endpoint, path, body) for path, body in GATEWAY_CALLS] for ep in pair.endpoints]
    assert statuses[0] == statuses[1] and statuses[0][3] >= 400, statuses
    pair.call("KV.Range", key="gw1")                                           # and one over gRPC
    after = [scrape(ep.server.endpoint) for ep in pair.endpoints]
    ref, cand = after
    family = "grpc_server_handling_seconds"
    assert ref["types"].get(family) == "histogram", "etcd --metrics extensive exports no handling histogram"
    assert cand["types"].get(family) == "histogram", "the candidate exports no grpc_server_handling_seconds"
    assert label_names(cand, family) == label_names(ref, family) == {"grpc_type", "grpc_service", "grpc_method"}
    assert sorted(set(buckets(cand, family))) == sorted(set(buckets(ref, family)))       # per method series
    problems = []
    for service, method, kind in GATEWAY_METHODS:
        labels = dict(grpc_service=service, grpc_method=method, grpc_type=kind)
        for name, extra in [("grpc_server_started_total", {}), ("grpc_server_handled_total", {"grpc_code": "OK"}),
                            ("grpc_server_handled_total", {"grpc_code": "OutOfRange"}),
                            ("grpc_server_msg_received_total", {}), ("grpc_server_msg_sent_total", {}),
                            ("grpc_server_handling_seconds_count", {})]:
            moved = [value(a, name, **labels, **extra) - value(b, name, **labels, **extra) for a, b in zip(after, before)]
            if moved[0] != moved[1]:
                problems.append(f"{name}{extra} {service}/{method}: candidate +{moved[1]}, etcd +{moved[0]}")
    started = value(cand, "grpc_server_started_total", grpc_method="Put") - value(before[1], "grpc_server_started_total", grpc_method="Put")
    assert started == 2 or problems, "gateway puts not counted"
    name = "etcd_network_client_grpc_received_bytes_total"
    moved = [value(a, name) - value(b, name) for a, b in zip(after, before)]
    if moved[0] != moved[1]:
        problems.append(f"{name}: candidate +{moved[1]}, etcd +{moved[0]}")
    assert not problems, "\n".join(problems)
