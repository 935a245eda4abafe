use clap::Parser;

use courier::server::{self, Options};

fn main() {
    let options = Options::parse();
    let level = match options.level_filter() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_thread_names(true)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .compact()
        .init();
    std::process::exit(server::run(options));
}
