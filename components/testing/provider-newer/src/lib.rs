//! Test provider of `test:greet/api@1.4.0`: newer than `provider`, so preferred unless a
//! pin in the config says otherwise.

use exports::test::greet::api::{Error, Fault, Guest};

wit_bindgen::generate!({ world: "provider" });

struct Provider;

export!(Provider);

impl Guest for Provider {
    fn greet(name: String) -> Result<String, Error> {
        Ok(format!("Hello, {name}! (1.4.0)"))
    }

    fn misbehave(_how: Fault, _amount: u32) -> Result<String, Error> {
        Ok("fine".to_string())
    }

    fn counter() -> u64 {
        0
    }
}
