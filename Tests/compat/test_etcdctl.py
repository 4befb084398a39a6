"""etcdctl (ETCDCTL_API=3) against both servers: outputs compared after normalization."""
import pytest

import etcdctl_runner as ctl
from kv_helpers import put_all


@pytest.mark.rpc("etcdctl put", "KV.Put")
def test_put(pair, ns):
    ctl.compare(pair, "put", ns + "a", "1", "-w", "json")
    ctl.compare(pair, "put", ns + "a", "2", "--prev-kv", "-w", "json")
    ctl.compare(pair, "put", ns + "a", "3", "--prev-kv")
    ctl.compare(pair, "put", ns + "b", "--ignore-value", "-w", "json")
    ctl.compare(pair, "put", ns + "a", "--ignore-value")
    ctl.compare(pair, "put", ns + "c", "v", "--lease=1234")
    ctl.compare(pair, "put", "", "v")


@pytest.mark.rpc("etcdctl get", "KV.Range")
def test_get(pair, ns):
    put_all(pair, ns, {"a": "1", "b": "2", "c": "3", "c/d": "4"})
    put_all(pair, ns, {"b": "22"})
    for args in (["get", ns + "a"], ["get", ns + "a", "-w", "json"], ["get", ns + "zz"],
                 ["get", ns, "--prefix", "-w", "json"], ["get", ns, "--prefix", "--keys-only"],
                 ["get", ns, "--prefix", "--count-only", "-w", "json"],
                 ["get", ns, "--prefix", "--limit=2", "-w", "json"],
                 ["get", ns + "b", ns + "d", "--sort-by=MODIFY", "--order=DESCEND"],
                 ["get", ns + "c", "--from-key", "--limit=2", "-w", "json"],
                 ["get", ns + "b", "--rev=1", "-w", "json"],
                 ["get", ns + "b", "--rev=100000"],
                 ["get", ns, "--prefix", "--print-value-only"],
                 ["get", ns, "--prefix", "-w", "fields"],
                 ["get", ns, "--prefix", "--consistency=s", "-w", "table"]):
        ctl.compare(pair, *args)


@pytest.mark.rpc("etcdctl del", "KV.DeleteRange")
def test_del(pair, ns):
    put_all(pair, ns, {"a": "1", "b": "2", "c": "3", "d": "4"})
    ctl.compare(pair, "del", ns + "a", "-w", "json")
    ctl.compare(pair, "del", ns + "a")
    ctl.compare(pair, "del", ns + "b", "--prev-kv", "-w", "json")
    ctl.compare(pair, "del", ns, "--prefix")
    ctl.compare(pair, "del", "")


@pytest.mark.rpc("etcdctl txn", "KV.Txn")
def test_txn(pair, ns):
    put_all(pair, ns, {"a": "1"})
    script = (f'value("{ns}a") = "1"\n\n'
              f'put {ns}b "yes"\nget {ns}a\n\n'
              f'put {ns}b "no"\n\n')
    ctl.compare(pair, "txn", "-w", "json", stdin=script)
    ctl.compare(pair, "txn", stdin=script)
    failing = (f'mod("{ns}a") > "1000"\nversion("{ns}b") = "1"\n\n'
               f'del {ns}b\n\nget {ns} --prefix\nput {ns}c "c"\n\n')
    ctl.compare(pair, "txn", "-w", "json", stdin=failing)
    ctl.compare(pair, "txn", stdin=f'create("{ns}zz") = "0"\n\nput {ns}zz "1"\n\n\n')
    dup = f'\nput {ns}d "1"\nput {ns}d "2"\n\n'
    ctl.compare(pair, "txn", stdin=dup)


@pytest.mark.fresh
@pytest.mark.rpc("etcdctl compaction", "KV.Compact")
def test_compaction(pair, ns):
    rev = put_all(pair, ns, [("k", str(i)) for i in range(5)])
    ctl.compare(pair, "compaction", str(rev - 2))
    ctl.compare(pair, "compaction", str(rev - 2))
    ctl.compare(pair, "compaction", str(rev + 10))
    ctl.compare(pair, "compaction", "--physical", str(rev - 1))
    ctl.compare(pair, "get", ns + "k", f"--rev={rev - 3}")


@pytest.mark.rpc("etcdctl watch", "Watch.Watch")
def test_watch(pair, ns):
    rev = put_all(pair, ns, {"a": "1", "b": "2"})
    put_all(pair, ns, {"a": "3"})
    ctl.watch(pair, [ns, "--prefix", f"--rev={rev}", "--prev-kv"], lines=2,
              action=lambda: pair.call("KV.DeleteRange", key=ns + "b"))
    ctl.watch(pair, [ns + "a"], lines=1, action=lambda: put_all(pair, ns, {"a": "4"}))


@pytest.mark.rpc("etcdctl lease", "Lease.LeaseGrant", "Lease.LeaseRevoke",
                 "Lease.LeaseTimeToLive", "Lease.LeaseLeases", "Lease.LeaseKeepAlive")
def test_lease(pair, ns):
    ctl.compare(pair, "lease", "grant", "60", "-w", "json")
    ctl.compare(pair, "lease", "grant", "0")
    lease_hex = {}
    for ep in pair.endpoints:
        r = ctl.run(ep, ["lease", "grant", "120", "-w", "json"])
        lease_hex[ep.role] = format(next(i for i, t in ep.state.lease_ids.items()
                                         if t == f"<lease#{len(ep.state.lease_ids)}>"), "x")
    per = lambda *args: (lambda ep: [a.format(id=lease_hex[ep.role]) for a in args])
    ctl.compare(pair, per_target=per("put", ns + "k", "v", "--lease={id}"))
    ctl.compare(pair, per_target=per("lease", "timetolive", "{id}", "--keys", "-w", "json"))
    ctl.compare(pair, per_target=per("lease", "keep-alive", "--once", "{id}", "-w", "json"))
    ctl.compare(pair, "lease", "list", "-w", "json")
    ctl.compare(pair, per_target=per("lease", "revoke", "{id}", "-w", "json"))
    ctl.compare(pair, per_target=per("lease", "revoke", "{id}"))
    ctl.compare(pair, "lease", "timetolive", "abcdef")
    ctl.compare(pair, "get", ns + "k")


@pytest.mark.rpc("etcdctl endpoint", "Maintenance.Status", "Maintenance.HashKV")
def test_endpoint_and_alarm(pair):
    ctl.compare(pair, "endpoint", "health", "-w", "json")
    ctl.compare(pair, "alarm", "list")
    ctl.compare(pair, "member", "list", "-w", "json")


@pytest.mark.rpc("etcdctl endpoint", "Maintenance.Status", "Maintenance.HashKV", "Maintenance.Defragment")
def test_per_member_commands_with_url_endpoints(pair):
    """etcdctl dials each member on its own for these commands, and the Go client then sends
    the endpoint as given ("http://127.0.0.1:2379") as :authority, which etcd accepts."""
    import subprocess
    for args in (["endpoint", "status", "-w", "json"], ["endpoint", "hashkv", "-w", "json"], ["defrag"]):
        outcomes = []
        for ep in pair.endpoints:
            url = f"http://{ep.server.endpoint}"
            proc = subprocess.run([ctl.ETCDCTL, f"--endpoints={url}", "--command-timeout=10s", *args],
                                  capture_output=True, text=True, env=ctl.env(), timeout=30)
            outcomes.append((ep.role, proc.returncode, proc.stderr.strip()[-300:]))
            assert url in proc.stdout, outcomes
        assert all(code == 0 for _, code, _ in outcomes), outcomes
