#!/usr/bin/env bash
# Installs what rusd needs from Debian (run as root) and the pinned Python test dependencies.
# Idempotent: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(pkg-config liblmdb-dev libleveldb-dev librocksdb-dev libsqlite3-dev libnghttp2-dev protobuf-compiler
              etcd-server etcd-client nghttp2-client lmdb-utils strace
              postgresql-15)   # rusd --shared-log tests (Tests/compat/pg_cluster.py starts its own)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing from Debian: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's etcd-server package may start a system etcd on 2379; our tests use their own ports
# and data dirs, so we leave any such service alone.

if [ "${1:-}" = "--python" ]; then
  if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
  .venv/bin/pip install -q --disable-pip-version-check -r Tests/compat/requirements.txt
fi
