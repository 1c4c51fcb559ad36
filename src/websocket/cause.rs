//! How a connection ended, and what a `wait` saw.

use std::fmt;
use std::io;

use crate::proto::ProtocolError;

/// Why a connection ended (or is ending): [`WebSocket::close_cause`](super::WebSocket::close_cause).
///
/// `on_close` keeps the original's one argument (the code of the peer's close, 1006
/// if none came); this says what happened. The cause is the first event that decided
/// the end, except that a close of ours going normally ([`LocalClose`](Self::LocalClose),
/// [`IdleTimeout`](Self::IdleTimeout), [`Shutdown`](Self::Shutdown)) is replaced by a
/// failure that cuts it short (the close timeout, EOF, a socket error, an abort).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum CloseCause {
    /// The peer started the closing handshake (its code:
    /// [`status_code_received`](super::WebSocket::status_code_received)).
    PeerClose,
    /// We started it with [`close`](super::WebSocket::close) and it completed.
    LocalClose,
    /// The peer broke the protocol: we sent close with
    /// [`ProtocolError::close_code`] (1002, 1007 or 1009).
    ProtocolError(ProtocolError),
    /// A `queue_fragmented` producer returned `Error`, panicked, or produced text that
    /// is not UTF-8: we sent close 1011.
    ProducerError,
    /// Nothing arrived for the idle timeout: we sent close 1001.
    IdleTimeout,
    /// A message took longer than the message timeout to arrive
    /// ([`Params::message_timeout`](super::Params::message_timeout)): we sent
    /// close 1008 and stopped reading.
    MessageTimeout,
    /// The closing made no progress for the close timeout.
    CloseTimeout,
    /// The peer ended the TCP connection without a close frame.
    Eof,
    /// A socket error (a reset, say).
    Io(io::ErrorKind),
    /// The TLS session failed (a bad record, a fatal alert from the peer): the
    /// connection ended at once and `on_close` got 1015. Feature `tls`. (Boxed: the
    /// cause lives in every connection, and rustls's error is ten times its size.)
    #[cfg(feature = "tls")]
    Tls(Box<crate::tls::rustls::Error>),
    /// [`abort`](super::WebSocket::abort) or [`abort_all`](super::abort_all).
    Aborted,
    /// Reading was shut down and the send queue drained, or both directions were
    /// shut down.
    Shutdown,
}

impl CloseCause {
    /// Whether `self`, the cause so far, gives way to `next`: a close of ours going
    /// as planned does to a failure that cuts it short.
    pub(super) fn yields_to(&self, next: &CloseCause) -> bool {
        let ours = matches!(
            self,
            CloseCause::LocalClose | CloseCause::IdleTimeout | CloseCause::Shutdown
        );
        let failure = matches!(
            next,
            CloseCause::CloseTimeout | CloseCause::Eof | CloseCause::Io(_) | CloseCause::Aborted
        ) || next.is_tls();
        ours && failure
    }

    /// The cause an I/O error of the transport stands for: a TLS failure, if it
    /// carries one, else a socket error.
    pub(super) fn from_io(err: &io::Error) -> CloseCause {
        #[cfg(feature = "tls")]
        if let Some(tls) = crate::tls::tls_error(err) {
            return CloseCause::Tls(Box::new(tls.clone()));
        }
        CloseCause::Io(err.kind())
    }

    /// Whether the TLS session failed (never without the feature `tls`).
    pub(super) fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        if let CloseCause::Tls(_) = self {
            return true;
        }
        false
    }
}

impl fmt::Display for CloseCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseCause::PeerClose => f.write_str("the peer closed the connection"),
            CloseCause::LocalClose => f.write_str("we closed the connection (close())"),
            CloseCause::ProtocolError(err) => {
                write!(
                    f,
                    "the peer broke the protocol ({err}): close {}",
                    err.close_code()
                )
            }
            CloseCause::ProducerError => {
                f.write_str("a fragmented-message producer failed: close 1011")
            }
            CloseCause::IdleTimeout => f.write_str("idle timeout: close 1001"),
            CloseCause::MessageTimeout => {
                f.write_str("a message took longer than the message timeout: close 1008")
            }
            CloseCause::CloseTimeout => {
                f.write_str("the closing made no progress for the close timeout")
            }
            CloseCause::Eof => f.write_str("the peer ended the connection without a close frame"),
            CloseCause::Io(kind) => write!(f, "socket error: {kind}"),
            #[cfg(feature = "tls")]
            CloseCause::Tls(err) => write!(f, "TLS failure ({err}): close 1015"),
            CloseCause::Aborted => f.write_str("aborted (abort() or abort_all())"),
            CloseCause::Shutdown => f.write_str(
                "shut down: reading ended and the send queue drained, or both directions ended",
            ),
        }
    }
}

/// What a `wait` saw: [`WebSocket::wait`](super::WebSocket::wait) and
/// [`WebSocket::wait_blocking`](super::WebSocket::wait_blocking).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Waited {
    /// Everything queued was written.
    Drained,
    /// The connection ended with `unsent` messages not (fully) written.
    Closed {
        /// Messages queued or partly sent when the connection ended.
        unsent: usize,
    },
}
