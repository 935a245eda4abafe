//! Zero-downtime binary upgrade by socket handoff: Envoy's hot restart without
//! its shared memory, so it works in a container with no host IPC.
//!
//! Each Courier started with `--base-id` or `--restart-epoch` listens on a Unix
//! socket named from its base id and epoch. A new process started with
//! `--restart-epoch N+1` (same base id) connects to epoch N's socket once its
//! config is loaded and its workers run, and asks for each listener's sockets
//! by address; the old process sends the very same listen sockets
//! (`SCM_RIGHTS`), not new ones bound to the address: with SO_REUSEPORT a
//! closed socket's accept queue is reset by the kernel, so the sockets, and the
//! connections queued on them, must outlive the old process. Addresses the old
//! process has no socket for are bound fresh. Once accepting, the new process
//! tells the old one to drain (with its own `--drain-time-s` and
//! `--parent-shutdown-time-s`, as Envoy's child sets its parent's): the old
//! process lets go of the handed sockets, closes the others (their queues
//! served first), drains its connections and exits.
//!
//! The protocol is a few lines of text over `SOCK_SEQPACKET`, one message each
//! way per request:
//! - `sockets <address>` → `sockets <n>`, with the n listen sockets attached;
//! - `drain <drain_time_s> <parent_shutdown_time_s>` → `draining`.

pub mod child;
pub mod parent;
mod scm;

use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket, Type};

/// What `--hot-restart-version` prints: processes that speak the same handoff
/// protocol can upgrade into each other.
pub const VERSION: &str = "courier.handoff.1";

/// How long one side waits for the other's answer before giving up.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The handoff socket of `epoch`: `<socket_path>_<base_id>_<epoch>`. A path
/// starting with `@` is in the abstract namespace (nothing on disk, gone with
/// the process), else a file.
pub fn socket_name(socket_path: &str, base_id: u32, epoch: u32) -> String {
    format!("{socket_path}_{base_id}_{epoch}")
}

fn address(name: &str) -> io::Result<SockAddr> {
    match name.strip_prefix('@') {
        Some(abstract_name) => SockAddr::unix(format!("\0{abstract_name}")),
        None => SockAddr::unix(name),
    }
}

/// Listens on this process's handoff socket; a file socket gets `mode`.
/// A stale file of an earlier process is replaced; a live socket of that name
/// (another Courier of the same base id and epoch) is an error.
pub fn listen(name: &str, mode: u32) -> io::Result<Socket> {
    let addr = address(name)?;
    let sock = Socket::new(Domain::UNIX, Type::SEQPACKET, None)?;
    let on_disk = !name.starts_with('@');
    if on_disk && Socket::new(Domain::UNIX, Type::SEQPACKET, None)?.connect(&addr).is_err() {
        let _ = std::fs::remove_file(name);
    }
    sock.bind(&addr).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot listen on handoff socket {name} (is another Courier of this --base-id and epoch running?): {e}"
            ),
        )
    })?;
    if on_disk {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(name, std::fs::Permissions::from_mode(mode))?;
    }
    sock.listen(1)?;
    Ok(sock)
}

/// Connects to the handoff socket `name`.
fn connect(name: &str) -> io::Result<Socket> {
    let sock = Socket::new(Domain::UNIX, Type::SEQPACKET, None)?;
    sock.connect(&address(name)?)?;
    sock.set_read_timeout(Some(IO_TIMEOUT))?;
    sock.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(sock)
}

/// The new process's request that the old one drain and exit.
#[derive(Debug)]
pub struct DrainRequest {
    /// How long open connections get before idle ones close.
    pub drain_time: Duration,
    /// When the old process exits at the latest, from the request.
    pub parent_shutdown_time: Duration,
    /// The addresses whose sockets the new process took: the old one lets go
    /// of them without closing them.
    pub handed_over: HashSet<SocketAddr>,
}

/// This process's part in handoff, set up at start-up before anything binds.
#[derive(Default)]
pub struct Handoff {
    /// Where a newer process will find this one (`None` without handoff).
    pub listener: Option<Socket>,
    /// The file to remove at exit, for a handoff socket on disk.
    pub file: Option<std::path::PathBuf>,
    /// The process this one takes over from (epoch > 0 and it is running).
    pub parent: Option<child::ParentLink>,
}

impl Handoff {
    /// Listens on this epoch's socket and connects to the previous epoch's. A
    /// previous epoch that is not running is no error: this process binds its
    /// own sockets, as a first one does.
    pub fn open(options: &crate::server::Options) -> io::Result<Handoff> {
        if !options.handoff_enabled() {
            return Ok(Handoff::default());
        }
        let (base, epoch) = (options.base_id.unwrap_or(0), options.epoch());
        let name = socket_name(&options.socket_path, base, epoch);
        let listener = Some(listen(&name, options.socket_mode)?);
        let file = (!name.starts_with('@')).then(|| name.clone().into());
        let parent = match epoch.checked_sub(1) {
            None => None,
            Some(previous) => {
                let name = socket_name(&options.socket_path, base, previous);
                match child::ParentLink::connect(&name) {
                    Ok(link) => {
                        tracing::info!("taking over from epoch {previous} ({name})");
                        Some(link)
                    }
                    Err(e) => {
                        tracing::warn!("no running epoch {previous} to take over from ({name}: {e}); binding afresh");
                        None
                    }
                }
            }
        };
        Ok(Handoff { listener, file, parent })
    }
}

/// The old process's sockets for `addr`, or none when it has none or the
/// exchange fails (the caller binds fresh ones; the failure is logged).
pub fn inherit(parent: Option<&child::ParentLink>, addr: SocketAddr) -> Vec<std::net::TcpListener> {
    let Some(parent) = parent.filter(|_| addr.port() != 0) else { return Vec::new() };
    match parent.sockets(addr) {
        Ok(sockets) => sockets,
        Err(e) => {
            tracing::warn!("cannot take the old process's sockets for {addr}: {e}; binding afresh");
            Vec::new()
        }
    }
}
