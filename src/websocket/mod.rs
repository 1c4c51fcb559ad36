//! The Perl-shaped object: [`Server`] and [`Client`] wrap a connected, handshaken
//! socket in a [`WebSocket`] driven by one libev io watcher.
//!
//! Every callback gets the connection handle first and may call any method on it
//! (reply, close, stop reading, drop every handle). The connection stays alive on its
//! loop while it is open, whether or not a handle is kept, and owns its socket.

mod cause;
mod conn;
mod deadlines;
mod dispatch;
mod error;
pub mod listen;
mod params;
mod transport;
pub mod upgrade;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::rc::Rc;

use crate::ev::Loop;
use crate::proto::{Fragment, OpCode, Role};

pub use cause::{CloseCause, Waited};
pub use error::Error;
pub use listen::{Accepted, ListenParams, Listener};
pub use params::{Params, DEFAULT_CLOSE_TIMEOUT};

use conn::Conn;

/// Ends every connection on `lp` now, without a closing handshake, and returns how
/// many there were: each socket is closed and each `on_close` runs (with 1006 unless
/// the peer's close had arrived) inside this call; `wait` callbacks get
/// [`Waited::Closed`] if data was left unsent.
///
/// For the owner of a loop who is about to destroy it (a loop adopted with
/// [`Loop::from_raw`]) or a worker thread about to exit: connections otherwise stay
/// alive on their loop while open, so their fds would leak with it. Teardown order:
/// `abort_all(&lp)`, then drop your handles and watchers, then destroy the loop.
/// A connection whose callback is running (when called from inside it) ends when
/// that callback returns.
///
/// ```
/// use net_websocket_ev::{ev::Loop, websocket, Params, Server};
/// use std::{cell::Cell, os::unix::net::UnixStream, rc::Rc};
///
/// let lp = Loop::new().unwrap();
/// let closed = Rc::new(Cell::new(0));
/// let mut peers = Vec::new();
/// for _ in 0..3 {
///     let (ours, theirs) = UnixStream::pair().unwrap();
///     peers.push(theirs);
///     let closed = closed.clone();
///     Server::new(Params::new(ours).event_loop(&lp).on_close(move |_, code| {
///         assert_eq!(code, 1006);
///         closed.set(closed.get() + 1);
///     }))
///     .unwrap();
/// }
/// assert_eq!(websocket::abort_all(&lp), 3);
/// assert_eq!(closed.get(), 3);
/// ```
pub fn abort_all(lp: &Loop) -> usize {
    conn::abort_all(lp)
}

/// `Net::WebSocket::EV::Server`: the server side (expects masked frames, sends unmasked).
#[derive(Debug)]
pub struct Server;

/// `Net::WebSocket::EV::Client`: the client side (masks every frame it sends).
#[derive(Debug)]
pub struct Client;

impl Server {
    /// Wraps a socket whose handshake is done; starts reading at once on the loop.
    ///
    /// ```
    /// use net_websocket_ev::{ev::Loop, Params, Server};
    /// use std::os::unix::net::UnixStream;
    ///
    /// let lp = Loop::new().unwrap();
    /// let (ours, _peer) = UnixStream::pair().unwrap();
    /// let ws = Server::new(Params::new(ours).event_loop(&lp)).unwrap();
    /// assert_eq!(ws.queued_count().unwrap(), 0);
    /// ```
    // Mirrors Perl's `Net::WebSocket::EV::Server->new`, which returns the connection.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(params: Params) -> Result<WebSocket, Error> {
        Conn::open(Role::Server, params)
    }
}

impl Client {
    /// Wraps a socket whose handshake is done, as the client side.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(params: Params) -> Result<WebSocket, Error> {
        Conn::open(Role::Client, params)
    }
}

/// A handle to a WebSocket connection (the Perl object). Cloning gives another handle
/// to the same connection; dropping every handle does not end it.
#[derive(Clone)]
pub struct WebSocket {
    conn: Rc<Conn>,
}

