use std::process::ExitCode;

use clap::Parser;

/// Many small allocations are freed on another thread than the one that made them (pages
/// read on one core, consumed on the other); mimalloc handles that far better than glibc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = opsledger::cli::Cli::parse();
    match opsledger::cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
