//! The command line: its flags, and one module per command. `serve` is the composition
//! root, the one place that builds and wires every subsystem; `status` and `inspect` are
//! clients of what the other modules report. Flags override the config file, which
//! overrides the defaults.

mod inspect;
mod serve;
mod status;

pub use inspect::inspect;
pub use serve::serve;
pub use status::status;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::Server;

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

// Parsed once per process: the size of the serve variant costs nothing.
#[allow(clippy::large_enum_variant)]
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
    #[command(flatten)]
    pub server: Server,
    /// Config file [default: ./trellis.toml when it exists]
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Do not watch the components folder; `POST /_trellis/reload` still rescans it.
    #[arg(long)]
    pub no_watch: bool,
    /// Serve the admin API on a non-loopback address without a token (refused otherwise).
    #[arg(long)]
    pub insecure_admin: bool,
    /// Join a cluster over these NATS servers, comma-separated (`[cluster] nats` in the file)
    #[arg(long, value_delimiter = ',', value_name = "NATS_URLS")]
    pub cluster: Vec<String>,
    /// This host's id in the cluster (`[cluster] host_id`) [default: machine name and a random suffix]
    #[arg(long)]
    pub host_id: Option<String>,
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
