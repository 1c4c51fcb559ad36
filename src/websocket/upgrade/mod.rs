//! The opening handshake driven from the loop: [`accept`] (server) and [`upgrade`]
//! (client) read and write a non-blocking socket with a timeout, on top of the pure
//! parsers in [`crate::handshake`], and hand over the socket with any bytes that
//! arrived after the handshake. With TLS (feature `tls`: a server given
//! `HandshakeOptions::server_tls`, a client with a `wss://` request) the TLS
//! handshake runs first, on the same watcher and within the same timeout.

use std::fmt;
use std::io;
use std::net::TcpStream;
use std::rc::Rc;
use std::time::Duration;

use crate::ev::Loop;
use crate::handshake::{
    self, Answer, ClientHandshake, ClientRequest, HandshakeError, Request, Response,
    ServerHandshake,
};

use super::Params;
#[cfg(feature = "tls")]
use crate::tls::{self, ClientTls, ServerTls, Session};
#[cfg(feature = "deflate")]
use crate::{handshake::deflate::PerMessageDeflate, proto::Compression};

mod driver;

use super::transport::Parts;
pub(crate) use driver::{abort_all, HandshakeHandle};
use driver::{ClientSide, Driver, ServerSide};

/// Default time allowed for a whole opening handshake.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Picks a subprotocol from the client's offer (`None`: no protocol header).
pub type ProtocolSelector = Box<dyn Fn(&Request) -> Option<String>>;

/// Answers a request (see [`HandshakeOptions::on_request`]).
pub type RequestHook = Box<dyn Fn(&Request) -> Answer>;

/// Limits and choices of a loop-driven handshake, as a builder.
///
/// ```
/// use net_websocket_ev::handshake::Answer;
/// use net_websocket_ev::websocket::upgrade::HandshakeOptions;
/// use std::time::Duration;
///
/// let options = HandshakeOptions::default()
///     .timeout(Duration::from_secs(5))
///     .max_header_size(4096)
///     .on_request(|req| match req.origin() {
///         Some("https://example.com") => Answer::accept(),
///         _ => Answer::status(403).body("unknown origin\n"),
///     });
/// assert_eq!(options.timeout, Duration::from_secs(5));
/// ```
#[non_exhaustive]
pub struct HandshakeOptions {
    /// Largest request or response head accepted (default 8 KiB).
    pub max_header_size: usize,
    /// Time for the whole handshake (default [`DEFAULT_HANDSHAKE_TIMEOUT`]).
    pub timeout: Duration,
    /// Server: chooses the subprotocol; it must be one the client offered (an
    /// [`on_request`](Self::on_request) answer that names one takes precedence).
    pub select_protocol: Option<ProtocolSelector>,
    /// Server: the request hook, which sees each request (path and query, headers,
    /// `Origin`, cookies, offered subprotocols and extensions, the peer's address in
    /// [`Request::peer`]) and answers it: [`Answer::accept`] (choosing the
    /// subprotocol, adding headers such as `Set-Cookie`) or [`Answer::status`]
    /// (a refusal with its status, headers and body, after which the socket is
    /// closed and the handshake fails with [`UpgradeError::Refused`]). With a hook,
    /// a plain `GET` or `HEAD` (no `Upgrade: websocket`) reaches it too
    /// ([`Request::upgrade`] false) and can get an ordinary page (a health check)
    /// from the same port; without one it gets 400 as any bad request. An answer
    /// that cannot be written (a header with CR or LF, a subprotocol not offered)
    /// sends `500` instead and fails with [`UpgradeError::Answer`]. `None` (the
    /// default): every valid upgrade is accepted.
    pub on_request: Option<RequestHook>,
    /// permessage-deflate (RFC 7692): a client offers it, a server accepts the
    /// first acceptable offer, both with these settings; what was agreed is in
    /// [`Upgraded::compression`]. `None` (the default): no compression, in
    /// both roles (a server then answers every browser without it, paying no
    /// CPU or memory for it).
    #[cfg(feature = "deflate")]
    pub deflate: Option<PerMessageDeflate>,
    /// Server ([`accept`]): TLS first, with this configuration (`wss://`); `None`
    /// (the default): plain `ws://`. Garbage instead of a ClientHello, a failed TLS
    /// handshake or a stalled one (the timeout counts from the first byte) closes
    /// the socket with [`UpgradeError::Tls`] or [`UpgradeError::Timeout`].
    #[cfg(feature = "tls")]
    pub server_tls: Option<ServerTls>,
    /// Client ([`upgrade`]) with a `wss://` request: the TLS configuration (roots,
    /// a CA, a client certificate). `None` (the default): [`ClientTls::default`],
    /// the built-in Mozilla roots.
    #[cfg(feature = "tls")]
    pub client_tls: Option<ClientTls>,
}

