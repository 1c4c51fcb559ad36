//! [`connect`]: a client connection made on the loop, from a URL to a handshaken
//! socket, EV::Websockets' `connect` in this crate's style.
//!
//! The steps, none of which blocks the loop:
//! 1. the host name is resolved on a resolver thread (one per lookup, `getaddrinfo`
//!    or [`ConnectOptions::resolver`]), which wakes the loop through an
//!    [`ev::Async`](crate::ev::Async); an IP address is used as it is;
//! 2. each address is tried in turn with a non-blocking TCP connect, until one
//!    answers (the socket gets `TCP_NODELAY`: messages go out whole, at once);
//! 3. through a proxy ([`Proxy`]), the proxy's name is resolved and connected to
//!    instead, and a `CONNECT host:port` tunnel opened;
//! 4. the opening handshake ([`upgrade::upgrade`]), with TLS first for `wss://`;
//! 5. the callback gets the [`Upgraded`] socket (the server's response headers in
//!    its `head`) or a [`ConnectError`].
//!
//! Timeouts: [`ConnectOptions::connect_timeout`] bounds the name lookup and each TCP
//! connect attempt on its own (an address that does not answer in time counts as
//! failed and the next is tried); the handshake's own timeout
//! ([`HandshakeOptions::timeout`]) bounds the proxy's `CONNECT` exchange and then the
//! opening handshake.
//!
//! ```no_run
//! use net_websocket_ev::{ev::Loop, websocket, Client, OpCode};
//!
//! let lp = Loop::default_loop().unwrap();
//! let options = websocket::ConnectOptions::new().origin("https://example.com");
//! websocket::connect(&lp, "ws://127.0.0.1:8080/chat", options, |result| match result {
//!     Ok(connected) => {
//!         println!("server: {:?}", connected.head.header("server"));
//!         let ws = Client::new(connected.into_params().on_msg_recv(|ws, _, _, msg, _| {
//!             println!("got {}", String::from_utf8_lossy(msg));
//!             ws.close(Some(1000), "").ok();
//!         }))
//!         .unwrap();
//!         ws.queue_msg(b"hello", OpCode::Text).unwrap();
//!     }
//!     Err(err) => eprintln!("{err}"),
//! })
//! .unwrap();
//! lp.run();
//! ```

mod proxy;
mod resolve;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::error::Error as StdError;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::ev::{Events, Io, Loop, Timer};
use crate::handshake::{ClientRequest, HandshakeError, Response};

use super::upgrade::{self, HandshakeOptions, UpgradeError, Upgraded};

pub use proxy::Proxy;
pub use resolve::Resolver;

use proxy::ProxyUrl;
use resolve::Lookup;

/// Default of [`ConnectOptions::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The callback of [`connect`].
type Done = Box<dyn FnOnce(Result<Upgraded<Response>, ConnectError>)>;

