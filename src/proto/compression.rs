//! What permessage-deflate (RFC 7692) settles on for one connection: plain data,
//! produced by the handshake's negotiation and carried out by the engine.

/// permessage-deflate as negotiated for one connection, seen from this end: how
/// we compress what we send, and how the peer compresses what we inflate.
///
/// The handshake's negotiation produces it (`handshake::deflate`, with the
/// cargo feature `deflate`); the engine takes it in
/// [`Config::compression`](super::Config::compression).
///
/// Non-exhaustive (fields may be added): to make one yourself, start from
/// [`Compression::default`] and change what you need with the setters, named like
/// the fields.
///
/// ```
/// use net_websocket_ev::proto::{Compression, Window};
///
/// // A server that resets its compressor after every message and lets the
/// // client keep its context.
/// let c = Compression::default()
///     .send(Window::DEFAULT.no_context_takeover(true))
///     .recv(Window::DEFAULT)
///     .threshold(256);
/// assert!(c.send.no_context_takeover && !c.recv.no_context_takeover);
/// assert_eq!((c.level, c.threshold), (1, 256));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
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

impl Compression {
    /// Sets [`send`](Compression#structfield.send): how we compress what we send.
    ///
    /// ```
    /// use net_websocket_ev::proto::{Compression, Window};
    ///
    /// let c = Compression::default().send(Window::DEFAULT.max_window_bits(10));
    /// assert_eq!(c.send.max_window_bits, 10);
    /// ```
    pub const fn send(mut self, window: Window) -> Compression {
        self.send = window;
        self
    }

    /// Sets [`recv`](Compression#structfield.recv): how the peer compresses what it
    /// sends.
    ///
    /// ```
    /// use net_websocket_ev::proto::{Compression, Window};
    ///
    /// let c = Compression::default().recv(Window::DEFAULT.no_context_takeover(true));
    /// assert!(c.recv.no_context_takeover);
    /// ```
    pub const fn recv(mut self, window: Window) -> Compression {
        self.recv = window;
        self
    }

    /// Sets [`level`](Compression#structfield.level): the deflate level for what we
    /// send, 0 to 9.
    ///
    /// ```
    /// use net_websocket_ev::proto::Compression;
    ///
    /// let c = Compression::default().level(9); // smallest output, most CPU
    /// assert_eq!(c.level, 9);
    /// ```
    pub const fn level(mut self, level: u8) -> Compression {
        self.level = level;
        self
    }

    /// Sets [`threshold`](Compression#structfield.threshold): data messages
    /// shorter than this many bytes are sent uncompressed.
    ///
    /// ```
    /// use net_websocket_ev::proto::Compression;
    ///
    /// let c = Compression::default().threshold(0); // compress every message
    /// assert_eq!(c.threshold, 0);
    /// ```
    pub const fn threshold(mut self, bytes: u32) -> Compression {
        self.threshold = bytes;
        self
    }
}

impl Default for Compression {
    /// What a bare `permessage-deflate` offer and answer agree on (RFC 7692's
    /// defaults): 15-bit windows with context kept, both ways; level 1 and
    /// threshold 128, as `handshake::deflate::PerMessageDeflate`'s defaults.
    ///
    /// ```
    /// use net_websocket_ev::proto::{Compression, Window};
    ///
    /// let c = Compression::default();
    /// assert_eq!((c.send, c.recv), (Window::DEFAULT, Window::DEFAULT));
    /// assert_eq!((c.level, c.threshold), (1, 128));
    /// ```
    fn default() -> Compression {
        Compression {
            send: Window::DEFAULT,
            recv: Window::DEFAULT,
            level: 1,
            threshold: 128,
        }
    }
}

/// One direction of a permessage-deflate connection.
///
/// Non-exhaustive (fields may be added): start from [`Window::DEFAULT`] and change
/// what you need with the setters, named like the fields.
///
/// ```
/// use net_websocket_ev::proto::Window;
///
/// const SMALL: Window = Window::DEFAULT.max_window_bits(10).no_context_takeover(true);
/// assert_eq!((SMALL.max_window_bits, SMALL.no_context_takeover), (10, true));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
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

    /// Sets [`max_window_bits`](Window#structfield.max_window_bits): the window is
    /// at most `2^bits` bytes, 8 to 15.
    ///
    /// ```
    /// use net_websocket_ev::proto::Window;
    ///
    /// let w = Window::DEFAULT.max_window_bits(12); // a 4 KiB window
    /// assert_eq!(w.max_window_bits, 12);
    /// ```
    pub const fn max_window_bits(mut self, bits: u8) -> Window {
        self.max_window_bits = bits;
        self
    }

    /// Sets [`no_context_takeover`](Window#structfield.no_context_takeover): the
    /// compressor starts afresh for every message.
    ///
    /// ```
    /// use net_websocket_ev::proto::Window;
    ///
    /// let w = Window::DEFAULT.no_context_takeover(true);
    /// assert!(w.no_context_takeover);
    /// ```
    pub const fn no_context_takeover(mut self, on: bool) -> Window {
        self.no_context_takeover = on;
        self
    }
}

impl Default for Window {
    /// [`Window::DEFAULT`].
    ///
    /// ```
    /// use net_websocket_ev::proto::Window;
    ///
    /// assert_eq!(Window::default(), Window::DEFAULT);
    /// ```
    fn default() -> Window {
        Window::DEFAULT
    }
}
