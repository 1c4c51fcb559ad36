//! The sans-IO WebSocket engine (RFC 6455), in the style of wslay's event API.
//!
//! No fds, no clocks: bytes come in through [`std::io::Read`] (or a slice), go out
//! through [`std::io::Write`], and everything the peer does is reported to a
//! [`Handler`]. The engine is split in two halves so that an object layer can keep
//! them in two separate cells and let user callbacks, run from receive events,
//! queue replies re-entrantly:
//!
//! - [`Receiver`]: frame decoder, message assembly, UTF-8 check, limits, close
//!   parsing. It never touches the send queue; what must be sent in answer (a pong,
//!   a close reply, a failure close) is reported to a [`ReplySink`].
//! - [`Sender`]: the send queue, framing, masking, close state, fragmented messages.
//! - [`Engine`]: both halves glued together, like a wslay event context, for
//!   standalone use.
#![forbid(unsafe_code)]

mod compression;
mod decoder;
mod deflate;
mod encoder;
mod engine;
mod error;
mod frame;
mod mask;
mod pool;
mod receiver;
mod sender;
mod shared;
mod utf8;

pub use compression::{Compression, Window};
pub use engine::Engine;
pub use error::{Error, ProtocolError};
pub use mask::apply_mask;
pub use receiver::Receiver;
pub use sender::Sender;
pub use shared::SharedMessage;
pub use utf8::Utf8Validator;

/// The source of a client's mask keys: fills the 4 bytes of one frame's key. `Send`,
/// so an [`Engine`] can move to another thread.
pub type MaskSource = Box<dyn FnMut(&mut [u8; 4]) + Send>;

/// A fragmented-message producer: fills a prefix of the buffer it is given. `Send`,
/// so an [`Engine`] can move to another thread.
pub type Producer = Box<dyn FnMut(&mut [u8]) -> Fragment + Send>;

/// Which end of the connection this engine is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Expects masked frames from the peer, sends unmasked frames.
    Server,
    /// Expects unmasked frames from the peer, masks every frame it sends.
    Client,
}

/// A frame opcode (RFC 6455, section 5.2). Reserved opcodes have no variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum OpCode {
    /// A continuation frame of a fragmented message.
    Continuation = 0,
    /// A text (UTF-8) message.
    Text = 1,
    /// A binary message.
    Binary = 2,
    /// A close frame.
    Close = 8,
    /// A ping frame.
    Ping = 9,
    /// A pong frame.
    Pong = 10,
}

impl OpCode {
    /// The opcode for a 4-bit value, `None` for reserved values.
    ///
    /// ```
    /// use net_websocket_ev::proto::OpCode;
    /// assert_eq!(OpCode::from_u8(9), Some(OpCode::Ping));
    /// assert_eq!(OpCode::from_u8(3), None);
    /// ```
    pub fn from_u8(v: u8) -> Option<OpCode> {
        match v {
            0 => Some(OpCode::Continuation),
            1 => Some(OpCode::Text),
            2 => Some(OpCode::Binary),
            8 => Some(OpCode::Close),
            9 => Some(OpCode::Ping),
            10 => Some(OpCode::Pong),
            _ => None,
        }
    }

    /// Whether this is a control opcode (close, ping, pong).
    ///
    /// ```
    /// use net_websocket_ev::OpCode;
    /// assert!(OpCode::Ping.is_control());
    /// assert!(!OpCode::Text.is_control());
    /// ```
    pub fn is_control(self) -> bool {
        self.as_u8() & 0x8 != 0
    }

