//! Function signatures compared structurally, so that an importer and a provider are checked
//! against each other when they are linked rather than when a call fails, whether the
//! provider runs here or on another host. Also prints them in WIT syntax for error messages
//! and `trellis inspect`, and recognises the "unavailable" error convention.

use serde::{Deserialize, Serialize};
use wasmtime::component::types::ComponentFunc;

use super::types::ValueType;

/// A function signature read from a component type, independent of the component.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Signature {
    pub name: String,
    pub params: Vec<(String, ValueType)>,
    pub results: Vec<ValueType>,
    /// wasmtime's own type of the function, for a component loaded here: what values crossing
    /// hosts are decoded with. A signature read from another host's directory has none.
    #[serde(skip)]
    pub func: Option<ComponentFunc>,
}

impl Signature {
    pub fn of(name: &str, func: &ComponentFunc) -> Self {
        Self {
            name: name.to_string(),
            params: func.params().map(|(n, t)| (n.to_string(), ValueType::from(&t))).collect(),
            results: func.results().map(|t| ValueType::from(&t)).collect(),
            func: Some(func.clone()),
        }
    }

    /// The signature in WIT syntax: `get-user: func(id: u64) -> result<user, error>`.
    pub fn to_wit(&self) -> String {
        let params: Vec<String> = self.params.iter().map(|(n, t)| format!("{n}: {}", t.wit())).collect();
        let results = match self.results.as_slice() {
            [] => String::new(),
            [t] => format!(" -> {}", t.wit()),
            many => format!(" -> ({})", many.iter().map(ValueType::wit).collect::<Vec<_>>().join(", ")),
        };
        format!("{}: func({}){results}", self.name, params.join(", "))
    }

    /// Whether a caller of this function can be told "unavailable" in-band: it returns
    /// `result<T, E>` where `E` is a variant with a case `unavailable(string)`.
    pub fn speaks_unavailable(&self) -> bool {
        self.has_error_case("unavailable")
    }

    /// Whether it returns `result<T, E>` where `E` is a variant with the case `name(string)`.
    pub fn has_error_case(&self, name: &str) -> bool {
        let [ValueType::Result { err: Some(err), .. }] = self.results.as_slice() else { return false };
        let ValueType::Variant(cases) = &**err else { return false };
        cases.iter().any(|(case, ty)| case == name && ty == &Some(ValueType::String))
    }

    /// Why a provider's function cannot serve a caller that expects `self`, if it cannot.
    pub fn mismatch(&self, provided: &Signature) -> Option<String> {
        if self.params.len() != provided.params.len() {
            return Some(format!(
                "expects {} parameters, the provider takes {}",
                self.params.len(),
                provided.params.len()
            ));
        }
        for ((name, want), (_, have)) in self.params.iter().zip(&provided.params) {
            if let Some(why) = want.difference(have) {
                return Some(format!("parameter `{name}` {why}"));
            }
        }
        if self.results.len() != provided.results.len() {
            return Some("the number of results differs".to_string());
        }
        for (want, have) in self.results.iter().zip(&provided.results) {
            if let Some(why) = want.difference(have) {
                return Some(format!("result {why}"));
            }
        }
        None
    }
}
