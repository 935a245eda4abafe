//! Shutdown without loss, and zero-downtime binary upgrade by socket handoff,
//! measured under load: keep-alive clients looping requests and clients opening
//! a new connection per request run against Courier while it is upgraded three
//! times in a row (epoch 0 → 1 → 2 → 3) or sent SIGTERM.
//!
//! What counts as failed: a request whose bytes were written and that got no
//! whole `200` response: a reset (on write or read), an EOF before or in the
//! middle of the response, or a timeout. A client that cannot connect sent
//! nothing; that is counted apart (`refused`), and allowed only once the
//! server shuts down with no successor. A keep-alive client closes its
//! connection after a response with `connection: close`, and only then.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::http_util::{http_listener, indent, one_vhost, prefix_route};
use crate::shared_net::{read_until_closed, Closed};

/// Counts of the load's outcomes, shared by its client threads.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    ok: AtomicU64,
    /// Responses that said `connection: close` (the server draining).
    close_responses: AtomicU64,
    failed: AtomicU64,
    /// Failures that were a reset (ECONNRESET, EPIPE, ECONNABORTED).
    resets: AtomicU64,
    /// Connection attempts that failed: nothing was sent on them.
    refused: AtomicU64,
    /// New connections made.
    connections: AtomicU64,
}

impl Tally {
    fn get(&self, c: &AtomicU64) -> u64 {
        c.load(Ordering::SeqCst)
    }

    fn report(&self, what: &str) -> String {
        format!(
            "{what}: sent {} ok {} failed {} (resets {}) close-responses {} connections {} refused {}",
            self.get(&self.sent),
            self.get(&self.ok),
            self.get(&self.failed),
            self.get(&self.resets),
            self.get(&self.close_responses),
            self.get(&self.connections),
            self.get(&self.refused),
        )
    }
}

/// Why a request failed (printed with `{:?}` when one does).
#[derive(Debug)]
#[allow(dead_code)]
enum Failure {
    Reset,
    /// EOF before the first byte of the response.
    NoResponse,
    /// EOF or a bad line in the middle of the response.
    Partial,
    Timeout,
    Status(String),
    Other(std::io::Error),
}

fn failure_of(e: std::io::Error) -> Failure {
    match e.kind() {
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => Failure::Reset,
        ErrorKind::WouldBlock | ErrorKind::TimedOut => Failure::Timeout,
        ErrorKind::UnexpectedEof => Failure::Partial,
        _ => Failure::Other(e),
    }
}

/// One request on `conn`; `Ok(close)` with whether the response said
/// `connection: close`.
fn exchange(conn: &mut BufReader<TcpStream>, path: &str) -> Result<bool, Failure> {
    let request = format!("GET {path} HTTP/1.1\r\nhost: load\r\n\r\n");
    conn.get_mut().write_all(request.as_bytes()).map_err(failure_of)?;
    let mut line = String::new();
    if conn.read_line(&mut line).map_err(failure_of)? == 0 {
        return Err(Failure::NoResponse);
    }
    if !line.starts_with("HTTP/1.1 200 ") {
        return Err(if line.ends_with('\n') { Failure::Status(line) } else { Failure::Partial });
    }
    let (mut length, mut close) = (None, false);
    loop {
        line.clear();
        if conn.read_line(&mut line).map_err(failure_of)? == 0 {
            return Err(Failure::Partial);
        }
        let header = line.trim_end().to_ascii_lowercase();
        if header.is_empty() {
            break;
        }
        if let Some(v) = header.strip_prefix("content-length:") {
            length = v.trim().parse::<usize>().ok();
        }
        if header == "connection: close" {
            close = true;
        }
    }
    let mut body = vec![0u8; length.ok_or(Failure::Partial)?];
    conn.read_exact(&mut body).map_err(failure_of)?;
    Ok(close)
}

