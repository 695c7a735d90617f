//! A component value type as plain data: read from wasmtime's types, compared and printed
//! the same way whether it came from a component loaded here or from another host's
//! directory entry (which is why it is serializable).

use serde::{Deserialize, Serialize};
use wasmtime::component::types::Type;

/// The shape of a value passed between components.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ValueType {
    Bool,
    S8,
    U8,
    S16,
    U16,
    S32,
    U32,
    S64,
    U64,
    F32,
    F64,
    Char,
    String,
    List(Box<ValueType>),
    Option(Box<ValueType>),
    Result {
        ok: Option<Box<ValueType>>,
        err: Option<Box<ValueType>>,
    },
    Tuple(Vec<ValueType>),
    Record(Vec<(String, ValueType)>),
    Variant(Vec<(String, Option<ValueType>)>),
    Enum(Vec<String>),
    Flags(Vec<String>),
    /// A resource handle (`own` or `borrow`): it cannot cross between components.
    Resource,
    /// Anything newer than this host knows (futures, streams, error contexts), by name.
    Other(String),
}

impl From<&Type> for ValueType {
    fn from(t: &Type) -> Self {
        let boxed = |t: Type| Box::new(ValueType::from(&t));
        match t {
            Type::Bool => Self::Bool,
            Type::S8 => Self::S8,
            Type::U8 => Self::U8,
            Type::S16 => Self::S16,
            Type::U16 => Self::U16,
            Type::S32 => Self::S32,
            Type::U32 => Self::U32,
            Type::S64 => Self::S64,
            Type::U64 => Self::U64,
            Type::Float32 => Self::F32,
            Type::Float64 => Self::F64,
            Type::Char => Self::Char,
            Type::String => Self::String,
            Type::List(l) => Self::List(boxed(l.ty())),
            Type::Option(o) => Self::Option(boxed(o.ty())),
            Type::Result(r) => Self::Result { ok: r.ok().map(boxed), err: r.err().map(boxed) },
            Type::Tuple(t) => Self::Tuple(t.types().map(|t| Self::from(&t)).collect()),
            Type::Record(r) => Self::Record(r.fields().map(|f| (f.name.to_string(), Self::from(&f.ty))).collect()),
            Type::Variant(v) => {
                Self::Variant(v.cases().map(|c| (c.name.to_string(), c.ty.as_ref().map(Self::from))).collect())
            }
            Type::Enum(e) => Self::Enum(e.names().map(str::to_string).collect()),
            Type::Flags(f) => Self::Flags(f.names().map(str::to_string).collect()),
            Type::Own(_) | Type::Borrow(_) => Self::Resource,
            other => Self::Other(format!("{other:?}")),
        }
    }
}

impl ValueType {
    /// Whether a resource handle is anywhere inside it.
    pub fn has_resource(&self) -> bool {
        match self {
            Self::Resource => true,
            Self::List(t) | Self::Option(t) => t.has_resource(),
            Self::Result { ok, err } => ok.iter().chain(err).any(|t| t.has_resource()),
            Self::Tuple(types) => types.iter().any(Self::has_resource),
            Self::Record(fields) => fields.iter().any(|(_, t)| t.has_resource()),
            Self::Variant(cases) => cases.iter().filter_map(|(_, t)| t.as_ref()).any(Self::has_resource),
            _ => false,
        }
    }

