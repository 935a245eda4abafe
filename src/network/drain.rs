//! The server's drain, as connections see it (Envoy's `DrainDecision`).
//!
//! Draining has two phases because closing an idle HTTP/1 keep-alive connection
//! races its client: a request written as the FIN leaves is lost, and one that
//! arrives after the close makes the kernel answer with a reset. So while the
//! server drains, connections finish what is in flight and answer every request
//! that arrives with `connection: close` (HTTP/2 sends GOAWAY); only after a
//! grace (the connection manager's `drain_timeout`, 5 s by default, or the
//! drain time if shorter) are connections that stayed idle closed, and then
//! with a lingering close (see the connection manager's `http1_connection`).

/// How long idle connections may stay open once a drain starts (bounded by the
/// drain time): the HTTP connection manager's `drain_timeout` default in Envoy.
pub const IDLE_DRAIN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Where the server is in its drain; carried to every connection by a
/// `tokio::sync::watch` channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum DrainPhase {
    /// Serving normally.
    #[default]
    Serving,
    /// Shutting down or handed over: no keep-alive beyond the current request.
    Draining,
    /// The drain time is over: connections with nothing in flight close now.
    CloseIdle,
}

impl DrainPhase {
    pub fn is_draining(self) -> bool {
        self != DrainPhase::Serving
    }
}

/// What a connection watches for the drain.
pub type DrainWatch = tokio::sync::watch::Receiver<DrainPhase>;

/// A drain watch of its own for a listener that may drain before the server
/// does (an LDS listener replaced or removed), which also follows the server's
/// drain: what the server's watch says is raised into it until no receiver is
/// left. Must run on a dispatcher (the follower is a local task).
pub fn listener_drain(server: &DrainWatch) -> (std::rc::Rc<tokio::sync::watch::Sender<DrainPhase>>, DrainWatch) {
    let (tx, rx) = tokio::sync::watch::channel(*server.borrow());
    let tx = std::rc::Rc::new(tx);
    let (follower, mut server) = (tx.clone(), server.clone());
    tokio::task::spawn_local(async move {
        loop {
            tokio::select! {
                changed = server.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let phase = *server.borrow_and_update();
                    raise(&follower, phase);
                }
                () = follower.closed() => return,
            }
        }
    });
    (tx, rx)
}

/// Moves a drain watch on to `phase`, never back.
pub fn raise(watch: &tokio::sync::watch::Sender<DrainPhase>, phase: DrainPhase) {
    watch.send_if_modified(|p| {
        let was = std::mem::replace(p, (*p).max(phase));
        was != *p
    });
}
