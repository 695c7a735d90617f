//! What every integration test needs: the real `trellis` binary started on port 0 against a
//! folder of real components, and a plain HTTP client to talk to it like a user would.
#![allow(dead_code)]

pub mod events;
pub mod nats;
pub mod shop;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
#[allow(unused_imports)] // each test binary uses some of them
pub use trellis::breaker::{Snapshot, StateName};
use trellis::report::{ImportReport, ServicesReport};

/// How long a host may take to start and write its addresses: compiling the components
/// is the slow part, on a loaded two-core machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The folder the components are built into (by `trellis-test-components`' build script).
pub fn dist() -> PathBuf {
    PathBuf::from(trellis_test_components::DIST)
}

/// A built component, `hello` or `testing/provider`. Fails with a clear message if the
/// components have not been built.
pub fn component(name: &str) -> PathBuf {
    let path = dist().join(format!("{name}.wasm"));
    assert!(path.is_file(), "{} is missing: no component of that name is built", path.display());
    path
}

/// A running `trellis serve`, killed when dropped.
pub struct Host {
    pub dir: tempfile::TempDir,
    pub public: String,
    pub admin: String,
    child: Child,
}

impl Host {
    /// Starts a host serving copies of the given components (names as for [`component`]).
    pub fn start(components: &[&str]) -> Host {
        Self::start_with(components, "")
    }

    /// Starts a host with a config file holding `config`.
    pub fn start_with(components: &[&str], config: &str) -> Host {
        Self::start_with_args(components, config, &[])
    }

    /// Like [`Host::start_with`], with extra `trellis serve` flags.
    pub fn start_with_args(components: &[&str], config: &str, extra: &[&str]) -> Host {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("components");
        std::fs::create_dir(&folder).unwrap();
        for name in components {
            let source = component(name);
            std::fs::copy(&source, folder.join(source.file_name().unwrap())).unwrap();
        }
        std::fs::write(dir.path().join("trellis.toml"), config).unwrap();
        Self::start_in_with_args(dir, extra)
    }

    /// Starts a host on a prepared folder: `dir/components`, `dir/trellis.toml`, `dir/data`.
    pub fn start_in(dir: tempfile::TempDir) -> Host {
        Self::start_in_with_args(dir, &[])
    }

    /// Like [`Host::start_in`], with extra `trellis serve` flags.
    pub fn start_in_with_args(dir: tempfile::TempDir, extra: &[&str]) -> Host {
        let mut host = Self::launch(dir, extra);
        host.wait_until_loaded();
        host
    }

    /// Starts a host on a prepared folder and returns as soon as it serves, which is before
    /// it has loaded its components.
    pub fn launch(dir: tempfile::TempDir, extra: &[&str]) -> Host {
        Self::launch_with_env(dir, extra, &[])
    }