/// Connects to a `ws://` or `wss://` (feature `tls`) URL on `lp` and calls `done`
/// from the loop with the handshaken socket or the error; see the [module
/// docs](self) for the steps and timeouts.
///
/// Errors found before anything starts (a bad URL, a request header with CR or LF, a
/// subprotocol that is not a token, a bad proxy URL) are returned at once, and `done`
/// is dropped; otherwise `done` runs exactly once, from the loop, never inside this
/// call, unless the returned [`Connecting`] is cancelled first. The connection in
/// progress keeps itself alive on the loop: dropping the [`Connecting`] does not
/// cancel it.
///
/// ```no_run
/// use net_websocket_ev::{ev::Loop, websocket, Client};
///
/// let lp = Loop::default_loop().unwrap();
/// websocket::connect(&lp, "ws://localhost:9001/", Default::default(), |result| {
///     match result.map(|connected| Client::new(connected.into_params())) {
///         Ok(Ok(_ws)) => println!("open"),
///         Ok(Err(err)) => eprintln!("{err}"),
///         Err(err) => eprintln!("{err}"),
///     }
/// })
/// .unwrap();
/// lp.run();
/// ```
pub fn connect(
    lp: &Loop,
    url: &str,
    options: ConnectOptions,
    done: impl FnOnce(Result<Upgraded<Response>, ConnectError>) + 'static,
) -> Result<Connecting, ConnectError> {
    let (mut request, host, port) = ClientRequest::from_url(url).map_err(ConnectError::Url)?;
    request.headers.extend(options.headers);
    request.protocols.extend(options.protocols);
    request.validate().map_err(ConnectError::Request)?;
    let proxy_url = match options.proxy {
        Proxy::Direct => None,
        Proxy::Http(url) => Some(url),
        Proxy::FromEnv => proxy::from_env(request.tls_server_name.is_some(), &host, |name| {
            std::env::var(name).ok()
        }),
    };
    let proxy = proxy_url
        .map(|url| ProxyUrl::parse(&url).map_err(|reason| ConnectError::ProxyUrl { url, reason }))
        .transpose()?;
    let dial = match &proxy {
        Some(proxy) => (proxy.host.clone(), proxy.port),
        None => (host.clone(), port),
    };
    let inner = Rc::new(RefCell::new(Inner {
        lp: lp.clone(),
        request,
        handshake: Some(options.handshake),
        connect_timeout: options.connect_timeout,
        target: (host, port),
        proxy,
        dial: dial.clone(),
        addrs: VecDeque::new(),
        attempts: Vec::new(),
        phase: Phase::Idle,
        done: Some(Box::new(done)),
    }));
    let connecting = Connecting {
        inner: Rc::downgrade(&inner),
    };
    let host = dial.0.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(ip) => {
            let keep = inner.clone();
            let timer = Timer::new(lp, Duration::ZERO, Duration::ZERO, move |_| {
                Inner::dial_next(&keep)
            });
            timer.start();
            let mut d = inner.borrow_mut();
            d.addrs.push_back(SocketAddr::new(ip, dial.1));
            d.phase = Phase::Starting { _timer: timer };
        }
        Err(_) => {
            let keep = inner.clone();
            let lookup = Lookup::start(lp, options.resolver, host, dial.1, move || {
                Inner::resolved(&keep)
            })
            .map_err(|error| ConnectError::Resolve {
                host: host.to_owned(),
                error,
            })?;
            let keep = inner.clone();
            let timer = Timer::new(lp, options.connect_timeout, Duration::ZERO, move |_| {
                Inner::resolve_timed_out(&keep)
            });
            timer.start();
            inner.borrow_mut().phase = Phase::Resolving {
                lookup,
                _timer: timer,
            };
        }
    }
    Ok(connecting)
}

/// What [`connect`] does besides the URL: request headers, Origin, subprotocols,
/// the handshake's options, the connect timeout, a resolver, a proxy.
///
/// ```
/// use net_websocket_ev::websocket::{ConnectOptions, Proxy};
/// use std::time::Duration;
///
/// let options = ConnectOptions::new()
///     .header("Authorization", "Bearer 0123")
///     .origin("https://example.com")
///     .protocol("chat.v2")
///     .protocol("chat.v1")
///     .connect_timeout(Duration::from_secs(3))
///     .proxy(Proxy::Direct);
/// # drop(options);
/// ```
pub struct ConnectOptions {
    headers: Vec<(String, String)>,
    protocols: Vec<String>,
    handshake: HandshakeOptions,
    connect_timeout: Duration,
    resolver: Option<Resolver>,
    proxy: Proxy,
}