    /// The 4-bit wire value.
    ///
    /// ```
    /// use net_websocket_ev::OpCode;
    /// assert_eq!(OpCode::Binary.as_u8(), 2);
    /// assert_eq!(OpCode::from_u8(OpCode::Pong.as_u8()), Some(OpCode::Pong));
    /// ```
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

bitflags::bitflags! {
    /// The reserved header bits of a frame, with wslay's values (header bits 6..4
    /// shifted down by 4).
    ///
    /// ```
    /// use net_websocket_ev::Rsv;
    /// let bits = Rsv::RSV1 | Rsv::RSV3;
    /// assert!(bits.contains(Rsv::RSV1) && !bits.contains(Rsv::RSV2));
    /// assert_eq!(bits.bits(), 0b101); // Perl's $rsv
    /// // An extension of your own that sets RSV2: Params::new(fh).allowed_rsv(Rsv::RSV2)
    /// ```
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct Rsv: u8 {
        /// RSV1 (used by permessage-deflate).
        const RSV1 = 0b100;
        /// RSV2.
        const RSV2 = 0b010;
        /// RSV3.
        const RSV3 = 0b001;
    }
}

/// Configuration shared by the [`Receiver`] and the [`Sender`].
///
/// Non-exhaustive (fields may be added): start from [`Config::default`] and change
/// what you need with the setters, named like the fields; the fields stay readable
/// and writable.
///
/// ```
/// use net_websocket_ev::proto::{Config, Receiver, Role, Sender};
///
/// let config = Config::default()
///     .max_recv_size(1 << 20)
///     .max_fragments(Some(1024));
/// assert!(config.buffering && config.max_recv_size == 1 << 20);
/// let receiver = Receiver::new(Role::Server, &config);
/// let sender = Sender::new(Role::Server, &config);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Assemble messages (default `true`). When `false`, data message events carry
    /// empty data (the payload comes through frame chunks) and `max_recv_size`
    /// applies to each frame.
    pub buffering: bool,
    /// The largest message (buffering) or frame (no buffering) accepted; larger
    /// ones are refused with close 1009, decided from the frame header. Default
    /// 64 MiB (`64 << 20`): with buffering, what one connection can make us hold
    /// for a message being assembled. wslay's and the Perl module's 2^31 - 1
    /// would let one peer pin 2 GiB; set it for compatibility if you must.
    pub max_recv_size: u64,
    /// RSV bits the peer may set, on the first frame of data messages only
    /// (extensions). Default empty. RSV1 set on a text message turns its UTF-8
    /// check off (the extension owns the payload).
    pub allowed_rsv: Rsv,
    /// Bytes offered to a fragmented-message producer per frame. Default 4096.
    pub fragment_size: usize,
    /// The send-queue high-water mark in bytes: queueing a message that would take
    /// the queue past it fails with [`Error::QueueFull`]. Default 16 MiB
    /// (`16 << 20`). It bounds what a peer that stops reading makes us hold:
    /// our queued payloads and framed bytes, plus (past the mark) automatic
    /// pongs replace each other instead of adding up. A single message larger
    /// than the mark can never be queued: raise it to send larger ones (to echo
    /// messages up to the default `max_recv_size`, say).
    pub max_queued_bytes: usize,
    /// permessage-deflate (RFC 7692) as negotiated by the opening handshake;
    /// `None` (the default): no compression. With it, a data message whose
    /// first frame has RSV1 set is inflated (RSV1 is allowed on first frames
    /// whatever `allowed_rsv` says), `max_recv_size` limits the inflated size,
    /// and data messages of at least `threshold` bytes are sent compressed.
    /// Needs the cargo feature `deflate` (on by default); without it this is
    /// ignored, and the handshake neither offers nor accepts compression.
    pub compression: Option<Compression>,
    /// The most frames a data message may come in (its first frame and its
    /// continuations; control frames between them are not counted); the frame
    /// past it is refused from its header with close 1009
    /// ([`ProtocolError::TooManyFragments`]). A message of exactly this many
    /// frames is accepted, and `Some(0)` counts as `Some(1)` (every message has
    /// a frame). `None` (the default, as wslay and the Perl module): no limit.
    /// It applies with buffering off too. Autobahn's 9.x cases send 4 MiB in
    /// 64-byte fragments and an empty last one: 65,537 frames.
    pub max_fragments: Option<u32>,
}

impl Config {
    /// Sets [`buffering`](Config#structfield.buffering): assemble messages (`true`,
    /// the default) or report data through frame chunks only.
    ///
    /// ```
    /// use net_websocket_ev::proto::Config;
    ///
    /// // Stream: messages are not assembled, and the size limit is per frame.
    /// let config = Config::default().buffering(false).max_recv_size(64 << 10);
    /// assert!(!config.buffering);
    /// ```
    pub fn buffering(mut self, on: bool) -> Config {
        self.buffering = on;
        self
    }

