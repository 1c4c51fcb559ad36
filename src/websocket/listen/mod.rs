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
//! - keepalive pings after [`DEFAULT_KEEPALIVE`] of silence, and the connection
//!   closed when no pong (nor anything else) came [`DEFAULT_PONG_TIMEOUT`] later
//!   (`Params` made by hand keep the original's "off").

mod slots;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::panic::{self, AssertUnwindSafe};
use std::rc::{Rc, Weak};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::ev::{Events, Io, Loop, Timer};

use super::upgrade::{self, HandshakeHandle, HandshakeOptions, UpgradeError, Upgraded};
use super::Params;
use slots::{Counts, IpKey, Slot};

pub use crate::handshake::{Answer, Request};

/// Default length of the kernel's queue of connections not yet accepted.
pub const DEFAULT_BACKLOG: u32 = 1024;
/// Default cap on the sockets a listener holds open, handshakes included.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default cap on handshakes in progress.
pub const DEFAULT_MAX_HANDSHAKES: usize = 512;
/// Default cap on handshakes in progress from one client address.
pub const DEFAULT_MAX_HANDSHAKES_PER_IP: usize = 16;
/// Default cap on the sockets open from one client address (a NAT shares one
/// address among many users: raise it for such clients).
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 256;
/// Default silence from the peer after which an accepted connection sends a ping.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(30);
/// Default time after the keepalive ping within which the peer must have sent
/// something (its pong) before the connection is closed.
pub const DEFAULT_PONG_TIMEOUT: Duration = Duration::from_secs(20);
/// Default delay before accepting again after `accept` failed (out of fds).
pub const DEFAULT_ACCEPT_RETRY: Duration = Duration::from_millis(500);
/// Default number of connections accepted per loop iteration at most.
pub const DEFAULT_ACCEPTS_PER_WAKEUP: usize = 64;

type OnConnect = Box<dyn FnMut(Accepted)>;
type OnError = Box<dyn FnMut(&UpgradeError, SocketAddr)>;

/// The caps of a listener; `None` is no cap.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_connections: Option<usize>,
    max_handshakes: Option<usize>,
    max_handshakes_per_ip: Option<usize>,
    max_connections_per_ip: Option<usize>,
}

/// The parameters of [`Listener::new`], as a builder (the counterpart of
/// [`Params`] for a listening socket).
///
/// ```no_run
/// use net_websocket_ev::websocket::upgrade::HandshakeOptions;
/// use net_websocket_ev::{ev::Loop, Answer, ListenParams, Listener, Server};
/// use std::time::Duration;
///
/// let lp = Loop::default_loop().unwrap();
/// let params = ListenParams::new("[::]:8080")
///     .event_loop(&lp)
///     .backlog(4096)
///     .handshake(HandshakeOptions::default().timeout(Duration::from_secs(5)))
///     .max_connections(Some(50_000))
///     .max_connections_per_ip(None)
///     .on_request(|req| match req.path_and_query().0 {
///         "/ws" => Answer::accept(),
///         "/health" if !req.upgrade => Answer::status(200).body("ok\n"),
///         _ => Answer::status(404),
///     })
///     .on_error(|err, peer| eprintln!("{peer}: {err}"))
///     .on_connect(|accepted| {
///         Server::new(accepted.into_params()).ok();
///     });
/// let listener = Listener::new(params).unwrap();
/// ```
pub struct ListenParams {
    addr: io::Result<SocketAddr>,
    event_loop: Option<Loop>,
    backlog: u32,
    reuse_port: bool,
    handshake: HandshakeOptions,
    on_request: Option<upgrade::RequestHook>,
    limits: Limits,
    keepalive: Option<Duration>,
    pong_timeout: Duration,
    accept_retry: Duration,
    accepts_per_wakeup: usize,
    on_connect: Option<OnConnect>,
    on_error: Option<OnError>,
}

