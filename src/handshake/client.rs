//! The client side: build an Upgrade request, validate the server's answer.

use base64::Engine as _;
use rand::RngCore as _;

#[cfg(feature = "deflate")]
use super::deflate::{self, PerMessageDeflate};
use super::head::{self, HeadBuffer};
use super::{accept_key, HandshakeError, BASE64};
#[cfg(feature = "deflate")]
use crate::proto::Compression;

/// The request a client sends to open a WebSocket.
///
/// Fields are written as given by [`build`](Self::build); [`validate`](Self::validate)
/// says whether they can be (no CR, LF or other control byte anywhere: a header
/// injection otherwise), and the loop-driven
/// [`upgrade`](crate::websocket::upgrade::upgrade) refuses a request that fails it.
/// Those from [`from_url`](Self::from_url) always pass.
///
/// Non-exhaustive (fields may be added): build one with [`from_url`](Self::from_url)
/// or [`new`](Self::new) and the setters, then change the public fields as needed.
///
/// ```
/// use net_websocket_ev::handshake::ClientRequest;
///
/// let (mut request, host, port) = ClientRequest::from_url("ws://localhost:9001/chat?x=1").unwrap();
/// assert_eq!((host.as_str(), port), ("localhost", 9001));
/// request.protocols.push("chat".into());
/// request.headers.push(("Origin".into(), "http://localhost".into()));
/// let (bytes, key) = request.build();
/// let text = String::from_utf8(bytes).unwrap();
/// assert!(text.starts_with("GET /chat?x=1 HTTP/1.1\r\nHost: localhost:9001\r\n"));
/// assert!(text.contains(&format!("\r\nSec-WebSocket-Key: {key}\r\n")));
/// assert!(text.ends_with("\r\nOrigin: http://localhost\r\n\r\n"));
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ClientRequest {
    /// The `Host` header: the host, with `:port` when the port is not 80 (an IPv6
    /// address in brackets).
    pub host: String,
    /// The request target: path and query; empty means `/`.
    pub path: String,
    /// The subprotocols to offer, in order of preference; none by default.
    pub protocols: Vec<String>,
    /// Extra headers, sent after the handshake's own (which they must not repeat).
    pub headers: Vec<(String, String)>,
    /// `wss://`: the name the server's TLS certificate must carry (the URL's host,
    /// an IPv6 address without brackets), also sent as SNI; the loop-driven
    /// [`upgrade`](crate::websocket::upgrade::upgrade) then runs TLS first. `None`:
    /// plain `ws://`.
    pub tls_server_name: Option<String>,
}

impl ClientRequest {
    /// A plain `ws://` request with this `Host` header value (the host, with `:port`
    /// when the port is not 80) and request target (path and query; empty means `/`):
    /// no subprotocols, no extra headers. [`from_url`](Self::from_url) fills in both
    /// from a URL.
    ///
    /// ```
    /// use net_websocket_ev::handshake::ClientRequest;
    ///
    /// let request = ClientRequest::new("localhost:9001", "/chat")
    ///     .protocol("chat")
    ///     .header("Origin", "http://localhost");
    /// assert_eq!(request.validate(), Ok(()));
    /// let text = String::from_utf8(request.build().0).unwrap();
    /// assert!(text.starts_with("GET /chat HTTP/1.1\r\nHost: localhost:9001\r\n"));
    /// assert!(text.contains("\r\nSec-WebSocket-Protocol: chat\r\n"));
    /// ```
    pub fn new(host: impl Into<String>, path: impl Into<String>) -> ClientRequest {
        ClientRequest {
            host: host.into(),
            path: path.into(),
            ..ClientRequest::default()
        }
    }

    /// Adds `protocol` to the subprotocols offered, after those already there
    /// ([`protocols`](Self::protocols)).
    pub fn protocol(mut self, protocol: impl Into<String>) -> ClientRequest {
        self.protocols.push(protocol.into());
        self
    }

