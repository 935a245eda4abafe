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

    /// How long open connections may drain after shutdown or a handoff starts, in
    /// seconds: requests get `connection: close` meanwhile, and connections still
    /// idle at its end are closed.
    #[arg(long = "drain-time-s", default_value_t = 600)]
    pub drain_time_s: u64,

    /// After a handoff, how long the old process may run before it exits, in
    /// seconds (it exits earlier once its connections are done).
    #[arg(long = "parent-shutdown-time-s", default_value_t = 900)]
    pub parent_shutdown_time_s: u64,

    /// The base id of a family of Courier processes that upgrade into each other
    /// (Envoy's hot-restart id): names the handoff socket. Giving it (or
    /// `--restart-epoch`) turns socket handoff on.
    #[arg(long = "base-id")]
    pub base_id: Option<u32>,

    /// 0 for the first process of a base id; N takes the listen sockets of the
    /// running epoch N-1 over and tells it to drain and exit.
    #[arg(long = "restart-epoch")]
    pub restart_epoch: Option<u32>,

    /// Print the socket handoff protocol's version and exit.
    #[arg(long = "hot-restart-version")]
    pub hot_restart_version: bool,

    /// No handoff socket, even with `--base-id`.
    #[arg(long = "disable-hot-restart")]
    pub disable_hot_restart: bool,

    /// The handoff sockets' name prefix: `@name` is an abstract socket (the
    /// default), anything else a file path.
    #[arg(long = "socket-path", default_value = "@courier_domain_socket")]
    pub socket_path: String,

    /// The permissions of a file handoff socket, in octal.
    #[arg(long = "socket-mode", default_value = "600", value_parser = parse_octal)]
    pub socket_mode: u32,

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

fn parse_octal(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s, 8).map_err(|_| format!("'{s}' is not an octal file mode"))
}

impl Options {
    /// Whether this process takes part in socket handoff (listens for a new
    /// process, and takes over from the previous epoch when it is not the first).
    pub fn handoff_enabled(&self) -> bool {
        !self.disable_hot_restart && (self.base_id.is_some() || self.restart_epoch.is_some())
    }

    pub fn epoch(&self) -> u32 {
        self.restart_epoch.unwrap_or(0)
    }

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
