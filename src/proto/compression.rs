//! What permessage-deflate (RFC 7692) settles on for one connection: plain data,
//! produced by the handshake's negotiation and carried out by the engine.

/// permessage-deflate as negotiated for one connection, seen from this end: how
/// we compress what we send, and how the peer compresses what we inflate.
///
/// The handshake's negotiation produces it (`handshake::deflate`, with the
/// cargo feature `deflate`); the engine takes it in
/// [`Config::compression`](super::Config::compression).
///
/// ```
/// use net_websocket_ev::proto::{Compression, Window};
///
/// // A server that resets its compressor after every message and lets the
/// // client keep its context.
/// let c = Compression {
///     send: Window { max_window_bits: 15, no_context_takeover: true },
///     recv: Window { max_window_bits: 15, no_context_takeover: false },
///     level: 1,
///     threshold: 256,
/// };
/// assert!(c.send.no_context_takeover && !c.recv.no_context_takeover);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Compression {
    /// How we compress what we send.
    pub send: Window,
    /// How the peer compresses what it sends (what we inflate).
    pub recv: Window,
    /// The deflate level for what we send, 0 (stored, no compression) to 9
    /// (smallest, slowest); values above 9 count as 9.
    pub level: u8,
    /// Data messages shorter than this many bytes are sent uncompressed (RSV1
    /// clear). Fragmented messages are always compressed.
    pub threshold: u32,
}

/// One direction of a permessage-deflate connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    /// The LZ77 window is at most `2^max_window_bits` bytes: 8 to 15. A
    /// compressor cannot use 8 (zlib's smallest raw window is 9), so the
    /// negotiation never settles on 8 for what we send; 8 from the peer is
    /// inflated with a window of 9, which reads every such stream.
    pub max_window_bits: u8,
    /// The compressor starts afresh for every message: no memory is kept
    /// between messages on either end.
    pub no_context_takeover: bool,
}

impl Window {
    /// The default window: 15 bits (32 KiB), context kept between messages.
    pub const DEFAULT: Window = Window {
        max_window_bits: 15,
        no_context_takeover: false,
    };
}
