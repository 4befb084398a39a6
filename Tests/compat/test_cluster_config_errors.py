"""rusd cluster mode (issue 19.6): bad --shared-log configuration exits non-zero with a clear
message, in bounded time. One scratch PostgreSQL, no members; each case runs the rusd binary
and reads what it prints.

Covered elsewhere: no such database, a newer schema version, a data dir ahead of the log
(test_cluster_basic.py), a name held by a live member (test_cluster_members.py), a standby
alone (test_cluster_failover.py).

Skips only when PostgreSQL or rusd is not installed (CI installs both).
"""
from __future__ import annotations

import os
import subprocess
import tempfile
import time

import pytest

import pg_cluster
import servers

PASSWORD = "p@ss,w0rd"          # percent-encoded in the URL: p%40ss%2Cw0rd


@pytest.fixture(scope="module")
def pg():
    pg_cluster.skip_unless_available()
    server = pg_cluster.PostgresServer()
    try:
        server.start()
        server.require_password("rusd_pw", PASSWORD, "pwdb")
        yield server
    finally:
        server.stop()


def start(shared_log: str, wait_s: float = 30) -> tuple[int | None, str, float]:
    """Runs a member on `shared_log`: (exit code, or None if it was still serving after
    `wait_s` and was stopped; its output; seconds it ran)."""
    with tempfile.TemporaryDirectory(prefix="rusd-config-") as tmp:
        port = servers.free_port()
        log = os.path.join(tmp, "out.log")
        started = time.monotonic()
        with open(log, "wb") as out:
            p = subprocess.Popen([servers.rusd_bin(), "--engine", "lmdb", "--name", "c1", "--data-dir", os.path.join(tmp, "d"),
                                  "--listen-client-urls", f"http://127.0.0.1:{port}", "--shared-log", shared_log],
                                 stdout=out, stderr=subprocess.STDOUT)
            code: int | None
            try:
                code = p.wait(timeout=wait_s)
            except subprocess.TimeoutExpired:
                code = None
                p.terminate()
                p.wait(timeout=15)
        took = time.monotonic() - started
        with open(log, errors="replace") as f:
            return code, f.read(), took


def serves(shared_log: str) -> str:
    """Starts a member on `shared_log`, waits until it answers, stops it; returns its output.
    The control case: the same server and database do work with the right settings."""
    with tempfile.TemporaryDirectory(prefix="rusd-config-ok-") as tmp:
        port = servers.free_port()
        log = os.path.join(tmp, "out.log")
        with open(log, "wb") as out:
            p = subprocess.Popen([servers.rusd_bin(), "--engine", "lmdb", "--name", "ok1", "--data-dir", os.path.join(tmp, "d"),
                                  "--listen-client-urls", f"http://127.0.0.1:{port}", "--shared-log", shared_log],
                                 stdout=out, stderr=subprocess.STDOUT)
            try:
                deadline = time.monotonic() + 20
                while True:
                    r = subprocess.run(["etcdctl", f"--endpoints=127.0.0.1:{port}", "--command-timeout=2s", "put", "k", "v"],
                                       capture_output=True, text=True, env={**os.environ, "ETCDCTL_API": "3"})
                    if r.returncode == 0:
                        break
                    assert p.poll() is None and time.monotonic() < deadline, open(log, errors="replace").read()
                    time.sleep(0.2)
            finally:
                p.terminate()
                p.wait(timeout=15)
        with open(log, errors="replace") as f:
            return f.read()


def test_unreachable_servers_are_named_after_a_bounded_wait():
    pg_cluster.skip_unless_available()
    a, b = servers.free_port(), servers.free_port()        # nothing listens there
    url = f"postgres://postgres@127.0.0.1:{a},127.0.0.1:{b}/rusd"
    code, out, took = start(url)
    assert code == 1, out
    assert f"cannot use the shared log at {url}: no PostgreSQL server takes writes: " in out, out
    assert f"127.0.0.1:{a}: " in out and f"127.0.0.1:{b}: " in out and out.lower().count("refused") >= 2, out
    # It waited (a failover or PostgreSQL's start may be under way), but not for long.
    assert "gave up after 5 s" in out and 4.5 < took < 15, (took, out)


