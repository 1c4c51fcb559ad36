//! The Perl-shaped object: [`Server`] and [`Client`] wrap a connected, handshaken
//! socket in a [`WebSocket`] driven by one libev io watcher.
//!
//! Every callback gets the connection handle first and may call any method on it
//! (reply, close, stop reading, drop every handle). The connection stays alive on its
//! loop while it is open, whether or not a handle is kept, and owns its socket.

mod broadcast;
mod cause;
mod conn;
pub mod connect;
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

pub use broadcast::{Group, Overflow, PreparedMessage, Published};
pub use cause::{CloseCause, Waited};
pub use connect::{connect, ConnectError, ConnectOptions, Connecting, Proxy};
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
/// that callback returns. Handshakes in progress on `lp` (a listener's, even once
/// it is dropped, or of [`upgrade::accept`] / [`upgrade::upgrade`]) end too, first:
/// each socket closed, each callback given [`UpgradeError::Aborted`](upgrade::UpgradeError::Aborted).
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
    upgrade::abort_all(lp);
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
    ///
    /// ```
    /// use net_websocket_ev::ev::{Loop, RunFlags};
    /// use net_websocket_ev::{Client, Params, Server};
    /// use std::{cell::Cell, os::unix::net::UnixStream, rc::Rc};
    ///
    /// let lp = Loop::new().unwrap();
    /// let (ours, theirs) = UnixStream::pair().unwrap();
    /// // An echo server at the other end.
    /// Server::new(Params::new(theirs).event_loop(&lp).on_msg_recv(|ws, _, opcode, msg, _| {
    ///     ws.queue_msg(msg, opcode).ok();
    /// }))
    /// .unwrap();
    /// let echoed = Rc::new(Cell::new(false));
    /// let seen = echoed.clone();
    /// let params = Params::new(ours)
    ///     .event_loop(&lp)
    ///     .on_msg_recv(move |_ws, _rsv, _opcode, msg, _| seen.set(msg == b"hello"));
    /// let ws = Client::new(params).unwrap();
    /// ws.queue_text("hello").unwrap(); // masked, as a client's frames must be
    /// while !echoed.get() {
    ///     lp.run_with(RunFlags::Once);
    /// }
    /// ```
    #[allow(clippy::new_ret_no_self)]
    pub fn new(params: Params) -> Result<WebSocket, Error> {
        Conn::open(Role::Client, params)
    }
}

/// A handle to a WebSocket connection (the Perl object). Cloning gives another handle
/// to the same connection; dropping every handle does not end it.
///
/// The methods' examples run a server `ws` on loop `lp`, most of them against a client
/// `peer` at the other end of a [`UnixStream::pair`](std::os::unix::net::UnixStream::pair)
/// (set up in hidden lines: see [`Client::new`] for the same set-up in full).
#[derive(Clone)]
pub struct WebSocket {
    conn: Rc<Conn>,
}

impl WebSocket {
    /// Perl `queue_msg($msg, $opcode)`: queues one message of `opcode` (text, binary,
    /// ping or pong). Text must be valid UTF-8; control payloads at most 125 bytes; a
    /// close is sent with [`close`](Self::close).
    ///
    /// ```
    /// # use net_websocket_ev::{ev::{Loop, RunFlags}, Client, Params, Server};
    /// # use std::{cell::RefCell, os::unix::net::UnixStream, rc::Rc};
    /// # let lp = Loop::new().unwrap();
    /// # let (sock, other) = UnixStream::pair().unwrap();
    /// # let ws = Server::new(Params::new(sock).event_loop(&lp)).unwrap();
    /// # let got: Rc<RefCell<Vec<(net_websocket_ev::OpCode, Vec<u8>)>>> = Default::default();
    /// # let g = got.clone();
    /// # let peer = Client::new(Params::new(other).event_loop(&lp).on_msg_recv(move |_, _, op, msg, _| {
    /// #     g.borrow_mut().push((op, msg.to_vec()))
    /// # }))
    /// # .unwrap();
    /// use net_websocket_ev::OpCode;
    ///
    /// ws.queue_msg(b"\x00\x01", OpCode::Binary)?;
    /// ws.queue_msg("h\u{e9}llo".as_bytes(), OpCode::Text)?;
    /// ws.queue_msg(b"are you there?", OpCode::Ping)?; // the peer answers with a pong
    /// assert!(ws.queue_msg(b"\xff", OpCode::Text).is_err()); // text must be UTF-8
    /// assert!(ws.queue_msg(b"", OpCode::Close).is_err()); // a close goes through close()
    /// # while got.borrow().len() < 3 {
    /// #     lp.run_with(RunFlags::Once);
    /// # }
    /// # assert!(got.borrow().contains(&(OpCode::Text, "h\u{e9}llo".as_bytes().to_vec())));
    /// # Ok::<(), net_websocket_ev::Error>(())
    /// ```
    ///
    /// A large message queued from inside `on_msg_recv` with the very slice that
    /// callback got (an echo, or a relay to other connections) is not copied: the
    /// send queues share the received buffer.
    pub fn queue_msg(&self, msg: &[u8], opcode: OpCode) -> Result<(), Error> {
        let mut sender = self.conn.sender()?;
        match dispatch::delivered(msg) {
            Some(shared) if shared.opcode() == opcode => sender.queue_shared(&shared)?,
            _ => sender.queue_msg(opcode, msg)?,
        }
        drop(sender);
        self.conn.settle(false);
        Ok(())
    }