impl ConnectOptions {
    /// The defaults: no extra header, no subprotocol, [`HandshakeOptions::default`],
    /// [`DEFAULT_CONNECT_TIMEOUT`], the system resolver, [`Proxy::FromEnv`].
    ///
    /// ```
    /// let options = net_websocket_ev::websocket::ConnectOptions::new();
    /// # drop(options);
    /// ```
    pub fn new() -> ConnectOptions {
        ConnectOptions {
            headers: Vec::new(),
            protocols: Vec::new(),
            handshake: HandshakeOptions::default(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            resolver: None,
            proxy: Proxy::FromEnv,
        }
    }

    /// Adds a request header (a cookie, a token). A name that is not a token, a
    /// value with CR, LF or another control byte, or one of the handshake's own
    /// headers makes [`connect`] fail with [`ConnectError::Request`].
    ///
    /// ```
    /// use net_websocket_ev::{ev::Loop, websocket::{self, ConnectError, ConnectOptions}};
    /// let lp = Loop::new().unwrap();
    /// let options = ConnectOptions::new().header("X-Id", "1\r\nX-Admin: yes");
    /// let refused = websocket::connect(&lp, "ws://127.0.0.1:1/", options, |_| {});
    /// assert!(matches!(refused, Err(ConnectError::Request(_))));
    /// ```
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> ConnectOptions {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the `Origin` header (what a browser sends; servers may check it).
    ///
    /// ```
    /// let options = net_websocket_ev::websocket::ConnectOptions::new().origin("https://example.com");
    /// # drop(options);
    /// ```
    pub fn origin(self, origin: impl Into<String>) -> ConnectOptions {
        self.header("Origin", origin)
    }

    /// Offers a subprotocol (call again for more, in order of preference); the one
    /// the server chose is [`Upgraded::protocol`]. One that is not a token makes
    /// [`connect`] fail with [`ConnectError::Request`].
    ///
    /// ```
    /// let options = net_websocket_ev::websocket::ConnectOptions::new().protocol("graphql-ws");
    /// # drop(options);
    /// ```
    pub fn protocol(mut self, protocol: impl Into<String>) -> ConnectOptions {
        self.protocols.push(protocol.into());
        self
    }

    /// The opening handshake's options (its timeout, header limit, permessage-deflate,
    /// and with feature `tls` the `client_tls` configuration for `wss://`).
    ///
    /// ```
    /// use net_websocket_ev::websocket::{upgrade::HandshakeOptions, ConnectOptions};
    /// use std::time::Duration;
    /// let handshake = HandshakeOptions::default().timeout(Duration::from_secs(5));
    /// let options = ConnectOptions::new().handshake(handshake);
    /// # drop(options);
    /// ```
    pub fn handshake(mut self, options: HandshakeOptions) -> ConnectOptions {
        self.handshake = options;
        self
    }

    /// The time allowed for the name lookup, and for each TCP connect attempt
    /// (default [`DEFAULT_CONNECT_TIMEOUT`]); see the [module docs](self).
    ///
    /// ```
    /// use std::time::Duration;
    /// let options = net_websocket_ev::websocket::ConnectOptions::new()
    ///     .connect_timeout(Duration::from_secs(2));
    /// # drop(options);
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> ConnectOptions {
        self.connect_timeout = timeout;
        self
    }

    /// Resolves names with `resolver` instead of the system's `getaddrinfo`. It runs
    /// on the resolver thread, never on the loop, so it may block. IP addresses are
    /// used as they are, without it; through a proxy it resolves the proxy's name
    /// (the proxy resolves the target's).
    ///
    /// ```
    /// use net_websocket_ev::websocket::ConnectOptions;
    /// use std::net::SocketAddr;
    /// let options = ConnectOptions::new().resolver(|host: &str, port: u16| {
    ///     match host {
    ///         "backend.internal" => Ok(vec![SocketAddr::from(([10, 0, 0, 7], port))]),
    ///         _ => Err(std::io::Error::new(std::io::ErrorKind::NotFound, "unknown host")),
    ///     }
    /// });
    /// # drop(options);
    /// ```
    pub fn resolver(
        mut self,
        resolver: impl Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync + 'static,
    ) -> ConnectOptions {
        self.resolver = Some(Arc::new(resolver));
        self
    }

    /// Which HTTP proxy to use; [`Proxy::FromEnv`] (the environment, as curl reads
    /// it) by default.
    ///
    /// ```
    /// use net_websocket_ev::websocket::{ConnectOptions, Proxy};
    /// let options = ConnectOptions::new().proxy(Proxy::Http("http://proxy.lan:3128".into()));
    /// # drop(options);
    /// ```
    pub fn proxy(mut self, proxy: Proxy) -> ConnectOptions {
        self.proxy = proxy;
        self
    }
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions::new()
    }
}

impl fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("headers", &self.headers)
            .field("protocols", &self.protocols)
            .field("handshake", &self.handshake)
            .field("connect_timeout", &self.connect_timeout)
            .field("resolver", &self.resolver.is_some())
            .field("proxy", &self.proxy)
            .finish()
    }
}

/// A connection in progress, from [`connect`]: it can be cancelled. Dropping it
/// does nothing (the connection goes on and its callback runs).
pub struct Connecting {
    inner: Weak<RefCell<Inner>>,
}

