#!/usr/bin/env bash
# Keeps the documentation true (issue 22). Fails when
#   1. a flag named in README.md or docs/ (`--flag`, or `ETCD_FLAG` there and in contrib/) is not
#      in `rusd --help` (flags of other tools the docs mention are listed in FOREIGN_FLAGS below);
#   2. a relative link in any Markdown file of the repository points to a missing file, or to a
#      missing heading of a Markdown file;
#   3. a metric named in contrib/prometheus/rusd-alerts.yml, README.md or docs/operations.md is not on
#      the /metrics of a running rusd, or a number of the README's benchmark table is not in the
#      report its row names;
#   4. the README's tour (the code block between <!-- tour --> and <!-- /tour -->) does not run
#      against a fresh rusd started here on a free loopback port in a temporary data dir
#      (127.0.0.1:2379 in the tour is replaced by that port);
#   5. contrib/systemd/rusd.service does not pass `systemd-analyze verify`, or the alert rules do
#      not pass `promtool check rules` and their unit tests (each when installed).
# Usage: scripts/check-docs.sh            (RUSD_BIN, default .build/release/rusd)
# Takes a few seconds. scripts/test.sh runs it after the build.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== docs check (flags, links, metrics, README tour, systemd unit)"

RUSD="${RUSD_BIN:-.build/release/rusd}"
case "$RUSD" in /*) ;; *) RUSD="$PWD/$RUSD" ;; esac
[ -x "$RUSD" ] || { echo "check-docs: no rusd binary at $RUSD (build first)" >&2; exit 1; }
for tool in etcdctl curl python3; do
  command -v "$tool" >/dev/null || { echo "check-docs: $tool not found (etcdctl: scripts/install-deps.sh; curl, python3: apt-get install)" >&2; exit 1; }
done

# Flags of other tools that README.md and docs/ name (etcdctl, kube-apiserver, curl, swift,
# rusd-compare, useradd, setpriv...; and etcd flags that rusd does not accept, named as such). A rusd flag
# must never be listed here.
FOREIGN_FLAGS="endpoints rev lease prefix keys-only physical cacert cert key dest-insecure-transport
dest-cacert dest-cert dest-key dest-prefix no-dest-prefix command-timeout write-out
etcd-servers etcd-cafile etcd-certfile etcd-keyfile etcd-prefix etcd-compaction-interval
product build-tests skip-build show-bin-path filter scratch-path python quick rounds workloads
engines sync-puts gets system home-dir shell now check
dial-timeout insecure-skip-tls-verify insecure-transport user password hex from-key limit order
sort-by print-value-only consistency prev-kv ignore-value ignore-lease interactive keepalive-time
keepalive-timeout debug cluster watch-cache watch-cache-sizes storage-backend feature-gates
etcd-servers-overrides etcd-healthcheck-timeout etcd-db-metric-poll-interval
encryption-provider-config fail silent max-time data
heartbeat-interval election-timeout enable-v2 peer-cert-file peer-key-file
peer-trusted-ca-file peer-client-cert-auth reuid regid clear-groups bounding-set inh-caps
ambient-caps no-new-privs clusters compare-local-fsync"

work="$(mktemp -d "${TMPDIR:-/tmp}/rusd-check-docs.XXXXXX")"
rusd_pid=""
cleanup() {
  if [ -n "$rusd_pid" ]; then kill "$rusd_pid" 2>/dev/null || true; wait "$rusd_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

"$RUSD" --help > "$work/help.txt"

# A fresh rusd for the metrics and the tour.
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
"$RUSD" --data-dir "$work/data" --listen-client-urls "http://127.0.0.1:$port" \
        --advertise-client-urls "http://127.0.0.1:$port" --log-level warn 2> "$work/rusd.log" &
rusd_pid=$!
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  kill -0 "$rusd_pid" 2>/dev/null || { echo "check-docs: rusd exited:" >&2; cat "$work/rusd.log" >&2; exit 1; }
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/metrics" > "$work/metrics.txt"

failed=0
FOREIGN_FLAGS="$FOREIGN_FLAGS" python3 - "$work/help.txt" "$work/metrics.txt" <<'PY' || failed=1
import os, re, subprocess, sys, urllib.parse

help_text = open(sys.argv[1]).read()
rusd_flags = set(re.findall(r"^  --([a-z0-9-]+)", help_text, re.M))
foreign = set(os.environ["FOREIGN_FLAGS"].split())
metrics_text = open(sys.argv[2]).read()
exported = set()
for line in metrics_text.splitlines():
    m = re.match(r"# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) ", line) or re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", line)
    if m:
        exported.add(m.group(1))
errors = []
for flag in sorted(foreign & rusd_flags):
    errors.append(f"scripts/check-docs.sh: --{flag} is a rusd flag: remove it from FOREIGN_FLAGS")

def files(*patterns):
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "--", *patterns],
                         capture_output=True, text=True, check=True).stdout.split("\n")
    return sorted(f for f in out if f and os.path.isfile(f)
                  and not f.startswith((".build", ".venv")) and "/.build" not in f)

def strip_code(text):
    """Markdown without fenced blocks and inline code (for links), lines kept in place."""
    out, fenced = [], False
    for line in text.split("\n"):
        if re.match(r"\s*(```|~~~)", line):
            fenced = not fenced
            out.append("")
            continue
        out.append("" if fenced else re.sub(r"`[^`]*`", "", line))
    return out

doc_files = [f for f in files("README.md", "docs") if f.endswith(".md")]

# 1. flags
for path in doc_files:
    for n, line in enumerate(open(path).read().split("\n"), 1):
        for flag in re.findall(r"(?<![\w-])--([a-z][a-z0-9-]*[a-z0-9])(?![\w*-])", line):
            if flag not in rusd_flags and flag not in foreign:
                errors.append(f"{path}:{n}: flag --{flag} is not in `rusd --help` "
                              "(if it belongs to another tool, add it to FOREIGN_FLAGS in scripts/check-docs.sh)")
for path in doc_files + files("contrib"):
    for n, line in enumerate(open(path).read().split("\n"), 1):
        for var in re.findall(r"\bETCD_([A-Z0-9_]+)\b", line):
            flag = var.lower().replace("_", "-")
            if flag not in rusd_flags:
                errors.append(f"{path}:{n}: ETCD_{var} names no rusd flag (--{flag} is not in `rusd --help`)")
undocumented = sorted(f for f in rusd_flags if f"`--{f}" not in open("docs/compatibility.md").read())
if undocumented:
    print("check-docs: warning: flags in `rusd --help` that docs/compatibility.md does not name: "
          + ", ".join("--" + f for f in undocumented))

# 2. links (and their headings) in every Markdown file
def slugs(path):
    seen, out = {}, set()
    for line in strip_code_keep_headings(open(path).read()):
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", m.group(1)).replace("`", "")
        slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
        k = seen.get(slug, 0)
        seen[slug] = k + 1
        out.add(slug if k == 0 else f"{slug}-{k}")
    return out

def strip_code_keep_headings(text):
    out, fenced = [], False
    for line in text.split("\n"):
        if re.match(r"\s*(```|~~~)", line):
            fenced = not fenced
            continue
        if not fenced:
            out.append(line)
    return out

slug_cache = {}
for path in [f for f in files() if f.endswith(".md")]:
    for n, line in enumerate(strip_code(open(path).read()), 1):
        for target in re.findall(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", line):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):
                continue  # http:, https:, mailto:
            file_part, _, anchor = target.partition("#")
            file_part = urllib.parse.unquote(file_part.split("?")[0])
            if file_part:
                resolved = os.path.normpath(file_part.lstrip("/") if file_part.startswith("/")
                                            else os.path.join(os.path.dirname(path), file_part))
            else:
                resolved = path
            if not os.path.exists(resolved):
                errors.append(f"{path}:{n}: link to missing file {target}")
                continue
            if anchor and resolved.endswith(".md"):
                if resolved not in slug_cache:
                    slug_cache[resolved] = slugs(resolved)
                if anchor.lower() not in slug_cache[resolved]:
                    errors.append(f"{path}:{n}: link to missing heading {target}")

# 3. metrics: the alert rules and the pages that tell operators what to watch name only metrics
# rusd exports (docs/metrics.md and compatibility.md also name etcd's, to say rusd lacks them).
metric_re = re.compile(r"\b((?:etcd|rusd|grpc_server|process)_[a-z0-9_]+)\b")
for path in ["contrib/prometheus/rusd-alerts.yml", "README.md", "docs/operations.md"]:
    if not os.path.exists(path):
        continue
    for n, line in enumerate(open(path).read().split("\n"), 1):
        for name in metric_re.findall(line):
            if name not in exported:
                errors.append(f"{path}:{n}: metric {name} is not on rusd's /metrics")

# 3b. the README's benchmark numbers: every row of a table whose last column names a report by
# its letter (legend lines "- **F** — ... [reports/X.md](reports/X.md)") must hold only numbers
# found in that report (at the README's precision: 22.7 matches 22.68).
readme = open("README.md").read()
legend = dict(re.findall(r"^- \*\*([A-Z])\*\* .*?\]\((reports/[^)]+\.md)\)", readme, re.M | re.S))
report_numbers = {}
checked_cells = 0
for n, line in enumerate(readme.split("\n"), 1):
    cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
    if len(cells) < 3 or cells[-1] not in legend:
        continue
    report = legend[cells[-1]]
    if report not in report_numbers:
        if not os.path.exists(report):
            errors.append(f"README.md:{n}: report {report} (row marked {cells[-1]}) is missing")
            report_numbers[report] = []
            continue
        report_numbers[report] = [float(x.replace(",", "")) for x in re.findall(r"\d[\d,]*(?:\.\d+)?", open(report).read())]
    for cell in cells[1:-1]:
        for text in re.findall(r"\d[\d,]*(?:\.\d+)?", cell):
            checked_cells += 1
            value = float(text.replace(",", ""))
            places = len(text.split(".")[1]) if "." in text else 0
            if not any(abs(round(r, places) - value) < 1e-9 for r in report_numbers[report]):
                errors.append(f"README.md:{n}: {text} ({cells[0]}) is not a number of {report}")
if checked_cells == 0:
    errors.append("README.md: no benchmark row names its report (legend '- **F** — ... (reports/X.md)' and a last column 'F')")

for e in errors:
    print("check-docs: " + e, file=sys.stderr)
print(f"check-docs: {len(doc_files)} docs, {len(rusd_flags)} rusd flags, {len(exported)} metric names, {checked_cells} README numbers against their reports: "
      + ("ok" if not errors else f"{len(errors)} problem(s)"))
sys.exit(1 if errors else 0)
PY

# 4. the README tour
python3 - README.md "$port" > "$work/tour.sh" <<'PY' || { echo "check-docs: README.md has no <!-- tour --> ... <!-- /tour --> code block" >&2; exit 1; }
import re, sys
text = open(sys.argv[1]).read()
m = re.search(r"<!-- tour -->\s*```[a-z]*\n(.*?)```\s*<!-- /tour -->", text, re.S)
if not m:
    sys.exit(1)
print(m.group(1).replace("127.0.0.1:2379", "127.0.0.1:" + sys.argv[2]))
PY
if (cd "$work" && PATH="$(dirname "$RUSD"):$PATH" bash -euo pipefail tour.sh) > "$work/tour.out" 2>&1; then
  echo "check-docs: README tour ran against rusd on 127.0.0.1:$port ($(grep -c . "$work/tour.sh") lines): ok"
else
  echo "check-docs: README tour failed (run against rusd on 127.0.0.1:$port):" >&2
  sed 's/^/  | /' "$work/tour.sh" >&2
  echo "  output:" >&2
  sed 's/^/  > /' "$work/tour.out" >&2
  failed=1
fi
kill "$rusd_pid"; wait "$rusd_pid" 2>/dev/null || true; rusd_pid=""

# 5. the systemd unit
if command -v systemd-analyze >/dev/null; then
  sed "s#/usr/local/bin/rusd#$RUSD#" contrib/systemd/rusd.service > "$work/rusd.service"
  # Fails on an error, or on any warning about our unit (warnings about other units of the
  # machine that systemd loads along are not ours to fix).
  if out="$(systemd-analyze verify "$work/rusd.service" 2>&1)" && ! grep -q "rusd.service" <<< "$out"; then
    echo "check-docs: systemd-analyze verify contrib/systemd/rusd.service: ok"
  else
    echo "check-docs: systemd-analyze verify contrib/systemd/rusd.service: $out" >&2
    failed=1
  fi
else
  echo "check-docs: systemd-analyze not installed; unit not verified"
fi
if command -v promtool >/dev/null; then
  if out="$(promtool check rules contrib/prometheus/rusd-alerts.yml 2>&1 && promtool test rules contrib/prometheus/rusd-alerts.test.yml 2>&1)"; then
    echo "check-docs: promtool check + test rules contrib/prometheus/rusd-alerts.yml: ok"
  else
    echo "check-docs: promtool on contrib/prometheus/rusd-alerts.yml:" >&2; echo "$out" >&2
    failed=1
  fi
else
  echo "check-docs: promtool not installed (Debian: prometheus); alert rules checked for metric names only"
fi

exit "$failed"