    /// Perl `queue_msg($msg)` with its default opcode: one text message.
    ///
    /// ```
    /// # use net_websocket_ev::{ev::{Loop, RunFlags}, Client, Params, Server};
    /// # use std::{cell::RefCell, os::unix::net::UnixStream, rc::Rc};
    /// # let lp = Loop::new().unwrap();
    /// # let (sock, other) = UnixStream::pair().unwrap();
    /// # let ws = Server::new(Params::new(sock).event_loop(&lp)).unwrap();
    /// # let got: Rc<RefCell<Vec<(net_websocket_ev::OpCode, Vec<u8>)>>> = Default::default();
    /// # let g = got.clone();
    /// # let peer = Client::new(Params::new(other).event_loop(&lp).on_msg_recv(move |_, _, op, msg, _| {
    /// #     g.borrow_mut().push((op, msg.to_vec()))
    /// # }))
    /// # .unwrap();
    /// use net_websocket_ev::OpCode;
    ///
    /// ws.queue_text("hello")?;
    /// # while got.borrow().len() < 1 {
    /// #     lp.run_with(RunFlags::Once);
    /// # }
    /// assert_eq!(got.borrow()[0], (OpCode::Text, b"hello".to_vec())); // what the peer got
    /// # Ok::<(), net_websocket_ev::Error>(())
    /// ```
    pub fn queue_text(&self, text: &str) -> Result<(), Error> {
        self.queue_msg(text.as_bytes(), OpCode::Text)
    }

