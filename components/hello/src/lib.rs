//! `hello`: a plain `wasi:http/proxy` component with no Trellis-specific export. Trellis
//! serves it under `/hello/` (its file name); `wasmtime serve` can serve it as it is.

use wasip2::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

struct Hello;

wasip2::http::proxy::export!(Hello);

/// The answer to every request.
const GREETING: &[u8] = b"Hello from a WebAssembly component!\n";

impl wasip2::exports::http::incoming_handler::Guest for Hello {
    fn handle(_request: IncomingRequest, out: ResponseOutparam) {
        let headers = Fields::from_list(&[
            ("content-type".to_string(), b"text/plain; charset=utf-8".to_vec()),
            ("content-length".to_string(), GREETING.len().to_string().into_bytes()),
        ])
        .expect("static headers are valid");
        let response = OutgoingResponse::new(headers);
        let body = response.body().expect("the body is taken once");
        ResponseOutparam::set(out, Ok(response));
        let stream = body.write().expect("the stream is taken once");
        stream.blocking_write_and_flush(GREETING).expect("write the greeting");
        drop(stream);
        OutgoingBody::finish(body, None).expect("finish the body");
    }
}
