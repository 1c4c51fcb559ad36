use std::fmt;
use std::io;

use crate::ev::LoopError;
use crate::proto;

/// What a [`WebSocket`](super::WebSocket) call can fail with.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The connection is over (`on_close` has run); every method returns this afterwards.
    /// The original module crashed or croaked here.
    Closed,
    /// The engine refused the call: nothing more can be queued after a close or
    /// `shutdown_write` (the original's -302), a bad opcode, text that is not UTF-8, a
    /// control payload over 125 bytes, a bad close code or reason, a full send queue.
    Queue(proto::Error),
    /// Called from inside the `genmask` callback, while the send queue is in use.
    Busy,
    /// [`wait_blocking`](super::WebSocket::wait_blocking) could make no progress:
    /// writing is stopped, or the head of the queue is a paused producer.
    Stalled,
    /// Setting up the socket failed.
    Io(io::Error),
    /// The default loop could not be created, or another thread holds it.
    Loop(LoopError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Closed => f.write_str("WebSocket connection already closed"),
            Error::Queue(err) => write!(f, "cannot queue: {err}"),
            Error::Busy => f.write_str("the connection is busy (called from inside genmask)"),
            Error::Stalled => {
                f.write_str("nothing can be written: writing is stopped or the producer is paused")
            }
            Error::Io(err) => write!(f, "socket setup failed: {err}"),
            Error::Loop(err) => err.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Queue(err) => Some(err),
            Error::Io(err) => Some(err),
            Error::Loop(err) => Some(err),
            _ => None,
        }
    }
}

impl From<proto::Error> for Error {
    fn from(err: proto::Error) -> Self {
        Error::Queue(err)
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
