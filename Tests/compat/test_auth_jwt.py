"""JWT auth tokens (--auth-token jwt,...): etcd 3.4.23 and the candidate started with the same
key files (made here with openssl), compared answer by answer.

Checked: Authenticate returns a JWT whose header and claims decode alike on both (alg, typ,
username, revision, exp = now + ttl); each server accepts its own and the other's token (same
key, same auth revision); a token signed with another key, with altered claims, `alg: none`,
garbage, an expired token and a deleted user's token are refused with the same gRPC code and
message; etcdctl --user works; bad --auth-token specs make both refuse to start.
"""
from __future__ import annotations

import base64
import json
import os
import subprocess
import tempfile
import time

import grpc
import pytest

import servers
from kv_helpers import prefix_end

pytestmark = pytest.mark.engine_independent   # tokens lie above the engine: first target only

ROOT_PW, ALICE_PW = "rootpw", "alicepw"
KEY_DIR = tempfile.mkdtemp(prefix="compat-jwt-keys-")


def _openssl(*args: str, stdin: bytes | None = None) -> bytes:
    return subprocess.run(["openssl", *args], input=stdin, capture_output=True, check=True).stdout


def _key_pair(name: str, *genpkey: str) -> tuple[str, str]:
    priv, pub = os.path.join(KEY_DIR, f"{name}.pem"), os.path.join(KEY_DIR, f"{name}.pub.pem")
    _openssl("genpkey", *genpkey, "-out", priv)
    _openssl("pkey", "-in", priv, "-pubout", "-out", pub)
    return priv, pub


