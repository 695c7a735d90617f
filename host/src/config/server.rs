//! The `[server]` settings of `trellis serve`: one type, read from the config file and from
//! the command line alike, merged flags over file, with each default written once here.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The components folder when neither flag nor file names one.
const DEFAULT_COMPONENTS: &str = "./dist";
/// Loopback by default: nothing is exposed beyond the machine unless asked for.
const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);
/// The admin API's own port, so that it can be firewalled apart from the public one.
const DEFAULT_ADMIN_LISTEN: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8081);
/// Storage, compile cache and the bound addresses, next to where the host was started.
const DEFAULT_DATA: &str = "./.trellis";

/// Where `trellis serve` reads and listens. The same fields are the `[server]` section of the
/// config file and the flags of `trellis serve`; a flag overrides the file.
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
