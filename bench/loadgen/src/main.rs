//! bench/run's load generator (see bench/README.md).
//!
//! ```text
//! loadgen rate --port P [--path /] [--rate 5000] [--conns 50] [--seconds 10]
//! loadgen idle --port P [--path /] [--conns 5000]
//! ```
//!
//! `rate`: open loop at a fixed rate. Request i is scheduled at `start + i / rate`;
//! the schedule is dealt round-robin to `conns` keep-alive connections, one thread
//! each. A connection sends its next request at its scheduled time, or at once when
//! it is late (its previous response came back after that time), and the latency
//! is always counted from the *scheduled* time, so a stall shows up in every
//! request it delays (no coordinated omission). Prints one JSON line: rates, counts,
//! latency percentiles, and `wake_lag_p99_ms`, how late this generator itself woke
//! up for sends its connection was free for (a check on the load side).
//!
//! `idle`: opens `conns` keep-alive connections one after another, sends one GET on
//! each and reads the response, prints `ready`, then holds them open until stdin
//! closes.
//!
//! Responses are parsed just enough for keep-alive: status line, `Content-Length`,
//! `Transfer-Encoding: chunked`, `Connection: close`.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

const READ_TIMEOUT: Duration = Duration::from_secs(10);
const BUFFER: usize = 8 * 1024;

struct Args {
    mode: String,
    port: u16,
    path: String,
    rate: f64,
    conns: usize,
    seconds: f64,
}

fn main() {
    let result = parse_args().and_then(|args| match args.mode.as_str() {
        "rate" => rate(&args),
        "idle" => idle(&args),
        other => Err(format!("unknown mode {other:?} (rate or idle)")),
    });
    if let Err(e) = result {
        eprintln!("loadgen: {e}");
        std::process::exit(1);
    }
}

fn parse_args() -> Result<Args, String> {
    let mut argv = std::env::args().skip(1);
    let mode = argv.next().ok_or("usage: loadgen rate|idle --port P [options]")?;
    let mut args = Args { port: 0, path: "/".into(), rate: 5000.0, conns: 0, seconds: 10.0, mode };
    while let Some(flag) = argv.next() {
        let value = argv.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--port" => args.port = number(&flag, &value)?,
            "--path" => args.path = value,
            "--rate" => args.rate = number(&flag, &value)?,
            "--conns" => args.conns = number(&flag, &value)?,
            "--seconds" => args.seconds = number(&flag, &value)?,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if args.port == 0 {
        return Err("--port is required".into());
    }
    if args.conns == 0 {
        args.conns = if args.mode == "idle" { 5000 } else { 50 };
    }
    if args.rate <= 0.0 || args.seconds <= 0.0 {
        return Err("--rate and --seconds must be positive".into());
    }
    Ok(args)
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value.parse().map_err(|_| format!("bad value for {flag}: {value:?}"))
}

// --- rate ---------------------------------------------------------------------

/// What one connection's thread measured.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    /// How late this generator woke up for sends its connection was free for in time:
    /// the load side's own lateness (e.g. CPU 0 busy), which also counts as latency.
    wake_lags_us: Vec<u32>,
    errors: u64,
    non2xx: u64,
    last_done: Option<Instant>,
}

fn rate(args: &Args) -> Result<(), String> {
    precise_sleep();
    let total = (args.rate * args.seconds).round() as u64;
    let request = request(args);
    let mut conns = Vec::new();
    for _ in 0..args.conns {
        conns.push(connect(args.port).map_err(|e| format!("connect to 127.0.0.1:{}: {e}", args.port))?);
    }
    let start = Instant::now() + Duration::from_millis(10);
    let threads: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(first, conn)| {
            let (request, port, rate, step) = (request.clone(), args.port, args.rate, args.conns);
            let schedule =
                (first as u64..total).step_by(step).map(move |i| start + Duration::from_secs_f64(i as f64 / rate));
            thread::spawn(move || run_schedule(conn, port, &request, schedule))
        })
        .collect();
    let mut all = Tally::default();
    for t in threads {
        let t = t.join().map_err(|_| "a connection thread panicked")?;
        all.latencies_us.extend(t.latencies_us);
        all.wake_lags_us.extend(t.wake_lags_us);
        all.errors += t.errors;
        all.non2xx += t.non2xx;
        all.last_done = all.last_done.max(t.last_done);
    }
    println!("{}", report(args, all, start));
    Ok(())
}

/// Sends one request at each scheduled time (at once when late) on one connection,
/// reconnecting after an error or a `Connection: close`.
fn run_schedule(
    conn: BufReader<TcpStream>,
    port: u16,
    request: &[u8],
    schedule: impl Iterator<Item = Instant>,
) -> Tally {
    let mut tally = Tally::default();
    let mut conn = Some(conn);
    for scheduled in schedule {
        if let Some(wait) = scheduled.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
            tally.wake_lags_us.push(micros(Instant::now() - scheduled));
        }
        let c = match conn.take().map_or_else(|| connect(port), Ok) {
            Ok(c) => conn.insert(c),
            Err(_) => {
                tally.errors += 1;
                continue;
            }
        };
        match get(c, request) {
            Ok((status, keep_alive)) => {
                let done = Instant::now();
                tally.latencies_us.push(micros(done - scheduled));
                tally.last_done = Some(done);
                if !(200..400).contains(&status) {
                    tally.non2xx += 1;
                }
                if !keep_alive {
                    conn = None;
                }
            }
            Err(_) => {
                tally.errors += 1;
                conn = None;
            }
        }
    }
    tally
}

