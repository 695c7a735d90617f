#!/usr/bin/env bash
# Builds the shop's components as they were at an earlier commit (default: fc18f86, before the
# services kept indexes), into bench/work/previous/<commit>/dist, once: what `bench/src/writes.rs`
# measures today's services against. The host is today's in both cases.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
commit=${1:-fc18f86}
tree="$here/work/previous/$commit"
if [[ -f "$tree/dist/order-service.wasm" ]]; then
  exit 0
fi
echo "==> building the components of $commit into $tree/dist (once)"
rm -rf "$tree"
mkdir -p "$tree"
git -C "$root" archive "$commit" components wit | tar -x -C "$tree"
# The earlier build script builds the test components too: only the shop is needed.
"$tree/components/build.sh" >/dev/null