impl Default for HandshakeOptions {
    fn default() -> Self {
        HandshakeOptions {
            max_header_size: handshake::DEFAULT_MAX_HEADER_SIZE,
            timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            select_protocol: None,
            on_request: None,
            #[cfg(feature = "deflate")]
            deflate: None,
            #[cfg(feature = "tls")]
            server_tls: None,
            #[cfg(feature = "tls")]
            client_tls: None,
        }
    }
}

impl HandshakeOptions {
    /// The largest request or response head accepted, blank line included.
    ///
    /// ```
    /// # use net_websocket_ev::websocket::upgrade::HandshakeOptions;
    /// let options = HandshakeOptions::default().max_header_size(16 * 1024);
    /// # assert_eq!(options.max_header_size, 16 * 1024);
    /// ```
    pub fn max_header_size(mut self, bytes: usize) -> Self {
        self.max_header_size = bytes;
        self
    }

    /// The time allowed for the whole handshake (TLS included).
    ///
    /// ```
    /// # use net_websocket_ev::websocket::upgrade::HandshakeOptions;
    /// let options = HandshakeOptions::default().timeout(std::time::Duration::from_secs(3));
    /// # let _ = options;
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Server: chooses the subprotocol from the client's offer.
    ///
    /// ```
    /// # use net_websocket_ev::websocket::upgrade::HandshakeOptions;
    /// let options = HandshakeOptions::default()
    ///     .select_protocol(|req| req.protocols.iter().find(|p| *p == "chat").cloned());
    /// # let _ = options;
    /// ```
    pub fn select_protocol(
        mut self,
        select: impl Fn(&Request) -> Option<String> + 'static,
    ) -> Self {
        self.select_protocol = Some(Box::new(select));
        self
    }

    /// Server: the request hook (see the field [`on_request`](Self#structfield.on_request)).
    ///
    /// ```
    /// use net_websocket_ev::handshake::Answer;
    /// # use net_websocket_ev::websocket::upgrade::HandshakeOptions;
    /// let options = HandshakeOptions::default().on_request(|req| {
    ///     match (req.upgrade, req.path_and_query().0) {
    ///         (false, "/health") => Answer::status(200).body("ok\n"),
    ///         (true, "/chat") => Answer::accept().header("Set-Cookie", "seen=1"),
    ///         _ => Answer::status(404),
    ///     }
    /// });
    /// # let _ = options;
    /// ```
    pub fn on_request(mut self, hook: impl Fn(&Request) -> Answer + 'static) -> Self {
        self.on_request = Some(Box::new(hook));
        self
    }

    /// permessage-deflate with these settings (see the field
    /// [`deflate`](Self#structfield.deflate)); `None`: no compression.
    ///
    /// ```
    /// use net_websocket_ev::handshake::deflate::PerMessageDeflate;
    /// # use net_websocket_ev::websocket::upgrade::HandshakeOptions;
    /// let options = HandshakeOptions::default().deflate(Some(PerMessageDeflate::default()));
    /// # let _ = options;
    /// ```
    #[cfg(feature = "deflate")]
    pub fn deflate(mut self, settings: Option<PerMessageDeflate>) -> Self {
        self.deflate = settings;
        self
    }

