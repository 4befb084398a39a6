"""A scratch PostgreSQL and rusd members sharing one log in it (rusd --shared-log, issue 19).

`PostgresServer` runs initdb in a temp dir and starts `postgres` on a free loopback port with
synchronous_commit=on (as the postgres user when we are root: PostgreSQL refuses to run as
root), creates a database, and is stopped by PID. `Cluster` starts rusd members (one per
engine) with `--shared-log` on it. `postgres_binaries()` is None when PostgreSQL is not
installed (scripts/install-deps.sh installs it; the tests skip with that reason otherwise).
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time

import servers

PG_USER = "postgres"


def postgres_binaries() -> str | None:
    """The directory holding initdb and postgres (Debian: /usr/lib/postgresql/<v>/bin)."""
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(os.path.join(d, "initdb"), os.X_OK) and os.access(os.path.join(d, "postgres"), os.X_OK):
            return d
    initdb = shutil.which("initdb")
    return os.path.dirname(os.path.realpath(initdb)) if initdb else None


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the postgres user then."""
    if os.geteuid() == 0:
        return ["runuser", "-u", PG_USER, "--", *cmd]
    return cmd


class PostgresServer:
    def __init__(self, database: str = "rusd"):
        self.bin = postgres_binaries()
        if self.bin is None:
            raise RuntimeError("PostgreSQL binaries (initdb, postgres) not found")
        self.database = database
        self.port = 0
        self.root = ""
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"postgres://{PG_USER}@127.0.0.1:{self.port}/{self.database}"

    def start(self) -> None:
        self.root = tempfile.mkdtemp(prefix="rusd-pg-")
        os.chmod(self.root, 0o755)
        self.data = os.path.join(self.root, "data")
        self.sockets = os.path.join(self.root, "sock")
        os.mkdir(self.sockets)
        if os.geteuid() == 0:
            pw = pwd.getpwnam(PG_USER)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            os.chown(self.sockets, pw.pw_uid, pw.pw_gid)
        self.log_path = os.path.join(self.root, "postgres.log")
        subprocess.run(_as_postgres([os.path.join(self.bin, "initdb"), "-D", self.data, "-U", PG_USER,
                                     "--auth=trust", "-E", "UTF8", "--no-locale"]),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)
        self.port = servers.free_port()
        self.launch()
        self.psql(f"CREATE DATABASE {self.database}", database="postgres")

    def launch(self) -> None:
        # As root, the server process itself switches to the postgres user (no runuser in
        # between), so that signals reach the postmaster directly.
        ids = {}
        if os.geteuid() == 0:
            pw = pwd.getpwnam(PG_USER)
            ids = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [os.path.join(self.bin, "postgres"), "-D", self.data, "-p", str(self.port),
                 "-k", self.sockets, "-c", "listen_addresses=127.0.0.1",
                 "-c", "synchronous_commit=on", "-c", "fsync=on", "-c", "max_connections=100"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                cwd=self.root, **ids)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.proc.returncode}:\n{self.log_tail()}")
            r = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", PG_USER, "-d", "postgres",
                                "-Atc", "SELECT 1"], capture_output=True, text=True)
            if r.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres not ready after 30 s:\n{self.log_tail()}")
            time.sleep(0.1)

    def psql(self, sql: str, database: str | None = None) -> str:
        r = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", PG_USER,
                            "-d", database or self.database, "-v", "ON_ERROR_STOP=1", "-Atc", sql],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError(f"psql {sql!r}: {r.stderr}")
        return r.stdout.strip()

    def log_tail(self, lines: int = 30) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop_keeping_data(self) -> None:
        """Fast shutdown; `launch` starts it again on the same data dir and port."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGINT)
            self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # SIGINT is PostgreSQL's fast shutdown.
            os.kill(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None
        if self.root:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = ""


class Cluster:
    """rusd members named m1, m2, … (one per engine) sharing the log in `pg`."""

    def __init__(self, pg: PostgresServer, engines: list[str]):
        self.pg = pg
        self.members = [servers.Server(f"rusd-{e}", name=f"m{i + 1}", extra_args=["--shared-log", pg.url])
                        for i, e in enumerate(engines)]

    def start(self) -> None:
        for m in self.members:      # one after the other: the first creates the schema
            m.start()

    def kill9(self, member: servers.Server) -> None:
        """SIGKILL, keeping the data dir and ports for `restart_killed`."""
        if member.proc is not None and member.proc.poll() is None:
            os.kill(member.proc.pid, signal.SIGKILL)
            member.proc.wait(timeout=10)

    def restart_killed(self, member: servers.Server) -> None:
        member._launch()            # same command, data dir and ports

    def stop(self) -> None:
        for m in self.members:
            m.stop()
