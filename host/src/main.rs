//! The `trellis` binary: parse the command line, set up logging, run the command.

use clap::Parser;
use trellis::cli::{self, Cli, Command, LogFormat};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _flush_logs_on_exit = init_logging(cli.log_format);
    match cli.command {
        Command::Serve(args) => tokio::runtime::Runtime::new()?.block_on(cli::serve(args)),
        Command::Status(args) => {
            print!("{}", cli::status(&args)?);
            Ok(())
        }
        Command::Inspect { file } => {
            print!("{}", cli::inspect(&file)?);
            Ok(())
        }
    }
}

/// Log lines waiting for the writer thread, at most: a request waits for room only when the
/// terminal or pipe has fallen this far behind. tracing-appender's default, 128,000, keeps a
/// 4 MiB buffer resident from start-up, a tenth of an idle host's memory.
const BUFFERED_LOG_LINES: usize = 16 * 1024;

/// Logs go to stderr through a background writer thread, so that a request does not wait on
/// the terminal or pipe; the guard flushes what is left when the process ends.
fn init_logging(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,wasmtime=warn,cranelift=warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(BUFFERED_LOG_LINES)
        .lossy(false)
        .finish(std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer).with_ansi(ansi);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    guard
}