    /// Adds a header to send after the handshake's own ([`headers`](Self::headers)).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> ClientRequest {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Makes it a `wss://` request: the TLS server name to check the certificate
    /// against and to send as SNI ([`tls_server_name`](Self::tls_server_name)).
    ///
    /// ```
    /// use net_websocket_ev::handshake::ClientRequest;
    ///
    /// let request = ClientRequest::new("example.com", "/feed").tls("example.com");
    /// assert_eq!(request.tls_server_name.as_deref(), Some("example.com"));
    /// ```
    pub fn tls(mut self, server_name: impl Into<String>) -> ClientRequest {
        self.tls_server_name = Some(server_name.into());
        self
    }

    /// The request for a `ws://host[:port][/path][?query]` URL, with the host and port
    /// to connect to (an IPv6 address without its brackets; port 80 by default).
    ///
    /// `wss://` (port 443 by default) sets [`tls_server_name`](Self::tls_server_name)
    /// with the cargo feature `tls` and is refused without it. Other schemes, user
    /// information, fragments, whitespace and bad ports are refused: all as
    /// [`HandshakeError::Malformed`].
    ///
    /// ```
    /// use net_websocket_ev::handshake::{ClientRequest, HandshakeError};
    ///
    /// let (request, host, port) = ClientRequest::from_url("ws://[::1]:8080?room=2").unwrap();
    /// assert_eq!((host.as_str(), port), ("::1", 8080));
    /// assert_eq!((request.host.as_str(), request.path.as_str()), ("[::1]:8080", "/?room=2"));
    /// assert_eq!(request.tls_server_name, None);
    ///
    /// assert!(matches!(
    ///     ClientRequest::from_url("http://example.com/"),
    ///     Err(HandshakeError::Malformed(_))
    /// ));
    /// # #[cfg(feature = "tls")] {
    /// let (request, host, port) = ClientRequest::from_url("wss://example.com/feed").unwrap();
    /// assert_eq!((host.as_str(), port, request.host.as_str()), ("example.com", 443, "example.com"));
    /// assert_eq!(request.tls_server_name.as_deref(), Some("example.com"));
    /// # }
    /// ```
    pub fn from_url(url: &str) -> Result<(ClientRequest, String, u16), HandshakeError> {
        use HandshakeError::Malformed;
        if url.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(Malformed("whitespace or control character in URL"));
        }
        let (scheme, rest) = url
            .split_once("://")
            .ok_or(Malformed("URL without scheme"))?;
        let tls = scheme.eq_ignore_ascii_case("wss");
        if tls && cfg!(not(feature = "tls")) {
            return Err(Malformed("wss:// needs the cargo feature tls"));
        }
        if !tls && !scheme.eq_ignore_ascii_case("ws") {
            return Err(Malformed("URL scheme is not ws:// or wss://"));
        }
        let default_port = if tls { 443 } else { 80 };
        if rest.contains('#') {
            return Err(Malformed("fragment in WebSocket URL"));
        }
        let (authority, target) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        if authority.contains('@') {
            return Err(Malformed("user information in URL"));
        }
        let (host, port, ipv6) = match authority.strip_prefix('[') {
            Some(bracketed) => {
                let (host, after) = bracketed
                    .split_once(']')
                    .ok_or(Malformed("unclosed IPv6 address in URL"))?;
                if !host
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
                {
                    return Err(Malformed("bad IPv6 address in URL"));
                }
                let port = match after {
                    "" => None,
                    _ => Some(
                        after
                            .strip_prefix(':')
                            .ok_or(Malformed("bad port in URL"))?,
                    ),
                };
                (host, port, true)
            }
            None => match authority.split_once(':') {
                Some((host, port)) => (host, Some(port), false),
                None => (authority, None, false),
            },
        };
        if host.is_empty() {
            return Err(Malformed("URL without host"));
        }
        if host.contains(['[', ']']) {
            return Err(Malformed("bad host in URL"));
        }
        let port = match port {
            None | Some("") => default_port,
            Some(digits) if digits.bytes().all(|b| b.is_ascii_digit()) => {
                digits.parse().map_err(|_| Malformed("bad port in URL"))?
            }
            Some(_) => return Err(Malformed("bad port in URL")),
        };
        let mut host_header = if ipv6 {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        if port != default_port {
            host_header.push_str(&format!(":{port}"));
        }
        let path = match target {
            "" => "/".to_owned(),
            _ if target.starts_with('?') => format!("/{target}"),
            _ => target.to_owned(),
        };
        let request = ClientRequest {
            host: host_header,
            path,
            protocols: Vec::new(),
            headers: Vec::new(),
            tls_server_name: tls.then(|| host.to_owned()),
        };
        Ok((request, host.to_owned(), port))
    }

