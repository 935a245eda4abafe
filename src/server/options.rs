//! Command-line options, named and defaulted as Envoy's.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Load the config and serve.
    Serve,
    /// Load and check the config, then exit 0 (valid) or 1 (with the errors).
    Validate,
}

#[derive(Debug, Clone, Parser)]
#[command(name = "courier", version, about = "An L4/L7 proxy that reads Envoy's v3 bootstrap config")]
pub struct Options {
    /// Path to a v3 bootstrap config (YAML, or JSON for .json files).
    #[arg(short = 'c', long = "config-path")]
    pub config_path: Option<PathBuf>,

    /// A YAML bootstrap merged over the file's (lists appended, scalars replaced).
    #[arg(long = "config-yaml")]
    pub config_yaml: Option<String>,

    /// Number of worker threads (default: the number of available cores).
    #[arg(long)]
    pub concurrency: Option<usize>,

    #[arg(long, value_enum, default_value = "serve")]
    pub mode: Mode,

    /// trace, debug, info, warning/warn, error, critical, off.
    #[arg(short = 'l', long = "log-level", default_value = "info")]
    pub log_level: String,

    /// How long open connections may drain after shutdown starts, in seconds.
    #[arg(long = "drain-time-s", default_value_t = 600)]
    pub drain_time_s: u64,

    /// Envoy's shared-memory base id for hot restart. Courier has no hot restart,
    /// so the value changes nothing; it is accepted so that Envoy command lines
    /// (which often pass it to run several Envoys side by side) start Courier too.
    #[arg(long = "base-id")]
    pub base_id: Option<u32>,

    /// Write the admin endpoint's bound address to this file once it listens.
    #[arg(long = "admin-address-path")]
    pub admin_address_path: Option<PathBuf>,

    /// Node id; overrides `node.id` of the bootstrap.
    #[arg(long = "service-node")]
    pub service_node: Option<String>,

    /// Node cluster; overrides `node.cluster` of the bootstrap.
    #[arg(long = "service-cluster")]
    pub service_cluster: Option<String>,
}

impl Options {
    /// Workers to start: `--concurrency`, else the cores this process may use.
    pub fn workers(&self) -> usize {
        self.concurrency.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).max(1)
    }

    /// The `-l` value as a tracing level filter (Envoy's names included).
    pub fn level_filter(&self) -> Result<tracing_subscriber::filter::LevelFilter, String> {
        use tracing_subscriber::filter::LevelFilter;
        Ok(match self.log_level.as_str() {
            "trace" => LevelFilter::TRACE,
            "debug" => LevelFilter::DEBUG,
            "info" => LevelFilter::INFO,
            "warning" | "warn" => LevelFilter::WARN,
            "error" => LevelFilter::ERROR,
            // Courier logs nothing at Envoy's critical level (see `crate::logging`).
            "critical" | "off" => LevelFilter::OFF,
            other => return Err(format!("error: invalid log level '{other}'")),
        })
    }
}
