//! Log levels by Envoy logger name, changeable while running (`/logging`).
//!
//! Envoy keeps one level per named logger (`admin`, `upstream`, ...). Courier logs
//! through `tracing`, whose target is the module path; each Courier module logs as
//! the Envoy logger of the same concern (`MODULES`), and a reloadable `Targets`
//! filter holds one level per module prefix. Every Envoy logger name is accepted and
//! listed, in Envoy's order; one no Courier module logs as holds its level and
//! changes nothing, as an Envoy logger no code uses. Events of dependencies (hyper,
//! tokio) follow `?level=` / `-l`.

use std::sync::Mutex;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Registry;

/// Envoy 1.40's loggers, in the order its `/logging` lists them.
pub const ENVOY_LOGGERS: &[&str] = &[
    "a2a",
    "admin",
    "ai_protocol_manager",
    "alternate_protocols_cache",
    "aws",
    "assert",
    "backtrace",
    "basic_auth",
    "cache_filter",
    "client",
    "config",
    "connection",
    "conn_handler",
    "compression",
    "credential_injector",
    "decompression",
    "dns",
    "dubbo",
    "envoy_bug",
    "ext_authz",
    "ext_proc",
    "rocketmq",
    "file",
    "filter",
    "forward_proxy",
    "geolocation",
    "grpc",
    "happy_eyeballs",
    "hc",
    "health_checker",
    "http",
    "http2",
    "hystrix",
    "init",
    "io",
    "jwt",
    "json_rpc",
    "kafka",
    "key_value_store",
    "lua",
    "local_rate_limit",
    "main",
    "matcher",
    "mcp",
    "misc",
    "mongo",
    "multi_connection",
    "notification",
    "oauth2",
    "quic",
    "quic_stream",
    "pool",
    "rate_limit_quota",
    "rbac",
    "rds",
    "redis",
    "router",
    "runtime",
    "stats",
    "secret",
    "sse",
    "tap",
    "testing",
    "thrift",
    "tracing",
    "upstream",
    "udp",
    "wasm",
    "websocket",
    "golang",
    "stats_sinks",
    "dynamic_modules",
    "ip_tagging",
];

/// `(tracing target prefix, Envoy logger)`: which logger a Courier module logs as.
const MODULES: &[(&str, &str)] = &[
    ("courier::access_log", "file"),
    ("courier::config", "config"),
    ("courier::event", "main"),
    ("courier::extensions", "filter"),
    ("courier::formatter", "misc"),
    ("courier::http", "http"),
    ("courier::network::connection", "connection"),
    ("courier::network", "conn_handler"),
    ("courier::router", "router"),
    ("courier::server::admin", "admin"),
    ("courier::server", "main"),
    ("courier::stats", "stats"),
    ("courier::thread_local", "main"),
    ("courier::upstream::dns", "dns"),
    ("courier::upstream::http1_conn_pool", "pool"),
    ("courier::upstream", "upstream"),
];

/// Envoy's log levels, by the names `/logging` and `-l` use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warning,
    Error,
    Critical,
    Off,
}

impl Level {
    /// A level as `/logging` names it (Envoy refuses `warn` there).
    pub fn parse(s: &str) -> Option<Level> {
        Some(match s {
            "trace" => Level::Trace,
            "debug" => Level::Debug,
            "info" => Level::Info,
            "warning" => Level::Warning,
            "error" => Level::Error,
            "critical" => Level::Critical,
            "off" => Level::Off,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
            Level::Critical => "critical",
            Level::Off => "off",
        }
    }

    /// `tracing` has no level above error and Courier logs nothing Envoy would
    /// call critical: at `critical`, as at `off`, nothing shows.
    fn filter(self) -> LevelFilter {
        match self {
            Level::Trace => LevelFilter::TRACE,
            Level::Debug => LevelFilter::DEBUG,
            Level::Info => LevelFilter::INFO,
            Level::Warning => LevelFilter::WARN,
            Level::Error => LevelFilter::ERROR,
            Level::Critical | Level::Off => LevelFilter::OFF,
        }
    }
}

/// The levels in force and the handle that swaps the filter.
struct State {
    /// Level of each of [`ENVOY_LOGGERS`], same index.
    levels: Vec<Level>,
    /// For targets no module maps (dependencies): the last `-l` / `?level=`.
    default: Level,
    handle: Option<reload::Handle<Targets, Registry>>,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

/// Installs the process's subscriber: every logger at `level`, lines on stderr.
pub fn init(level: Level) {
    let (filter, handle) = reload::Layer::new(targets(&vec![level; ENVOY_LOGGERS.len()], level));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_thread_names(true)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .compact();
    tracing_subscriber::registry().with(filter).with(fmt).init();
    *lock() = Some(State { levels: vec![level; ENVOY_LOGGERS.len()], default: level, handle: Some(handle) });
}

fn lock() -> std::sync::MutexGuard<'static, Option<State>> {
    // A panic while holding the lock leaves plain data: still usable.
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

fn targets(levels: &[Level], default: Level) -> Targets {
    let mut t = Targets::new().with_default(default.filter());
    for (prefix, logger) in MODULES {
        if let Some(i) = ENVOY_LOGGERS.iter().position(|l| l == logger) {
            t = t.with_target(*prefix, levels[i].filter());
        }
    }
    t
}

/// Every logger with its level, in Envoy's order (all `info` before `init`).
pub fn levels() -> Vec<(&'static str, Level)> {
    let guard = lock();
    let levels = guard.as_ref().map(|s| s.levels.clone()).unwrap_or_else(|| vec![Level::Info; ENVOY_LOGGERS.len()]);
    ENVOY_LOGGERS.iter().copied().zip(levels).collect()
}

/// Sets the named loggers (known names, checked by the caller) and applies them.
pub fn set(changes: &[(usize, Level)]) {
    update(|s| {
        for &(i, level) in changes {
            s.levels[i] = level;
        }
    });
}

/// Sets every logger, and what dependencies log at, to `level`.
pub fn set_all(level: Level) {
    update(|s| {
        s.levels.iter_mut().for_each(|l| *l = level);
        s.default = level;
    });
}

fn update(change: impl FnOnce(&mut State)) {
    let mut guard = lock();
    let state = guard.get_or_insert_with(|| State {
        levels: vec![Level::Info; ENVOY_LOGGERS.len()],
        default: Level::Info,
        handle: None,
    });
    change(state);
    if let Some(handle) = &state.handle {
        if let Err(e) = handle.reload(targets(&state.levels, state.default)) {
            eprintln!("courier: cannot change log levels: {e}");
        }
    }
}

/// The index of an Envoy logger name.
pub fn logger_index(name: &str) -> Option<usize> {
    ENVOY_LOGGERS.iter().position(|l| *l == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_logs_as_a_listed_logger() {
        for (prefix, logger) in MODULES {
            assert!(logger_index(logger).is_some(), "{prefix} logs as unknown logger {logger}");
        }
        assert_eq!(ENVOY_LOGGERS.len(), 73);
    }

    #[test]
    fn level_names_round_trip() {
        for name in ["trace", "debug", "info", "warning", "error", "critical", "off"] {
            assert_eq!(Level::parse(name).map(Level::name), Some(name));
        }
        assert_eq!(Level::parse("warn"), None);
    }
}
