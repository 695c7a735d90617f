//! Test `wasi:http` component that calls `test:greet/api@1.1.0` through Trellis (served
//! under `/consumer/`), so tests can drive every inter-component call over HTTP:
//!
//! - `GET /consumer/greet/{name}`: 200 with the greeting, 422 for a business error, 503
//!   when the provider is unavailable (the message says why).
//! - `GET /consumer/misbehave/{none|trap|spin|slow|oom|recurse|flaky}?amount=N`: the same, asking the
//!   provider to fail.
//! - `GET /consumer/counter`: the provider's call counter (no error type: unreachable traps).
//! - `GET /consumer/whoami/...`: the identity the host vouches for, from the headers it sets after
//!   checking a policy: `{"subject", "scopes", "auth"}` (`x-trellis-subject`, `-scopes`, `-auth`).
//! - `GET /consumer/absent` and `/consumer/absent-plain`: calls into an interface nobody
//!   provides, with and without the unavailable convention.
//!
//! It also exports `test:consumer/repeat` so a benchmark can time calls made from the guest.

use guest_http::{Answer, Request, Response};
use test::greet::api::{Error, Fault};
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

wit_bindgen::generate!({ world: "consumer", generate_all });

struct Consumer;

export!(Consumer);
wasip2::http::proxy::export!(Consumer);

impl exports::test::consumer::repeat::Guest for Consumer {
    fn greet_times(n: u32) -> u32 {
        (0..n).filter(|_| test::greet::api::greet("bench").is_ok()).count() as u32
    }
}

impl wasip2::exports::http::incoming_handler::Guest for Consumer {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        guest_http::serve(request, out, route);
    }
}

fn route(request: Request) -> Answer {
    Ok(match request.segments().as_slice() {
        [_, "greet", name] => answer(test::greet::api::greet(name)),
        [_, "greet"] => answer(test::greet::api::greet("")),
        [_, "misbehave", how] => {
            let fault = match *how {
                "none" => Fault::None,
                "trap" => Fault::Trap,
                "spin" => Fault::Spin,
                "slow" => Fault::Slow,
                "oom" => Fault::Oom,
                "recurse" => Fault::Recurse,
                "flaky" => Fault::Flaky,
                other => return Err(Response::not_found(&format!("no fault named {other}"))),
            };
            let amount = request.query_param("amount").and_then(|n| n.parse().ok()).unwrap_or(0);
            answer(test::greet::api::misbehave(fault, amount))
        }
        [_, "counter"] => Response::text(200, test::greet::api::counter().to_string()),
        [_, "absent"] => match test::absent::api::ping() {
            Ok(text) => Response::text(200, text),
            Err(test::absent::api::Error::Unavailable(why)) => Response::error(503, "unavailable", &why),
        },
        [_, "whoami", ..] => Response::json(
            200,
            &serde_json::json!({
                "subject": request.header("x-trellis-subject"),
                "scopes": request.header("x-trellis-scopes"),
                "auth": request.header("x-trellis-auth"),
            }),
        ),
        [_, "absent-plain"] => Response::text(200, test::absent::api::ping_plain()),
        [_, "body"] => Response::json(
            200,
            &serde_json::json!({"read": request.body.len(), "content-length": request.header("content-length")}),
        ),
        _ => Response::not_found(&request.path),
    })
}

fn answer(result: Result<String, Error>) -> Response {
    match result {
        Ok(text) => Response::text(200, text),
        Err(Error::Invalid(why)) => Response::error(422, "invalid", &why),
        Err(Error::Unavailable(why)) => Response::error(503, "unavailable", &why),
    }
}