    /// One binary message.
    ///
    /// ```
    /// # use net_websocket_ev::{ev::{Loop, RunFlags}, Client, Params, Server};
    /// # use std::{cell::RefCell, os::unix::net::UnixStream, rc::Rc};
    /// # let lp = Loop::new().unwrap();
    /// # let (sock, other) = UnixStream::pair().unwrap();
    /// # let ws = Server::new(Params::new(sock).event_loop(&lp)).unwrap();
    /// # let got: Rc<RefCell<Vec<(net_websocket_ev::OpCode, Vec<u8>)>>> = Default::default();
    /// # let g = got.clone();
    /// # let peer = Client::new(Params::new(other).event_loop(&lp).on_msg_recv(move |_, _, op, msg, _| {
    /// #     g.borrow_mut().push((op, msg.to_vec()))
    /// # }))
    /// # .unwrap();
    /// ws.queue_binary(&[0xde, 0xad, 0xbe, 0xef])?;
    /// # while got.borrow().len() < 1 {
    /// #     lp.run_with(RunFlags::Once);
    /// # }
    /// # assert_eq!(got.borrow()[0], (net_websocket_ev::OpCode::Binary, vec![0xde, 0xad, 0xbe, 0xef]));
    /// # Ok::<(), net_websocket_ev::Error>(())
    /// ```
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
    ///
    /// ```
    /// # use net_websocket_ev::{ev::{Loop, RunFlags}, Client, Params, Server};
    /// # use std::{cell::RefCell, os::unix::net::UnixStream, rc::Rc};
    /// # let lp = Loop::new().unwrap();
    /// # let (sock, other) = UnixStream::pair().unwrap();
    /// # let ws = Server::new(Params::new(sock).event_loop(&lp)).unwrap();
    /// # let got: Rc<RefCell<Vec<(net_websocket_ev::OpCode, Vec<u8>)>>> = Default::default();
    /// # let g = got.clone();
    /// # let peer = Client::new(Params::new(other).event_loop(&lp).on_msg_recv(move |_, _, op, msg, _| {
    /// #     g.borrow_mut().push((op, msg.to_vec()))
    /// # }))
    /// # .unwrap();
    /// use net_websocket_ev::{Fragment, OpCode};
    /// use std::io::Read;
    ///
    /// let mut file = std::io::Cursor::new(vec![7u8; 10_000]); // or a File, a pipe...
    /// ws.queue_fragmented(
    ///     move |_ws, buf| match file.read(buf) {
    ///         Ok(0) => Fragment::Eof(0), // an empty final frame ends the message
    ///         Ok(n) => Fragment::Data(n),
    ///         Err(_) => Fragment::Error, // the peer gets close 1011
    ///     },
    ///     OpCode::Binary,
    /// )?;
    /// # while got.borrow().len() < 1 {
    /// #     lp.run_with(RunFlags::Once);
    /// # }
    /// assert_eq!(got.borrow()[0].1.len(), 10_000); // one message for the peer
    /// # Ok::<(), net_websocket_ev::Error>(())
    /// ```
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
    ///
    /// ```
    /// # use net_websocket_ev::{ev::{Loop, RunFlags}, Client, Params, Server};
    /// # use std::{cell::RefCell, os::unix::net::UnixStream, rc::Rc};
    /// # let lp = Loop::new().unwrap();
    /// # let (sock, other) = UnixStream::pair().unwrap();
    /// # let ws = Server::new(Params::new(sock).event_loop(&lp)).unwrap();
    /// # let got: Rc<RefCell<Vec<(net_websocket_ev::OpCode, Vec<u8>)>>> = Default::default();
    /// # let g = got.clone();
    /// # let peer = Client::new(Params::new(other).event_loop(&lp).on_msg_recv(move |_, _, op, msg, _| {
    /// #     g.borrow_mut().push((op, msg.to_vec()))
    /// # }))
    /// # .unwrap();
    /// ws.queue_text("last words")?;
    /// ws.close(Some(1000), "bye")?; // goes out after "last words"
    /// assert!(ws.queue_text("too late").is_err());
    /// while !ws.is_closed() {
    ///     lp.run_with(RunFlags::Once);
    /// }
    /// assert_eq!(ws.status_code_received(), 1000); // the peer's reply echoed our code
    /// # assert_eq!(got.borrow()[0].1, b"last words");
    /// # Ok::<(), net_websocket_ev::Error>(())
    /// ```
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
    ///
    /// ```
    /// # use net_websocket_ev::{ev::{Loop, RunFlags}, Client, Params, Server};
    /// # use std::{cell::RefCell, os::unix::net::UnixStream, rc::Rc};
    /// # let lp = Loop::new().unwrap();
    /// # let (sock, other) = UnixStream::pair().unwrap();
    /// # let ws = Server::new(Params::new(sock).event_loop(&lp)).unwrap();
    /// # let got: Rc<RefCell<Vec<(net_websocket_ev::OpCode, Vec<u8>)>>> = Default::default();
    /// # let g = got.clone();
    /// # let peer = Client::new(Params::new(other).event_loop(&lp).on_msg_recv(move |_, _, op, msg, _| {
    /// #     g.borrow_mut().push((op, msg.to_vec()))
    /// # }))
    /// # .unwrap();
    /// use net_websocket_ev::Waited;
    ///
    /// ws.queue_binary(&vec![0; 1 << 20])?; // more than a socket buffer holds
    /// assert_eq!(ws.wait_blocking()?, Waited::Drained); // ran the loop until written
    /// assert_eq!(ws.queued_count()?, 0);
    /// # Ok::<(), net_websocket_ev::Error>(())
    /// ```
    pub fn wait_blocking(&self) -> Result<Waited, Error> {
        self.conn.wait_blocking()
    }

