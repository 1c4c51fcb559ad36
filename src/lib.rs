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
#![cfg_attr(docsrs, feature(doc_cfg))]
// Without `ev`, the docs of `proto` and `handshake` still name the libev layers they serve.
#![cfg_attr(not(feature = "ev"), allow(rustdoc::broken_intra_doc_links))]
// ... and some of their crate-private helpers serve only those layers (dead code is
// still caught: by the build with `ev`, which uses everything).
#![cfg_attr(not(feature = "ev"), allow(dead_code))]

#[cfg(feature = "ev")]
#[cfg_attr(docsrs, doc(cfg(feature = "ev")))]
pub mod ev;
pub mod handshake;
pub mod proto;
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub mod tls;
#[cfg(feature = "ev")]
#[cfg_attr(docsrs, doc(cfg(feature = "ev")))]
pub mod websocket;

pub use proto::{Fragment, OpCode, Rsv};
#[cfg(feature = "ev")]
pub use websocket::{Client, CloseCause, Error, Params, Server, Waited, WebSocket};
