//! The edge and the life cycle: slow and idle clients cost a connection only until their
//! timeouts, a chunked body reaches the guest with its length, no file name can hurt the host,
//! SIGTERM drains requests in flight, and an admin API reachable from other machines needs a
//! token.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::{Host, trellis};

/// The address part of `http://ADDR`.
fn addr(url: &str) -> &str {
    url.trim_start_matches("http://")
}

/// Whether the server has closed `stream` (a read ends or fails rather than timing out).
fn closed(mut stream: &TcpStream) -> bool {
    stream.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
    }
}

#[test]
fn idle_and_slowloris_connections_cost_nothing_past_their_timeouts_and_never_block_others() {
    let config = "[server]\nheader_read_timeout = 2000\nidle_timeout = 3000\n";
    let host = Host::start_with(&["hello"], config);
    let public = addr(&host.public).to_string();
    let idle: Vec<TcpStream> = (0..2000).map(|_| TcpStream::connect(&public).unwrap()).collect();
    let mut slow: Vec<TcpStream> = (0..200).map(|_| TcpStream::connect(&public).unwrap()).collect();
    for stream in &mut slow {
        stream.write_all(b"GET /hello/ HTTP/1.1\r\n").unwrap();
    }
    let started = Instant::now();
    // A header a byte a second; meanwhile a normal client and the admin API are answered.
    let mut answered = 0;
    while started.elapsed() < Duration::from_secs(4) {
        for stream in &mut slow {
            let _ = stream.write_all(b"X");
        }
        let reply = host.get("/hello/");
        assert_eq!(reply.status, 200, "a normal client is answered beside 2,200 slow connections");
        assert_eq!(host.admin_get("/_trellis/services").status, 200, "and so is the admin API");
        answered += 1;
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(answered >= 3);
    let slow_closed = slow.iter().filter(|s| closed(s)).count();
    assert_eq!(slow_closed, 200, "every slowloris connection was closed by the header timeout");
    let idle_closed = idle.iter().filter(|s| closed(s)).count();
    assert_eq!(idle_closed, 2000, "every connection that never sent a request was closed");
    assert_eq!(host.get("/hello/").status, 200);
}

#[test]
fn a_keep_alive_connection_is_closed_after_the_idle_timeout_not_before() {
    let config = "[server]\nheader_read_timeout = 5000\nidle_timeout = 1000\n";
    let host = Host::start_with(&["hello"], config);
    let mut stream = TcpStream::connect(addr(&host.public)).unwrap();
    stream.write_all(b"GET /hello/ HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut response = [0u8; 4096];
    let n = stream.read(&mut response).unwrap();
    assert!(String::from_utf8_lossy(&response[..n]).starts_with("HTTP/1.1 200"));
    std::thread::sleep(Duration::from_millis(400));
    assert!(!closed(&stream), "still open within the idle timeout");
    std::thread::sleep(Duration::from_millis(1600));
    assert!(closed(&stream), "closed once idle past the idle timeout");
}

#[test]
fn a_chunked_body_reaches_the_guest_whole_and_with_its_length_whatever_the_method() {
    let host = Host::start(&["testing/consumer"]);
    let send = |method: &str, head: &str, body: &[u8]| {
        let mut stream = TcpStream::connect(addr(&host.public)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let head = format!("{method} /consumer/body HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{head}\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{method}: {response}");
        response.split("\r\n\r\n").nth(1).unwrap_or_default().to_string()
    };
    for method in ["POST", "GET", "DELETE"] {
        let read = send(method, "Transfer-Encoding: chunked\r\n", b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
        assert_eq!(read, r#"{"content-length":"11","read":11}"#, "{method}");
    }
    // Without a body there is nothing to read, and no length is made up.
    assert_eq!(send("GET", "", b""), r#"{"content-length":null,"read":0}"#);
}

#[test]
fn a_file_whose_name_cannot_be_a_component_is_refused_by_name_at_start_up_and_live() {
    let dir = tempfile::tempdir().unwrap();
    let components = dir.path().join("components");
    std::fs::create_dir(&components).unwrap();
    let hello = support::component("hello");
    for name in ["hello.wasm", "x{y}.wasm", "evil\nERROR forged line.wasm"] {
        std::fs::copy(&hello, components.join(name)).unwrap();
    }
    std::fs::write(dir.path().join("trellis.toml"), "").unwrap();
    let host = Host::start_in(dir);
    assert_eq!(host.get("/hello/").status, 200, "the rest is served");
    let services = host.services();
    let failed: Vec<(&str, &str)> = services.failed.iter().map(|f| (f.name.as_str(), f.error.as_str())).collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(failed.iter().any(|(n, e)| *n == "x{y}" && e.contains("x{y}.wasm")), "{failed:?}");
    assert!(failed.iter().any(|(n, _)| *n == "evil\\nERROR forged line"), "named with the newline escaped: {failed:?}");
    let log = host.log_when(|log| log.contains("forged"));
    assert!(!log.lines().any(|l| l.starts_with("ERROR forged")), "no forged log line:\n{log}");

    // Dropped in live: refused the same way, and the watcher keeps working afterwards.
    std::fs::copy(&hello, host.components_dir().join("a}b.wasm")).unwrap();
    support::eventually(Duration::from_secs(10), "the live refusal", || {
        host.services().failed.iter().any(|f| f.name == "a}b")
    });
    std::fs::copy(&hello, host.components_dir().join("again.wasm")).unwrap();
    support::eventually(Duration::from_secs(10), "a later drop-in", || host.get("/again/").status == 200);

    let host = host.restart();
    assert_eq!(host.get("/again/").status, 200, "a restart with those files present serves too");
    assert_eq!(host.services().failed.len(), 3);
}

#[test]
fn sigterm_lets_fifty_requests_in_flight_finish_and_exits_zero() {
    let config = "[server]\nshutdown_timeout = 8000\n";
    let mut host = Host::start_with(&["testing/faulty"], config);
    let url = format!("{}/faulty/slow?ms=1500", host.public);
    let clients: Vec<_> = (0..50)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || support::request("GET", &url, None).status)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let signalled = Instant::now();
    host.signal("TERM");
    let statuses: Vec<u16> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    assert!(statuses.iter().all(|s| *s == 200), "every request in flight completed: {statuses:?}");
    let code = host.wait_exit(Duration::from_secs(8));
    assert_eq!(code, Some(0), "exited 0 within the shutdown timeout:\n{}", host.log());
    assert!(signalled.elapsed() < Duration::from_secs(8));
}

#[test]
fn sigterm_while_a_guest_spins_exits_within_the_shutdown_timeout() {
    let config = "[server]\nshutdown_timeout = 1500\n[limits]\nrequest_timeout = 60000\n";
    let mut host = Host::start_with(&["testing/faulty"], config);
    let url = format!("{}/faulty/spin", host.public);
    let _spinner = std::thread::spawn(move || support::request("GET", &url, None));
    std::thread::sleep(Duration::from_millis(500));
    let signalled = Instant::now();
    host.signal("TERM");
    let code = host.wait_exit(Duration::from_secs(10));
    let took = signalled.elapsed();
    assert_eq!(code, Some(0), "{}", host.log());
    assert!(took < Duration::from_millis(1500) + Duration::from_secs(3), "exited {took:?} after SIGTERM");
}

#[test]
fn an_admin_listener_beyond_loopback_without_a_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (components, data) = (dir.path().join("components"), dir.path().join("data"));
    std::fs::create_dir(&components).unwrap();
    let (ok, _, stderr) = trellis(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "0.0.0.0:0",
        "--components",
        components.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    assert!(!ok, "refused");
    assert!(stderr.contains("0.0.0.0") && stderr.contains("--admin-token"), "{stderr}");
    assert!(stderr.contains("--insecure-admin"), "says how to override: {stderr}");
}