    /// Perl `queued_count()`: messages queued or partly sent, control frames included.
    ///
    /// ```
    /// # use net_websocket_ev::{ev::{Loop, RunFlags}, Params, Server};
    /// # let lp = Loop::new().unwrap();
    /// # let (sock, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    /// # let ws = Server::new(Params::new(sock).event_loop(&lp)).unwrap();
    /// use net_websocket_ev::OpCode;
    ///
    /// ws.stop_write()?; // hold everything back, to count it
    /// ws.queue_text("one")?;
    /// ws.queue_msg(b"", OpCode::Ping)?;
    /// assert_eq!(ws.queued_count()?, 2);
    /// # Ok::<(), net_websocket_ev::Error>(())
    /// ```
    pub fn queued_count(&self) -> Result<usize, Error> {
        self.conn.check_open()?;
        self.conn
            .sender
            .try_borrow()
            .map(|s| s.queued_count())
            .map_err(|_| Error::Busy)
    }

    /// Bytes queued and not yet written.
    ///
    /// ```
    /// # use net_websocket_ev::{ev::{Loop, RunFlags}, Params, Server};
    /// # let lp = Loop::new().unwrap();
    /// # let (sock, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    /// # let ws = Server::new(Params::new(sock).event_loop(&lp)).unwrap();
    /// ws.stop_write()?;
    /// ws.queue_binary(&[0; 100])?;
    /// assert!(ws.queued_bytes()? >= 100); // the payload and its frame header
    /// # Ok::<(), net_websocket_ev::Error>(())
    /// ```
    pub fn queued_bytes(&self) -> Result<usize, Error> {
        self.conn.check_open()?;
        self.conn
            .sender
            .try_borrow()
            .map(|s| s.queued_bytes())
            .map_err(|_| Error::Busy)
    }

    /// Perl `start()`: resumes both directions.
    ///
    /// ```
    /// # use net_websocket_ev::{ev::{Loop, RunFlags}, Client, Params, Server};
    /// # use std::{cell::RefCell, os::unix::net::UnixStream, rc::Rc};
    /// # let lp = Loop::new().unwrap();
    /// # let (sock, other) = UnixStream::pair().unwrap();
    /// # let ws = Server::new(Params::new(sock).event_loop(&lp)).unwrap();
    /// # let got: Rc<RefCell<Vec<(net_websocket_ev::OpCode, Vec<u8>)>>> = Default::default();
    /// # let g = got.clone();
    /// # let peer = Client::new(Params::new(other).event_loop(&lp).on_msg_recv(move |_, _, op, msg, _| {
    /// #     g.borrow_mut().push((op, msg.to_vec()))
    /// # }))
    /// # .unwrap();
    /// ws.stop()?;
    /// ws.queue_text("held back")?;
    /// lp.run_with(RunFlags::NoWait);
    /// assert_eq!(ws.queued_count()?, 1); // kept, not lost
    /// ws.start()?;
    /// # while got.borrow().len() < 1 {
    /// #     lp.run_with(RunFlags::Once);
    /// # }
    /// assert_eq!(ws.queued_count()?, 0);
    /// # Ok::<(), net_websocket_ev::Error>(())
    /// ```
    pub fn start(&self) -> Result<(), Error> {
        self.start_read()?;
        self.start_write()
    }

    /// Perl `stop()`: pauses both directions; nothing is lost.
    ///
    /// ```
    /// # use net_websocket_ev::{ev::{Loop, RunFlags}, Client, Params, Server};
    /// # use std::{cell::RefCell, os::unix::net::UnixStream, rc::Rc};
    /// # let lp = Loop::new().unwrap();
    /// # let (sock, other) = UnixStream::pair().unwrap();
    /// # let ws = Server::new(Params::new(sock).event_loop(&lp)).unwrap();
    /// # let got: Rc<RefCell<Vec<(net_websocket_ev::OpCode, Vec<u8>)>>> = Default::default();
    /// # let g = got.clone();
    /// # let peer = Client::new(Params::new(other).event_loop(&lp).on_msg_recv(move |_, _, op, msg, _| {
    /// #     g.borrow_mut().push((op, msg.to_vec()))
    /// # }))
    /// # .unwrap();
    /// ws.stop()?; // neither reads nor writes until start()
    /// peer.queue_text("unread")?;
    /// ws.queue_text("unsent")?;
    /// lp.run_with(RunFlags::NoWait);
    /// assert!(got.borrow().is_empty());
    /// # ws.start()?;
    /// # while got.borrow().len() < 1 {
    /// #     lp.run_with(RunFlags::Once);
    /// # }
    /// # Ok::<(), net_websocket_ev::Error>(())
    /// ```
    pub fn stop(&self) -> Result<(), Error> {
        self.stop_read()?;
        self.stop_write()
    }

