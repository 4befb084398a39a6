"""The comparison layer: the same request to a reference etcd and to a candidate server.

`Pair.call` sends one request to both (concurrently), turns each answer — a response or a
gRPC error (code + details) — into a plain dict, applies normalize.RULES, and raises
`Difference` with a readable unified diff when they are not equal.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import os
import pprint
from dataclasses import dataclass, field
from typing import Any, Callable

import grpc

from etcd_api import EtcdAPI, to_dict
from normalize import TargetState, normalize
from servers import CALL_TIMEOUT, MAX_MESSAGE, Server


# COMPAT_LOG=file: every request and both answers appended as JSON lines (for debugging).
LOG_PATH = os.environ.get("COMPAT_LOG")


class Difference(AssertionError):
    """The candidate answered differently from etcd."""


class ReferenceCrashed(RuntimeError):
    """The reference etcd exited: its answers mean nothing from here on."""


def _short(value: Any) -> Any:
    """Long strings cut (for the COMPAT_LOG file)."""
    if isinstance(value, dict):
        return {k: _short(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_short(v) for v in value[:50]]
    if isinstance(value, str) and len(value) > 200:
        return value[:200] + f"...({len(value)} chars)"
    return value


def _digest_long(value: Any) -> Any:
    """Long strings shown as a prefix, their length and a digest (diffs stay readable)."""
    if isinstance(value, dict):
        return {k: _digest_long(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_digest_long(v) for v in value]
    if isinstance(value, str) and len(value) > 300:
        digest = hashlib.sha1(value.encode(errors="replace")).hexdigest()[:12]
        return f"{value[:60]}...<{len(value)} chars, sha1 {digest}>"
    return value


def render(value: Any) -> list[str]:
    return pprint.pformat(_digest_long(value), width=100, sort_dicts=True).splitlines()


def diff_text(what: str, ref_name: str, cand_name: str, ref: Any, cand: Any) -> str:
    lines = difflib.unified_diff(render(ref), render(cand), fromfile=ref_name,
                                 tofile=cand_name, lineterm="", n=6)
    return f"{what}: answers differ\n" + "\n".join(lines)


def error_outcome(err: grpc.RpcError) -> dict:
    code = err.code()
    return {"error": {"code": code.name if code else "UNKNOWN", "details": err.details()}}


@dataclass
class Endpoint:
    """One server as the comparison layer sees it: a channel plus normalization state."""

    role: str            # "ref" (the reference etcd) or "cand" (the candidate)
    server: Server
    api: EtcdAPI
    channel: grpc.Channel = None
    state: TargetState = field(default_factory=TargetState)
    _callables: dict = field(default_factory=dict)

    def __post_init__(self):
        self.channel = grpc.insecure_channel(self.server.endpoint, options=[
            ("grpc.max_send_message_length", MAX_MESSAGE),
            ("grpc.max_receive_message_length", MAX_MESSAGE)])

    def stub(self, rpc: str):
        c = self._callables.get(rpc)
        if c is None:
            c = self._callables[rpc] = self.api.callable(self.channel, rpc)
        return c

    def close(self):
        self.channel.close()

    def reopen(self):
        """A new channel (after a server restart); normalization state is kept."""
        self.channel.close()
        self._callables.clear()
        self.__post_init__()


Request = dict | Callable[["Endpoint"], dict]


class Pair:
    """A reference etcd and a candidate, kept in lockstep by sending both every request."""

    def __init__(self, api: EtcdAPI, ref: Server, cand: Server, target: str):
        self.api = api
        self.target = target
        self.ref = Endpoint("ref", ref, api)
        self.cand = Endpoint("cand", cand, api)
        self.differences: list[str] = []
        self.rpcs_called: set[str] = set()

    @property
    def endpoints(self) -> tuple[Endpoint, Endpoint]:
        return self.ref, self.cand

    def close(self):
        for e in self.endpoints:
            e.close()

    def restart_servers(self) -> None:
        """Restarts both servers on their data dirs (concurrently) and reconnects."""
        import concurrent.futures as cf
        with cf.ThreadPoolExecutor(2) as pool:
            for f in [pool.submit(ep.server.restart) for ep in self.endpoints]:
                f.result()
        for ep in self.endpoints:
            ep.reopen()

    # -- unary calls -------------------------------------------------------------------------
    def send(self, rpc: str, request: Request | None = None, *, metadata=None,
             **fields) -> tuple[dict, dict, Any, Any]:
        """Sends to both; returns (ref outcome, cand outcome, ref raw, cand raw), normalized,
        without comparing. Raw is the response message or the grpc.RpcError. `metadata` is a
        list of (key, value) or a callable of the Endpoint returning one (e.g. auth tokens)."""
        self.rpcs_called.add(rpc)
        futures, reqs = [], []
        for ep in self.endpoints:
            req = request(ep) if callable(request) else {**(request or {}), **fields}
            md = metadata(ep) if callable(metadata) else metadata
            reqs.append(req)
            futures.append(ep.stub(rpc).future(self.api.request(rpc, req), timeout=CALL_TIMEOUT,
                                               metadata=md))
        outcomes, raws = [], []
        for ep, fut, req in zip(self.endpoints, futures, reqs):
            try:
                raw = fut.result()
                outcome = {"ok": to_dict(raw)}
            except grpc.RpcError as e:
                raw, outcome = e, error_outcome(e)
            outcomes.append(normalize(rpc, outcome, req, ep.state))
            raws.append(raw)
        if LOG_PATH:
            with open(LOG_PATH, "a") as log:
                shown = json.dumps(reqs[0], default=repr)[:300]
                log.write(json.dumps({"rpc": rpc, "request": shown, "etcd": _short(outcomes[0]),
                                      self.target: _short(outcomes[1])}, default=repr) + "\n")
        return outcomes[0], outcomes[1], raws[0], raws[1]

    def call(self, rpc: str, request: Request | None = None, *, metadata=None,
             **fields) -> "Answer":
        """Sends to both and asserts equal normalized answers; returns both."""
        ref, cand, ref_raw, cand_raw = self.send(rpc, request, metadata=metadata, **fields)
        self.compare(rpc, ref, cand, request if not callable(request) else None, fields)
        return Answer(ref, cand, ref_raw, cand_raw)

    def check_alive(self) -> None:
        """Raises ReferenceCrashed if the reference etcd exited (with its log's tail)."""
        proc = self.ref.server.proc
        if proc is not None and proc.poll() is not None:
            raise ReferenceCrashed(f"the reference etcd exited with {proc.returncode}:\n"
                                   f"{self.ref.server.log_tail(12)}")

    def compare(self, what: str, ref: Any, cand: Any, request=None, fields=None) -> None:
        if ref == cand:
            return
        self.check_alive()
        text = diff_text(what, "etcd", self.target, ref, cand)
        proc = self.cand.server.proc
        if proc is not None and proc.poll() is not None:
            text += (f"\n\n{self.target} exited with {proc.returncode}; its log ends:\n"
                     f"{self.cand.server.log_tail(12)}")
        if request or fields:
            shown = json.dumps({**(request or {}), **(fields or {})}, default=repr)
            text = f"request: {shown[:600]}\n" + text
        self.differences.append(text)
        raise Difference(text)

    def current_revisions(self) -> tuple[int | None, int | None]:
        """Each server's current revision (None if it does not answer a Range)."""
        revs = []
        for ep in self.endpoints:
            try:
                resp = ep.stub("KV.Range")(self.api.request("KV.Range", key=b"\0", count_only=True),
                                           timeout=CALL_TIMEOUT)
                revs.append(resp.header.revision)
            except grpc.RpcError:
                revs.append(None)
        return revs[0], revs[1]


@dataclass
class Answer:
    ref: dict
    cand: dict
    ref_raw: Any
    cand_raw: Any

    @property
    def ok(self) -> dict:
        """The reference's response dict (asserting it succeeded)."""
        assert "ok" in self.ref, f"etcd answered an error: {self.ref}"
        return self.ref["ok"]

    def raw(self, ep: Endpoint):
        return self.ref_raw if ep.role == "ref" else self.cand_raw