    /// Whether the request can be written as it is: a host and a path without
    /// control bytes or spaces, subprotocols and header names that are tokens,
    /// header values without control bytes other than tab, and none of the headers the
    /// handshake writes itself (`Host`, `Upgrade`, `Connection`, `Sec-WebSocket-Key`,
    /// `Sec-WebSocket-Version`, `Sec-WebSocket-Protocol`).
    ///
    /// ```
    /// use net_websocket_ev::handshake::{ClientRequest, HandshakeError};
    ///
    /// let (mut request, ..) = ClientRequest::from_url("ws://example.com/").unwrap();
    /// request.headers.push(("Origin".into(), "http://example.com".into()));
    /// assert_eq!(request.validate(), Ok(()));
    /// request.headers.push(("X-Id".into(), "1\r\nX-Admin: yes".into()));
    /// assert!(matches!(request.validate(), Err(HandshakeError::Malformed(_))));
    /// ```
    pub fn validate(&self) -> Result<(), HandshakeError> {
        use HandshakeError::Malformed;
        let clean = |s: &str| !s.is_empty() && !s.bytes().any(|b| b == b' ' || head::is_control(b));
        if !clean(&self.host) {
            return Err(Malformed(
                "request host is empty or has a space or control byte",
            ));
        }
        if !self.path.is_empty() && !clean(&self.path) {
            return Err(Malformed("request path has a space or control byte"));
        }
        if !self.protocols.iter().all(|p| head::is_token(p)) {
            return Err(Malformed("a subprotocol is not a token"));
        }
        const OWN: [&str; 6] = [
            "host",
            "upgrade",
            "connection",
            "sec-websocket-key",
            "sec-websocket-version",
            "sec-websocket-protocol",
        ];
        for (name, value) in &self.headers {
            let ours = |name: &str| OWN.iter().any(|own| name.eq_ignore_ascii_case(own));
            head::check_user_header(name, value, ours)?;
        }
        Ok(())
    }

    /// The request bytes, with a fresh random key (16 bytes from a CSPRNG, base64);
    /// returns the bytes and the key, which [`parse_response`] and
    /// [`ClientHandshake::new`] need to check the answer.
    pub fn build(&self) -> (Vec<u8>, String) {
        let mut nonce = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut nonce);
        let key = BASE64.encode(nonce);
        (self.build_with_key(&key), key)
    }

    /// The request bytes with the given `Sec-WebSocket-Key`, for tests and replays.
    ///
    /// ```
    /// use net_websocket_ev::handshake::ClientRequest;
    ///
    /// let request = ClientRequest::new("server.example.com", "/chat");
    /// assert_eq!(
    ///     request.build_with_key("dGhlIHNhbXBsZSBub25jZQ=="),
    ///     b"GET /chat HTTP/1.1\r\n\
    ///       Host: server.example.com\r\n\
    ///       Upgrade: websocket\r\n\
    ///       Connection: Upgrade\r\n\
    ///       Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    ///       Sec-WebSocket-Version: 13\r\n\r\n"
    /// );
    /// ```
    pub fn build_with_key(&self, key: &str) -> Vec<u8> {
        let path = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        let mut out = format!(
            "GET {path} HTTP/1.1\r\n\
             Host: {}\r\n\
             Upgrade: websocket\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\n\
             Sec-WebSocket-Version: 13\r\n",
            self.host
        );
        if !self.protocols.is_empty() {
            out.push_str("Sec-WebSocket-Protocol: ");
            out.push_str(&self.protocols.join(", "));
            out.push_str("\r\n");
        }
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str("\r\n");
        out.into_bytes()
    }

    /// Offers permessage-deflate with `opts`: adds the `Sec-WebSocket-Extensions`
    /// header of [`deflate::offer`] to [`headers`](Self::headers). Check the answer
    /// with [`ClientHandshake::with_deflate`] and the same `opts`.
    ///
    /// ```
    /// use net_websocket_ev::handshake::deflate::PerMessageDeflate;
    /// use net_websocket_ev::handshake::ClientRequest;
    ///
    /// let (mut request, _host, _port) = ClientRequest::from_url("ws://example.com/").unwrap();
    /// request.offer_deflate(&PerMessageDeflate::default());
    /// let text = String::from_utf8(request.build_with_key("dGhlIHNhbXBsZSBub25jZQ==")).unwrap();
    /// assert!(text.ends_with(
    ///     "\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; \
    ///      client_no_context_takeover; client_max_window_bits\r\n\r\n"
    /// ));
    /// ```
    #[cfg(feature = "deflate")]
    pub fn offer_deflate(&mut self, opts: &PerMessageDeflate) {
        self.headers
            .push(("Sec-WebSocket-Extensions".to_owned(), deflate::offer(opts)));
    }
}

