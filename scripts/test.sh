#!/usr/bin/env bash
# The whole test suite: Swift unit/conformance tests, then the Python suites (independent
# gRPC clients, etcdctl, differential tests against a real etcd started here).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --python

echo "== swift build (release: rusd, engine-kill-writer)"
swift build -c release --product rusd
swift build -c release --product engine-kill-writer

echo "== swift test"
swift test

echo "== python suites"
RUSD_BIN="$(swift build -c release --show-bin-path)/rusd" .venv/bin/python -m pytest -q Tests/compat
