//! The ceiling: a plain hyper server answering one fixed body to every request, as fast as
//! hyper on tokio goes. `baseline ADDR BODY`.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8090".into());
    let body = Bytes::from(args.next().unwrap_or_else(|| "Hello\n".into()));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let body = body.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_request| {
                let body = body.clone();
                async move {
                    let mut response = http::Response::new(Full::new(body));
                    response
                        .headers_mut()
                        .insert("content-type", http::HeaderValue::from_static("text/plain; charset=utf-8"));
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}