impl Connecting {
    /// Abandons the connection: the callback is dropped without being called, the
    /// socket closed (one in its handshake is shut down, then closed when its
    /// handshake notices), a pending lookup's answer ignored. No-op once the
    /// callback has run.
    ///
    /// ```
    /// use net_websocket_ev::{ev::Loop, websocket::{self, ConnectOptions, Proxy}};
    /// let lp = Loop::new().unwrap();
    /// let options = ConnectOptions::new().proxy(Proxy::Direct);
    /// let pending = websocket::connect(&lp, "ws://127.0.0.1:9/", options, |_| {
    ///     unreachable!("cancelled")
    /// })
    /// .unwrap();
    /// assert!(pending.is_pending());
    /// pending.cancel();
    /// assert!(!pending.is_pending());
    /// lp.run(); // nothing left to do
    /// ```
    pub fn cancel(&self) {
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        let (phase, done) = {
            let mut d = inner.borrow_mut();
            (std::mem::replace(&mut d.phase, Phase::Idle), d.done.take())
        };
        if let Phase::Handshaking {
            shutdown: Some(stream),
        } = &phase
        {
            let _ = stream.shutdown(Shutdown::Both);
        }
        // Dropped with no borrow held: their captures may do anything.
        drop((phase, done));
    }

    /// Whether the callback is still to come.
    ///
    /// ```
    /// # use net_websocket_ev::{ev::Loop, websocket};
    /// let lp = Loop::new().unwrap();
    /// let pending = websocket::connect(&lp, "ws://127.0.0.1:9/", Default::default(), |_| {}).unwrap();
    /// assert!(pending.is_pending());
    /// # pending.cancel();
    /// ```
    pub fn is_pending(&self) -> bool {
        self.inner
            .upgrade()
            .is_some_and(|inner| inner.borrow().done.is_some())
    }
}

impl fmt::Debug for Connecting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connecting")
            .field("pending", &self.is_pending())
            .finish()
    }
}

/// Why [`connect`] failed. Its [`source`](StdError::source) has the cause, which
/// `Display` does not repeat.
///
/// ```
/// use net_websocket_ev::websocket::{self, ConnectError};
/// use std::error::Error;
/// let lp = net_websocket_ev::ev::Loop::new().unwrap();
/// let err = websocket::connect(&lp, "http://example.com/", Default::default(), |_| {}).unwrap_err();
/// assert!(matches!(err, ConnectError::Url(_)));
/// assert_eq!(err.to_string(), "bad WebSocket URL");
/// assert!(err.source().unwrap().to_string().contains("not ws:// or wss://"));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError {
    /// Not a `ws://` (or, with feature `tls`, `wss://`) URL.
    Url(HandshakeError),
    /// The request cannot be sent as it is: a header, the Origin or a subprotocol
    /// is invalid ([`ClientRequest::validate`]).
    Request(HandshakeError),
    /// The proxy URL, from the options or the environment, cannot be used.
    ProxyUrl {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The name lookup failed or took longer than the connect timeout (then `error`
    /// is [`io::ErrorKind::TimedOut`]), or its thread could not be started.
    Resolve {
        /// The name looked up (the proxy's, through a proxy).
        host: String,
        /// The resolver's error.
        error: io::Error,
    },
    /// Every address refused, failed or did not answer within the connect timeout
    /// (the name resolved to none if `attempts` is empty).
    Connect {
        /// The host connected to (the proxy, through a proxy).
        host: String,
        /// Its port.
        port: u16,
        /// Each address tried, with its error, in order; the last is the `source`.
        attempts: Vec<(SocketAddr, io::Error)>,
    },
    /// The proxy answered `CONNECT` with a status that is not 2xx (407: it wants
    /// credentials, 403: it refuses the destination).
    ProxyRefused {
        /// The HTTP status.
        status: u16,
        /// The proxy's reason phrase.
        reason: String,
    },
    /// The proxy's answer to `CONNECT` did not come (it closed, it timed out) or was
    /// not HTTP.
    Proxy(io::Error),
    /// The opening handshake (with TLS first for `wss://`) failed.
    Upgrade(UpgradeError),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Url(_) => f.write_str("bad WebSocket URL"),
            ConnectError::Request(_) => {
                f.write_str("invalid request (header, Origin or subprotocol)")
            }
            ConnectError::ProxyUrl { url, reason } => write!(f, "bad proxy URL {url:?}: {reason}"),
            ConnectError::Resolve { host, .. } => write!(f, "cannot resolve {host:?}"),
            ConnectError::Connect {
                host,
                port,
                attempts,
            } if attempts.is_empty() => {
                write!(
                    f,
                    "cannot connect to {host}:{port}: the name has no address"
                )
            }
            ConnectError::Connect {
                host,
                port,
                attempts,
            } => write!(
                f,
                "cannot connect to {host}:{port} ({} address{} tried, the last {})",
                attempts.len(),
                if attempts.len() == 1 { "" } else { "es" },
                attempts[attempts.len() - 1].0
            ),
            ConnectError::ProxyRefused { status, reason } => {
                write!(f, "the proxy refused the tunnel: {status} {reason}")
            }
            ConnectError::Proxy(_) => f.write_str("the proxy's tunnel could not be opened"),
            ConnectError::Upgrade(_) => f.write_str("the WebSocket handshake failed"),
        }
    }
}