/// A server's validated `101 Switching Protocols` answer.
///
/// Non-exhaustive (fields may be added): read its fields; only the handshake builds
/// one.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Response {
    /// The status code: always 101 once validated.
    pub status: u16,
    /// The subprotocol the server selected (one we offered), if any.
    pub protocol: Option<String>,
    /// All header fields, names as received, values without surrounding whitespace.
    pub headers: Vec<(String, String)>,
    /// permessage-deflate as the server accepted it, for
    /// [`Config::compression`](crate::proto::Config::compression); `None` when it was
    /// not offered ([`ClientHandshake::with_deflate`]) or the server declined.
    #[cfg(feature = "deflate")]
    pub compression: Option<Compression>,
}

impl Response {
    /// The value of the first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Validates a complete head (blank line included).
    /// Whether `bytes` can begin a response: a prefix of `HTTP/` so far (a TLS alert
    /// from a `wss://` port answering a plain request is refused at its first byte).
    fn start_ok(bytes: &[u8]) -> Result<(), HandshakeError> {
        if b"HTTP/".starts_with(&bytes[..bytes.len().min(5)]) {
            Ok(())
        } else {
            Err(HandshakeError::Malformed("bad HTTP version"))
        }
    }

    fn from_head(bytes: &[u8], key: &str, offer: &Offer<'_>) -> Result<Response, HandshakeError> {
        let (line, headers) = head::parse(bytes)?;
        let (version, rest) = line.split_once(' ').ok_or(HandshakeError::Malformed(
            "status line is not \"HTTP/x.y code reason\"",
        ))?;
        if !head::is_http_version(version) {
            return Err(HandshakeError::Malformed("bad HTTP version"));
        }
        let code = rest.split_once(' ').map_or(rest, |(code, _reason)| code);
        let status = match code.as_bytes() {
            [a, b, c] if [a, b, c].iter().all(|d| d.is_ascii_digit()) => {
                u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
            }
            _ => return Err(HandshakeError::Malformed("status code is not 3 digits")),
        };
        if version != "HTTP/1.1" {
            return Err(HandshakeError::NotHttp11);
        }
        if status != 101 {
            return Err(HandshakeError::BadStatus(status));
        }
        if !head::list_contains(&headers, "Upgrade", "websocket") {
            return Err(HandshakeError::MissingUpgrade);
        }
        if !head::list_contains(&headers, "Connection", "upgrade") {
            return Err(HandshakeError::MissingConnectionUpgrade);
        }
        if head::single(&headers, "Sec-WebSocket-Accept") != Some(&accept_key(key.as_bytes())) {
            return Err(HandshakeError::BadAccept);
        }
        // An empty value selects nothing (some servers send one).
        let selected: Vec<&str> = head::values(&headers, "Sec-WebSocket-Protocol")
            .filter(|value| !value.is_empty())
            .collect();
        let protocol = match selected.as_slice() {
            [] => None,
            [one] if offer.protocols.iter().any(|p| p == one) => Some((*one).to_owned()),
            _ => return Err(HandshakeError::UnrequestedProtocol(selected.join(", "))),
        };
        let answered = head::values(&headers, "Sec-WebSocket-Extensions");
        #[cfg(feature = "deflate")]
        let compression = match offer.deflate {
            Some(opts) => deflate::check_answer(answered, opts)?,
            None => refuse_extensions(answered).map(|()| None)?,
        };
        #[cfg(not(feature = "deflate"))]
        refuse_extensions(answered)?;
        Ok(Response {
            status,
            protocol,
            headers,
            #[cfg(feature = "deflate")]
            compression,
        })
    }
}

