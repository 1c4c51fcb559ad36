//! The two error types: what the peer did wrong, and what a caller did wrong.
use std::fmt;

/// A rule of RFC 6455 the peer's bytes broke. Every variant maps to the close code
/// sent in answer ([`ProtocolError::close_code`]).
///
/// Non-exhaustive: new limits may add variants (match with a `_` arm, or use
/// [`close_code`](Self::close_code)).
///
/// ```
/// use net_websocket_ev::proto::ProtocolError;
///
/// let err = ProtocolError::MessageTooBig;
/// assert_eq!(err.close_code(), 1009);
/// assert!(err.to_string().contains("max_recv_size"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A server got a frame without a mask.
    UnmaskedFrame,
    /// A client got a masked frame.
    MaskedFrame,
    /// RSV bits that are not allowed (or set on a control or continuation frame).
    ReservedBits,
    /// A reserved opcode (3-7, 11-15).
    ReservedOpcode(u8),
    /// A control frame with more than 125 bytes of payload.
    ControlFrameTooLong,
    /// A control frame with FIN clear.
    FragmentedControlFrame,
    /// A continuation frame with no fragmented message in progress.
    UnexpectedContinuation,
    /// A new text or binary frame inside a fragmented message.
    ExpectedContinuation,
    /// A payload length not in its shortest encoding.
    NonMinimalLength,
    /// A 64-bit payload length with its most significant bit set.
    LengthMsbSet,
    /// A text message (or frame) that is not valid UTF-8.
    InvalidUtf8,
    /// A close frame whose payload is a single byte.
    CloseOneByte,
    /// A close code not allowed on the wire.
    InvalidCloseCode(u16),
    /// A close reason that is not valid UTF-8.
    InvalidCloseReason,
    /// A message (or a frame, without buffering) over `max_recv_size`; for a
    /// compressed one, inflated.
    MessageTooBig,
    /// A compressed message (permessage-deflate) that is not a valid deflate
    /// stream.
    BadCompressedData,
    /// A data message in more frames than `Config::max_fragments`.
    TooManyFragments {
        /// `Config::max_fragments`.
        limit: u32,
    },
}