impl StdError for ConnectError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            ConnectError::Url(err) | ConnectError::Request(err) => Some(err),
            ConnectError::Resolve { error, .. } | ConnectError::Proxy(error) => Some(error),
            ConnectError::Connect { attempts, .. } => attempts
                .last()
                .map(|(_, err)| err as &(dyn StdError + 'static)),
            ConnectError::Upgrade(err) => Some(err),
            ConnectError::ProxyUrl { .. } | ConnectError::ProxyRefused { .. } => None,
        }
    }
}

/// A connection in progress.
struct Inner {
    lp: Loop,
    request: ClientRequest,
    /// Taken when the handshake starts.
    handshake: Option<HandshakeOptions>,
    connect_timeout: Duration,
    /// The WebSocket server's host and port (the `CONNECT` target through a proxy).
    target: (String, u16),
    proxy: Option<ProxyUrl>,
    /// The host and port connected to: the target, or the proxy.
    dial: (String, u16),
    /// Addresses not tried yet.
    addrs: VecDeque<SocketAddr>,
    attempts: Vec<(SocketAddr, io::Error)>,
    phase: Phase,
    /// `None` once called or cancelled.
    done: Option<Done>,
}

/// Where the connection is. Each phase owns its watchers (dropped with it, which
/// releases their hold on the `Inner`) and its socket, declared after the watchers
/// so that they stop before it closes.
enum Phase {
    /// Not started, or over.
    Idle,
    /// An IP address: the first connect starts on the next loop iteration, so the
    /// callback never runs inside [`connect`].
    Starting {
        _timer: Timer,
    },
    Resolving {
        lookup: Lookup,
        _timer: Timer,
    },
    Dialing {
        _io: Io,
        _timer: Timer,
        socket: Socket,
        addr: SocketAddr,
    },
    Tunnelling {
        io: Io,
        _timer: Timer,
        socket: TcpStream,
        request: Vec<u8>,
        written: usize,
        /// What was read of the proxy's answer (none of it belongs to the tunnel).
        answer: Vec<u8>,
    },
    /// [`upgrade::upgrade`] runs; a second handle on the socket to shut it down on
    /// cancel.
    Handshaking {
        shutdown: Option<TcpStream>,
    },
}

/// What a step decided, carried out once the `Inner` is no longer borrowed.
enum Next {
    Wait,
    Fail(ConnectError),
    Handshake(TcpStream),
}

impl Inner {
    /// The lookup's answer is in.
    fn resolved(this: &Rc<RefCell<Inner>>) {
        let answer = match &this.borrow().phase {
            Phase::Resolving { lookup, .. } => lookup.take(),
            _ => None,
        };
        let next = match answer {
            None => return,
            Some(Ok(addrs)) => {
                this.borrow_mut().addrs.extend(addrs);
                return Inner::dial_next(this);
            }
            Some(Err(error)) => Next::Fail(ConnectError::Resolve {
                host: this.borrow().dial.0.clone(),
                error,
            }),
        };
        Inner::carry_out(this, next);
    }

