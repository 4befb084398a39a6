"""rusd's data-dir engine marker (member/engine, EngineAPI's EngineMarker; fuzzed by the
`data-dir-marker` target): a marker naming another engine is refused with the message rusd always
gave, a damaged one with a message naming the file and none of its control bytes. rusd only, no
server is left running (each start must fail before binding)."""
import os
import shutil
import subprocess
import tempfile

import pytest

from servers import free_port, rusd_bin, temp_root

pytestmark = pytest.mark.skipif(rusd_bin() is None, reason="RUSD_BIN is not an executable file")


def start_on_marker(marker: bytes, engine: str = "lmdb") -> tuple[int, str, str]:
    """Starts rusd on a data dir whose member/engine holds `marker`; returns (exit code, the
    data dir, stderr + stdout)."""
    root = tempfile.mkdtemp(prefix="compat-marker-", dir=temp_root())
    data = os.path.join(root, "data")
    os.makedirs(os.path.join(data, "member"), mode=0o700)
    with open(os.path.join(data, "member", "engine"), "wb") as f:
        f.write(marker)
    client = f"http://127.0.0.1:{free_port()}"
    try:
        proc = subprocess.run([rusd_bin(), "--engine", engine, "--data-dir", data,
                               "--listen-client-urls", client, "--advertise-client-urls", client],
                              capture_output=True, timeout=20)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return proc.returncode, data, (proc.stderr + proc.stdout).decode("utf-8", "replace")


def test_marker_of_another_engine_is_refused_naming_both():
    code, data, out = start_on_marker(b"lsm\n")
    assert code == 1, out
    assert (f"data directory {data} was written by engine 'lsm', not 'lmdb': start with --engine=lsm, "
            "or migrate with 'rusd snapshot restore' into a new data dir") in out


@pytest.mark.parametrize("marker", [b"", b"\n\n", b"\x1b]0;owned\x07lmdb\n", b"lm db\n", b"\xff\xfe"])
def test_damaged_marker_is_refused_naming_the_file(marker):
    code, data, out = start_on_marker(marker)
    assert code == 1, out
    assert f"data directory {data} has a damaged engine marker ({data}/member/engine)" in out, out
    assert "is not an engine name" in out
    assert not any(c in out for c in "\x1b\x07"), repr(out)


def test_marker_with_spaces_and_line_feeds_still_opens():
    """What rusd accepted before the parser moved (line feeds dropped, spaces trimmed) still
    opens: the start gets past the marker, so it fails only on what comes after (here a port
    already taken) or runs; either way no marker message."""
    root = tempfile.mkdtemp(prefix="compat-marker-", dir=temp_root())
    data = os.path.join(root, "data")
    os.makedirs(os.path.join(data, "member"), mode=0o700)
    with open(os.path.join(data, "member", "engine"), "wb") as f:
        f.write(b"  lmdb \n\n")
    client = f"http://127.0.0.1:{free_port()}"
    proc = subprocess.Popen([rusd_bin(), "--engine", "lmdb", "--data-dir", data,
                             "--listen-client-urls", client, "--advertise-client-urls", client],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = proc.communicate(timeout=3)
        assert "engine marker" not in out.decode() and "written by engine" not in out.decode(), out
    except subprocess.TimeoutExpired:
        pass  # serving: the marker was accepted
    finally:
        proc.kill()
        proc.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)