impl WebSocket {
    /// Perl `queue_msg($msg, $opcode)`: queues one message of `opcode` (text, binary,
    /// ping or pong). Text must be valid UTF-8; control payloads at most 125 bytes; a
    /// close is sent with [`close`](Self::close).
    pub fn queue_msg(&self, msg: &[u8], opcode: OpCode) -> Result<(), Error> {
        self.conn.sender()?.queue_msg(opcode, msg)?;
        self.conn.settle(false);
        Ok(())
    }

    /// Perl `queue_msg($msg)` with its default opcode: one text message.
    pub fn queue_text(&self, text: &str) -> Result<(), Error> {
        self.queue_msg(text.as_bytes(), OpCode::Text)
    }

    /// One binary message.
    pub fn queue_binary(&self, data: &[u8]) -> Result<(), Error> {
        self.queue_msg(data, OpCode::Binary)
    }

    /// Perl `queue_fragmented($cb, $opcode)`: a message produced piece by piece. When
    /// the socket can take the next frame, `producer` fills (a prefix of) the buffer it
    /// is given and says how much it wrote: [`Fragment::Data`] for a piece,
    /// [`Fragment::Eof`] for the last one (may be empty), [`Fragment::Error`] to give
    /// up (the peer gets close 1011, as it does for a text piece that is not UTF-8).
    ///
    /// A producer with nothing ready returns [`Fragment::Pause`]: it is not asked
    /// again until [`resume_fragmented`](Self::resume_fragmented), and meanwhile pongs
    /// and a failure close still go out (messages queued after it wait, in order; a
    /// [`close`](Self::close) behind a paused producer is bounded by the close
    /// timeout). `Data(0)` sends nothing and asks again at the next writable event
    /// (the original's busy loop).
    pub fn queue_fragmented(
        &self,
        producer: impl FnMut(&WebSocket, &mut [u8]) -> Fragment + 'static,
        opcode: OpCode,
    ) -> Result<(), Error> {
        self.conn.sender()?.queue_fragmented(opcode)?;
        self.conn.add_producer(Box::new(producer));
        self.conn.settle(false);
        Ok(())
    }

    /// Asks a producer that returned [`Fragment::Pause`] for its next piece again.
    ///
    /// ```
    /// use net_websocket_ev::ev::{Loop, RunFlags};
    /// use net_websocket_ev::{websocket, Fragment, OpCode, Params, Server};
    /// use std::{cell::Cell, os::unix::net::UnixStream, rc::Rc};
    ///
    /// let lp = Loop::new().unwrap();
    /// let (ours, _peer) = UnixStream::pair().unwrap();
    /// let ws = Server::new(Params::new(ours).event_loop(&lp)).unwrap();
    /// let ready = Rc::new(Cell::new(false));
    /// let r = ready.clone();
    /// ws.queue_fragmented(
    ///     move |_, buf| {
    ///         if !r.get() {
    ///             return Fragment::Pause; // nothing yet: not asked again until resumed
    ///         }
    ///         buf[..4].copy_from_slice(b"data");
    ///         Fragment::Eof(4)
    ///     },
    ///     OpCode::Binary,
    /// )
    /// .unwrap();
    /// lp.run_with(RunFlags::NoWait);
    /// assert_eq!(ws.queued_count().unwrap(), 1);
    /// ready.set(true);
    /// ws.resume_fragmented().unwrap();
    /// lp.run_with(RunFlags::NoWait);
    /// assert_eq!(ws.queued_count().unwrap(), 0);
    /// websocket::abort_all(&lp);
    /// ```
    pub fn resume_fragmented(&self) -> Result<(), Error> {
        self.conn.resume_fragmented()
    }

    /// Perl `close($code, $reason)`: starts the closing handshake. Everything queued
    /// before goes out first, then the close frame; we read on until the peer's close
    /// arrives, then close the socket. The close timeout bounds the time without
    /// progress. `None` sends a close without code (the reason must then be empty).
    pub fn close(&self, code: Option<u16>, reason: &str) -> Result<(), Error> {
        self.conn.close(code, reason.as_bytes())
    }

