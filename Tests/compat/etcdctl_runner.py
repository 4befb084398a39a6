"""etcdctl (Debian etcd-client, ETCDCTL_API=3) run against both servers, outputs compared.

JSON output (-w json) is parsed; base64 keys/values are decoded for readable diffs; headers
and lease IDs go through the same normalization rules as gRPC answers; the endpoint address
in messages is replaced by <endpoint>.
"""
from __future__ import annotations

import base64
import json
import os
import queue
import re
import subprocess
import threading
import time

from differential import Endpoint, Pair
from etcd_api import show_bytes
from normalize import TargetState, _members, _walk

ETCDCTL = os.environ.get("ETCDCTL", "etcdctl")
BASE64_FIELDS = {"key", "value", "range_end", "keys"}


def _decode(d: dict) -> None:
    for k in BASE64_FIELDS & d.keys():
        v = d[k]
        try:
            if isinstance(v, str):
                d[k] = show_bytes(base64.b64decode(v, validate=True))
            elif isinstance(v, list):
                d[k] = [show_bytes(base64.b64decode(x, validate=True)) for x in v]
        except ValueError:
            pass


def _normalize_json(doc, state: TargetState) -> None:
    def fix(d):
        for k in ("cluster_id", "member_id", "raft_term"):
            if d.get(k):
                d[k] = f"<{k}>"
        for k in ("ID", "id", "lease"):
            if isinstance(d.get(k), int) and d[k] in state.lease_ids:
                d[k] = state.lease_ids[d[k]]
        if isinstance(d.get("TTL"), int) and d.get("granted-ttl") and 0 < d["TTL"] <= d["granted-ttl"]:
            d["TTL"] = "<remaining>"
        if isinstance(d.get("took"), str):
            d["took"] = "<duration>"
        if isinstance(d.get("keys"), list):
            d["keys"] = sorted(d["keys"])
        _decode(d)
    _walk(doc, fix)

    # Unordered lists (see normalize.py "unordered lists"): etcd lists leases in Go map order.
    def sort_leases(d):
        if isinstance(d.get("leases"), list):
            d["leases"].sort(key=lambda l: str(l.get("id", l.get("ID"))))
    _walk(doc, sort_leases)
    _members("", doc, None, state)


FIELDS_IDS = re.compile(r'^"(ClusterID|MemberID|RaftTerm)" : \d+$', re.M)


def command(ep: Endpoint, args: list[str]) -> list[str]:
    return [ETCDCTL, f"--endpoints={ep.server.endpoint}", "--command-timeout=10s", *args]


def env() -> dict:
    return {**os.environ, "ETCDCTL_API": "3"}


GRANTED = re.compile(r"lease ([0-9a-f]+) granted")


def _hide_lease_hex(text: str, state: TargetState) -> str:
    for lid, token in state.lease_ids.items():
        text = re.sub(rf"\b0*{lid:x}\b", token, text)
    return text


def clean_stderr(ep: Endpoint, text: str) -> str:
    """Drops clientv3's own JSON log lines (client-side retry warnings with timestamps and
    random client ids): they describe the client, and the error they carry is repeated on
    etcdctl's "Error:" line, which is compared."""
    lines = [l for l in text.splitlines() if not l.startswith('{"level"')]
    return "\n".join(lines).replace(ep.server.endpoint, "<endpoint>").strip()


def parse_output(ep: Endpoint, text: str, json_out: bool, lease_grant: bool):
    text = text.replace(ep.server.endpoint, "<endpoint>")
    if not json_out:
        if lease_grant:
            for hexid in GRANTED.findall(text):
                ep.state.lease_token(int(hexid, 16))
        text = FIELDS_IDS.sub(lambda m: f'"{m.group(1)}" : <{m.group(1)}>', text)
        return _hide_lease_hex(text, ep.state)
    docs = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            docs.append(line)
            continue
        if lease_grant and isinstance(doc, dict) and doc.get("ID"):
            ep.state.lease_token(doc["ID"])
        _normalize_json(doc, ep.state)
        docs.append(doc)
    return docs


def run(ep: Endpoint, args: list[str], stdin: str | None = None, timeout: float = 30) -> dict:
    proc = subprocess.run(command(ep, args), input=stdin, capture_output=True, text=True,
                          env=env(), timeout=timeout)
    json_out = "json" in " ".join(args)
    lease_grant = args[:2] == ["lease", "grant"]
    return {"exit": proc.returncode,
            "stdout": parse_output(ep, proc.stdout, json_out, lease_grant),
            "stderr": clean_stderr(ep, proc.stderr)}


def compare(pair: Pair, *args: str, stdin: str | None = None, per_target=None) -> dict:
    """Runs `etcdctl args` on both servers (args may be a callable of the Endpoint) and
    compares exit status, stdout and stderr; returns etcd's result."""
    results = []
    for ep in pair.endpoints:
        a = list(per_target(ep)) if per_target else list(args)
        results.append(run(ep, a, stdin))
    pair.compare("etcdctl " + " ".join(args or ["<per target>"]), results[0], results[1])
    return results[0]


def watch(pair: Pair, args: list[str], lines: int, action=None, timeout: float = 10) -> list:
    """Runs `etcdctl watch args -w json` on both, runs `action` (the writes), waits for
    `lines` JSON responses per server, and compares the flattened events."""
    procs = [subprocess.Popen(command(ep, ["watch", *args, "-w", "json"]), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env())
             for ep in pair.endpoints]
    try:
        time.sleep(0.5)  # etcdctl has no "watch created" output in json mode
        if action:
            action()
        outputs = []
        for ep, p in zip(pair.endpoints, procs):
            lines_q: queue.Queue = queue.Queue()
            threading.Thread(target=lambda p=p, q=lines_q: [q.put(l) for l in p.stdout] + [q.put(None)],
                             daemon=True).start()
            deadline = time.monotonic() + timeout
            events = []
            got = 0
            while got < lines:
                try:
                    line = lines_q.get(timeout=max(0.01, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if line is None:
                    events.append({"exit": p.wait(), "stderr": clean_stderr(ep, p.stderr.read())})
                    break
                doc = json.loads(line)
                _normalize_json(doc, ep.state)
                got += 1
                for e in doc.get("Events") or []:
                    events.append({"header_revision": doc["Header"].get("revision"), "event": e})
            outputs.append(events)
        pair.compare("etcdctl watch " + " ".join(args), outputs[0], outputs[1])
        return outputs[0]
    finally:
        for p in procs:
            p.kill()
            p.wait()
