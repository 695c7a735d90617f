//! The command line: `trellis serve`, `trellis inspect`. Flags override the config file.

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
    /// Print what a component imports and exports, in WIT terms.
    Inspect {
        /// The component file.
        file: PathBuf,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// The folder of `*.wasm` components to serve (sub-folders are ignored).
    #[arg(long, default_value = "./dist")]
    pub components: PathBuf,
    /// Public address: component routes, /health, /metrics. Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Admin address: /_trellis/... only. Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub admin_listen: SocketAddr,
    /// Data folder: storage, compile cache, and the bound addresses (listen.addr, admin.addr).
    #[arg(long, default_value = "./.trellis")]
    pub data: PathBuf,
    /// Config file; `./trellis.toml` is read when it exists and this is not given.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Do not watch the components folder; `POST /_trellis/reload` still rescans it.
    #[arg(long)]
    pub no_watch: bool,
}
