#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer) of rusd's own code: the targets in Tests/Fuzz/Targets and
# Tests/Fuzz/ServerTargets, driven by Tests/Fuzz/Main (a package target only when RUSD_FUZZ is
# set). Built with coverage instrumentation and the address sanitizer into .build-fuzz (normal builds are not touched),
# linked with libFuzzer's no-main runtime from the Swift toolchain.
#
#   scripts/fuzz.sh --ci                    the file-format targets (not server-state, connection),
#                                           a fixed number of executions from a fixed seed
#                                           (scripts/test.sh): the same inputs on every machine, so a
#                                           clean checkout that passes here passes in CI
#   scripts/fuzz.sh --long SECONDS [T...]   every (or the named) target for SECONDS each
#   scripts/fuzz.sh --list                  the target names
#
# Why --ci leaves out the two targets that drive an EtcdServer: instrumented, the server's
# modules (EtcdServer, the gRPC transport, swift-nio, swift-crypto's and swift-nio-ssl's
# BoringSSL, ...) are most of the build: on a clean clone here the whole instrumented build took
# 597-721 s, the file-format targets' alone 145 s (and their runs ~70 s; the two server
# targets' runs were ~97 s more). CI still runs every corpus file and
# reproducer of every target, those two included, uninstrumented through `swift test`
# (FuzzReplayTests), where a fixed finding stays fixed; 2,000-2,500 new libFuzzer executions of
# them per CI run (at 20-40 a second on their seeds) found nothing in any run, whereas their
# 15-30 minute campaigns are where their coverage grows. Fewer sanitizers would not help the
# same way: the coverage instrumentation alone still compiles every server module a second time.
# Measured figures: Tests/FuzzCorpus/README.md.
#
# Each target's corpus: Tests/FuzzCorpus/<target>/ (committed seeds and reproducers, read only)
# plus .build-fuzz/corpus/<target>/ (what the runs found, kept between runs, not committed).
# A finding stops with the input saved under .build-fuzz/findings/; fix it, then commit the
# input as Tests/FuzzCorpus/<target>/repro-<what> so that `swift test` replays it.
# Fuzzers run niced (the machine is shared). Several may run at once on different targets: each
# process has its own scratch directory, log (.build-fuzz/<target>.log, --long: <target>.long.log)
# and findings prefix. RUSD_FUZZ_NO_BUILD=1 runs the binary already built (a campaign driving
# several fuzzers then does not rebuild, or fail to, when others edit the sources meanwhile).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=""
case "${1:-}" in
    --ci) shift; export RUSD_FUZZ=files ;;  # the driver without the server (Package.swift)
    --long) seconds="$2"; shift 2 ;;
    --list) ;;
    *) echo "usage: $0 --ci | --long SECONDS [target...] | --list" >&2; exit 2 ;;
esac

toolchain="$(dirname "$(readlink -f "$(command -v swiftc)")")/.."
runtime="$(ls "$toolchain"/lib/clang/*/lib/linux/libclang_rt.fuzzer_no_main-"$(uname -m)".a 2>/dev/null | head -1)"
if [[ -z "$runtime" ]]; then
    echo "fuzz.sh: libclang_rt.fuzzer_no_main not found under $toolchain/lib/clang" >&2
    exit 1
fi

export RUSD_FUZZ="${RUSD_FUZZ:-1}"
# libFuzzer prints the stack of a finding; the Swift backtracer would only add noise under ASan.
export SWIFT_BACKTRACE=enable=no
# Same hash seeds in every process: Set/Dictionary order, and so coverage, repeat from run to run.
export SWIFT_DETERMINISTIC_HASHING=1
start=$(date +%s)
mkdir -p .build-fuzz
if [[ -n "${RUSD_FUZZ_NO_BUILD:-}" ]]; then
    [[ -x .build-fuzz/release/rusd-fuzz ]] || { echo "fuzz.sh: RUSD_FUZZ_NO_BUILD set but no .build-fuzz/release/rusd-fuzz" >&2; exit 1; }