    fn resolve_timed_out(this: &Rc<RefCell<Inner>>) {
        let d = this.borrow();
        let error = io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no answer within {:?}", d.connect_timeout),
        );
        let host = d.dial.0.clone();
        drop(d);
        Inner::carry_out(this, Next::Fail(ConnectError::Resolve { host, error }));
    }

    /// Starts a connect to the next address; fails once none is left.
    fn dial_next(this: &Rc<RefCell<Inner>>) {
        let mut d = this.borrow_mut();
        let next = loop {
            let Some(addr) = d.addrs.pop_front() else {
                let (host, port) = d.dial.clone();
                let attempts = std::mem::take(&mut d.attempts);
                break Next::Fail(ConnectError::Connect {
                    host,
                    port,
                    attempts,
                });
            };
            match Inner::start_dial(&d.lp, addr, d.connect_timeout, this) {
                Ok(phase) => {
                    // The old phase (a finished lookup, a failed attempt) goes after
                    // the borrow.
                    let old = std::mem::replace(&mut d.phase, phase);
                    drop(d);
                    drop(old);
                    return;
                }
                Err(err) => d.attempts.push((addr, err)),
            }
        };
        drop(d);
        Inner::carry_out(this, next);
    }

    /// A non-blocking connect to `addr`, watched for WRITE, with its timeout.
    fn start_dial(
        lp: &Loop,
        addr: SocketAddr,
        timeout: Duration,
        this: &Rc<RefCell<Inner>>,
    ) -> io::Result<Phase> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_nonblocking(true)?;
        match socket.connect(&SockAddr::from(addr)) {
            Ok(()) => {}
            Err(err) if err.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(err) => return Err(err),
        }
        let keep = this.clone();
        let io = Io::new(lp, socket.as_raw_fd(), Events::WRITE, move |_| {
            Inner::dialled(&keep, false)
        })
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
        let keep = this.clone();
        let timer = Timer::new(lp, timeout, Duration::ZERO, move |_| {
            Inner::dialled(&keep, true)
        });
        io.start();
        timer.start();
        Ok(Phase::Dialing {
            _io: io,
            _timer: timer,
            socket,
            addr,
        })
    }

    /// The connect attempt finished (the socket is writable) or timed out.
    fn dialled(this: &Rc<RefCell<Inner>>, timed_out: bool) {
        let mut d = this.borrow_mut();
        let Phase::Dialing { socket, addr, .. } = &d.phase else {
            return;
        };
        let addr = *addr;
        let failure = if timed_out {
            Some(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer within {:?}", d.connect_timeout),
            ))
        } else {
            match socket.take_error() {
                Ok(None) => None,
                Ok(Some(err)) | Err(err) => Some(err),
            }
        };
        if let Some(err) = failure {
            d.attempts.push((addr, err));
            drop(d);
            return Inner::dial_next(this);
        }
        let Phase::Dialing { socket, .. } = std::mem::replace(&mut d.phase, Phase::Idle) else {
            unreachable!("matched above");
        };
        let stream = TcpStream::from(socket);
        let _ = stream.set_nodelay(true);
        let next = match d.proxy.as_ref() {
            None => Next::Handshake(stream),
            Some(proxy) => {
                let request = proxy.connect_request(&d.target.0, d.target.1);
                match Inner::start_tunnel(&mut d, this, stream, request) {
                    Ok(()) => Next::Wait,
                    Err(err) => Next::Fail(ConnectError::Proxy(err)),
                }
            }
        };
        drop(d);
        Inner::carry_out(this, next);
    }

    /// Sends `CONNECT` to the proxy on `stream` and waits for its answer.
    fn start_tunnel(
        d: &mut Inner,
        this: &Rc<RefCell<Inner>>,
        stream: TcpStream,
        request: Vec<u8>,
    ) -> io::Result<()> {
        let keep = this.clone();
        let io = Io::new(
            &d.lp,
            stream.as_raw_fd(),
            Events::READ | Events::WRITE,
            move |_| Inner::tunnel_step(&keep, false),
        )
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
        let keep = this.clone();
        let timeout = d
            .handshake
            .as_ref()
            .map_or(upgrade::DEFAULT_HANDSHAKE_TIMEOUT, |h| h.timeout);
        let timer = Timer::new(&d.lp, timeout, Duration::ZERO, move |_| {
            Inner::tunnel_step(&keep, true)
        });
        io.start();
        timer.start();
        d.phase = Phase::Tunnelling {
            io,
            _timer: timer,
            socket: stream,
            request,
            written: 0,
            answer: Vec::new(),
        };
        Ok(())
    }

    /// Writes the `CONNECT` request, reads the proxy's answer head (no byte past it:
    /// those belong to the tunnel), and decides.
    fn tunnel_step(this: &Rc<RefCell<Inner>>, timed_out: bool) {
        let mut d = this.borrow_mut();
        let limit = d
            .handshake
            .as_ref()
            .map_or(crate::handshake::DEFAULT_MAX_HEADER_SIZE, |h| {
                h.max_header_size
            });
        let Phase::Tunnelling {
            io,
            socket,
            request,
            written,
            answer,
            ..
        } = &mut d.phase
        else {
            return;
        };
        let outcome = if timed_out {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the proxy did not answer CONNECT in time",
            ))
        } else {
            tunnel_io(socket, request, written, answer, limit)
        };
        let next = match outcome {
            Ok(None) => {
                let events = if *written < request.len() {
                    Events::READ | Events::WRITE
                } else {
                    Events::READ
                };
                io.set_events(events);
                Next::Wait
            }
            Ok(Some(head)) => match proxy::parse_status(&head) {
                Ok((status, _)) if (200..300).contains(&status) => {
                    let Phase::Tunnelling { socket, .. } =
                        std::mem::replace(&mut d.phase, Phase::Idle)
                    else {
                        unreachable!("matched above");
                    };
                    Next::Handshake(socket)
                }
                Ok((status, reason)) => Next::Fail(ConnectError::ProxyRefused { status, reason }),
                Err(what) => Next::Fail(ConnectError::Proxy(io::Error::new(
                    io::ErrorKind::InvalidData,
                    what,
                ))),
            },
            Err(err) => Next::Fail(ConnectError::Proxy(err)),
        };
        drop(d);
        Inner::carry_out(this, next);
    }

    /// Carries out a decision, with no borrow held.
    fn carry_out(this: &Rc<RefCell<Inner>>, next: Next) {
        match next {
            Next::Wait => {}
            Next::Fail(err) => Inner::finish(this, Err(err)),
            Next::Handshake(stream) => {
                let mut d = this.borrow_mut();
                let options = d.handshake.take().unwrap_or_default();
                let request = d.request.clone();
                let lp = d.lp.clone();
                let old = std::mem::replace(
                    &mut d.phase,
                    Phase::Handshaking {
                        shutdown: stream.try_clone().ok(),
                    },
                );
                drop(d);
                drop(old);
                let keep = this.clone();
                upgrade::upgrade(&lp, stream, &request, options, move |result| {
                    Inner::finish(&keep, result.map_err(ConnectError::Upgrade))
                });
            }
        }
    }

    /// Calls the callback (unless cancelled) and ends the connection's phases.
    fn finish(this: &Rc<RefCell<Inner>>, result: Result<Upgraded<Response>, ConnectError>) {
        let (phase, done) = {
            let mut d = this.borrow_mut();
            (std::mem::replace(&mut d.phase, Phase::Idle), d.done.take())
        };
        drop(phase);
        if let Some(done) = done {
            done(result);
        }
    }
}