    /// Perl `start_read()`: resumes reading; bytes kept from the pause come first.
    /// The idle clock starts again from this call.
    ///
    /// ```
    /// use net_websocket_ev::ev::{Loop, RunFlags};
    /// use net_websocket_ev::{Client, Params, Server};
    /// use std::{cell::Cell, os::unix::net::UnixStream, rc::Rc};
    ///
    /// let lp = Loop::new().unwrap();
    /// let (ours, theirs) = UnixStream::pair().unwrap();
    /// let received = Rc::new(Cell::new(0));
    /// let count = received.clone();
    /// let ws = Server::new(Params::new(ours).event_loop(&lp).on_msg_recv(move |_, _, _, _, _| {
    ///     count.set(count.get() + 1)
    /// }))?;
    /// let peer = Client::new(Params::new(theirs).event_loop(&lp))?;
    ///
    /// ws.stop_read()?; // back-pressure: busy with earlier requests
    /// peer.queue_text("request")?;
    /// lp.run_with(RunFlags::NoWait);
    /// assert_eq!(received.get(), 0); // waiting in the socket
    /// ws.start_read()?;
    /// while received.get() == 0 {
    ///     lp.run_with(RunFlags::Once);
    /// }
    /// # Ok::<(), net_websocket_ev::Error>(())
    /// ```
    pub fn start_read(&self) -> Result<(), Error> {
        self.conn.check_open()?;
        self.conn.set_read_stopped(false);
        Ok(())
    }

    /// Perl `stop_read()`: pauses reading at once (even between two messages of one
    /// read). A paused reader notices nothing, not even the peer's close or EOF; the
    /// idle timeout is suspended meanwhile.
    ///
    /// ```
    /// use net_websocket_ev::ev::{Loop, RunFlags};
    /// use net_websocket_ev::{Client, Params, Server};
    /// use std::{cell::Cell, os::unix::net::UnixStream, rc::Rc};
    ///
    /// let lp = Loop::new().unwrap();
    /// let (ours, theirs) = UnixStream::pair().unwrap();
    /// let received = Rc::new(Cell::new(0));
    /// let count = received.clone();
    /// let ws = Server::new(Params::new(ours).event_loop(&lp).on_msg_recv(move |_, _, _, _, _| {
    ///     count.set(count.get() + 1)
    /// }))?;
    /// let peer = Client::new(Params::new(theirs).event_loop(&lp))?;
    ///
    /// ws.stop_read()?;
    /// peer.queue_text("request")?;
    /// peer.close(Some(1000), "")?;
    /// lp.run_with(RunFlags::NoWait);
    /// assert_eq!(received.get(), 0);
    /// assert!(!ws.is_closed()); // not even the close is noticed
    /// # ws.start_read()?;
    /// # while !ws.is_closed() {
    /// #     lp.run_with(RunFlags::Once);
    /// # }
    /// # assert_eq!(received.get(), 1);
    /// # Ok::<(), net_websocket_ev::Error>(())
    /// ```
    pub fn stop_read(&self) -> Result<(), Error> {
        self.conn.check_open()?;
        self.conn.set_read_stopped(true);
        Ok(())
    }

