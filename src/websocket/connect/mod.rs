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
//! 4. the opening handshake ([`upgrade::upgrade`](crate::websocket::upgrade::upgrade)), with TLS first for `wss://`;
//! 5. the callback gets the [`Upgraded`] socket (the server's response headers in
//!    its `head`) or a [`ConnectError`].
//!
//! Timeouts: [`ConnectOptions::connect_timeout`] bounds the name lookup and each TCP
//! connect attempt on its own (an address that does not answer in time counts as
//! failed and the next is tried); the handshake's own timeout
//! ([`HandshakeOptions::timeout`](crate::websocket::upgrade::HandshakeOptions::timeout)) bounds the proxy's `CONNECT` exchange and then the
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

mod dial;
mod error;
mod options;
mod proxy;
mod resolve;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::rc::{Rc, Weak};
use std::time::Duration;

use crate::ev::{Loop, Timer};
use crate::handshake::{ClientRequest, Response};

use super::upgrade::Upgraded;

pub use error::ConnectError;
pub use options::ConnectOptions;
pub use proxy::Proxy;
pub use resolve::Resolver;

use dial::*;
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
        .map(|url| {
            ProxyUrl::parse(&url).map_err(|reason| ConnectError::ProxyUrl {
                url: proxy::redact(&url),
                reason,
            })
        })
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
