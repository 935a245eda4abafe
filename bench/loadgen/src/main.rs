//! bench/run's load generator (see bench/README.md).
//!
//! ```text
//! loadgen rate --port P [--path /] [--rate 5000] [--conns 50] [--seconds 10]
//! loadgen idle --port P [--path /] [--conns 5000]
//! loadgen idle-h2 --port P [--path /] [--conns 5000]
//! loadgen idle-tls --port P [--path /] [--conns 5000]
//! loadgen tls-new|tls-resume --port P [--path /] [--conns 50] [--seconds 10]
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
//! `idle-h2`: the same over HTTP/2 with prior knowledge (h2c): on each connection
//! the client preface, an empty SETTINGS, one GET on stream 1 read to its end
//! (SETTINGS and PING acknowledged meanwhile); raw frames, no HPACK beyond what a
//! `:status` needs.
//!
//! `idle-tls`: as `idle`, over TLS 1.3 (a full handshake each). `tls-new` and
//! `tls-resume`: a new TLS 1.3 connection per request, closed loop (see `tls`).
//!
//! HTTP/1.1 responses are parsed just enough for keep-alive: status line, `Content-Length`,
//! `Transfer-Encoding: chunked`, `Connection: close`.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

mod tls;

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
        "idle-h2" => idle_h2(&args),
        "idle-tls" => idle(&args),
        "tls-new" => tls::per_request(&args, false),
        "tls-resume" => tls::per_request(&args, true),
        other => Err(format!("unknown mode {other:?} (rate, idle, idle-h2, idle-tls, tls-new or tls-resume)")),
    });
    if let Err(e) = result {
        eprintln!("loadgen: {e}");
        std::process::exit(1);
    }
}

fn parse_args() -> Result<Args, String> {
    let mut argv = std::env::args().skip(1);
    let mode = argv.next().ok_or("usage: loadgen rate|idle|idle-h2|idle-tls|tls-new|tls-resume --port P [options]")?;
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
        args.conns = if args.mode.starts_with("idle") { 5000 } else { 50 };
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
    /// Responses that ended their connection (`Connection: close`, as a draining
    /// proxy says it): the next request reconnects.
    closed: u64,
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
        all.closed += t.closed;
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
                    tally.closed += 1;
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
        "{{\"target_rate\": {}, \"rate\": {achieved:.1}, \"count\": {n}, \"errors\": {}, \"non2xx\": {}, \"closed\": {}, \"elapsed_s\": {elapsed:.3}, \
         \"p50_ms\": {}, \"p90_ms\": {}, \"p99_ms\": {}, \"p999_ms\": {}, \"max_ms\": {}, \"wake_lag_p99_ms\": {}}}",
        args.rate,
        all.errors,
        all.non2xx,
        all.closed,
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
    if args.mode == "idle-tls" {
        let config = tls::config(false); // a full handshake each, as from distinct clients
        hold(args, |port| tls::connect(port, &config))
    } else {
        hold(args, connect)
    }
}