    /// Perl `start_write()`: resumes writing.
    ///
    /// ```
    /// # use net_websocket_ev::{ev::{Loop, RunFlags}, Client, Params, Server};
    /// # use std::{cell::RefCell, os::unix::net::UnixStream, rc::Rc};
    /// # let lp = Loop::new().unwrap();
    /// # let (sock, other) = UnixStream::pair().unwrap();
    /// # let ws = Server::new(Params::new(sock).event_loop(&lp)).unwrap();
    /// # let got: Rc<RefCell<Vec<(net_websocket_ev::OpCode, Vec<u8>)>>> = Default::default();
    /// # let g = got.clone();
    /// # let peer = Client::new(Params::new(other).event_loop(&lp).on_msg_recv(move |_, _, op, msg, _| {
    /// #     g.borrow_mut().push((op, msg.to_vec()))
    /// # }))
    /// # .unwrap();
    /// ws.stop_write()?;
    /// ws.queue_text("later")?;
    /// lp.run_with(RunFlags::NoWait);
    /// assert!(got.borrow().is_empty());
    /// ws.start_write()?;
    /// # while got.borrow().len() < 1 {
    /// #     lp.run_with(RunFlags::Once);
    /// # }
    /// # Ok::<(), net_websocket_ev::Error>(())
    /// ```
    pub fn start_write(&self) -> Result<(), Error> {
        self.conn.check_open()?;
        self.conn.set_write_stopped(false);
        Ok(())
    }

    /// Perl `stop_write()`: pauses writing, control frames included; queueing goes
    /// on, nothing is lost. (To hold back only a message that is not ready, use
    /// [`Fragment::Pause`].)
    ///
    /// ```
    /// # use net_websocket_ev::{ev::{Loop, RunFlags}, Params, Server};
    /// # let lp = Loop::new().unwrap();
    /// # let (sock, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    /// # let ws = Server::new(Params::new(sock).event_loop(&lp)).unwrap();
    /// ws.stop_write()?;
    /// ws.queue_text("queued, not sent")?; // queueing goes on
    /// lp.run_with(RunFlags::NoWait);
    /// assert_eq!(ws.queued_count()?, 1);
    /// # Ok::<(), net_websocket_ev::Error>(())
    /// ```
    pub fn stop_write(&self) -> Result<(), Error> {
        self.conn.check_open()?;
        self.conn.set_write_stopped(true);
        Ok(())
    }

    /// Perl `shutdown_read()`: ends reading for good, at once. The connection ends
    /// when the send queue has drained (bounded by the close timeout); `on_close`
    /// runs from the loop, never inside this call.
    ///
    /// ```
    /// # use net_websocket_ev::{ev::{Loop, RunFlags}, Client, Params, Server};
    /// # use std::{cell::RefCell, os::unix::net::UnixStream, rc::Rc};
    /// # let lp = Loop::new().unwrap();
    /// # let (sock, other) = UnixStream::pair().unwrap();
    /// # let ws = Server::new(Params::new(sock).event_loop(&lp)).unwrap();
    /// # let got: Rc<RefCell<Vec<(net_websocket_ev::OpCode, Vec<u8>)>>> = Default::default();
    /// # let g = got.clone();
    /// # let peer = Client::new(Params::new(other).event_loop(&lp).on_msg_recv(move |_, _, op, msg, _| {
    /// #     g.borrow_mut().push((op, msg.to_vec()))
    /// # }))
    /// # .unwrap();
    /// ws.queue_text("goodbye")?;
    /// ws.shutdown_read()?; // no more input; the connection ends once "goodbye" is out
    /// while !ws.is_closed() {
    ///     lp.run_with(RunFlags::Once);
    /// }
    /// # while got.borrow().len() < 1 {
    /// #     lp.run_with(RunFlags::Once);
    /// # }
    /// # assert_eq!(got.borrow()[0].1, b"goodbye");
    /// # Ok::<(), net_websocket_ev::Error>(())
    /// ```
    pub fn shutdown_read(&self) -> Result<(), Error> {
        self.conn.check_open()?;
        self.conn.shutdown_read();
        Ok(())
    }

