#![doc = include_str!("../README.md")]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

#[cfg(feature = "capi")]
pub mod capi;
pub mod ev;
pub mod handshake;
pub mod proto;
#[cfg(feature = "tls")]
pub mod tls;
pub mod websocket;

pub use proto::{Fragment, OpCode, Rsv};
pub use websocket::{Client, CloseCause, Error, Params, Server, Waited, WebSocket};
