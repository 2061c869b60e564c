//! The `vitals` binary: parses the command line and runs it.

use clap::Parser;

// Query execution and Parquet encoding allocate large, short-lived buffers;
// mimalloc reuses them where the system allocator returns them to the OS.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = vitals::cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).init();
    // Planning a report's SQL recurses deeply through DataFusion's optimizer.
    let runtime = match tokio::runtime::Builder::new_multi_thread().thread_stack_size(16 << 20).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(vitals::cli::run(cli));
    std::process::exit(code);
}
