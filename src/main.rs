//! The binary: parse arguments, run the command, map the outcome to an exit code.

/// mimalloc instead of the system allocator: a pass allocates and frees millions of small
/// objects (entries, accounts, JSON values), where glibc's malloc spends much of its time
/// consolidating free lists (measured in docs/decisions.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    carbonite_sync::cli::main()
}