/// What the request offered: the answer may select only from it.
#[derive(Debug)]
struct Offer<'a> {
    protocols: &'a [String],
    #[cfg(feature = "deflate")]
    deflate: Option<&'a PerMessageDeflate>,
}

/// Fails on the first extension answered, when we offered none. An empty value
/// answers nothing (some servers send one).
fn refuse_extensions<'a>(
    mut answered: impl Iterator<Item = &'a str>,
) -> Result<(), HandshakeError> {
    match answered.find(|value| !value.is_empty()) {
        Some(extension) => Err(HandshakeError::UnrequestedExtension(extension.to_owned())),
        None => Ok(()),
    }
}

/// Validates a server's answer, at the start of `buf`, to a request sent with `key`
/// and `offered_protocols`.
///
/// - `Ok(None)`: the answer is not complete yet; read more and call again with all
///   the bytes so far. (For feeding pieces as they arrive, see [`ClientHandshake`].)
/// - `Ok(Some((response, consumed)))`: `consumed` is the length of the answer, blank
///   line included; the bytes after it are the server's first frames.
/// - `Err(_)`: not a valid 101 for this key ([`HandshakeError::BadStatus`] carries
///   the status of a refusal), or no end of the head within `max_header_size` bytes.
///
/// ```
/// use net_websocket_ev::handshake::{parse_response, HandshakeError};
///
/// let answer = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
///     Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
/// let key = "dGhlIHNhbXBsZSBub25jZQ==";
/// let (resp, consumed) = parse_response(answer, key, &[], 8192).unwrap().unwrap();
/// assert_eq!((resp.status, resp.protocol, consumed), (101, None, answer.len()));
///
/// let refusal = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
/// assert_eq!(parse_response(refusal, key, &[], 8192).unwrap_err(), HandshakeError::BadStatus(404));
/// ```
pub fn parse_response(
    buf: &[u8],
    key: &str,
    offered_protocols: &[String],
    max_header_size: usize,
) -> Result<Option<(Response, usize)>, HandshakeError> {
    Response::start_ok(buf)?;
    let Some(end) = head::locate(buf, 0, max_header_size)? else {
        return Ok(None);
    };
    let offer = Offer {
        protocols: offered_protocols,
        #[cfg(feature = "deflate")]
        deflate: None,
    };
    let response = Response::from_head(&buf[..end], key, &offer)?;
    Ok(Some((response, end)))
}

/// The client side fed piece by piece, as bytes arrive from a socket.
///
/// ```
/// use net_websocket_ev::handshake::{ClientHandshake, ClientRequest, DEFAULT_MAX_HEADER_SIZE};
///
/// let (request, _host, _port) = ClientRequest::from_url("ws://example.com/").unwrap();
/// let (_bytes, key) = request.build();
/// // ... send _bytes, then feed what the server answers:
/// let mut hs = ClientHandshake::new(key.clone(), Vec::new(), DEFAULT_MAX_HEADER_SIZE);
/// let accept = net_websocket_ev::handshake::accept_key(key.as_bytes());
/// let mut answer = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
///     Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").into_bytes();
/// answer.extend_from_slice(b"\x81\x00"); // the server's first frame
/// let (first, second) = answer.split_at(20);
/// assert!(hs.feed(first).unwrap().is_none());
/// let resp = hs.feed(second).unwrap().expect("complete");
/// assert_eq!(resp.status, 101);
/// assert_eq!(hs.take_leftover(), b"\x81\x00");
/// ```
#[derive(Debug)]
pub struct ClientHandshake {
    buffer: HeadBuffer,
    key: String,
    offered_protocols: Vec<String>,
    #[cfg(feature = "deflate")]
    deflate: Option<PerMessageDeflate>,
}

