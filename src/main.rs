//! The `vitals` binary: parses the command line and runs it.

use clap::Parser;

// Query execution and Parquet encoding allocate large, short-lived buffers;
// mimalloc reuses them where the system allocator returns them to the OS.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns off transparent huge pages for this process. Queries allocate and
/// free large buffers at a high rate; with huge pages every fresh fault zeroes
/// 2 MiB, and a funnel over 20M events spent 60% of its time (3.5 of 4.7 CPU
/// seconds, in the kernel) clearing pages. With 4 KiB pages it is 1.7 CPU seconds.
#[cfg(target_os = "linux")]
fn no_transparent_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and changes only this
    // process's page policy; a failure (an old kernel) leaves the default.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

#[cfg(not(target_os = "linux"))]
fn no_transparent_huge_pages() {}

/// Output piped into a reader that stops (`vitals sql ... | head`) ends the
/// process quietly, as for any Unix tool, instead of a panic in `println!`.
/// Not for the commands that serve: a client that hangs up must not end a server.
#[cfg(unix)]
fn quiet_on_closed_pipe(command: &vitals::cli::Command) {
    if matches!(command, vitals::cli::Command::Serve(_) | vitals::cli::Command::Tour(_) | vitals::cli::Command::Scheduler(_) | vitals::cli::Command::Executor(_)) {
        return;
    }
    // SAFETY: restores the default action of one signal and unblocks it (a
    // parent may have left it blocked, and a blocked SIGPIPE turns into the
    // error that panics), before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

#[cfg(not(unix))]
fn quiet_on_closed_pipe(_: &vitals::cli::Command) {}

fn main() {
    no_transparent_huge_pages();
    let cli = vitals::cli::Cli::parse();
    quiet_on_closed_pipe(&cli.command);
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