/// A client thread: `keep_alive` ones reuse their connection until the server
/// says `connection: close`; the others open a new one per request. `pause`
/// spaces requests out (it shapes the load; nothing waits on it).
fn client(addr: SocketAddr, keep_alive: bool, pause: Duration, stop: Arc<AtomicBool>, t: Arc<Tally>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut conn: Option<BufReader<TcpStream>> = None;
        while !stop.load(Ordering::SeqCst) {
            let mut c = match conn.take() {
                Some(c) => c,
                None => match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                    Ok(s) => {
                        let _ = s.set_read_timeout(Some(IO_TIMEOUT));
                        let _ = s.set_write_timeout(Some(IO_TIMEOUT));
                        t.connections.fetch_add(1, Ordering::SeqCst);
                        BufReader::new(s)
                    }
                    Err(_) => {
                        t.refused.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                },
            };
            t.sent.fetch_add(1, Ordering::SeqCst);
            match exchange(&mut c, if keep_alive { "/keep-alive" } else { "/new-connection" }) {
                Ok(close) => {
                    t.ok.fetch_add(1, Ordering::SeqCst);
                    if close {
                        t.close_responses.fetch_add(1, Ordering::SeqCst);
                    } else if keep_alive {
                        conn = Some(c);
                    }
                }
                Err(f) => {
                    eprintln!("request failed: {f:?}");
                    t.failed.fetch_add(1, Ordering::SeqCst);
                    if matches!(f, Failure::Reset) {
                        t.resets.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
            std::thread::sleep(pause);
        }
    })
}

/// The load: four keep-alive clients and four that connect per request.
struct Load {
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr) -> Load {
        let (stop, tally) = (Arc::new(AtomicBool::new(false)), Arc::new(Tally::default()));
        let mut threads = Vec::new();
        for _ in 0..4 {
            threads.push(client(addr, true, Duration::from_micros(500), stop.clone(), tally.clone()));
        }
        for _ in 0..4 {
            // Fast enough that connections sit in the accept queue as it closes; each
            // leaves a TIME_WAIT port behind, which bounds the rate.
            threads.push(client(addr, false, Duration::from_micros(200), stop.clone(), tally.clone()));
        }
        Load { stop, tally, threads }
    }

    /// Waits until `n` more requests have been answered (the load is flowing).
    fn wait_answered(&self, n: u64) {
        let target = self.tally.get(&self.tally.ok) + n;
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.tally.get(&self.tally.ok) < target {
            assert!(Instant::now() < deadline, "{}", self.tally.report("load stalled"));
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn stop(self) -> Arc<Tally> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().expect("load client panicked");
        }
        self.tally
    }
}

fn web_config(port: u16, upstream_port: u16) -> String {
    let listener = http_listener("web", "", &indent(&one_vhost(&prefix_route("/", "up", "")), 12), "")
        .replace("port_value: 0", &format!("port_value: {port}"));
    config(&[listener], &[static_cluster("up", &[upstream_port])])
}

/// A base id no other test process uses.
fn unique_base_id() -> String {
    (std::process::id() % 400_000_000).to_string()
}

#[test]
fn three_upgrades_under_load_lose_no_request() {
    let up = crate::http_util::http_upstream("up");
    let port = free_port();
    let yaml = web_config(port, up.port());
    let base_id = unique_base_id();
    let start = |epoch: u32| {
        let epoch = epoch.to_string();
        let args =
            ["--base-id", &base_id, "--restart-epoch", &epoch, "--drain-time-s", "5", "--parent-shutdown-time-s", "10"];
        Courier::start_with(&yaml, 2, &args, &[])
    };
    let mut current = start(0);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let load = Load::start(addr);
    load.wait_answered(1000);
    for epoch in 1..=3 {
        let began = Instant::now();
        // Ready (LIVE) means accepting on the sockets it took over.
        let next = start(epoch);
        assert_eq!(next.stat("server.hot_restart_epoch"), Some(i64::from(epoch)));
        let status = current.wait_exit(Duration::from_secs(15));
        assert!(status.success(), "epoch {} exited with {status}; log:\n{}", epoch - 1, current.log());
        assert!(current.log().contains("handed over to a newer process"), "{}", current.log());
        eprintln!("upgrade to epoch {epoch}: old process gone after {:?}", began.elapsed());
        current = next;
        load.wait_answered(1000);
    }
    let (_, info) = current.admin_get("/server_info");
    assert!(info.contains("\"restart_epoch\": 3"), "{info}");
    let tally = load.stop();
    eprintln!("{}", tally.report("three upgrades"));
    assert_eq!(tally.get(&tally.failed), 0, "{}", tally.report("failed requests"));
    assert_eq!(tally.get(&tally.resets), 0, "{}", tally.report("resets"));
    assert_eq!(tally.get(&tally.refused), 0, "{}", tally.report("refused connections"));
    // Each old process told its keep-alive clients to go with `connection: close`.
    assert!(tally.get(&tally.close_responses) >= 3, "{}", tally.report("no drain seen"));
}

#[test]
fn an_idle_connection_keeps_the_old_process_until_it_has_its_answer() {
    let up = crate::http_util::http_upstream("up");
    let port = free_port();
    let yaml = web_config(port, up.port());
    let base_id = unique_base_id();
    let start = |epoch: &str| {
        let args = ["--base-id", &base_id, "--restart-epoch", epoch, "--drain-time-s", "30"];
        Courier::start_with(&yaml, 1, &args, &[])
    };
    let mut old = start("0");
    let mut conn = BufReader::new(connect(format!("127.0.0.1:{port}").parse().unwrap()));
    assert!(!exchange(&mut conn, "/before").expect("first request"), "keep-alive");
    let new = start("1");
    // The old process drains with the connection idle: it stays open (and
    // counted by the new process), and a request on it is still answered.
    new.wait_stat("server.parent_connections", |v| v == 1);
    assert!(exchange(&mut conn, "/after").expect("request to the draining process"), "connection: close");
    drop(conn);
    assert!(old.wait_exit(Duration::from_secs(15)).success());
    new.wait_stat("server.parent_connections", |v| v == 0);
}

