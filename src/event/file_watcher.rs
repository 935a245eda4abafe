//! Tells when a file is moved into a directory (Envoy's `Filesystem::Watcher`
//! with `Events::MovedTo`), on the loop of the thread that waits.
//!
//! A config file is replaced by writing a new one beside it and renaming it over
//! the old: the reader then sees the old or the new, never half of one. Envoy
//! reloads on that rename only (`IN_MOVED_TO`), not on writes in place, and so
//! does this watcher. It is inotify through `libc` (already a dependency) with
//! the descriptor registered on tokio's reactor, rather than polling `stat`: a
//! poll would fire on writes in place too (or miss two renames within one
//! interval), and would cost a wake-up per interval for a file that rarely changes.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use tokio::io::unix::AsyncFd;

/// An inotify watch for files moved into one directory.
pub struct MoveWatcher {
    fd: AsyncFd<OwnedFd>,
    /// The one file name that counts; `None`: any.
    name: Option<OsString>,
}

impl MoveWatcher {
    /// Watches `dir` for files moved into it, named `name` when given. Must run
    /// on a tokio runtime (the descriptor joins its reactor).
    pub fn new(dir: &Path, name: Option<&OsStr>) -> io::Result<MoveWatcher> {
        let path = CString::new(dir.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a path with a NUL byte"))?;
        // SAFETY: plain syscalls; the descriptor is owned at once, and `path`
        // outlives the call that reads it.
        let fd = unsafe {
            let raw = libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC);
            if raw < 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = OwnedFd::from_raw_fd(raw);
            if libc::inotify_add_watch(fd.as_raw_fd(), path.as_ptr(), libc::IN_MOVED_TO) < 0 {
                let e = io::Error::last_os_error();
                return Err(io::Error::new(e.kind(), format!("cannot watch {}: {e}", dir.display())));
            }
            fd
        };
        // SAFETY: an `OwnedFd` keeps its one descriptor open until it is dropped.
        let fd =
            unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }.map_err(io::Error::from)?;
        Ok(MoveWatcher { fd, name: name.map(OsStr::to_os_string) })
    }

    /// Returns once a matching file has been moved in (several moves read
    /// together count once: the file is read after all of them).
    pub async fn moved(&mut self) -> io::Result<()> {
        let mut buf = [0u8; 4096];
        loop {
            let mut guard = self.fd.readable().await?;
            // SAFETY: reads into a buffer of the length given.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::WouldBlock {
                    guard.clear_ready();
                    continue;
                }
                return Err(e);
            }
            if names(&buf[..n as usize]).any(|moved| self.name.as_ref().is_none_or(|want| *want == moved)) {
                return Ok(());
            }
        }
    }
}

/// The file names of the `struct inotify_event`s in `buf`: a 16-byte header
/// (`wd`, `mask`, `cookie`, `len`) then `len` bytes of NUL-padded name.
fn names(mut buf: &[u8]) -> impl Iterator<Item = OsString> + '_ {
    std::iter::from_fn(move || {
        let len = u32::from_ne_bytes(buf.get(12..16)?.try_into().ok()?) as usize;
        let name = buf.get(16..16 + len)?;
        buf = &buf[16 + len..];
        let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
        Some(OsString::from_vec(name[..end].to_vec()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, padded: usize) -> Vec<u8> {
        let mut e = vec![0u8; 12];
        e.extend_from_slice(&(padded as u32).to_ne_bytes());
        let mut n = name.as_bytes().to_vec();
        n.resize(padded, 0);
        e.extend_from_slice(&n);
        e
    }

    #[test]
    fn event_names_are_read_up_to_their_padding() {
        let mut buf = event("cds.yaml", 16);
        buf.extend(event("x", 4));
        let got: Vec<_> = names(&buf).collect();
        assert_eq!(got, [OsString::from("cds.yaml"), OsString::from("x")]);
        assert_eq!(names(&buf[..10]).count(), 0);
    }

    #[tokio::test]
    async fn a_rename_onto_the_file_is_seen_and_a_write_in_place_is_not() {
        let dir = std::env::temp_dir().join(format!("courier-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut w = MoveWatcher::new(&dir, Some(OsStr::new("f.yaml"))).expect("watch");
        std::fs::write(dir.join("f.yaml"), "a").expect("write");
        std::fs::write(dir.join("other.tmp"), "b").expect("write");
        std::fs::rename(dir.join("other.tmp"), dir.join("other.yaml")).expect("rename");
        let quiet = tokio::time::timeout(std::time::Duration::from_millis(100), w.moved()).await;
        assert!(quiet.is_err(), "neither a write nor another file's rename counts");
        std::fs::write(dir.join("f.tmp"), "c").expect("write");
        std::fs::rename(dir.join("f.tmp"), dir.join("f.yaml")).expect("rename");
        tokio::time::timeout(std::time::Duration::from_secs(5), w.moved()).await.expect("seen").expect("read");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
