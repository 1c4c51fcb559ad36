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

/// A server's answer to a [`Request`], as a request hook decides it: accept the
/// upgrade ([`Answer::accept`], `101 Switching Protocols`, optionally choosing a
/// subprotocol and adding headers such as `Set-Cookie`), or answer with an ordinary
/// HTTP response ([`Answer::status`]: a refusal such as 403, or the page for a plain
/// `GET`), after which the connection is closed.
///
/// Headers given by the user are checked when the answer is written
/// ([`to_bytes`](Self::to_bytes)): a name that is not a token, a value with CR, LF
/// or another control byte, or a header the server writes itself (`Connection`,
/// `Content-Length`, `Transfer-Encoding`, `Upgrade`, the `Sec-WebSocket-*` of a 101)
/// is an error, never an injected header.
///
/// ```
/// use net_websocket_ev::handshake::{parse_request, Answer};
///
/// let bytes = b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
///     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
///     Sec-WebSocket-Protocol: chat\r\n\r\n";
/// let (req, _) = parse_request(bytes, 8192).unwrap().unwrap();
///
/// let yes = Answer::accept().protocol("chat").header("Set-Cookie", "id=1; HttpOnly");
/// let text = String::from_utf8(yes.to_bytes(&req, None).unwrap()).unwrap();
/// assert!(text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
/// assert!(text.contains("\r\nSec-WebSocket-Protocol: chat\r\nSet-Cookie: id=1; HttpOnly\r\n\r\n"));
///
/// let no = Answer::status(403).body("not here\n");
/// let text = String::from_utf8(no.to_bytes(&req, None).unwrap()).unwrap();
/// assert!(text.starts_with("HTTP/1.1 403 Forbidden\r\n"));
/// assert!(text.ends_with("Content-Length: 9\r\n\r\nnot here\n"));
///
/// let injected = Answer::accept().header("X-A", "1\r\nX-B: 2");
/// assert!(injected.to_bytes(&req, None).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// 101 to accept, else the status of an ordinary response.
    status: u16,
    protocol: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    /// Accepts the upgrade: `101 Switching Protocols`. (To a plain request, which
    /// cannot be upgraded, the server answers as without a hook.)
    pub fn accept() -> Answer {
        Answer::status(101)
    }

    /// An ordinary HTTP response with this status (200 to 599; 101 is
    /// [`accept`](Self::accept)), `Connection:
    /// close`, a `Content-Length` and the [`body`](Self::body); the connection is
    /// closed once it is written. A body without a `Content-Type` header is sent
    /// as `text/plain; charset=utf-8`.
    ///
    /// ```
    /// use net_websocket_ev::handshake::Answer;
    /// let not_found = Answer::status(404).body("no such room\n");
    /// assert_eq!(not_found.status_code(), 404);
    /// assert!(!not_found.is_accept());
    /// ```
    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            protocol: None,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Accept only: the subprotocol chosen, which must be one the client offered.
    ///
    /// ```
    /// use net_websocket_ev::handshake::Answer;
    /// let answer = Answer::accept().protocol("graphql-ws");
    /// assert_eq!(answer.chosen_protocol(), Some("graphql-ws"));
    /// ```
    pub fn protocol(mut self, protocol: impl Into<String>) -> Answer {
        self.protocol = Some(protocol.into());
        self
    }

    /// Adds a response header (repeat the call for several, such as two
    /// `Set-Cookie`).
    ///
    /// ```
    /// use net_websocket_ev::handshake::Answer;
    /// let answer = Answer::accept().header("Set-Cookie", "a=1").header("Set-Cookie", "b=2");
    /// # let _ = answer;
    /// ```
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Answer {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The body of an ordinary response (an accept has none).
    ///
    /// ```
    /// use net_websocket_ev::handshake::Answer;
    /// let page = Answer::status(200).header("Content-Type", "text/html").body("<h1>hi</h1>");
    /// # let _ = page;
    /// ```
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Answer {
        self.body = body.into();
        self
    }

    /// Whether this accepts the upgrade.
    pub fn is_accept(&self) -> bool {
        self.status == 101
    }

    /// The status: 101 for an accept.
    pub fn status_code(&self) -> u16 {
        self.status
    }

    /// The subprotocol chosen, if any.
    pub fn chosen_protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The answer's bytes for `req`; `extensions` is the `Sec-WebSocket-Extensions`
    /// value of an accept (what `deflate::accept` agreed), if any. An error (nothing
    /// is to be sent) for a header that could inject others or repeats one the server
    /// writes, a subprotocol the client did not offer, a status outside 200..=599
    /// (other than an accept's 101), a body on an accept or on a 204 / 304, and
    /// [`HandshakeError::MissingUpgrade`] for an accept of a plain request. The body
    /// of an answer to `HEAD` is left out (its `Content-Length` stays).
    ///
    /// ```
    /// use net_websocket_ev::handshake::{Answer, ServerHandshake};
    ///
    /// let mut hs = ServerHandshake::new(8192).allow_plain();
    /// let req = hs.feed(b"HEAD /health HTTP/1.1\r\nHost: a\r\n\r\n").unwrap().unwrap();
    /// let bytes = Answer::status(200).body("ok").to_bytes(&req, None).unwrap();
    /// assert!(bytes.ends_with(b"Content-Length: 2\r\n\r\n")); // HEAD: no body
    /// assert!(Answer::status(700).to_bytes(&req, None).is_err());
    /// assert!(Answer::status(200).header("Content-Length", "1").to_bytes(&req, None).is_err());
    /// ```
    pub fn to_bytes(
        &self,
        req: &Request,
        extensions: Option<&str>,
    ) -> Result<Vec<u8>, HandshakeError> {
        const ALWAYS_OURS: [&str; 4] = [
            "connection",
            "content-length",
            "transfer-encoding",
            "upgrade",
        ];
        const OURS_IN_101: [&str; 3] = [
            "sec-websocket-accept",
            "sec-websocket-protocol",
            "sec-websocket-extensions",
        ];
        for (name, value) in &self.headers {
            let ours = |name: &str| {
                let listed = |list: &[&str]| list.iter().any(|own| name.eq_ignore_ascii_case(own));
                listed(&ALWAYS_OURS) || (self.is_accept() && listed(&OURS_IN_101))
            };
            head::check_user_header(name, value, ours)?;
        }
        if self.is_accept() {
            self.accept_bytes(req, extensions)
        } else {
            self.response_bytes(req)
        }
    }

    fn accept_bytes(
        &self,
        req: &Request,
        extensions: Option<&str>,
    ) -> Result<Vec<u8>, HandshakeError> {
        if !req.upgrade {
            return Err(HandshakeError::MissingUpgrade);
        }
        if !self.body.is_empty() {
            return Err(HandshakeError::Malformed("an accepted upgrade has no body"));
        }
        if let Some(protocol) = &self.protocol {
            if !req.protocols.iter().any(|offered| offered == protocol) {
                return Err(HandshakeError::Malformed(
                    "the answer's subprotocol was not offered",
                ));
            }
        }
        let mut out = response_with_extensions(req, self.protocol.as_deref(), extensions);
        out.truncate(out.len() - 2); // the blank line, written after our headers
        for (name, value) in &self.headers {
            push_header(&mut out, name, value);
        }
        out.extend_from_slice(b"\r\n");
        Ok(out)
    }

    fn response_bytes(&self, req: &Request) -> Result<Vec<u8>, HandshakeError> {
        if !(200..=599).contains(&self.status) {
            return Err(HandshakeError::Malformed(
                "an answer's status must be 200 to 599 (Answer::accept() upgrades)",
            ));
        }
        if self.protocol.is_some() {
            return Err(HandshakeError::Malformed(
                "only an accept chooses a subprotocol",
            ));
        }
        let bodiless = matches!(self.status, 204 | 304);
        if bodiless && !self.body.is_empty() {
            return Err(HandshakeError::Malformed("a 204 or 304 answer has no body"));
        }
        let mut out = format!(
            "HTTP/1.1 {} {}\r\n",
            self.status,
            reason_phrase(self.status)
        )
        .into_bytes();
        for (name, value) in &self.headers {
            push_header(&mut out, name, value);
        }
        let typed = self
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("Content-Type"));
        if !self.body.is_empty() && !typed {
            push_header(&mut out, "Content-Type", "text/plain; charset=utf-8");
        }
        push_header(&mut out, "Connection", "close");
        if !bodiless {
            push_header(&mut out, "Content-Length", &self.body.len().to_string());
        }
        out.extend_from_slice(b"\r\n");
        if req.method != "HEAD" {
            out.extend_from_slice(&self.body);
        }
        Ok(out)
    }
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The reason phrase of common statuses (any text is valid HTTP; clients ignore it).
fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => match status / 100 {
            2 => "Success",
            3 => "Redirection",
            4 => "Client Error",
            _ => "Server Error",
        },
    }
}

/// The answer when a request hook's [`Answer`] could not be written (an invalid
/// header): `500 Internal Server Error`, nothing of the user's.
pub(crate) fn internal_error_response() -> Vec<u8> {
    let body = "the server's answer was invalid\n";
    format!(
        "HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
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
    /// with an ordinary page ([`Answer::status`]). Without this, such a request is
    /// [`HandshakeError::MissingUpgrade`].
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