    /// Sets [`max_recv_size`](Config#structfield.max_recv_size): the largest
    /// message (buffering) or frame (no buffering) accepted, in bytes; larger ones
    /// are refused with close 1009. Default 64 MiB.
    ///
    /// ```
    /// use net_websocket_ev::proto::Config;
    ///
    /// let config = Config::default().max_recv_size(16 << 20);
    /// assert_eq!(config.max_recv_size, 16 << 20);
    /// ```
    pub fn max_recv_size(mut self, bytes: u64) -> Config {
        self.max_recv_size = bytes;
        self
    }

    /// Sets [`allowed_rsv`](Config#structfield.allowed_rsv): the RSV bits the peer
    /// may set on the first frame of a data message (an extension of your own).
    /// Default none.
    ///
    /// ```
    /// use net_websocket_ev::proto::{Config, Rsv};
    ///
    /// let config = Config::default().allowed_rsv(Rsv::RSV2);
    /// assert_eq!(config.allowed_rsv, Rsv::RSV2);
    /// ```
    pub fn allowed_rsv(mut self, bits: Rsv) -> Config {
        self.allowed_rsv = bits;
        self
    }

    /// Sets [`fragment_size`](Config#structfield.fragment_size): the bytes offered to
    /// a fragmented-message producer per frame (0 counts as 1). Default 4096.
    ///
    /// ```
    /// use net_websocket_ev::proto::Config;
    ///
    /// let config = Config::default().fragment_size(64 << 10);
    /// assert_eq!(config.fragment_size, 64 << 10);
    /// ```
    pub fn fragment_size(mut self, bytes: usize) -> Config {
        self.fragment_size = bytes;
        self
    }

    /// Sets [`max_queued_bytes`](Config#structfield.max_queued_bytes): the
    /// send-queue high-water mark in bytes, past which queueing fails with
    /// [`Error::QueueFull`]. Default 16 MiB.
    ///
    /// ```
    /// use net_websocket_ev::proto::{Config, Error, OpCode, Role, Sender};
    ///
    /// let mut sender = Sender::new(Role::Server, &Config::default().max_queued_bytes(1024));
    /// sender.queue_msg(OpCode::Binary, &[0; 1000]).unwrap();
    /// let refused = sender.queue_msg(OpCode::Binary, &[0; 1000]);
    /// assert!(matches!(refused, Err(Error::QueueFull { .. })));
    /// ```
    pub fn max_queued_bytes(mut self, bytes: usize) -> Config {
        self.max_queued_bytes = bytes;
        self
    }

    /// Sets [`compression`](Config#structfield.compression): permessage-deflate as
    /// the opening handshake negotiated it, or `None` (the default) for none.
    ///
    /// ```
    /// use net_websocket_ev::proto::{Compression, Config};
    ///
    /// // What a bare "permessage-deflate" offer and answer agree on.
    /// let config = Config::default().compression(Some(Compression::default()));
    /// assert_eq!(config.compression.map(|c| c.send.max_window_bits), Some(15));
    /// ```
    pub fn compression(mut self, agreed: Option<Compression>) -> Config {
        self.compression = agreed;
        self
    }

    /// Sets [`max_fragments`](Config#structfield.max_fragments): the most frames a
    /// data message may come in, or `None` (the default) for no limit.
    ///
    /// ```
    /// use net_websocket_ev::proto::Config;
    ///
    /// let config = Config::default().max_fragments(Some(1 << 16));
    /// assert_eq!(config.max_fragments, Some(65_536));
    /// ```
    pub fn max_fragments(mut self, frames: Option<u32>) -> Config {
        self.max_fragments = frames;
        self
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            buffering: true,
            max_recv_size: 64 << 20,
            allowed_rsv: Rsv::empty(),
            fragment_size: 4096,
            max_queued_bytes: 16 << 20,
            compression: None,
            max_fragments: None,
        }
    }
}

