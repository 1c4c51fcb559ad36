//! The server side: read and validate a client's Upgrade request, answer it.

use std::net::SocketAddr;

use base64::Engine as _;

use super::head::{self, HeadBuffer};
use super::{accept_key, HandshakeError, BASE64};

/// A parsed, validated client request: a WebSocket upgrade or, for a server that
/// takes them ([`ServerHandshake::allow_plain`]), a plain `GET` or `HEAD`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Request {
    /// The method: `GET` (always, for an upgrade) or `HEAD`.
    pub method: String,
    /// Whether this is a WebSocket upgrade; `false` for a plain request (no
    /// `Upgrade: websocket`), which only [`ServerHandshake::allow_plain`] lets through.
    /// A plain request has no key, protocols or extensions.
    pub upgrade: bool,
    /// The client's address, when the request came through a loop-driven accept (the
    /// pure parsers leave it `None`).
    pub peer: Option<SocketAddr>,
    /// The request target as sent: usually a path with its query (`/chat?room=1`);
    /// [`path_and_query`](Self::path_and_query) splits it.
    pub path: String,
    /// The `Host` header (empty only for a plain HTTP/1.0 request without one).
    pub host: String,
    /// The `Sec-WebSocket-Key` header: base64 of 16 bytes.
    pub key: String,
    /// The `Sec-WebSocket-Protocol` tokens, in order, over all such headers.
    pub protocols: Vec<String>,
    /// The raw `Sec-WebSocket-Extensions` values, one per header, as offered:
    /// `deflate::accept` (feature `deflate`) negotiates permessage-deflate from them.
    pub extensions: Vec<String>,
    /// All header fields, names as received, values without surrounding whitespace.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// The value of the first header called `name` (case-insensitive).
    ///
    /// ```
    /// # use net_websocket_ev::handshake::parse_request;
    /// let bytes = b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
    ///     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
    ///     Origin: http://a\r\n\r\n";
    /// let (req, _) = parse_request(bytes, 8192).unwrap().unwrap();
    /// assert_eq!(req.header("origin"), Some("http://a"));
    /// assert_eq!(req.header("Cookie"), None);
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The request target split at its first `?`: the path, and the query if there
    /// is one (neither is percent-decoded).
    ///
    /// ```
    /// # use net_websocket_ev::handshake::parse_request;
    /// let bytes = b"GET /chat?room=1&x HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\
    ///     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    ///     Sec-WebSocket-Version: 13\r\n\r\n";
    /// let (req, _) = parse_request(bytes, 8192).unwrap().unwrap();
    /// assert_eq!(req.path_and_query(), ("/chat", Some("room=1&x")));
    /// ```
    pub fn path_and_query(&self) -> (&str, Option<&str>) {
        match self.path.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (&self.path, None),
        }
    }

    /// The `Origin` header: where a browser's page came from (check it against the
    /// sites you serve: browsers let any page open a WebSocket to any server).
    ///
    /// ```
    /// # use net_websocket_ev::handshake::parse_request;
    /// let bytes = b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
    ///     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
    ///     Origin: https://example.com\r\n\r\n";
    /// let (req, _) = parse_request(bytes, 8192).unwrap().unwrap();
    /// assert_eq!(req.origin(), Some("https://example.com"));
    /// ```
    pub fn origin(&self) -> Option<&str> {
        self.header("Origin")
    }

    /// The cookies of every `Cookie` header, as `(name, value)` in order (a value
    /// in double quotes is given without them; pairs without `=` are skipped).
    ///
    /// ```
    /// # use net_websocket_ev::handshake::parse_request;
    /// let bytes = b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
    ///     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
    ///     Cookie: session=abc; theme=\"dark\"\r\n\r\n";
    /// let (req, _) = parse_request(bytes, 8192).unwrap().unwrap();
    /// assert_eq!(req.cookies().collect::<Vec<_>>(), [("session", "abc"), ("theme", "dark")]);
    /// assert_eq!(req.cookie("theme"), Some("dark"));
    /// ```
    pub fn cookies(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        head::values(&self.headers, "Cookie")
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.split_once('='))
            .map(|(name, value)| {
                let value = value.trim();
                let value = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(value);
                (name.trim(), value)
            })
            .filter(|(name, _)| !name.is_empty())
    }

    /// The value of the first cookie called `name` (case-sensitive, as cookie names
    /// are).
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// Whether `bytes` can begin a request: the method so far is a token (a TLS
    /// ClientHello on a plain port is refused at its first byte).
    fn start_ok(bytes: &[u8]) -> Result<(), HandshakeError> {
        // The first 32 bytes at most: a feed stays O(its own length).
        // (A line end is left to the parser: "empty start line".)
        let mut method = bytes
            .iter()
            .take(32)
            .take_while(|&&b| !matches!(b, b' ' | b'\r' | b'\n'));
        if method.all(|&b| head::is_tchar(b)) {
            Ok(())
        } else {
            Err(HandshakeError::Malformed("method is not a token"))
        }
    }

    /// Validates a complete head (blank line included); `plain`: a `GET` or `HEAD`
    /// without `Upgrade: websocket` is a plain request rather than an error.
    fn from_head(bytes: &[u8], plain: bool) -> Result<Request, HandshakeError> {
        let (line, headers) = head::parse(bytes)?;
        let mut parts = line.split(' ');
        let (Some(method), Some(target), Some(version), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(HandshakeError::Malformed(
                "request line is not \"METHOD target HTTP/x.y\"",
            ));
        };
        if !head::is_token(method) {
            return Err(HandshakeError::Malformed("method is not a token"));
        }
        if target.is_empty() {
            return Err(HandshakeError::Malformed("empty request target"));
        }
        if !head::is_http_version(version) {
            return Err(HandshakeError::Malformed("bad HTTP version"));
        }
        if plain && !head::list_contains(&headers, "Upgrade", "websocket") {
            return Request::plain(method, target, version, headers);
        }
        if method != "GET" {
            return Err(HandshakeError::NotGet);
        }
        if version != "HTTP/1.1" {
            return Err(HandshakeError::NotHttp11);
        }
        let host = match head::values(&headers, "Host").take(2).collect::<Vec<_>>()[..] {
            [host] if !host.is_empty() => host.to_owned(),
            [_, _] => return Err(HandshakeError::Malformed("repeated Host header")),
            _ => return Err(HandshakeError::MissingHost),
        };
        if !head::list_contains(&headers, "Upgrade", "websocket") {
            return Err(HandshakeError::MissingUpgrade);
        }
        if !head::list_contains(&headers, "Connection", "upgrade") {
            return Err(HandshakeError::MissingConnectionUpgrade);
        }
        let versions: Vec<&str> = head::values(&headers, "Sec-WebSocket-Version").collect();
        match versions.as_slice() {
            ["13"] => {}
            [] => return Err(HandshakeError::UnsupportedVersion(None)),
            _ => {
                return Err(HandshakeError::UnsupportedVersion(Some(
                    versions.join(", "),
                )))
            }
        }
        let key = head::single(&headers, "Sec-WebSocket-Key").ok_or(HandshakeError::BadKey)?;
        match BASE64.decode(key) {
            Ok(nonce) if nonce.len() == 16 => {}
            _ => return Err(HandshakeError::BadKey),
        }
        let mut protocols = Vec::new();
        for protocol in head::list_items(&headers, "Sec-WebSocket-Protocol") {
            if !head::is_token(protocol) {
                return Err(HandshakeError::Malformed("subprotocol is not a token"));
            }
            protocols.push(protocol.to_owned());
        }
        let extensions = head::values(&headers, "Sec-WebSocket-Extensions")
            .map(str::to_owned)
            .collect();
        Ok(Request {
            method: method.to_owned(),
            upgrade: true,
            peer: None,
            path: target.to_owned(),
            host,
            key: key.to_owned(),
            protocols,
            extensions,
            headers,
        })
    }

    /// A plain `GET` or `HEAD` (HTTP/1.1 with one `Host`, or HTTP/1.0).
    fn plain(
        method: &str,
        target: &str,
        version: &str,
        headers: Vec<(String, String)>,
    ) -> Result<Request, HandshakeError> {
        if method != "GET" && method != "HEAD" {
            return Err(HandshakeError::NotGet);
        }
        let hosts: Vec<&str> = head::values(&headers, "Host").take(2).collect();
        let host = match (version, &hosts[..]) {
            (_, [_, _]) => return Err(HandshakeError::Malformed("repeated Host header")),
            ("HTTP/1.1", [host]) if !host.is_empty() => host.to_string(),
            ("HTTP/1.1", _) => return Err(HandshakeError::MissingHost),
            ("HTTP/1.0", hosts) => hosts.first().map_or(String::new(), |h| h.to_string()),
            _ => return Err(HandshakeError::NotHttp11),
        };
        Ok(Request {
            method: method.to_owned(),
            upgrade: false,
            peer: None,
            path: target.to_owned(),
            host,
            key: String::new(),
            protocols: Vec::new(),
            extensions: Vec::new(),
            headers,
        })
    }
}

