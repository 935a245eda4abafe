//! Per-worker span batching, as Envoy's tracers do it: each worker keeps each
//! provider's finished spans in a buffer of its own (a thread-local, no lock)
//! and hands them to the provider's sender when `<prefix>.min_flush_spans`
//! (runtime, default 5) have gathered, and every `<prefix>.flush_interval_ms`
//! (default 5000) from the worker's first span on (Envoy's timer runs from
//! start-up on every thread, so `timer_flushed` counts differently). Zipkin and
//! OpenTelemetry differ only in what a span is and how a batch is sent; Datadog's
//! tracer has no runtime keys: it sends on its 2 s timer alone.

use std::any::Any;
use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A provider whose spans are batched.
pub trait Batched: Send + Sync + 'static {
    type Span: 'static;
    /// `tracing.zipkin`, `tracing.opentelemetry`: its runtime keys' prefix;
    /// `None` for a provider whose flushing is not tunable.
    const RUNTIME_PREFIX: Option<&'static str>;
    /// How many spans make a batch, and how often the timer flushes.
    const DEFAULT_MIN_FLUSH_SPANS: u64 = 5;
    const DEFAULT_FLUSH_INTERVAL_MS: u64 = 5000;
    /// Its buffer's place on every worker (`next_index`).
    fn index(&self) -> usize;
    /// Counts a flush by the timer.
    fn timer_flushed(&self);
    /// Sends a batch (never empty), from the worker's loop.
    fn send(self: &Arc<Self>, spans: Vec<Self::Span>);
}

static NEXT_INDEX: AtomicUsize = AtomicUsize::new(0);

/// A place for a new provider's buffers.
pub fn next_index() -> usize {
    NEXT_INDEX.fetch_add(1, Ordering::Relaxed)
}

struct Buffer<S> {
    spans: RefCell<Vec<S>>,
}

thread_local! {
    /// This worker's buffers, by provider index; each an `Rc<Buffer<P::Span>>`.
    static BUFFERS: RefCell<Vec<Option<Rc<dyn Any>>>> = const { RefCell::new(Vec::new()) };
}

fn runtime_integer(prefix: Option<&str>, key: &str, default: u64) -> u64 {
    let Some(prefix) = prefix else { return default };
    crate::runtime::snapshot().map_or(default, |s| s.get_integer(&format!("{prefix}.{key}"), default))
}

/// Buffers a finished span; sends the buffer once it is full.
pub fn report<P: Batched>(provider: &Arc<P>, span: P::Span) {
    let buffer = BUFFERS.with(|b| {
        let mut b = b.borrow_mut();
        if b.len() <= provider.index() {
            b.resize(provider.index() + 1, None);
        }
        let slot = &mut b[provider.index()];
        if let Some(buffer) = slot.clone().and_then(|any| any.downcast::<Buffer<P::Span>>().ok()) {
            return buffer;
        }
        let buffer = Rc::new(Buffer { spans: RefCell::new(Vec::new()) });
        tokio::task::spawn_local(flush_timer(provider.clone(), Rc::downgrade(&buffer)));
        *slot = Some(buffer.clone() as Rc<dyn Any>);
        buffer
    });
    buffer.spans.borrow_mut().push(span);
    let min = runtime_integer(P::RUNTIME_PREFIX, "min_flush_spans", P::DEFAULT_MIN_FLUSH_SPANS);
    if buffer.spans.borrow().len() as u64 >= min {
        flush(provider, &buffer);
    }
}

async fn flush_timer<P: Batched>(provider: Arc<P>, buffer: Weak<Buffer<P::Span>>) {
    loop {
        let ms = runtime_integer(P::RUNTIME_PREFIX, "flush_interval_ms", P::DEFAULT_FLUSH_INTERVAL_MS);
        tokio::time::sleep(Duration::from_millis(ms.max(1))).await;
        let Some(buffer) = buffer.upgrade() else { return };
        provider.timer_flushed();
        flush(&provider, &buffer);
    }
}

fn flush<P: Batched>(provider: &Arc<P>, buffer: &Buffer<P::Span>) {
    let spans = std::mem::take(&mut *buffer.spans.borrow_mut());
    if !spans.is_empty() {
        provider.send(spans);
    }
}
