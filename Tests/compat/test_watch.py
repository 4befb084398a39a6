"""Watch: key / range / prefix, history replay, compacted start, prev_kv, filters, cancel,
RequestProgress, client-chosen and duplicate watch IDs, fragmentation."""
import time

import pytest

from kv_helpers import prefix_end, put_all
from watch_streams import PairWatch

pytestmark = pytest.mark.rpc("Watch.Watch")


def test_key_range_prefix(pair, ns):
    with PairWatch(pair) as w:
        w.create(key=ns + "a")
        w.create(key=ns + "b", range_end=ns + "d")
        w.create(key=ns, range_end=prefix_end(ns))
        w.create(key=ns + "c", range_end=b"\0")
        w.expect(4)
        put_all(pair, ns, {"a": "1"})
        w.expect(2)
        put_all(pair, ns, {"c": "1"})
        w.expect(3)
        put_all(pair, ns, {"d": "1"})
        w.expect(2)
        pair.call("KV.DeleteRange", key=ns, range_end=prefix_end(ns))
        w.expect(1 + 1 + 3 + 2)
        w.quiet()


def test_txn_events_in_one_response(pair, ns):
    with PairWatch(pair) as w:
        w.create(key=ns, range_end=prefix_end(ns), prev_kv=True)
        w.expect(1)
        put_all(pair, ns, {"x": "0"})
        w.expect(1)
        pair.call("KV.Txn", success=[{"request_put": {"key": ns + f"k{i}", "value": "v"}}
                                     for i in range(5)] +
                  [{"request_delete_range": {"key": ns + "x"}}])
        w.expect(6)
        w.quiet()


def test_start_revision_replay(pair, ns):
    first = put_all(pair, ns, {"a": "1", "b": "1"})
    put_all(pair, ns, {"a": "2", "c": "1"})
    pair.call("KV.DeleteRange", key=ns + "b")
    with PairWatch(pair) as w:
        w.create(key=ns, range_end=prefix_end(ns), start_revision=first - 1, prev_kv=True)
        w.expect(1 + 5)
        w.create(key=ns + "a", start_revision=first)
        w.expect(1 + 1)
        w.create(key=ns, range_end=prefix_end(ns), start_revision=first + 100)  # future
        w.expect(1)
        w.quiet()


@pytest.mark.fresh
def test_compacted_start_revision(pair, ns):
    put_all(pair, ns, {"a": "1"})
    rev = put_all(pair, ns, {"a": "2", "b": "3"})
    pair.call("KV.Compact", revision=rev - 1)
    with PairWatch(pair) as w:
        w.create(key=ns, range_end=prefix_end(ns), start_revision=rev - 2)
        w.expect(2)              # etcd: created, then canceled with compact_revision
        w.quiet(0.3)
        w.create(key=ns, range_end=prefix_end(ns), start_revision=rev - 1)
        w.expect(2)
        w.quiet()


@pytest.mark.parametrize("filters", [["NOPUT"], ["NODELETE"], ["NOPUT", "NODELETE"]])
def test_filters(pair, ns, filters):
    with PairWatch(pair) as w:
        w.create(key=ns, range_end=prefix_end(ns), filters=filters, prev_kv=True)
        w.create(key=ns, range_end=prefix_end(ns))
        w.expect(2)
        put_all(pair, ns, {"a": "1", "b": "2"})
        pair.call("KV.DeleteRange", key=ns + "a")
        n = 3 + (0 if "NOPUT" in filters else 2) + (0 if "NODELETE" in filters else 1)
        w.expect(n)
        w.quiet()


def test_cancel(pair, ns):
    with PairWatch(pair) as w:
        w.create(key=ns + "a")
        w.create(key=ns + "b")
        w.expect(2)
        w.send(cancel_request={"watch_id": 0})
        w.expect(1)
        put_all(pair, ns, {"a": "1", "b": "1"})
        w.expect(1)
        w.send(cancel_request={"watch_id": 77})          # unknown id
        w.send(cancel_request={"watch_id": 0})           # already canceled
        w.quiet(0.5)


def test_request_progress(pair, ns):
    # A RequestProgress on a stream without watchers is answered by etcd 3.4 but not by etcd
    # 3.5+ (watchableStore.progressIfSync has no watcher to send on), whose semantics rusd
    # follows; test_watch_rusd.py checks that case on rusd alone.
    with PairWatch(pair) as w:
        w.create(key=ns + "a")
        w.expect(1)
        put_all(pair, ns, {"a": "1", "other": "2"})
        w.expect(1)
        w.send(progress_request={})
        w.expect(1)
        w.create(key=ns + "b", start_revision=1)
        w.expect(1)
        time.sleep(0.5)        # let the new watcher catch up (sync) before asking
        w.send(progress_request={})
        w.expect(1)


def test_client_chosen_and_duplicate_watch_id(pair, ns):
    with PairWatch(pair) as w:
        w.create(key=ns + "a", watch_id=7)
        w.expect(1)
        w.create(key=ns + "b", watch_id=7)              # duplicate
        w.expect(1)
        w.create(key=ns + "c")                          # server-chosen after a client id
        w.create(key=ns + "d", watch_id=0)
        w.expect(2)
        put_all(pair, ns, {"a": "1", "b": "1", "c": "1"})
        w.expect(2)
        w.quiet()


def test_create_errors(pair, ns):
    with PairWatch(pair) as w:
        w.create(key=b"")
        w.create(key=ns + "b", range_end=ns + "a")      # end before key
        w.create(key=ns + "c", start_revision=-5)
        w.quiet(0.7)


def test_two_streams_independent(pair, ns):
    with PairWatch(pair) as w1, PairWatch(pair) as w2:
        w1.create(key=ns + "a")
        w2.create(key=ns + "a", prev_kv=True)
        w1.expect(1)
        w2.expect(1)
        put_all(pair, ns, {"a": "1"})
        put_all(pair, ns, {"a": "2"})
        w1.expect(2)
        w2.expect(2)


@pytest.mark.server_args("--max-request-bytes", "4096")
def test_fragment(pair, ns):
    """Responses larger than --max-request-bytes are split when the watcher asks for it."""
    for i in range(8):
        pair.call("KV.Put", key=f"{ns}big{i}", value=b"v" * 1500)
    with PairWatch(pair) as w:
        w.create(key=ns, range_end=prefix_end(ns), start_revision=1, fragment=True)
        w.expect(1 + 8)
        w.quiet()
    with PairWatch(pair) as w:
        w.create(key=ns, range_end=prefix_end(ns), start_revision=1)
        w.expect(1 + 8)
        w.quiet()