def test_wrong_credentials_exit_at_once(pg):
    base = f"127.0.0.1:{pg.port}/pwdb"
    code, out, took = start(f"postgres://rusd_pw:wrong@{base}")
    assert code == 1 and 'password authentication failed for user "rusd_pw"' in out, out
    assert f"cannot use the shared log at postgres://rusd_pw@{base}" in out and "wrong" not in out, out
    assert took < 4, f"a refused password is not worth waiting for: {took:.1f} s"
    code, out, took = start(f"postgres://rusd_pw@{base}")
    assert code == 1 and "asks for a password and --shared-log gives none" in out and took < 4, (took, out)
    code, out, took = start(f"postgres://nosuchuser@{base}")
    assert code == 1 and 'role "nosuchuser" does not exist' in out and took < 4, (took, out)
    # The control: the right password (percent-encoded, with '@' and ',' in it) is accepted.
    out = serves(f"postgres://rusd_pw:p%40ss%2Cw0rd@{base}")
    assert PASSWORD not in out and "p%40ss" not in out, "the password must not be logged"


def test_a_database_that_is_not_ours_is_refused(pg):
    base = f"postgres://postgres@127.0.0.1:{pg.port}"
    # Another program's rusd_log: refused before anything is created beside it.
    pg.psql("CREATE DATABASE other1", database="postgres")
    pg.psql("CREATE TABLE rusd_log (idx bigint PRIMARY KEY, payload text)", database="other1")
    code, out, took = start(f"{base}/other1")
    assert code == 1 and took < 4, (took, out)
    assert f"the database at {base}/other1 is not a rusd shared log" in out, out
    assert "its table rusd_log was not made by rusd (column member is missing, rusd needs text)" in out, out
    assert pg.psql("SELECT count(*) FROM pg_tables WHERE tablename LIKE 'rusd%'", database="other1") == "1"
    # Another program's rusd_meta with our columns and one more that rusd cannot fill:
    # refused with PostgreSQL's words when rusd's row does not fit.
    pg.psql("CREATE DATABASE other2", database="postgres")
    pg.psql("CREATE TABLE rusd_meta (id int PRIMARY KEY, schema_version int NOT NULL, cluster_id bigint NOT NULL,"
            " owner text NOT NULL)", database="other2")
    code, out, took = start(f"{base}/other2")
    assert code == 1 and f"the database at {base}/other2 is not a rusd shared log" in out, out
    assert 'null value in column "owner"' in out, out
    # The wrong type for a column rusd reads.
    pg.psql("CREATE DATABASE other3", database="postgres")
    pg.psql("CREATE TABLE rusd_head (id int PRIMARY KEY, last text)", database="other3")
    code, out, took = start(f"{base}/other3")
    assert code == 1 and f"the database at {base}/other3 is not a rusd shared log" in out, out
    assert "its table rusd_head was not made by rusd (column last is of type text, rusd needs bigint)" in out, out
    # The control: a fresh database of the same server is set up and served.
    pg.psql("CREATE DATABASE fresh_ok", database="postgres")
    serves(f"{base}/fresh_ok")


@pytest.mark.parametrize("url, why", [
    ("postgres://u@h:1/db,postgres://v@h:2/db", "every URL must name the same user, password and database"),
    ("postgres://u@h:1/db,postgres://u@h:2/other", "every URL must name the same user, password and database"),
    ("postgres://u@h:1,h:1/db", "the server h:1 is named twice"),
    ("postgres://u@h:1/db?sslmode=require", 'the parameter "sslmode=require" is not supported'),
    ("postgres://u@h:99999/db", "the port must be a number from 1 to 65535"),
    ("postgres://u@h:1,/db", "user, host and database must not be empty"),
    ("postgres://u%4@h/db", "a % must be followed by two hexadecimal digits"),
    ("postgres://u@[::1/db", "an IPv6 address lacks its ]"),
    ("postgres://u@h/db,mysql://u@h/db", "it must start with postgres://"),
])
def test_malformed_urls_are_refused_at_once(url, why):
    pg_cluster.skip_unless_available()
    code, out, took = start(url)
    assert code == 1 and f'invalid --shared-log "{url}": {why}' in out and took < 4, (took, out)
