//! The `trellis` binary: parse the command line, set up logging, run the command.

use clap::Parser;
use trellis::cli::{Cli, Command, LogFormat};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Serve(args) => tokio::runtime::Runtime::new()?.block_on(trellis::serve::serve(args)),
        Command::Status(args) => {
            print!("{}", trellis::status_table::status(&args)?);
            Ok(())
        }
        Command::Inspect { file } => {
            print!("{}", trellis::inspect::inspect(&file)?);
            Ok(())
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,wasmtime=warn,cranelift=warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