    /// Server: TLS first, with this configuration (`wss://`).
    ///
    /// ```no_run
    /// use net_websocket_ev::tls::ServerTls;
    /// # use net_websocket_ev::websocket::upgrade::HandshakeOptions;
    /// let tls = ServerTls::from_pem_files("cert.pem", "key.pem").unwrap();
    /// let options = HandshakeOptions::default().server_tls(tls);
    /// # let _ = options;
    /// ```
    #[cfg(feature = "tls")]
    pub fn server_tls(mut self, tls: ServerTls) -> Self {
        self.server_tls = Some(tls);
        self
    }

    /// Client with a `wss://` request: this TLS configuration.
    ///
    /// ```
    /// use net_websocket_ev::tls::ClientTls;
    /// # use net_websocket_ev::websocket::upgrade::HandshakeOptions;
    /// let options = HandshakeOptions::default().client_tls(ClientTls::default());
    /// # let _ = options;
    /// ```
    #[cfg(feature = "tls")]
    pub fn client_tls(mut self, tls: ClientTls) -> Self {
        self.client_tls = Some(tls);
        self
    }
}

impl fmt::Debug for HandshakeOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandshakeOptions")
            .field("max_header_size", &self.max_header_size)
            .field("timeout", &self.timeout)
            .field("select_protocol", &self.select_protocol.is_some())
            .field("on_request", &self.on_request.is_some())
            .finish_non_exhaustive()
    }
}

/// Why a handshake failed; the socket has been closed (a server answered a bad
/// request with 400 or 426 first). [`source`](std::error::Error::source) gives the
/// underlying error, which `Display` does not repeat.
#[derive(Debug)]
#[non_exhaustive]
pub enum UpgradeError {
    /// The peer's request or response broke a rule.
    Handshake(HandshakeError),
    /// The request hook answered with an ordinary HTTP response of this status (a
    /// refusal, or the page for a plain request), which was sent before closing.
    Refused {
        /// The status sent.
        status: u16,
    },
    /// The request hook's answer could not be written (a header with CR or LF, one
    /// the server writes itself, a subprotocol not offered): the client got `500`.
    Answer(HandshakeError),
    /// The handshake was abandoned: its listener was aborted
    /// ([`Listener::abort`](crate::websocket::Listener::abort)), or its loop
    /// ([`abort_all`](crate::websocket::abort_all)).
    Aborted,
    /// The peer closed the connection before the handshake was complete.
    Eof,
    /// The handshake did not finish within the timeout.
    Timeout,
    /// A socket error.
    Io(io::Error),
    /// The TLS handshake failed (a certificate that does not verify, garbage instead
    /// of a ClientHello, an alert from the peer): rustls's error.
    #[cfg(feature = "tls")]
    Tls(tls::rustls::Error),
}

impl fmt::Display for UpgradeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpgradeError::Handshake(_) => f.write_str("handshake refused"),
            UpgradeError::Refused { status } => {
                write!(f, "the request hook answered with status {status}")
            }
            UpgradeError::Answer(_) => {
                f.write_str("the request hook's answer was invalid: the client got 500")
            }
            UpgradeError::Aborted => f.write_str("handshake abandoned: aborted"),
            UpgradeError::Eof => f.write_str("peer closed the connection during the handshake"),
            UpgradeError::Timeout => f.write_str("handshake timed out"),
            UpgradeError::Io(_) => f.write_str("handshake I/O error"),
            #[cfg(feature = "tls")]
            UpgradeError::Tls(_) => f.write_str("TLS handshake failed"),
        }
    }
}

impl std::error::Error for UpgradeError {
    /// The error behind it: the broken rule, the socket error, rustls's error.
    ///
    /// ```
    /// use net_websocket_ev::handshake::HandshakeError;
    /// use net_websocket_ev::websocket::upgrade::UpgradeError;
    /// use std::error::Error as _;
    ///
    /// let err = UpgradeError::Handshake(HandshakeError::BadKey);
    /// assert_eq!(err.to_string(), "handshake refused");
    /// assert_eq!(err.source().unwrap().to_string(), HandshakeError::BadKey.to_string());
    /// ```
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            UpgradeError::Handshake(err) | UpgradeError::Answer(err) => Some(err),
            UpgradeError::Io(err) => Some(err),
            #[cfg(feature = "tls")]
            UpgradeError::Tls(err) => Some(err),
            UpgradeError::Refused { .. }
            | UpgradeError::Aborted
            | UpgradeError::Eof
            | UpgradeError::Timeout => None,
        }
    }
}

