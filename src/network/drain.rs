//! The server's drain, as connections see it (Envoy's `DrainDecision`).
//!
//! Draining has two phases because closing an idle HTTP/1 keep-alive connection
//! races its client: a request written as the FIN leaves is lost, and one that
//! arrives after the close makes the kernel answer with a reset. So while the
//! server drains, connections finish what is in flight and answer every request
//! that arrives with `connection: close` (HTTP/2 sends GOAWAY); only after a
//! grace (Envoy's connection-manager `drain_timeout` default, 5 s, or the drain
//! time if shorter) are connections that stayed idle closed, and then with a
//! lingering close (see `http::conn_manager::http1_connection`).

/// Where the server is in its drain; carried to every connection by a
/// `tokio::sync::watch` channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum DrainPhase {
    /// Serving normally.
    #[default]
    Serving,
    /// Shutting down or handed over: no keep-alive beyond the current request.
    Draining,
    /// The idle grace is over: connections with nothing in flight close now.
    CloseIdle,
}

impl DrainPhase {
    pub fn is_draining(self) -> bool {
        self != DrainPhase::Serving
    }
}

/// What a connection watches for the drain.
pub type DrainWatch = tokio::sync::watch::Receiver<DrainPhase>;
