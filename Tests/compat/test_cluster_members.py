"""rusd cluster mode (issue 19.4): membership, leader and status recorded in PostgreSQL, judged by
etcdctl and grpcio on three members (lmdb, leveldb, lsm) sharing one log (`--shared-log`).

- `etcdctl member list` on every member lists all three with their client URLs and the IDs the
  members put in their own headers; `endpoint status` over all three names one leader, the same
  on each; IDs survive a kill -9 and restart.
- Status: raftIndex moves with writes; MoveLeader errors as etcd's (not leader, bad leader
  transferee), `etcdctl move-leader` hands the role over and the term grows.
- MemberAdd / MemberUpdate / MemberRemove with etcd's errors; a member started with an added
  member's peer URLs takes its ID; a removed member stops serving and is refused on restart.
- A second process with a live member's --name exits non-zero with a clear message.

Skips only when PostgreSQL or rusd is not installed (CI installs both).
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time

import grpc
import pytest

import pg_cluster
import servers

TIMEOUT = 10


@pytest.fixture(scope="module")
def cluster():
    with pg_cluster.running_cluster() as c:
        yield c


def call(api, member: servers.Server, rpc: str, **fields):
    with grpc.insecure_channel(member.endpoint) as ch:
        return api.callable(ch, rpc)(api.request(rpc, fields), timeout=TIMEOUT)


def rpc_error(api, member: servers.Server, rpc: str, **fields) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as e:
        call(api, member, rpc, **fields)
    return e.value


def etcdctl(endpoints: list[servers.Server], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(["etcdctl", "--endpoints=" + ",".join(m.endpoint for m in endpoints), *args],
                       capture_output=True, text=True, timeout=30, env={**os.environ, "ETCDCTL_API": "3"})
    if check:
        assert r.returncode == 0, f"etcdctl {' '.join(args)}: {r.stderr}"
    return r


def member_list(m: servers.Server) -> list[dict]:
    return json.loads(etcdctl([m], "member", "list", "-w", "json").stdout)["members"]


def own_id(api, m: servers.Server) -> int:
    return call(api, m, "Maintenance.Status").header.member_id


def statuses(members: list[servers.Server]) -> list[dict]:
    return json.loads(etcdctl(members, "endpoint", "status", "-w", "json").stdout)


def wait_for(what: str, check, deadline_s: float = 10):
    deadline = time.monotonic() + deadline_s
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_member_list_and_endpoint_status_show_all_members(api, cluster):
    ms = cluster.members
    ids = {m.name: own_id(api, m) for m in ms}
    assert len(set(ids.values())) == 3 and 0 not in ids.values(), ids
    for m in ms:
        listed = member_list(m)
        assert sorted((x["name"], x["ID"], x.get("clientURLs")) for x in listed) == \
            sorted((o.name, ids[o.name], [f"http://{o.endpoint}"]) for o in ms), f"member list on {m.name}: {listed}"
        assert [x["ID"] for x in listed] == sorted(x["ID"] for x in listed), "etcd lists members in ID order"
    # One leader, named alike by every member, and it says so of itself.
    sts = wait_for("a leader", lambda: (s := statuses(ms)) and all(x["Status"]["leader"] for x in s) and s)
    assert len(sts) == 3
    leaders = {x["Status"]["leader"] for x in sts}
    assert len(leaders) == 1 and leaders <= set(ids.values()), sts
    assert sum(x["Status"]["header"]["member_id"] == x["Status"]["leader"] for x in sts) == 1, sts


def test_ids_survive_a_kill9_restart(api, cluster):
    m2 = cluster.members[1]
    before = own_id(api, m2)
    listed_before = sorted(x["ID"] for x in member_list(cluster.members[0]))
    cluster.kill9(m2)
    cluster.restart_killed(m2)      # at once: the killed process's name lock must not block it
    assert own_id(api, m2) == before
    assert sorted(x["ID"] for x in member_list(m2)) == listed_before


def test_name_of_a_live_member_is_refused(api, cluster):
    with tempfile.TemporaryDirectory(prefix="rusd-dup-name-") as tmp:
        port = servers.free_port()
        started = time.monotonic()
        r = subprocess.run([servers.rusd_bin(), "--engine", "lmdb", "--name", "m1", "--data-dir", os.path.join(tmp, "d"),
                            "--listen-client-urls", f"http://127.0.0.1:{port}", "--shared-log", cluster.pg.url],
                           capture_output=True, text=True, timeout=30)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert 'the member name "m1" is taken by a live member of the cluster' in out, out
    assert f"http://{cluster.members[0].endpoint}" in out, out     # names where that member serves
    assert time.monotonic() - started < 15
    # The live m1 was not disturbed.
    assert call(api, cluster.members[0], "KV.Range", key=b"x").header.member_id == own_id(api, cluster.members[0])


def test_status_index_moves_with_writes(api, cluster):
    ms = cluster.members
    before = [call(api, m, "Maintenance.Status") for m in ms]
    put = call(api, ms[0], "KV.Put", key=b"/members/status", value=b"v")
    after = [wait_for("the write applied", lambda m=m: (s := call(api, m, "Maintenance.Status")).raftAppliedIndex
                      > b.raftAppliedIndex and s) for m, b in zip(ms, before)]
    for b, a in zip(before, after):
        assert a.raftIndex > b.raftIndex and a.raftIndex >= a.raftAppliedIndex, (b, a)
        assert a.header.revision >= put.header.revision


def test_move_leader(api, cluster):
    ms = cluster.members
    ids = {own_id(api, m): m for m in ms}
    leader_id = wait_for("a leader", lambda: call(api, ms[0], "Maintenance.Status").leader)
    leader = ids[leader_id]
    others = [m for m in ms if m is not leader]
    term = call(api, leader, "Maintenance.Status").raftTerm
    # Not the leader: etcd's "not leader".
    e = rpc_error(api, others[0], "Maintenance.MoveLeader", targetID=own_id(api, others[1]))
    assert (e.code(), e.details()) == (grpc.StatusCode.FAILED_PRECONDITION, "etcdserver: not leader")
    # An ID that is no member: "bad leader transferee".
    e = rpc_error(api, leader, "Maintenance.MoveLeader", targetID=0x1234)
    assert (e.code(), e.details()) == (grpc.StatusCode.FAILED_PRECONDITION, "etcdserver: bad leader transferee")
    target = others[1]
    tid = own_id(api, target)
    r = etcdctl(ms, "move-leader", format(tid, "x"))
    assert "Leadership transferred" in r.stdout, r.stdout
    for m in ms:
        st = wait_for(f"{m.name} to see the new leader",
                      lambda m=m: (s := call(api, m, "Maintenance.Status")).leader == tid and s, deadline_s=5)
        assert st.raftTerm > term, (term, st.raftTerm)
    # The new leader decides lease expiry: a 2 s lease granted on the old leader is revoked.
    lease = call(api, leader, "Lease.LeaseGrant", TTL=2).ID
    wait_for("the lease's revocation", lambda: call(api, leader, "Lease.LeaseTimeToLive", ID=lease).TTL == -1,
             deadline_s=10)


def test_member_add_update_remove(api, cluster):
    ms = cluster.members
    m1 = ms[0]
    # Peer URLs another member has (every member here runs with rusd's default peer URL).
    taken = member_list(m1)[0]["peerURLs"]
    e = rpc_error(api, m1, "Cluster.MemberAdd", peerURLs=taken)
    assert (e.code(), e.details()) == (grpc.StatusCode.FAILED_PRECONDITION, "etcdserver: Peer URLs already exists")
    e = rpc_error(api, m1, "Cluster.MemberAdd", peerURLs=["not a url"])
    assert (e.code(), e.details()) == (grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: given member URLs are invalid")
    e = rpc_error(api, m1, "Cluster.MemberUpdate", ID=0x1234, peerURLs=["http://127.0.0.1:1"])
    assert (e.code(), e.details()) == (grpc.StatusCode.NOT_FOUND, "etcdserver: member not found")
    e = rpc_error(api, m1, "Cluster.MemberRemove", ID=0x1234)
    assert (e.code(), e.details()) == (grpc.StatusCode.NOT_FOUND, "etcdserver: member not found")

    # Add m4 with etcdctl on m2; every member lists it, unstarted (no name, no client URLs).
    peer = f"http://127.0.0.1:{servers.free_port()}"
    out = etcdctl([ms[1]], "member", "add", "m4", f"--peer-urls={peer}").stdout
    assert "added to cluster" in out, out
    added = [x for x in member_list(ms[2]) if x.get("peerURLs") == [peer]]
    assert len(added) == 1 and not added[0].get("name") and not added[0].get("clientURLs"), added
    new_id = added[0]["ID"]
    # m4 starts with those peer URLs: it takes the added ID.
    m4 = servers.Server("rusd-lmdb", name="m4",
                        extra_args=["--shared-log", cluster.pg.url, "--initial-advertise-peer-urls", peer])
    m4.start()
    try:
        assert own_id(api, m4) == new_id
        listed = {x["ID"]: x for x in member_list(m1)}
        assert len(listed) == 4 and listed[new_id]["name"] == "m4" and listed[new_id]["clientURLs"] == [f"http://{m4.endpoint}"]
        # MemberUpdate changes its peer URLs, seen on every member.
        moved = f"http://127.0.0.1:{servers.free_port()}"
        call(api, ms[2], "Cluster.MemberUpdate", ID=new_id, peerURLs=[moved])
        for m in ms:
            assert {x["ID"]: x for x in member_list(m)}[new_id]["peerURLs"] == [moved]
        # MemberRemove: m4 stops serving, with etcd's words in its log.
        etcdctl([m1], "member", "remove", format(new_id, "x"))
        assert new_id not in {x["ID"] for x in member_list(ms[1])}
        m4.proc.wait(timeout=15)
        assert "the member has been permanently removed from the cluster" in open(m4.log_path, errors="replace").read()
        e = rpc_error(api, m1, "Cluster.MemberRemove", ID=new_id)
        assert (e.code(), e.details()) == (grpc.StatusCode.NOT_FOUND, "etcdserver: member not found")
        # Restarted on its data dir, it is refused.
        r = subprocess.run(m4.command(), capture_output=True, text=True, timeout=30)
        assert r.returncode == 1 and "the member has been permanently removed from the cluster" in r.stdout + r.stderr, \
            r.stdout + r.stderr
    finally:
        m4.stop()
    # The cluster goes on with its three members.
    assert len(member_list(m1)) == 3
    etcdctl(ms, "put", "/members/after-remove", "ok")
