//! The command line: `trellis serve`, `trellis status`, `trellis inspect`. Flags override
//! the config file, which overrides the defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "trellis",
    version,
    about = "Runs microservices as WebAssembly components, discovered from a folder and linked at run time"
)]
pub struct Cli {
    /// Log line format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true, env = "TRELLIS_LOG_FORMAT")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve every component in a folder over HTTP.
    Serve(ServeArgs),
    /// Show the components, links and breakers of a running host, as tables.
    Status(StatusArgs),
    /// Print what a component imports and exports, in WIT terms.
    Inspect {
        /// The component file.
        file: PathBuf,
    },
}

/// Each flag overrides the config file's `[server]` section, which overrides the default.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
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
    /// Config file [default: ./trellis.toml when it exists]
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Do not watch the components folder; `POST /_trellis/reload` still rescans it.
    #[arg(long)]
    pub no_watch: bool,
    /// Require `Authorization: Bearer TOKEN` on the admin API.
    #[arg(long, env = "TRELLIS_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// The host's data folder, where it wrote `admin.addr`.
    #[arg(long, default_value = "./.trellis")]
    pub data: PathBuf,
    /// The admin address, instead of reading it from the data folder.
    #[arg(long)]
    pub admin: Option<String>,
    /// The admin API's bearer token, if it requires one.
    #[arg(long, env = "TRELLIS_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Print the raw JSON of `/_trellis/services` instead of tables.
    #[arg(long)]
    pub json: bool,
}
