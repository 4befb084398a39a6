"""Every normalization the differential suite applies, in one place, each with its reason.

Answers are compared after these rules only. Anything not listed here must be equal
field by field (values, defaults, error codes and error strings). A rule that hides a real
difference is a bug in this file: keep each one as narrow as possible (zero stays zero, so a
field etcd leaves unset and we set, or the reverse, is still a difference).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

HIDDEN = "<normalized>"


@dataclass
class TargetState:
    """Per-server state the rules need: the server-chosen lease IDs seen so far, in order."""

    lease_ids: dict[int, str] = field(default_factory=dict)
    granted_ttl: dict[int, int] = field(default_factory=dict)

    def lease_token(self, lease_id: int) -> str:
        return self.lease_ids.setdefault(lease_id, f"<lease#{len(self.lease_ids) + 1}>")


@dataclass(frozen=True)
class Rule:
    name: str
    reason: str
    apply: Callable[[str, dict, dict, TargetState], None]


def _nonzero(d: dict, key: str, token: str) -> None:
    if d.get(key):
        d[key] = token


def _walk(node, fn) -> None:
    """Calls fn on every dict in a nested structure of dicts and lists."""
    if isinstance(node, dict):
        fn(node)
        for v in node.values():
            _walk(v, fn)
    elif isinstance(node, list):
        for v in node:
            _walk(v, fn)


def _headers(rpc, resp, req, st):
    def fix(d):
        h = d.get("header")
        if isinstance(h, dict):
            _nonzero(h, "cluster_id", "<cluster_id>")
            _nonzero(h, "member_id", "<member_id>")
            _nonzero(h, "raft_term", "<raft_term>")
    _walk(resp, fix)


def _server_lease_ids(rpc, resp, req, st):
    """Lease IDs the server chose (LeaseGrant with ID 0) become <lease#n> in grant order."""
    if rpc == "Lease.LeaseGrant" and not (req or {}).get("ID") and resp.get("ID"):
        st.lease_token(resp["ID"])
    if rpc == "Lease.LeaseGrant" and resp.get("ID"):
        st.granted_ttl[resp["ID"]] = resp.get("TTL", 0)

    def fix(d):
        for key in ("ID", "lease"):
            if isinstance(d.get(key), int) and d[key] in st.lease_ids:
                d[key] = st.lease_ids[d[key]]
    _walk(resp, fix)


def _remaining_ttl(rpc, resp, req, st):
    if rpc == "Lease.LeaseTimeToLive" and isinstance(resp.get("TTL"), int) and resp["TTL"] > 0:
        granted = resp.get("grantedTTL", 0)
        resp["TTL"] = "<remaining>" if resp["TTL"] <= granted else f"<remaining {resp['TTL']} > granted>"


def _unordered_lists(rpc, resp, req, st):
    if rpc == "Lease.LeaseLeases" and isinstance(resp.get("leases"), list):
        resp["leases"].sort(key=lambda l: str(l.get("ID")))
    if rpc == "Lease.LeaseTimeToLive" and isinstance(resp.get("keys"), list):
        resp["keys"].sort()


def _status(rpc, resp, req, st):
    if rpc != "Maintenance.Status":
        return
    _nonzero(resp, "version", "<version>")
    for key in ("dbSize", "dbSizeInUse"):
        _nonzero(resp, key, "<db size>")
    _nonzero(resp, "leader", "<member_id>")
    for key in ("raftIndex", "raftAppliedIndex"):
        _nonzero(resp, key, "<raft index>")
    _nonzero(resp, "raftTerm", "<raft_term>")


def _whole_db_hash(rpc, resp, req, st):
    if rpc == "Maintenance.Hash":
        _nonzero(resp, "hash", "<hash>")


def _members(rpc, resp, req, st):
    def fix(d):
        if "peerURLs" in d or "clientURLs" in d:
            _nonzero(d, "ID", "<member_id>")
            for key in ("peerURLs", "clientURLs"):
                if isinstance(d.get(key), list):
                    d[key] = ["<url>"] * len(d[key])
        if "memberID" in d:
            _nonzero(d, "memberID", "<member_id>")
    _walk(resp, fix)


def _auth_token(rpc, resp, req, st):
    if rpc == "Auth.Authenticate":
        _nonzero(resp, "token", "<token>")


POST_34_FIELDS = {
    "Maintenance.HashKV": ("hash_revision",),
    "Maintenance.Snapshot": ("version",),
    "Maintenance.Status": ("storageVersion", "dbSizeQuota", "downgradeInfo"),
}


def _post_34_fields(rpc, resp, req, st):
    for name in POST_34_FIELDS.get(rpc, ()):
        resp.pop(name, None)


_SORT_FIELD = {"VERSION": "version", "CREATE": "create_revision", "MOD": "mod_revision", "VALUE": "value"}


def _sort_ties_in_range(resp: dict, req: dict) -> None:
    field = _SORT_FIELD.get(str(req.get("sort_target", "KEY")))
    kvs = resp.get("kvs") if isinstance(resp, dict) else None
    if field is None or not isinstance(kvs, list):
        return
    descending = str(req.get("sort_order", "NONE")) == "DESCEND"

    def target(kv):
        v = kv.get(field, 0 if field != "value" else "")
        return v if v is not None else (0 if field != "value" else "")
    # Keep the order of target values (checked); only reorder keys that tie on the target.
    kvs.sort(key=lambda kv: (target(kv), str(kv.get("key"))), reverse=descending)


