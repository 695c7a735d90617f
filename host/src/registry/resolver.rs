//! Discovery's decisions, as pure functions of the config and the loaded components: which
//! provider serves an import (semver-compatible, highest version, config pins, function
//! types checked) and whether a replacement would break what is linked. Acting on the
//! decisions (pointing links, making breakers) is `relink`'s job.

use std::collections::BTreeMap;

use crate::discovery::Interface;

/// A loaded component as the resolver sees it: a name and what it exports.
#[derive(Clone, Copy)]
pub(super) struct Provider<'a> {
    pub name: &'a str,
    pub exports: &'a [Interface],
}

/// The provider chosen for one import, and which of its exports serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Choice {
    pub provider: String,
    pub export: String,
}

/// The provider of `wanted` for `caller`: the one `pins` names if it names one, else the
/// highest compatible version; only providers whose function types match are considered.
/// The error says why none serves, naming both sides of any type mismatch.
pub(super) fn choose<'a>(
    caller: &str,
    wanted: &Interface,
    pins: &BTreeMap<String, String>,
    providers: impl IntoIterator<Item = Provider<'a>>,
) -> Result<Choice, String> {
    let pinned = pins.get(&wanted.full_name).or_else(|| pins.get(&wanted.name.base));
    let mut candidates: Vec<(&str, &Interface)> = providers
        .into_iter()
        .filter(|p| pinned.is_none_or(|pin| pin == p.name))
        .flat_map(|p| p.exports.iter().map(move |e| (p.name, e)))
        .filter(|(_, export)| export.name.satisfies(&wanted.name))
        .collect();
    candidates.sort_by(|(_, a), (_, b)| b.name.version.cmp(&a.name.version));
    let mut mismatches = Vec::new();
    for (provider, export) in candidates {
        let mismatch = wanted.functions.iter().find_map(|f| match export.function(&f.name) {
            None => Some(format!("function `{}` is missing", f.name)),
            Some(provided) => f.mismatch(provided).map(|why| format!("function `{}`: {why}", f.name)),
        });
        match mismatch {
            None => return Ok(Choice { provider: provider.to_string(), export: export.full_name.clone() }),
            Some(why) => mismatches.push(format!(
                "type mismatch between '{caller}' (imports {}) and '{provider}' (exports {}): {why}",
                wanted.full_name, export.full_name
            )),
        }
    }
    if !mismatches.is_empty() {
        return Err(mismatches.join("; "));
    }
    Err(match pinned {
        Some(pin) => format!("no loaded component provides {} (pinned to '{pin}')", wanted.full_name),
        None => format!("no loaded component provides {}", wanted.full_name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::{InterfaceName, Signature, ValueType as Type};

    /// `full_name` with one function `greet(name: <param>) -> string`.
    fn greet(full_name: &str, param: Type) -> Interface {
        let function = Signature {
            name: "greet".into(),
            params: vec![("name".into(), param)],
            results: vec![Type::String],
            func: None,
        };
        Interface {
            name: InterfaceName::parse(full_name),
            full_name: full_name.into(),
            functions: vec![function],
            resources: vec![],
        }
    }

    fn choose_among(
        wanted: &Interface,
        pins: &[(&str, &str)],
        loaded: &[(&str, Vec<Interface>)],
    ) -> Result<Choice, String> {
        let pins = pins.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        choose("consumer", wanted, &pins, loaded.iter().map(|(name, exports)| Provider { name, exports }))
    }

    fn chosen(provider: &str, export: &str) -> Result<Choice, String> {
        Ok(Choice { provider: provider.into(), export: export.into() })
    }

    #[test]
    fn the_only_compatible_provider_serves_the_import() {
        let wanted = greet("test:greet/api@1.1.0", Type::String);
        let loaded = [("provider", vec![greet("test:greet/api@1.1.0", Type::String)])];
        assert_eq!(choose_among(&wanted, &[], &loaded), chosen("provider", "test:greet/api@1.1.0"));
    }

    #[test]
    fn of_several_providers_the_highest_compatible_version_wins() {
        let wanted = greet("test:greet/api@1.1.0", Type::String);
        let loaded = [
            ("old", vec![greet("test:greet/api@1.0.0", Type::String)]),
            ("newer", vec![greet("test:greet/api@1.2.0", Type::String)]),
            ("same", vec![greet("test:greet/api@1.1.0", Type::String)]),
            ("breaking", vec![greet("test:greet/api@2.0.0", Type::String)]),
        ];
        assert_eq!(choose_among(&wanted, &[], &loaded), chosen("newer", "test:greet/api@1.2.0"));
    }

    #[test]
    fn no_compatible_version_means_unresolved_with_the_interface_named() {
        let wanted = greet("shop:users/api@0.1.0", Type::String);
        let loaded = [("v2", vec![greet("shop:users/api@0.2.0", Type::String)])];
        let why = choose_among(&wanted, &[], &loaded).unwrap_err();
        assert_eq!(why, "no loaded component provides shop:users/api@0.1.0");
    }

    #[test]
    fn a_pin_chooses_its_provider_over_a_higher_version() {
        let wanted = greet("test:greet/api@1.1.0", Type::String);
        let loaded = [
            ("pinned", vec![greet("test:greet/api@1.1.0", Type::String)]),
            ("newer", vec![greet("test:greet/api@1.2.0", Type::String)]),
        ];
        let pins = [("test:greet/api", "pinned")];
        assert_eq!(choose_among(&wanted, &pins, &loaded), chosen("pinned", "test:greet/api@1.1.0"));
        let pins = [("test:greet/api", "absent")];
        let why = choose_among(&wanted, &pins, &loaded).unwrap_err();
        assert!(why.contains("pinned to 'absent'"), "{why}");
    }

    #[test]
    fn a_type_mismatch_skips_that_provider_and_names_both_sides() {
        let wanted = greet("test:greet/api@1.1.0", Type::String);
        let mismatched = [("liar", vec![greet("test:greet/api@1.2.0", Type::U32)])];
        let why = choose_among(&wanted, &[], &mismatched).unwrap_err();
        assert!(why.contains("type mismatch") && why.contains("'consumer'") && why.contains("'liar'"), "{why}");
        assert!(why.contains("function `greet`"), "{why}");
        let with_a_good_one = [
            ("liar", vec![greet("test:greet/api@1.2.0", Type::U32)]),
            ("honest", vec![greet("test:greet/api@1.1.0", Type::String)]),
        ];
        assert_eq!(choose_among(&wanted, &[], &with_a_good_one), chosen("honest", "test:greet/api@1.1.0"));
    }
}
