#![cfg_attr(feature = "ev", doc = include_str!("../README.md"))]
// Without the libev layers the README's examples cannot compile: the engine and the
// handshake alone.
#![cfg_attr(
    not(feature = "ev"),
    doc = "WebSocket (RFC 6455) for libev, built without its libev layers (feature `ev`): \
           the sans-IO protocol engine ([`proto`]) and the pure opening handshake \
           ([`handshake`])."
)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Without `ev`, the docs of `proto` and `handshake` still name the libev layers they serve.
#![cfg_attr(not(feature = "ev"), allow(rustdoc::broken_intra_doc_links))]
// ... and some of their crate-private helpers serve only those layers (dead code is
// still caught: by the build with `ev`, which uses everything).
#![cfg_attr(not(feature = "ev"), allow(dead_code))]

#[cfg(feature = "capi")]
#[cfg_attr(docsrs, doc(cfg(feature = "capi")))]
pub mod capi;
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
pub use websocket::listen::{Accepted, Answer, ListenParams, Listener};
#[cfg(feature = "ev")]
pub use websocket::{
    Client, CloseCause, Error, Group, Overflow, Params, PreparedMessage, Published, Server, Waited,
    WebSocket,
};
