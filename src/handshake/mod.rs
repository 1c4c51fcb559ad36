//! The WebSocket opening handshake (RFC 6455 §4): an HTTP/1.1 Upgrade request and its
//! `101 Switching Protocols` answer, for both sides.
//!
//! This module is pure: bytes in, bytes out. It never touches a socket, a loop or a
//! clock, so it works with any I/O; the loop-driven helpers are built on top of it.
//!
//! - Server side: [`parse_request`] (or the incremental [`ServerHandshake`]) reads and
//!   validates a client's request, [`response`] writes the 101 answer and
//!   [`error_response`] the 400 / 426 answer to a bad request.
//! - Client side: [`ClientRequest`] builds the request, [`parse_response`] (or the
//!   incremental [`ClientHandshake`]) validates the server's answer.
//! - permessage-deflate (feature `deflate`): the `deflate` module negotiates it; the
//!   server answers with [`response_with_extensions`], the client offers it with
//!   `ClientRequest::offer_deflate` and checks the answer with
//!   `ClientHandshake::with_deflate`.
//!
//! Bytes that follow the head in the same read belong to the WebSocket; both sides
//! report exactly where the head ended so that none of them is lost.
//!
//! ```
//! use net_websocket_ev::handshake::{self, ClientRequest, ClientHandshake, ServerHandshake};
//!
//! // Client: build the request.
//! let (request, _host, _port) = ClientRequest::from_url("ws://example.com/chat").unwrap();
//! let (bytes, key) = request.build();
//!
//! // Server: read it (here in one piece), answer 101.
//! let mut server = ServerHandshake::new(handshake::DEFAULT_MAX_HEADER_SIZE);
//! let req = server.feed(&bytes).unwrap().expect("complete request");
//! assert_eq!(req.path, "/chat");
//! let answer = handshake::response(&req, None);
//!
//! // Client: validate the answer; a frame sent right behind it is kept.
//! let mut client = ClientHandshake::new(key, Vec::new(), handshake::DEFAULT_MAX_HEADER_SIZE);
//! let mut input = answer.clone();
//! input.extend_from_slice(b"\x81\x02hi");
//! let resp = client.feed(&input).unwrap().expect("complete response");
//! assert_eq!(resp.status, 101);
//! assert_eq!(client.take_leftover(), b"\x81\x02hi");
//! ```

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use sha1::{Digest, Sha1};

mod answer;
mod client;
#[cfg(feature = "deflate")]
pub mod deflate;
mod head;
mod server;

#[cfg(feature = "ev")]
pub(crate) use answer::internal_error_response;
pub use answer::Answer;
pub use client::{parse_response, ClientHandshake, ClientRequest, Response};
pub use server::{
    error_response, parse_request, response, response_with_extensions, Request, ServerHandshake,
};

/// The GUID that RFC 6455 §1.3 appends to the client's key to compute the accept key.
pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Default limit on the size of a request or response head, blank line included.
pub const DEFAULT_MAX_HEADER_SIZE: usize = 8192;

/// Default limit on the number of header lines of a request or response head (the
/// start line not counted): 100, as Apache's `LimitRequestFields` and hyper's
/// parser. A browser sends about 15. [`ServerHandshake::with_max_headers`] and
/// [`ClientHandshake::with_max_headers`] change it; [`parse_request`] and
/// [`parse_response`] use it.
pub const DEFAULT_MAX_HEADERS: usize = 100;

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key`: base64(sha1(key + GUID)).
///
/// ```
/// use net_websocket_ev::handshake::accept_key;
///
/// // The example of RFC 6455 §1.3.
/// assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn accept_key(key: &[u8]) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(GUID.as_bytes());
    BASE64.encode(sha1.finalize())
}

/// Why a handshake failed: the rule that the request or response broke.
///
/// On the server side, [`http_status`](Self::http_status) gives the status to answer
/// with and [`error_response`] the whole answer.
///
/// Non-exhaustive: new checks may add variants (match with a `_` arm).
///
/// ```
/// use net_websocket_ev::handshake::HandshakeError;
///
/// let err = HandshakeError::BadStatus(404);
/// assert_eq!(
///     err.to_string(),
///     "the server answered status 404, not 101: check the URL's path and the request's \
///      headers (Origin, subprotocols)"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    /// No end of the head (an empty line) within `limit` bytes.
    HeaderTooLarge {
        /// The limit in bytes, blank line included.
        limit: usize,
    },
    /// A bad request line or status line, a bad header line (obsolete line folding,
    /// NUL or other control bytes, no colon, a name that is not a token), a repeated
    /// header that must appear once, or a bad URL. The text names the problem.
    Malformed(&'static str),
    /// The request method is not `GET`.
    NotGet,
    /// The HTTP version is not `HTTP/1.1`.
    NotHttp11,
    /// The request has no (or an empty) `Host` header.
    MissingHost,
    /// `Upgrade` is missing or does not list the token `websocket`.
    MissingUpgrade,
    /// `Connection` is missing or does not list the token `upgrade`.
    MissingConnectionUpgrade,
    /// `Sec-WebSocket-Version` is missing (`None`) or not `13`; the server answers
    /// 426 with `Sec-WebSocket-Version: 13`.
    UnsupportedVersion(Option<String>),
    /// `Sec-WebSocket-Key` is missing, repeated, or not the base64 of exactly 16 bytes.
    BadKey,
    /// Client: the response status is not 101.
    BadStatus(u16),
    /// Client: `Sec-WebSocket-Accept` is missing, repeated or wrong for our key.
    BadAccept,
    /// Client: the server selected a subprotocol that we did not offer.
    UnrequestedProtocol(String),
    /// Client: the server answered with an extension that we did not offer (any
    /// extension when we offered none).
    UnrequestedExtension(String),
    /// Client: the server's permessage-deflate answer breaks RFC 7692 or settles on
    /// what we cannot do. The text names the problem.
    BadExtension(String),
    /// More than `limit` header lines ([`DEFAULT_MAX_HEADERS`] unless set with
    /// `with_max_headers`); a server answers 431.
    TooManyHeaders {
        /// The most header lines allowed.
        limit: usize,
    },
}

