//! The foundation: `trellis serve` loads a folder of components and serves HTTP into them,
//! keeps going past broken files, and answers its own errors as JSON.

mod support;

use support::Host;

#[test]
fn a_plain_wasi_http_component_is_served_under_its_file_name() {
    let host = Host::start(&["hello"]);
    for path in ["/hello/", "/hello", "/hello/any/thing?x=1"] {
        let reply = host.get(path);
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        assert!(reply.body.contains("Hello"), "{path}: {}", reply.body);
    }
}

#[test]
fn broken_files_are_reported_by_name_and_the_rest_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let components = dir.path().join("components");
    std::fs::create_dir(&components).unwrap();
    std::fs::copy(support::component("hello"), components.join("hello.wasm")).unwrap();
    std::fs::write(components.join("garbage.wasm"), b"this is not wasm at all").unwrap();
    // The smallest valid core module: magic and version, nothing else.
    std::fs::write(components.join("core-module.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(components.join("notes.txt"), b"not a component, not even named like one").unwrap();
    std::fs::create_dir(components.join("nested")).unwrap();
    std::fs::copy(support::component("hello"), components.join("nested/inner.wasm")).unwrap();
    std::fs::write(dir.path().join("trellis.toml"), "").unwrap();
    let host = Host::start_in(dir);

    assert_eq!(host.get("/hello/").status, 200);
    let log = host.log_when(|log| log.contains("garbage.wasm") && log.contains("core-module.wasm"));
    assert!(log.contains("garbage.wasm is not a WebAssembly component"), "{log}");
    assert!(log.contains("core-module.wasm is a core WebAssembly module, not a component"), "{log}");

    let services = host.services();
    let failed: Vec<&str> = services.failed.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(failed, ["core-module", "garbage"]);
    let loaded: Vec<&str> = services.components.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(loaded, ["hello"], "sub-folders and other files are not loaded");
    assert_eq!(host.get("/inner/").status, 404);
}

#[test]
fn an_unknown_route_is_a_json_404() {
    let host = Host::start(&["hello"]);
    let reply = host.get("/no/such/route");
    assert_eq!(reply.status, 404);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.error_code(), "not_found");
    assert!(reply.json()["error"]["message"].as_str().unwrap().contains("/no/such/route"));
}

#[test]
fn the_admin_api_is_only_on_the_admin_listener() {
    let host = Host::start(&["hello"]);
    let public = host.get("/_trellis/services");
    assert_eq!(public.status, 404);
    assert_eq!(public.error_code(), "not_found");
    let admin = host.admin_get("/_trellis/services");
    assert_eq!(admin.status, 200);
    assert_eq!(admin.json()["components"][0]["name"], "hello");
    assert_eq!(host.admin_get("/hello/").status, 404, "component routes are not on the admin listener");
}

#[test]
fn liveness_answers_as_soon_as_the_host_is_up() {
    let host = Host::start(&[]);
    assert_eq!(host.get("/health/live").status, 200);
    assert_eq!(host.get("/health/ready").status, 200, "nothing loaded, nothing unresolved");
}

#[test]
fn every_response_carries_a_correlation_id_and_keeps_the_clients() {
    let host = Host::start(&["hello"]);
    let generated = host.get("/hello/");
    assert!(generated.header("x-correlation-id").is_some_and(|id| !id.is_empty()));
    let reply = support::request_with_header(&format!("{}/hello/", host.public), "X-Correlation-ID", "trace-me-42");
    assert_eq!(reply.header("x-correlation-id"), Some("trace-me-42"));
}

#[test]
fn the_config_file_can_move_a_component_to_other_routes() {
    let config = r#"
        [components.hello]
        routes = ["GET /greet", "GET /greet/{name}"]
    "#;
    let host = Host::start_with(&["hello"], config);
    assert_eq!(host.get("/greet").status, 200);
    assert_eq!(host.get("/greet/ada").status, 200);
    assert_eq!(host.get("/hello/").status, 404, "the default route is replaced");
    let reply = host.send("POST", "/greet", None);
    assert_eq!(reply.status, 405);
    assert_eq!(reply.error_code(), "method_not_allowed");
    assert_eq!(reply.header("allow"), Some("GET"));
}

#[test]
fn two_components_claiming_the_same_route_refuse_the_second_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let components = dir.path().join("components");
    std::fs::create_dir(&components).unwrap();
    std::fs::copy(support::component("hello"), components.join("first.wasm")).unwrap();
    std::fs::copy(support::component("hello"), components.join("second.wasm")).unwrap();
    std::fs::write(
        dir.path().join("trellis.toml"),
        "[components.first]\nroutes = [\"GET /same\"]\n[components.second]\nroutes = [\"GET /same\"]\n",
    )
    .unwrap();
    let host = Host::start_in(dir);
    assert_eq!(host.get("/same").status, 200, "the first keeps the route");
    let error = &host.services().failed[0].error;
    assert!(error.contains("'first'") && error.contains("'second'"), "{error}");
}

#[test]
fn a_restart_with_a_warm_compile_cache_serves_quickly() {
    let host = Host::start(&["hello"]);
    assert_eq!(host.get("/hello/").status, 200);
    let cache = host.dir.path().join("data/cache");
    assert!(std::fs::read_dir(&cache).unwrap().next().is_some(), "the compile cache is in the data folder");
    let host = host.restart();
    assert_eq!(host.get("/hello/").status, 200);
}

#[test]
fn an_18_mb_python_component_answers_within_3_s_of_a_restart_on_a_warm_cache() {
    let size = std::fs::metadata(support::component("testing/python-hello")).unwrap().len();
    assert!(size > 15_000_000, "the Python guest embeds CPython: {size} bytes");
    let host = Host::start(&["testing/python-hello"]);
    let reply = host.get("/python-hello/");
    assert_eq!((reply.status, reply.body.as_str()), (200, "Hello from Python\n"));
    let restarted = std::time::Instant::now();
    let host = host.restart();
    assert_eq!(host.get("/python-hello/").status, 200);
    let took = restarted.elapsed();
    assert!(took < std::time::Duration::from_secs(3), "answered {took:?} after the restart");
}
