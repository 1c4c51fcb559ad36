//! The Perl-shaped object: [`Server`] and [`Client`] wrap a connected, handshaken
//! socket in a [`WebSocket`] driven by one libev io watcher.
//!
//! Every callback gets the connection handle first and may call any method on it
//! (reply, close, stop reading, drop every handle). The connection stays alive on its
//! loop while it is open, whether or not a handle is kept, and owns its socket.

mod conn;
mod deadlines;
mod dispatch;
mod error;
mod params;
pub mod upgrade;

use std::fmt;
use std::io::Read;
use std::net::{Shutdown, TcpStream};
use std::rc::Rc;

use crate::ev::{Loop, RunFlags};
use crate::proto::{Fragment, OpCode, Role};

pub use error::Error;
pub use params::{Params, DEFAULT_CLOSE_TIMEOUT};

use conn::Conn;

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
        self.conn.rearm();
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
    /// up (the peer gets close 1011). `Data(0)` sends nothing and asks again at the next
    /// writable event: use [`stop_write`](Self::stop_write) while no data is ready.
    pub fn queue_fragmented(
        &self,
        producer: impl FnMut(&WebSocket, &mut [u8]) -> Fragment + 'static,
        opcode: OpCode,
    ) -> Result<(), Error> {
        self.conn.sender()?.queue_fragmented(opcode)?;
        self.conn.add_producer(Box::new(producer));
        self.conn.rearm();
        Ok(())
    }

    /// Perl `close($code, $reason)`: starts the closing handshake. Everything queued
    /// before goes out first, then the close frame; we read on until the peer's close
    /// arrives (or the close timeout passes), then close the socket. `None` sends a
    /// close without code (the reason must then be empty).
    pub fn close(&self, code: Option<u16>, reason: &str) -> Result<(), Error> {
        self.conn.sender()?.queue_close(code, reason.as_bytes())?;
        self.conn.rearm();
        Ok(())
    }

    /// Perl `wait($cb)`: calls `callback` once the send queue is empty (or the
    /// connection is over), from the loop. Every registered callback fires, once, in
    /// order.
    pub fn wait(&self, callback: impl FnOnce(&WebSocket) + 'static) -> Result<(), Error> {
        self.conn.check_open()?;
        self.conn.add_waiter(Box::new(callback));
        Ok(())
    }

    /// Perl `wait()` without a callback (the Coro form): runs the loop until the send
    /// queue is empty or the connection is over. Not from inside this connection's own
    /// callbacks ([`Error::WouldDeadlock`]).
    pub fn wait_blocking(&self) -> Result<(), Error> {
        self.conn.check_open()?;
        if self.conn.in_io() {
            return Err(Error::WouldDeadlock);
        }
        while !self.conn.is_finished() {
            let drained = self
                .conn
                .sender
                .try_borrow()
                .map_err(|_| Error::WouldDeadlock)
                .map(|s| s.queued_count() == 0 && !s.want_write())?;
            if drained {
                break;
            }
            self.conn.lp().run_with(RunFlags::Once);
        }
        Ok(())
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
    pub fn start_read(&self) -> Result<(), Error> {
        self.conn.check_open()?;
        self.conn.set_read_stopped(false);
        Ok(())
    }

    /// Perl `stop_read()`: pauses reading at once (even between two messages of one
    /// read). A paused reader notices nothing, not even the peer's close or EOF.
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

    /// Perl `stop_write()`: pauses writing; queueing goes on, nothing is lost.
    pub fn stop_write(&self) -> Result<(), Error> {
        self.conn.check_open()?;
        self.conn.set_write_stopped(true);
        Ok(())
    }

    /// Perl `shutdown_read()`: ends reading for good, at once. The connection ends
    /// when the send queue has drained.
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

    /// Ends the connection now, without a closing handshake: the socket is closed (after
    /// reading away what the peer already sent, so it is not reset), queued data is
    /// dropped, `wait` callbacks are released and `on_close` runs with
    /// [`status_code_received`](Self::status_code_received) (1006 unless the peer's close
    /// already arrived). The counterpart of destroying the Perl object. From inside one of
    /// this connection's callbacks it takes effect when that callback returns.
    pub fn abort(&self) -> Result<(), Error> {
        self.conn.check_open()?;
        self.conn.abort();
        Ok(())
    }

    /// Whether the connection is over (`on_close` has run or is running).
    pub fn is_closed(&self) -> bool {
        self.conn.is_finished()
    }

    /// The code of the peer's close frame so far: 1006 until one arrives, 1005 if it
    /// had no code.
    pub fn status_code_received(&self) -> u16 {
        self.conn.status_received()
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

/// Closes a socket the peer may still be writing to (we failed the connection, gave
/// up waiting, stopped reading for good, or refused a handshake): shuts down writing
/// and reads what is already there first, up to a bound. Closing with unread bytes
/// resets the connection, and the reset can destroy our last frames (or the 400) before
/// the peer reads them.
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

impl fmt::Debug for WebSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocket")
            .field("role", &self.conn.role)
            .field("closed", &self.conn.is_finished())
            .finish()
    }
}
