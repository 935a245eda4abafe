//! The shared test client's close detection (`tests/shared/net.rs`): a close is an
//! EOF or a reset seen in time, never a read timeout, so that a test asserting a
//! close fails when the peer keeps the connection open.

use std::io::Write;
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::shared_net::{read_until_closed, Client, Closed};

/// An upstream that runs `then` on each connection, after a `go` from the test.
fn held(then: fn(TcpStream)) -> (Upstream, mpsc::Sender<()>) {
    let (tx, rx) = mpsc::channel::<()>();
    let rx = std::sync::Mutex::new(rx);
    let up = Upstream::start(move |s| {
        let _ = rx.lock().unwrap().recv_timeout(IO_TIMEOUT);
        then(s);
    });
    (up, tx)
}

#[test]
fn an_open_connection_is_not_closed_when_the_wait_times_out() {
    let (up, go) = held(drop);
    let mut client = Client::connect(up.addr);
    let started = Instant::now();
    let e = client.wait_closed(Duration::from_millis(300)).expect_err("the peer is still open");
    assert!(e.starts_with("still open after 300ms"), "{e}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    // Once the peer closes, the same client sees it.
    go.send(()).unwrap();
    assert_eq!(client.wait_closed(IO_TIMEOUT), Ok(Closed::Eof));
}

#[test]
fn eof_reset_and_data_are_told_apart() {
    let (up, go) = held(drop);
    let mut s = connect(up.addr);
    go.send(()).unwrap();
    assert_eq!(read_until_closed(&mut s, IO_TIMEOUT), Ok((Vec::new(), Closed::Eof)));

    // SO_LINGER 0: close sends a reset.
    let (up, go) = held(|s| {
        socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO)).unwrap();
    });
    let mut s = connect(up.addr);
    go.send(()).unwrap();
    assert_eq!(read_until_closed(&mut s, IO_TIMEOUT), Ok((Vec::new(), Closed::Reset)));

    let (up, go) = held(|mut s| {
        s.write_all(b"late").unwrap();
    });
    let mut client = Client::connect(up.addr);
    go.send(()).unwrap();
    let e = client.wait_closed(IO_TIMEOUT).expect_err("bytes came first");
    assert!(e.contains("4 unexpected bytes"), "{e}");
}
