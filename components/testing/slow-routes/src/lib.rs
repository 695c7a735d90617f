//! Test component whose `trellis:http/routes` export sleeps for a minute in a host call
//! (a monotonic-clock wait) when it is loaded: the host must give up on it, refuse that file
//! alone, and keep loading and serving everything else meanwhile.

use guest_http::Response;
use wasip2::http::types::{IncomingRequest, ResponseOutparam};

use exports::trellis::http::routes::{self, Route};

wit_bindgen::generate!({
    path: "../../../wit",
    world: "trellis:worlds/routes-only",
});

struct SlowRoutes;

export!(SlowRoutes);
wasip2::http::proxy::export!(SlowRoutes);

impl routes::Guest for SlowRoutes {
    fn routes() -> Vec<Route> {
        wasip2::clocks::monotonic_clock::subscribe_duration(60_000_000_000).block();
        vec![Route { method: "GET".into(), pattern: "/slow-routes".into() }]
    }
}

impl wasip2::exports::http::incoming_handler::Guest for SlowRoutes {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        guest_http::serve(request, out, |_| Ok(Response::text(200, "never loaded")));
    }
}
