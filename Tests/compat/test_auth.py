"""Auth basics: users, roles, permissions, enable, authenticate, permission checks, disable."""
import pytest

from kv_helpers import prefix_end

pytestmark = pytest.mark.engine_independent   # auth lies above the engine: first target only

ROOT_PW, ALICE_PW = "rootpw", "alicepw"


def token_md(ans):
    return lambda ep: [("token", ans.raw(ep).token)] if hasattr(ans.raw(ep), "token") else None


@pytest.mark.fresh
@pytest.mark.rpc("Auth.UserAdd", "Auth.UserGet", "Auth.UserList", "Auth.UserDelete",
                 "Auth.UserChangePassword", "Auth.RoleAdd", "Auth.RoleGet", "Auth.RoleList",
                 "Auth.RoleDelete", "Auth.RoleGrantPermission", "Auth.RoleRevokePermission",
                 "Auth.UserGrantRole", "Auth.UserRevokeRole")
def test_users_and_roles(pair):
    pair.call("Auth.UserAdd", name="alice", password=ALICE_PW)
    pair.call("Auth.UserAdd", name="alice", password="x")                 # exists
    pair.call("Auth.UserAdd", name="", password="x")                      # empty name
    pair.call("Auth.UserAdd", name="nopw", options={"no_password": True})
    pair.call("Auth.UserGet", name="alice")
    pair.call("Auth.UserGet", name="nobody")
    pair.call("Auth.UserList")
    pair.call("Auth.RoleAdd", name="reader")
    pair.call("Auth.RoleAdd", name="reader")
    pair.call("Auth.RoleAdd", name="")
    pair.call("Auth.RoleGrantPermission", name="reader",
              perm={"permType": "READ", "key": "/r/", "range_end": prefix_end("/r/")})
    pair.call("Auth.RoleGrantPermission", name="reader",
              perm={"permType": "READWRITE", "key": "/single"})
    pair.call("Auth.RoleGrantPermission", name="ghost", perm={"permType": "READ", "key": "x"})
    pair.call("Auth.RoleGet", role="reader")
    pair.call("Auth.RoleGet", role="ghost")
    pair.call("Auth.RoleList")
    pair.call("Auth.UserGrantRole", user="alice", role="reader")
    pair.call("Auth.UserGrantRole", user="alice", role="ghost")
    pair.call("Auth.UserGrantRole", user="ghost", role="reader")
    pair.call("Auth.UserGet", name="alice")
    pair.call("Auth.RoleRevokePermission", role="reader", key="/single")
    pair.call("Auth.RoleRevokePermission", role="reader", key="/nothing")
    pair.call("Auth.UserRevokeRole", name="alice", role="reader")
    pair.call("Auth.UserRevokeRole", name="alice", role="reader")
    pair.call("Auth.UserChangePassword", name="alice", password="new")
    pair.call("Auth.UserChangePassword", name="ghost", password="new")
    pair.call("Auth.RoleDelete", role="reader")
    pair.call("Auth.RoleDelete", role="reader")
    pair.call("Auth.UserDelete", name="alice")
    pair.call("Auth.UserDelete", name="alice")
    pair.call("Auth.UserList")


@pytest.mark.fresh
@pytest.mark.rpc("Auth.AuthEnable", "Auth.Authenticate", "Auth.AuthDisable", "KV.Range",
                 "KV.Put")
def test_enable_authenticate_permissions(pair):
    pair.call("Auth.AuthEnable")                                          # no root user yet
    pair.call("Auth.UserAdd", name="root", password=ROOT_PW)
    pair.call("Auth.AuthEnable")                                          # root has no root role
    pair.call("Auth.UserGrantRole", user="root", role="root")
    pair.call("Auth.UserAdd", name="alice", password=ALICE_PW)
    pair.call("Auth.RoleAdd", name="reader")
    pair.call("Auth.RoleGrantPermission", name="reader",
              perm={"permType": "READ", "key": "/r/", "range_end": prefix_end("/r/")})
    pair.call("Auth.UserGrantRole", user="alice", role="reader")
    pair.call("KV.Put", key="/r/a", value="1")
    pair.call("Auth.AuthEnable")
    pair.call("KV.Range", key="/r/a")                                     # no token
    pair.call("Auth.Authenticate", name="alice", password="wrong")
    pair.call("Auth.Authenticate", name="ghost", password="x")
    alice = pair.call("Auth.Authenticate", name="alice", password=ALICE_PW)
    root = pair.call("Auth.Authenticate", name="root", password=ROOT_PW)
    pair.call("KV.Range", key="/r/a", metadata=token_md(alice))
    pair.call("KV.Range", key="/r/", range_end=prefix_end("/r/"), metadata=token_md(alice))
    pair.call("KV.Range", key="/r/", range_end=b"\0", metadata=token_md(alice))   # too wide
    pair.call("KV.Put", key="/r/a", value="2", metadata=token_md(alice))           # read only
    pair.call("KV.Range", key="/r/a", metadata=[("token", "bogus.1")])
    pair.call("Auth.UserList", metadata=token_md(alice))                          # admin only
    pair.call("Auth.UserList", metadata=token_md(root))
    pair.call("KV.Put", key="/r/a", value="3", metadata=token_md(root))
    pair.call("Auth.AuthEnable", metadata=token_md(root))
    pair.call("Auth.AuthDisable", metadata=token_md(alice))
    pair.call("Auth.AuthDisable", metadata=token_md(root))
    pair.call("KV.Range", key="/r/a")
    pair.call("Auth.AuthDisable")


@pytest.mark.fresh
@pytest.mark.rpc("Auth.UserChangePassword", "Auth.UserDelete", "Auth.Authenticate", "KV.Range")
def test_password_change_and_user_delete_invalidate_tokens(pair):
    """A changed password or a deleted user makes that user's tokens invalid (etcd's
    invalidateUser); other users' tokens keep working."""
    pair.call("Auth.UserAdd", name="root", password=ROOT_PW)
    pair.call("Auth.UserGrantRole", user="root", role="root")
    pair.call("Auth.UserAdd", name="alice", password=ALICE_PW)
    pair.call("Auth.RoleAdd", name="reader")
    pair.call("Auth.RoleGrantPermission", name="reader",
              perm={"permType": "READ", "key": "/r/", "range_end": prefix_end("/r/")})
    pair.call("Auth.UserGrantRole", user="alice", role="reader")
    pair.call("Auth.AuthEnable")
    root = pair.call("Auth.Authenticate", name="root", password=ROOT_PW)
    alice = pair.call("Auth.Authenticate", name="alice", password=ALICE_PW)
    assert "ok" in pair.call("KV.Range", key="/r/a", metadata=token_md(alice)).ref
    pair.call("Auth.UserChangePassword", name="alice", password="new", metadata=token_md(root))
    stale = pair.call("KV.Range", key="/r/a", metadata=token_md(alice))
    assert stale.ref.get("error", {}).get("details") == "etcdserver: invalid auth token", stale.ref
    pair.call("Auth.Authenticate", name="alice", password=ALICE_PW)                 # old password
    alice = pair.call("Auth.Authenticate", name="alice", password="new")
    pair.call("KV.Range", key="/r/a", metadata=token_md(alice))
    pair.call("Auth.UserDelete", name="alice", metadata=token_md(root))
    pair.call("KV.Range", key="/r/a", metadata=token_md(alice))
    pair.call("Auth.UserList", metadata=token_md(root))
    pair.call("Auth.AuthDisable", metadata=token_md(root))
