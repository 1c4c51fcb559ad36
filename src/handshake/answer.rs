//! [`Answer`]: what a server says to a request: accept the upgrade (a subprotocol,
//! headers such as `Set-Cookie`), refuse it, or answer a plain GET with a page.

use super::head;
use super::server::{response_with_extensions, Request};
use super::HandshakeError;

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
