#!/usr/bin/env python3
"""Writes the seed corpus of the `connection` fuzz target (Tests/FuzzCorpus/connection/seed-*).

Input format (Tests/Fuzz/ServerTargets/ConnectionTarget.swift): a flags byte (bit 0: the client
reads after each write; bit 1: the connection is held unwritable), three split bytes, then
the client's bytes. Frames come from Tests/compat/transport_h2raw.py; the attack shapes are
small versions of Tests/compat/abuse_attacks.py's.
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "Tests", "compat"))
import transport_h2raw as h2  # noqa: E402

OUT = os.path.join(HERE, "..", "Tests", "FuzzCorpus", "connection")
CONTINUATION, PRIORITY = 9, 2


def pb_bytes(field, value):
    return bytes([field << 3 | 2, len(value)]) + value


def pb_varint(field, value):
    out = bytes([field << 3])
    while value >= 0x80:
        out += bytes([value & 0x7F | 0x80])
        value >>= 7
    return out + bytes([value])


def call(sid, path, message, end=True):
    return (h2.frame(h2.HEADERS, h2.END_HEADERS, sid, h2.grpc_request_headers(path))
            + h2.frame(h2.DATA, h2.END_STREAM if end else 0, sid, h2.grpc_message(message)))


HANDSHAKE = h2.PREFACE + h2.frame(h2.SETTINGS, 0, 0) + h2.frame(h2.SETTINGS, h2.ACK, 0)
PUT = pb_bytes(1, b"foo") + pb_bytes(2, b"bar")
RANGE = pb_bytes(1, b"foo")
TXN = pb_bytes(2, b"\x0a" + bytes([len(PUT) + 2]) + b"\x12" + bytes([len(PUT)]) + PUT)  # success: [put]


def http1(method, path, body=b""):
    head = f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


SEEDS = {
    "range": (1, HANDSHAKE + call(1, "/etcdserverpb.KV/Range", RANGE)),
    "put-range": (1, HANDSHAKE + call(1, "/etcdserverpb.KV/Put", PUT) + call(3, "/etcdserverpb.KV/Range", RANGE)),
    "txn-lease": (1, HANDSHAKE + call(1, "/etcdserverpb.KV/Txn", TXN)
                  + call(3, "/etcdserverpb.Lease/LeaseGrant", pb_varint(1, 60))
                  + call(5, "/etcdserverpb.Lease/LeaseKeepAlive", pb_varint(1, 1), end=False)
                  + call(7, "/etcdserverpb.Cluster/MemberList", b"")
                  + call(9, "/grpc.health.v1.Health/Check", b"")),
    "unknown-method": (1, HANDSHAKE + call(1, "/etcdserverpb.KV/Nope", b"") + call(3, "nopath", b"")),
    "zero-window": (0, h2.PREFACE + h2.frame(h2.SETTINGS, 0, 0, struct.pack(">HI", 4, 0))
                    + call(1, "/etcdserverpb.KV/Put", PUT) + call(3, "/etcdserverpb.KV/Range", RANGE)),
    "unwritable": (2, HANDSHAKE + b"".join(call(1 + 2 * i, "/etcdserverpb.KV/Range", RANGE) for i in range(8))),
    "rapid-reset": (1, HANDSHAKE + b"".join(call(1 + 2 * i, "/etcdserverpb.KV/Range", RANGE)
                                            + h2.frame(h2.RST_STREAM, 0, 1 + 2 * i, struct.pack(">I", 8))
                                            for i in range(6))),
    "continuation": (1, HANDSHAKE + h2.frame(h2.HEADERS, 0, 1, h2.grpc_request_headers("/etcdserverpb.KV/Range"))
                     + h2.frame(CONTINUATION, 0, 1, h2.header_block([("x-c", "c" * 40)])) * 4),
    "hpack-bomb": (1, HANDSHAKE + h2.frame(h2.HEADERS, h2.END_HEADERS, 1, h2.grpc_request_headers("/etcdserverpb.KV/Range")
                   + b"\x40" + h2._hpack_int(6, 7) + b"x-bomb" + h2._hpack_int(400, 7) + b"b" * 400 + b"\xbe" * 200)),
    "floods": (1, HANDSHAKE + h2.frame(h2.PING, 0, 0, b"12345678") * 3 + h2.frame(h2.SETTINGS, 0, 0) * 3
               + h2.frame(h2.WINDOW_UPDATE, 0, 0, struct.pack(">I", 1)) * 3
               + h2.frame(PRIORITY, 0, 3, struct.pack(">IB", 0, 15)) * 3
               + h2.frame(h2.HEADERS, h2.END_HEADERS, 5, h2.grpc_request_headers("/etcdserverpb.KV/Range"))
               + h2.frame(h2.DATA, 0, 5) * 3),
    "slowloris-preface": (0, h2.PREFACE[:12]),
    "slowloris-frame": (0, h2.PREFACE + h2.frame(h2.SETTINGS, 0, 0)[:5]),
    "http1-gateway": (1, http1("POST", "/v3/kv/put", b'{"key":"Zm9v","value":"YmFy"}')
                      + http1("POST", "/v3/kv/range", b'{"key":"Zm9v"}')),
    "http1-endpoints": (1, http1("GET", "/health") + http1("GET", "/version") + http1("GET", "/metrics")),
    "http1-partial": (0, b"POST /v3/kv/range HTTP/1.1\r\nHost: localhost\r\nContent-Le"),
    "http1-garbage": (1, b"GET / HTTP/1.1\r\nHost: \x00\x01\r\n\r\n"),
}

for name, (flags, data) in SEEDS.items():
    n = len(data)
    cuts = bytes([64, 128, 192]) if n > 32 else bytes([255, 255, 255])
    with open(os.path.join(OUT, "seed-" + name), "wb") as f:
        f.write(bytes([flags]) + cuts + data)
print(f"{len(SEEDS)} seeds in {OUT}")
