//! The seam between a connection and its bytes: the connection reads and writes
//! through a [`Transport`] and knows nothing else of it. A plain stream socket
//! today; a TLS session over one can sit here without touching the connection's
//! state machine.

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
}

/// A connected stream socket (TCP or Unix): `std`'s `TcpStream` gives safe
/// read, write and shutdown on any stream socket fd.
pub(crate) struct Plain(TcpStream);

impl Plain {
    /// Takes ownership of a connected stream socket and makes it non-blocking.
    pub(crate) fn new(fd: OwnedFd) -> io::Result<Plain> {
        let socket = TcpStream::from(fd);
        socket.set_nonblocking(true)?;
        Ok(Plain(socket))
    }
}

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
}

/// Closes a socket the peer may still be writing to (we failed the connection, gave
/// up waiting, stopped reading for good, or refused a handshake): shuts down writing
/// and reads what is already there first, up to a bound.
pub(crate) fn close_gently(socket: &TcpStream) {
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
