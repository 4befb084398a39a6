"""A deliberately dumb HTTP/2 client over a raw socket, for abuse tests that well-behaved
clients (grpcio) cannot produce: truncated frames, pings in a flood, thousands of streams
opened at once, a client that never reads.

HPACK: headers are sent as literals without indexing (no Huffman), which every decoder
must accept; response header blocks are not decoded.
"""
import socket
import struct

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4


def frame(ftype, flags, stream_id, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream_id) + payload


def _hpack_int(value, prefix_bits, first_byte=0):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first_byte | value])
    out = [first_byte | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def header_block(headers):
    out = b""
    for name, value in headers:
        name, value = name.encode(), value.encode()
        out += b"\x00" + _hpack_int(len(name), 7) + name + _hpack_int(len(value), 7) + value
    return out


def grpc_request_headers(path, authority="localhost"):
    return header_block([
        (":method", "POST"), (":scheme", "http"), (":path", path), (":authority", authority),
        ("content-type", "application/grpc"), ("te", "trailers"),
    ])


def grpc_message(payload: bytes) -> bytes:
    return b"\x00" + struct.pack(">I", len(payload)) + payload


class RawH2:
    def __init__(self, port, window=65535, connection_window_increment=0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        settings = b""
        if window != 65535:
            settings = struct.pack(">HI", 4, window)
        out = PREFACE + frame(SETTINGS, 0, 0, settings)
        if connection_window_increment:
            out += frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", connection_window_increment))
        self.sock.sendall(out)

    def send(self, data):
        self.sock.sendall(data)

    def request(self, stream_id, path, body=None, end_stream=True):
        flags = END_HEADERS | (END_STREAM if body is None and end_stream else 0)
        out = frame(HEADERS, flags, stream_id, grpc_request_headers(path))
        if body is not None:
            out += frame(DATA, END_STREAM if end_stream else 0, stream_id, body)
        return out

    def read_frame(self):
        """Returns (type, flags, stream_id, payload) or None at EOF."""
        while len(self.buf) < 9:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        length = struct.unpack(">I", b"\x00" + self.buf[:3])[0]
        while len(self.buf) < 9 + length:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        ftype, flags = self.buf[3], self.buf[4]
        stream_id = struct.unpack(">I", self.buf[5:9])[0] & 0x7FFFFFFF
        payload = self.buf[9:9 + length]
        self.buf = self.buf[9 + length:]
        return ftype, flags, stream_id, payload

    def frames_until(self, predicate, limit=100000):
        seen = []
        for _ in range(limit):
            f = self.read_frame()
            if f is None:
                return seen, None
            seen.append(f)
            if predicate(f):
                return seen, f
        return seen, None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
