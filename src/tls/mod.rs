//! TLS for `wss://` (cargo feature `tls`): what a server or a client needs to run the
//! TLS handshake before the WebSocket one, with [rustls] (re-exported, for configs of
//! one's own).
//!
//! rustls is sans-IO: the connection's own io watcher drives it, so a TLS connection
//! costs no thread and no second watcher, and every method and callback of
//! [`WebSocket`](crate::WebSocket) works as without TLS. The loop-driven handshake
//! ([`upgrade::accept`](crate::websocket::upgrade::accept) with
//! [`HandshakeOptions::server_tls`](crate::websocket::upgrade::HandshakeOptions::server_tls),
//! [`upgrade::upgrade`](crate::websocket::upgrade::upgrade) with a `wss://` request)
//! runs the TLS handshake first, within the handshake timeout, and hands the
//! [`Session`] over with the socket ([`Upgraded::tls`](crate::websocket::upgrade::Upgraded::tls)).
//!
//! A TLS failure on an open connection (a bad record, a fatal alert) ends it at once:
//! `on_close` gets 1015 (RFC 6455 reserves the code for exactly this report) and
//! [`WebSocket::close_cause`](crate::WebSocket::close_cause) is
//! [`CloseCause::Tls`](crate::CloseCause::Tls) with rustls's error. At the end of a
//! connection we send `close_notify`; the peer's `close_notify` reads as the end of
//! its data, and so does a TCP end without one (the WebSocket close frames already
//! tell a complete conversation from a cut one).
//!
//! ```no_run
//! use net_websocket_ev::tls::{ClientTls, ServerTls};
//!
//! // A server: certificate chain and key from PEM files.
//! let server = ServerTls::from_pem_files("cert.pem", "key.pem")?;
//! // A client: the built-in Mozilla roots plus a CA of one's own.
//! let client = ClientTls::builder().ca_pem_file("my-ca.pem")?.build()?;
//! # Ok::<(), net_websocket_ev::tls::TlsError>(())
//! ```

mod config;
mod session;

pub use config::{ClientTls, ClientTlsBuilder, Roots, ServerTls, ServerTlsBuilder, TlsError};
pub use rustls;
pub use session::{Session, TlsInfo};

pub(crate) use session::tls_error;
