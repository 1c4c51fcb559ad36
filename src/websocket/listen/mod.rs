//! A listening socket on a loop: [`Listener`] accepts connections, runs each one's
//! opening handshake (TLS first with `server_tls`, permessage-deflate, the request
//! hook) and hands it over, on the same loop, to the `on_connect` callback of its
//! [`ListenParams`], with defaults that are safe on the open internet.
//!
//! ```no_run
//! use net_websocket_ev::ev::Loop;
//! use net_websocket_ev::{Answer, ListenParams, Listener, OpCode, Server};
//!
//! fn main() -> std::io::Result<()> {
//!     let lp = Loop::default_loop().map_err(std::io::Error::other)?;
//!     let listener = Listener::new(
//!         ListenParams::new("127.0.0.1:8080")
//!             .event_loop(&lp)
//!             .on_request(|req| match (req.upgrade, req.path.as_str()) {
//!                 (false, "/health") => Answer::status(200).body("ok\n"),
//!                 (true, "/echo") => Answer::accept(),
//!                 _ => Answer::status(404),
//!             })
//!             .on_connect(|accepted| {
//!                 let params = accepted.into_params().on_msg_recv(|ws, _rsv, opcode, msg, _| {
//!                     if matches!(opcode, OpCode::Text | OpCode::Binary) {
//!                         ws.queue_msg(msg, opcode).ok(); // echo
//!                     }
//!                 });
//!                 Server::new(params).ok();
//!             }),
//!     )?;
//!     println!("listening on {}", listener.local_addr());
//!     lp.run();
//!     Ok(())
//! }
//! ```
//!
//! # Safe defaults
//! Each is a [`ListenParams`] setter (`None` lifts a cap):
//! - at most [`DEFAULT_MAX_CONNECTIONS`] sockets open (handshakes included) and
//!   [`DEFAULT_MAX_HANDSHAKES`] handshakes in progress: at either cap the listener
//!   stops accepting (new clients wait in the kernel's backlog) until one ends;
//! - per client address (an IPv4 address, an IPv6 /64), at most
//!   [`DEFAULT_MAX_HANDSHAKES_PER_IP`] handshakes in progress and
//!   [`DEFAULT_MAX_CONNECTIONS_PER_IP`] sockets open: one more is closed as soon as
//!   it is accepted, without a byte written;
//! - each handshake within [`HandshakeOptions::timeout`] (10 s by default) and a
//!   head of at most 8 KiB;
//! - out of file descriptors (`EMFILE`, `ENFILE`) or memory, accepting pauses
//!   instead of spinning, and resumes when one of our sockets closes or after
//!   [`DEFAULT_ACCEPT_RETRY`];
//! - at most [`DEFAULT_ACCEPTS_PER_WAKEUP`] accepts per loop iteration, so a flood
//!   of connections cannot starve the connections already open;
//! - on each connection handed over ([`Accepted::into_params`]; `Params` made by
//!   hand keep the original's "off"):
//!   - keepalive pings after [`DEFAULT_KEEPALIVE`] of silence, and the connection
//!     closed when no pong (nor anything else) came [`DEFAULT_PONG_TIMEOUT`] later;
//!   - a message in at most [`DEFAULT_MAX_FRAGMENTS`] frames (131,072: 4 MiB in
//!     32-byte fragments passes), else close 1009;
//!   - a message that began to arrive complete within [`DEFAULT_MESSAGE_TIMEOUT`]
//!     (60 s), else close 1008, so that a peer cannot hold a connection by
//!     trickling a message. A message of `max_recv_size` over the slowest link
//!     served must fit in it: raise it, or lift it, for large messages over slow
//!     links.

mod accepted;
mod params;
mod slots;

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::panic::{self, AssertUnwindSafe};
use std::rc::{Rc, Weak};
use std::time::Duration;

use crate::ev::{Events, Io, Loop, Timer};

use super::upgrade::{self, HandshakeHandle, HandshakeOptions, UpgradeError, Upgraded};
use params::{ConnectionDefaults, Limits, OnConnect, OnError};
use slots::{Counts, IpKey, Slot};

