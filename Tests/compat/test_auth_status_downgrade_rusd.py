"""Auth.AuthStatus and Maintenance.Downgrade, which etcd 3.4 lacks, on rusd alone through
grpcio, against what etcd 3.5's source does:

- AuthStatus (etcd 3.5 applierV3backend.AuthStatus): `enabled` and `auth_revision`, the auth
  store's revision, which every successful auth change raises by one and nothing else
  changes; any caller may ask (no permission), an invalid token is refused.
- Downgrade on a single member (etcd 3.5 EtcdServer.Downgrade): VALIDATE answers the cluster
  version as semver (X.Y.0) for the one allowed target (one minor below); a target that is not
  semver fails "wrong downgrade target version format", any other target "invalid downgrade
  target version"; CANCEL without a downgrade in flight fails "no inflight downgrade job";
  an unknown action fails UNKNOWN "etcdserver: unknown method"; with auth enabled only root
  may call it. ENABLE of the valid target is refused by rusd (it cannot write an older
  storage format).

Needs RUSD_BIN (skipped otherwise).
"""
from __future__ import annotations

import os

import grpc
import pytest

from servers import Server, rusd_bin

pytestmark = pytest.mark.skipif(rusd_bin() is None, reason="RUSD_BIN is not set")


@pytest.fixture
def rusd(api):
    server = Server("rusd-" + os.environ.get("RUSD_ENGINES", "lmdb").split()[0])
    server.start()
    channel = grpc.insecure_channel(server.endpoint)

    def call(rpc, token=None, **fields):
        md = [("token", token)] if token else None
        return api.callable(channel, rpc)(api.request(rpc, fields), timeout=10, metadata=md)

    try:
        yield call
    finally:
        channel.close()
        server.stop()


def error(fn, *args, **kw) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as e:
        fn(*args, **kw)
    return e.value.code(), e.value.details()


def test_auth_status_tracks_enable_and_auth_revision(rusd):
    s0 = rusd("Auth.AuthStatus")
    assert (s0.enabled, s0.authRevision) == (False, s0.authRevision)
    rev = s0.authRevision
    changes = [
        ("Auth.UserAdd", dict(name="root", password="rootpw")),
        ("Auth.RoleAdd", dict(name="reader")),
        ("Auth.UserGrantRole", dict(user="root", role="root")),
        ("Auth.UserAdd", dict(name="alice", password="alicepw")),
        ("Auth.RoleGrantPermission", dict(name="reader", perm={"permType": "READ", "key": "a"})),
        ("Auth.UserGrantRole", dict(user="alice", role="reader")),
    ]
    for rpc, fields in changes:
        rusd(rpc, **fields)
        rev += 1
        assert rusd("Auth.AuthStatus").authRevision == rev, rpc
    # A failed change and reads leave the revision alone.
    assert error(rusd, "Auth.RoleAdd", name="reader")[0] == grpc.StatusCode.FAILED_PRECONDITION
    rusd("Auth.UserList")
    rusd("KV.Put", key="k", value="v")
    assert rusd("Auth.AuthStatus").authRevision == rev

    rusd("Auth.AuthEnable")                    # etcd's AuthEnable keeps the revision (AuthDisable bumps it)
    alice = rusd("Auth.Authenticate", name="alice", password="alicepw").token
    root = rusd("Auth.Authenticate", name="root", password="rootpw").token
    for token in (None, alice, root):          # no permission needed
        s = rusd("Auth.AuthStatus", token=token)
        assert (s.enabled, s.authRevision) == (True, rev)
        assert s.header.revision == 2          # the KV store's revision: one put
    assert error(rusd, "Auth.AuthStatus", token="bogus.1") == (
        grpc.StatusCode.UNAUTHENTICATED, "etcdserver: invalid auth token")

    rusd("Auth.AuthDisable", token=root)
    rev += 1
    s = rusd("Auth.AuthStatus")
    assert (s.enabled, s.authRevision) == (False, rev)


def test_downgrade_on_a_single_member(rusd):
    version = rusd("Maintenance.Status").version
    major, minor = (int(x) for x in version.split(".")[:2])
    below = f"{major}.{minor - 1}"

    for target in (below, below + ".0", below + ".7", below + ".1-rc.0"):
        resp = rusd("Maintenance.Downgrade", action="VALIDATE", version=target)
        assert resp.version == f"{major}.{minor}.0", target
        assert resp.header.member_id != 0 and resp.header.cluster_id != 0
    wrong_format = (grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: wrong downgrade target version format")
    for target in ("", "abc", "v" + below, f"{major}", below + ".x", f"{major}..{minor}"):
        assert error(rusd, "Maintenance.Downgrade", action="VALIDATE", version=target) == wrong_format, target
        assert error(rusd, "Maintenance.Downgrade", action="ENABLE", version=target) == wrong_format, target
    invalid = (grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: invalid downgrade target version")
    for target in (f"{major}.{minor}", f"{major}.{minor - 2}", f"{major}.{minor + 1}", f"{major - 1}.{minor - 1}",
                   f"{major + 1}.{minor - 1}.0"):
        assert error(rusd, "Maintenance.Downgrade", action="VALIDATE", version=target) == invalid, target
    code, _ = error(rusd, "Maintenance.Downgrade", action="ENABLE", version=below)
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    # Nothing was enabled, so there is nothing to cancel, whatever the version field says.
    for target in ("", below, "junk"):
        assert error(rusd, "Maintenance.Downgrade", action="CANCEL", version=target) == (
            grpc.StatusCode.FAILED_PRECONDITION, "etcdserver: no inflight downgrade job")
    assert error(rusd, "Maintenance.Downgrade", action=7, version=below) == (
        grpc.StatusCode.UNKNOWN, "etcdserver: unknown method")

    # With auth enabled: root only.
    rusd("Auth.UserAdd", name="root", password="rootpw")
    rusd("Auth.UserGrantRole", user="root", role="root")
    rusd("Auth.UserAdd", name="bob", password="bobpw")
    rusd("Auth.AuthEnable")
    bob = rusd("Auth.Authenticate", name="bob", password="bobpw").token
    root = rusd("Auth.Authenticate", name="root", password="rootpw").token
    assert error(rusd, "Maintenance.Downgrade", token=bob, action="VALIDATE", version=below) == (
        grpc.StatusCode.PERMISSION_DENIED, "etcdserver: permission denied")
    assert error(rusd, "Maintenance.Downgrade", action="VALIDATE", version=below)[1] == "etcdserver: user name is empty"
    assert rusd("Maintenance.Downgrade", token=root, action="VALIDATE", version=below).version == f"{major}.{minor}.0"