    /// Perl `shutdown_write()`: ends writing for good; the queue is dropped and later
    /// queueing fails. Reading goes on.
    ///
    /// ```
    /// # use net_websocket_ev::{ev::{Loop, RunFlags}, Params, Server};
    /// # let lp = Loop::new().unwrap();
    /// # let (sock, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    /// # let ws = Server::new(Params::new(sock).event_loop(&lp)).unwrap();
    /// ws.shutdown_write()?;
    /// assert!(ws.queue_text("more").is_err()); // writing is over for good
    /// assert!(!ws.is_closed()); // reading goes on
    /// # Ok::<(), net_websocket_ev::Error>(())
    /// ```
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
    ///
    /// ```
    /// use net_websocket_ev::ev::{Loop, RunFlags};
    /// use net_websocket_ev::{Params, Server};
    /// use std::{cell::Cell, os::unix::net::UnixStream, rc::Rc};
    ///
    /// let lp = Loop::new().unwrap();
    /// let (ours, _peer) = UnixStream::pair().unwrap();
    /// let code = Rc::new(Cell::new(0));
    /// let seen = code.clone();
    /// let ws = Server::new(Params::new(ours).event_loop(&lp).on_close(move |_, c| seen.set(c)))?;
    /// ws.abort()?;
    /// assert!(ws.is_closed() && ws.queue_text("x").is_err());
    /// assert_eq!(code.get(), 0); // on_close has not run inside abort()
    /// lp.run_with(RunFlags::NoWait);
    /// assert_eq!(code.get(), 1006); // the loop ended it
    /// # Ok::<(), net_websocket_ev::Error>(())
    /// ```
    pub fn abort(&self) -> Result<(), Error> {
        self.conn.abort()
    }

    /// Whether the connection is over, or its end is decided (every call then fails
    /// with [`Error::Closed`]).
    ///
    /// ```
    /// # use net_websocket_ev::{ev::{Loop, RunFlags}, Params, Server};
    /// # let lp = Loop::new().unwrap();
    /// # let (sock, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    /// # let ws = Server::new(Params::new(sock).event_loop(&lp)).unwrap();
    /// assert!(!ws.is_closed());
    /// ws.abort()?;
    /// assert!(ws.is_closed()); // decided: the loop finishes it
    /// # Ok::<(), net_websocket_ev::Error>(())
    /// ```
    pub fn is_closed(&self) -> bool {
        self.conn.is_finished()
    }

    /// The code of the peer's close frame so far: 1006 until one arrives, 1005 if it
    /// had none. What `on_close` gets.
    ///
    /// ```
    /// # use net_websocket_ev::{ev::{Loop, RunFlags}, Client, Params, Server};
    /// # use std::{cell::RefCell, os::unix::net::UnixStream, rc::Rc};
    /// # let lp = Loop::new().unwrap();
    /// # let (sock, other) = UnixStream::pair().unwrap();
    /// # let ws = Server::new(Params::new(sock).event_loop(&lp)).unwrap();
    /// # let got: Rc<RefCell<Vec<(net_websocket_ev::OpCode, Vec<u8>)>>> = Default::default();
    /// # let g = got.clone();
    /// # let peer = Client::new(Params::new(other).event_loop(&lp).on_msg_recv(move |_, _, op, msg, _| {
    /// #     g.borrow_mut().push((op, msg.to_vec()))
    /// # }))
    /// # .unwrap();
    /// assert_eq!(ws.status_code_received(), 1006); // nothing yet
    /// peer.close(Some(1001), "going away")?;
    /// while !ws.is_closed() {
    ///     lp.run_with(RunFlags::Once);
    /// }
    /// assert_eq!(ws.status_code_received(), 1001);
    /// # Ok::<(), net_websocket_ev::Error>(())
    /// ```
    pub fn status_code_received(&self) -> u16 {
        self.conn.status_received()
    }

    /// The reason of the peer's close frame, if it had one.
    ///
    /// ```
    /// # use net_websocket_ev::{ev::{Loop, RunFlags}, Client, Params, Server};
    /// # use std::{cell::RefCell, os::unix::net::UnixStream, rc::Rc};
    /// # let lp = Loop::new().unwrap();
    /// # let (sock, other) = UnixStream::pair().unwrap();
    /// # let ws = Server::new(Params::new(sock).event_loop(&lp)).unwrap();
    /// # let got: Rc<RefCell<Vec<(net_websocket_ev::OpCode, Vec<u8>)>>> = Default::default();
    /// # let g = got.clone();
    /// # let peer = Client::new(Params::new(other).event_loop(&lp).on_msg_recv(move |_, _, op, msg, _| {
    /// #     g.borrow_mut().push((op, msg.to_vec()))
    /// # }))
    /// # .unwrap();
    /// peer.close(Some(1001), "going away")?;
    /// while !ws.is_closed() {
    ///     lp.run_with(RunFlags::Once);
    /// }
    /// assert_eq!(ws.close_reason_received().as_deref(), Some("going away"));
    /// # Ok::<(), net_websocket_ev::Error>(())
    /// ```
    pub fn close_reason_received(&self) -> Option<String> {
        self.conn.reason_received()
    }