impl From<io::Error> for UpgradeError {
    /// A socket error, or the TLS error it carries.
    fn from(err: io::Error) -> UpgradeError {
        #[cfg(feature = "tls")]
        if let Some(tls) = tls::tls_error(&err) {
            return UpgradeError::Tls(tls.clone());
        }
        UpgradeError::Io(err)
    }
}

/// A completed handshake: the socket, what was agreed, and the bytes that followed.
#[derive(Debug)]
#[non_exhaustive]
pub struct Upgraded<T> {
    /// The socket, non-blocking, ready for [`Params::new`].
    pub stream: TcpStream,
    /// The client's request (server side) or the server's response (client side).
    pub head: T,
    /// The subprotocol agreed on, if any.
    pub protocol: Option<String>,
    /// Bytes that arrived after the handshake: the first WebSocket frames.
    pub leftover: Vec<u8>,
    /// The loop the handshake ran on; the connection stays on it.
    pub event_loop: Loop,
    /// permessage-deflate as agreed (see [`HandshakeOptions::deflate`]).
    #[cfg(feature = "deflate")]
    pub compression: Option<Compression>,
    /// The TLS session over `stream` (`wss://`), or `None`: every later byte goes
    /// through it, so it must go with the stream ([`into_params`](Self::into_params)
    /// takes both). The peer's certificates and the SNI name are in
    /// [`Session::rustls`].
    #[cfg(feature = "tls")]
    pub tls: Option<Session>,
}

impl<T> Upgraded<T> {
    /// Parameters for [`Server::new`](super::Server::new) or
    /// [`Client::new`](super::Client::new) carrying the socket, the leftover bytes and
    /// the handshake's loop (and what was agreed: compression, the TLS session).
    ///
    /// ```no_run
    /// # use net_websocket_ev::{ev::Loop, websocket::upgrade, Server};
    /// # let (lp, stream): (Loop, std::net::TcpStream) = unimplemented!();
    /// upgrade::accept(&lp, stream, Default::default(), |result| {
    ///     let Ok(upgraded) = result else { return };
    ///     // The socket, the leftover bytes and the loop in one go; then the callbacks.
    ///     Server::new(upgraded.into_params().max_recv_size(1 << 20)).ok();
    /// });
    /// ```
    pub fn into_params(self) -> Params {
        let params = Params::new(self.stream)
            .initial_data(self.leftover)
            .event_loop(&self.event_loop);
        #[cfg(feature = "deflate")]
        let params = match self.compression {
            Some(agreed) => params.compression(agreed),
            None => params,
        };
        #[cfg(feature = "tls")]
        let params = match self.tls {
            Some(session) => params.tls(session),
            None => params,
        };
        params
    }
}

/// Server side: reads the client's Upgrade request from `stream` on the loop,
/// answers 101 (or 400/426 and closes), then calls `done`.
///
/// ```no_run
/// use net_websocket_ev::{ev::Loop, websocket::upgrade, Params, Server};
/// # let (lp, stream): (Loop, std::net::TcpStream) = unimplemented!();
/// upgrade::accept(&lp, stream, Default::default(), |result| match result {
///     Ok(upgraded) => {
///         Server::new(upgraded.into_params().on_msg_recv(|ws, _, op, msg, _| {
///             ws.queue_msg(msg, op).ok();
///         }))
///         .unwrap();
///     }
///     Err(err) => eprintln!("{err}"),
/// });
/// ```
pub fn accept(
    lp: &Loop,
    stream: TcpStream,
    options: HandshakeOptions,
    done: impl FnOnce(Result<Upgraded<Request>, UpgradeError>) + 'static,
) {
    accept_shared(lp, stream, &Rc::new(options), Box::new(done));
}