RSA = _key_pair("rsa", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048")
RSA_OTHER = _key_pair("rsa-other", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048")
EC256 = _key_pair("ec256", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")
EC256_OTHER = _key_pair("ec256-other", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")
EC384 = _key_pair("ec384", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384")
EC384_OTHER = _key_pair("ec384-other", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384")

# method -> (key pair the servers use, another key pair of the same kind, digest)
METHODS = {
    "RS256": (RSA, RSA_OTHER, "sha256"),
    "PS384": (RSA, RSA_OTHER, "sha384"),
    "ES256": (EC256, EC256_OTHER, "sha256"),
    "ES384": (EC384, EC384_OTHER, "sha384"),
}
TTL = 300


def spec(method: str, ttl: str = f"{TTL}s") -> str:
    (priv, pub), _, _ = METHODS[method]
    return f"jwt,pub-key={pub},priv-key={priv},sign-method={method},ttl={ttl}"


# -- JWTs by hand (an independent encoder/decoder and signer: openssl) -----------------------

def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def decode(token: str) -> tuple[dict, dict]:
    header, claims, _ = token.split(".")
    return json.loads(unb64url(header)), json.loads(unb64url(claims))


def _der_ecdsa_to_raw(der: bytes, size: int) -> bytes:
    """ECDSA-Sig-Value (SEQUENCE of two INTEGERs) -> r || s, as JWS wants it."""
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    out = b""
    for _ in range(2):
        assert der[i] == 0x02
        n = der[i + 1]
        out += der[i + 2:i + 2 + n].lstrip(b"\0").rjust(size, b"\0")
        i += 2 + n
    return out


def sign(method: str, key: str, header: dict, claims: dict) -> str:
    """A JWT signed by openssl with `key` (PEM private key)."""
    signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "."
                     + b64url(json.dumps(claims, separators=(",", ":")).encode()))
    digest = METHODS[method][2]
    args = ["dgst", f"-{digest}", "-sign", key]
    if method.startswith("PS"):
        args += ["-sigopt", "rsa_padding_mode:pss", "-sigopt", f"rsa_pss_saltlen:{int(digest[3:]) // 8}"]
    sig = _openssl(*args, stdin=signing_input.encode())
    if method.startswith("ES"):
        sig = _der_ecdsa_to_raw(sig, {"ES256": 32, "ES384": 48}[method])
    return signing_input + "." + b64url(sig)


# -- helpers ---------------------------------------------------------------------------------

def md(token: str):
    return [("token", token)]


def tokens_of(ans, pair) -> tuple[str, str]:
    return ans.raw(pair.ref).token, ans.raw(pair.cand).token


def setup_auth(pair) -> None:
    pair.call("Auth.UserAdd", name="root", password=ROOT_PW)
    pair.call("Auth.UserGrantRole", user="root", role="root")
    pair.call("Auth.UserAdd", name="alice", password=ALICE_PW)
    pair.call("Auth.RoleAdd", name="reader")
    pair.call("Auth.RoleGrantPermission", name="reader",
              perm={"permType": "READ", "key": "/r/", "range_end": prefix_end("/r/")})
    pair.call("Auth.UserGrantRole", user="alice", role="reader")
    pair.call("KV.Put", key="/r/a", value="1")
    pair.call("Auth.AuthEnable")


def assert_refused(pair, token_of, code: str, message: str) -> None:
    """Range with the token on both: the same error, and it is etcd's `code`/`message`."""
    ans = pair.call("KV.Range", key="/r/a", metadata=lambda ep: md(token_of(ep)))
    assert ans.ref.get("error", {}).get("code") == code, ans.ref
    assert ans.ref["error"].get("details") == message, ans.ref


INVALID = ("UNAUTHENTICATED", "etcdserver: invalid auth token")
OLD_REVISION = ("INVALID_ARGUMENT", "etcdserver: revision of auth store is old")


@pytest.mark.fresh
@pytest.mark.rpc("Auth.Authenticate", "KV.Range", "Auth.UserDelete")
@pytest.mark.parametrize("method", [pytest.param(m, marks=pytest.mark.server_args("--auth-token", spec(m)))
                                    for m in METHODS])
def test_jwt_tokens_like_etcd(pair, method):
    setup_auth(pair)
    pair.call("Auth.Authenticate", name="alice", password="wrong")
    before = time.time()
    alice = pair.call("Auth.Authenticate", name="alice", password=ALICE_PW)
    ref_token, cand_token = tokens_of(alice, pair)

    # The same header and claims on both (exp within the clock second of the call).
    (ref_h, ref_c), (cand_h, cand_c) = decode(ref_token), decode(cand_token)
    assert ref_h == {"alg": method, "typ": "JWT"}, ref_h
    assert cand_h == ref_h
    assert set(cand_c) == set(ref_c) == {"exp", "revision", "username"}, (ref_c, cand_c)
    assert cand_c["username"] == ref_c["username"] == "alice"
    assert cand_c["revision"] == ref_c["revision"] > 0
    for c in (ref_c, cand_c):
        assert int(before) + TTL - 1 <= c["exp"] <= int(time.time()) + TTL + 1, c

    # Accepted: each server's own token, and the other's (same key, same auth revision).
    pair.call("KV.Range", key="/r/a", metadata=lambda ep: md(ep.role == "ref" and ref_token or cand_token))
    pair.call("KV.Range", key="/r/a", metadata=lambda ep: md(ep.role == "ref" and cand_token or ref_token))
    pair.call("KV.Put", key="/r/a", value="2", metadata=md(ref_token))                 # read only
    pair.call("Auth.UserList", metadata=md(ref_token))                                 # not root
    hand_made = sign(method, METHODS[method][0][0], ref_h, ref_c)                      # openssl, our key
    pair.call("KV.Range", key="/r/a", metadata=md(hand_made))

    # Refused: another key, altered claims, alg none / another alg, garbage.
    other_key = METHODS[method][1][0]
    assert_refused(pair, lambda ep: sign(method, other_key, ref_h, ref_c), *INVALID)
    header, _, signature = ref_token.split(".")
    as_root = b64url(json.dumps({**ref_c, "username": "root"}).encode())
    assert_refused(pair, lambda ep: f"{header}.{as_root}.{signature}", *INVALID)
    none = b64url(b'{"alg":"none","typ":"JWT"}')
    assert_refused(pair, lambda ep: f"{none}.{ref_token.split('.')[1]}.", *INVALID)
    other_alg = next(m for m in METHODS if m != method and METHODS[m][0] != METHODS[method][0])
    assert_refused(pair, lambda ep: sign(other_alg, METHODS[other_alg][0][0],
                                         {"alg": other_alg, "typ": "JWT"}, ref_c), *INVALID)
    for garbage in ["garbage", "a.b.c", "..", ref_token + "x", ref_token.rsplit(".", 1)[0]]:
        assert_refused(pair, lambda ep: garbage, *INVALID)

    # An auth change retires every token issued before it (their revision claim is old):
    # alice's after she is deleted, and root's too; a new root token works.
    root = pair.call("Auth.Authenticate", name="root", password=ROOT_PW)
    root_token = lambda ep: root.raw(ep).token  # noqa: E731
    pair.call("Auth.UserDelete", name="alice", metadata=lambda ep: md(root_token(ep)))
    assert_refused(pair, lambda ep: alice.raw(ep).token, *OLD_REVISION)
    pair.call("Auth.UserList", metadata=lambda ep: md(alice.raw(ep).token))           # admin: user not found
    assert_refused(pair, root_token, *OLD_REVISION)
    root2 = pair.call("Auth.Authenticate", name="root", password=ROOT_PW)
    pair.call("KV.Range", key="/r/a", metadata=lambda ep: md(root2.raw(ep).token))
    pair.call("Auth.AuthDisable", metadata=lambda ep: md(root2.raw(ep).token))


@pytest.mark.fresh
@pytest.mark.rpc("Auth.Authenticate", "KV.Range")
@pytest.mark.server_args("--auth-token", spec("ES256", ttl="2s"))
def test_expired_jwt_is_refused(pair):
    setup_auth(pair)
    alice = pair.call("Auth.Authenticate", name="alice", password=ALICE_PW)
    for ep in pair.endpoints:
        _, claims = decode(alice.raw(ep).token)
        assert claims["exp"] - time.time() <= 2.5, claims
    pair.call("KV.Range", key="/r/a", metadata=lambda ep: md(alice.raw(ep).token))
    time.sleep(3.2)   # exp is whole seconds: valid through its second, refused after it
    assert_refused(pair, lambda ep: alice.raw(ep).token, *INVALID)


@pytest.mark.fresh
@pytest.mark.rpc("Auth.Authenticate", "KV.Put", "KV.Range")
@pytest.mark.server_args("--auth-token", spec("RS256"))
def test_etcdctl_with_jwt(pair):
    setup_auth(pair)
    outputs = []
    for ep in pair.endpoints:
        env = {**os.environ, "ETCDCTL_API": "3"}
        base = ["etcdctl", f"--endpoints={ep.server.endpoint}", "--command-timeout=10s"]
        put = subprocess.run(base + ["--user", f"root:{ROOT_PW}", "put", "/r/b", "v"],
                             capture_output=True, text=True, env=env, timeout=30)
        get = subprocess.run(base + ["--user", f"alice:{ALICE_PW}", "get", "/r/", "--prefix", "--print-value-only"],
                             capture_output=True, text=True, env=env, timeout=30)
        denied = subprocess.run(base + ["--user", f"alice:{ALICE_PW}", "put", "/r/c", "v"],
                                capture_output=True, text=True, env=env, timeout=30)
        outputs.append((put.returncode, put.stdout, get.returncode, get.stdout,
                        denied.returncode, denied.stderr.strip().splitlines()[-1:]))
    assert outputs[0][:4] == (0, "OK\n", 0, "1\nv\n"), outputs[0]
    assert outputs[1] == outputs[0]


BAD_SPECS = [
    ("jwt,pub-key=/nonexistent/pub.pem,priv-key=/nonexistent/priv.pem,sign-method=RS256", "auth: invalid auth options"),
    (f"jwt,pub-key={RSA[1]},priv-key={RSA[0]},sign-method=XX256", "auth: invalid auth options"),
    ("jwt,sign-method=RS256", "auth: missing key data"),
    ("jwt,sign-method", "auth: invalid auth options"),
    ("bogus", "auth: invalid auth options"),
]


@pytest.mark.parametrize("bad", [s for s, _ in BAD_SPECS])
def test_bad_auth_token_spec_refuses_to_start(target, bad):
    """Both etcd and the candidate exit non-zero and name etcd's error."""
    expected = dict(BAD_SPECS)[bad]
    for name in ("etcd", target):
        server = servers.Server(name, extra_args=["--auth-token", bad])
        with pytest.raises(servers.ServerStartError) as e:
            server.start(attempts=1)
        assert "exited with" in str(e.value), str(e.value)
        assert not str(e.value).startswith(f"{name} exited with 0:"), str(e.value)
        assert expected in str(e.value), f"{name}: {e.value}"
