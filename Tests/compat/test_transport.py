"""Independent-client tests of the gRPC transport (Sources/GRPCTransport) through the
grpc-test-server executable: Python grpcio (stubs generated here from the .proto files), a raw
HTTP/2 socket client for abuse cases (transport_h2raw.py), curl-free HTTP/1.1 via urllib,
and an h2load smoke run.

The server binary: $GRPC_TEST_SERVER, else `swift build --show-bin-path`/grpc-test-server
(built with `swift build --product grpc-test-server` if missing).
"""
import functools
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import grpc
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import transport_h2raw as h2  # noqa: E402

ECHO = "/rusd.transporttest.Echo/"


# ---------------------------------------------------------------- fixtures

@functools.lru_cache(maxsize=1)
def _server_binary():
    path = os.environ.get("GRPC_TEST_SERVER")
    if path:
        return path
    bin_dir = subprocess.run(["swift", "build", "--show-bin-path"], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout.strip()
    path = os.path.join(bin_dir, "grpc-test-server")
    if not os.path.exists(path):
        subprocess.run(["swift", "build", "--product", "grpc-test-server"], cwd=ROOT, check=True)
    return path


@pytest.fixture(scope="session")
def stubs():
    """Generates Python stubs for the test and health protos into a temp dir."""
    from grpc_tools import protoc
    import grpc_tools
    out = tempfile.mkdtemp(prefix="transport-stubs-")
    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    # health.proto is compiled from a flat copy: a grpc/health/... module path would be
    # shadowed by the grpc package itself.
    flat = os.path.join(out, "protos")
    os.makedirs(flat)
    shutil.copy(os.path.join(ROOT, "Protos", "grpc", "health", "v1", "health.proto"), flat)
    for proto_dir, proto in [(HERE, "transport_test.proto"), (flat, "health.proto")]:
        rc = protoc.main(["protoc", f"-I{proto_dir}", f"-I{include}", f"--python_out={out}",
                          f"--grpc_python_out={out}", proto])
        assert rc == 0, f"protoc failed for {proto}"
    sys.path.insert(0, out)
    import transport_test_pb2 as pb
    import transport_test_pb2_grpc as pb_grpc
    yield pb, pb_grpc
    sys.path.remove(out)
    shutil.rmtree(out, ignore_errors=True)


class Server:
    def __init__(self, *args):
        self.proc = subprocess.Popen([_server_binary(), *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("listening "), f"server did not start: {line!r} {self.proc.stderr.read()}"
        self.ports = [int(line.split()[2])]
        self.port = self.ports[0]

    def rss_high_water_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return 0

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()


@pytest.fixture
def server():
    s = Server("--listen", "http://127.0.0.1:0")
    yield s
    s.stop()


@pytest.fixture
def small_server():
    s = Server("--listen", "http://127.0.0.1:0", "--max-recv-bytes", "1024")
    yield s
    s.stop()


def channel(port, **options):
    return grpc.insecure_channel(f"127.0.0.1:{port}", options=list(options.items()))


# ---------------------------------------------------------------- grpcio: basics

def test_unary_echo_and_metadata(server, stubs):
    pb, rpc = stubs
    with channel(server.port) as ch:
        stub = rpc.EchoStub(ch)
        reply = stub.Unary(pb.EchoRequest(payload=b"hello"), metadata=[("token", "secret-token"),
                                                                       ("x-custom", "v1")])
        assert reply.payload == b"hello"
        assert reply.metadata["token"] == "secret-token"
        assert reply.metadata["x-custom"] == "v1"
        assert reply.deadline_remaining_ms == -1
        assert "grpc-python" in reply.metadata["user-agent"]


def test_error_status_message_roundtrip(server, stubs):
    pb, rpc = stubs
    message = "etcdserver: key not found % 100 ünïcode\nnewline"
    with channel(server.port) as ch:
        with pytest.raises(grpc.RpcError) as err:
            rpc.EchoStub(ch).Unary(pb.EchoRequest(fail_code=5, fail_message=message))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert err.value.details() == message


def test_async_completion_from_other_thread(server, stubs):
    pb, rpc = stubs
    with channel(server.port) as ch:
        reply = rpc.EchoStub(ch).Unary(pb.EchoRequest(payload=b"later", delay_ms=50))
    assert reply.payload == b"later"


def test_server_streaming(server, stubs):
    pb, rpc = stubs
    with channel(server.port) as ch:
        replies = list(rpc.EchoStub(ch).ServerStream(pb.EchoRequest(response_count=100, response_size=10)))
    assert [r.index for r in replies] == list(range(100))
    assert all(r.payload == b"x" * 10 for r in replies)


def test_bidi_interleaved(server, stubs):
    pb, rpc = stubs
    requests = queue.Queue()

    def gen():
        while True:
            item = requests.get()
            if item is None:
                return
            yield item

    with channel(server.port) as ch:
        responses = rpc.EchoStub(ch).Bidi(gen())
        for i in range(5):
            requests.put(pb.EchoRequest(payload=str(i).encode()))
            reply = next(responses)  # answered before the next request is sent
            assert reply.payload == str(i).encode() and reply.index == i
        requests.put(None)
        assert list(responses) == []  # server finishes OK after our half-close


def test_bidi_server_fails_stream(server, stubs):
    pb, rpc = stubs
    with channel(server.port) as ch:
        responses = rpc.EchoStub(ch).Bidi(iter([pb.EchoRequest(payload=b"a"),
                                                pb.EchoRequest(fail_code=9, fail_message="stop")]))
        with pytest.raises(grpc.RpcError) as err:
            list(responses)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert err.value.details() == "stop"


def test_deadline(server, stubs):
    pb, rpc = stubs
    with channel(server.port) as ch:
        stub = rpc.EchoStub(ch)
        reply = stub.Unary(pb.EchoRequest(), timeout=3)
        # grpc core may round the grpc-timeout it sends up (its timeout_encoding.h: "encoding
        # may round up arbitrarily"); one CI run saw 3009 ms remaining for a 3 s timeout.
        assert 1000 < reply.deadline_remaining_ms <= 3010
        with pytest.raises(grpc.RpcError) as err:
            stub.Unary(pb.EchoRequest(delay_ms=2000), timeout=0.2)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        # The connection is still fine afterwards.
        assert stub.Unary(pb.EchoRequest(payload=b"ok")).payload == b"ok"


# ---------------------------------------------------------------- server-side deadlines

def _nghttp_grpc(port, method, message, timeout, extra=()):
    """One gRPC call through nghttp (nghttp2's client: it enforces no deadline of its own, so
    what it prints is what the server sent). Returns (seconds taken, verbose output)."""
    with tempfile.NamedTemporaryFile(suffix=".bin", delete=False) as f:
        f.write(h2.grpc_message(message))
        body = f.name
    try:
        start = time.monotonic()
        out = subprocess.run(["nghttp", "-v", "-d", body, "-H", "content-type: application/grpc",
                              "-H", "te: trailers", "-H", f"grpc-timeout: {timeout}", *extra,
                              f"http://127.0.0.1:{port}{ECHO}{method}"],
                             capture_output=True, text=True, errors="replace", timeout=30).stdout
        return time.monotonic() - start, out
    finally:
        os.unlink(body)


def _cancelled_streams(stub, pb):
    return stub.Unary(pb.EchoRequest()).cancelled_streams


@pytest.mark.skipif(shutil.which("nghttp") is None, reason="nghttp not installed")
def test_deadline_trailers_come_from_the_server(server, stubs):
    pb, rpc = stubs
    # A unary call that never answers: the server ends it at the deadline by itself.
    took, out = _nghttp_grpc(server.port, "Unary", pb.EchoRequest(never_finish=True).SerializeToString(), "300m")
    assert "grpc-status: 4" in out, out
    assert "grpc-message: context deadline exceeded" in out, out
    assert "recv DATA frame" not in out, out
    assert 0.25 < took < 10, took
    # A call answered after its deadline: one trailers-only answer at the deadline, and the late
    # completion (1 s) is dropped without a second response or a crash.
    took, out = _nghttp_grpc(server.port, "Unary", pb.EchoRequest(delay_ms=1000).SerializeToString(), "100m")
    assert "grpc-status: 4" in out and "grpc-status: 0" not in out, out
    assert out.count("recv HEADERS frame") == 1, out
    assert took < 0.9, took  # answered at the deadline, not at the completion
    time.sleep(1.2 - took)
    assert server.alive()
    # A server stream that sends three messages and never finishes: the messages, then the
    # trailers, and the handler sees cancellation though the client never reset the stream.
    with channel(server.port) as ch:
        stub = rpc.EchoStub(ch)
        before = _cancelled_streams(stub, pb)
        took, out = _nghttp_grpc(server.port, "ServerStream", pb.EchoRequest(
            response_count=3, response_size=10, never_finish=True).SerializeToString(), "400m")
        sent = sum(len(h2.grpc_message(pb.EchoResponse(payload=b"x" * 10, index=i).SerializeToString()))
                   for i in range(3))
        received = sum(int(m) for m in re.findall(r"recv DATA frame <length=(\d+)", out))
        assert received == sent, out
        assert "grpc-status: 4" in out and "grpc-message: context deadline exceeded" in out, out
        assert "send RST_STREAM" not in out, out
        assert _cancelled_streams(stub, pb) == before + 1
        # A deadline far in the future is only a deadline: the call is answered normally.
        _, out = _nghttp_grpc(server.port, "Unary", pb.EchoRequest(payload=b"x").SerializeToString(), "99999999H")
        assert "grpc-status: 0" in out, out


def test_deadline_exceeded_for_grpcio_calls(server, stubs):
    pb, rpc = stubs
    with channel(server.port) as ch:
        stub = rpc.EchoStub(ch)
        before = _cancelled_streams(stub, pb)
        with pytest.raises(grpc.RpcError) as err:
            stub.Unary(pb.EchoRequest(never_finish=True), timeout=0.3)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        stream = stub.ServerStream(pb.EchoRequest(response_count=2, response_size=10, never_finish=True),
                                   timeout=0.5)
        assert next(stream).index == 0 and next(stream).index == 1
        with pytest.raises(grpc.RpcError) as err:
            next(stream)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        release = threading.Event()

        def requests():
            yield pb.EchoRequest(payload=b"one")
            release.wait(10)  # keep the request side open past the deadline

        replies = stub.Bidi(requests(), timeout=0.5)
        assert next(replies).payload == b"one"
        with pytest.raises(grpc.RpcError) as err:
            next(replies)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        release.set()
        # Many calls completing after their deadline: all end once, the server keeps serving.
        futures = [stub.Unary.future(pb.EchoRequest(delay_ms=200, payload=b"%d" % i), timeout=0.05)
                   for i in range(300)]
        for f in futures:
            with pytest.raises(grpc.RpcError) as err:
                f.result(timeout=10)
            assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        time.sleep(0.4)  # the late completions arrive now
        assert stub.Unary(pb.EchoRequest(payload=b"after"), timeout=5).payload == b"after"
        # Both streaming handlers saw cancellation.
        assert _cancelled_streams(stub, pb) >= before + 2
    assert server.alive()


def test_malformed_grpc_timeout_resets_stream(server, stubs):
    # grpc-go (1.33, which Debian's etcd 3.4 uses) answers RST_STREAM PROTOCOL_ERROR without
    # running a handler; "-1S" and "+1S" are accepted (strconv.ParseInt), as there.
    pb, _ = stubs
    conn = h2.RawH2(server.port)
    body = h2.grpc_message(pb.EchoRequest(payload=b"t").SerializeToString())
    cases = {"1x": "rst", "123456789S": "rst", "S": "rst", "1S ": "rst", "": "rst", "1.5S": "rst",
             "-1S": "answer", "+1S": "answer", "99999999H": "answer", "0n": "answer"}
    sid = 1
    expected = {}
    for value, outcome in cases.items():
        headers = h2.header_block([(":method", "POST"), (":scheme", "http"), (":path", ECHO + "Unary"),
                                   (":authority", "localhost"), ("content-type", "application/grpc"),
                                   ("te", "trailers"), ("grpc-timeout", value)])
        conn.send(h2.frame(h2.HEADERS, h2.END_HEADERS, sid, headers) + h2.frame(h2.DATA, h2.END_STREAM, sid, body))
        expected[sid] = (value, outcome)
        sid += 2
    seen = {}
    while len(seen) < len(expected):
        f = conn.read_frame()
        assert f is not None, f"connection closed; seen {seen}"
        ftype, _, stream_id, payload = f
        if stream_id in expected and stream_id not in seen:
            if ftype == h2.RST_STREAM:
                seen[stream_id] = ("rst", int.from_bytes(payload, "big"))
            elif ftype == h2.HEADERS:
                seen[stream_id] = ("answer", None)
    conn.close()
    for stream_id, (value, outcome) in expected.items():
        assert seen[stream_id][0] == outcome, (value, seen[stream_id])
        if outcome == "rst":
            assert seen[stream_id][1] == 1, (value, seen[stream_id])  # PROTOCOL_ERROR
    assert _still_serves(server.port, stubs)


def test_unknown_service_and_method(server, stubs):
    with channel(server.port) as ch:
        call = ch.unary_unary(ECHO + "Nope")
        with pytest.raises(grpc.RpcError) as err:
            call(b"")
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert err.value.details() == "unknown method Nope for service rusd.transporttest.Echo"
        with pytest.raises(grpc.RpcError) as err:
            ch.unary_unary("/no.Such/Method")(b"")
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert err.value.details() == "unknown service no.Such"


@pytest.mark.skipif(shutil.which("etcdctl") is None, reason="etcdctl not installed")
def test_grpc_go_client_reads_status(server):
    # etcdctl 3.4 is a grpc-go client: it must parse our trailers-only UNIMPLEMENTED answer.
    out = subprocess.run(["etcdctl", "--endpoints", f"127.0.0.1:{server.port}", "--command-timeout", "5s",
                          "get", "foo"], capture_output=True, text=True, timeout=30,
                         env={**os.environ, "ETCDCTL_API": "3"})
    assert out.returncode != 0
    assert "Error: rpc error: code = Unimplemented desc = unknown service etcdserverpb.KV" in out.stderr, out.stderr


def test_malformed_protobuf_is_internal(server, stubs):
    with channel(server.port) as ch:
        with pytest.raises(grpc.RpcError) as err:
            ch.unary_unary(ECHO + "Unary")(b"\x0a\xff\xff")  # field 1, length runs past the end
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert err.value.details().startswith("grpc: error unmarshalling request: ")


def test_oversized_message_resource_exhausted(small_server, stubs):
    pb, rpc = stubs
    with channel(small_server.port) as ch:
        stub = rpc.EchoStub(ch)
        request = pb.EchoRequest(payload=b"z" * 5000)
        with pytest.raises(grpc.RpcError) as err:
            stub.Unary(request)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert err.value.details() == f"grpc: received message larger than max ({request.ByteSize()} vs. 1024)"
        # The connection survives.
        assert stub.Unary(pb.EchoRequest(payload=b"small")).payload == b"small"


def test_compressed_request_refused(server, stubs):
    pb, rpc = stubs
    with channel(server.port) as ch:
        with pytest.raises(grpc.RpcError) as err:
            rpc.EchoStub(ch).Unary(pb.EchoRequest(payload=b"q" * 100), compression=grpc.Compression.Gzip)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert 'grpc-encoding "gzip"' in err.value.details()


def test_health_check_and_watch(server, stubs):
    import health_pb2
    import health_pb2_grpc
    with channel(server.port) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        assert stub.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as err:
            stub.Check(health_pb2.HealthCheckRequest(service="nope"))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        watch = stub.Watch(health_pb2.HealthCheckRequest())
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        watch.cancel()


def test_http1_on_same_port(server):
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/health", timeout=5) as resp:
        assert resp.status == 200
        assert resp.read() == b'{"health":"true","reason":""}'
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"http://127.0.0.1:{server.port}/missing", timeout=5)
    assert err.value.code == 404


@pytest.mark.skipif(shutil.which("nghttp") is None, reason="nghttp not installed")
def test_plain_http_over_http2_goes_to_http_handler(server):
    # A Go/Prometheus client talking h2 to /metrics or /health: non-gRPC requests over HTTP/2
    # are served by the HTTP handler, like etcd's.
    out = subprocess.run(["nghttp", "-v", f"http://127.0.0.1:{server.port}/health"],
                         capture_output=True, text=True, timeout=30).stdout
    assert ":status: 200" in out, out
    assert '{"health":"true","reason":""}' in out, out
    out = subprocess.run(["nghttp", "-v", f"http://127.0.0.1:{server.port}/nothing"],
                         capture_output=True, text=True, timeout=30).stdout
    assert ":status: 404" in out, out


# ---------------------------------------------------------------- load and flow control

def test_thousands_of_concurrent_streams(server, stubs):
    pb, rpc = stubs
    with channel(server.port) as ch:
        stub = rpc.EchoStub(ch)
        futures = [stub.Unary.future(pb.EchoRequest(payload=str(i).encode(), delay_ms=200))
                   for i in range(1500)]
        results = [f.result(timeout=60) for f in futures]
    assert [r.payload for r in results] == [str(i).encode() for i in range(1500)]


def test_large_streamed_response_is_flow_controlled(server, stubs):
    pb, rpc = stubs
    size, count = 1 << 20, 64  # 64 MiB in 1 MiB messages
    total = 0
    with channel(server.port, **{"grpc.max_receive_message_length": 8 << 20}) as ch:
        for reply in rpc.EchoStub(ch).ServerStream(pb.EchoRequest(response_count=count, response_size=size)):
            assert len(reply.payload) == size
            total += len(reply.payload)
    assert total == size * count
    # The server never held the whole response: its peak RSS stays far below 64 MiB of payload
    # (plus the encoded copies a buffering server would keep).
    assert server.rss_high_water_kib() < 60 * 1024, f"peak RSS {server.rss_high_water_kib()} KiB"


def test_client_cancels_mid_stream(server, stubs):
    pb, rpc = stubs
    with channel(server.port) as ch:
        stub = rpc.EchoStub(ch)
        stream = stub.ServerStream(pb.EchoRequest(response_count=100000, response_size=1000))
        for _ in range(10):
            next(stream)
        stream.cancel()  # RST_STREAM CANCEL
        with pytest.raises(grpc.RpcError) as err:
            list(stream)
        assert err.value.code() == grpc.StatusCode.CANCELLED
        assert stub.Unary(pb.EchoRequest(payload=b"after")).payload == b"after"
    assert server.alive()


def test_max_concurrent_streams_queues_at_client(stubs):
    pb, rpc = stubs
    s = Server("--listen", "http://127.0.0.1:0", "--max-concurrent-streams", "8")
    try:
        with channel(s.port) as ch:
            stub = rpc.EchoStub(ch)
            futures = [stub.Unary.future(pb.EchoRequest(payload=b"%d" % i, delay_ms=20)) for i in range(64)]
            assert [f.result(timeout=30).payload for f in futures] == [b"%d" % i for i in range(64)]
    finally:
        s.stop()


# ---------------------------------------------------------------- abuse (raw HTTP/2)

def _still_serves(port, stubs):
    pb, rpc = stubs
    with channel(port) as ch:
        return rpc.EchoStub(ch).Unary(pb.EchoRequest(payload=b"alive"), timeout=5).payload == b"alive"


def test_truncated_frame_then_close(server, stubs):
    conn = h2.RawH2(server.port)
    # A DATA frame header announcing 100 bytes, followed by only 10 of them.
    conn.send(conn.request(1, ECHO + "Unary", end_stream=False)
              + h2.frame(h2.DATA, 0, 1, b"\x00" * 100)[:19])
    conn.close()
    assert _still_serves(server.port, stubs)


@pytest.mark.skipif(shutil.which("nghttp") is None, reason="nghttp not installed")
def test_truncated_grpc_message_is_internal(server, stubs):
    # nghttp (nghttp2's client) sends a body whose gRPC length prefix says 50 bytes while the
    # stream ends after 3, and prints the decoded response headers.
    with tempfile.NamedTemporaryFile(suffix=".bin", delete=False) as f:
        f.write(b"\x00\x00\x00\x00\x32abc")
        body = f.name
    try:
        out = subprocess.run(["nghttp", "-v", "-d", body, "-H", "content-type: application/grpc",
                              "-H", "te: trailers", f"http://127.0.0.1:{server.port}{ECHO}Unary"],
                             capture_output=True, text=True, timeout=30).stdout
    finally:
        os.unlink(body)
    assert "grpc-status: 13" in out, out
    assert "grpc-message: grpc: request stream ended inside a message" in out, out


def test_garbage_after_preface_gets_goaway(server, stubs):
    conn = h2.RawH2(server.port)
    conn.send(b"\x00\x00\x04\xff\x00\x00\x00\x00\x00" + b"\x00" * 4  # unknown frame type: ignored
              + h2.frame(h2.SETTINGS, 0, 3, b""))  # SETTINGS on a stream: PROTOCOL_ERROR
    frames, goaway = conn.frames_until(lambda f: f[0] == h2.GOAWAY)
    conn.close()
    assert goaway is not None
    assert int.from_bytes(goaway[3][4:8], "big") == 1  # PROTOCOL_ERROR
    assert _still_serves(server.port, stubs)


def test_ten_thousand_streams_opened_at_once(server, stubs):
    conn = h2.RawH2(server.port, connection_window_increment=1 << 30)
    body = h2.frame(h2.DATA, h2.END_STREAM, 0, h2.grpc_message(b""))
    out = bytearray()
    for i in range(10000):
        sid = 2 * i + 1
        out += conn.request(sid, ECHO + "Unary", body=h2.grpc_message(b"\x0a\x01a"))
    conn.send(bytes(out))
    done = set()
    while len(done) < 10000:
        f = conn.read_frame()
        assert f is not None, f"connection closed after {len(done)} streams"
        if f[0] == h2.HEADERS and f[1] & h2.END_STREAM:  # trailers (HPACK-encoded)
            done.add(f[2])
        elif f[0] == h2.RST_STREAM:
            done.add(f[2])
    conn.close()
    assert len(done) == 10000
    assert _still_serves(server.port, stubs)


def test_client_that_never_reads(server, stubs):
    conn = h2.RawH2(server.port)
    # Ask for 200 MiB and never read a byte: flow control and backpressure must hold it back.
    req = h2.grpc_message(bytes([0x10]) + _varint(200) + bytes([0x18]) + _varint(1 << 20))
    conn.send(conn.request(1, ECHO + "ServerStream", body=req))
    time.sleep(1.0)
    assert _still_serves(server.port, stubs)
    assert server.rss_high_water_kib() < 60 * 1024
    conn.close()
    assert _still_serves(server.port, stubs)


def test_ping_flood_gets_enhance_your_calm(server, stubs):
    conn = h2.RawH2(server.port)
    for i in range(5):
        conn.send(h2.frame(h2.PING, 0, 0, b"%08d" % i))
    frames, goaway = conn.frames_until(lambda f: f[0] == h2.GOAWAY)
    conn.close()
    assert goaway is not None
    assert int.from_bytes(goaway[3][4:8], "big") == 11  # ENHANCE_YOUR_CALM
    assert goaway[3][8:] == b"too_many_pings"
    assert sum(1 for f in frames if f[0] == h2.PING and f[1] & h2.ACK) >= 1


def test_pings_within_policy_are_answered(stubs):
    s = Server("--listen", "http://127.0.0.1:0", "--keepalive-min-time-ms", "100",
               "--permit-without-stream")
    try:
        conn = h2.RawH2(s.port)
        for i in range(4):
            conn.send(h2.frame(h2.PING, 0, 0, b"%08d" % i))
            _, ack = conn.frames_until(lambda f: f[0] == h2.PING and f[1] & h2.ACK or f[0] == h2.GOAWAY)
            assert ack is not None and ack[0] == h2.PING and ack[3] == b"%08d" % i
            time.sleep(0.15)
        conn.close()
    finally:
        s.stop()


def test_server_keepalive_ping_and_timeout(stubs):
    s = Server("--listen", "http://127.0.0.1:0", "--keepalive-interval-ms", "200",
               "--keepalive-timeout-ms", "300")
    try:
        conn = h2.RawH2(s.port)
        _, ping = conn.frames_until(lambda f: f[0] == h2.PING and not f[1] & h2.ACK)
        assert ping is not None  # the server pinged an idle client
        # We never answer: the server closes the connection after the timeout.
        frames, _ = conn.frames_until(lambda f: False)
        conn.close()
    finally:
        s.stop()


def _varint(n):
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


# ---------------------------------------------------------------- TLS

def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki():
    d = tempfile.mkdtemp(prefix="transport-pki-")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
             "-days", "1", "-subj", "/CN=test-ca", cwd=d)
    for name, ext in [("server", "subjectAltName=IP:127.0.0.1,DNS:localhost"), ("client", None)]:
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={name}-cn", cwd=d)
        args = ["x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.crt", "-days", "1"]
        if ext:
            with open(os.path.join(d, f"{name}.ext"), "w") as f:
                f.write(ext + "\n")
            args += ["-extfile", f"{name}.ext"]
        _openssl(*args, cwd=d)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _read(d, name):
    with open(os.path.join(d, name), "rb") as f:
        return f.read()


def test_tls_with_client_certificate(pki, stubs):
    pb, rpc = stubs
    s = Server("--listen", "https://127.0.0.1:0", "--cert", os.path.join(pki, "server.crt"),
               "--key", os.path.join(pki, "server.key"), "--trusted-ca", os.path.join(pki, "ca.crt"),
               "--client-cert-auth")
    try:
        creds = grpc.ssl_channel_credentials(_read(pki, "ca.crt"), _read(pki, "client.key"),
                                             _read(pki, "client.crt"))
        with grpc.secure_channel(f"127.0.0.1:{s.port}", creds) as ch:
            reply = rpc.EchoStub(ch).Unary(pb.EchoRequest(payload=b"tls"), timeout=10)
        assert reply.payload == b"tls"
        assert reply.peer_common_name == "client-cn"
        # Without a client certificate the handshake is refused.
        creds = grpc.ssl_channel_credentials(_read(pki, "ca.crt"))
        with grpc.secure_channel(f"127.0.0.1:{s.port}", creds) as ch:
            with pytest.raises(grpc.RpcError) as err:
                rpc.EchoStub(ch).Unary(pb.EchoRequest(), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        s.stop()


# ---------------------------------------------------------------- shutdown and h2load

def test_graceful_shutdown_drains_calls(stubs):
    pb, rpc = stubs
    s = Server("--listen", "http://127.0.0.1:0")
    try:
        with channel(s.port) as ch:
            stub = rpc.EchoStub(ch)
            assert stub.Unary(pb.EchoRequest()).payload == b""
            pending = stub.Unary.future(pb.EchoRequest(payload=b"drained", delay_ms=700))
            time.sleep(0.2)
            s.proc.send_signal(signal.SIGTERM)
            assert pending.result(timeout=10).payload == b"drained"
        assert s.proc.wait(timeout=10) == 0
    finally:
        s.stop()


def test_shutdown_closes_idle_connections_without_waiting(stubs):
    # Idle HTTP/1.1 keep-alive and idle HTTP/2 connections must not hold shutdown for the
    # whole grace period (5 s in grpc-test-server).
    import http.client
    pb, rpc = stubs
    s = Server("--listen", "http://127.0.0.1:0")
    try:
        http1 = http.client.HTTPConnection("127.0.0.1", s.port, timeout=5)
        http1.request("GET", "/health")
        assert http1.getresponse().read() == b'{"health":"true","reason":""}'
        with channel(s.port) as ch:
            assert rpc.EchoStub(ch).Unary(pb.EchoRequest(payload=b"x")).payload == b"x"
            s.proc.send_signal(signal.SIGTERM)
            assert s.proc.wait(timeout=4) == 0
        http1.close()
    finally:
        s.stop()


@pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load not installed")
def test_h2load_smoke(server, stubs):
    pb, _ = stubs
    with tempfile.NamedTemporaryFile(suffix=".bin", delete=False) as f:
        f.write(h2.grpc_message(pb.EchoRequest(payload=b"ping").SerializeToString()))
        body = f.name
    try:
        out = subprocess.run(["h2load", "-n", "10000", "-c", "4", "-m", "10", "-d", body,
                              "-H", "content-type: application/grpc", "-H", "te: trailers",
                              f"http://127.0.0.1:{server.port}{ECHO}Unary"],
                             capture_output=True, text=True, timeout=120).stdout
    finally:
        os.unlink(body)
    assert "10000 succeeded, 0 failed, 0 errored" in out, out
    assert "status codes: 10000 2xx" in out, out
