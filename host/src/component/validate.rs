//! Reading a component file: the checks that tell a user what is wrong with it (a core
//! module, not WebAssembly at all, not a valid component), whether it uses the component
//! model's async features (and so which engine runs it), compilation, and its digest.
//! Shared by the loader and `trellis inspect`, so both say the same thing about a file.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};
use wasmparser::{ComponentType, ComponentTypeDeclaration, InstanceTypeDeclaration, Parser, Payload};
use wasmtime::component::Component;

use crate::runtime::Engines;

/// What tells one version of a file from the next without reading it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileStamp {
    pub len: u64,
    pub modified: Option<std::time::SystemTime>,
}

impl FileStamp {
    /// The stamp of a regular file, or `None` if there is none at `path`.
    pub fn of(path: &Path) -> Option<Self> {
        let meta = std::fs::metadata(path).ok().filter(|m| m.is_file())?;
        Some(Self { len: meta.len(), modified: meta.modified().ok() })
    }
}

/// A compiled component and the SHA-256 of its bytes.
pub(crate) struct Compiled {
    pub component: Component,
    /// Hex SHA-256 of the file: the same bytes always have the same digest.
    pub digest: String,
    /// Whether it uses the component model's async features (WASI 0.3, `wasi:messaging`)
    /// and so runs on the concurrent engine.
    pub concurrent: bool,
}

/// Reads, checks and compiles the component at `path`, refusing a file over `max_mib` before
/// reading it and one without the component header after its first bytes. Blocks: compiling
/// takes a while.
pub(crate) fn compile(engines: &Engines, path: &Path, max_mib: u64) -> anyhow::Result<Compiled> {
    let cannot_read = || format!("cannot read {}", path.display());
    let mut file = std::fs::File::open(path).with_context(cannot_read)?;
    let len = file.metadata().with_context(cannot_read)?.len();
    if len > max_mib.saturating_mul(1024 * 1024) {
        bail!(
            "{} is {len} bytes, over the limit of {max_mib} MiB for a component (limits.max_component_mib)",
            path.display()
        );
    }
    let mut bytes = Vec::with_capacity(len as usize);
    (&mut file).take(8).read_to_end(&mut bytes).with_context(cannot_read)?;
    check_header(&bytes, path)?;
    file.read_to_end(&mut bytes).with_context(cannot_read)?;
    let digest = Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    let concurrent = needs_async(&bytes);
    let component = Component::new(engines.for_component(concurrent), &bytes)
        .map_err(|e| anyhow::anyhow!("{} is not a valid component: {e:#}", path.display()))?;
    Ok(Compiled { component, digest, concurrent })
}

/// Whether the component uses the component model's async features, which only the
/// concurrent engine runs: it imports or exports a WASI 0.3 interface
/// (`wasi:http/handler@0.3.0`, `wasi:clocks/monotonic-clock@0.3.0`...), or its own types
/// hold an `async` function (`wasi:messaging`'s, say). Only the component's own imports,
/// exports and types count, not those of components nested in it; a file that does not
/// parse is left to the compiler to explain.
fn needs_async(bytes: &[u8]) -> bool {
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else { return false };
        let found = match payload {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => {
                depth += 1;
                false
            }
            Payload::End(_) => {
                depth = depth.saturating_sub(1);
                false
            }
            Payload::ComponentImportSection(imports) if depth == 0 => {
                imports.into_iter().flatten().any(|i| is_wasi_0_3(i.name.name))
            }
            Payload::ComponentExportSection(exports) if depth == 0 => {
                exports.into_iter().flatten().any(|e| is_wasi_0_3(e.name.name))
            }
            Payload::ComponentTypeSection(types) if depth == 0 => types.into_iter().flatten().any(|t| has_async(&t)),
            _ => false,
        };
        if found {
            return true;
        }
    }
    false
}

/// Whether a type is, or declares within it, an `async` function type.
fn has_async(ty: &ComponentType) -> bool {
    match ty {
        ComponentType::Func(func) => func.async_,
        ComponentType::Instance(decls) => {
            decls.iter().any(|d| matches!(d, InstanceTypeDeclaration::Type(t) if has_async(t)))
        }
        ComponentType::Component(decls) => {
            decls.iter().any(|d| matches!(d, ComponentTypeDeclaration::Type(t) if has_async(t)))
        }
        ComponentType::Defined(_) | ComponentType::Resource { .. } => false,
    }
}

fn is_wasi_0_3(name: &str) -> bool {
    name.starts_with("wasi:") && name.split_once('@').is_some_and(|(_, version)| version.starts_with("0.3."))
}

/// Whether a file's first bytes are a component's header, saying what they are if not.
fn check_header(bytes: &[u8], path: &Path) -> anyhow::Result<()> {
    if wasmparser::Parser::is_core_wasm(bytes) {
        bail!(
            "{} is a core WebAssembly module, not a component (build it for wasm32-wasip2, or wrap it with `wasm-tools component new`)",
            path.display()
        );
    }
    if !wasmparser::Parser::is_component(bytes) {
        bail!(
            "{} is not a WebAssembly component (not a valid component: it does not start with the component header)",
            path.display()
        );
    }
    Ok(())
}