    /// Like [`Host::launch`], with variables added to the host's environment.
    pub fn launch_with_env(dir: tempfile::TempDir, extra: &[&str], env: &[(&str, &str)]) -> Host {
        let data = dir.path().join("data");
        let _ = std::fs::remove_file(data.join("listen.addr"));
        let _ = std::fs::remove_file(data.join("admin.addr"));
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.path().join("host.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_trellis"))
            .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .arg("--components")
            .arg(dir.path().join("components"))
            .arg("--data")
            .arg(&data)
            .arg("--config")
            .arg(dir.path().join("trellis.toml"))
            .args(extra)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start trellis");
        let mut host = Host { dir, public: String::new(), admin: String::new(), child };
        let started = Instant::now();
        loop {
            let public = std::fs::read_to_string(data.join("listen.addr"));
            let admin = std::fs::read_to_string(data.join("admin.addr"));
            if let (Ok(public), Ok(admin)) = (public, admin) {
                host.public = format!("http://{}", public.trim());
                host.admin = format!("http://{}", admin.trim());
                return host;
            }
            if let Some(status) = host.child.try_wait().unwrap() {
                panic!("trellis exited with {status} before serving:\n{}", host.log());
            }
            assert!(started.elapsed() < START_TIMEOUT, "trellis did not start in time:\n{}", host.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The host serves (liveness first) while it loads its folder; tests start once the first
    /// scan is done, which readiness tells by no longer saying "loading".
    pub fn wait_until_loaded(&mut self) {
        let started = Instant::now();
        loop {
            let ready = self.get("/health/ready");
            if ready.status == 200 || ready.json()["status"] != "loading" {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("trellis exited with {status} while loading:\n{}", self.log());
            }
            assert!(started.elapsed() < START_TIMEOUT, "trellis did not finish loading in time:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn components_dir(&self) -> PathBuf {
        self.dir.path().join("components")
    }

    /// The host's resident memory now and at its peak, in MiB (from /proc).
    pub fn memory_mib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let field = |name: &str| {
            let line =
                status.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no {name} in /proc status"));
            line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() / 1024
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// The log once `done` holds for it (the host writes its log from a background thread),
    /// or as it is after a few seconds.
    pub fn log_when(&self, done: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let log = self.log();
            if done(&log) || started.elapsed() > Duration::from_secs(5) {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the host wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("host.log")).unwrap_or_default()
    }

    pub fn get(&self, path: &str) -> Reply {
        request("GET", &format!("{}{path}", self.public), None)
    }

    /// The admin API's services report, read into the host's own type.
    pub fn services(&self) -> ServicesReport {
        let reply = self.admin_get("/_trellis/services");
        assert_eq!(reply.status, 200, "{}", reply.body);
        serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("not a services report ({e}): {}", reply.body))
    }

    pub fn admin_get(&self, path: &str) -> Reply {
        request("GET", &format!("{}{path}", self.admin), None)
    }

    pub fn admin_send(&self, method: &str, path: &str, json: Option<&Value>) -> Reply {
        request(method, &format!("{}{path}", self.admin), json)
    }

    pub fn send(&self, method: &str, path: &str, json: Option<&Value>) -> Reply {
        request(method, &format!("{}{path}", self.public), json)
    }

    /// Sends the host a signal by name (`TERM`, `INT`).
    pub fn signal(&self, name: &str) {
        let sent = Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(sent.success(), "kill -{name} failed");
    }

    /// Waits up to `limit` for the host to exit: its exit code, or `None` if it is still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Kills the host at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills the host and starts a new one on the same folders.
    pub fn restart(mut self) -> Host {
        self.kill();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        Self::start_in(dir)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs the `trellis` binary with `args`: whether it succeeded, its stdout and its stderr.
pub fn trellis(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_trellis")).args(args).output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into(),
        String::from_utf8_lossy(&output.stderr).into(),
    )
}

/// One component's link to one imported interface, as `/_trellis/services` reports it.
pub fn link(host: &Host, caller: &str, interface: &str) -> ImportReport {
    let services = host.services();
    let component =
        services.components.into_iter().find(|c| c.name == caller).unwrap_or_else(|| panic!("{caller} is not loaded"));
    let imports = component.imports;
    imports
        .iter()
        .find(|i| i.interface == interface)
        .unwrap_or_else(|| panic!("{caller} does not import {interface}: {imports:?}"))
        .clone()
}

/// The breaker of a link, which must be resolved.
pub fn breaker(host: &Host, caller: &str, interface: &str) -> Snapshot {
    let link = link(host, caller, interface);
    link.breaker.unwrap_or_else(|| panic!("{caller}'s {interface} is not linked: {:?}", link.reason))
}

/// An HTTP response as a test looks at it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The `code` of a host or service JSON error.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap_or_else(|| panic!("not a JSON error: {}", self.body)).to_string()
    }
}

/// A client that reads every status as an answer, not an error.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

pub fn request(method: &str, url: &str, json: Option<&Value>) -> Reply {
    let builder = http::Request::builder().method(method).uri(url);
    match json {
        Some(json) => {
            send(builder.header("content-type", "application/json").body(json.to_string().into_bytes()).unwrap())
        }
        None => send(builder.body(Vec::new()).unwrap()),
    }
}

/// A GET with one extra header.
pub fn request_with_header(url: &str, name: &str, value: &str) -> Reply {
    send(http::Request::builder().uri(url).header(name, value).body(Vec::new()).unwrap())
}

/// Sends any request and reads the whole reply.
pub fn send(request: http::Request<Vec<u8>>) -> Reply {
    let (method, url) = (request.method().clone(), request.uri().clone());
    let mut response = agent().run(request).unwrap_or_else(|e| panic!("{method} {url} failed: {e}"));
    let status = response.status().as_u16();
    let headers =
        response.headers().iter().map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_string())).collect();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    Reply { status, headers, body }
}

/// Waits until `check` passes, for behaviour that takes effect in the background.
pub fn eventually(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
