//! Network filters. Courier's network filters so far are terminal (`tcp_proxy`, and
//! the HTTP connection manager to come): the filter takes the connection and runs
//! it to its end on the worker. Filters that only inspect or veto a connection
//! will get their own trait when the first one arrives.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::connection::DownstreamConnection;

/// A future that runs on one worker (it may hold `Rc`s).
pub type LocalBoxFuture = Pin<Box<dyn Future<Output = ()> + 'static>>;

/// Built once from config on the main thread, used by every worker.
pub trait NetworkFilterFactory: Send + Sync + Debug {
    /// Takes over `conn` and returns the task that serves it to completion.
    fn on_new_connection(&self, conn: DownstreamConnection) -> LocalBoxFuture;
}

/// A listener's network filter chain.
#[derive(Debug, Clone)]
pub struct FilterChain {
    pub name: String,
    pub terminal: Arc<dyn NetworkFilterFactory>,
}
