"""TLS on the client port: rusd against a real etcd started with the same certificates.

A throwaway PKI is made with the `openssl` command in a temp dir: a CA, a server certificate
(SAN IP:127.0.0.1, DNS:localhost), a client certificate (CN=alice) signed by the CA, and a
client certificate signed by a different CA (must be refused under --client-cert-auth).

Clients: etcdctl (Go's TLS stack) and Python grpcio with ssl_channel_credentials (BoringSSL via
gRPC core), plus curl for HTTP/1.1 over TLS. Every expectation is checked on etcd first, so
the test states etcd's behaviour and rusd must match it.

Needs RUSD_BIN (skipped otherwise), `etcd`, `etcdctl`, `openssl`, `curl` on PATH.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import grpc
import pytest

from servers import free_port, rusd_bin, temp_root

pytestmark = pytest.mark.skipif(
    rusd_bin() is None or not all(shutil.which(t) for t in ("etcd", "etcdctl", "openssl", "curl")),
    reason="needs RUSD_BIN, etcd, etcdctl, openssl and curl")

READY_TIMEOUT = 20.0


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _make_ca(d: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
             "-keyout", f"{name}.key", "-out", f"{name}.crt", cwd=d)


def _make_leaf(d: Path, name: str, ca: str, cn: str, ext: str) -> None:
    (d / f"{name}.ext").write_text(ext)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={cn}",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=d)


@pytest.fixture(scope="module")
def pki():
    d = Path(tempfile.mkdtemp(prefix="tls-pki-", dir=temp_root()))
    try:
        _make_ca(d, "ca")
        _make_ca(d, "otherca")
        _make_leaf(d, "server", "ca", "rusd-test-server",
                   "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n")
        _make_leaf(d, "client", "ca", "alice", "extendedKeyUsage=clientAuth\n")
        _make_leaf(d, "stranger", "otherca", "mallory", "extendedKeyUsage=clientAuth\n")
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


class Proc:
    """etcd or rusd on fresh ports with a list of client URL schemes; killed by PID at exit."""

    def __init__(self, kind: str, schemes: list[str], args: list[str]):
        self.kind = kind
        self.root = tempfile.mkdtemp(prefix=f"tls-{kind}-", dir=temp_root())
        self.data_dir = os.path.join(self.root, "data")
        self.log_path = os.path.join(self.root, "server.log")
        self.ports = [free_port() for _ in schemes]
        self.urls = [f"{s}://127.0.0.1:{p}" for s, p in zip(schemes, self.ports)]
        urls = ",".join(self.urls)
        common = ["--name", "tls", "--data-dir", self.data_dir,
                  "--listen-client-urls", urls, "--advertise-client-urls", urls]
        if kind == "etcd":
            peer = f"http://127.0.0.1:{free_port()}"
            self.cmd = ["etcd", *common, "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                        "--initial-cluster", f"tls={peer}", *args]
        else:
            self.cmd = [rusd_bin(), *common, *args]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)

    def log(self) -> str:
        return Path(self.log_path).read_text(errors="replace")

    def wait_exit(self, timeout: float = 20) -> int:
        return self.proc.wait(timeout=timeout)

    def wait_ready(self, client_cert: tuple[str, str] | None = None) -> None:
        """Ready when every listener answers: a TLS handshake on https (needs no CA: the
        certificate is not verified here), a TCP connect on http. etcd accepts TCP before it
        serves, so the handshake is what tells."""
        deadline = time.monotonic() + READY_TIMEOUT
        for url, port in zip(self.urls, self.ports):
            while True:
                assert self.proc.poll() is None, f"{self.kind} exited: {' '.join(self.cmd)}\n{self.log()[-3000:]}"
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                        if url.startswith("https"):
                            ctx = ssl.create_default_context()
                            ctx.check_hostname = False
                            ctx.verify_mode = ssl.CERT_NONE
                            if client_cert:
                                ctx.load_cert_chain(*client_cert)
                            with ctx.wrap_socket(sock) as tls:
                                tls.do_handshake()
                    break
                except OSError:
                    assert time.monotonic() < deadline, f"{self.kind} not ready: {self.log()[-3000:]}"
                    time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def launch():
    started: list[Proc] = []

    def start(kind: str, schemes: list[str], args: list[str], ready: bool = True,
              client_cert: tuple[str, str] | None = None) -> Proc:
        p = Proc(kind, schemes, args)
        started.append(p)
        if ready:
            p.wait_ready(client_cert)
        return p

    yield start
    for p in started:
        p.stop()


def etcdctl(url: str, *args: str, tls: list[str] = (), timeout: str = "5s") -> subprocess.CompletedProcess:
    """etcdctl against one endpoint; calls expected to be refused pass a short `timeout`."""
    env = {**os.environ, "ETCDCTL_API": "3"}
    return subprocess.run(["etcdctl", f"--endpoints={url}", f"--command-timeout={timeout}",
                           "--dial-timeout=3s", *tls, *args],
                          capture_output=True, text=True, env=env, timeout=30)


def kv_session(url: str, tls: list[str]) -> list[tuple[int, str]]:
    """put / get / get -w json (revision numbers kept; header ids differ) / del, as etcdctl prints them."""
    out = []
    for args in (["put", "/tls/a", "1"], ["put", "/tls/b", "2"], ["get", "/tls/", "--prefix"],
                 ["get", "/tls/a", "-w", "json"], ["del", "/tls/a"], ["get", "/tls/", "--prefix", "--keys-only"]):
        r = etcdctl(url, *args, tls=tls)
        text = r.stdout
        if "-w" in args and r.returncode == 0:
            doc = json.loads(text)
            text = json.dumps({"kvs": doc.get("kvs"), "count": doc.get("count"),
                               "revision": doc["header"]["revision"]}, sort_keys=True)
        out.append((r.returncode, text))
    return out


def grpc_put_get(api, target: str, credentials: grpc.ChannelCredentials) -> bytes:
    """Put then Range over a TLS channel from Python grpcio; returns the value read back."""
    options = [("grpc.ssl_target_name_override", "localhost")]
    with grpc.secure_channel(target, credentials, options=options) as channel:
        api.callable(channel, "KV.Put")(api.request("KV.Put", key=b"/py", value=b"from-python"), timeout=5)
        resp = api.callable(channel, "KV.Range")(api.request("KV.Range", key=b"/py"), timeout=5)
        return resp.kvs[0].value


def _hostport(url: str) -> str:
    return url.split("://", 1)[1]


# 1. https with --cert-file/--key-file; etcdctl --cacert and grpcio agree with etcd.
def test_server_tls_etcdctl_and_grpcio_match_etcd(pki, launch, api):
    tls_args = ["--cert-file", str(pki / "server.crt"), "--key-file", str(pki / "server.key")]
    ca = ["--cacert", str(pki / "ca.crt")]
    results = {}
    for kind in ("etcd", "rusd"):
        p = launch(kind, ["https"], tls_args)
        url = p.urls[0]
        session = kv_session(url, ca)
        assert all(rc == 0 for rc, _ in session), (kind, session)
        no_ca = etcdctl(url, "get", "x", tls=["--insecure-transport=false"], timeout="1s")  # CA not trusted
        creds = grpc.ssl_channel_credentials(root_certificates=(pki / "ca.crt").read_bytes())
        value = grpc_put_get(api, _hostport(url), creds)
        wrong = grpc.ssl_channel_credentials(root_certificates=(pki / "otherca.crt").read_bytes())
        with pytest.raises(grpc.RpcError) as refused:
            grpc_put_get(api, _hostport(url), wrong)
        results[kind] = (session, no_ca.returncode != 0, value, refused.value.code())
    assert results["rusd"] == results["etcd"]
    assert results["etcd"][1] is True and results["etcd"][2] == b"from-python"
    assert results["etcd"][3] == grpc.StatusCode.UNAVAILABLE


# 2. --client-cert-auth + --trusted-ca-file: no or foreign client certificate refused.
def test_client_cert_auth_matches_etcd(pki, launch, api):
    tls_args = ["--cert-file", str(pki / "server.crt"), "--key-file", str(pki / "server.key"),
                "--trusted-ca-file", str(pki / "ca.crt"), "--client-cert-auth"]
    ca = ["--cacert", str(pki / "ca.crt")]
    good = (str(pki / "client.crt"), str(pki / "client.key"))
    results = {}
    for kind in ("etcd", "rusd"):
        p = launch(kind, ["https"], tls_args, client_cert=good)
        url = p.urls[0]
        with_cert = kv_session(url, [*ca, "--cert", good[0], "--key", good[1]])
        without = etcdctl(url, "get", "x", tls=ca, timeout="1s")
        foreign = etcdctl(url, "get", "x", tls=[*ca, "--cert", str(pki / "stranger.crt"),
                                                 "--key", str(pki / "stranger.key")], timeout="1s")
        root = (pki / "ca.crt").read_bytes()
        value = grpc_put_get(api, _hostport(url), grpc.ssl_channel_credentials(
            root_certificates=root, private_key=Path(good[1]).read_bytes(),
            certificate_chain=Path(good[0]).read_bytes()))
        codes = []
        for creds in (grpc.ssl_channel_credentials(root_certificates=root),
                      grpc.ssl_channel_credentials(root_certificates=root,
                                                   private_key=(pki / "stranger.key").read_bytes(),
                                                   certificate_chain=(pki / "stranger.crt").read_bytes())):
            with pytest.raises(grpc.RpcError) as refused:
                grpc_put_get(api, _hostport(url), creds)
            codes.append(refused.value.code())
        results[kind] = (with_cert, without.returncode, foreign.returncode, value, codes)
    assert results["rusd"] == results["etcd"]
    etcd = results["etcd"]
    assert all(rc == 0 for rc, _ in etcd[0]) and etcd[1] != 0 and etcd[2] != 0
    assert etcd[3] == b"from-python" and etcd[4] == [grpc.StatusCode.UNAVAILABLE] * 2


# 3. plain and TLS listeners side by side, one store behind both.
def test_plain_and_tls_listeners_side_by_side(pki, launch):
    tls_args = ["--cert-file", str(pki / "server.crt"), "--key-file", str(pki / "server.key")]
    ca = ["--cacert", str(pki / "ca.crt")]
    results = {}
    for kind in ("etcd", "rusd"):
        p = launch(kind, ["http", "https"], tls_args)
        plain, secure = p.urls
        put = etcdctl(plain, "put", "/side", "by-plain")
        got = etcdctl(secure, "get", "/side", tls=ca)
        put2 = etcdctl(secure, "put", "/side", "by-tls", tls=ca)
        got2 = etcdctl(plain, "get", "/side")
        results[kind] = [(r.returncode, r.stdout) for r in (put, got, put2, got2)]
    assert results["rusd"] == results["etcd"]
    assert results["etcd"][1] == (0, "/side\nby-plain\n") and results["etcd"][3] == (0, "/side\nby-tls\n")


# 4. --auto-tls: a self-signed certificate made at start; reused after a restart.
def test_auto_tls(launch):
    fingerprints = []
    for kind in ("etcd", "rusd"):
        p = launch(kind, ["https"], ["--auto-tls"])
        url = p.urls[0]
        # etcdctl 3.4 dials in plain text unless a TLS file is given or --insecure-transport=false.
        insecure = ["--insecure-transport=false", "--insecure-skip-tls-verify"]
        put = etcdctl(url, "put", "/auto", "yes", tls=insecure)
        got = etcdctl(url, "get", "/auto", tls=insecure)
        verified = etcdctl(url, "get", "/auto", tls=["--insecure-transport=false"], timeout="1s")  # self-signed
        assert (put.returncode, got.stdout, verified.returncode != 0) == (0, "/auto\nyes\n", True), (kind, p.log()[-2000:])
        cert = Path(p.data_dir, "fixtures", "client", "cert.pem")
        key = Path(p.data_dir, "fixtures", "client", "key.pem")
        assert cert.is_file() and key.is_file(), kind
        assert oct(key.stat().st_mode & 0o777) == "0o600", kind
        text = subprocess.run(["openssl", "x509", "-noout", "-text", "-in", str(cert)],
                              capture_output=True, text=True, check=True).stdout
        assert "O = etcd" in text and "IP Address:127.0.0.1" in text and "TLS Web Server Authentication" in text, (kind, text)
        if kind == "rusd":
            before = cert.read_bytes()
            os.kill(p.proc.pid, signal.SIGTERM)
            p.wait_exit()
            with open(p.log_path, "ab") as log:
                p.proc = subprocess.Popen(p.cmd, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True)
            p.wait_ready()
            assert etcdctl(url, "get", "/auto", tls=insecure).stdout == "/auto\nyes\n"
            fingerprints.append(before == cert.read_bytes())
    assert fingerprints == [True]


# 5. HTTP/1.1 /health over https.
def test_health_over_https(pki, launch):
    tls_args = ["--cert-file", str(pki / "server.crt"), "--key-file", str(pki / "server.key")]
    results = {}
    for kind in ("etcd", "rusd"):
        p = launch(kind, ["https"], tls_args)
        out = []
        for extra in (["-k"], ["--cacert", str(pki / "ca.crt")]):
            r = subprocess.run(["curl", "-sS", "--http1.1", *extra, "-w", " %{http_code} %{http_version}",
                                f"{p.urls[0]}/health"], capture_output=True, text=True, timeout=20)
            body, code, version = r.stdout.rsplit(" ", 2)
            out.append((r.returncode, json.loads(body).get("health"), code, version))
        results[kind] = out
    assert results["rusd"] == results["etcd"]
    assert results["etcd"][0] == (0, "true", "200", "1.1")


# 6. start-up errors, as etcd words them.
@pytest.mark.parametrize("case", ["https-without-cert", "missing-cert-file", "missing-key-file", "unreadable-ca",
                                  "garbage-cert"])
def test_startup_errors(pki, launch, tmp_path, case):
    missing = str(tmp_path / "nope.crt")
    garbage = tmp_path / "garbage.crt"
    garbage.write_text("not a certificate\n")
    args = {
        "https-without-cert": [],
        "missing-cert-file": ["--cert-file", missing, "--key-file", str(pki / "server.key")],
        "missing-key-file": ["--cert-file", str(pki / "server.crt"), "--key-file", str(tmp_path / "nope.key")],
        "unreadable-ca": ["--cert-file", str(pki / "server.crt"), "--key-file", str(pki / "server.key"),
                          "--trusted-ca-file", missing, "--client-cert-auth"],
        "garbage-cert": ["--cert-file", str(garbage), "--key-file", str(pki / "server.key")],
    }[case]
    for kind in ("etcd", "rusd"):
        p = launch(kind, ["https"], args, ready=False)
        rc = p.wait_exit()
        log = p.log()
        assert rc != 0, (kind, log[-2000:])
        if case == "garbage-cert":
            expected = "tls: failed to find any PEM data in certificate input"
        elif case == "https-without-cert":
            expected = f"TLS key/cert (--cert-file, --key-file) must be provided for client url {p.urls[0]} with HTTPS scheme"
        else:
            name = {"missing-cert-file": missing, "missing-key-file": str(tmp_path / "nope.key"),
                    "unreadable-ca": missing}[case]
            expected = f"open {name}: no such file or directory"
        assert expected in log, (kind, log[-2000:])