fn report(args: &Args, mut all: Tally, start: Instant) -> String {
    all.latencies_us.sort_unstable();
    all.wake_lags_us.sort_unstable();
    let n = all.latencies_us.len();
    let elapsed = all.last_done.map_or(0.0, |t| t.duration_since(start).as_secs_f64());
    let achieved = if elapsed > 0.0 { n as f64 / elapsed } else { 0.0 };
    let ms = |q| percentile_ms(&all.latencies_us, q);
    format!(
        "{{\"target_rate\": {}, \"rate\": {achieved:.1}, \"count\": {n}, \"errors\": {}, \"non2xx\": {}, \"elapsed_s\": {elapsed:.3}, \
         \"p50_ms\": {}, \"p90_ms\": {}, \"p99_ms\": {}, \"p999_ms\": {}, \"max_ms\": {}, \"wake_lag_p99_ms\": {}}}",
        args.rate,
        all.errors,
        all.non2xx,
        ms(0.50),
        ms(0.90),
        ms(0.99),
        ms(0.999),
        ms(1.0),
        percentile_ms(&all.wake_lags_us, 0.99)
    )
}

/// The q-quantile (nearest rank) of sorted µs values, in ms as JSON (null when empty).
fn percentile_ms(sorted_us: &[u32], q: f64) -> String {
    match sorted_us.len() {
        0 => "null".to_string(),
        n => format!("{:.3}", sorted_us[((q * n as f64).ceil() as usize).clamp(1, n) - 1] as f64 / 1000.0),
    }
}

fn micros(d: Duration) -> u32 {
    d.as_micros().min(u32::MAX as u128) as u32
}

/// Timer slack is 50 µs by default: every sleep would end up to 50 µs late, and
/// that would count as proxy latency. Threads inherit the setting.
fn precise_sleep() {
    extern "C" {
        fn prctl(option: i32, ...) -> i32;
    }
    const PR_SET_TIMERSLACK: i32 = 29;
    // SAFETY: prctl(PR_SET_TIMERSLACK, 1) only changes this thread's timer slack.
    unsafe { prctl(PR_SET_TIMERSLACK, 1u64) };
}

// --- idle ---------------------------------------------------------------------

fn idle(args: &Args) -> Result<(), String> {
    let request = request(args);
    let mut held = Vec::with_capacity(args.conns);
    for i in 0..args.conns {
        let fail = |e: io::Error| format!("connection {i} of {}: {e}", args.conns);
        let mut c = connect(args.port).map_err(fail)?;
        match get(&mut c, &request).map_err(fail)? {
            (200, true) => held.push(c),
            (status, keep_alive) => {
                return Err(fail(io::Error::other(format!("status {status}, keep-alive {keep_alive}"))))
            }
        }
    }
    println!("ready");
    io::stdout().flush().map_err(|e| e.to_string())?;
    io::stdin().read_to_end(&mut Vec::new()).map_err(|e| e.to_string())?;
    drop(held);
    Ok(())
}

// --- HTTP/1.1 -----------------------------------------------------------------

fn request(args: &Args) -> Vec<u8> {
    format!("GET {} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUser-Agent: courier-bench-loadgen\r\n\r\n", args.path, args.port)
        .into_bytes()
}

fn connect(port: u16) -> io::Result<BufReader<TcpStream>> {
    let s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(READ_TIMEOUT))?;
    Ok(BufReader::with_capacity(BUFFER, s))
}

/// Sends one request and reads the whole response: (status, connection reusable).
fn get(conn: &mut BufReader<TcpStream>, request: &[u8]) -> io::Result<(u16, bool)> {
    conn.get_mut().write_all(request)?;
    let status_line = read_line(conn)?;
    let status: u16 =
        status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| invalid(&status_line))?;
    let (mut length, mut chunked, mut close) = (None, false, status_line.starts_with("HTTP/1.0"));
    loop {
        let line = read_line(conn)?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').ok_or_else(|| invalid(&line))?;
        let value = value.trim().to_ascii_lowercase();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = Some(value.parse::<u64>().map_err(|_| invalid(&line))?),
            "transfer-encoding" => chunked = value.ends_with("chunked"),
            "connection" => close = value.split(',').any(|t| t.trim() == "close"),
            _ => {}
        }
    }
    if chunked {
        read_chunked(conn)?;
    } else if let Some(n) = length {
        discard(conn, n)?;
    } else if !(status == 204 || status == 304 || status < 200) {
        io::copy(conn, &mut io::sink())?; // delimited by the end of the connection
        close = true;
    }
    Ok((status, !close))
}

fn read_chunked(conn: &mut BufReader<TcpStream>) -> io::Result<()> {
    loop {
        let line = read_line(conn)?;
        let size = line
            .split(';')
            .next()
            .and_then(|s| u64::from_str_radix(s.trim(), 16).ok())
            .ok_or_else(|| invalid(&line))?;
        if size == 0 {
            while !read_line(conn)?.is_empty() {} // trailers
            return Ok(());
        }
        discard(conn, size)?;
        if !read_line(conn)?.is_empty() {
            return Err(invalid("chunk not followed by CRLF"));
        }
    }
}

/// One line without its CRLF; an error at the end of the stream.
fn read_line(conn: &mut BufReader<TcpStream>) -> io::Result<String> {
    let mut line = String::new();
    if conn.read_line(&mut line)? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn discard(conn: &mut BufReader<TcpStream>, n: u64) -> io::Result<()> {
    if io::copy(&mut conn.by_ref().take(n), &mut io::sink())? != n {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("bad response line {what:?}"))
}