elif ! nice -n 10 swift build -c release --scratch-path .build-fuzz --product rusd-fuzz \
        -Xswiftc -sanitize=address \
        -Xswiftc -sanitize-coverage=edge,inline-8bit-counters,pc-table,trace-cmp \
        -Xlinker "$runtime" -Xlinker -lstdc++ > .build-fuzz/build.log 2>&1; then
    grep -v "Cannot export local symbol" .build-fuzz/build.log | tail -30
    echo "fuzz.sh: build failed (.build-fuzz/build.log)" >&2
    exit 1
fi
bin=.build-fuzz/release/rusd-fuzz
echo "== fuzz build: $(( $(date +%s) - start )) s"

all=$(ls Tests/FuzzCorpus | grep -v README)
if [[ "${1:-}" == "--list" ]]; then echo "$all"; exit 0; fi
built=$(ASAN_OPTIONS=detect_leaks=0 RUSD_FUZZ_LIST=1 "$bin")
targets=("$@")
skipped=()
if [[ ${#targets[@]} -eq 0 ]]; then
    for t in $all; do
        if grep -qx "$t" <<< "$built"; then targets+=("$t"); else skipped+=("$t"); fi
    done
    [[ -z "${skipped[*]:-}" ]] || echo "== not in this build: ${skipped[*]} (replayed by swift test's FuzzReplayTests; fuzzed by --long)"
fi

# Executions per target in --ci: about 10 s each at the rates of earlier --ci runs here (load 6-8;
# Tests/FuzzCorpus/README.md), ~80 s for the eight (was ~30-120 s each). With the same seed a
# shorter run is a prefix of a longer one. The long runs (--long) are where findings come from.
ci_runs() {
    case "$1" in
        lsm-table) echo 25000 ;;
        lsm-block) echo 40000 ;;
        lsm-manifest|lsm-wal|lmdb-wal|bbolt|data-dir-marker) echo 100000 ;;
        *) echo 200000 ;;
    esac
}

mkdir -p .build-fuzz/findings
scratch_base=/tmp; [[ -w /dev/shm ]] && scratch_base=/dev/shm
export RUSD_FUZZ_SCRATCH="$(mktemp -d "$scratch_base/rusd-fuzz-XXXXXX")"
trap 'rm -rf "$RUSD_FUZZ_SCRATCH"' EXIT
status=0
for t in "${targets[@]}"; do
    [[ -d "Tests/FuzzCorpus/$t" ]] || { echo "fuzz.sh: no target $t" >&2; exit 2; }
    grep -qx "$t" <<< "$built" || { echo "fuzz.sh: $t is not in this build (--ci has the file-format targets only)" >&2; exit 2; }
    mkdir -p ".build-fuzz/corpus/$t"
    log=".build-fuzz/$t${seconds:+.long}.log"
    if [[ -n "$seconds" ]]; then
        # Exploration: random seed, the corpus grown by earlier runs.
        echo "== fuzz $t (${seconds} s)"
        corpus=(".build-fuzz/corpus/$t" "Tests/FuzzCorpus/$t")
        limits=(-max_total_time="$seconds")
    else
        # CI: the committed corpus only, seed 1, a fixed count of executions (about 10 s each
        # here; the time cap only guards a much slower machine).
        runs=$(ci_runs "$t")
        echo "== fuzz $t ($runs executions, seed 1)"
        rm -rf ".build-fuzz/ci-corpus/$t" && mkdir -p ".build-fuzz/ci-corpus/$t"
        corpus=(".build-fuzz/ci-corpus/$t" "Tests/FuzzCorpus/$t")
        limits=(-seed=1 -runs="$runs" -max_total_time=300)
    fi
    t0=$(date +%s)
    if RUSD_FUZZ_TARGET="$t" nice -n 10 "$bin" "${corpus[@]}" "${limits[@]}" \
            -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
            -artifact_prefix=".build-fuzz/findings/$t-" > "$log" 2>&1; then
        echo "$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || tail -1 "$log") ($(( $(date +%s) - t0 )) s)"
    else
        status=1
        grep -E "Fatal error|fuzz finding|ERROR: |SUMMARY|Test unit written" "$log" | head -8
        echo "fuzz.sh: $t FAILED (full log: $log)"
    fi
done
exit $status
