//! [`ListenParams`], the builder of a [`Listener`](super::Listener), and the listener's defaults:
//! its caps, and the settings it gives each accepted connection.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::ev::Loop;
use crate::handshake::{Answer, Request};
use crate::websocket::upgrade::{self, HandshakeOptions, UpgradeError};
use crate::websocket::Params;

use super::Accepted;

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
/// Default cap on the frames one message of an accepted connection may come in
/// ([`Params::max_fragments`]): 131,072, so that 4 MiB in 32-byte fragments passes
/// (Autobahn's 9.3.1 and 9.4.1 send 4 MiB in 64-byte fragments and an empty last
/// one: 65,537 frames), while a peer cannot make the connection handle millions
/// of tiny frames per message.
pub const DEFAULT_MAX_FRAGMENTS: u32 = 1 << 17;
/// Default time within which a message that began to arrive on an accepted
/// connection must be complete ([`Params::message_timeout`]): a peer that
/// trickles a message a byte at a time is closed (1008) after it. A message of
/// `max_recv_size` must arrive within it over the slowest link you serve: raise
/// or lift it (`None`) for large messages over slow links.
pub const DEFAULT_MESSAGE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default delay before accepting again after `accept` failed (out of fds).
pub const DEFAULT_ACCEPT_RETRY: Duration = Duration::from_millis(500);
/// Default number of connections accepted per loop iteration at most.
pub const DEFAULT_ACCEPTS_PER_WAKEUP: usize = 64;

/// The parameters of [`Listener::new`](super::Listener::new), as a builder (the counterpart of
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
    pub(super) event_loop: Option<Loop>,
    backlog: u32,
    reuse_port: bool,
    pub(super) handshake: HandshakeOptions,
    pub(super) on_request: Option<upgrade::RequestHook>,
    pub(super) limits: Limits,
    pub(super) connection: ConnectionDefaults,
    pub(super) accept_retry: Duration,
    pub(super) accepts_per_wakeup: usize,
    pub(super) on_connect: Option<OnConnect>,
    pub(super) on_error: Option<OnError>,
}

impl ListenParams {
    /// Parameters for listening on `addr` (`"127.0.0.1:8080"`, `"[::1]:0"`, a
    /// `SocketAddr`; port 0 picks a free port, see [`Listener::local_addr`](super::Listener::local_addr)). A
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
            connection: ConnectionDefaults {
                keepalive: Some(DEFAULT_KEEPALIVE),
                pong_timeout: DEFAULT_PONG_TIMEOUT,
                max_fragments: Some(DEFAULT_MAX_FRAGMENTS),
                message_timeout: Some(DEFAULT_MESSAGE_TIMEOUT),
            },
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
        self.connection.keepalive = period;
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
        self.connection.pong_timeout = timeout;
        self
    }

    /// The cap on the frames one message of an accepted connection may come in
    /// ([`Params::max_fragments`]): the frame past it is refused with close 1009.
    /// `None` lifts it. Default [`DEFAULT_MAX_FRAGMENTS`].
    ///
    /// ```
    /// # use net_websocket_ev::ListenParams;
    /// let params = ListenParams::new("127.0.0.1:0").max_fragments(Some(1024));
    /// # let _ = params;
    /// ```
    pub fn max_fragments(mut self, frames: Option<u32>) -> ListenParams {
        self.connection.max_fragments = frames;
        self
    }

    /// The time within which a message that began to arrive on an accepted
    /// connection must be complete ([`Params::message_timeout`]), else close 1008:
    /// a peer cannot hold a connection and its buffer by trickling a message.
    /// The trade-off: a message of `max_recv_size` over the slowest link you serve
    /// must fit in it (the default 64 MiB at 10 Mbit/s takes 54 s); raise it, or
    /// lift it with `None`, for large messages over slow links. Default
    /// [`DEFAULT_MESSAGE_TIMEOUT`].
    ///
    /// ```
    /// # use net_websocket_ev::ListenParams;
    /// use std::time::Duration;
    /// let params = ListenParams::new("127.0.0.1:0").message_timeout(Some(Duration::from_secs(300)));
    /// # let _ = params;
    /// ```
    pub fn message_timeout(mut self, timeout: Option<Duration>) -> ListenParams {
        self.connection.message_timeout = timeout;
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
    pub(super) fn bind(&self) -> io::Result<TcpListener> {
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
            .field("connection", &self.connection)
            .field("on_connect", &self.on_connect.is_some())
            .finish_non_exhaustive()
    }
}

pub(super) type OnConnect = Box<dyn FnMut(Accepted)>;
pub(super) type OnError = Box<dyn FnMut(&UpgradeError, SocketAddr)>;

/// The caps of a listener; `None` is no cap.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub(super) max_connections: Option<usize>,
    pub(super) max_handshakes: Option<usize>,
    pub(super) max_handshakes_per_ip: Option<usize>,
    pub(super) max_connections_per_ip: Option<usize>,
}

/// What the listener sets on each connection it hands over (see
/// [`Accepted::into_params`]); `None` is off.
#[derive(Debug, Clone, Copy)]
pub(super) struct ConnectionDefaults {
    pub(super) keepalive: Option<Duration>,
    pub(super) pong_timeout: Duration,
    pub(super) max_fragments: Option<u32>,
    pub(super) message_timeout: Option<Duration>,
}

impl ConnectionDefaults {
    /// `params` with these settings: keepalive pings with
    /// [`Params::idle_timeout`] = period + pong timeout, the fragment cap and the
    /// message deadline.
    pub(super) fn apply(self, mut params: Params) -> Params {
        if let Some(period) = self.keepalive {
            params = params
                .keepalive(Some(period))
                .idle_timeout(Some(period.saturating_add(self.pong_timeout)));
        }
        params
            .max_fragments(self.max_fragments)
            .message_timeout(self.message_timeout)
    }
}
