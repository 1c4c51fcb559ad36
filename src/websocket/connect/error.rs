//! [`ConnectError`]: why [`connect`](super::connect) failed.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::SocketAddr;

use crate::handshake::HandshakeError;
use crate::websocket::upgrade::UpgradeError;

/// Why [`connect`](super::connect) failed. Its [`source`](StdError::source) has the cause, which
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
    /// is invalid ([`ClientRequest::validate`](crate::handshake::ClientRequest::validate)).
    Request(HandshakeError),
    /// The proxy URL, from the options or the environment, cannot be used.
    ProxyUrl {
        /// The URL, its user information (a password) replaced by `***`.
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
