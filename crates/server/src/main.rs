//! The `duplex` binary: see `duplex --help`.

fn main() -> std::process::ExitCode {
    duplex_server::cli::main()
}
