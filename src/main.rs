use clap::Parser;

use courier::logging::{self, Level};
use courier::server::{self, Options};

fn main() {
    let options = Options::parse();
    if let Err(e) = options.level_filter() {
        eprintln!("{e}");
        std::process::exit(1);
    }
    // `-l` also takes `warn`, which `/logging` does not.
    let level = match options.log_level.as_str() {
        "warn" => Level::Warning,
        other => Level::parse(other).unwrap_or(Level::Info),
    };
    logging::init(level);
    std::process::exit(server::run(options));
}
