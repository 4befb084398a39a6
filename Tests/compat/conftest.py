"""Fixtures of the differential compatibility suite (see README.md).

Every test that takes the `pair` fixture runs once per candidate target (COMPAT_TARGETS,
servers.selected_targets; the first only when marked `engine_independent`) against a
reference etcd. Servers are shared by the tests of a
target and kept in lockstep; they are restarted fresh after any test that leaves the two
out of step (a difference, an error, different current revisions) and before tests marked
`fresh`. Each test is marked with the RPCs it covers: @pytest.mark.rpc("KV.Range", ...).
"""
from __future__ import annotations

import re

import pytest

import servers
from differential import Pair
from rpc_table import RPCTable

TABLE = pytest.StashKey[RPCTable]()


def pytest_configure(config):
    config.addinivalue_line("markers", "rpc(*names): RPCs a compatibility case covers")
    config.addinivalue_line("markers", "fresh: the case needs freshly started servers")
    config.addinivalue_line("markers", "server_args(*args): extra flags for both servers")
    config.addinivalue_line("markers", "engine_independent: what the case checks lies above the "
                            "storage engine (auth, gateway, request validation): it runs on the "
                            "first target only")
    config.stash[TABLE] = RPCTable()


def pytest_generate_tests(metafunc):
    if "target" in metafunc.fixturenames:
        targets = servers.selected_targets()
        if metafunc.definition.get_closest_marker("engine_independent"):
            targets = targets[:1]   # the same code path on every engine: one run proves it
        metafunc.parametrize("target", targets, scope="session")


@pytest.fixture(scope="session")
def api():
    from etcd_api import EtcdAPI
    a = EtcdAPI()
    yield a
    a.close()


class PairManager:
    """Starts, reuses and restarts the (etcd, candidate) servers of one target."""

    def __init__(self, api, target: str):
        self.api, self.target = api, target
        self.servers: list[servers.Server] = []
        self.pair: Pair | None = None
        self.dirty = True
        self.start_error: Exception | None = None
        self.args: tuple = ()

    def get(self, fresh: bool, args: tuple = ()) -> Pair:
        if self.start_error is not None:
            raise servers.ServerStartError(
                f"{self.target} did not start earlier in this session (first error: "
                f"{str(self.start_error).splitlines()[0]})")
        pristine = self.pair is not None and not self.pair.rpcs_called
        if (fresh and not pristine) or self.dirty or self.pair is None or args != self.args:
            self.restart(args)
        return self.pair

    def restart(self, args: tuple = ()) -> None:
        self.stop()
        self.args = args
        try:
            self.servers = servers.start_servers(["etcd", self.target], list(args))
        except Exception as e:  # noqa: BLE001 - reported on every test of this target
            self.start_error = e if not args else None
            raise
        self.pair = Pair(self.api, self.servers[0], self.servers[1], self.target)
        self.dirty = False

    def stop(self) -> None:
        if self.pair:
            self.pair.close()
            self.pair = None
        for s in self.servers:
            s.stop()
        self.servers = []

    def after_test(self, failed: bool) -> None:
        if self.pair is None:
            return
        if failed or self.pair.differences:
            self.dirty = True
            return
        ref, cand = self.pair.current_revisions()
        if ref is None or ref != cand:
            self.dirty = True


@pytest.fixture(scope="session")
def pair_manager(api, target):
    m = PairManager(api, target)
    yield m
    m.stop()


@pytest.fixture
def pair(pair_manager, request):
    fresh = request.node.get_closest_marker("fresh") is not None
    marker = request.node.get_closest_marker("server_args")
    args = tuple(marker.args) if marker else ()
    p = pair_manager.get(fresh, args)
    p.differences.clear()
    yield p
    rep = getattr(request.node, "rep_call", None)
    failed = rep is None or not rep.passed
    pair_manager.after_test(failed or fresh or bool(args))


@pytest.fixture
def ns(request) -> str:
    """A key prefix unique to this test (servers are shared between tests)."""
    name = re.sub(r"[^A-Za-z0-9_]+", "_", request.node.name)
    return f"/{name}/"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)
    marker = item.get_closest_marker("rpc")
    callspec = getattr(item, "callspec", None)
    if marker is None or callspec is None or "target" not in callspec.params:
        return
    table = item.config.stash[TABLE]
    target = callspec.params["target"]
    if rep.when == "call" or (rep.when == "setup" and not rep.passed):
        if rep.skipped:
            return
        table.record(list(marker.args), target, rep.passed, item.originalname or item.name)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    table = config.stash[TABLE]
    if not table.cells:
        return
    path = table.write()
    terminalreporter.write_sep("=", "compatibility: RPC x target (vs a reference etcd)")
    terminalreporter.write(table.markdown())
    if table.failures():
        terminalreporter.write("\nfailing cases:\n" + table.failures() + "\n")
    terminalreporter.write(f"\ntable written to {path}\n")
