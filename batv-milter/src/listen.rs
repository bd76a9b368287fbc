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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

pub type AnyStream = EitherStream<TcpStream, UnixStream>;

enum Inner {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// A bound socket, TCP or unix, that hands out at most `limit` connections at a time.
///
/// A connection over the limit is closed at once rather than left in the listen queue, so
/// that a flood of idle connections cannot stall the clients behind it: the MTA sees a
/// failed connection and applies its default action (tempfail). A connection that sends
/// nothing within `first_byte` is closed too (the MTA speaks first, at once), which frees
/// the slots such a flood holds.
pub struct AnyListener {
    inner: Inner,
    /// Set after a failed accept: no accept until it fires.
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
    log: Option<Arc<Log>>,
    live: Arc<AtomicUsize>,
    limit: usize,
    first_byte: Duration,
    refused: u64,
    milter_frames: bool,
}

/// How long to wait after a failed accept (EMFILE and the like clear when clients close).
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// How long a new connection may stay silent before it is closed.
pub const FIRST_BYTE_DEADLINE: Duration = Duration::from_secs(10);

impl AnyListener {
    pub fn with_log(mut self, log: Arc<Log>) -> AnyListener {
        self.log = Some(log);
        self
    }

    /// At most `limit` connections at once; silent ones are closed after `first_byte`.
    pub fn with_limit(mut self, limit: usize, first_byte: Duration) -> AnyListener {
        self.limit = limit;
        self.first_byte = first_byte;
        self
    }

    /// Refuse milter packets over [`MAX_PACKET`] (the milter socket, not the socketmap).
    pub fn milter_packets(mut self) -> AnyListener {
        self.milter_frames = true;
        self
    }

    /// Connections open now.
    #[cfg(test)]
    pub fn live(&self) -> Arc<AtomicUsize> {
        self.live.clone()
    }
}

impl Listener for AnyListener {
    type Io = Guarded;

    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Guarded>> {
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
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => {
                    if let Some(log) = &self.log {
                        log.warn(&format!("accept failed, retrying: {e}"));
                    }
                    self.pause = Some(Box::pin(tokio::time::sleep(ACCEPT_PAUSE)));
                }
                Poll::Ready(Ok(stream)) => {
                    if self.live.load(Ordering::Acquire) >= self.limit {
                        // Dropping the stream closes it.
                        self.refused += 1;
                        if let Some(log) = &self.log {
                            if self.refused.is_power_of_two() {
                                log.warn(&format!(
                                    "{} connections open (max_connections): closed a new one ({} so far)",
                                    self.limit, self.refused
                                ));
                            }
                        }
                        continue;
                    }
                    self.live.fetch_add(1, Ordering::AcqRel);
                    return Poll::Ready(Ok(Guarded {
                        stream,
                        live: self.live.clone(),
                        deadline: Some(Box::pin(tokio::time::sleep(self.first_byte))),
                        frames: self.milter_frames.then(Frames::default),
                    }));
                }
            }
        }
    }
}

/// An accepted connection: counted while open, closed when silent past its first-byte
/// deadline, and (for the milter) when a packet announces more than [`MAX_PACKET`] octets.
pub struct Guarded {
    stream: AnyStream,
    live: Arc<AtomicUsize>,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    frames: Option<Frames>,
}

/// The largest milter packet accepted. Postfix sends at most a header (header_size_limit,
/// 100 KiB by default) or a 64 KiB body chunk in one; indymilter allocates what a packet
/// announces (up to 1 MiB), so this bounds the memory one connection can claim.
pub const MAX_PACKET: u32 = 256 * 1024;

/// Follows the milter framing (a 4-octet big-endian length, then that many octets) of the
/// octets read, to refuse an oversized packet before the library allocates for it, and hands
/// the octets on with Sendmail's connect packet made readable (see [`sendmail_connect`]).
#[derive(Default)]
struct Frames {
    header: [u8; 4],
    have: usize,
    remaining: u32,
    /// The length is read and the packet's command octet has not come yet: the length is
    /// held back until it is known whether the packet is a connect packet.
    at_command: bool,
    /// The connect packet being collected, rewritten when whole.
    connect: Option<Vec<u8>>,
    /// Octets ready for the library, from `pos` on.
    out: Vec<u8>,
    pos: usize,
}

/// The milter protocol's connect command.
const CONNECT: u8 = b'C';