impl ProtocolError {
    /// The close code for this violation: 1007 for bad UTF-8 and a corrupt
    /// compressed message (data not consistent with the message, as RFC 6455
    /// says of 1007), 1009 for a too big message, 1002 for everything else.
    pub fn close_code(&self) -> u16 {
        match self {
            ProtocolError::InvalidUtf8
            | ProtocolError::InvalidCloseReason
            | ProtocolError::BadCompressedData => 1007,
            ProtocolError::MessageTooBig => 1009,
            ProtocolError::TooManyFragments { .. } => 1009,
            _ => 1002,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::UnmaskedFrame => {
                f.write_str("unmasked frame from a client (a client must mask every frame)")
            }
            ProtocolError::MaskedFrame => {
                f.write_str("masked frame from a server (a server must not mask)")
            }
            ProtocolError::ReservedBits => f.write_str(
                "reserved bits set that no negotiated extension allows, or on a control or \
                 continuation frame",
            ),
            ProtocolError::ReservedOpcode(op) => write!(f, "reserved opcode {op}"),
            ProtocolError::ControlFrameTooLong => {
                f.write_str("control frame with over 125 bytes of payload")
            }
            ProtocolError::FragmentedControlFrame => {
                f.write_str("fragmented control frame (FIN clear on a ping, pong or close)")
            }
            ProtocolError::UnexpectedContinuation => {
                f.write_str("continuation frame with no fragmented message in progress")
            }
            ProtocolError::ExpectedContinuation => f.write_str(
                "new text or binary frame before the fragmented message in progress ended",
            ),
            ProtocolError::NonMinimalLength => {
                f.write_str("payload length not in its shortest encoding")
            }
            ProtocolError::LengthMsbSet => {
                f.write_str("64-bit payload length with the most significant bit set")
            }
            ProtocolError::InvalidUtf8 => f.write_str("received text is not valid UTF-8"),
            ProtocolError::CloseOneByte => {
                f.write_str("close frame with a 1-byte payload (a code takes 2)")
            }
            ProtocolError::InvalidCloseCode(code) => {
                write!(f, "close code {code} is not allowed on the wire")
            }
            ProtocolError::InvalidCloseReason => f.write_str("close reason is not valid UTF-8"),
            ProtocolError::MessageTooBig => {
                f.write_str("message larger than max_recv_size: raise max_recv_size to accept it")
            }
            ProtocolError::BadCompressedData => {
                f.write_str("compressed message is not a valid deflate stream")
            }
            ProtocolError::TooManyFragments { limit } => write!(
                f,
                "message in more than {limit} frames: raise max_fragments to accept it"
            ),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// An illegal call on the [`Sender`](super::Sender) (or [`Engine`](super::Engine))
/// in its current state. Each message says what to do instead.
///
/// Non-exhaustive: new limits may add variants.
///
/// ```
/// use net_websocket_ev::proto::Error;
///
/// assert_eq!(
///     Error::InvalidOpcode(8).to_string(),
///     "opcode 8 (close) cannot be queued: use close()"
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A close is queued or sent, or writing was shut down (the Perl module's -302).
    /// The connection object reports it as `websocket::Error::Closed`.
    Closed,
    /// The opcode cannot be queued this way (continuation, close, or a control
    /// opcode for a fragmented message): use `queue_close` for close.
    InvalidOpcode(u8),
    /// A control payload over 125 bytes.
    ControlTooLong(usize),
    /// Text that is not valid UTF-8.
    InvalidUtf8,
    /// A close code not allowed on the wire.
    InvalidCloseCode(u16),
    /// A close reason over 123 bytes.
    ReasonTooLong(usize),
    /// A close reason that is not valid UTF-8, or a reason without a code.
    InvalidCloseReason,
    /// Queueing would take the queued bytes past the high-water mark.
    QueueFull {
        /// Bytes queued now, plus the ones refused.
        queued: usize,
        /// `Config::max_queued_bytes`.
        limit: usize,
    },
    /// `push_fragment` while the head of the queue is not a fragmented message.
    FragmentedNotPending,
    /// `push_fragment` with more bytes than `SendStatus::NeedFragment` offered.
    FragmentTooLong {
        /// The length pushed.
        len: usize,
        /// The most allowed (`Config::fragment_size`).
        max: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Closed => f.write_str(
                "the connection is closing (close queued or sent, or writing shut down): \
                 nothing more can be queued",
            ),
            Error::InvalidOpcode(0) => f.write_str(
                "opcode 0 (continuation) cannot be queued: send a message in pieces \
                 with queue_fragmented()",
            ),
            Error::InvalidOpcode(8) => {
                f.write_str("opcode 8 (close) cannot be queued: use close()")
            }
            Error::InvalidOpcode(op @ (9 | 10)) => write!(
                f,
                "opcode {op} (control) cannot be fragmented: queue it whole with queue_msg()"
            ),
            Error::InvalidOpcode(op) => write!(
                f,
                "opcode {op} cannot be queued: use text (1), binary (2), ping (9) or pong (10)"
            ),
            Error::ControlTooLong(len) => write!(
                f,
                "control payload of {len} bytes (at most 125): send the data as a text or \
                 binary message"
            ),
            Error::InvalidUtf8 => f.write_str("text is not valid UTF-8: queue it as binary"),
            Error::InvalidCloseCode(code) => write!(
                f,
                "close code {code} may not be sent: use 1000-1003, 1007-1014 or 3000-4999"
            ),
            Error::ReasonTooLong(len) => {
                write!(f, "close reason of {len} bytes (at most 123): shorten it")
            }
            Error::InvalidCloseReason => f.write_str(
                "close reason must be valid UTF-8 and needs a close code: pass Some(code)",
            ),
            Error::QueueFull { queued, limit } => write!(
                f,
                "the send queue is full ({queued} bytes with this message, limit {limit}): \
                 wait() for it to drain or raise max_queued_bytes"
            ),
            Error::FragmentedNotPending => f.write_str(
                "no fragmented message is waiting for a piece: push a fragment only after \
                 SendStatus::NeedFragment",
            ),
            Error::FragmentTooLong { len, max } => write!(
                f,
                "fragment of {len} bytes (at most {max}, the fragment_size): push a \
                 shorter piece"
            ),
        }
    }
}

impl std::error::Error for Error {}
