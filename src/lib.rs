//! WebSocket (RFC 6455) connections on a libev event loop, with the API of the Perl
//! module Net::WebSocket::EV.
//!
//! - [`Server`] / [`Client`] wrap a connected, handshaken socket in a [`WebSocket`]
//!   driven by one libev io watcher; [`Params`] are the Perl constructor's keys.
//! - [`websocket::upgrade`] does the opening handshake on the loop; [`handshake`] has
//!   the pure parsers and builders.
//! - [`proto`] is the sans-IO protocol engine; [`ev`] the safe libev layer.
//! - `tls` (cargo feature `tls`): `wss://` with rustls, on the same io watcher.
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

pub mod ev;
pub mod handshake;
pub mod proto;
#[cfg(feature = "tls")]
pub mod tls;
pub mod websocket;

pub use proto::{Fragment, OpCode, Rsv};
pub use websocket::listen::{Accepted, Answer, ListenParams, Listener};
pub use websocket::{Client, CloseCause, Error, Params, Server, Waited, WebSocket};
