//! The `tessera` binary: parse the command line, load settings, dispatch.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc: less CPU per request than glibc's allocator (BENCHMARKS.md),
/// set up by [`tessera_alloc::configure`] to keep the resident set small.
#[global_allocator]
static ALLOCATOR: tessera_alloc::MiMalloc = tessera_alloc::MiMalloc;

fn main() -> ExitCode {
    tessera_alloc::configure();
    let cli = tessera::cli::Cli::parse();
    match actix_web::rt::System::new().block_on(tessera::cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // One line, whatever the driver's message looked like.
            let line = error.split_whitespace().collect::<Vec<_>>().join(" ");
            eprintln!("tessera: {line}");
            ExitCode::from(2)
        }
    }
}