/// [`accept`] with options shared by many handshakes (a listener's); the handle
/// aborts the handshake while it is in progress.
pub(crate) fn accept_shared(
    lp: &Loop,
    stream: TcpStream,
    options: &Rc<HandshakeOptions>,
    done: Box<dyn FnOnce(Result<Upgraded<Request>, UpgradeError>)>,
) -> HandshakeHandle {
    let mut parser = ServerHandshake::new(options.max_header_size);
    if options.on_request.is_some() {
        parser = parser.allow_plain();
    }
    let side = ServerSide {
        parser,
        options: options.clone(),
        peer: stream.peer_addr().ok(),
        start: Vec::new(),
    };
    #[cfg(feature = "tls")]
    let tls = match options.server_tls.as_ref().map(Session::server).transpose() {
        Ok(session) => session,
        Err(err) => {
            done(Err(tls_setup_error(err)));
            return HandshakeHandle::default();
        }
    };
    let parts = Parts {
        #[cfg(feature = "tls")]
        tls,
        ..Parts::plain(stream)
    };
    HandshakeHandle::new(Driver::start(
        lp,
        parts,
        options.timeout,
        Vec::new(),
        side,
        done,
    ))
}

/// A TLS session that could not be made (a bad server name) as an upgrade error.
#[cfg(feature = "tls")]
fn tls_setup_error(err: tls::TlsError) -> UpgradeError {
    match err {
        tls::TlsError::Rustls(err) => UpgradeError::Tls(err),
        err => UpgradeError::Io(io::Error::new(io::ErrorKind::InvalidInput, err)),
    }
}

/// Client side: sends `request` on `stream` (already connected), reads and validates
/// the server's 101 response on the loop, then calls `done`. A `wss://` request
/// ([`ClientRequest::tls_server_name`]) runs TLS first, with
/// `HandshakeOptions::client_tls` (feature `tls`; without it such a request fails
/// with [`HandshakeError::Malformed`]).
///
/// ```no_run
/// use net_websocket_ev::{ev::Loop, handshake::ClientRequest, websocket::upgrade, Client};
/// use std::net::TcpStream;
///
/// let lp = Loop::default_loop().unwrap();
/// let (request, host, port) = ClientRequest::from_url("ws://127.0.0.1:8080/chat").unwrap();
/// let stream = TcpStream::connect((host.as_str(), port)).unwrap();
/// upgrade::upgrade(&lp, stream, &request, Default::default(), |result| match result {
///     Ok(upgraded) => {
///         let ws = Client::new(upgraded.into_params()).unwrap();
///         ws.queue_msg(b"hello", net_websocket_ev::OpCode::Text).unwrap();
///     }
///     Err(err) => eprintln!("{err}"),
/// });
/// lp.run();
/// ```
pub fn upgrade(
    lp: &Loop,
    stream: TcpStream,
    request: &ClientRequest,
    options: HandshakeOptions,
    done: impl FnOnce(Result<Upgraded<Response>, UpgradeError>) + 'static,
) {
    if let Err(err) = request.validate() {
        return done(Err(UpgradeError::Handshake(err)));
    }
    #[cfg(feature = "deflate")]
    let offered;
    #[cfg(feature = "deflate")]
    let request = match &options.deflate {
        Some(deflate) => {
            let mut with_offer = request.clone();
            with_offer.offer_deflate(deflate);
            offered = with_offer;
            &offered
        }
        None => request,
    };
    let (bytes, key) = request.build();
    let parser = ClientHandshake::new(key, request.protocols.clone(), options.max_header_size);
    #[cfg(feature = "deflate")]
    let parser = match options.deflate {
        Some(deflate) => parser.with_deflate(deflate),
        None => parser,
    };
    let side = ClientSide { parser };
    let parts = match &request.tls_server_name {
        None => Parts::plain(stream),
        #[cfg(feature = "tls")]
        Some(name) => {
            let config = options.client_tls.unwrap_or_default();
            match Session::client(&config, name) {
                Ok(session) => Parts {
                    tls: Some(session),
                    ..Parts::plain(stream)
                },
                Err(err) => return done(Err(tls_setup_error(err))),
            }
        }
        #[cfg(not(feature = "tls"))]
        Some(_) => {
            let err = HandshakeError::Malformed("wss:// needs the cargo feature tls");
            return done(Err(UpgradeError::Handshake(err)));
        }
    };
    Driver::start(lp, parts, options.timeout, bytes, side, Box::new(done));
}
