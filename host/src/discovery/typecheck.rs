//! Structural comparison of component types, so that an importer and a provider are checked
//! against each other when they are linked rather than when a call fails. Also prints types
//! in WIT syntax for error messages and `trellis inspect`, and recognises the "unavailable"
//! error convention.

use wasmtime::component::types::{ComponentFunc, Type};

/// A function signature read from a component type, independent of the component.
#[derive(Debug, Clone)]
pub struct Signature {
    pub name: String,
    pub params: Vec<(String, Type)>,
    pub results: Vec<Type>,
}

impl Signature {
    pub fn of(name: &str, func: &ComponentFunc) -> Self {
        Self {
            name: name.to_string(),
            params: func.params().map(|(n, t)| (n.to_string(), t)).collect(),
            results: func.results().collect(),
        }
    }

    /// The signature in WIT syntax: `get-user: func(id: u64) -> result<user, error>`.
    pub fn to_wit(&self) -> String {
        let params: Vec<String> = self.params.iter().map(|(n, t)| format!("{n}: {}", wit(t))).collect();
        let results = match self.results.as_slice() {
            [] => String::new(),
            [t] => format!(" -> {}", wit(t)),
            many => format!(" -> ({})", many.iter().map(wit).collect::<Vec<_>>().join(", ")),
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
        let [Type::Result(result)] = self.results.as_slice() else { return false };
        let Some(Type::Variant(variant)) = result.err() else { return false };
        variant.cases().any(|case| case.name == name && matches!(case.ty, Some(Type::String)))
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
            if let Some(why) = difference(want, have) {
                return Some(format!("parameter `{name}` {why}"));
            }
        }
        if self.results.len() != provided.results.len() {
            return Some("the number of results differs".to_string());
        }
        for (want, have) in self.results.iter().zip(&provided.results) {
            if let Some(why) = difference(want, have) {
                return Some(format!("result {why}"));
            }
        }
        None
    }
}

/// Why two types differ, or `None` if a value of one is a value of the other.
pub(super) fn difference(want: &Type, have: &Type) -> Option<String> {
    let differs = || Some(format!("is `{}` for the caller but `{}` for the provider", wit(want), wit(have)));
    match (want, have) {
        (Type::List(a), Type::List(b)) => difference(&a.ty(), &b.ty()),
        (Type::Option(a), Type::Option(b)) => difference(&a.ty(), &b.ty()),
        (Type::Record(a), Type::Record(b)) => {
            if a.fields().len() != b.fields().len() {
                return differs();
            }
            a.fields().zip(b.fields()).find_map(|(fa, fb)| {
                if fa.name != fb.name {
                    return differs();
                }
                difference(&fa.ty, &fb.ty).map(|why| format!("field `{}` {why}", fa.name))
            })
        }
        (Type::Tuple(a), Type::Tuple(b)) => {
            if a.types().len() != b.types().len() {
                return differs();
            }
            a.types().zip(b.types()).find_map(|(x, y)| difference(&x, &y))
        }
        (Type::Variant(a), Type::Variant(b)) => {
            if a.cases().len() != b.cases().len() {
                return differs();
            }
            a.cases().zip(b.cases()).find_map(|(ca, cb)| {
                if ca.name != cb.name {
                    return differs();
                }
                match (&ca.ty, &cb.ty) {
                    (None, None) => None,
                    (Some(x), Some(y)) => difference(x, y).map(|why| format!("case `{}` {why}", ca.name)),
                    _ => differs(),
                }
            })
        }
        (Type::Enum(a), Type::Enum(b)) => (!a.names().eq(b.names())).then(differs).flatten(),
        (Type::Flags(a), Type::Flags(b)) => (!a.names().eq(b.names())).then(differs).flatten(),
        (Type::Result(a), Type::Result(b)) => match optional(a.ok(), b.ok()).or_else(|| optional(a.err(), b.err())) {
            Some(why) if !why.is_empty() => Some(why),
            Some(_) => differs(),
            None => None,
        },
        (Type::Own(_) | Type::Borrow(_), _) | (_, Type::Own(_) | Type::Borrow(_)) => {
            Some("is a resource handle, and resources cannot be passed between components".to_string())
        }
        (a, b) if std::mem::discriminant(a) == std::mem::discriminant(b) && is_primitive(a) => None,
        _ => differs(),
    }
}

