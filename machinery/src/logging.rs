//! Log set-up shared by every binary: `RUST_LOG` when set, else upstream klog's `-v` levels
//! mapped onto tracing's: 0-1 info, 2-4 debug for this project's crates (their dependencies
//! stay at info, the chattiest at warn), 5 and above trace for ours and debug for the rest. Logs go to stderr,
//! coloured only on a terminal.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// This project's crates, by the names tracing sees (binaries are named after their
/// executables).
const OUR_CRATES: &[&str] = &[
    "machinery",
    "store",
    "apiserver",
    "kube_apiserver",
    "kube_scheduler",
    "kube_controller_manager",
    "node_simulator",
];

/// Upstream's `-v`/`--v` flag, flattened into each binary's options.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct LoggingArgs {
    /// Number for the log level verbosity.
    #[arg(short = 'v', long = "v", default_value_t = 0)]
    pub verbosity: u8,
}

/// Dependencies whose info logs are noise below `-v=5` (every watch restart, every request).
const QUIET: &str = "kube_client=warn,kube_runtime=warn,hyper=warn,tower=warn";

/// The filter a verbosity stands for when `RUST_LOG` is not set.
fn directives(verbosity: u8) -> String {
    let ours = match verbosity {
        0..=1 => return format!("info,{QUIET}"),
        2..=4 => "debug",
        _ => "trace",
    };
    let mut directives = if ours == "debug" {
        format!("info,{QUIET}")
    } else {
        "debug".into()
    };
    for name in OUR_CRATES {
        directives.push_str(&format!(",{name}={ours}"));
    }
    directives
}

/// Installs the global subscriber; call once, first thing in `main`.
pub fn init(verbosity: u8) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(directives(verbosity)));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn klog_levels_map_to_tracing_levels() {
        assert_eq!(directives(0), format!("info,{QUIET}"));
        assert_eq!(directives(1), directives(0));
        let debug = directives(2);
        assert!(
            debug.starts_with(&format!("info,{QUIET},")) && debug.contains(",kube_scheduler=debug"),
            "{debug}"
        );
        assert_eq!(directives(4), debug);
        let trace = directives(5);
        assert!(
            trace.starts_with("debug,") && trace.contains(",machinery=trace"),
            "{trace}"
        );
        for level in 0..=10 {
            EnvFilter::try_new(directives(level)).expect("valid directives");
        }
    }
}