    /// The code of the close frame we sent (1005 for one without code), once it has
    /// been written.
    ///
    /// ```
    /// # use net_websocket_ev::{ev::{Loop, RunFlags}, Client, Params, Server};
    /// # use std::{cell::RefCell, os::unix::net::UnixStream, rc::Rc};
    /// # let lp = Loop::new().unwrap();
    /// # let (sock, other) = UnixStream::pair().unwrap();
    /// # let ws = Server::new(Params::new(sock).event_loop(&lp)).unwrap();
    /// # let got: Rc<RefCell<Vec<(net_websocket_ev::OpCode, Vec<u8>)>>> = Default::default();
    /// # let g = got.clone();
    /// # let peer = Client::new(Params::new(other).event_loop(&lp).on_msg_recv(move |_, _, op, msg, _| {
    /// #     g.borrow_mut().push((op, msg.to_vec()))
    /// # }))
    /// # .unwrap();
    /// assert_eq!(ws.status_code_sent(), None);
    /// ws.close(Some(4000), "application-defined")?;
    /// while !ws.is_closed() {
    ///     lp.run_with(RunFlags::Once);
    /// }
    /// assert_eq!(ws.status_code_sent(), Some(4000));
    /// # Ok::<(), net_websocket_ev::Error>(())
    /// ```
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
    ///
    /// ```
    /// use net_websocket_ev::{ev::Loop, Params, Server};
    /// use std::net::{TcpListener, TcpStream};
    ///
    /// let lp = Loop::new()?;
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let client = TcpStream::connect(listener.local_addr()?)?;
    /// let (accepted, _) = listener.accept()?;
    /// let ws = Server::new(Params::new(accepted).event_loop(&lp))?;
    /// assert_eq!(ws.peer_addr()?, client.local_addr()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
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
    ///
    /// ```
    /// # use net_websocket_ev::{ev::{Loop, RunFlags}, Params, Server};
    /// # let lp = Loop::new().unwrap();
    /// # let (sock, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    /// # let ws = Server::new(Params::new(sock).event_loop(&lp)).unwrap();
    /// let fd = ws.as_raw_fd().expect("open"); // for getsockopt and the like; do not close it
    /// assert!(fd >= 0);
    /// ws.abort()?;
    /// lp.run_with(RunFlags::NoWait);
    /// assert_eq!(ws.as_raw_fd(), None); // closed by the connection
    /// # Ok::<(), net_websocket_ev::Error>(())
    /// ```
    pub fn as_raw_fd(&self) -> Option<RawFd> {
        self.conn.raw_fd()
    }

    /// Whether this is the server or the client side.
    ///
    /// ```
    /// # use net_websocket_ev::{ev::{Loop, RunFlags}, Params, Server};
    /// # let lp = Loop::new().unwrap();
    /// # let (sock, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    /// # let ws = Server::new(Params::new(sock).event_loop(&lp)).unwrap();
    /// use net_websocket_ev::proto::Role;
    /// assert_eq!(ws.role(), Role::Server);
    /// ```
    pub fn role(&self) -> Role {
        self.conn.role
    }

    /// The loop the connection runs on.
    ///
    /// ```
    /// # use net_websocket_ev::{ev::{Loop, RunFlags}, Params, Server};
    /// # let lp = Loop::new().unwrap();
    /// # let (sock, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    /// # let ws = Server::new(Params::new(sock).event_loop(&lp)).unwrap();
    /// use net_websocket_ev::ev::Timer;
    /// use std::time::Duration;
    ///
    /// // A timer on the connection's own loop, e.g. from inside a callback.
    /// let goodbye = ws.clone();
    /// let timer = Timer::new(ws.event_loop(), Duration::from_secs(30), Duration::ZERO, move |_| {
    ///     goodbye.close(Some(1000), "session over").ok();
    /// });
    /// timer.start();
    /// assert!(ws.event_loop().same_as(&lp));
    /// ```
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