/// Opens the connections, one `GET` each, then holds them until stdin closes.
fn hold<S: Read + Write>(args: &Args, connect: impl Fn(u16) -> io::Result<BufReader<S>>) -> Result<(), String> {
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

// --- HTTP/2 (h2c, prior knowledge) ---------------------------------------------

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

fn idle_h2(args: &Args) -> Result<(), String> {
    let request = h2_request(args);
    let mut held = Vec::with_capacity(args.conns);
    for i in 0..args.conns {
        let fail = |e: io::Error| format!("connection {i} of {}: {e}", args.conns);
        let mut c = connect(args.port).map_err(fail)?;
        match h2_get(&mut c, &request).map_err(fail)? {
            200 => held.push(c),
            status => return Err(fail(io::Error::other(format!("status {status}")))),
        }
    }
    println!("ready");
    io::stdout().flush().map_err(|e| e.to_string())?;
    io::stdin().read_to_end(&mut Vec::new()).map_err(|e| e.to_string())?;
    drop(held);
    Ok(())
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    f.extend([kind, flags]);
    f.extend(stream.to_be_bytes());
    f.extend(payload);
    f
}

/// Preface, empty SETTINGS, and `GET path` on stream 1 with END_STREAM. HPACK:
/// `:method GET` (static 2), `:scheme http` (6), `:path` (4, or its name), and
/// `:authority` (name 1) as literals without indexing, no Huffman.
fn h2_request(args: &Args) -> Vec<u8> {
    let mut block = vec![0x82, 0x86];
    if args.path == "/" {
        block.push(0x84);
    } else {
        block.push(0x04);
        hpack_string(&mut block, args.path.as_bytes());
    }
    block.push(0x01);
    hpack_string(&mut block, format!("127.0.0.1:{}", args.port).as_bytes());
    let mut out = PREFACE.to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    out.extend(frame(HEADERS, END_STREAM | 0x4 /* END_HEADERS */, 1, &block));
    out
}

fn hpack_string(out: &mut Vec<u8>, s: &[u8]) {
    hpack_int(out, 0, 7, s.len());
    out.extend(s);
}

fn hpack_int(out: &mut Vec<u8>, first: u8, prefix: u32, mut n: usize) {
    let max = (1usize << prefix) - 1;
    if n < max {
        out.push(first | n as u8);
        return;
    }
    out.push(first | max as u8);
    n -= max;
    while n >= 128 {
        out.push((n % 128) as u8 | 0x80);
        n /= 128;
    }
    out.push(n as u8);
}

/// Sends the request and reads frames until stream 1 ends: its `:status`.
fn h2_get(conn: &mut BufReader<TcpStream>, request: &[u8]) -> io::Result<u16> {
    conn.get_mut().write_all(request)?;
    let mut status = None;
    loop {
        let mut head = [0u8; 9];
        conn.read_exact(&mut head)?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        conn.read_exact(&mut payload)?;
        match kind {
            SETTINGS if flags & ACK == 0 => conn.get_mut().write_all(&frame(SETTINGS, ACK, 0, &[]))?,
            PING if flags & ACK == 0 => conn.get_mut().write_all(&frame(PING, ACK, 0, &payload))?,
            GOAWAY => return Err(io::Error::other("GOAWAY")),
            RST_STREAM if stream == 1 => return Err(io::Error::other("RST_STREAM on stream 1")),
            HEADERS if stream == 1 => {
                if status.is_none() {
                    let mut block = &payload[..];
                    if flags & PADDED != 0 {
                        let pad = *block.first().ok_or_else(|| invalid("HEADERS"))? as usize;
                        block = block.get(1..block.len().saturating_sub(pad)).ok_or_else(|| invalid("HEADERS"))?;
                    }
                    if flags & PRIORITY != 0 {
                        block = block.get(5..).ok_or_else(|| invalid("HEADERS"))?;
                    }
                    status = Some(hpack_status(block).ok_or_else(|| invalid(&format!("header block {block:02x?}")))?);
                }
                if flags & END_STREAM != 0 {
                    break;
                }
            }
            DATA if stream == 1 && flags & END_STREAM != 0 => break,
            _ => {}
        }
    }
    status.ok_or_else(|| invalid("stream 1 ended without HEADERS"))
}

/// `:status` from the first field of a response's header block (after any dynamic
/// table size updates): an indexed static entry (8–14), or a literal with such a
/// name and a plain or Huffman-coded value.
fn hpack_status(mut block: &[u8]) -> Option<u16> {
    const STATIC: [u16; 7] = [200, 204, 206, 304, 400, 404, 500];
    while block.first()? & 0xe0 == 0x20 {
        // dynamic table size update: 5-bit prefix integer
        let mut i = 1;
        if block[0] & 0x1f == 0x1f {
            while block.get(i)? & 0x80 != 0 {
                i += 1;
            }
            i += 1;
        }
        block = block.get(i..)?;
    }
    let b = *block.first()?;
    if b & 0x80 != 0 {
        let index = (b & 0x7f) as usize;
        return STATIC.get(index.checked_sub(8)?).copied();
    }
    let index = if b & 0x40 != 0 { b & 0x3f } else { b & 0x0f } as usize;
    if !(8..=14).contains(&index) {
        return None;
    }
    let len = (block.get(1)? & 0x7f) as usize;
    let value = block.get(2..2 + len)?;
    let digits = if block[1] & 0x80 != 0 { huffman_digits(value)? } else { String::from_utf8(value.to_vec()).ok()? };
    digits.parse().ok()
}

/// Decodes a Huffman-coded string of digits (RFC 7541 Appendix B: '0'–'2' are 5
/// bits, 00000–00010; '3'–'9' are 6 bits, 011001–011111; padding is 1s).
fn huffman_digits(bytes: &[u8]) -> Option<String> {
    let bits: Vec<u8> = bytes.iter().flat_map(|b| (0..8).rev().map(move |i| (b >> i) & 1)).collect();
    let (mut out, mut i) = (String::new(), 0);
    while i < bits.len() {
        if bits[i..].iter().all(|&b| b == 1) && bits.len() - i < 8 {
            break; // padding
        }
        let code5 = bits.get(i..i + 5)?.iter().fold(0u8, |a, &b| a << 1 | b);
        if code5 <= 2 {
            out.push((b'0' + code5) as char);
            i += 5;
            continue;
        }
        let code6 = bits.get(i..i + 6)?.iter().fold(0u8, |a, &b| a << 1 | b);
        if (0x19..=0x1f).contains(&code6) {
            out.push((b'3' + code6 - 0x19) as char);
            i += 6;
            continue;
        }
        return None;
    }
    Some(out)
}

// --- HTTP/1.1 -----------------------------------------------------------------

fn request(args: &Args) -> Vec<u8> {
    format!("GET {} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUser-Agent: courier-bench-loadgen\r\n\r\n", args.path, args.port)
        .into_bytes()
}

fn connect(port: u16) -> io::Result<BufReader<TcpStream>> {
    Ok(BufReader::with_capacity(BUFFER, connect_tcp(port)?))
}

fn connect_tcp(port: u16) -> io::Result<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(READ_TIMEOUT))?;
    Ok(s)
}

/// Sends one request and reads the whole response: (status, connection reusable).
fn get<S: Read + Write>(conn: &mut BufReader<S>, request: &[u8]) -> io::Result<(u16, bool)> {
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

fn read_chunked<S: Read>(conn: &mut BufReader<S>) -> io::Result<()> {
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
fn read_line<S: Read>(conn: &mut BufReader<S>) -> io::Result<String> {
    let mut line = String::new();
    if conn.read_line(&mut line)? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn discard<S: Read>(conn: &mut BufReader<S>, n: u64) -> io::Result<()> {
    if io::copy(&mut conn.by_ref().take(n), &mut io::sink())? != n {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("bad response line {what:?}"))
}