def _sort_ties_in_txn(resp: dict, req: dict) -> None:
    branch = req.get("success" if resp.get("succeeded") else "failure") or []
    for op, r in zip(branch, resp.get("responses") or []):
        if not isinstance(r, dict):
            continue
        if "request_range" in op and isinstance(r.get("response_range"), dict):
            _sort_ties_in_range(r["response_range"], op["request_range"])
        if "request_txn" in op and isinstance(r.get("response_txn"), dict):
            _sort_ties_in_txn(r["response_txn"], op["request_txn"])


def _unstable_sort_ties(rpc, resp, req, st):
    if not isinstance(req, dict):
        return
    if rpc == "KV.Range":
        _sort_ties_in_range(resp, req)
    elif rpc == "KV.Txn":
        _sort_ties_in_txn(resp, req)


RULES: list[Rule] = [
    Rule("fields etcd 3.4 lacks", "Response fields added in etcd 3.5/3.6 (marked in "
         "Protos/etcdserverpb/rpc.proto): the reference etcd 3.4 never sets them and rusd "
         "follows 3.5/3.6 (deliberate), so they are not compared: " + ", ".join(
             f"{rpc}.{f}" for rpc, fs in POST_34_FIELDS.items() for f in fs) + ".",
         _post_34_fields),
    Rule("header ids", "ResponseHeader.cluster_id, member_id and raft_term identify a cluster, a "
         "member and an election: random per cluster (cluster_id/member_id hash the URLs, which "
         "use random ports) and counted by raft. Only nonzero values are hidden.", _headers),
    Rule("server-chosen lease IDs", "LeaseGrant with ID 0 lets the server pick the ID (etcd: "
         "member-id bits + time). Such IDs become <lease#n> in grant order wherever they "
         "appear (LeaseGrant/KeepAlive/TimeToLive/Leases ID, KeyValue.lease). Client-chosen "
         "IDs are compared as they are.", _server_lease_ids),
    Rule("remaining TTL", "LeaseTimeToLive.TTL counts down in real time; compared as "
         "<remaining> when 0 < TTL <= grantedTTL (a value above grantedTTL stays visible).",
         _remaining_ttl),
    Rule("unordered lists", "etcd builds LeaseLeases.leases and LeaseTimeToLive.keys from Go "
         "maps, so their order is random even between two etcd runs: sorted before comparing.",
         _unordered_lists),
    Rule("status sizes and raft positions", "Maintenance.Status: version (rusd reports the "
         "version decided in issue 5), dbSize/dbSizeInUse (storage layout), leader (a member "
         "id), raftIndex/raftAppliedIndex/raftTerm (raft bookkeeping, including entries etcd "
         "appends for membership and leader changes). Zero stays zero.", _status),
    Rule("whole-database hash", "Maintenance.Hash hashes etcd's whole bolt file, including the "
         "member and cluster buckets, so it differs even between two etcd servers. HashKV "
         "(keys only) is compared exactly.", _whole_db_hash),
    Rule("member ids and URLs", "Member ID, peer/client URLs (random ports) and Alarm memberID "
         "identify the process, not behaviour; the number of URLs is still compared.", _members),
    Rule("auth token", "Authenticate's simple token is random by design.", _auth_token),
    Rule("sort ties", "A Range sorted by VERSION, CREATE, MOD or VALUE is ordered by Go's "
         "unstable sort.Sort in etcd, so keys that tie on the target come in an unspecified "
         "order: within equal target values kvs are compared in key order (the order of target "
         "values is still compared). The random generator sends no limit with such sorts, since "
         "a limit would cut the ties differently.", _unstable_sort_ties),
]

# Normalizations that are not field rewrites (applied where the data is gathered):
STRUCTURAL = {
    "watch batching": "How events of different revisions are grouped into WatchResponses "
                      "depends on timing, so watch streams are compared as a flat sequence of "
                      "events and control responses (created/canceled/progress); that every "
                      "revision's events arrive in one response is checked per server. Items are "
                      "compared per watcher (stable sort by watch_id): etcd notifies the watchers "
                      "of one event in map order, so order across watchers is unspecified. The "
                      "header revision of a response carrying events is compared only as \"at "
                      "or above its events' revisions\": while a watcher catches up from history "
                      "etcd stamps the store's revision at send time, which depends on timing.",
    "etcdctl endpoints": "etcdctl output is compared after the same header rules; error "
                         "messages naming the endpoint have the address replaced by <endpoint>; "
                         "clientv3's JSON log lines on stderr (client retry warnings with "
                         "timestamps) are dropped; \"took\" durations are hidden.",
}


def normalize(rpc: str, outcome: dict, request: dict | None, state: TargetState) -> dict:
    """Applies every rule to an outcome ({"ok": response dict} or {"error": ...}) in place."""
    resp = outcome.get("ok")
    if isinstance(resp, dict):
        for rule in RULES:
            rule.apply(rpc, resp, request, state)
    return outcome


def describe() -> str:
    lines = [f"- {r.name}: {r.reason}" for r in RULES]
    lines += [f"- {k}: {v}" for k, v in STRUCTURAL.items()]
    return "\n".join(lines)