pub use crate::handshake::{Answer, Request};
pub use accepted::Accepted;
pub use params::{
    ListenParams, DEFAULT_ACCEPTS_PER_WAKEUP, DEFAULT_ACCEPT_RETRY, DEFAULT_BACKLOG,
    DEFAULT_KEEPALIVE, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_IP,
    DEFAULT_MAX_FRAGMENTS, DEFAULT_MAX_HANDSHAKES, DEFAULT_MAX_HANDSHAKES_PER_IP,
    DEFAULT_MESSAGE_TIMEOUT, DEFAULT_PONG_TIMEOUT,
};

/// A listening socket on a loop: accepts, runs each opening handshake and hands
/// the connection to `on_connect` (see [`ListenParams`] and the [module](self)'s
/// defaults). Dropping it (or [`close`](Self::close)) closes the listening socket;
/// handshakes in progress finish and are handed over, connections go on.
pub struct Listener {
    shared: Rc<Shared>,
}

impl Listener {
    /// Binds, listens and starts accepting on the loop. Errors: the address (bad,
    /// in use, not available), no `on_connect`, or the default loop held by
    /// another thread.
    ///
    /// ```
    /// use net_websocket_ev::{ev::Loop, ListenParams, Listener, Server};
    ///
    /// let lp = Loop::new().unwrap();
    /// let listener = Listener::new(
    ///     ListenParams::new("127.0.0.1:0")
    ///         .event_loop(&lp)
    ///         .on_connect(|accepted| drop(Server::new(accepted.into_params()))),
    /// )
    /// .unwrap();
    /// assert_ne!(listener.local_addr().port(), 0);
    /// assert!(Listener::new(ListenParams::new("127.0.0.1:0").event_loop(&lp)).is_err());
    /// ```
    // Mirrors `Server::new(Params)`.
    pub fn new(mut params: ListenParams) -> io::Result<Listener> {
        let Some(on_connect) = params.on_connect.take() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "ListenParams::on_connect is required",
            ));
        };
        let lp = match &params.event_loop {
            Some(lp) => lp.clone(),
            None => Loop::default_loop().map_err(io::Error::other)?,
        };
        let socket = params.bind()?;
        let local_addr = socket.local_addr()?;
        let io = Io::new(&lp, socket.as_raw_fd(), Events::READ, |_| {})
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
        let retry = Timer::new(&lp, params.accept_retry, Duration::ZERO, |_| {});
        let mut handshake = params.handshake;
        if let Some(hook) = params.on_request {
            handshake.on_request = Some(hook);
        }
        let shared = Rc::new_cyclic(|weak: &Weak<Shared>| {
            let w = weak.clone();
            io.set_callback(move |_| {
                if let Some(shared) = w.upgrade() {
                    shared.accept_some();
                }
            });
            let w = weak.clone();
            retry.set_callback(move |_| {
                if let Some(shared) = w.upgrade() {
                    if shared.paused.get() == Some(Pause::Descriptors) {
                        shared.paused.set(None);
                        shared.resume_io();
                    }
                }
            });
            Shared {
                lp: lp.clone(),
                local_addr,
                socket: RefCell::new(Some(socket)),
                io,
                retry,
                handshake: Rc::new(handshake),
                limits: params.limits,
                connection: params.connection,
                accepts_per_wakeup: params.accepts_per_wakeup,
                on_connect: Cell::new(Some(on_connect)),
                on_error: Cell::new(params.on_error),
                errors: RefCell::default(),
                reporting: Cell::new(false),
                counts: RefCell::default(),
                stats: Cell::default(),
                paused: Cell::new(None),
                handshakes: RefCell::default(),
                next_id: Cell::new(0),
            }
        });
        shared.io.start();
        Ok(Listener { shared })
    }

    /// The address listened on (with the port chosen for port 0).
    ///
    /// ```
    /// # use net_websocket_ev::{ev::Loop, ListenParams, Listener};
    /// # let lp = Loop::new().unwrap();
    /// let listener = Listener::new(
    ///     ListenParams::new("127.0.0.1:0").event_loop(&lp).on_connect(drop),
    /// )
    /// .unwrap();
    /// println!("listening on {}", listener.local_addr());
    /// ```
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// What the listener holds now and has done so far.
    ///
    /// ```
    /// # use net_websocket_ev::{ev::Loop, ListenParams, Listener};
    /// # let lp = Loop::new().unwrap();
    /// # let listener = Listener::new(ListenParams::new("127.0.0.1:0").event_loop(&lp).on_connect(drop)).unwrap();
    /// let stats = listener.stats();
    /// assert_eq!((stats.handshakes, stats.connections, stats.accepted), (0, 0, 0));
    /// ```
    pub fn stats(&self) -> ListenerStats {
        let counts = self.shared.counts.borrow();
        ListenerStats {
            handshakes: counts.handshakes,
            connections: counts.connections,
            addresses: counts.addresses(),
            ..self.shared.stats.get()
        }
    }

    /// Why accepting is paused, if it is.
    ///
    /// ```
    /// # use net_websocket_ev::{ev::Loop, ListenParams, Listener};
    /// # let lp = Loop::new().unwrap();
    /// # let listener = Listener::new(ListenParams::new("127.0.0.1:0").event_loop(&lp).on_connect(drop)).unwrap();
    /// assert_eq!(listener.paused(), None);
    /// ```
    pub fn paused(&self) -> Option<Pause> {
        self.shared.paused.get()
    }

    /// Stops accepting and closes the listening socket (new clients are refused by
    /// the kernel). Handshakes in progress finish, within their timeout, and are
    /// handed to `on_connect`; connections go on. Dropping the listener does this.
    ///
    /// ```
    /// # use net_websocket_ev::{ev::Loop, ListenParams, Listener};
    /// # let lp = Loop::new().unwrap();
    /// # let listener = Listener::new(ListenParams::new("127.0.0.1:0").event_loop(&lp).on_connect(drop)).unwrap();
    /// let addr = listener.local_addr();
    /// listener.close();
    /// assert!(listener.is_closed());
    /// assert!(std::net::TcpStream::connect(addr).is_err());
    /// ```
    pub fn close(&self) {
        self.shared.close();
    }

    /// [`close`](Self::close), and ends every handshake in progress now: each
    /// socket is closed and `on_error` gets [`UpgradeError::Aborted`]. Connections
    /// already handed over are not touched (see
    /// [`abort_all`](crate::websocket::abort_all)). For the teardown of a loop.
    ///
    /// ```
    /// # use net_websocket_ev::{ev::Loop, websocket, ListenParams, Listener};
    /// # let lp = Loop::new().unwrap();
    /// # let listener = Listener::new(ListenParams::new("127.0.0.1:0").event_loop(&lp).on_connect(drop)).unwrap();
    /// listener.abort();
    /// websocket::abort_all(&lp);
    /// assert_eq!(listener.stats().handshakes, 0);
    /// ```
    pub fn abort(&self) {
        self.shared.close();
        let handshakes: Vec<HandshakeHandle> = self
            .shared
            .handshakes
            .borrow_mut()
            .drain()
            .map(|(_, h)| h)
            .collect();
        for handshake in handshakes {
            handshake.abort();
        }
    }

    /// Whether the listening socket is closed.
    ///
    /// ```
    /// # use net_websocket_ev::{ev::Loop, ListenParams, Listener};
    /// # let lp = Loop::new().unwrap();
    /// # let listener = Listener::new(ListenParams::new("127.0.0.1:0").event_loop(&lp).on_connect(drop)).unwrap();
    /// assert!(!listener.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.shared.socket.borrow().is_none()
    }

    /// The listening socket's fd while it is open.
    ///
    /// ```
    /// # use net_websocket_ev::{ev::Loop, ListenParams, Listener};
    /// # let lp = Loop::new().unwrap();
    /// # let listener = Listener::new(ListenParams::new("127.0.0.1:0").event_loop(&lp).on_connect(drop)).unwrap();
    /// assert!(listener.as_raw_fd().is_some());
    /// ```
    pub fn as_raw_fd(&self) -> Option<RawFd> {
        self.shared.socket.borrow().as_ref().map(AsRawFd::as_raw_fd)
    }

    /// The loop it accepts on.
    ///
    /// ```
    /// # use net_websocket_ev::{ev::Loop, ListenParams, Listener};
    /// # let lp = Loop::new().unwrap();
    /// # let listener = Listener::new(ListenParams::new("127.0.0.1:0").event_loop(&lp).on_connect(drop)).unwrap();
    /// assert!(listener.event_loop().same_as(&lp));
    /// ```
    pub fn event_loop(&self) -> &Loop {
        &self.shared.lp
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.shared.close();
    }
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("local_addr", &self.shared.local_addr)
            .field("closed", &self.is_closed())
            .field("paused", &self.paused())
            .field("stats", &self.stats())
            .finish()
    }
}

