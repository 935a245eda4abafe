//! Sending segments, as Envoy's `TraceSegmentReporter`: each worker has one
//! client stream of `skywalking.v3.TraceSegmentReportService/collect` to the
//! collector's cluster (`grpc_client::stream`) and writes each finished
//! segment into it (`segments_sent`). While there is no stream — the collector
//! closed it or cannot be reached — segments wait in a queue of at most
//! `max_cache_size`, the oldest dropped past it (`segments_dropped`), and a
//! new stream is tried after a jittered back-off (500 ms doubling to 30 s,
//! Envoy's); once opened the queue is written into it (`segments_flushed`,
//! `segments_sent`, and `cache_flushed` once per flush). A stream that ends is
//! opened again after the back-off, as Envoy's `onRemoteClose` does. A request
//! never waits for the collector. Courier opens a worker's stream with its
//! first segment rather than at start-up; what the stream answers is not read,
//! as Envoy's.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::proto::SegmentObject;
use super::SkyWalkingDriver;
use crate::define_stats;
use crate::extensions::common::grpc_client::{ClientStream, GrpcClient};

const COLLECT_PATH: &str = "/skywalking.v3.TraceSegmentReportService/collect";
const RETRY_BASE_MS: u64 = 500;
const RETRY_MAX_MS: u64 = 30_000;

define_stats! {
    /// `tracing.skywalking.*`, shared by every SkyWalking provider.
    #[derive(Debug)]
    pub struct SkyWalkingStats {
        counter cache_flushed,
        counter segments_dropped,
        counter segments_flushed,
        counter segments_sent,
    }
}

/// One provider's stream and queue on one worker.
struct WorkerReporter {
    grpc: Rc<GrpcClient>,
    stream: Option<ClientStream>,
    cache: VecDeque<SegmentObject>,
    /// The next back-off interval; a wait is random below it.
    next_backoff_ms: u64,
    retry_pending: bool,
}

thread_local! {
    /// This worker's reporters, by provider index.
    static REPORTERS: RefCell<Vec<Option<Rc<RefCell<WorkerReporter>>>>> = const { RefCell::new(Vec::new()) };
}

fn worker_reporter(driver: &Arc<SkyWalkingDriver>) -> Rc<RefCell<WorkerReporter>> {
    REPORTERS.with(|r| {
        let mut r = r.borrow_mut();
        if r.len() <= driver.index {
            r.resize(driver.index + 1, None);
        }
        r[driver.index]
            .get_or_insert_with(|| {
                let grpc = Rc::new(driver.grpc.clone());
                let stream = grpc.stream(&driver.clusters, COLLECT_PATH);
                let reporter = Rc::new(RefCell::new(WorkerReporter {
                    grpc,
                    stream: None,
                    cache: VecDeque::new(),
                    next_backoff_ms: RETRY_BASE_MS,
                    retry_pending: false,
                }));
                if let Some(stream) = stream {
                    opened(driver, &reporter, stream);
                }
                reporter
            })
            .clone()
    })
}

/// Keeps `stream` as the worker's and watches it: once it ends, a new one is
/// tried after the back-off.
fn opened(driver: &Arc<SkyWalkingDriver>, reporter: &Rc<RefCell<WorkerReporter>>, stream: ClientStream) {
    let closed = stream.closed();
    reporter.borrow_mut().stream = Some(stream);
    let (driver, reporter) = (driver.clone(), Rc::downgrade(reporter));
    tokio::task::spawn_local(async move {
        closed.await;
        let Some(reporter) = reporter.upgrade() else { return };
        let mut r = reporter.borrow_mut();
        r.stream = None;
        if !r.retry_pending {
            r.retry_pending = true;
            let wait = backoff(&mut r);
            drop(r);
            tokio::task::spawn_local(retry(driver, reporter, wait));
        }
    });
}

/// Sends a finished segment, or keeps it until a stream is open again.
pub fn report(driver: &Arc<SkyWalkingDriver>, segment: SegmentObject) {
    let reporter = worker_reporter(driver);
    let mut r = reporter.borrow_mut();
    if let Some(stream) = r.stream.as_ref().filter(|s| s.is_open()) {
        if stream.send(&segment) {
            driver.stats.segments_sent.inc();
            return;
        }
    }
    r.stream = None;
    r.cache.push_back(segment);
    if r.cache.len() > driver.max_cache_size {
        driver.stats.segments_dropped.inc();
        r.cache.pop_front();
    }
    if !r.retry_pending {
        r.retry_pending = true;
        let wait = backoff(&mut r);
        drop(r);
        tokio::task::spawn_local(retry(driver.clone(), reporter, wait));
    }
}

/// Envoy's jittered exponential back-off: random below an interval that doubles.
fn backoff(r: &mut WorkerReporter) -> Duration {
    let interval = r.next_backoff_ms;
    r.next_backoff_ms = (interval * 2).min(RETRY_MAX_MS);
    Duration::from_millis(crate::common::random::below(interval))
}

/// Opens a new stream after `wait` and writes the queue into it; tries again
/// later when the cluster is not there.
async fn retry(driver: Arc<SkyWalkingDriver>, reporter: Rc<RefCell<WorkerReporter>>, mut wait: Duration) {
    loop {
        tokio::time::sleep(wait).await;
        let mut r = reporter.borrow_mut();
        let Some(stream) = r.grpc.stream(&driver.clusters, COLLECT_PATH) else {
            wait = backoff(&mut r);
            continue;
        };
        if !r.cache.is_empty() {
            for segment in std::mem::take(&mut r.cache) {
                if stream.send(&segment) {
                    driver.stats.segments_sent.inc();
                    driver.stats.segments_flushed.inc();
                }
            }
            driver.stats.cache_flushed.inc();
        }
        r.next_backoff_ms = RETRY_BASE_MS;
        r.retry_pending = false;
        drop(r);
        opened(&driver, &reporter, stream);
        return;
    }
}
