//! The `[server]` settings of `trellis serve`: one type, read from the config file and from
//! the command line alike, merged flags over file, with each default written once here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_with::{DurationMilliSeconds, serde_as};

/// The components folder when neither flag nor file names one.
const DEFAULT_COMPONENTS: &str = "./dist";
/// Loopback by default: nothing is exposed beyond the machine unless asked for.
const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);
/// The admin API's own port, so that it can be firewalled apart from the public one.
const DEFAULT_ADMIN_LISTEN: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8081);
/// Storage, compile cache and the bound addresses, next to where the host was started.
const DEFAULT_DATA: &str = "./.trellis";

/// A client gets this long to send a request's headers: long enough for any real client on a
/// slow link, short enough that a slowloris holds a connection for seconds, not forever.
const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A client gets this long to send a request's body (never beyond the request's deadline).
const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// An open connection may wait this long for its next request, as nginx's 75 s and Go
/// servers' usual 60 s: reuse for real clients, reclaimed from abandoned ones.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Open connections on the public listener; past it, new ones wait in the kernel's backlog.
/// Each costs a few KiB and a file descriptor: 10,000 fit any machine this runs on.
const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// The admin listener's own budget, so that a flood on the public one never locks out an operator.
const DEFAULT_MAX_ADMIN_CONNECTIONS: usize = 64;
/// The request line and headers together: 64 KiB is above what browsers send (cookies
/// included) and what nginx accepts by default (4 x 8 KiB).
const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
/// Headers per request, hyper's default: real requests carry a few dozen at most.
const DEFAULT_MAX_HEADERS: usize = 100;
/// How long a SIGTERM waits for requests in flight before the host exits anyway.
const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// The storage's page cache in MiB (redb's own default is 1 GiB): it keeps the upper levels of
/// the tree and recent pages hot, the kernel's page cache holds the rest of the file, and a
/// host with a million orders stays under 100 MiB resident (`make bench-scale`).
const DEFAULT_STORAGE_CACHE_MIB: usize = 32;

/// Where `trellis serve` reads and listens, and the limits of its listeners. The same fields
/// are the `[server]` section of the config file and (the addresses, folders and token) the
/// flags of `trellis serve`; a flag overrides the file. Durations in the file are milliseconds.
#[serde_as]
#[derive(Debug, Clone, Default, Serialize, Deserialize, clap::Args)]
#[serde(default, deny_unknown_fields)]
pub struct Server {
    /// The folder of `*.wasm` components to serve, sub-folders ignored [default: ./dist]
    #[arg(long)]
    pub components: Option<PathBuf>,
    /// Public address: component routes, /health, /metrics; port 0 picks one [default: 127.0.0.1:8080]
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Admin address: /_trellis/... only; port 0 picks one [default: 127.0.0.1:8081]
    #[arg(long)]
    pub admin_listen: Option<SocketAddr>,
    /// Data folder: storage, compile cache, and the bound addresses (listen.addr, admin.addr) [default: ./.trellis]
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Require `Authorization: Bearer TOKEN` on the admin API.
    #[arg(long, env = "TRELLIS_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Watch the components folder for changes (default true; the flag is `--no-watch`).
    #[arg(skip)]
    pub watch: Option<bool>,
    #[arg(skip)]
    #[serde_as(as = "Option<DurationMilliSeconds<u64>>")]
    pub header_read_timeout: Option<Duration>,
    #[arg(skip)]
    #[serde_as(as = "Option<DurationMilliSeconds<u64>>")]
    pub body_read_timeout: Option<Duration>,
    #[arg(skip)]
    #[serde_as(as = "Option<DurationMilliSeconds<u64>>")]
    pub idle_timeout: Option<Duration>,
    #[arg(skip)]
    pub max_connections: Option<usize>,
    #[arg(skip)]
    pub max_admin_connections: Option<usize>,
    #[arg(skip)]
    pub max_header_bytes: Option<usize>,
    #[arg(skip)]
    pub max_headers: Option<usize>,
    #[arg(skip)]
    #[serde_as(as = "Option<DurationMilliSeconds<u64>>")]
    pub shutdown_timeout: Option<Duration>,
    #[arg(skip)]
    pub storage_cache_mib: Option<usize>,
}

/// What the listeners enforce on every connection (see the defaults above for the reasons).
#[derive(Debug, Clone)]
pub struct EdgeLimits {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_admin_connections: usize,
    pub max_header_bytes: usize,
    pub max_headers: usize,
}

/// The settings in force: every field decided.
#[derive(Debug, Clone)]
pub struct Settings {
    pub components: PathBuf,
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    pub data: PathBuf,
    pub admin_token: Option<String>,
    pub watch: bool,
    pub edge: EdgeLimits,
    pub shutdown_timeout: Duration,
    /// The storage's page cache, in bytes.
    pub storage_cache_bytes: usize,
}

impl Server {
    /// `self` (the flags) over `file`, over the defaults.
    pub fn resolve(self, file: &Server) -> Settings {
        let file = file.clone();
        Settings {
            components: self.components.or(file.components).unwrap_or_else(|| DEFAULT_COMPONENTS.into()),
            listen: self.listen.or(file.listen).unwrap_or(DEFAULT_LISTEN),
            admin_listen: self.admin_listen.or(file.admin_listen).unwrap_or(DEFAULT_ADMIN_LISTEN),
            data: self.data.or(file.data).unwrap_or_else(|| DEFAULT_DATA.into()),
            admin_token: self.admin_token.or(file.admin_token).filter(|t| !t.is_empty()),
            watch: self.watch.or(file.watch).unwrap_or(true),
            edge: EdgeLimits {
                header_read_timeout: file.header_read_timeout.unwrap_or(DEFAULT_HEADER_READ_TIMEOUT),
                body_read_timeout: file.body_read_timeout.unwrap_or(DEFAULT_BODY_READ_TIMEOUT),
                idle_timeout: file.idle_timeout.unwrap_or(DEFAULT_IDLE_TIMEOUT),
                max_connections: file.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS).max(1),
                max_admin_connections: file.max_admin_connections.unwrap_or(DEFAULT_MAX_ADMIN_CONNECTIONS).max(1),
                // hyper's read buffer cannot be smaller than 8 KiB.
                max_header_bytes: file.max_header_bytes.unwrap_or(DEFAULT_MAX_HEADER_BYTES).max(8192),
                max_headers: file.max_headers.unwrap_or(DEFAULT_MAX_HEADERS).max(1),
            },
            shutdown_timeout: file.shutdown_timeout.unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT),
            storage_cache_bytes: file
                .storage_cache_mib
                .unwrap_or(DEFAULT_STORAGE_CACHE_MIB)
                .saturating_mul(1024 * 1024),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_overrides_the_file_which_overrides_the_default() {
        let file: Server = toml::from_str("listen = \"0.0.0.0:9000\"\ndata = \"/srv/data\"\nwatch = false").unwrap();
        let flags = Server { data: Some("/tmp/flag".into()), ..Server::default() };
        let settings = flags.resolve(&file);
        assert_eq!(settings.listen, "0.0.0.0:9000".parse().unwrap(), "from the file");
        assert_eq!(settings.data, PathBuf::from("/tmp/flag"), "the flag wins");
        assert_eq!(settings.admin_listen, DEFAULT_ADMIN_LISTEN, "the default");
        assert!(!settings.watch);
    }
}