/// Why a listener is not accepting for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Pause {
    /// At `max_connections`: until a socket closes.
    Connections,
    /// At `max_handshakes`: until a handshake ends.
    Handshakes,
    /// `accept` failed: out of file descriptors (`EMFILE`, `ENFILE`) or memory, or
    /// another error; until one of our sockets closes or the retry delay passes.
    Descriptors,
}

/// What a listener has done so far, and holds now ([`Listener::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListenerStats {
    /// Handshakes in progress now.
    pub handshakes: usize,
    /// Connections handed over and not closed yet.
    pub connections: usize,
    /// Client addresses (IPv6: /64 prefixes) with a socket open now.
    pub addresses: usize,
    /// `accept` calls made.
    pub accept_calls: u64,
    /// Sockets accepted and given a handshake.
    pub accepted: u64,
    /// Sockets closed as soon as accepted: their address was at a per-address cap.
    pub refused: u64,
    /// `accept` calls that failed and paused accepting (out of fds, ...).
    pub accept_errors: u64,
    /// Times accepting paused, for any [`Pause`].
    pub pauses: u64,
    /// Handshakes that succeeded (handed to `on_connect`).
    pub upgraded: u64,
    /// Handshakes that failed, or that the request hook answered with a status.
    pub failed: u64,
}

