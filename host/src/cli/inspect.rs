//! `trellis inspect FILE.wasm`: what a component imports and exports, in WIT terms, with
//! full interface names, and whether Trellis can serve and link it.

use std::fmt::Write;
use std::path::Path;

use crate::component;
use crate::config::Limits;
use crate::discovery::{Description, Interface, WasiHttp};
use crate::runtime::Engines;

/// The report on `file`; the same checks as loading it, so a bad file gets the same error.
pub fn inspect(file: &Path) -> anyhow::Result<String> {
    let engines = Engines::for_reading()?;
    let compiled = component::compile(&engines, file, Limits::default().max_component_mib)?;
    let description = Description::of(&compiled.component, engines.for_component(compiled.concurrent));
    let mut out = String::new();
    writeln!(out, "component {}", file.display())?;
    let http = match description.http() {
        Some(WasiHttp::V0_2) => "yes (WASI 0.2)",
        Some(WasiHttp::V0_3) => "yes (WASI 0.3, several requests at once per instance)",
        None => "no",
    };
    writeln!(out, "  serves HTTP: {http}")?;
    writeln!(out, "  declares its routes: {}", if description.declares_routes() { "yes" } else { "no" })?;
    writeln!(out, "\nexports:")?;
    for export in &description.exports {
        write_interface(&mut out, export)?;
    }
    writeln!(out, "\nimports:")?;
    for import in &description.imports {
        write_interface(&mut out, import)?;
    }
    for other in &description.other_imports {
        writeln!(out, "  {other} (not an interface)")?;
    }
    Ok(out)
}

fn write_interface(out: &mut String, interface: &Interface) -> std::fmt::Result {
    if interface.name.is_host_provided() {
        // WASI is the host's to provide; its signatures are the standard's.
        return writeln!(out, "  {}  (provided by the host)", interface.full_name);
    }
    writeln!(out, "  {}", interface.full_name)?;
    for resource in &interface.resources {
        writeln!(out, "    resource {resource}")?;
    }
    for function in &interface.functions {
        writeln!(out, "    {}", function.to_wit())?;
    }
    Ok(())
}
