//! Log writers: one thread per destination (a file, stdout, stderr) takes formatted
//! lines from a bounded channel and writes them in batches, so a worker never waits
//! on disk. A full channel drops the line and counts it. A batch is written as soon as
//! the channel is drained, so lines reach the file within moments (Envoy waits up to
//! `file_flush_interval`, 10 s by default). Loggers naming the same destination share
//! one writer, as Envoy's access log manager does.
//!
//! Stats (`filesystem.*`, Envoy's names): `write_buffered` (lines queued),
//! `write_completed` / `write_failed` (batch writes), `reopen_failed`, gauge
//! `write_total_buffered` (bytes queued); plus Courier's `write_dropped` (lines dropped
//! because the writer fell behind). They are created in the store of the first logger
//! that opens the destination.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use super::config::Sink;
use crate::stats::Store;

/// Lines queued per destination before new ones are dropped.
const QUEUE_LINES: usize = 16 * 1024;
/// Bytes gathered before a write, when more lines are waiting.
const BATCH_BYTES: usize = 64 * 1024;

crate::define_stats! {
    /// `filesystem.*`.
    pub struct AccessLogFileStats {
        counter write_buffered,
        counter write_completed,
        counter write_failed,
        counter write_dropped,
        counter reopen_failed,
        gauge write_total_buffered,
    }
}

enum Msg {
    Line(String),
    /// Write what is queued before this, then answer.
    Flush(mpsc::Sender<()>),
    /// Write what is queued, then reopen the file (log rotation).
    Reopen,
}

/// The sending side of one destination's writer thread.
pub(crate) struct LogWriter {
    tx: Option<SyncSender<Msg>>,
    stats: Arc<AccessLogFileStats>,
    thread: Option<JoinHandle<()>>,
    name: String,
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriter").field("destination", &self.name).finish()
    }
}

/// Live writers by destination.
static WRITERS: Mutex<BTreeMap<String, Weak<LogWriter>>> = Mutex::new(BTreeMap::new());

fn writers() -> MutexGuard<'static, BTreeMap<String, Weak<LogWriter>>> {
    WRITERS.lock().unwrap_or_else(|e| e.into_inner())
}

/// The writer for `sink`, shared with any live logger of the same destination; files
/// are opened (append, created if missing) here so a bad path fails config load.
pub(crate) fn open(sink: &Sink, store: &Store) -> io::Result<Arc<LogWriter>> {
    let name = sink.destination().to_string();
    let mut map = writers();
    if let Some(w) = map.get(&name).and_then(Weak::upgrade) {
        return Ok(w);
    }
    map.retain(|_, w| w.strong_count() > 0);
    let dest = Destination::open(sink)?;
    let (tx, rx) = mpsc::sync_channel(QUEUE_LINES);
    let stats = Arc::new(AccessLogFileStats::new(store, "filesystem."));
    let thread_stats = stats.clone();
    let thread =
        std::thread::Builder::new().name("access_log".to_string()).spawn(move || run(dest, rx, &thread_stats))?;
    let w = Arc::new(LogWriter { tx: Some(tx), stats, thread: Some(thread), name: name.clone() });
    map.insert(name, Arc::downgrade(&w));
    Ok(w)
}

impl LogWriter {
    /// Queues one line; never blocks.
    pub(crate) fn write(&self, line: String) {
        let Some(tx) = &self.tx else { return };
        let len = line.len() as i64;
        // Counted before sending so the writer's decrement never comes first.
        self.stats.write_total_buffered.add(len);
        match tx.try_send(Msg::Line(line)) {
            Ok(()) => self.stats.write_buffered.inc(),
            Err(e) => {
                self.stats.write_total_buffered.sub(len);
                match e {
                    TrySendError::Full(_) => self.stats.write_dropped.inc(),
                    TrySendError::Disconnected(_) => self.stats.write_failed.inc(),
                }
            }
        }
    }

    /// Waits (up to `timeout`, after finding room in the queue) until every line
    /// queued so far is written.
    pub(crate) fn flush(&self, timeout: Duration) -> bool {
        let Some(tx) = &self.tx else { return false };
        let (ack_tx, ack_rx) = mpsc::channel();
        // May wait for room in the queue: only the main thread and tests call this.
        if tx.send(Msg::Flush(ack_tx)).is_err() {
            return false;
        }
        ack_rx.recv_timeout(timeout).is_ok()
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        // Closing the channel lets the thread write what is queued and exit.
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Every live writer.
fn live() -> Vec<Arc<LogWriter>> {
    writers().values().filter_map(Weak::upgrade).collect()
}

/// Writes out every queued line of every access log (before exit); false if some
/// writer did not finish within `timeout`.
pub fn flush_all(timeout: Duration) -> bool {
    live().iter().all(|w| w.flush(timeout))
}

/// Reopens every access log file after what is queued is written (log rotation,
/// Envoy's `/reopen_logs`). Failures count `filesystem.reopen_failed`.
pub fn reopen_all() {
    for w in live() {
        if let Some(tx) = &w.tx {
            let _ = tx.send(Msg::Reopen);
        }
    }
}

enum Destination {
    File { path: PathBuf, file: Option<File> },
    Stdout,
    Stderr,
}

impl Destination {
    fn open(sink: &Sink) -> io::Result<Destination> {
        Ok(match sink {
            Sink::File(path) => Destination::File { path: path.clone(), file: Some(open_append(path)?) },
            Sink::Stdout => Destination::Stdout,
            Sink::Stderr => Destination::Stderr,
        })
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Destination::File { file: Some(f), .. } => f.write_all(buf),
            Destination::File { file: None, .. } => Err(io::Error::other("the file could not be reopened")),
            Destination::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(buf)?;
                out.flush()
            }
            Destination::Stderr => io::stderr().lock().write_all(buf),
        }
    }

    fn reopen(&mut self) -> io::Result<()> {
        if let Destination::File { path, file } = self {
            *file = None;
            *file = Some(open_append(path)?);
        }
        Ok(())
    }
}

fn open_append(path: &PathBuf) -> io::Result<File> {
    OpenOptions::new().append(true).create(true).open(path)
}

/// The writer thread: gathers what is queued, writes it, repeats until every sender
/// is gone.
fn run(mut dest: Destination, rx: Receiver<Msg>, stats: &AccessLogFileStats) {
    let mut buf: Vec<u8> = Vec::with_capacity(BATCH_BYTES);
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(msg) = next {
            match msg {
                Msg::Line(line) => {
                    buf.extend_from_slice(line.as_bytes());
                    if buf.len() >= BATCH_BYTES {
                        write_batch(&mut dest, &mut buf, stats);
                    }
                }
                Msg::Flush(ack) => {
                    write_batch(&mut dest, &mut buf, stats);
                    let _ = ack.send(());
                }
                Msg::Reopen => {
                    write_batch(&mut dest, &mut buf, stats);
                    if dest.reopen().is_err() {
                        stats.reopen_failed.inc();
                    }
                }
            }
            next = rx.try_recv().ok();
        }
        write_batch(&mut dest, &mut buf, stats);
    }
}

fn write_batch(dest: &mut Destination, buf: &mut Vec<u8>, stats: &AccessLogFileStats) {
    if buf.is_empty() {
        return;
    }
    match dest.write_all(buf) {
        Ok(()) => stats.write_completed.inc(),
        Err(_) => stats.write_failed.inc(),
    }
    // Buffered until written, as Envoy's gauge: a reader that sees 0 finds every
    // line logged so far in the file.
    stats.write_total_buffered.sub(buf.len() as i64);
    buf.clear();
}
