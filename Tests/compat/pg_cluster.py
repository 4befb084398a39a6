"""A scratch PostgreSQL and rusd members sharing one log in it (rusd --shared-log, issue 19).

`PostgresServer` runs initdb in a temp dir and starts `postgres` on a free loopback port with
synchronous_commit=on (as the postgres user when we are root: PostgreSQL refuses to run as
root), creates a database, and is stopped by PID. `Cluster` starts rusd members (one per
engine) with `--shared-log` on it. `postgres_binaries()` is None when PostgreSQL is not
installed (scripts/install-deps.sh installs it; the tests skip with that reason otherwise).

`running_cluster()` is the one way cluster tests get a PostgreSQL and started members, skip
rules included; a test module's fixture is

    @pytest.fixture(scope="module")
    def cluster():
        with pg_cluster.running_cluster() as c:
            yield c

`running_cluster(standby=True)` adds a synchronous streaming standby (`start_standby`,
`make_synchronous`; `promote` and `stop_immediately` make the failover); `require_password`
makes a role that must log in with a password.
"""
from __future__ import annotations

import contextlib
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
ENGINES = ("lmdb", "leveldb", "lsm")


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
        self.name = ""                    # a standby's application_name
        self.bin = postgres_binaries()
        if self.bin is None:
            raise RuntimeError("PostgreSQL binaries (initdb, postgres) not found")
        self.database = database
        self.port = 0
        self.root = ""
        self.proc: subprocess.Popen | None = None
        self.options: list[str] = []      # more `-c name=value` for `postgres`

    @property
    def url(self) -> str:
        return f"postgres://{PG_USER}@127.0.0.1:{self.port}/{self.database}"

    def _make_root(self, prefix: str) -> None:
        self.root = tempfile.mkdtemp(prefix=prefix)
        os.chmod(self.root, 0o755)
        self.data = os.path.join(self.root, "data")
        self.sockets = os.path.join(self.root, "sock")
        os.mkdir(self.sockets)
        if os.geteuid() == 0:
            pw = pwd.getpwnam(PG_USER)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            os.chown(self.sockets, pw.pw_uid, pw.pw_gid)
        self.log_path = os.path.join(self.root, "postgres.log")

    def start(self) -> None:
        self._make_root("rusd-pg-")
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
                 "-c", "synchronous_commit=on", "-c", "fsync=on", "-c", "max_connections=100", *self.options],
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

    def stop_immediately(self) -> None:
        """Immediate shutdown (SIGQUIT: no checkpoint, as a crash), keeping the data dir."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGQUIT)
            self.proc.wait(timeout=30)
        self.proc = None

    def start_standby(self, name: str = "rusd_standby") -> "PostgresServer":
        """A streaming standby of this server (pg_basebackup -R as the postgres user, its own
        temp dir and loopback port, `cluster_name` = its application_name on the primary),
        started and answering read-only queries. `make_synchronous` makes it synchronous."""
        standby = PostgresServer(self.database)
        standby._make_root("rusd-pg-standby-")
        subprocess.run(_as_postgres([os.path.join(self.bin, "pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.port),
                                     "-U", PG_USER, "-D", standby.data, "-R", "-X", "stream", "-c", "fast"]),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)
        standby.options = ["-c", f"cluster_name={name}"]
        standby.name = name
        standby.port = servers.free_port()
        standby.launch()
        return standby

    def make_synchronous(self, standby: "PostgresServer", timeout: float = 30) -> None:
        """synchronous_standby_names = the standby (a commit waits for its flush), and waits until
        pg_stat_replication says it is the synchronous one."""
        self.psql(f"ALTER SYSTEM SET synchronous_standby_names = '{standby.name}'")
        self.psql("SELECT pg_reload_conf()")
        deadline = time.monotonic() + timeout
        while self.psql(f"SELECT sync_state FROM pg_stat_replication WHERE application_name = '{standby.name}'") != "sync":
            if time.monotonic() > deadline:
                raise RuntimeError(f"standby {standby.name} not synchronous after {timeout} s:\n{self.psql('TABLE pg_stat_replication')}")
            time.sleep(0.1)

    def promote(self) -> None:
        """pg_ctl promote (waits until the server takes writes)."""
        subprocess.run(_as_postgres([os.path.join(self.bin, "pg_ctl"), "promote", "-D", self.data, "-w", "-t", "30"]),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)

    def require_password(self, user: str, password: str, database: str) -> None:
        """A login role `user` that must give `password` over TCP (scram-sha-256 in pg_hba.conf,
        before initdb's trust lines), owning a new database `database`."""
        quoted = password.replace("'", "''")
        self.psql(f"CREATE ROLE {user} LOGIN PASSWORD '{quoted}'", database="postgres")
        self.psql(f"CREATE DATABASE {database} OWNER {user}", database="postgres")
        hba = os.path.join(self.data, "pg_hba.conf")
        with open(hba) as f:
            rules = f.read()
        with open(hba, "w") as f:
            f.write(f"host all {user} 127.0.0.1/32 scram-sha-256\n" + rules)
        self.psql("SELECT pg_reload_conf()")

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

    def __init__(self, pg: PostgresServer, engines: list[str], shared_logs: list[str] | None = None,
                 standby: PostgresServer | None = None):
        self.pg = pg
        self.standby = standby
        urls = shared_logs or [pg.url] * len(engines)
        self.members = [servers.Server(f"rusd-{e}", name=f"m{i + 1}", extra_args=["--shared-log", urls[i]])
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


def skip_unless_available() -> None:
    """Skips the calling test (pytest.skip, with the reason) when rusd or PostgreSQL is missing;
    CI installs both, so there a cluster test never skips."""
    import pytest

    if servers.rusd_bin() is None:
        pytest.skip("RUSD_BIN is not an executable: cluster mode needs rusd")
    if postgres_binaries() is None:
        pytest.skip("PostgreSQL (initdb, postgres) is not installed: scripts/install-deps.sh installs postgresql-15")


def failover_urls(primary: PostgresServer, standby: PostgresServer) -> tuple[str, str]:
    """--shared-log naming both servers, primary first: libpq's multi-host URI, and etcd's
    comma-separated list of URLs."""
    libpq = f"postgres://{PG_USER}@127.0.0.1:{primary.port},127.0.0.1:{standby.port}/{primary.database}"
    return libpq, f"{primary.url},{standby.url}"


@contextlib.contextmanager
def running_cluster(engines=ENGINES, extra_args: list[str] | tuple[str, ...] = (), standby: bool = False):
    """A scratch PostgreSQL and one started member per engine (m1, m2, …, each given
    `--shared-log` and `extra_args`), stopped (members first) and deleted on exit, even when
    starting fails half-way. Skips when rusd or PostgreSQL is missing.

    `standby=True`: PostgreSQL also gets a synchronous streaming standby (`cluster.standby`) and
    the members are given both servers, in both spellings by turns (`failover_urls`)."""
    skip_unless_available()
    pg = PostgresServer()
    replica: PostgresServer | None = None
    c = None
    try:
        pg.start()
        urls = None
        if standby:
            replica = pg.start_standby()
            pg.make_synchronous(replica)
            both = failover_urls(pg, replica)
            urls = [both[i % 2] for i in range(len(engines))]
        c = Cluster(pg, list(engines), shared_logs=urls, standby=replica)
        for m in c.members:
            m.extra_args += list(extra_args)
        c.start()
        yield c
    finally:
        if c is not None:
            c.stop()
        if replica is not None:
            replica.stop()
        pg.stop()


def wait_converged(revisions, deadline_s: float) -> int:
    """Calls `revisions()` (the revision each member serves) until every member serves the
    same one, and returns it; fails the test after `deadline_s` seconds."""
    deadline = time.monotonic() + deadline_s
    while True:
        revs = revisions()
        if len(set(revs)) == 1:
            return revs[0]
        assert time.monotonic() < deadline, f"members did not converge: revisions {revs}"
        time.sleep(0.05)