/// Parses a client's request from the start of `buf`.
///
/// - `Ok(None)`: the request is not complete yet; read more and call again with all
///   the bytes so far. (For feeding pieces as they arrive, see [`ServerHandshake`].)
/// - `Ok(Some((request, consumed)))`: `consumed` is the length of the request, blank
///   line included; the bytes after it belong to the WebSocket.
/// - `Err(_)`: the request is invalid, or no end of the head came within
///   `max_header_size` bytes; answer with [`error_response`] and close.
///
/// Header names are case-insensitive; lines may end in CRLF or a bare LF; obsolete
/// line folding and NUL bytes are rejected. See [`HandshakeError`] for every rule.
///
/// ```
/// use net_websocket_ev::handshake::{parse_request, DEFAULT_MAX_HEADER_SIZE};
///
/// let mut bytes = b"GET /chat HTTP/1.1\r\n\
///     Host: server.example.com\r\n\
///     Upgrade: websocket\r\n\
///     Connection: Upgrade\r\n\
///     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
///     Sec-WebSocket-Protocol: chat, superchat\r\n\
///     Sec-WebSocket-Version: 13\r\n\r\n"
///     .to_vec();
/// let head_len = bytes.len();
/// assert!(parse_request(&bytes[..10], DEFAULT_MAX_HEADER_SIZE).unwrap().is_none());
///
/// bytes.extend_from_slice(b"\x81\x85"); // the start of a first frame
/// let (req, consumed) = parse_request(&bytes, DEFAULT_MAX_HEADER_SIZE).unwrap().unwrap();
/// assert_eq!(consumed, head_len);
/// assert_eq!(req.path, "/chat");
/// assert_eq!(req.protocols, ["chat", "superchat"]);
/// ```
pub fn parse_request(
    buf: &[u8],
    max_header_size: usize,
) -> Result<Option<(Request, usize)>, HandshakeError> {
    Request::start_ok(buf)?;
    let Some(end) = head::locate(buf, 0, max_header_size)? else {
        return Ok(None);
    };
    Ok(Some((Request::from_head(&buf[..end], false)?, end)))
}

