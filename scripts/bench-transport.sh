#!/usr/bin/env bash
# Side-by-side h2load benchmark of the gRPC transport (grpc-test-server's trivial Echo/Unary
# handler) against etcd 3.4's KV.Range on one key, in the same run, at c=1, c=16, c=64 (m=4).
#
#   scripts/bench-transport.sh [requests-per-setting]   (default 50000)
#
# Needs etcd, etcdctl, h2load. Builds grpc-test-server in release mode (GRPC_TEST_SERVER
# overrides the binary). Prints a Markdown table: throughput from h2load, server CPU per
# request from /proc/PID/stat (utime+stime), and RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-50000}"
THREADS="${THREADS:-2}"
for tool in etcd etcdctl h2load; do
  command -v "$tool" >/dev/null || { echo "bench-transport: $tool not installed" >&2; exit 1; }
done
if [[ -z "${GRPC_TEST_SERVER:-}" ]]; then
  swift build -c release --product grpc-test-server >&2
  GRPC_TEST_SERVER="$(swift build -c release --show-bin-path)/grpc-test-server"
fi

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# etcd on random loopback ports with a temp data dir.
client_port=$(free_port); peer_port=$(free_port)
GOMAXPROCS="$THREADS" etcd --name bench --data-dir "$work/etcd" \
  --listen-client-urls "http://127.0.0.1:$client_port" --advertise-client-urls "http://127.0.0.1:$client_port" \
  --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-cluster "bench=http://127.0.0.1:$peer_port" --log-level error >"$work/etcd.log" 2>&1 &
etcd_pid=$!; pids+=("$etcd_pid")
for _ in $(seq 100); do
  ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:$client_port" put foo bar >/dev/null 2>&1 && break
  sleep 0.1
done

# Our server.
"$GRPC_TEST_SERVER" --listen http://127.0.0.1:0 --threads "$THREADS" >"$work/ours.out" 2>&1 &
ours_pid=$!; pids+=("$ours_pid")
for _ in $(seq 100); do [[ -s "$work/ours.out" ]] && break; sleep 0.1; done
ours_port=$(awk '/^listening/ {print $3; exit}' "$work/ours.out")

# Request bodies: gRPC framing (flag 0, 4-byte length) + protobuf.
# RangeRequest{key: "foo"} and EchoRequest{payload: "foo"} are both 0a 03 66 6f 6f.
printf '\x00\x00\x00\x00\x05\x0a\x03foo' >"$work/body.bin"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hz=$(getconf CLK_TCK)

declare -A rps cpu
run() {  # name pid url conns streams
  local name=$1 pid=$2 url=$3 c=$4 m=$5
  # Warm up, then measure.
  h2load -n 2000 -c "$c" -m "$m" -d "$work/body.bin" -H 'content-type: application/grpc' -H 'te: trailers' "$url" >/dev/null
  local before; before=$(cpu_ticks "$pid")
  local out; out=$(h2load -n "$N" -c "$c" -m "$m" -d "$work/body.bin" \
    -H 'content-type: application/grpc' -H 'te: trailers' "$url")
  local after; after=$(cpu_ticks "$pid")
  if ! grep -q "$N succeeded" <<<"$out"; then
    echo "bench-transport: $name c=$c failed:" >&2; echo "$out" >&2; exit 1
  fi
  rps[$name,$c]=$(awk '/^finished in/ {print $4}' <<<"$out")
  # microseconds of server CPU per request
  cpu[$name,$c]=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$N" 'BEGIN {printf "%.1f", t / hz / n * 1e6}')
}

# Idle RSS: after start and one request (VmRSS from /proc/PID/status).
h2load -n 1 -d "$work/body.bin" -H 'content-type: application/grpc' -H 'te: trailers' \
  "http://127.0.0.1:$ours_port/rusd.transporttest.Echo/Unary" >/dev/null
sleep 0.5
idle_rss_ours=$(rss_kib "$ours_pid")
idle_rss_etcd=$(rss_kib "$etcd_pid")  # etcdctl put above was its request
for c in 1 16 64; do
  run etcd "$etcd_pid" "http://127.0.0.1:$client_port/etcdserverpb.KV/Range" "$c" 4
  run ours "$ours_pid" "http://127.0.0.1:$ours_port/rusd.transporttest.Echo/Unary" "$c" 4
done

echo "h2load -n $N -m 4, $THREADS server threads; CPU = server utime+stime per request"
echo
echo "| setting | etcd KV.Range req/s | transport Echo req/s | throughput ratio | etcd CPU µs/req | transport CPU µs/req | CPU ratio |"
echo "|---|---|---|---|---|---|---|"
for c in 1 16 64; do
  awk -v c="$c" -v er="${rps[etcd,$c]}" -v or="${rps[ours,$c]}" -v ec="${cpu[etcd,$c]}" -v oc="${cpu[ours,$c]}" 'BEGIN {
    printf "| c=%s m=4 | %.0f | %.0f | %.2fx | %.1f | %.1f | %.2fx |\n", c, er, or, or / er, ec, oc, (ec > 0 ? oc / ec : 0) }'
done
echo
echo "RSS idle (after start + one request): transport $((idle_rss_ours / 1024)) MiB ($idle_rss_ours KiB)," \
     "etcd $((idle_rss_etcd / 1024)) MiB ($idle_rss_etcd KiB);" \
     "after the run: transport $(( $(rss_kib "$ours_pid") / 1024 )) MiB, etcd $(( $(rss_kib "$etcd_pid") / 1024 )) MiB"
