//! The `duplex` binary: see `duplex --help`.

/// jemalloc rather than the system allocator: a server holding many
/// long-lived small allocations (one set per connection) among short-lived
/// large ones (each request's and message's buffers) fragments glibc's
/// heap badly, so its RSS per idle connection swings from 2.5 to 4 KiB
/// between runs of the same build; jemalloc's size classes keep it close
/// to the bytes in use (docs/benchmarks.md, "Where the idle memory goes").
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    duplex_server::cli::main()
}