/// The listener's state, shared with its watchers (weakly) and with its
/// handshakes in progress (strongly: they finish after a close).
struct Shared {
    lp: Loop,
    local_addr: SocketAddr,
    /// `None` once closed.
    socket: RefCell<Option<TcpListener>>,
    /// READ on the listening socket; stopped while paused and once closed.
    io: Io,
    /// Resumes accepting after a failed `accept`.
    retry: Timer,
    handshake: Rc<HandshakeOptions>,
    limits: Limits,
    connection: ConnectionDefaults,
    accepts_per_wakeup: usize,
    /// Taken out while it runs (nothing is borrowed while user code runs).
    on_connect: Cell<Option<OnConnect>>,
    on_error: Cell<Option<OnError>>,
    /// Errors not reported yet: one that comes while `on_error` runs (it aborted
    /// the listener, say) waits for it to return.
    errors: RefCell<VecDeque<(UpgradeError, SocketAddr)>>,
    /// Whether `on_error` is being called (by an outer `report`).
    reporting: Cell<bool>,
    counts: RefCell<Counts>,
    stats: Cell<ListenerStats>,
    paused: Cell<Option<Pause>>,
    /// Handshakes in progress, for `abort`.
    handshakes: RefCell<HashMap<u64, HandshakeHandle>>,
    next_id: Cell<u64>,
}

impl Shared {
    /// The io callback: accepts until `accept` would block, a cap is reached, or
    /// `accepts_per_wakeup` sockets were accepted (the watcher fires again at the
    /// next iteration while more wait).
    fn accept_some(self: &Rc<Self>) {
        for _ in 0..self.accepts_per_wakeup {
            if let Some(why) = self.cap_reached() {
                return self.pause(why);
            }
            let result = match self.socket.borrow().as_ref() {
                Some(socket) => socket.accept(),
                None => return,
            };
            self.update_stats(|s| s.accept_calls += 1);
            match result {
                Ok((stream, peer)) => self.admit(stream, peer),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                // The connection, not the listener, failed: on to the next one.
                Err(err)
                    if matches!(
                        err.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) || err.raw_os_error() == Some(libc::EPROTO) => {}
                // Out of fds (EMFILE, ENFILE) or memory, or worse: retrying at once
                // would spin on the same readable socket.
                Err(_) => {
                    self.update_stats(|s| s.accept_errors += 1);
                    return self.pause(Pause::Descriptors);
                }
            }
        }
    }

    /// Which total cap is reached, if any.
    fn cap_reached(&self) -> Option<Pause> {
        let counts = self.counts.borrow();
        let at = |count: usize, cap: Option<usize>| cap.is_some_and(|cap| count >= cap);
        if at(
            counts.handshakes + counts.connections,
            self.limits.max_connections,
        ) {
            Some(Pause::Connections)
        } else if at(counts.handshakes, self.limits.max_handshakes) {
            Some(Pause::Handshakes)
        } else {
            None
        }
    }

