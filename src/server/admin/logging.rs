//! `/logging` (POST): lists the loggers and their levels, or changes them —
//! `?level=` all of them, `?<logger>=<level>` one, `?paths=a:l1,b:l2` several —
//! with Envoy's messages and status codes. A request with an unknown name or
//! level changes nothing.

use hyper::StatusCode;

use super::{Query, Reply, TEXT};
use crate::logging::{self, Level};

const USAGE: &str = "usage: /logging?<name>=<level> (change single level)\n\
usage: /logging?paths=name1:level1,name2:level2,... (change multiple levels)\n\
usage: /logging?level=<level> (change all levels)\n\
usage: /logging?group=<group_name>:<level> (change group of loggers)\n\
levels: trace debug info warning error critical off \n";

pub(super) fn handle(q: &Query) -> Reply {
    match change(q) {
        Ok(()) => Reply::ok(TEXT, active_loggers()),
        Err(e) => Reply {
            status: StatusCode::BAD_REQUEST,
            content_type: TEXT,
            body: format!("error: {e}\n\n{USAGE}{}", active_loggers()),
        },
    }
}

/// Applies the one change `q` asks for, if any.
fn change(q: &Query) -> Result<(), &'static str> {
    let [(key, value)] = q.0.as_slice() else {
        return if q.0.is_empty() { Ok(()) } else { Err("invalid number of parameters") };
    };
    match key.as_str() {
        // Envoy lists `""` among the levels: no change.
        "level" if value.is_empty() => Ok(()),
        "level" => {
            logging::set_all(level(value)?);
            Ok(())
        }
        "paths" => {
            let changes = value.split(',').map(|p| p.split_once(':').unwrap_or((p, ""))).map(|(n, l)| named(n, l));
            logging::set(&changes.collect::<Result<Vec<_>, _>>()?);
            Ok(())
        }
        "group" => Err("group parameter requires fine-grain logging to be enabled"),
        name => {
            logging::set(&[named(name, value)?]);
            Ok(())
        }
    }
}

fn named(name: &str, value: &str) -> Result<(usize, Level), &'static str> {
    let i = logging::logger_index(name).ok_or("unknown logger name")?;
    Ok((i, level(value)?))
}

fn level(value: &str) -> Result<Level, &'static str> {
    Level::parse(value).ok_or("unknown logger level")
}

/// `active loggers:` then `  <name>: <level>` lines and a blank line, as Envoy.
fn active_loggers() -> String {
    let mut out = String::from("active loggers:\n");
    for (name, level) in logging::levels() {
        out.push_str(&format!("  {name}: {}\n", level.name()));
    }
    out.push('\n');
    out
}