#[test]
fn drain_listeners_closes_the_sockets_kept_for_a_handoff_too() {
    let up = crate::http_util::http_upstream("up");
    let c = Courier::start_with(&web_config(free_port(), up.port()), 2, &["--base-id", &unique_base_id()], &[]);
    let addr = c.listener("web");
    assert_eq!(c.admin_post("/drain_listeners"), (200, "OK\n".to_string()));
    // Refused, not left unanswered: no copy of the socket stays open.
    c.wait_until(
        |_| {
            TcpStream::connect_timeout(&addr, Duration::from_millis(500))
                .is_err_and(|e| e.kind() == ErrorKind::ConnectionRefused)
        },
        "listener refusing connections",
    );
}

#[test]
fn sigterm_under_load_loses_no_request() {
    let up = crate::http_util::http_upstream("up");
    let yaml = web_config(free_port(), up.port());
    let mut c = Courier::start_with(&yaml, 2, &["--drain-time-s", "5"], &[]);
    let addr = c.listener("web");
    let load = Load::start(addr);
    load.wait_answered(2000);
    let began = Instant::now();
    c.send_signal(libc::SIGTERM);
    let status = c.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "exit status {status}");
    let exited = began.elapsed();
    let tally = load.stop();
    eprintln!("{} (exit {exited:?} after SIGTERM)", tally.report("SIGTERM"));
    assert_eq!(tally.get(&tally.failed), 0, "{}", tally.report("failed requests"));
    assert_eq!(tally.get(&tally.resets), 0, "{}", tally.report("resets"));
    // Every keep-alive client was told to close, so none waited for the drain time.
    assert!(exited < Duration::from_secs(5), "exit took {exited:?}");
}

#[test]
fn draining_answers_a_request_on_an_idle_connection_then_closes_idle_ones_cleanly() {
    let up = crate::http_util::http_upstream("up");
    let yaml = web_config(0, up.port());
    let mut c = Courier::start_with(&yaml, 1, &["--drain-time-s", "1"], &[]);
    let addr = c.listener("web");
    let open = |path| {
        let s = connect(addr);
        let mut conn = BufReader::new(s);
        assert!(!exchange(&mut conn, path).expect("first request"), "no drain yet");
        conn
    };
    let (mut writes_later, mut stays_idle) = (open("/a"), open("/b"));
    c.send_signal(libc::SIGTERM);
    c.wait_until(|c| c.admin_get("/ready").0 == 503, "DRAINING");
    // An idle connection is not closed under its client: a request now is
    // answered, with `connection: close`.
    assert!(exchange(&mut writes_later, "/a").expect("request while draining"), "connection: close");
    assert_eq!(read_until_closed(writes_later.get_mut(), IO_TIMEOUT).map(|(_, how)| how), Ok(Closed::Eof));
    // One that stays idle is closed once the drain time is over, with a FIN.
    let mut rest = Vec::new();
    let how = match stays_idle.get_mut().read_to_end(&mut rest) {
        Ok(_) => Closed::Eof,
        Err(_) => Closed::Reset,
    };
    assert_eq!((how, rest.len()), (Closed::Eof, 0));
    assert!(c.wait_exit(Duration::from_secs(15)).success());
}

#[test]
fn an_idle_client_does_not_hold_a_terminated_process_for_the_drain_time() {
    let up = crate::http_util::http_upstream("up");
    let yaml = web_config(0, up.port());
    let mut c = Courier::start_with(&yaml, 1, &["--drain-time-s", "60"], &[]);
    let mut idle = BufReader::new(connect(c.listener("web")));
    assert!(!exchange(&mut idle, "/a").expect("first request"), "keep-alive");
    let began = Instant::now();
    c.send_signal(libc::SIGTERM);
    // The idle connection is closed cleanly after the 5 s grace, not the 60 s
    // drain time, and the process then exits.
    let mut rest = Vec::new();
    let how = match idle.get_mut().read_to_end(&mut rest) {
        Ok(_) => Closed::Eof,
        Err(_) => Closed::Reset,
    };
    assert_eq!((how, rest.len()), (Closed::Eof, 0));
    assert!(c.wait_exit(Duration::from_secs(20)).success());
    let took = began.elapsed();
    assert!(took >= Duration::from_secs(4) && took < Duration::from_secs(15), "exit after {took:?}");
}