    /// Starts the handshake of a new socket, unless its address is at a cap.
    fn admit(self: &Rc<Self>, stream: TcpStream, peer: SocketAddr) {
        let ip = IpKey::of(peer.ip());
        if !self.counts.borrow_mut().admit(ip, &self.limits) {
            self.update_stats(|s| s.refused += 1);
            return; // dropping the stream closes it
        }
        self.update_stats(|s| s.accepted += 1);
        let _ = stream.set_nodelay(true);
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let slot = Slot {
            shared: Rc::downgrade(self),
            ip,
            id,
            connected: false,
        };
        let shared = self.clone();
        let done = Box::new(move |result| shared.handshake_done(result, slot, peer));
        let handle = upgrade::accept_shared(&self.lp, stream, &self.handshake, done);
        if handle.is_live() {
            self.handshakes.borrow_mut().insert(id, handle);
        }
    }

    fn handshake_done(
        &self,
        result: Result<Upgraded<Request>, UpgradeError>,
        mut slot: Slot,
        peer: SocketAddr,
    ) {
        self.handshakes.borrow_mut().remove(&slot.id);
        match result {
            Ok(upgraded) => {
                self.update_stats(|s| s.upgraded += 1);
                slot.promote();
                let accepted = Accepted {
                    upgraded,
                    slot,
                    defaults: self.connection,
                };
                call(&self.on_connect, |on_connect| on_connect(accepted));
            }
            Err(err) => {
                self.update_stats(|s| s.failed += 1);
                drop(slot);
                if !matches!(err, UpgradeError::Refused { .. }) {
                    self.report(err, peer);
                }
            }
        }
    }

    /// Gives `err` to `on_error`, after those before it; inside `on_error`, it is
    /// queued for the outer call to deliver once `on_error` returns.
    fn report(&self, err: UpgradeError, peer: SocketAddr) {
        /// Clears `reporting` also when `on_error` panics.
        struct Reporting<'a>(&'a Cell<bool>);
        impl Drop for Reporting<'_> {
            fn drop(&mut self) {
                self.0.set(false);
            }
        }
        self.errors.borrow_mut().push_back((err, peer));
        if self.reporting.replace(true) {
            return;
        }
        let _reporting = Reporting(&self.reporting);
        loop {
            let next = self.errors.borrow_mut().pop_front();
            let Some((err, peer)) = next else {
                break;
            };
            call(&self.on_error, |on_error| on_error(&err, peer));
        }
    }

    /// Stops accepting for `why`.
    fn pause(&self, why: Pause) {
        self.io.stop();
        self.paused.set(Some(why));
        self.update_stats(|s| s.pauses += 1);
        if why == Pause::Descriptors {
            self.retry.stop();
            self.retry.start();
        }
    }

    /// A socket closed or a handshake ended: accepting resumes if it was paused
    /// and no cap holds it back (a closed socket also freed an fd).
    fn resume(&self) {
        if self.paused.get().is_some() && self.cap_reached().is_none() {
            self.paused.set(None);
            self.retry.stop();
            self.resume_io();
        }
    }

    /// Restarts the watcher while the listening socket is open.
    fn resume_io(&self) {
        if self.socket.borrow().is_some() && self.paused.get().is_none() {
            self.io.start();
        }
    }

    fn close(&self) {
        self.io.stop();
        self.retry.stop();
        drop(self.socket.borrow_mut().take());
    }

    fn update_stats(&self, change: impl FnOnce(&mut ListenerStats)) {
        let mut stats = self.stats.get();
        change(&mut stats);
        self.stats.set(stats);
    }
}

/// Calls the callback in `slot` taken out of it (so it may re-enter the
/// listener), then puts it back, also when it panics (the panic goes on).
fn call<F: ?Sized>(slot: &Cell<Option<Box<F>>>, invoke: impl FnOnce(&mut F)) {
    if let Some(mut callback) = slot.take() {
        let result = panic::catch_unwind(AssertUnwindSafe(|| invoke(&mut callback)));
        slot.set(Some(callback));
        if let Err(payload) = result {
            panic::resume_unwind(payload);
        }
    }
}
