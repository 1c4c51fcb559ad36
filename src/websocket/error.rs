use std::fmt;
use std::io;

use crate::ev::LoopError;
use crate::proto;

/// What a [`WebSocket`](super::WebSocket) call can fail with.
///
/// A wrapper ([`Queue`](Self::Queue), [`Io`](Self::Io), [`Loop`](Self::Loop)) says
/// what failed and returns the underlying error from
/// [`source`](std::error::Error::source), which says why and what to do: print the
/// whole chain (as `anyhow`'s `{:#}` does) to see both.
///
/// ```
/// use net_websocket_ev::{ev::Loop, Error, OpCode, Params, Server};
/// use std::error::Error as _;
/// use std::os::unix::net::UnixStream;
///
/// let lp = Loop::new().unwrap();
/// let (ours, _peer) = UnixStream::pair().unwrap();
/// let ws = Server::new(Params::new(ours).event_loop(&lp)).unwrap();
/// let err = ws.queue_msg(b"bye", OpCode::Close).unwrap_err();
/// let mut chain = err.to_string();
/// let mut source = err.source();
/// while let Some(cause) = source {
///     chain.push_str(": ");
///     chain.push_str(&cause.to_string());
///     source = cause.source();
/// }
/// assert_eq!(
///     chain,
///     "the WebSocket engine refused the call: opcode 8 (close) cannot be queued: use close()"
/// );
///
/// ws.close(Some(1000), "").unwrap();
/// assert!(matches!(ws.queue_text("late"), Err(Error::Closed)));
/// # net_websocket_ev::websocket::abort_all(&lp);
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The connection is closed or closing: nothing more can be queued. Queueing
    /// fails with it once a close is queued or sent ([`close`](super::WebSocket::close),
    /// or the answer to the peer's) or writing is shut down (the original's -302);
    /// every method fails with it once the connection is over (`on_close` has run or
    /// its end is decided, where the original crashed or croaked).
    Closed,
    /// The engine refused the call: a bad opcode, text that is not UTF-8, a control
    /// payload over 125 bytes, a bad close code or reason, a full send queue. The
    /// [`proto::Error`] (also the [`source`](std::error::Error::source)) says which
    /// and what to do; it is never [`proto::Error::Closed`], which is
    /// [`Closed`](Self::Closed) here.
    Queue(proto::Error),
    /// Called from inside the `genmask` callback, while the send queue is in use.
    Busy,
    /// [`wait_blocking`](super::WebSocket::wait_blocking) could make no progress:
    /// writing is stopped, the head of the queue is a paused producer, or it was
    /// called from inside a producer.
    Stalled,
    /// Setting up the socket failed (the [`io::Error`] is the source).
    Io(io::Error),
    /// The default loop could not be created, or another thread holds it (the
    /// [`LoopError`] is the source).
    Loop(LoopError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Closed => f.write_str(
                "the WebSocket connection is closed or closing: nothing more can be queued \
                 (see close_cause())",
            ),
            Error::Queue(_) => f.write_str("the WebSocket engine refused the call"),
            Error::Busy => f.write_str(
                "the connection is busy: the send queue cannot be used from inside genmask",
            ),
            Error::Stalled => f.write_str(
                "wait_blocking() cannot make progress: writing is stopped (start_write()), \
                 the head of the queue is a paused producer (resume_fragmented()), or it \
                 was called from inside a producer",
            ),
            Error::Io(_) => f.write_str("setting up the WebSocket's socket failed"),
            Error::Loop(_) => f.write_str("no event loop for the WebSocket connection"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Queue(err) => Some(err),
            Error::Io(err) => Some(err),
            Error::Loop(err) => Some(err),
            Error::Closed | Error::Busy | Error::Stalled => None,
        }
    }
}

/// The engine's refusal; its [`Closed`](proto::Error::Closed) is [`Error::Closed`].
impl From<proto::Error> for Error {
    fn from(err: proto::Error) -> Self {
        match err {
            proto::Error::Closed => Error::Closed,
            err => Error::Queue(err),
        }
    }
}

impl From<io::Error> for Error {
    fn from(err: io::Error) -> Self {
        Error::Io(err)
    }
}

impl From<LoopError> for Error {
    fn from(err: LoopError) -> Self {
        Error::Loop(err)
    }
}
