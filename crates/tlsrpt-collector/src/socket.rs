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

/// Receives one datagram into `buf` with `recvmsg(2)`, returning its length (at most
/// `buf.len()`) and whether the kernel truncated it (`MSG_TRUNC` in `msg_flags`), so an
/// over-long datagram is counted as bad instead of being decoded from a cut-off prefix.
pub(crate) fn recv_datagram(
    fd: std::os::fd::BorrowedFd<'_>,
    buf: &mut [u8],
    dont_wait: bool,
) -> io::Result<(usize, bool)> {
    use std::os::fd::AsRawFd;
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain old data; all-zero (no name, no control data) is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    let flags = if dont_wait { libc::MSG_DONTWAIT } else { 0 };
    // SAFETY: `msg` points at one iovec describing `buf`, which is valid for `buf.len()`
    // writable bytes for the duration of the call; no name or control buffers are given.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, flags) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = usize::try_from(n).unwrap_or(0).min(buf.len());
    Ok((n, msg.msg_flags & libc::MSG_TRUNC != 0))
}