    /// The type in WIT syntax; records, variants, enums and flags are spelled out inline since
    /// component types do not keep their names.
    pub fn wit(&self) -> String {
        let list = |types: &mut dyn Iterator<Item = String>| types.collect::<Vec<_>>().join(", ");
        match self {
            Self::Bool => "bool".into(),
            Self::S8 => "s8".into(),
            Self::U8 => "u8".into(),
            Self::S16 => "s16".into(),
            Self::U16 => "u16".into(),
            Self::S32 => "s32".into(),
            Self::U32 => "u32".into(),
            Self::S64 => "s64".into(),
            Self::U64 => "u64".into(),
            Self::F32 => "f32".into(),
            Self::F64 => "f64".into(),
            Self::Char => "char".into(),
            Self::String => "string".into(),
            Self::List(t) => format!("list<{}>", t.wit()),
            Self::Option(t) => format!("option<{}>", t.wit()),
            Self::Result { ok, err } => match (ok, err) {
                (None, None) => "result".into(),
                (Some(ok), None) => format!("result<{}>", ok.wit()),
                (None, Some(err)) => format!("result<_, {}>", err.wit()),
                (Some(ok), Some(err)) => format!("result<{}, {}>", ok.wit(), err.wit()),
            },
            Self::Tuple(types) => format!("tuple<{}>", list(&mut types.iter().map(Self::wit))),
            Self::Record(fields) => {
                format!("record {{ {} }}", list(&mut fields.iter().map(|(n, t)| format!("{n}: {}", t.wit()))))
            }
            Self::Variant(cases) => {
                let case = |(name, ty): &(String, Option<ValueType>)| match ty {
                    Some(t) => format!("{name}({})", t.wit()),
                    None => name.clone(),
                };
                format!("variant {{ {} }}", list(&mut cases.iter().map(case)))
            }
            Self::Enum(names) => format!("enum {{ {} }}", names.join(", ")),
            Self::Flags(names) => format!("flags {{ {} }}", names.join(", ")),
            Self::Resource => "resource-handle".into(),
            Self::Other(name) => name.clone(),
        }
    }

    /// Why a value the caller sees as `self` is not one the provider sees as `have`, if not.
    pub fn difference(&self, have: &ValueType) -> Option<String> {
        let differs = || Some(format!("is `{}` for the caller but `{}` for the provider", self.wit(), have.wit()));
        match (self, have) {
            (Self::Resource, _) | (_, Self::Resource) => {
                Some("is a resource handle, and resources cannot be passed between components".to_string())
            }
            (Self::List(a), Self::List(b)) | (Self::Option(a), Self::Option(b)) => a.difference(b),
            (Self::Record(a), Self::Record(b)) if a.len() == b.len() => {
                a.iter().zip(b).find_map(|((name_a, a), (name_b, b))| {
                    if name_a != name_b {
                        return differs();
                    }
                    a.difference(b).map(|why| format!("field `{name_a}` {why}"))
                })
            }
            (Self::Tuple(a), Self::Tuple(b)) if a.len() == b.len() => {
                a.iter().zip(b).find_map(|(a, b)| a.difference(b))
            }
            (Self::Variant(a), Self::Variant(b)) if a.len() == b.len() => {
                a.iter().zip(b).find_map(|((name_a, a), (name_b, b))| match (a, b) {
                    _ if name_a != name_b => differs(),
                    (None, None) => None,
                    (Some(a), Some(b)) => a.difference(b).map(|why| format!("case `{name_a}` {why}")),
                    _ => differs(),
                })
            }
            (Self::Result { ok: ok_a, err: err_a }, Self::Result { ok: ok_b, err: err_b }) => {
                let side = |a: &Option<Box<ValueType>>, b: &Option<Box<ValueType>>| match (a, b) {
                    (None, None) => None,
                    (Some(a), Some(b)) => a.difference(b),
                    _ => differs(),
                };
                side(ok_a, ok_b).or_else(|| side(err_a, err_b))
            }
            (Self::Other(_), _) | (_, Self::Other(_)) => differs(),
            (a, b) if a == b => None,
            _ => differs(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> ValueType {
        ValueType::Record(vec![("id".into(), ValueType::U64), ("name".into(), ValueType::String)])
    }

    #[test]
    fn a_difference_names_where_it_is() {
        let mut other = user();
        if let ValueType::Record(fields) = &mut other {
            fields[1].1 = ValueType::U32;
        }
        let why = ValueType::List(Box::new(user())).difference(&ValueType::List(Box::new(other))).unwrap();
        assert_eq!(why, "field `name` is `string` for the caller but `u32` for the provider");
        assert_eq!(user().difference(&user()), None);
    }

    #[test]
    fn a_description_survives_the_directory_and_reads_as_wit() {
        let ty =
            ValueType::Result { ok: Some(Box::new(user())), err: Some(Box::new(ValueType::Enum(vec!["gone".into()]))) };
        let again: ValueType = serde_json::from_str(&serde_json::to_string(&ty).unwrap()).unwrap();
        assert_eq!(again, ty);
        assert_eq!(ty.wit(), "result<record { id: u64, name: string }, enum { gone }>");
    }
}