impl ListenParams {
    /// Parameters for listening on `addr` (`"127.0.0.1:8080"`, `"[::1]:0"`, a
    /// `SocketAddr`; port 0 picks a free port, see [`Listener::local_addr`]). A
    /// name is resolved at once and its first address taken.
    ///
    /// ```
    /// use net_websocket_ev::ListenParams;
    /// use std::net::{Ipv6Addr, SocketAddr};
    /// let any = ListenParams::new(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 8080)));
    /// let local = ListenParams::new(("127.0.0.1", 0));
    /// # let _ = (any, local);
    /// ```
    pub fn new(addr: impl ToSocketAddrs) -> ListenParams {
        let addr = addr.to_socket_addrs().and_then(|mut addrs| {
            addrs.next().ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "no address to listen on")
            })
        });
        ListenParams {
            addr,
            event_loop: None,
            backlog: DEFAULT_BACKLOG,
            reuse_port: false,
            handshake: HandshakeOptions::default(),
            on_request: None,
            limits: Limits {
                max_connections: Some(DEFAULT_MAX_CONNECTIONS),
                max_handshakes: Some(DEFAULT_MAX_HANDSHAKES),
                max_handshakes_per_ip: Some(DEFAULT_MAX_HANDSHAKES_PER_IP),
                max_connections_per_ip: Some(DEFAULT_MAX_CONNECTIONS_PER_IP),
            },
            keepalive: Some(DEFAULT_KEEPALIVE),
            pong_timeout: DEFAULT_PONG_TIMEOUT,
            accept_retry: DEFAULT_ACCEPT_RETRY,
            accepts_per_wakeup: DEFAULT_ACCEPTS_PER_WAKEUP,
            on_connect: None,
            on_error: None,
        }
    }

    /// The loop to accept on, where the connections then run; libev's default loop
    /// if not given.
    ///
    /// ```
    /// # use net_websocket_ev::{ev::Loop, ListenParams};
    /// let lp = Loop::new().unwrap();
    /// let params = ListenParams::new("127.0.0.1:0").event_loop(&lp);
    /// # let _ = params;
    /// ```
    pub fn event_loop(mut self, lp: &Loop) -> ListenParams {
        self.event_loop = Some(lp.clone());
        self
    }

    /// The kernel's queue of connections not yet accepted (default
    /// [`DEFAULT_BACKLOG`]; the kernel caps it at `net.core.somaxconn`).
    ///
    /// ```
    /// # use net_websocket_ev::ListenParams;
    /// let params = ListenParams::new("127.0.0.1:0").backlog(128);
    /// # let _ = params;
    /// ```
    pub fn backlog(mut self, backlog: u32) -> ListenParams {
        self.backlog = backlog;
        self
    }

    /// `SO_REUSEPORT`: several sockets (one loop per thread, each with its own
    /// listener) may listen on the same address and port, and the kernel spreads
    /// new connections among them. Default off.
    ///
    /// ```
    /// # use net_websocket_ev::ListenParams;
    /// let params = ListenParams::new("0.0.0.0:8080").reuse_port(true);
    /// # let _ = params;
    /// ```
    pub fn reuse_port(mut self, on: bool) -> ListenParams {
        self.reuse_port = on;
        self
    }

    /// The handshake's settings: timeout, head size, TLS (`server_tls`),
    /// permessage-deflate, subprotocol choice and request hook.
    ///
    /// ```
    /// use net_websocket_ev::websocket::upgrade::HandshakeOptions;
    /// # use net_websocket_ev::ListenParams;
    /// let params = ListenParams::new("127.0.0.1:0")
    ///     .handshake(HandshakeOptions::default().max_header_size(4096));
    /// # let _ = params;
    /// ```
    pub fn handshake(mut self, options: HandshakeOptions) -> ListenParams {
        self.handshake = options;
        self
    }

    /// The request hook ([`HandshakeOptions::on_request`], which this replaces):
    /// sees each request, upgrade or plain `GET`, with the client's address in
    /// [`Request::peer`], and answers it.
    ///
    /// ```
    /// # use net_websocket_ev::{Answer, ListenParams};
    /// let params = ListenParams::new("127.0.0.1:0").on_request(|req| {
    ///     if req.origin() == Some("https://example.com") {
    ///         Answer::accept().header("Set-Cookie", "visited=1")
    ///     } else {
    ///         Answer::status(403).body("forbidden\n")
    ///     }
    /// });
    /// # let _ = params;
    /// ```
    pub fn on_request(mut self, hook: impl Fn(&Request) -> Answer + 'static) -> ListenParams {
        self.on_request = Some(Box::new(hook));
        self
    }

    /// Cap on the sockets open, handshakes included (default
    /// [`DEFAULT_MAX_CONNECTIONS`]): at the cap, accepting pauses until one closes.
    ///
    /// ```
    /// # use net_websocket_ev::ListenParams;
    /// let params = ListenParams::new("127.0.0.1:0").max_connections(Some(100));
    /// # let _ = params;
    /// ```
    pub fn max_connections(mut self, cap: Option<usize>) -> ListenParams {
        self.limits.max_connections = cap;
        self
    }

    /// Cap on handshakes in progress (default [`DEFAULT_MAX_HANDSHAKES`]): at the
    /// cap, accepting pauses until one ends, so slow handshakes cannot take every fd.
    ///
    /// ```
    /// # use net_websocket_ev::ListenParams;
    /// let params = ListenParams::new("127.0.0.1:0").max_handshakes(Some(64));
    /// # let _ = params;
    /// ```
    pub fn max_handshakes(mut self, cap: Option<usize>) -> ListenParams {
        self.limits.max_handshakes = cap;
        self
    }

    /// Cap on handshakes in progress from one client address (default
    /// [`DEFAULT_MAX_HANDSHAKES_PER_IP`]); one more is closed when accepted.
    ///
    /// ```
    /// # use net_websocket_ev::ListenParams;
    /// let params = ListenParams::new("127.0.0.1:0").max_handshakes_per_ip(Some(4));
    /// # let _ = params;
    /// ```
    pub fn max_handshakes_per_ip(mut self, cap: Option<usize>) -> ListenParams {
        self.limits.max_handshakes_per_ip = cap;
        self
    }

    /// Cap on the sockets open from one client address, handshakes included
    /// (default [`DEFAULT_MAX_CONNECTIONS_PER_IP`]); one more is closed when
    /// accepted. IPv6 addresses count by their /64 prefix.
    ///
    /// ```
    /// # use net_websocket_ev::ListenParams;
    /// let params = ListenParams::new("127.0.0.1:0").max_connections_per_ip(Some(8));
    /// # let _ = params;
    /// ```
    pub fn max_connections_per_ip(mut self, cap: Option<usize>) -> ListenParams {
        self.limits.max_connections_per_ip = cap;
        self
    }

    /// The keepalive of the accepted connections ([`Params::keepalive`]): a ping
    /// after this much silence from the peer; `None` sends none. Default
    /// [`DEFAULT_KEEPALIVE`].
    ///
    /// ```
    /// # use net_websocket_ev::ListenParams;
    /// let params = ListenParams::new("127.0.0.1:0").keepalive(None);
    /// # let _ = params;
    /// ```
    pub fn keepalive(mut self, period: Option<Duration>) -> ListenParams {
        self.keepalive = period;
        self
    }

    /// With keepalive on: how long after the ping the peer has to send something
    /// (its pong) before the connection is closed (it becomes the connection's
    /// [`Params::idle_timeout`], keepalive period plus this). Default
    /// [`DEFAULT_PONG_TIMEOUT`].
    ///
    /// ```
    /// # use net_websocket_ev::ListenParams;
    /// let params = ListenParams::new("127.0.0.1:0").pong_timeout(std::time::Duration::from_secs(5));
    /// # let _ = params;
    /// ```
    pub fn pong_timeout(mut self, timeout: Duration) -> ListenParams {
        self.pong_timeout = timeout;
        self
    }

    /// How long accepting pauses after `accept` failed for want of file
    /// descriptors or memory, unless one of our sockets closes first. Default
    /// [`DEFAULT_ACCEPT_RETRY`].
    ///
    /// ```
    /// # use net_websocket_ev::ListenParams;
    /// let params = ListenParams::new("127.0.0.1:0").accept_retry(std::time::Duration::from_secs(1));
    /// # let _ = params;
    /// ```
    pub fn accept_retry(mut self, delay: Duration) -> ListenParams {
        self.accept_retry = delay;
        self
    }

    /// At most this many connections accepted per loop iteration (at least 1;
    /// default [`DEFAULT_ACCEPTS_PER_WAKEUP`]).
    ///
    /// ```
    /// # use net_websocket_ev::ListenParams;
    /// let params = ListenParams::new("127.0.0.1:0").accepts_per_wakeup(16);
    /// # let _ = params;
    /// ```
    pub fn accepts_per_wakeup(mut self, count: usize) -> ListenParams {
        self.accepts_per_wakeup = count.max(1);
        self
    }

    /// Required: gets each connection whose handshake succeeded, on the listener's
    /// loop. Make it a connection with
    /// `Server::new(accepted.into_params().on_msg_recv(..))`; an [`Accepted`]
    /// dropped unused closes its socket.
    ///
    /// ```
    /// # use net_websocket_ev::{ListenParams, Server};
    /// let params = ListenParams::new("127.0.0.1:0").on_connect(|accepted| {
    ///     println!("{:?} asked for {}", accepted.peer_addr(), accepted.request().path);
    ///     Server::new(accepted.into_params()).ok();
    /// });
    /// # let _ = params;
    /// ```
    pub fn on_connect(mut self, callback: impl FnMut(Accepted) + 'static) -> ListenParams {
        self.on_connect = Some(Box::new(callback));
        self
    }

    /// Gets each handshake that failed (bad request, timeout, TLS error, an invalid
    /// answer of the request hook), with the client's address, for logging. Answers
    /// of the hook that refused ([`UpgradeError::Refused`]) are not reported.
    ///
    /// ```
    /// # use net_websocket_ev::ListenParams;
    /// let params = ListenParams::new("127.0.0.1:0").on_error(|err, peer| eprintln!("{peer}: {err}"));
    /// # let _ = params;
    /// ```
    pub fn on_error(
        mut self,
        callback: impl FnMut(&UpgradeError, SocketAddr) + 'static,
    ) -> ListenParams {
        self.on_error = Some(Box::new(callback));
        self
    }

    /// The listening socket: bound, listening, non-blocking, close-on-exec.
    fn bind(&self) -> io::Result<TcpListener> {
        let addr = match &self.addr {
            Ok(addr) => *addr,
            Err(err) => return Err(io::Error::new(err.kind(), err.to_string())),
        };
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        if self.reuse_port {
            socket.set_reuse_port(true)?;
        }
        socket.bind(&addr.into())?;
        socket.listen(i32::try_from(self.backlog).unwrap_or(i32::MAX))?;
        socket.set_nonblocking(true)?;
        Ok(socket.into())
    }
}

