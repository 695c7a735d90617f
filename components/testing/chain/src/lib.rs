//! Test component that imports and exports `test:chain/api`: Trellis links the import to the
//! component itself, so `hop(n)` is a chain of n nested calls, each in its own instance. It
//! proves nested calls and cycles work and that their depth is bounded. `GET /chain/{n}`
//! starts a chain over HTTP.

use exports::test::chain::api::{Error, Guest};
use guest_http::{Answer, Request, Response};
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

wit_bindgen::generate!({ world: "chain" });

struct Chain;

export!(Chain);
wasip2::http::proxy::export!(Chain);

impl Guest for Chain {
    fn hop(n: u32) -> Result<u32, Error> {
        if n == 0 {
            return Ok(0);
        }
        match test::chain::api::hop(n - 1) {
            Ok(rest) => Ok(rest + 1),
            Err(test::chain::api::Error::Unavailable(why)) => Err(Error::Unavailable(why)),
        }
    }
}

impl wasip2::exports::http::incoming_handler::Guest for Chain {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        guest_http::serve(request, out, route);
    }
}

fn route(request: Request) -> Answer {
    let n = request.segments().get(1).and_then(|n| n.parse::<u32>().ok());
    let n = n.ok_or_else(|| Response::not_found("use /chain/{n}"))?;
    match test::chain::api::hop(n) {
        Ok(hops) => Ok(Response::text(200, hops.to_string())),
        Err(test::chain::api::Error::Unavailable(why)) => Err(Response::error(503, "unavailable", &why)),
    }
}
