//! `kube-apiserver`: the Kubernetes API over HTTPS, persisted to the embedded store or etcd.

use apiserver::{options, server};
use clap::Parser;

/// glibc's `M_ARENA_MAX` parameter of `mallopt`.
const M_ARENA_MAX: i32 = -8;

/// Two malloc arenas instead of glibc's default of eight per core: each runtime and blocking
/// thread would otherwise keep its own arena holding freed memory, which after a burst of
/// large lists leaves hundreds of megabytes resident on an idle apiserver.
fn tune_allocator() {
    // SAFETY: mallopt only changes allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(M_ARENA_MAX, 2);
    }
}

fn main() -> std::process::ExitCode {
    tune_allocator();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(run())
}

async fn run() -> std::process::ExitCode {
    let options = options::Options::parse();
    let verbosity = options.logging.verbosity;
    machinery::lifecycle::run("kube-apiserver", verbosity, |shutdown| {
        server::run(options, shutdown)
    })
    .await
}