impl Frames {
    /// Takes the octets just read; false when a packet is over the limit.
    fn take(&mut self, mut data: &[u8]) -> bool {
        if self.pos == self.out.len() {
            self.out.clear();
            self.pos = 0;
        }
        while !data.is_empty() {
            if self.remaining > 0 {
                if self.at_command {
                    self.at_command = false;
                    if data[0] == CONNECT {
                        self.connect = Some(Vec::with_capacity(self.remaining as usize));
                    } else {
                        self.out.extend_from_slice(&self.header);
                    }
                }
                let n = data.len().min(self.remaining as usize);
                match self.connect.as_mut() {
                    Some(body) => body.extend_from_slice(&data[..n]),
                    None => self.out.extend_from_slice(&data[..n]),
                }
                self.remaining -= n as u32;
                data = &data[n..];
                if self.remaining == 0 {
                    if let Some(body) = self.connect.take() {
                        let body = sendmail_connect(body);
                        // Never longer than it was, so the length fits.
                        self.out.extend_from_slice(&(body.len() as u32).to_be_bytes());
                        self.out.extend_from_slice(&body);
                    }
                }
                continue;
            }
            self.header[self.have] = data[0];
            self.have += 1;
            data = &data[1..];
            if self.have == 4 {
                self.have = 0;
                let len = u32::from_be_bytes(self.header);
                if len > MAX_PACKET {
                    return false;
                }
                if len == 0 {
                    self.out.extend_from_slice(&self.header);
                } else {
                    self.remaining = len;
                    self.at_command = true;
                }
            }
        }
        true
    }

    /// Moves ready octets into `buf` (which has room); false when there are none.
    fn give(&mut self, buf: &mut ReadBuf<'_>) -> bool {
        let ready = &self.out[self.pos..];
        if ready.is_empty() {
            return false;
        }
        let n = ready.len().min(buf.remaining());
        buf.put_slice(&ready[..n]);
        self.pos += n;
        true
    }
}

/// Sendmail writes an IPv6 client's address in its connect packet (the command octet `C`, the
/// host name, NUL, the family `6`, two octets of port, the address, NUL) the way it writes
/// address literals, `IPv6:0:0:0:0:0:0:0:1`. libmilter drops that prefix; indymilter does not,
/// and would end the session (Sendmail then tempfails every IPv6 client). Drop it here. Any
/// other packet, or one that does not have this shape, is returned as it is.
pub fn sendmail_connect(mut body: Vec<u8>) -> Vec<u8> {
    const PREFIX: &[u8] = b"IPv6:";
    let Some(host_end) = body.iter().skip(1).position(|&b| b == 0).map(|i| i + 1) else { return body };
    let family = host_end + 1;
    let addr = family + 3;
    if body.first() != Some(&CONNECT) || body.get(family) != Some(&b'6') {
        return body;
    }
    if body.get(addr..addr + PREFIX.len()).is_some_and(|p| p.eq_ignore_ascii_case(PREFIX)) {
        body.drain(addr..addr + PREFIX.len());
    }
    body
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::AcqRel);
    }
}

impl AsyncRead for Guarded {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let Some(frames) = this.frames.as_mut() else {
            // The socketmap: octets go through as read.
            let before = buf.filled().len();
            return match Pin::new(&mut this.stream).poll_read(cx, buf) {
                Poll::Ready(r) => {
                    if buf.filled().len() > before {
                        this.deadline = None;
                    }
                    Poll::Ready(r)
                }
                Poll::Pending => Guarded::pending(&mut this.deadline, cx),
            };
        };
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if frames.give(buf) {
                return Poll::Ready(Ok(()));
            }
            let mut scratch = [0u8; 8192];
            let mut rb = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.stream).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) if rb.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => {
                    this.deadline = None;
                    if !frames.take(rb.filled()) {
                        return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, "milter packet over the size limit")));
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Guarded::pending(&mut this.deadline, cx),
            }
        }
    }
}

