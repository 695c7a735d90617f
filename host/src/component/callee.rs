//! A component's export as the callee of a link: the link's function positions mapped to
//! the export's functions once, and each call run by [`LoadedComponent::invoke`] with the
//! callee's own call timeout (never beyond the caller's deadline).

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::{ComponentExportIndex, Val};

use super::LoadedComponent;
use crate::discovery::Interface;
use crate::linking::{CallFuture, Callee, ProviderId};
use crate::runtime::CallContext;

/// One export of one loaded component, serving one import.
pub(crate) struct ExportCallee {
    component: Arc<LoadedComponent>,
    /// Export indices, in the order of the import's functions.
    functions: Vec<ComponentExportIndex>,
}

impl ExportCallee {
    /// Serves `import` from `component`'s `export`; `None` if it lacks one of the functions.
    pub(crate) fn new(component: Arc<LoadedComponent>, export: &str, import: &Interface) -> Option<Self> {
        let functions =
            import.functions.iter().map(|f| component.export_function(export, &f.name)).collect::<Option<Vec<_>>>()?;
        Some(Self { component, functions })
    }
}

impl Callee for ExportCallee {
    fn provider(&self) -> &ProviderId {
        &self.component.id
    }

    fn call<'a>(
        &'a self,
        index: usize,
        call: CallContext,
        params: &'a [Val],
        results: &'a mut [Val],
    ) -> CallFuture<'a> {
        Box::pin(async move {
            let component = &self.component;
            let deadline = call.deadline.min(Instant::now() + component.limits.call_timeout);
            let function = self.functions[index];
            component
                .invoke(CallContext { deadline, ..call }, async |warm| {
                    let func = warm
                        .instance
                        .get_func(&mut warm.store, function)
                        .ok_or_else(|| wasmtime::format_err!("export disappeared"))?;
                    func.call_async(&mut warm.store, params, results).await
                })
                .await
        })
    }
}