impl fmt::Debug for ListenParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenParams")
            .field("addr", &self.addr.as_ref().ok())
            .field("backlog", &self.backlog)
            .field("reuse_port", &self.reuse_port)
            .field("handshake", &self.handshake)
            .field("limits", &self.limits)
            .field("keepalive", &self.keepalive)
            .field("pong_timeout", &self.pong_timeout)
            .field("on_connect", &self.on_connect.is_some())
            .finish_non_exhaustive()
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

/// A listening socket on a loop: accepts, runs each opening handshake and hands
/// the connection to `on_connect` (see [`ListenParams`] and the [module](self)'s
/// defaults). Dropping it (or [`close`](Self::close)) closes the listening socket;
/// handshakes in progress finish and are handed over, connections go on.
pub struct Listener {
    shared: Rc<Shared>,
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
    keepalive: Option<Duration>,
    pong_timeout: Duration,
    accepts_per_wakeup: usize,
    /// Taken out while it runs (nothing is borrowed while user code runs).
    on_connect: Cell<Option<OnConnect>>,
    on_error: Cell<Option<OnError>>,
    counts: RefCell<Counts>,
    stats: Cell<ListenerStats>,
    paused: Cell<Option<Pause>>,
    /// Handshakes in progress, for `abort`.
    handshakes: RefCell<HashMap<u64, HandshakeHandle>>,
    next_id: Cell<u64>,
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
                keepalive: params.keepalive,
                pong_timeout: params.pong_timeout,
                accepts_per_wakeup: params.accepts_per_wakeup,
                on_connect: Cell::new(Some(on_connect)),
                on_error: Cell::new(params.on_error),
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
                    keepalive: self.keepalive,
                    pong_timeout: self.pong_timeout,
                };
                call(&self.on_connect, |on_connect| on_connect(accepted));
            }
            Err(err) => {
                self.update_stats(|s| s.failed += 1);
                drop(slot);
                if !matches!(err, UpgradeError::Refused { .. }) {
                    call(&self.on_error, |on_error| on_error(&err, peer));
                }
            }
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

