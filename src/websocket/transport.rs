//! The seam between a connection and its bytes: the connection reads and writes
//! through a [`Transport`] and knows nothing else of it: a plain stream socket, or
//! (feature `tls`) a TLS session over one.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// What a connection reads from and writes to; non-blocking (`WouldBlock` when
/// nothing can be done now).
pub(crate) trait Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    fn write(&mut self, buf: &[u8]) -> io::Result<usize>;
    /// The fd the connection's io watcher watches.
    fn fd(&self) -> RawFd;
    fn peer_addr(&self) -> io::Result<SocketAddr>;
    /// Ends the transport. `gently`: the peer may still be sending (no close frame
    /// and no EOF came from it): writing is shut down and what it already sent is
    /// read away first, up to a bound, because closing with unread bytes resets the
    /// connection and the reset can destroy our last frames before the peer reads
    /// them.
    fn close(self: Box<Self>, gently: bool);
    /// Whether the transport holds bytes for the peer that the socket has not
    /// taken yet (TLS records): the watcher then waits for WRITE.
    fn wants_write(&self) -> bool {
        false
    }
    /// Writes what the transport holds, until the socket would block.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Bytes written to the socket from what the transport held (TLS records)
    /// since the last call: progress (for the close timeout) that the return
    /// values of `write` do not show.
    fn take_flushed(&mut self) -> usize {
        0
    }
    /// What the TLS session agreed on; `None` without TLS.
    #[cfg(feature = "tls")]
    fn tls_info(&self) -> Option<crate::tls::TlsInfo> {
        None
    }
    /// Whether input read from the socket waits inside the transport (decrypted
    /// TLS records): no fd event will announce it.
    fn has_buffered_input(&self) -> bool {
        false
    }
    /// The socket and the session back, for whoever carries on with them (the
    /// handshake hands them to the connection).
    fn into_parts(self: Box<Self>) -> Parts;
}

/// What a transport is made of: a connected stream socket and, with TLS, the
/// session over it.
pub(crate) struct Parts {
    pub(crate) socket: TcpStream,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<crate::tls::Session>,
}

impl Parts {
    /// A connected stream socket (TCP or Unix, any `OwnedFd`: `std`'s `TcpStream`
    /// gives safe read, write and shutdown on any stream socket fd), no TLS.
    pub(crate) fn plain(socket: impl Into<OwnedFd>) -> Parts {
        Parts {
            socket: TcpStream::from(socket.into()),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// The transport over these parts, the socket made non-blocking.
    pub(crate) fn open(self) -> io::Result<Box<dyn Transport>> {
        self.socket.set_nonblocking(true)?;
        #[cfg(feature = "tls")]
        if let Some(session) = self.tls {
            return Ok(Box::new(Tls {
                socket: self.socket,
                session,
            }));
        }
        Ok(Box::new(Plain(self.socket)))
    }
}

/// A connected stream socket, no TLS.
struct Plain(TcpStream);

impl Transport for Plain {
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }

    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.peer_addr()
    }

    fn close(self: Box<Self>, gently: bool) {
        if gently {
            close_gently(&self.0);
        }
    }

    fn into_parts(self: Box<Self>) -> Parts {
        Parts::plain(self.0)
    }
}

/// A TLS session over a connected socket.
#[cfg(feature = "tls")]
struct Tls {
    socket: TcpStream,
    session: crate::tls::Session,
}

#[cfg(feature = "tls")]
impl Transport for Tls {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.session.read_via(&self.socket, buf)
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.session.write_via(&self.socket, buf)
    }

    fn fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }

    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.socket.peer_addr()
    }

    /// `close_notify` first (as far as the socket takes it), then as `Plain`.
    fn close(mut self: Box<Self>, gently: bool) {
        self.session.close_via(&self.socket);
        if gently {
            close_gently(&self.socket);
        }
    }

    fn wants_write(&self) -> bool {
        self.session.wants_write()
    }

    fn flush(&mut self) -> io::Result<()> {
        self.session.flush_via(&self.socket)
    }

    fn has_buffered_input(&self) -> bool {
        self.session.has_buffered_input()
    }

    fn take_flushed(&mut self) -> usize {
        self.session.take_flushed()
    }

    fn tls_info(&self) -> Option<crate::tls::TlsInfo> {
        Some(self.session.info())
    }

    fn into_parts(self: Box<Self>) -> Parts {
        Parts {
            socket: self.socket,
            tls: Some(self.session),
        }
    }
}

/// Closes a socket the peer may still be writing to (we failed the connection, gave
/// up waiting, stopped reading for good, or refused a handshake): shuts down writing
/// and reads what is already there first, up to a bound.
fn close_gently(socket: &TcpStream) {
    const DRAIN_LIMIT: usize = 64 * 1024;
    let _ = socket.shutdown(Shutdown::Write);
    let mut scratch = [0u8; 4096];
    let mut drained = 0;
    let mut reader = socket;
    while drained < DRAIN_LIMIT {
        match reader.read(&mut scratch) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}