impl HandshakeError {
    /// The HTTP status a server answers this error with: 426 for
    /// [`UnsupportedVersion`](Self::UnsupportedVersion), 400 for the other errors a
    /// request can have (including `HeaderTooLarge` and `Malformed`, which can also
    /// happen to a client), `None` for the errors only a response can have.
    ///
    /// ```
    /// use net_websocket_ev::handshake::HandshakeError;
    ///
    /// assert_eq!(HandshakeError::NotGet.http_status(), Some(400));
    /// assert_eq!(HandshakeError::UnsupportedVersion(None).http_status(), Some(426));
    /// assert_eq!(HandshakeError::BadAccept.http_status(), None);
    /// ```
    pub fn http_status(&self) -> Option<u16> {
        match self {
            HandshakeError::UnsupportedVersion(_) => Some(426),
            HandshakeError::TooManyHeaders { .. } => Some(431),
            HandshakeError::HeaderTooLarge { .. }
            | HandshakeError::Malformed(_)
            | HandshakeError::NotGet
            | HandshakeError::NotHttp11
            | HandshakeError::MissingHost
            | HandshakeError::MissingUpgrade
            | HandshakeError::MissingConnectionUpgrade
            | HandshakeError::BadKey => Some(400),
            HandshakeError::BadStatus(_)
            | HandshakeError::BadAccept
            | HandshakeError::UnrequestedProtocol(_)
            | HandshakeError::UnrequestedExtension(_)
            | HandshakeError::BadExtension(_) => None,
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::HeaderTooLarge { limit } => write!(
                f,
                "handshake head not complete within {limit} bytes: raise max_header_size \
                 if the peer is trusted"
            ),
            HandshakeError::Malformed(what) => write!(f, "malformed handshake: {what}"),
            HandshakeError::NotGet => f.write_str("request method is not GET"),
            HandshakeError::NotHttp11 => f.write_str("HTTP version is not HTTP/1.1"),
            HandshakeError::MissingHost => f.write_str("request without a Host header"),
            HandshakeError::MissingUpgrade => {
                f.write_str("no \"Upgrade: websocket\" header: not a WebSocket handshake")
            }
            HandshakeError::MissingConnectionUpgrade => {
                f.write_str("no \"Connection: Upgrade\" header: not a WebSocket handshake")
            }
            HandshakeError::UnsupportedVersion(None) => {
                f.write_str("no Sec-WebSocket-Version header (version 13 is supported)")
            }
            HandshakeError::UnsupportedVersion(Some(version)) => write!(
                f,
                "unsupported Sec-WebSocket-Version {version:?} (version 13 is supported)"
            ),
            HandshakeError::BadKey => {
                f.write_str("Sec-WebSocket-Key missing, repeated, or not the base64 of 16 bytes")
            }
            HandshakeError::BadStatus(status) => write!(
                f,
                "the server answered status {status}, not 101: check the URL's path and the \
                 request's headers (Origin, subprotocols)"
            ),
            HandshakeError::BadAccept => f.write_str(
                "Sec-WebSocket-Accept missing or wrong for our key: the server (or a proxy \
                 on the way) does not speak RFC 6455",
            ),
            HandshakeError::UnrequestedProtocol(protocol) => write!(
                f,
                "the server selected subprotocol {protocol:?}, which the request did not offer"
            ),
            HandshakeError::UnrequestedExtension(extension) => write!(
                f,
                "the server answered with extension {extension:?}, which the request did not \
                 offer"
            ),
            HandshakeError::BadExtension(what) => {
                write!(f, "bad Sec-WebSocket-Extensions answer: {what}")
            }
            HandshakeError::TooManyHeaders { limit } => {
                write!(f, "more than {limit} header lines")
            }
        }
    }
}

impl std::error::Error for HandshakeError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6455_example_key() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn statuses() {
        assert_eq!(
            HandshakeError::HeaderTooLarge { limit: 1 }.http_status(),
            Some(400)
        );
        assert_eq!(
            HandshakeError::UnsupportedVersion(Some("8".into())).http_status(),
            Some(426)
        );
        assert_eq!(HandshakeError::BadStatus(404).http_status(), None);
    }
}