/// Whether close `code` may appear on the wire and in [`Sender::queue_close`]:
/// 1000-1003, 1007-1014 and 3000-4999 (1012-1014 are in the IANA registry).
///
/// ```
/// use net_websocket_ev::proto::is_valid_close_code;
/// assert!(is_valid_close_code(1000) && is_valid_close_code(1012) && is_valid_close_code(4999));
/// assert!(!is_valid_close_code(1005) && !is_valid_close_code(1015) && !is_valid_close_code(2999));
/// ```
pub fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// What a [`Handler`] wants after an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Go on processing input.
    Continue,
    /// Stop right after this event and keep the remaining input for
    /// [`Receiver::resume`].
    Pause,
}

/// Receives the user-visible events of a [`Receiver`]. Every method has a no-op
/// default returning [`Flow::Continue`].
pub trait Handler {
    /// A frame begins (data, continuation and control frames, close included),
    /// as it is on the wire: for a compressed message (permessage-deflate),
    /// RSV1 is set on its first frame and `payload_len` is the compressed
    /// length.
    fn on_frame_start(&mut self, fin: bool, rsv: Rsv, opcode: OpCode, payload_len: u64) -> Flow {
        let _ = (fin, rsv, opcode, payload_len);
        Flow::Continue
    }
    /// A piece of the current frame's payload, unmasked (and inflated, for a
    /// compressed message: at most 64 KiB a piece). An empty frame (or a
    /// compressed frame that inflates to nothing) gives one empty chunk.
    fn on_frame_chunk(&mut self, data: &[u8]) -> Flow {
        let _ = data;
        Flow::Continue
    }
    /// The current frame ended.
    fn on_frame_end(&mut self) -> Flow {
        Flow::Continue
    }
    /// A complete text, binary, ping or pong message (never close), with the rsv
    /// and opcode of its first frame (RSV1 cleared once a compressed message is
    /// inflated). `status_code` is always 0 (as the Perl
    /// module). `data` is empty for data messages when buffering is off.
    fn on_message(&mut self, rsv: Rsv, opcode: OpCode, data: &[u8], status_code: u16) -> Flow {
        let _ = (rsv, opcode, data, status_code);
        Flow::Continue
    }
    /// A complete text or binary message of at least [`SHARE_MIN`] bytes,
    /// assembled in a buffer of its own (buffering on; text checked as UTF-8):
    /// the handler may keep it (a clone), for instance to queue it on a
    /// [`Sender`] without a copy ([`Sender::queue_shared`]). The default hands
    /// the bytes to [`Handler::on_message`].
    fn on_shared_message(&mut self, rsv: Rsv, msg: &SharedMessage, status_code: u16) -> Flow {
        self.on_message(rsv, msg.opcode(), msg.payload(), status_code)
    }
}

/// Received data messages from this size on are delivered through
/// [`Handler::on_shared_message`], and payloads from above this size queued with
/// [`Sender::queue_shared`] are not copied: below it a copy costs less than
/// sharing.
pub const SHARE_MIN: usize = 16 * 1024;

/// Something the [`Receiver`] needs sent, reported to a [`ReplySink`] which
/// forwards it to the [`Sender`].
///
/// For a ping, `Pong` comes before `on_message(Ping)`; for a close frame, the
/// frame events come first, then `Close`; for a violation, `Fail`.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply<'a> {
    /// Answer a ping: [`Sender::queue_pong`].
    Pong(&'a [u8]),
    /// Answer the peer's close: [`Sender::reply_close`].
    Close {
        /// The peer's code, `None` if its close frame was empty.
        code: Option<u16>,
        /// The peer's reason (valid UTF-8).
        reason: &'a [u8],
    },
    /// The peer broke the protocol: [`Sender::fail`] with its close code.
    Fail(ProtocolError),
}

