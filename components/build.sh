#!/usr/bin/env bash
# Builds every guest component for wasm32-wasip2 and copies them into dist/:
#   dist/NAME.wasm          the components `make run` serves (crates directly under components/)
#   dist/testing/NAME.wasm  components that exist only for tests (crates under components/testing/)
#
# It uses rustup's wasm32-wasip2 target when installed; otherwise Debian's Rust (rustc-web) building
# std from source, installing Debian's packages itself when run as root (see ../shared/TOOLCHAIN.md).
# With TRELLIS_NO_INSTALL=1 (how `cargo test` runs it) it installs nothing and says what is missing.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
dist="$root/dist"
target=wasm32-wasip2
debian_packages=(rustc-web cargo-web rust-web-src rust-web-llvm lld-16 wasi-libc)

rustup_target=false
if command -v rustup >/dev/null 2>&1 && rustup target list --installed 2>/dev/null | grep -qx "$target"; then
  rustup_target=true
fi

debian_toolchain_ready() {
  [[ -x /usr/bin/cargo && -x /usr/bin/rustc && -d /usr/lib/rustlib/src/rust/library \
     && -x /usr/lib/llvm-16/bin/wasm-ld && -f /usr/lib/wasm32-wasi/libc.a ]] \
    && /usr/bin/rustc --version | grep -q '^rustc 1\.\(9[6-9]\|[1-9][0-9][0-9]\)'
}

install_debian_toolchain() {
  if [[ ${TRELLIS_NO_INSTALL:-} == 1 ]]; then
    echo "error: no wasm32-wasip2 Rust toolchain found. Either:" >&2
    echo "  rustup target add $target" >&2
    echo "  or run \`make test\` (as root it installs Debian's: apt-get install -y ${debian_packages[*]})" >&2
    exit 1
  fi
  if [[ $(id -u) -ne 0 ]]; then
    echo "error: no wasm32-wasip2 Rust target found, and not root so cannot install Debian's." >&2
    echo "  either: rustup target add $target" >&2
    echo "  or, as root: apt-get install -y ${debian_packages[*]}" >&2
    exit 1
  fi
  echo "==> installing Debian's Rust toolchain for $target: ${debian_packages[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${debian_packages[@]}" >/dev/null
}

# `cargo build` for the wasm target with whichever toolchain this machine has.
wasm_build() {
  if $rustup_target; then
    cargo build --release --target "$target" "$@"
  else
    PATH=/usr/bin:/usr/lib/llvm-16/bin:$PATH RUSTC_BOOTSTRAP=1 RUSTFLAGS="-L /usr/lib/wasm32-wasi" \
      /usr/bin/cargo build --release --target "$target" -Zbuild-std=std,panic_abort "$@"
  fi
}

cd "$here"
if ! $rustup_target; then
  debian_toolchain_ready || install_debian_toolchain
  debian_toolchain_ready || { echo "error: Debian's Rust toolchain for $target is still incomplete" >&2; exit 1; }
fi
out="$here/target/$target/release"
mkdir -p "$dist/testing"
# Copy then rename so a running host watching dist/ never sees a half-written file; an
# unchanged file is left alone, so its time stamp says when it last changed.
install_wasm() {
  cmp -s "$1" "$2" || { cp "$1" "$2.tmp" && mv -f "$2.tmp" "$2"; }
}

# Test-only builds of a crate with a feature on (PACKAGE:SOURCE-DIR:FEATURE:OUTPUT): the user
# service's successor (`next`) and one with crash points after its write, before its answer
# (`crash-points`); the events test component's fixed successor (`fixed`). Built first, and only
# when their sources changed (each switch of features recompiles the crate), so that the full
# build below leaves the regular builds in target/.
for variant in user-service:user-service:next:user-service-next \
  user-service:user-service:crash-points:user-service-crash events:testing/events:fixed:events-fixed; do
  IFS=: read -r package source feature output <<<"$variant"
  built="$dist/testing/$output.wasm"
  if [[ ! -f $built ]] || [[ -n $(find "$source" service-kit guest-http Cargo.lock ../wit -newer "$built" \
    -not -path '*/target/*' -print -quit) ]]; then
    wasm_build -p "$package" --features "$feature"
    install_wasm "$out/${package//-/_}.wasm" "$built"
    touch "$built"
  fi
done
wasm_build

# Copy each cdylib member to dist/, named after its crate (its package name).
for manifest in */Cargo.toml testing/*/Cargo.toml; do
  dir=$(dirname "$manifest")
  grep -q 'cdylib' "$manifest" || continue
  name=$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$manifest" | head -n1)
  dest="$dist"
  [[ $dir == testing/* ]] && dest="$dist/testing"
  src="$out/${name//-/_}.wasm"
  [[ -f $src ]] || { echo "error: $src was not built" >&2; exit 1; }
  install_wasm "$src" "$dest/$name.wasm"
done
# The Python guest (a large component embedding CPython), built by componentize-py: a test
# needs it, so a build that cannot make it fails and says why.
componentize_py_version=0.25.1
python_guest="$here/testing/python-hello"
python_out="$dist/testing/python-hello.wasm"
if [[ ! -f $python_out || "$python_guest/app.py" -nt $python_out ]]; then
  if ! command -v componentize-py >/dev/null 2>&1 && [[ ${TRELLIS_NO_INSTALL:-} != 1 ]]; then
    echo "==> installing componentize-py $componentize_py_version with pip"
    python3 -m pip install -q "componentize-py==$componentize_py_version" \
      || echo "error: pip could not install componentize-py $componentize_py_version" >&2
  fi
  if ! command -v componentize-py >/dev/null 2>&1; then
    echo "error: componentize-py is missing, so the Python test guest ($python_out) cannot be built." >&2
    echo "  install it: python3 -m pip install componentize-py==$componentize_py_version (or run \`make test\`)" >&2
    exit 1
  fi
  # The standard WASI WIT, as shipped in the `wasip2` crate the Rust guests already use.
  wasi_wit=$(cargo metadata --format-version 1 --offline | python3 -c '
import json, os, sys
crates = [p for p in json.load(sys.stdin)["packages"] if p["name"] == "wasip2"]
newest = max(crates, key=lambda p: [int(n) for n in p["version"].split("+")[0].split(".")])
print(os.path.join(os.path.dirname(newest["manifest_path"]), "wit"))')
  (cd "$python_guest" && componentize-py -d "$wasi_wit" -w wasi:http/proxy@0.2.12 componentize app \
    -o "$python_out.tmp" >/dev/null)
  mv -f "$python_out.tmp" "$python_out"
fi

echo "==> components in $dist: $(cd "$dist" && ls *.wasm | tr "\n" " ")"
echo "==> test components in $dist/testing: $(cd "$dist/testing" && ls *.wasm | tr "\n" " ")"
