//! The daemon's listening sockets: a stale unix socket is removed before bind and on
//! shutdown, mode and group are applied, and a failed accept (out of file descriptors, a
//! client that reset early) waits and retries instead of ending the daemon.

use crate::config::SocketSpec;
use crate::log::Log;
use indymilter::{EitherStream, Listener};
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

pub type AnyStream = EitherStream<TcpStream, UnixStream>;

enum Inner {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// A bound socket, TCP or unix.
pub struct AnyListener {
    inner: Inner,
    /// Set after a failed accept: no accept until it fires.
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
    log: Option<Arc<Log>>,
}

/// How long to wait after a failed accept (EMFILE and the like clear when clients close).
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

impl AnyListener {
    pub fn with_log(mut self, log: Arc<Log>) -> AnyListener {
        self.log = Some(log);
        self
    }

    pub async fn accept_retrying(&mut self, log: &Log) -> AnyStream {
        loop {
            let r = match &self.inner {
                Inner::Tcp(l) => l.accept().await.map(|(s, _)| EitherStream::Tcp(s)),
                Inner::Unix(l) => l.accept().await.map(|(s, _)| EitherStream::Unix(s)),
            };
            match r {
                Ok(s) => return s,
                Err(e) => {
                    log.warn(&format!("accept failed, retrying: {e}"));
                    tokio::time::sleep(ACCEPT_PAUSE).await;
                }
            }
        }
    }
}

impl Listener for AnyListener {
    type Io = AnyStream;

    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<AnyStream>> {
        loop {
            if let Some(p) = self.pause.as_mut() {
                if p.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.pause = None;
            }
            let r = match &mut self.inner {
                Inner::Tcp(l) => TcpListener::poll_accept(l, cx).map_ok(|(s, _)| EitherStream::Tcp(s)),
                Inner::Unix(l) => UnixListener::poll_accept(l, cx).map_ok(|(s, _)| EitherStream::Unix(s)),
            };
            match r {
                Poll::Ready(Err(e)) => {
                    if let Some(log) = &self.log {
                        log.warn(&format!("milter: accept failed, retrying: {e}"));
                    }
                    self.pause = Some(Box::pin(tokio::time::sleep(ACCEPT_PAUSE)));
                }
                other => return other,
            }
        }
    }
}

use std::future::Future;

/// A unix socket file this daemon created, removed again when dropped.
pub struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = remove_if_socket(&self.0);
    }
}

fn remove_if_socket(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path),
        _ => Ok(()),
    }
}

/// Binds a socket; for a unix socket also applies mode and group, and returns the guard that
/// removes the file on shutdown.
pub async fn bind(spec: &SocketSpec, mode: u32, group: Option<u32>) -> Result<(AnyListener, Option<SocketFile>), String> {
    match spec {
        SocketSpec::Inet(host, port) => {
            let l = TcpListener::bind((host.as_str(), *port)).await.map_err(|e| format!("{spec}: cannot listen: {e}"))?;
            Ok((AnyListener { inner: Inner::Tcp(l), pause: None, log: None }, None))
        }
        SocketSpec::Unix(path) => {
            match std::fs::symlink_metadata(path) {
                Ok(m) if m.file_type().is_socket() => {
                    // A socket someone still answers on is not stale: never steal it.
                    if UnixStream::connect(path).await.is_ok() {
                        return Err(format!("{spec}: another process is listening on this socket"));
                    }
                    std::fs::remove_file(path).map_err(|e| format!("{spec}: cannot remove the stale socket: {e}"))?;
                }
                Ok(_) => return Err(format!("{spec}: the path exists and is not a socket; not removing it")),
                Err(_) => {}
            }
            let l = UnixListener::bind(path).map_err(|e| format!("{spec}: cannot listen: {e}"))?;
            let guard = SocketFile(path.clone());
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .map_err(|e| format!("{spec}: cannot set mode {mode:04o}: {e}"))?;
            if let Some(gid) = group {
                std::os::unix::fs::chown(path, None, Some(gid)).map_err(|e| format!("{spec}: cannot set group {gid}: {e}"))?;
            }
            Ok((AnyListener { inner: Inner::Unix(l), pause: None, log: None }, Some(guard)))
        }
    }
}

/// The numeric group of `socket_group` (a name or a number).
pub fn group_id(name: &str) -> Result<u32, String> {
    if let Ok(n) = name.parse::<u32>() {
        return Ok(n);
    }
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(format!("socket_group: no group named {name:?}")),
        Err(e) => Err(format!("socket_group: cannot look up {name:?}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stale_socket_is_replaced_and_removed() {
        let d = std::env::temp_dir().join(format!("batv-milter-listen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let path = d.join("m.sock");
        // A socket left behind by a process that died.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let spec = SocketSpec::Unix(path.clone());
        let (l, guard) = bind(&spec, 0o660, None).await.unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o660);
        // While it is served, a second daemon refuses to take it over.
        let e = bind(&spec, 0o660, None).await.err().unwrap();
        assert!(e.contains("another process"), "{e}");
        drop(l);
        drop(guard);
        assert!(!path.exists(), "the socket is removed on shutdown");
        // A regular file in the way is never removed.
        std::fs::write(&path, "not a socket").unwrap();
        assert!(bind(&spec, 0o660, None).await.err().unwrap().contains("not a socket"));
        assert!(path.exists());
        std::fs::remove_dir_all(&d).unwrap();
        assert_eq!(group_id("0").unwrap(), 0);
        assert_eq!(group_id("root").unwrap(), 0);
        assert!(group_id("no-such-group-batv").is_err());
    }
}
