#!/usr/bin/env bash
# Regenerates Sources/Server/rusd/link-order.txt: the symbols rusd touches when it starts and
# serves the common RPCs on each engine, in first-touch order. Package.swift hands the file to
# lld (--symbol-ordering-file), which places those functions and data first, so that what a
# running rusd touches shares pages: -3 MiB of resident memory (README, "Memory and binary").
#
# Needs perf (linux-perf), the Python venv of the compatibility suite (.venv, or set PYTHON) and
# a release build; each round relinks rusd with the order so far and profiles it again (see
# scripts/rusd_link_order.py). Names that no longer exist are skipped by the linker, so a stale
# file costs memory, never correctness: rerun after large changes to the server or dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
ROUNDS="${ROUNDS:-6}"
ENGINES="${ENGINES:-lmdb leveldb lsm}"
order="Sources/Server/rusd/link-order.txt"

: > "$order"
for round in $(seq 1 "$ROUNDS"); do
    # SwiftPM does not know the order file is an input of the link: remove the binary to relink.
    rm -f "$(swift build -c release --show-bin-path)/rusd"
    swift build -c release --product rusd 2>&1 | grep -v "warning: the use of .mktemp" | tail -1
    echo "== round $round"
    # shellcheck disable=SC2086
    "$PYTHON" scripts/rusd_link_order.py "$(swift build -c release --show-bin-path)/rusd" "$order" $ENGINES
done
rm -f "$(swift build -c release --show-bin-path)/rusd"
swift build -c release --product rusd 2>&1 | grep -v "warning: the use of .mktemp" | tail -1
echo "wrote $order ($(wc -l < "$order") symbols)"
