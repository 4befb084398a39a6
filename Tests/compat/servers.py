"""Child server processes for the differential suite: a real etcd, or rusd on one engine.

Each server gets free loopback ports, a fresh data dir (under /dev/shm when available: the
suite compares answers, not durability, so fsync cost is not what it measures), and is
killed by PID at teardown. Targets are named "etcd" or "rusd-<engine>".
"""
from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

READY_TIMEOUT = float(os.environ.get("COMPAT_READY_TIMEOUT", "15"))
CALL_TIMEOUT = float(os.environ.get("COMPAT_CALL_TIMEOUT", "10"))
MAX_MESSAGE = 64 * 1024 * 1024


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def temp_root() -> str | None:
    override = os.environ.get("COMPAT_TMPDIR")
    if override:
        return override
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


def rusd_bin() -> str | None:
    path = os.environ.get("RUSD_BIN")
    return path if path and os.path.isfile(path) and os.access(path, os.X_OK) else None


def rusd_engines() -> list[str]:
    return os.environ.get("RUSD_ENGINES", "lmdb leveldb").split()


def selected_targets() -> list[str]:
    """Candidate targets compared against a reference etcd.

    COMPAT_TARGETS (space separated: "etcd", "rusd-lmdb", or a bare engine name "lmdb") wins;
    otherwise rusd on every engine in RUSD_ENGINES when RUSD_BIN is an executable, else "etcd"
    (etcd vs etcd: the suite's self-check, which must report no difference).
    """
    explicit = os.environ.get("COMPAT_TARGETS", "").split()
    if explicit:
        return [t if t == "etcd" or t.startswith("rusd-") else f"rusd-{t}" for t in explicit]
    if rusd_bin():
        return [f"rusd-{e}" for e in rusd_engines()]
    return ["etcd"]


class ServerStartError(RuntimeError):
    pass


_RUNNING: set["Server"] = set()   # killed at interpreter exit if a teardown was skipped


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_RUNNING):
        server.stop()


@dataclass(eq=False)
class Server:
    """A running etcd-compatible server process."""

    target: str
    name: str = "compat"
    client_port: int = 0
    peer_port: int = 0
    data_dir: str = ""
    proc: subprocess.Popen | None = None
    log_path: str = ""
    extra_args: list[str] = field(default_factory=list)
    _root: str = ""

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    def command(self) -> list[str]:
        client = f"http://127.0.0.1:{self.client_port}"
        peer = f"http://127.0.0.1:{self.peer_port}"
        common = ["--name", self.name, "--data-dir", self.data_dir,
                  "--listen-client-urls", client, "--advertise-client-urls", client]
        if self.target == "etcd":
            return ["etcd", *common, "--listen-peer-urls", peer,
                    "--initial-advertise-peer-urls", peer,
                    "--initial-cluster", f"{self.name}={peer}", *self.extra_args]
        binary = rusd_bin()
        if binary is None:
            raise ServerStartError(f"{self.target}: RUSD_BIN is not an executable file")
        engine = self.target.removeprefix("rusd-")
        return [binary, "--engine", engine, *common, *self.extra_args]

    def start(self, attempts: int = 3) -> None:
        """Starts on fresh ports and a fresh data dir; retried when a port picked as free was
        taken by someone else before the server bound it."""
        for attempt in range(attempts):
            self._root = tempfile.mkdtemp(prefix=f"compat-{self.target}-", dir=temp_root())
            self.data_dir = os.path.join(self._root, "data")
            self.log_path = os.path.join(self._root, "server.log")
            self.client_port, self.peer_port = free_port(), free_port()
            try:
                self._launch()
                return
            except ServerStartError as e:
                if attempt + 1 == attempts or "address already in use" not in str(e).lower():
                    raise

    def restart(self, timeout: float = 20) -> None:
        """Graceful stop (SIGTERM, SIGKILL after `timeout`), then the same command again on
        the same data dir and ports."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
                raise ServerStartError(f"{self.target} ignored SIGTERM for {timeout}s")
        self._launch()

    def _launch(self) -> None:
        cmd = self.command()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        _RUNNING.add(self)
        try:
            self._wait_ready(cmd)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, cmd: list[str]) -> None:
        """Ready when a Range gets any answer other than UNAVAILABLE (a server that is up but
        has no KV yet answers UNIMPLEMENTED, which is a test failure, not a start failure)."""
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise ServerStartError(f"{self.target} exited with {self.proc.returncode}: "
                                       f"{' '.join(cmd)}\n{self.log_tail()}")
            if self._probe():
                return
            if time.monotonic() > deadline:
                raise ServerStartError(f"{self.target} not serving after {READY_TIMEOUT}s: "
                                       f"{' '.join(cmd)}\n{self.log_tail()}")
            time.sleep(0.05)

    def _probe(self) -> bool:
        # A new channel per attempt: a channel created before the server listens can stay in
        # reconnect backoff long after the port opens.
        channel = grpc.insecure_channel(self.endpoint)
        # RangeRequest{key: "a"} (field 1, bytes), serialised by hand: no stubs needed yet.
        probe = channel.unary_unary("/etcdserverpb.KV/Range",
                                    request_serializer=lambda _: b"\n\x01a",
                                    response_deserializer=lambda b: b)
        try:
            probe(None, timeout=1)
            return True
        except grpc.RpcError as e:
            return e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
        finally:
            channel.close()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(Path(self.log_path).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
        self.proc = None
        _RUNNING.discard(self)
        if self._root:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = ""


def start_servers(targets: list[str], extra_args: list[str] | None = None) -> list[Server]:
    """Starts one server per target concurrently (their start-up times overlap)."""
    import concurrent.futures as cf

    servers = [Server(t, extra_args=list(extra_args or [])) for t in targets]
    with cf.ThreadPoolExecutor(len(servers)) as pool:
        futures = [pool.submit(s.start) for s in servers]
        errors = [f.exception() for f in futures]
    if any(errors):
        for s in servers:
            s.stop()
        raise next(e for e in errors if e)
    return servers
