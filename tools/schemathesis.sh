#!/usr/bin/env bash
# Installs schemathesis and openapi-spec-validator (from PyPI, into a virtualenv at
# .tools/schemathesis of this checkout, nothing system-wide), once, and prints the folder of
# their commands. The API documentation tests (tests/api_docs.rs) validate a host's
# /openapi.json with the one and fuzz the API it describes with the other.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=4.32.5
validator=0.9.0
dir="$root/.tools/schemathesis"
# Tests running side by side call this at once: one installs, the others wait for it.
mkdir -p "$root/.tools"
exec 9>"$root/.tools/schemathesis.lock"
flock 9
if [[ ! -x "$dir/bin/openapi-spec-validator" ]] || ! "$dir/bin/st" --version 2>/dev/null | grep -q "$version"; then
  echo "==> installing schemathesis $version and openapi-spec-validator $validator (PyPI) into the virtualenv $dir" >&2
  rm -rf "$dir"
  python3 -m venv "$dir"
  "$dir/bin/python" -m pip install -q --disable-pip-version-check "schemathesis==$version" \
    "openapi-spec-validator==$validator" >&2
fi
echo "$dir/bin"