/// Compares the two sides of a `result` or similar: `Some("")` when only one side has a type.
fn optional(a: Option<Type>, b: Option<Type>) -> Option<String> {
    match (a, b) {
        (None, None) => None,
        (Some(x), Some(y)) => difference(&x, &y),
        _ => Some(String::new()),
    }
}

fn is_primitive(t: &Type) -> bool {
    matches!(
        t,
        Type::Bool
            | Type::S8
            | Type::U8
            | Type::S16
            | Type::U16
            | Type::S32
            | Type::U32
            | Type::S64
            | Type::U64
            | Type::Float32
            | Type::Float64
            | Type::Char
            | Type::String
    )
}

/// Whether a type holds a resource handle anywhere inside it.
pub(super) fn has_resource(t: &Type) -> bool {
    match t {
        Type::Own(_) | Type::Borrow(_) => true,
        Type::List(l) => has_resource(&l.ty()),
        Type::Option(o) => has_resource(&o.ty()),
        Type::Record(r) => r.fields().any(|f| has_resource(&f.ty)),
        Type::Tuple(t) => t.types().any(|t| has_resource(&t)),
        Type::Variant(v) => v.cases().any(|c| c.ty.as_ref().is_some_and(has_resource)),
        Type::Result(r) => r.ok().is_some_and(|t| has_resource(&t)) || r.err().is_some_and(|t| has_resource(&t)),
        _ => false,
    }
}

/// A type in WIT syntax; records, variants, enums and flags are spelled out inline since
/// component types do not keep their names.
pub(super) fn wit(t: &Type) -> String {
    match t {
        Type::Bool => "bool".into(),
        Type::S8 => "s8".into(),
        Type::U8 => "u8".into(),
        Type::S16 => "s16".into(),
        Type::U16 => "u16".into(),
        Type::S32 => "s32".into(),
        Type::U32 => "u32".into(),
        Type::S64 => "s64".into(),
        Type::U64 => "u64".into(),
        Type::Float32 => "f32".into(),
        Type::Float64 => "f64".into(),
        Type::Char => "char".into(),
        Type::String => "string".into(),
        Type::List(l) => format!("list<{}>", wit(&l.ty())),
        Type::Option(o) => format!("option<{}>", wit(&o.ty())),
        Type::Result(r) => match (r.ok(), r.err()) {
            (None, None) => "result".into(),
            (Some(ok), None) => format!("result<{}>", wit(&ok)),
            (None, Some(err)) => format!("result<_, {}>", wit(&err)),
            (Some(ok), Some(err)) => format!("result<{}, {}>", wit(&ok), wit(&err)),
        },
        Type::Tuple(t) => format!("tuple<{}>", t.types().map(|t| wit(&t)).collect::<Vec<_>>().join(", ")),
        Type::Record(r) => {
            let fields: Vec<String> = r.fields().map(|f| format!("{}: {}", f.name, wit(&f.ty))).collect();
            format!("record {{ {} }}", fields.join(", "))
        }
        Type::Variant(v) => {
            let cases: Vec<String> = v
                .cases()
                .map(|c| match &c.ty {
                    Some(t) => format!("{}({})", c.name, wit(t)),
                    None => c.name.to_string(),
                })
                .collect();
            format!("variant {{ {} }}", cases.join(", "))
        }
        Type::Enum(e) => format!("enum {{ {} }}", e.names().collect::<Vec<_>>().join(", ")),
        Type::Flags(f) => format!("flags {{ {} }}", f.names().collect::<Vec<_>>().join(", ")),
        Type::Own(_) => "own<resource>".into(),
        Type::Borrow(_) => "borrow<resource>".into(),
        other => format!("{other:?}"),
    }
}
