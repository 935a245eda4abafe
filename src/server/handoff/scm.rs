//! File descriptors across a Unix socket (`SCM_RIGHTS`): how a listen socket
//! goes from one process to another. The receiver gets new descriptors for the
//! same open sockets, so both processes share one accept queue per socket.
//!
//! std's ancillary-data API is unstable, so the `msghdr` is built here with
//! libc's `CMSG_*` helpers. Messages go over `SOCK_SEQPACKET`, which keeps
//! message boundaries: a message's descriptors arrive with that message.

use std::io;
use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use socket2::Socket;

/// The most descriptors one message carries (the kernel's `SCM_MAX_FD`).
pub const MAX_FDS: usize = 253;

/// The largest message of the handoff protocol (a line of text).
const MAX_MESSAGE: usize = 1024;

/// Sends `msg` with `fds` attached.
pub fn send(sock: &Socket, msg: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    if fds.len() > MAX_FDS {
        return Err(io::Error::other(format!("{} descriptors in one message (at most {MAX_FDS})", fds.len())));
    }
    let data_len = size_of::<RawFd>() * fds.len();
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(data_len as u32) } as usize;
    // u64 elements keep the buffer aligned for a `cmsghdr`.
    let mut control = vec![0u64; space.div_ceil(size_of::<u64>())];
    let mut iov = libc::iovec { iov_base: msg.as_ptr() as *mut libc::c_void, iov_len: msg.len() };
    // SAFETY: a zeroed msghdr is valid (no buffers); the fields set below point
    // at `iov` and `control`, which outlive the sendmsg call.
    let mut hdr: libc::msghdr = unsafe { zeroed() };
    hdr.msg_iov = &mut iov;
    hdr.msg_iovlen = 1;
    if !fds.is_empty() {
        hdr.msg_control = control.as_mut_ptr().cast();
        hdr.msg_controllen = space as _;
        // SAFETY: the control buffer has CMSG_SPACE(data_len) bytes, so the first
        // header and its data fit; the descriptors are copied as plain ints.
        unsafe {
            let cmsg = libc::CMSG_FIRSTHDR(&hdr);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(data_len as u32) as _;
            let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
            for (i, fd) in fds.iter().enumerate() {
                data.add(i).write_unaligned(fd.as_raw_fd());
            }
        }
    }
    // SAFETY: `hdr` is fully initialized and its pointers are live.
    let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &hdr, libc::MSG_NOSIGNAL) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Receives one message and the descriptors attached to it (close-on-exec).
/// `Ok(None)` when the peer has closed.
pub fn recv(sock: &Socket) -> io::Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE((size_of::<RawFd>() * MAX_FDS) as u32) } as usize;
    let mut control = vec![0u64; space.div_ceil(size_of::<u64>())];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: as in `send`; the buffers outlive the call.
    let mut hdr: libc::msghdr = unsafe { zeroed() };
    hdr.msg_iov = &mut iov;
    hdr.msg_iovlen = 1;
    hdr.msg_control = control.as_mut_ptr().cast();
    hdr.msg_controllen = space as _;
    // SAFETY: `hdr` points at live buffers of the sizes it states.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut hdr, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut fds = Vec::new();
    // SAFETY: the kernel filled `control` up to `msg_controllen`; CMSG_FIRSTHDR /
    // CMSG_NXTHDR stay within it, and each SCM_RIGHTS header's data holds
    // `(cmsg_len - CMSG_LEN(0)) / size_of::<RawFd>()` descriptors that are now
    // this process's to own.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&hdr);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let count = ((*cmsg).cmsg_len as usize).saturating_sub(libc::CMSG_LEN(0) as usize) / size_of::<RawFd>();
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                for i in 0..count {
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&hdr, cmsg);
        }
    }
    if hdr.msg_flags & (libc::MSG_CTRUNC | libc::MSG_TRUNC) != 0 {
        return Err(io::Error::other("handoff message truncated"));
    }
    if n == 0 && fds.is_empty() {
        return Ok(None);
    }
    buf.truncate(n as usize);
    Ok(Some((buf, fds)))
}

/// Whether the peer of a connected Unix socket runs as this process's
/// effective user (`SO_PEERCRED`).
pub fn peer_is_same_user(sock: &Socket) -> bool {
    // SAFETY: a zeroed ucred is valid; getsockopt writes at most `len` bytes
    // into it, and geteuid cannot fail.
    unsafe {
        let mut cred: libc::ucred = zeroed();
        let mut len = size_of::<libc::ucred>() as libc::socklen_t;
        let rc = libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        );
        rc == 0 && cred.uid == libc::geteuid()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::{Domain, Type};
    use std::os::fd::AsFd;

    #[test]
    fn a_listen_socket_crosses_with_its_message() {
        let (a, b) = Socket::pair(Domain::UNIX, Type::SEQPACKET, None).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        send(&a, b"sockets 1", &[listener.as_fd()]).unwrap();
        let (msg, fds) = recv(&b).unwrap().unwrap();
        assert_eq!((msg.as_slice(), fds.len()), (&b"sockets 1"[..], 1));
        let received = std::net::TcpListener::from(fds.into_iter().next().unwrap());
        assert_eq!(received.local_addr().unwrap(), listener.local_addr().unwrap());
        drop(a);
        assert!(peer_is_same_user(&b));
        assert!(recv(&b).unwrap().is_none(), "a closed peer reads as None");
    }
}