    /// Perl `wait($cb)`: calls `callback` once the send queue is empty, from the loop;
    /// every registered callback fires, once, in order. If the connection ends first,
    /// it gets [`Waited::Closed`] with the number of messages left unsent (a peer that
    /// vanished mid-upload), else [`Waited::Drained`].
    ///
    /// ```
    /// use net_websocket_ev::ev::{Loop, RunFlags};
    /// use net_websocket_ev::{websocket, Params, Server, Waited};
    /// use std::{cell::Cell, os::unix::net::UnixStream, rc::Rc};
    ///
    /// let lp = Loop::new().unwrap();
    /// let (ours, _peer) = UnixStream::pair().unwrap();
    /// let ws = Server::new(Params::new(ours).event_loop(&lp)).unwrap();
    /// ws.queue_text("hello").unwrap();
    /// let seen = Rc::new(Cell::new(None));
    /// let s = seen.clone();
    /// ws.wait(move |_, waited| s.set(Some(waited))).unwrap();
    /// while seen.get().is_none() {
    ///     lp.run_with(RunFlags::Once);
    /// }
    /// assert_eq!(seen.get(), Some(Waited::Drained));
    /// websocket::abort_all(&lp);
    /// ```
    pub fn wait(&self, callback: impl FnOnce(&WebSocket, Waited) + 'static) -> Result<(), Error> {
        self.conn.check_open()?;
        self.conn.add_waiter(Box::new(callback));
        Ok(())
    }

    /// Perl `wait()` without a callback (the Coro form): writes and runs the loop
    /// (other watchers keep working) until the send queue is empty
    /// ([`Waited::Drained`]) or the connection has ended ([`Waited::Closed`]). It
    /// works from anywhere, this connection's own callbacks included, and returns as
    /// soon as the queue is empty. [`Error::Stalled`] when nothing could make
    /// progress: writing is stopped, the head of the queue is a paused producer, or it
    /// was called from inside a producer (whose message cannot end before it returns).
    pub fn wait_blocking(&self) -> Result<Waited, Error> {
        self.conn.wait_blocking()
    }

    /// Perl `queued_count()`: messages queued or partly sent, control frames included.
    pub fn queued_count(&self) -> Result<usize, Error> {
        self.conn.check_open()?;
        self.conn
            .sender
            .try_borrow()
            .map(|s| s.queued_count())
            .map_err(|_| Error::Busy)
    }

    /// Bytes queued and not yet written.
    pub fn queued_bytes(&self) -> Result<usize, Error> {
        self.conn.check_open()?;
        self.conn
            .sender
            .try_borrow()
            .map(|s| s.queued_bytes())
            .map_err(|_| Error::Busy)
    }

    /// Perl `start()`: resumes both directions.
    pub fn start(&self) -> Result<(), Error> {
        self.start_read()?;
        self.start_write()
    }

    /// Perl `stop()`: pauses both directions; nothing is lost.
    pub fn stop(&self) -> Result<(), Error> {
        self.stop_read()?;
        self.stop_write()
    }

    /// Perl `start_read()`: resumes reading; bytes kept from the pause come first.
    /// The idle clock starts again from this call.
    pub fn start_read(&self) -> Result<(), Error> {
        self.conn.check_open()?;
        self.conn.set_read_stopped(false);
        Ok(())
    }

    /// Perl `stop_read()`: pauses reading at once (even between two messages of one
    /// read). A paused reader notices nothing, not even the peer's close or EOF; the
    /// idle timeout is suspended meanwhile.
    pub fn stop_read(&self) -> Result<(), Error> {
        self.conn.check_open()?;
        self.conn.set_read_stopped(true);
        Ok(())
    }

    /// Perl `start_write()`: resumes writing.
    pub fn start_write(&self) -> Result<(), Error> {
        self.conn.check_open()?;
        self.conn.set_write_stopped(false);
        Ok(())
    }

    /// Perl `stop_write()`: pauses writing, control frames included; queueing goes
    /// on, nothing is lost. (To hold back only a message that is not ready, use
    /// [`Fragment::Pause`].)
    pub fn stop_write(&self) -> Result<(), Error> {
        self.conn.check_open()?;
        self.conn.set_write_stopped(true);
        Ok(())
    }