/// A connection whose handshake succeeded, as `on_connect` gets it: make it a
/// connection with `Server::new(accepted.into_params()...)`. It counts against
/// the listener's caps until its socket is closed (dropped unused, it is closed
/// now).
pub struct Accepted {
    upgraded: Upgraded<Request>,
    slot: Slot,
    keepalive: Option<Duration>,
    pong_timeout: Duration,
}

impl Accepted {
    /// The client's request: path and query, headers, cookies, the subprotocols
    /// and extensions offered.
    ///
    /// ```no_run
    /// # let accepted: net_websocket_ev::Accepted = unimplemented!();
    /// let (path, query) = accepted.request().path_and_query();
    /// let session = accepted.request().cookie("session");
    /// ```
    pub fn request(&self) -> &Request {
        &self.upgraded.head
    }

    /// The subprotocol agreed on, if any.
    ///
    /// ```no_run
    /// # let accepted: net_websocket_ev::Accepted = unimplemented!();
    /// if accepted.protocol() == Some("chat") { /* ... */ }
    /// ```
    pub fn protocol(&self) -> Option<&str> {
        self.upgraded.protocol.as_deref()
    }

    /// The client's address.
    ///
    /// ```no_run
    /// # let accepted: net_websocket_ev::Accepted = unimplemented!();
    /// println!("from {:?}", accepted.peer_addr());
    /// ```
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.upgraded.head.peer
    }

    /// The whole handshake's result: TLS session, compression agreed, leftover bytes.
    ///
    /// ```no_run
    /// # let accepted: net_websocket_ev::Accepted = unimplemented!();
    /// let first_bytes = accepted.upgraded().leftover.len();
    /// ```
    pub fn upgraded(&self) -> &Upgraded<Request> {
        &self.upgraded
    }

    /// The parameters of the connection, for [`Server::new`](super::Server::new):
    /// the socket, TLS session, compression, leftover bytes and loop of the
    /// handshake, plus the listener's keepalive (a ping after the keepalive period
    /// of silence, and [`Params::idle_timeout`] = period + pong timeout). Add the
    /// callbacks and any other setting (a later `keepalive` or `idle_timeout`
    /// overrides the listener's).
    ///
    /// ```no_run
    /// # let accepted: net_websocket_ev::Accepted = unimplemented!();
    /// use net_websocket_ev::Server;
    /// let ws = Server::new(accepted.into_params().on_msg_recv(|ws, _, op, msg, _| {
    ///     ws.queue_msg(msg, op).ok();
    /// }))
    /// .unwrap();
    /// ```
    pub fn into_params(self) -> Params {
        let mut params = self.upgraded.into_params();
        if let Some(period) = self.keepalive {
            params = params
                .keepalive(Some(period))
                .idle_timeout(Some(period.saturating_add(self.pong_timeout)));
        }
        // LISTENER DEFAULTS, to come with the connection-core work on `Params`: the
        // cap on fragments per message and the deadline for a message that has
        // started arriving (a trickling upload) are set here, on by default for the
        // listener's connections, e.g.
        // `params = params.max_fragments(..).message_timeout(Some(..));`
        params.guard = Some(Box::new(self.slot));
        params
    }
}

impl fmt::Debug for Accepted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accepted")
            .field("peer", &self.upgraded.head.peer)
            .field("path", &self.upgraded.head.path)
            .field("protocol", &self.upgraded.protocol)
            .finish_non_exhaustive()
    }
}
