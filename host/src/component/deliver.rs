//! Handing a message to a component's `wasi:messaging/incoming-handler` export: on an
//! instance from its pool, behind its bulkhead, within the delivery's deadline, as every
//! other piece of guest work runs (`invoke`). What to deliver when is the events subsystem's.

use wasmtime::component::InstancePre;

use super::LoadedComponent;
use crate::capabilities::messaging::Error;
use crate::capabilities::messaging::bindings::exports::wasi::messaging::incoming_handler::GuestIndices;
use crate::capabilities::messaging::resources::Message;
use crate::runtime::{CallContext, Fault, HostState};

/// How a component receives messages: its handler's export, looked up once at load.
pub(crate) struct Receiver(GuestIndices);

impl Receiver {
    pub(super) fn new(pre: &InstancePre<HostState>) -> wasmtime::Result<Self> {
        Ok(Self(GuestIndices::new(pre)?))
    }
}

impl LoadedComponent {
    /// Whether the component exports `wasi:messaging/incoming-handler`.
    pub(crate) fn receives_messages(&self) -> bool {
        self.receiver.is_some()
    }

    /// Delivers `message`: `Ok(Ok(()))` once its handler acknowledged it, `Ok(Err(why))` when
    /// the handler answered an error, `Err` when it trapped, timed out or could not run.
    pub(crate) async fn deliver(&self, call: CallContext, message: Message) -> Result<Result<(), String>, Fault> {
        let Some(Receiver(indices)) = &self.receiver else {
            let reason = "it does not export wasi:messaging/incoming-handler".to_string();
            return Err(Fault::Instantiation { component: self.name.to_string(), reason });
        };
        self.invoke(call, async |warm| {
            let handler = indices.load(&mut warm.store, &warm.instance)?;
            let message = warm.store.data_mut().hold(message)?;
            let (answer,) = handler.func_handle().call_async(&mut warm.store, (message,)).await?;
            Ok(answer.map_err(|e| describe(&e)))
        })
        .await
    }
}

/// A handler's error as a person reads it.
fn describe(error: &Error) -> String {
    match error {
        Error::Timeout => "the handler answered: timeout".into(),
        Error::Connection(why) => format!("the handler answered a connection error: {why}"),
        Error::PermissionDenied(why) => format!("the handler answered permission denied: {why}"),
        Error::Other(why) => format!("the handler answered an error: {why}"),
    }
}