impl Guarded {
    /// Nothing to read: pending, unless the first-byte deadline has passed.
    fn pending(deadline: &mut Option<Pin<Box<tokio::time::Sleep>>>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let expired = deadline.as_mut().is_some_and(|d| d.as_mut().poll(cx).is_ready());
        if expired {
            Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "the client sent nothing")))
        } else {
            Poll::Pending
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

use std::future::Future;

impl AnyListener {
    fn new(inner: Inner) -> AnyListener {
        AnyListener {
            inner,
            pause: None,
            log: None,
            live: Arc::new(AtomicUsize::new(0)),
            limit: usize::MAX,
            first_byte: FIRST_BYTE_DEADLINE,
            refused: 0,
            milter_frames: false,
        }
    }
}

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
            Ok((AnyListener::new(Inner::Tcp(l)), None))
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
            Ok((AnyListener::new(Inner::Unix(l)), Some(guard)))
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

    #[test]
    fn milter_framing() {
        let mut f = Frames::default();
        let mut packet = 5u32.to_be_bytes().to_vec();
        packet.extend_from_slice(b"Mabc\0");
        // Fed whole, then octet by octet: framing does not depend on how reads split.
        assert!(f.take(&packet));
        for b in &packet {
            assert!(f.take(std::slice::from_ref(b)));
        }
        assert!(f.take(&MAX_PACKET.to_be_bytes()));
        let mut f = Frames::default();
        assert!(!f.take(&(MAX_PACKET + 1).to_be_bytes()));
        let mut f = Frames::default();
        assert!(f.take(&[0, 0x10]) && !f.take(&[0, 0]), "a length split over two reads");
    }

    /// What the library reads after `Frames` took `input` in pieces of `step` octets.
    fn through(input: &[u8], step: usize) -> Vec<u8> {
        let mut f = Frames::default();
        let mut out = Vec::new();
        for piece in input.chunks(step) {
            assert!(f.take(piece));
            let mut space = [0u8; 7];
            loop {
                let mut rb = ReadBuf::new(&mut space);
                if !f.give(&mut rb) {
                    break;
                }
                out.extend_from_slice(rb.filled());
            }
        }
        out
    }

    fn packet(body: &[u8]) -> Vec<u8> {
        let mut p = (body.len() as u32).to_be_bytes().to_vec();
        p.extend_from_slice(body);
        p
    }

    #[test]
    fn sendmail_ipv6_connect_packets_are_made_readable() {
        let optneg = packet(b"O\0\0\0\x06\0\0\x01\xff\0\x1f\xff\xff");
        let sendmail = packet(b"C[IPv6:::1]\x006\x04\xd2IPv6:0:0:0:0:0:0:0:1\0");
        let plain = packet(b"C[IPv6:::1]\x006\x04\xd20:0:0:0:0:0:0:1\0");
        let v4 = packet(b"Clocalhost\x004\x04\xd2127.0.0.1\0");
        let mail = packet(b"M<alice@example.test>\0");
        let empty = packet(b"");
        let mut input = Vec::new();
        for p in [&optneg, &sendmail, &v4, &empty, &mail] {
            input.extend_from_slice(p);
        }
        let mut want = Vec::new();
        for p in [&optneg, &plain, &v4, &empty, &mail] {
            want.extend_from_slice(p);
        }
        // However the reads split the stream, the library gets the same packets in order.
        for step in [1, 2, 3, 5, 13, input.len()] {
            assert_eq!(through(&input, step), want, "reads of {step} octets");
        }
        // Only the prefix of an IPv6 address goes (any case); other shapes stay as they are.
        let lower = b"C[x]\x006\0\x19ipv6:2001:db8::1\0".to_vec();
        assert_eq!(sendmail_connect(lower), b"C[x]\x006\0\x192001:db8::1\0".to_vec());
        for keep in [&b"C[x]\x004\0\x19IPv6:1.2.3.4\0"[..], b"Chost", b"C", b"", b"M<IPv6:x>\0", b"Ch\x006\0"] {
            assert_eq!(sendmail_connect(keep.to_vec()), keep.to_vec(), "{keep:?}");
        }
    }

    #[tokio::test]
    async fn over_the_limit_is_closed_and_silence_times_out() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let d = std::env::temp_dir().join(format!("batv-milter-limit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let path = d.join("l.sock");
        let (l, _guard) = bind(&SocketSpec::Unix(path.clone()), 0o600, None).await.unwrap();
        let mut l = l.with_limit(2, Duration::from_millis(300));
        let live = l.live();
        let a = UnixStream::connect(&path).await.unwrap();
        let mut b = UnixStream::connect(&path).await.unwrap();
        let mut sa = l.accept().await.unwrap();
        let mut sb = l.accept().await.unwrap();
        assert_eq!(live.load(Ordering::Acquire), 2);
        // A third client is closed at once; a fourth after one slot frees is served.
        let mut c = UnixStream::connect(&path).await.unwrap();
        let accept = tokio::spawn(async move {
            let s = l.accept().await.unwrap();
            (l, s)
        });
        let mut buf = [0u8; 1];
        assert_eq!(c.read(&mut buf).await.unwrap(), 0, "closed over the limit");
        drop(a);
        b.write_all(b"x").await.unwrap();
        assert_eq!(sb.read(&mut buf).await.unwrap(), 1);
        // The silent one (a's server side) times out; the one that spoke does not.
        let e = sa.read(&mut buf).await;
        assert!(matches!(e, Ok(0)) || matches!(e, Err(ref e) if e.kind() == io::ErrorKind::TimedOut));
        drop(sa);
        let _d = UnixStream::connect(&path).await.unwrap();
        let (_l, mut sd) = accept.await.unwrap();
        let t = std::time::Instant::now();
        let e = sd.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(t.elapsed() >= Duration::from_millis(250));
        drop(sd);
        assert_eq!(live.load(Ordering::Acquire), 1);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