/// The `101 Switching Protocols` answer to `req`, selecting `protocol`.
///
/// `protocol` is the caller's choice and must be one of `req.protocols` (checked by a
/// debug assertion; a client fails the handshake on any other). A value that is not an
/// HTTP token could not be a valid header and is left out. No
/// `Sec-WebSocket-Extensions` is sent, so a browser that offered `permessage-deflate`
/// talks plain frames; [`response_with_extensions`] accepts extensions.
///
/// ```
/// use net_websocket_ev::handshake::{parse_request, response};
///
/// let bytes = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
///     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
///     Sec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";
/// let (req, _) = parse_request(bytes, 8192).unwrap().unwrap();
/// assert_eq!(
///     response(&req, Some("chat")),
///     b"HTTP/1.1 101 Switching Protocols\r\n\
///       Upgrade: websocket\r\n\
///       Connection: Upgrade\r\n\
///       Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
///       Sec-WebSocket-Protocol: chat\r\n\r\n"
/// );
/// ```
pub fn response(req: &Request, protocol: Option<&str>) -> Vec<u8> {
    response_with_extensions(req, protocol, None)
}

/// The `101 Switching Protocols` answer to `req`, selecting `protocol` as [`response`]
/// does and accepting `extensions`: the `Sec-WebSocket-Extensions` value, such as the
/// one `deflate::accept` returns. A value with control characters (CR, LF) could not
/// be a valid header and is left out, and so is an empty one.
///
/// ```
/// use net_websocket_ev::handshake::{parse_request, response_with_extensions};
///
/// let bytes = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
///     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
///     Sec-WebSocket-Extensions: permessage-deflate\r\nSec-WebSocket-Version: 13\r\n\r\n";
/// let (req, _) = parse_request(bytes, 8192).unwrap().unwrap();
/// assert_eq!(
///     response_with_extensions(&req, None, Some("permessage-deflate; server_no_context_takeover")),
///     b"HTTP/1.1 101 Switching Protocols\r\n\
///       Upgrade: websocket\r\n\
///       Connection: Upgrade\r\n\
///       Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
///       Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n\r\n"
/// );
/// ```
pub fn response_with_extensions(
    req: &Request,
    protocol: Option<&str>,
    extensions: Option<&str>,
) -> Vec<u8> {
    debug_assert!(
        protocol.map_or(true, |p| req.protocols.iter().any(|offered| offered == p)),
        "subprotocol {protocol:?} was not offered: {:?}",
        req.protocols
    );
    let mut out = String::with_capacity(160);
    out.push_str(
        "HTTP/1.1 101 Switching Protocols\r\n\
         Upgrade: websocket\r\n\
         Connection: Upgrade\r\n\
         Sec-WebSocket-Accept: ",
    );
    out.push_str(&accept_key(req.key.as_bytes()));
    out.push_str("\r\n");
    if let Some(protocol) = protocol.filter(|p| head::is_token(p)) {
        out.push_str("Sec-WebSocket-Protocol: ");
        out.push_str(protocol);
        out.push_str("\r\n");
    }
    if let Some(extensions) =
        extensions.filter(|e| !e.is_empty() && !e.chars().any(char::is_control))
    {
        out.push_str("Sec-WebSocket-Extensions: ");
        out.push_str(extensions);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// The answer to a request that failed with `err`: `400 Bad Request`, or for
/// [`HandshakeError::UnsupportedVersion`] `426 Upgrade Required` with
/// `Sec-WebSocket-Version: 13`; always `Connection: close` and a one-line text body
/// naming the problem. Close the connection after sending it.
///
/// ```
/// use net_websocket_ev::handshake::{error_response, HandshakeError};
///
/// let answer = error_response(&HandshakeError::UnsupportedVersion(Some("8".into())));
/// let text = String::from_utf8(answer).unwrap();
/// assert!(text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
/// assert!(text.contains("\r\nSec-WebSocket-Version: 13\r\n"));
/// assert!(text.contains("\r\nConnection: close\r\n"));
/// ```
pub fn error_response(err: &HandshakeError) -> Vec<u8> {
    // Errors only a client can have never reach a server; 400 is still a sane answer.
    let status = err.http_status().unwrap_or(400);
    let reason = match status {
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        _ => "Bad Request",
    };
    let body = format!("{err}\n");
    let mut out = format!("HTTP/1.1 {status} {reason}\r\n");
    if status == 426 {
        out.push_str("Sec-WebSocket-Version: 13\r\n");
    }
    out.push_str("Connection: close\r\nContent-Type: text/plain; charset=utf-8\r\n");
    out.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    out.into_bytes()
}

/// The server side fed piece by piece, as bytes arrive from a socket.
///
/// ```
/// use net_websocket_ev::handshake::{response, ServerHandshake, DEFAULT_MAX_HEADER_SIZE};
///
/// let mut hs = ServerHandshake::new(DEFAULT_MAX_HEADER_SIZE);
/// assert!(hs.feed(b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n").unwrap().is_none());
/// assert_eq!(hs.buffered(), 45);
/// let req = hs
///     .feed(b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
///             Sec-WebSocket-Version: 13\r\n\r\n\x81")
///     .unwrap()
///     .expect("complete");
/// assert_eq!(hs.take_leftover(), b"\x81"); // the start of the first frame
/// let answer = response(&req, None);
/// # assert!(answer.starts_with(b"HTTP/1.1 101 "));
/// ```
#[derive(Debug)]
pub struct ServerHandshake {
    buffer: HeadBuffer,
    plain: bool,
}

impl ServerHandshake {
    /// A handshake that accepts a request head of at most `max_header_size` bytes
    /// (blank line included); [`DEFAULT_MAX_HEADER_SIZE`](super::DEFAULT_MAX_HEADER_SIZE)
    /// is a good value.
    pub fn new(max_header_size: usize) -> Self {
        ServerHandshake {
            buffer: HeadBuffer::new(max_header_size),
            plain: false,
        }
    }

    /// Refuses a request with more than `count` header lines
    /// ([`HandshakeError::TooManyHeaders`], answered with 431 by [`error_response`])
    /// as soon as the line past the limit arrives. Default
    /// [`DEFAULT_MAX_HEADERS`](super::DEFAULT_MAX_HEADERS).
    ///
    /// ```
    /// use net_websocket_ev::handshake::{error_response, HandshakeError, ServerHandshake};
    ///
    /// let mut hs = ServerHandshake::new(8192).with_max_headers(2);
    /// let err = hs.feed(b"GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n").unwrap_err();
    /// assert_eq!(err, HandshakeError::TooManyHeaders { limit: 2 });
    /// assert!(error_response(&err).starts_with(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"));
    /// ```
    pub fn with_max_headers(mut self, count: usize) -> Self {
        self.buffer.set_max_headers(count);
        self
    }

    /// Also takes a plain `GET` or `HEAD` (no `Upgrade: websocket`, HTTP/1.1 or
    /// 1.0) as a [`Request`] with `upgrade == false`, for a server that answers it
    /// with an ordinary page ([`Answer::status`](super::Answer::status)). Without
    /// this, such a request is [`HandshakeError::MissingUpgrade`].
    ///
    /// ```
    /// use net_websocket_ev::handshake::{ServerHandshake, DEFAULT_MAX_HEADER_SIZE};
    ///
    /// let mut hs = ServerHandshake::new(DEFAULT_MAX_HEADER_SIZE).allow_plain();
    /// let req = hs.feed(b"GET /health HTTP/1.1\r\nHost: a\r\n\r\n").unwrap().unwrap();
    /// assert!(!req.upgrade);
    /// assert_eq!(req.path, "/health");
    /// ```
    pub fn allow_plain(mut self) -> Self {
        self.plain = true;
        self
    }

    /// Appends `data`: `Ok(None)` while the request is incomplete, `Ok(Some(request))`
    /// once it is complete and valid, then [`take_leftover`](Self::take_leftover) gives
    /// the bytes that followed it. After an error, every call returns that error again;
    /// after success, more data is added to the leftover and `Ok(None)` is returned.
    pub fn feed(&mut self, data: &[u8]) -> Result<Option<Request>, HandshakeError> {
        let plain = self.plain;
        self.buffer.feed(data, Request::start_ok, |head| {
            Request::from_head(head, plain)
        })
    }

    /// The bytes received after the request (possibly empty), once it is complete;
    /// they belong to the WebSocket. Empty before that, and after an error.
    pub fn take_leftover(&mut self) -> Vec<u8> {
        self.buffer.take_leftover()
    }

    /// How many bytes are held: of the incomplete request while reading, the leftover
    /// not yet taken once complete.
    pub fn buffered(&self) -> usize {
        self.buffer.buffered()
    }
}
