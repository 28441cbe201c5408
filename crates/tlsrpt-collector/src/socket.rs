//! Binding the collector's Unix datagram socket (DATAGRAM.md §1).
//!
//! The path is where Postfix's `smtp_tlsrpt_socket_name` points. We remove a stale socket
//! left by a previous run (binding fails with `EADDRINUSE` otherwise) but refuse to remove
//! anything that is not a socket: a mistyped path must never delete a regular file or a
//! directory. We create nothing else (no parent directories): the packaging or the operator
//! owns the directory and its permissions, which are the only access control the protocol has.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use socket2::{Domain, SockAddr, Socket, Type};

use crate::CollectorError;

/// Longest socket path: `sun_path` is 108 bytes on Linux including the terminating NUL
/// (libtlsrpt refuses longer names with error 10711, DATAGRAM.md §1).
pub const MAX_SOCKET_PATH: usize = 107;

/// Binds `path`, removing a stale socket first, then applies `mode` and `group`.
/// Returns the socket and the effective receive buffer size.
pub(crate) fn bind(
    path: &Path,
    mode: Option<u32>,
    group: Option<&str>,
    recv_buffer_bytes: usize,
) -> Result<(Socket, usize), CollectorError> {
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(CollectorError::SocketPathTooLong {
            path: path.to_path_buf(),
            len,
        });
    }
    // Resolve the group before touching the file system, so a typo fails cleanly.
    let gid = group.map(lookup_group).transpose()?;
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            fs::remove_file(path).map_err(|source| CollectorError::Io {
                context: "removing the stale socket",
                path: path.to_path_buf(),
                source,
            })?;
            tracing::info!(path = %path.display(), "removed stale socket");
        }
        Ok(meta) => {
            let ft = meta.file_type();
            let kind = if ft.is_dir() {
                "a directory"
            } else if ft.is_symlink() {
                "a symbolic link"
            } else if ft.is_file() {
                "a regular file"
            } else {
                "not a socket"
            };
            return Err(CollectorError::NotASocket {
                path: path.to_path_buf(),
                kind,
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(CollectorError::Io {
                context: "inspecting the socket path",
                path: path.to_path_buf(),
                source,
            });
        }
    }
    let io_err = |context| {
        move |source| CollectorError::Io {
            context,
            path: path.to_path_buf(),
            source,
        }
    };
    let socket =
        Socket::new(Domain::UNIX, Type::DGRAM, None).map_err(io_err("creating the socket"))?;
    // A large receive buffer absorbs bursts while the receive thread is busy. The kernel may
    // cap it (net.core.rmem_max); we log what we got.
    if let Err(e) = socket.set_recv_buffer_size(recv_buffer_bytes) {
        tracing::warn!(error = %e, requested = recv_buffer_bytes, "could not set SO_RCVBUF");
    }
    let effective = socket.recv_buffer_size().unwrap_or(0);
    let addr = SockAddr::unix(path).map_err(io_err("building the socket address"))?;
    socket.bind(&addr).map_err(io_err("binding the socket"))?;
    if let Some(mode) = mode {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .map_err(io_err("setting the socket mode"))?;
    }
    if let Some(gid) = gid {
        std::os::unix::fs::chown(path, None, Some(gid))
            .map_err(io_err("setting the socket group"))?;
    }
    tracing::info!(
        path = %path.display(),
        mode = mode.map(|m| format!("{m:o}")),
        group,
        recv_buffer_requested = recv_buffer_bytes,
        recv_buffer_effective = effective,
        "collector socket bound"
    );
    Ok((socket, effective))
}