impl ClientHandshake {
    /// A handshake for a request sent with `key` and `offered_protocols`, accepting an
    /// answer head of at most `max_header_size` bytes (blank line included).
    pub fn new(key: String, offered_protocols: Vec<String>, max_header_size: usize) -> Self {
        ClientHandshake {
            buffer: HeadBuffer::new(max_header_size),
            key,
            offered_protocols,
            #[cfg(feature = "deflate")]
            deflate: None,
        }
    }

    /// Also accepts a permessage-deflate answer to the offer of
    /// [`ClientRequest::offer_deflate`] with the same `opts`: the response's
    /// [`compression`](Response::compression) is what the server settled on (see
    /// [`deflate::check_answer`] for what fails the handshake). Without it, any
    /// extension in the answer fails the handshake.
    ///
    /// ```
    /// use net_websocket_ev::handshake::deflate::PerMessageDeflate;
    /// use net_websocket_ev::handshake::{accept_key, ClientHandshake, ClientRequest};
    ///
    /// let opts = PerMessageDeflate::default();
    /// let (mut request, _host, _port) = ClientRequest::from_url("ws://example.com/").unwrap();
    /// request.offer_deflate(&opts);
    /// let (_bytes, key) = request.build();
    /// let mut hs = ClientHandshake::new(key.clone(), Vec::new(), 8192).with_deflate(opts);
    /// let answer = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
    ///     Connection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\
    ///     Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n\r\n",
    ///     accept_key(key.as_bytes()));
    /// let resp = hs.feed(answer.as_bytes()).unwrap().expect("complete");
    /// let compression = resp.compression.expect("accepted");
    /// assert!(compression.send.no_context_takeover && compression.recv.no_context_takeover);
    /// ```
    #[cfg(feature = "deflate")]
    pub fn with_deflate(mut self, opts: PerMessageDeflate) -> Self {
        self.deflate = Some(opts);
        self
    }

    /// Refuses an answer with more than `count` header lines
    /// ([`HandshakeError::TooManyHeaders`]) as soon as the line past the limit
    /// arrives. Default [`DEFAULT_MAX_HEADERS`](super::DEFAULT_MAX_HEADERS).
    ///
    /// ```
    /// use net_websocket_ev::handshake::{ClientHandshake, HandshakeError};
    ///
    /// let mut hs = ClientHandshake::new("dGhlIHNhbXBsZSBub25jZQ==".into(), Vec::new(), 8192)
    ///     .with_max_headers(1);
    /// let err = hs.feed(b"HTTP/1.1 101 Switching Protocols\r\nA: 1\r\nB: 2\r\n").unwrap_err();
    /// assert_eq!(err, HandshakeError::TooManyHeaders { limit: 1 });
    /// ```
    pub fn with_max_headers(mut self, count: usize) -> Self {
        self.buffer.set_max_headers(count);
        self
    }

    /// Appends `data`: `Ok(None)` while the answer is incomplete, `Ok(Some(response))`
    /// once it is complete and valid, then [`take_leftover`](Self::take_leftover) gives
    /// the bytes that followed it. After an error, every call returns that error again;
    /// after success, more data is added to the leftover and `Ok(None)` is returned.
    pub fn feed(&mut self, data: &[u8]) -> Result<Option<Response>, HandshakeError> {
        let offer = Offer {
            protocols: &self.offered_protocols,
            #[cfg(feature = "deflate")]
            deflate: self.deflate.as_ref(),
        };
        let key = &self.key;
        self.buffer.feed(data, Response::start_ok, |bytes| {
            Response::from_head(bytes, key, &offer)
        })
    }

    /// The bytes received after the answer (possibly empty), once it is complete; they
    /// are the server's first frames. Empty before that, and after an error.
    pub fn take_leftover(&mut self) -> Vec<u8> {
        self.buffer.take_leftover()
    }

    /// How many bytes are held: of the incomplete answer while reading, the leftover
    /// not yet taken once complete.
    pub fn buffered(&self) -> usize {
        self.buffer.buffered()
    }
}
