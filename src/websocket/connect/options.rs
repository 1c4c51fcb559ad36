//! [`ConnectOptions`]: what [`connect`](super::connect) does besides the URL.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::websocket::upgrade::HandshakeOptions;

use super::proxy::Proxy;
use super::resolve::Resolver;
use super::DEFAULT_CONNECT_TIMEOUT;

/// What [`connect`](super::connect) does besides the URL: request headers, Origin, subprotocols,
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
    pub(super) headers: Vec<(String, String)>,
    pub(super) protocols: Vec<String>,
    pub(super) handshake: HandshakeOptions,
    pub(super) connect_timeout: Duration,
    pub(super) resolver: Option<Resolver>,
    pub(super) proxy: Proxy,
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
    /// headers makes [`connect`](super::connect) fail with [`ConnectError::Request`](super::ConnectError::Request).
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
    /// the server chose is [`Upgraded::protocol`](crate::websocket::upgrade::Upgraded::protocol). One that is not a token makes
    /// [`connect`](super::connect) fail with [`ConnectError::Request`](super::ConnectError::Request).
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
    /// (default [`DEFAULT_CONNECT_TIMEOUT`]); see the [module docs](super).
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
