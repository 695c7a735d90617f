//! Test provider that must not be linked to importers of `test:greet/api@1.1.0`
//! (see its WIT): it exists to prove Trellis refuses it.

use exports::test::greet::api::{Error, Fault, Guest};

wit_bindgen::generate!({ world: "provider" });

struct Provider;

export!(Provider);

impl Guest for Provider {
    fn greet(name: String) -> Result<String, Error> {
        Ok(format!("Hello, {name}!"))
    }

    fn misbehave(_how: Fault, _amount: u32) -> Result<String, Error> {
        Ok("fine".to_string())
    }

    fn counter() -> u64 {
        0
    }
}
