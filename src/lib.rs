//! WebSocket (RFC 6455) connections on a libev event loop.
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

pub mod ev;
pub mod handshake;
pub mod proto;
