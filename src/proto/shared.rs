//! Messages whose payload several holders share instead of copying.
use std::sync::Arc;

use super::utf8;
use super::{Error, OpCode};

/// A whole text or binary message, checked once, whose payload is shared by
/// whoever holds it: the receiver that assembled it
/// ([`Handler::on_shared_message`](super::Handler::on_shared_message)) and the
/// send queues it is queued on ([`Sender::queue_shared`](super::Sender::queue_shared)),
/// or every connection of a broadcast. Cloning it clones a pointer.
///
/// ```
/// use net_websocket_ev::proto::{OpCode, SharedMessage};
///
/// let msg = SharedMessage::new(OpCode::Text, "hello".into())?;
/// assert_eq!((msg.opcode(), msg.payload()), (OpCode::Text, &b"hello"[..]));
/// assert!(SharedMessage::new(OpCode::Text, vec![0xff]).is_err()); // not UTF-8
/// assert!(SharedMessage::new(OpCode::Ping, vec![]).is_err()); // text or binary only
/// # Ok::<(), net_websocket_ev::proto::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct SharedMessage {
    opcode: OpCode,
    pub(super) payload: Arc<Vec<u8>>,
}

impl SharedMessage {
    /// A text or binary message with `payload` (taken, not copied). Text must
    /// be UTF-8.
    ///
    /// ```
    /// use net_websocket_ev::proto::{Error, OpCode, SharedMessage};
    ///
    /// let msg = SharedMessage::new(OpCode::Binary, vec![1, 2, 3])?;
    /// assert_eq!(msg.payload(), [1, 2, 3]);
    /// assert!(matches!(SharedMessage::new(OpCode::Close, vec![]), Err(Error::InvalidOpcode(8))));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn new(opcode: OpCode, payload: Vec<u8>) -> Result<SharedMessage, Error> {
        match opcode {
            OpCode::Text if !utf8::is_valid(&payload) => Err(Error::InvalidUtf8),
            OpCode::Text | OpCode::Binary => Ok(SharedMessage::checked(opcode, payload)),
            _ => Err(Error::InvalidOpcode(opcode.as_u8())),
        }
    }

    /// A message whose payload was checked by the caller (a text message's
    /// UTF-8 by the receiver).
    pub(crate) fn checked(opcode: OpCode, payload: Vec<u8>) -> SharedMessage {
        SharedMessage {
            opcode,
            payload: Arc::new(payload),
        }
    }

    /// Text or binary.
    ///
    /// ```
    /// # use net_websocket_ev::proto::{OpCode, SharedMessage};
    /// assert_eq!(SharedMessage::new(OpCode::Binary, vec![])?.opcode(), OpCode::Binary);
    /// # Ok::<(), net_websocket_ev::proto::Error>(())
    /// ```
    pub fn opcode(&self) -> OpCode {
        self.opcode
    }

    /// The payload.
    ///
    /// ```
    /// # use net_websocket_ev::proto::{OpCode, SharedMessage};
    /// assert_eq!(SharedMessage::new(OpCode::Text, "hi".into())?.payload(), b"hi");
    /// # Ok::<(), net_websocket_ev::proto::Error>(())
    /// ```
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Whether `bytes` are this message's payload itself (the same memory, not
    /// only equal bytes).
    pub(crate) fn is(&self, bytes: &[u8]) -> bool {
        std::ptr::eq(self.payload.as_slice(), bytes)
    }

    /// The payload's buffer, when this was its last holder (for reuse).
    pub(crate) fn into_unique(self) -> Option<Vec<u8>> {
        Arc::try_unwrap(self.payload).ok()
    }
}
