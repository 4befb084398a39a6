#!/usr/bin/env bash
# Builds rusd and rusd-compare (release) and runs the side-by-side comparison of every rusd
# engine and etcd, writing reports/YYYY-MM-DD-<host>.{md,json} and charts.
#   scripts/bench-compare.sh                 full run (3 rounds; takes a long while)
#   scripts/bench-compare.sh --quick         one-minute smoke run
#   scripts/bench-compare.sh --workloads put,k8s-scenarios --rounds 5
# Any argument is passed to `rusd-compare run`. Run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product rusd
swift build -c release --product rusd-compare
bin="$(swift build -c release --show-bin-path)"
exec "$bin/rusd-compare" run --rusd "$bin/rusd" --out reports "$@"
