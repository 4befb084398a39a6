#!/usr/bin/env python3
"""A stand-in for the rusd executable that runs a real etcd: RUSD_BIN=Tests/compat/etcd_as_rusd.py
exercises the suite's rusd code path (flags, --engine, start-up, teardown) and must report
no difference. Accepts rusd's flags used by the suite; --engine is ignored."""
import argparse
import os
import socket
import sys

parser = argparse.ArgumentParser()
parser.add_argument("--engine", default="lmdb")
parser.add_argument("--name", default="default")
parser.add_argument("--data-dir", required=True)
parser.add_argument("--listen-client-urls", required=True)
parser.add_argument("--advertise-client-urls", required=True)
args, extra = parser.parse_known_args()

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    peer = f"http://127.0.0.1:{s.getsockname()[1]}"
os.execvp("etcd", ["etcd", "--name", args.name, "--data-dir", args.data_dir,
                   "--listen-client-urls", args.listen_client_urls,
                   "--advertise-client-urls", args.advertise_client_urls,
                   "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                   "--initial-cluster", f"{args.name}={peer}", *extra])
