//! Running guest code: an instance out of the pool (warm or fresh, once the bulkhead has
//! room), the work with the deadline enforced, and the instance back to the pool only when
//! it finished cleanly. One function, [`LoadedComponent::invoke`], for HTTP requests, calls
//! between components and load-time exports alike; failures come back classified.

use std::sync::Arc;
use std::time::Instant;

use wasmtime_wasi_http::p2::bindings::Proxy;

use super::LoadedComponent;
use super::pool::Warm;
use crate::runtime::{CallContext, Fault, reason};

impl LoadedComponent {
    /// Runs `work` on an instance of this component within `call`'s deadline. A trapped or
    /// timed-out instance is thrown away; a clean one goes back to the pool.
    pub async fn invoke<R>(
        &self,
        call: CallContext,
        work: impl AsyncFnOnce(&mut Warm) -> wasmtime::Result<R>,
    ) -> Result<R, Fault> {
        let deadline = call.deadline;
        let mut warm = self.checkout(call).await?;
        match tokio::time::timeout_at(deadline.into(), work(&mut warm)).await {
            Ok(Ok(answer)) => {
                self.pool.put(warm);
                Ok(answer)
            }
            Ok(Err(e)) => Err(Fault::classify(&self.name, &e, warm.store.data().ran_out_of_memory())),
            Err(_) => Err(Fault::Timeout(self.name.to_string())),
        }
    }

    /// An instance for one unit of work, once the bulkhead has room: a warm one if any is
    /// idle, else a fresh one.
    async fn checkout(&self, call: CallContext) -> Result<Warm, Fault> {
        let deadline = call.deadline;
        let slot = if call.depth > 0 { self.bulkhead.enter_nested() } else { self.bulkhead.enter(deadline).await };
        let slot = slot.map_err(|why| Fault::Busy(format!("component '{}' is busy: {why}", self.name)))?;
        if let Some(mut warm) = self.pool.take() {
            warm.store.data_mut().begin(call);
            warm.store.set_epoch_deadline(1);
            warm.slot = Some(slot);
            return Ok(warm);
        }
        let mut store = self.recipe.store(self.pre.engine(), call);
        let started = Instant::now();
        let instantiated = tokio::time::timeout_at(deadline.into(), self.pre.instantiate_async(&mut store)).await;
        let failed = |reason: String| Fault::Instantiation { component: self.name.to_string(), reason };
        let instance =
            instantiated.map_err(|_| failed("it did not finish before the deadline".into()))?.map_err(|e| {
                let mut why = reason(&e);
                if store.data().ran_out_of_memory() {
                    why += &format!(
                        " (all its memories together may take {} MiB: limits.memory_mib)",
                        self.limits.memory_mib
                    );
                }
                failed(why)
            })?;
        let alive = self.recipe.made(started);
        Ok(Warm { store, instance, slot: Some(slot), proxy: None, idle_since: started, _alive: alive })
    }

    /// The `wasi:http` bindings of an instance of this component, looked up once per instance.
    pub(crate) fn proxy(&self, warm: &mut Warm) -> wasmtime::Result<Arc<Proxy>> {
        if let Some(proxy) = &warm.proxy {
            return Ok(proxy.clone());
        }
        let Some(super::Http::V0_2(indices)) = &self.http else {
            wasmtime::bail!("component '{}' does not serve WASI 0.2 HTTP", self.name)
        };
        let proxy = Arc::new(indices.load(&mut warm.store, &warm.instance)?);
        warm.proxy = Some(proxy.clone());
        Ok(proxy)
    }
}
