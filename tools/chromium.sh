#!/usr/bin/env bash
# Prints the path of Debian's Chromium, installing the package first (as root) when it is
# missing. The documentation test (tests/api_docs.rs) renders /docs in it, headless.
set -euo pipefail
exec 9>/tmp/trellis-chromium-install.lock
flock 9
if ! command -v chromium >/dev/null 2>&1; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "error: Chromium is missing; as root: apt-get install -y chromium" >&2
    exit 1
  fi
  echo "==> installing Debian's chromium" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq chromium >/dev/null
fi
command -v chromium
