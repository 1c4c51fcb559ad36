//! The user's callbacks, and the glue that hands the receiver's events to them
//! ([`Dispatch`]) and its automatic replies to the sender ([`Replies`]).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::proto::{Flow, Handler, OpCode, Reply, ReplySink, Rsv, SharedMessage, SHARE_MIN};

use super::conn::Conn;
use super::params::{FrameChunk, FrameEnd, FrameStart, MsgRecv, OnClose};
use super::{CloseCause, WebSocket};

pub(super) struct Callbacks {
    pub(super) msg_recv: Cell<Option<MsgRecv>>,
    pub(super) close: Cell<Option<OnClose>>,
    /// `None` unless a frame callback was given (most connections): then no frame
    /// event looks at a slot.
    pub(super) frame: Option<Box<FrameCallbacks>>,
}

impl Callbacks {
    pub(super) fn new(
        msg_recv: Option<MsgRecv>,
        close: Option<OnClose>,
        (start, chunk, end): (Option<FrameStart>, Option<FrameChunk>, Option<FrameEnd>),
    ) -> Self {
        let frame = match (start, chunk, end) {
            (None, None, None) => None,
            (start, chunk, end) => Some(Box::new(FrameCallbacks {
                start: Cell::new(start),
                chunk: Cell::new(chunk),
                end: Cell::new(end),
            })),
        };
        Callbacks {
            msg_recv: Cell::new(msg_recv),
            close: Cell::new(close),
            frame,
        }
    }
}

pub(super) struct FrameCallbacks {
    start: Cell<Option<FrameStart>>,
    chunk: Cell<Option<FrameChunk>>,
    end: Cell<Option<FrameEnd>>,
}

/// Calls the closure in `slot` with it taken out, so it may re-enter anything,
/// replace itself, or drop the last handle; it is put back unless replaced.
/// (A `Cell`, not a `RefCell`: the closure is only ever moved in and out.)
pub(super) fn call<F: ?Sized>(slot: &Cell<Option<Box<F>>>, invoke: impl FnOnce(&mut F)) {
    if let Some(mut callback) = slot.take() {
        invoke(&mut callback);
        let replacement = slot.take();
        slot.set(replacement.or(Some(callback)));
    }
}

thread_local! {
    /// The large message an `on_msg_recv` of this thread is being given, so that
    /// queueing those very bytes (an echo, a relay to other connections) shares
    /// them instead of copying them ([`delivered`]).
    static DELIVERING: RefCell<Option<SharedMessage>> = const { RefCell::new(None) };
}

/// The message being delivered, if `msg` is its payload itself (the same
/// memory: a slice the user got from `on_msg_recv`, whole).
pub(super) fn delivered(msg: &[u8]) -> Option<SharedMessage> {
    if msg.len() < SHARE_MIN {
        return None;
    }
    DELIVERING.with(|d| d.borrow().as_ref().filter(|m| m.is(msg)).cloned())
}

/// Delivers receive events to the user's callbacks, with the connection handle.
pub(super) struct Dispatch<'a> {
    conn: &'a Rc<Conn>,
    ws: &'a WebSocket,
}

impl<'a> Dispatch<'a> {
    pub(super) fn new(conn: &'a Rc<Conn>, ws: &'a WebSocket) -> Self {
        Dispatch { conn, ws }
    }

    /// Asked after user code ran ([`Conn::should_pause`]); a frame event without
    /// frame callbacks runs none, and the pong a ping queues is looked at after
    /// the ping's `on_message`.
    fn flow(&self) -> Flow {
        if self.conn.should_pause() {
            Flow::Pause
        } else {
            Flow::Continue
        }
    }
}

impl Dispatch<'_> {
    #[cold]
    fn frame_start(
        &self,
        frame: &FrameCallbacks,
        fin: bool,
        rsv: Rsv,
        op: OpCode,
        len: u64,
    ) -> Flow {
        let ws = self.ws;
        call(&frame.start, |cb| {
            self.conn.guarded(|| cb(ws, fin, rsv, op, len));
        });
        self.flow()
    }

    #[cold]
    fn frame_chunk(&self, frame: &FrameCallbacks, data: &[u8]) -> Flow {
        let ws = self.ws;
        call(&frame.chunk, |cb| {
            self.conn.guarded(|| cb(ws, data));
        });
        self.flow()
    }

    #[cold]
    fn frame_end(&self, frame: &FrameCallbacks) -> Flow {
        let ws = self.ws;
        call(&frame.end, |cb| {
            self.conn.guarded(|| cb(ws));
        });
        self.flow()
    }
}

/// Without frame callbacks (most connections) a frame event runs no user code, so
/// nothing changed since the last `flow` check: it continues at once.
impl Handler for Dispatch<'_> {
    #[inline]
    fn on_frame_start(&mut self, fin: bool, rsv: Rsv, opcode: OpCode, len: u64) -> Flow {
        self.conn.note_recv();
        match &self.conn.callbacks.frame {
            None => Flow::Continue,
            Some(frame) => self.frame_start(frame, fin, rsv, opcode, len),
        }
    }

    #[inline]
    fn on_frame_chunk(&mut self, data: &[u8]) -> Flow {
        self.conn.note_recv();
        match &self.conn.callbacks.frame {
            None => Flow::Continue,
            Some(frame) => self.frame_chunk(frame, data),
        }
    }

    #[inline]
    fn on_frame_end(&mut self) -> Flow {
        match &self.conn.callbacks.frame {
            None => Flow::Continue,
            Some(frame) => self.frame_end(frame),
        }
    }

    fn on_message(&mut self, rsv: Rsv, opcode: OpCode, data: &[u8], status: u16) -> Flow {
        let ws = self.ws;
        call(&self.conn.callbacks.msg_recv, |cb| {
            self.conn.guarded(|| cb(ws, rsv, opcode, data, status));
        });
        self.flow()
    }

    fn on_shared_message(&mut self, rsv: Rsv, msg: &SharedMessage, status: u16) -> Flow {
        // Replaced, not just set: a callback that runs the loop (a blocking wait)
        // may deliver another message meanwhile; the outer one is back after it.
        let outer = DELIVERING.with(|d| d.replace(Some(msg.clone())));
        let flow = self.on_message(rsv, msg.opcode(), msg.payload(), status);
        DELIVERING.with(|d| *d.borrow_mut() = outer);
        flow
    }
}

/// Forwards the receiver's automatic replies to the sender.
pub(super) struct Replies<'a> {
    conn: &'a Rc<Conn>,
}

impl<'a> Replies<'a> {
    pub(super) fn new(conn: &'a Rc<Conn>) -> Self {
        Replies { conn }
    }
}

impl ReplySink for Replies<'_> {
    fn reply(&mut self, reply: Reply<'_>) {
        let Ok(mut sender) = self.conn.sender.try_borrow_mut() else {
            return;
        };
        match reply {
            Reply::Pong(payload) => sender.queue_pong(payload),
            Reply::Close { code, reason } => {
                sender.reply_close(code, reason);
                drop(sender);
                self.conn.note_peer_close(code.unwrap_or(1005), reason);
            }
            Reply::Fail(err) => {
                sender.fail(err.close_code());
                drop(sender);
                self.conn.begin_closing(CloseCause::ProtocolError(err));
            }
        }
    }
}