/// Group name → gid with `getgrnam_r` (thread-safe, unlike `getgrnam`). A numeric name is
/// taken as a gid directly.
pub fn lookup_group(name: &str) -> Result<u32, CollectorError> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    let unknown = || CollectorError::UnknownGroup(name.to_owned());
    let cname = std::ffi::CString::new(name).map_err(|_| unknown())?;
    let mut buf_len = 1024usize;
    loop {
        let mut buf = vec![0 as libc::c_char; buf_len];
        // SAFETY: `group` is plain old data that getgrnam_r fills in; all-zero is a valid
        // initial value for it.
        let mut group: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the duration of the call: `cname` is a
        // NUL-terminated string, `group` and `result` are live locals, and `buf` has exactly
        // `buf.len()` writable bytes. The results are read only through `group.gr_gid`, which
        // is a plain integer copied out before `buf` is dropped.
        let rc = unsafe {
            libc::getgrnam_r(
                cname.as_ptr(),
                &mut group,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf_len < 1 << 20 {
            buf_len *= 4;
            continue;
        }
        if rc != 0 || result.is_null() {
            return Err(unknown());
        }
        return Ok(group.gr_gid);
    }
}

/// Most datagrams taken by one [`recv_batch`] call. Bounded so the receive buffers stay small
/// (slots × `max_datagram_bytes`, allocated zeroed so untouched pages cost no memory) while one
/// syscall still empties the kernel's default 10-deep queue (`net.unix.max_dgram_qlen`).
pub(crate) const BATCH: usize = 32;

/// Receives up to `lens.len()` (at most [`BATCH`]) datagrams with one `recvmmsg(2)` call into
/// consecutive `slot`-byte slots of `bufs`, filling `lens[i]` with (length, truncated) where
/// truncated is `MSG_TRUNC` in that message's `msg_flags`, so an over-long datagram is counted
/// as bad instead of being decoded from a cut-off prefix. Returns how many arrived (≥ 1).
///
/// Without `dont_wait` it blocks for the first datagram (up to the socket's `SO_RCVTIMEO`)
/// and then takes only what is already queued (`MSG_WAITFORONE`): it never waits to fill the
/// batch.
pub(crate) fn recv_batch(
    fd: std::os::fd::BorrowedFd<'_>,
    bufs: &mut [u8],
    slot: usize,
    lens: &mut [(usize, bool)],
    dont_wait: bool,
) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    let want = lens.len().min(BATCH).min(bufs.len() / slot.max(1));
    if want == 0 || slot == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "receive batch has no room",
        ));
    }
    // SAFETY: iovec and mmsghdr are plain old data; all-zero (null pointers, no name, no
    // control data) is a valid initial value and is overwritten below.
    let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    for ((chunk, iov), msg) in bufs
        .chunks_exact_mut(slot)
        .zip(iovs.iter_mut())
        .zip(msgs.iter_mut())
        .take(want)
    {
        iov.iov_base = chunk.as_mut_ptr().cast();
        iov.iov_len = chunk.len();
        msg.msg_hdr.msg_iov = iov;
        msg.msg_hdr.msg_iovlen = 1;
    }
    let flags = if dont_wait {
        libc::MSG_DONTWAIT
    } else {
        libc::MSG_WAITFORONE
    };
    // SAFETY: the first `want` entries of `msgs` each point at one live iovec describing a
    // distinct `slot`-byte chunk of `bufs`, valid and writable for the whole call; `want` ≤
    // BATCH = the array length; no name, control buffers or timeout are given.
    let n = unsafe {
        libc::recvmmsg(
            fd.as_raw_fd(),
            msgs.as_mut_ptr(),
            want as libc::c_uint,
            flags,
            std::ptr::null_mut(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = usize::try_from(n).unwrap_or(0).min(want);
    for (msg, out) in msgs.iter().zip(lens.iter_mut()).take(n) {
        *out = (
            (msg.msg_len as usize).min(slot),
            msg.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
        );
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixDatagram;

    #[test]
    fn batch_takes_all_queued_and_flags_the_truncated_one() {
        let (tx, rx) = UnixDatagram::pair().unwrap();
        tx.send(b"first").unwrap();
        tx.send(&[b'x'; 40]).unwrap();
        tx.send(b"third!").unwrap();
        let slot = 16;
        let mut bufs = vec![0u8; slot * BATCH];
        let mut lens = [(0usize, false); BATCH];
        let got = recv_batch(rx.as_fd(), &mut bufs, slot, &mut lens, true).unwrap();
        assert_eq!(got, 3);
        assert_eq!(lens[0], (5, false));
        assert_eq!(&bufs[..5], b"first");
        // The 40-byte datagram did not fit its 16-byte slot: flagged, never taken as whole.
        assert_eq!(lens[1], (16, true));
        assert_eq!(lens[2], (6, false));
        assert_eq!(&bufs[2 * slot..2 * slot + 6], b"third!");
        // Queue empty: a non-blocking batch reports WouldBlock instead of waiting.
        let err = recv_batch(rx.as_fd(), &mut bufs, slot, &mut lens, true).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn batch_never_takes_more_than_fits() {
        let (tx, rx) = UnixDatagram::pair().unwrap();
        for i in 0..5u8 {
            tx.send(&[i; 4]).unwrap();
        }
        let slot = 8;
        // Room for only two slots although five datagrams are queued.
        let mut bufs = vec![0u8; slot * 2];
        let mut lens = [(0usize, false); BATCH];
        assert_eq!(
            recv_batch(rx.as_fd(), &mut bufs, slot, &mut lens, false).unwrap(),
            2
        );
        assert_eq!(&bufs[slot..slot + 4], &[1u8; 4]);
        let mut bufs = vec![0u8; slot * BATCH];
        assert_eq!(
            recv_batch(rx.as_fd(), &mut bufs, slot, &mut lens, false).unwrap(),
            3
        );
        assert_eq!(&bufs[..4], &[2u8; 4]);
    }
}
