//! The two error types: what the peer did wrong, and what a caller did wrong.
use std::fmt;

/// A rule of RFC 6455 the peer's bytes broke. Every variant maps to the close code
/// sent in answer ([`ProtocolError::close_code`]).
#[derive(Clone, Debug, PartialEq, Eq)]
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
            ProtocolError::UnmaskedFrame => f.write_str("unmasked frame from a client"),
            ProtocolError::MaskedFrame => f.write_str("masked frame from a server"),
            ProtocolError::ReservedBits => f.write_str("reserved bits set"),
            ProtocolError::ReservedOpcode(op) => write!(f, "reserved opcode {op}"),
            ProtocolError::ControlFrameTooLong => f.write_str("control frame over 125 bytes"),
            ProtocolError::FragmentedControlFrame => f.write_str("fragmented control frame"),
            ProtocolError::UnexpectedContinuation => {
                f.write_str("continuation frame with no message in progress")
            }
            ProtocolError::ExpectedContinuation => {
                f.write_str("new data frame inside a fragmented message")
            }
            ProtocolError::NonMinimalLength => f.write_str("payload length not minimally encoded"),
            ProtocolError::LengthMsbSet => {
                f.write_str("64-bit payload length with the top bit set")
            }
            ProtocolError::InvalidUtf8 => f.write_str("text is not valid UTF-8"),
            ProtocolError::CloseOneByte => f.write_str("close frame with a 1-byte payload"),
            ProtocolError::InvalidCloseCode(code) => write!(f, "close code {code} not allowed"),
            ProtocolError::InvalidCloseReason => f.write_str("close reason is not valid UTF-8"),
            ProtocolError::MessageTooBig => f.write_str("message larger than max_recv_size"),
            ProtocolError::BadCompressedData => f.write_str("invalid deflate data in a message"),
            ProtocolError::TooManyFragments { limit } => {
                write!(f, "message in more than {limit} frames (max_fragments)")
            }
        }
    }
}

impl std::error::Error for ProtocolError {}

/// An illegal call on the [`Sender`](super::Sender) (or [`Engine`](super::Engine))
/// in its current state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// A close is queued or sent, or writing was shut down (the Perl module's -302).
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
            Error::Closed => f.write_str("connection closing: nothing more can be queued"),
            Error::InvalidOpcode(op) => write!(f, "opcode {op} cannot be queued"),
            Error::ControlTooLong(len) => {
                write!(f, "control payload of {len} bytes (at most 125)")
            }
            Error::InvalidUtf8 => f.write_str("text is not valid UTF-8"),
            Error::InvalidCloseCode(code) => write!(f, "close code {code} not allowed"),
            Error::ReasonTooLong(len) => write!(f, "close reason of {len} bytes (at most 123)"),
            Error::InvalidCloseReason => {
                f.write_str("close reason must be UTF-8 and comes with a code")
            }
            Error::QueueFull { queued, limit } => {
                write!(
                    f,
                    "send queue full: {queued} bytes over the limit of {limit}"
                )
            }
            Error::FragmentedNotPending => {
                f.write_str("no fragmented message is waiting for a piece")
            }
            Error::FragmentTooLong { len, max } => {
                write!(f, "fragment of {len} bytes (at most {max})")
            }
        }
    }
}

impl std::error::Error for Error {}
