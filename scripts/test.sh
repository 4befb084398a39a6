#!/usr/bin/env bash
# The whole test suite: Swift unit, conformance and crash tests, then the Python suites
# (independent gRPC clients, etcdctl, differential tests against a real etcd started here).
# One optimized build serves both: tests run against the same binaries users run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --python

BUILD_FLAGS=(-c release -Xswiftc -enable-testing)
echo "== swift build (release, with tests)"
swift build "${BUILD_FLAGS[@]}" --build-tests
RUSD_BIN="$(swift build "${BUILD_FLAGS[@]}" --show-bin-path)/rusd" scripts/check-docs.sh   # docs: flags, links, metrics, README tour

echo "== swift test"
swift test "${BUILD_FLAGS[@]}" --skip-build
scripts/fuzz.sh --ci  # libFuzzer on the file-format targets, fixed seed and executions (Tests/FuzzCorpus/README.md)

echo "== python suites (grpcio, etcdctl, differential against etcd)"
BIN="$(swift build "${BUILD_FLAGS[@]}" --show-bin-path)"
export RUSD_BIN="$BIN/rusd" GRPC_TEST_SERVER="$BIN/grpc-test-server"
export RUSD_ENGINES="${RUSD_ENGINES:-lmdb leveldb lsm}"
.venv/bin/python -m pytest -q -p no:cacheprovider Tests/compat
# The lab engines (rocksdb, sqlite): the suites whose answers depend on the engine (KV, watch,
# lease, random operations against etcd, kill -9, restart, etcdctl, snapshots, maintenance,
# quota); the transport, auth, gateway and abuse suites above do not (about 4 minutes).
echo "== python suites on the lab engines"
RUSD_ENGINES="${RUSD_LAB_ENGINES:-rocksdb sqlite}" .venv/bin/python -m pytest -q -p no:cacheprovider \
    $(printf 'Tests/compat/test_%s.py ' kv_put_delete kv_range kv_txn watch watch_rusd lease random_ops \
        crash_durability restart etcdctl kubernetes_shapes maintenance defrag_rusd nospace quota_rusd \
        unsafe_no_fsync_rusd snapshot_etcd snapshot_rusd)
