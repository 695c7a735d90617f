//! Builds the guest components before the tests compile, as wasmtime's `test-programs`
//! artifacts crate does: `cargo test` then needs no `make` step. Cargo reruns this only when
//! a component's sources, the WIT, the build script or a built file changed; the script itself
//! rebuilds only what is stale. Where the wasm toolchain is missing it fails at once saying
//! how to get it (it installs nothing: `make test` does that).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the repository root");
    let components = root.join("components");
    let wat = components.join("testing/wat");
    for input in inputs(&components).into_iter().chain([root.join("wit"), root.join("dist"), wat.clone()]) {
        println!("cargo:rerun-if-changed={}", input.display());
    }
    // The inner cargo must not inherit this build's settings (target dir, flags, jobserver).
    let mut build = Command::new("bash");
    build.arg(components.join("build.sh")).env_clear().env("TRELLIS_NO_INSTALL", "1");
    for keep in ["PATH", "HOME", "CARGO_HOME", "RUSTUP_HOME", "RUSTUP_TOOLCHAIN", "TMPDIR", "LANG"] {
        if let Some(value) = std::env::var_os(keep) {
            build.env(keep, value);
        }
    }
    let output = build.output().expect("cannot run components/build.sh");
    if !output.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
        panic!(
            "building the guest components failed (components/build.sh, output above). \
             `make test` installs the wasm toolchain and builds them; see ../shared/TOOLCHAIN.md"
        );
    }
    assemble(&wat, &root.join("dist/testing"));
}

/// Assembles the test components written in the component text format (shapes no language
/// toolchain produces on purpose, such as many memories) into `dist/testing/NAME.wasm`.
fn assemble(sources: &Path, dist: &Path) {
    std::fs::create_dir_all(dist).expect("the dist/testing folder");
    for source in std::fs::read_dir(sources).expect("components/testing/wat").flatten().map(|e| e.path()) {
        if source.extension().is_none_or(|e| e != "wat") {
            continue;
        }
        let binary = wat::parse_file(&source).unwrap_or_else(|e| panic!("{}: {e}", source.display()));
        let name = source.file_stem().expect("a file name");
        std::fs::write(dist.join(name).with_extension("wasm"), binary).expect("writing an assembled component");
    }
}

/// What the components are built from: every crate's manifest and sources (not `target/`).
fn inputs(components: &Path) -> Vec<PathBuf> {
    let mut inputs = vec![components.join("Cargo.toml"), components.join("Cargo.lock"), components.join("build.sh")];
    let crates = [components.to_path_buf(), components.join("testing")];
    for dir in crates.iter().filter_map(|d| std::fs::read_dir(d).ok()).flatten().flatten() {
        let dir = dir.path();
        for part in ["Cargo.toml", "src", "wit", "app.py"] {
            if dir.join(part).exists() && dir.file_name().is_some_and(|n| n != "target") {
                inputs.push(dir.join(part));
            }
        }
    }
    inputs
}
