//! Test `wasi:http` component that misbehaves on request, served under `/faulty/`:
//! `ok`, `panic`, `spin`, `oom`, `recurse`, `slow?ms=N`, `flaky?percent=N`.

use guest_http::{Answer, Request, Response};
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

struct Faulty;

wasip2::http::proxy::export!(Faulty);

impl wasip2::exports::http::incoming_handler::Guest for Faulty {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        guest_http::serve(request, out, route);
    }
}

fn number(request: &Request, name: &str) -> u32 {
    request.query_param(name).and_then(|n| n.parse().ok()).unwrap_or(0)
}

fn route(request: Request) -> Answer {
    Ok(match request.segments().get(1).copied() {
        Some("ok") | None => Response::text(200, "fine"),
        Some("panic") => panic!("asked to panic"),
        Some("spin") => faults::spin(),
        Some("oom") => faults::exhaust_memory(),
        Some("recurse") => Response::text(200, faults::recurse(0).to_string()),
        Some("slow") => {
            let ms = number(&request, "ms");
            faults::sleep(ms);
            Response::text(200, format!("slept {ms} ms"))
        }
        Some("flaky") => {
            if faults::flaky(number(&request, "percent")) {
                panic!("flaky failure");
            }
            Response::text(200, "lucky")
        }
        Some(other) => Response::not_found(&format!("no fault named {other}")),
    })
}