    /// Perl `shutdown_read()`: ends reading for good, at once. The connection ends
    /// when the send queue has drained (bounded by the close timeout); `on_close`
    /// runs from the loop, never inside this call.
    pub fn shutdown_read(&self) -> Result<(), Error> {
        self.conn.check_open()?;
        self.conn.shutdown_read();
        Ok(())
    }

    /// Perl `shutdown_write()`: ends writing for good; the queue is dropped and later
    /// queueing fails. Reading goes on.
    pub fn shutdown_write(&self) -> Result<(), Error> {
        self.conn.shutdown_write()
    }

    /// Ends the connection without a closing handshake: queued data is dropped,
    /// and from the loop, a moment later (never inside this call, nor inside the
    /// callback that called it), the socket is closed (after reading away what the
    /// peer already sent, so it is not reset), `wait` callbacks are released and
    /// `on_close` runs with [`status_code_received`](Self::status_code_received)
    /// (1006 unless the peer's close already arrived). Every call fails with
    /// [`Error::Closed`] from now on. The counterpart of destroying the Perl object.
    pub fn abort(&self) -> Result<(), Error> {
        self.conn.abort()
    }

    /// Whether the connection is over, or its end is decided (every call then fails
    /// with [`Error::Closed`]).
    pub fn is_closed(&self) -> bool {
        self.conn.is_finished()
    }

    /// The code of the peer's close frame so far: 1006 until one arrives, 1005 if it
    /// had none. What `on_close` gets.
    pub fn status_code_received(&self) -> u16 {
        self.conn.status_received()
    }

    /// The reason of the peer's close frame, if it had one.
    pub fn close_reason_received(&self) -> Option<String> {
        self.conn.reason_received()
    }

    /// The code of the close frame we sent (1005 for one without code), once it has
    /// been written.
    pub fn status_code_sent(&self) -> Option<u16> {
        self.conn.status_sent()
    }

    /// Why the connection ended, or is ending; `None` while it is open. Available in
    /// `on_close` and after.
    ///
    /// ```
    /// use net_websocket_ev::ev::{Loop, RunFlags};
    /// use net_websocket_ev::{CloseCause, Params, Server};
    /// use std::os::unix::net::UnixStream;
    ///
    /// let lp = Loop::new().unwrap();
    /// let (ours, peer) = UnixStream::pair().unwrap();
    /// let ws = Server::new(Params::new(ours).event_loop(&lp)).unwrap();
    /// assert_eq!(ws.close_cause(), None);
    /// drop(peer); // the peer vanishes without a close frame
    /// while !ws.is_closed() {
    ///     lp.run_with(RunFlags::Once);
    /// }
    /// assert_eq!(ws.close_cause(), Some(CloseCause::Eof));
    /// assert_eq!(ws.status_code_received(), 1006); // what on_close got
    /// ```
    pub fn close_cause(&self) -> Option<CloseCause> {
        self.conn.cause()
    }

    /// The address of the peer (an error for a Unix socket, or once closed).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.conn.peer_addr()
    }

    /// What the TLS session agreed on (feature `tls`): `None` for a plain
    /// connection, and once closed. A copy, so it may be kept.
    ///
    /// ```no_run
    /// # let ws: net_websocket_ev::WebSocket = unimplemented!();
    /// if let Some(tls) = ws.tls_info() {
    ///     let client_cert = tls.peer_certificates.first(); // with client certificates
    ///     println!("{:?} {:?} SNI {:?}", tls.protocol_version, tls.cipher_suite, tls.server_name);
    /// }
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls_info(&self) -> Option<crate::tls::TlsInfo> {
        self.conn.tls_info()
    }

    /// The socket's fd while the connection has it (`None` once closed). The
    /// connection owns it: do not close it.
    pub fn as_raw_fd(&self) -> Option<RawFd> {
        self.conn.raw_fd()
    }

    /// Whether this is the server or the client side.
    pub fn role(&self) -> Role {
        self.conn.role
    }

    /// The loop the connection runs on.
    pub fn event_loop(&self) -> &Loop {
        self.conn.lp()
    }
}

impl fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocket")
            .field("role", &self.conn.role)
            .field("closed", &self.conn.is_finished())
            .finish()
    }
}