/// Where a [`Receiver`] reports what must be sent.
pub trait ReplySink {
    /// Handles one reply.
    fn reply(&mut self, reply: Reply<'_>);
}

/// Why [`Receiver::recv`] (or `feed`, `resume`) returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvStatus {
    /// All input was processed and the transport has no more bytes now.
    WouldBlock,
    /// The transport reported end of file.
    Eof,
    /// The handler returned [`Flow::Pause`]; unprocessed bytes are kept.
    Paused,
    /// Reading is over: a close was received, the peer broke the protocol, or
    /// reading was shut down.
    Closed,
}

/// What a fragmented-message producer returns after filling a prefix of the
/// buffer it was given; [`Sender::push_produced`] carries it out. Perl's
/// `WS_FRAGMENTED_DATA`, `WS_FRAGMENTED_EOF` and `WS_FRAGMENTED_ERROR`, with the
/// length written.
///
/// ```
/// use net_websocket_ev::Fragment;
///
/// // A producer sending `data` in pieces of whatever size it is offered.
/// let data = b"a long message".to_vec();
/// let mut sent = 0;
/// let mut producer = move |buf: &mut [u8]| {
///     let n = (data.len() - sent).min(buf.len());
///     buf[..n].copy_from_slice(&data[sent..sent + n]);
///     sent += n;
///     if sent == data.len() {
///         Fragment::Eof(n)
///     } else {
///         Fragment::Data(n)
///     }
/// };
/// let mut buf = [0; 8];
/// assert_eq!(producer(&mut buf), Fragment::Data(8));
/// assert_eq!(producer(&mut buf), Fragment::Eof(6));
/// // On a connection: ws.queue_fragmented(move |_ws, buf| producer(buf), OpCode::Binary)
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fragment {
    /// `n` bytes of the message; `Data(0)` sends nothing: the producer is asked
    /// again at the next send (at once if the caller sends in a loop, so a
    /// producer that must wait for something returns [`Fragment::Pause`]).
    Data(usize),
    /// The last `n` bytes of the message (`Eof(0)`: an empty final frame).
    Eof(usize),
    /// The message cannot be produced: it is abandoned and close 1011 is sent.
    Error,
    /// Not ready, and the producer is not called again until the message is
    /// resumed ([`Sender::resume_fragmented`], [`Engine::resume_fragmented`]).
    /// Nothing is sent with it. Meanwhile control frames (pongs, a failure
    /// close, a close reply) still go out; data messages and a user close
    /// queued after this message wait behind it.
    Pause,
}

/// What [`Sender::push_produced`] did with a producer's return value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Produced {
    /// A piece was queued; more of the message is to come.
    Queued,
    /// The last piece was queued: the message is complete and its producer
    /// is done.
    Finished,
    /// `Data(0)`: nothing was queued; ask the producer again at the next
    /// [`SendStatus::NeedFragment`].
    NotReady,
    /// `Pause`: nothing was queued and the message is paused: [`Sender::send`]
    /// asks for no piece of it until [`Sender::resume_fragmented`].
    Paused,
    /// The message was abandoned, with everything queued after it, and close
    /// 1011 was queued: for `Error`, a length over the buffer, or a piece that
    /// [`Sender::push_fragment`] refuses (invalid UTF-8 in a text message, a
    /// text message ending inside a character). Also when no fragmented
    /// message was waiting for a piece (writing is over, or the message was
    /// dropped meanwhile): then nothing was queued. Either way the producer is
    /// done.
    Failed,
}

/// Why [`Sender::send`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendStatus {
    /// Nothing is left to write now: the queue is empty, or its head is a
    /// paused fragmented message (see [`Fragment::Pause`]).
    Idle,
    /// The transport accepts no more bytes now.
    WouldBlock,
    /// The head of the queue is a fragmented message that needs its next piece,
    /// at most `max_len` bytes ([`Sender::push_produced`] or
    /// [`Sender::push_fragment`]).
    NeedFragment {
        /// The most bytes one piece may have.
        max_len: usize,
    },
}

#[cfg(test)]
mod tests {
    #[test]
    fn halves_are_small() {
        let r = std::mem::size_of::<super::Receiver>();
        let s = std::mem::size_of::<super::Sender>();
        eprintln!("Receiver {r} bytes, Sender {s} bytes");
        assert!(r + s <= 640);
    }
}