/// One round of the `CONNECT` exchange: `Some(head)` once the proxy's answer head
/// is complete.
fn tunnel_io(
    socket: &mut TcpStream,
    request: &[u8],
    written: &mut usize,
    answer: &mut Vec<u8>,
    limit: usize,
) -> io::Result<Option<Vec<u8>>> {
    while *written < request.len() {
        match socket.write(&request[*written..]) {
            Ok(n) => *written += n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    let mut buf = [0u8; 1024];
    loop {
        // Peek first, then consume no more than the head: what follows it is the
        // server's, for the handshake to read.
        let n = match socket.peek(&mut buf) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the proxy closed the connection before answering CONNECT",
                ))
            }
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        // The head's end may straddle what we hold and what we peeked.
        let keep = answer.len().min(3);
        let mut window = answer[answer.len() - keep..].to_vec();
        window.extend_from_slice(&buf[..n]);
        let take = match proxy::head_end(&window) {
            Some(end) => end - keep,
            None => n,
        };
        socket.read_exact(&mut buf[..take])?;
        answer.extend_from_slice(&buf[..take]);
        if proxy::head_end(answer).is_some() {
            return Ok(Some(std::mem::take(answer)));
        }
        if answer.len() > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the proxy's answer to CONNECT is longer than {limit} bytes"),
            ));
        }
    }
}
