//! The machinery behind a [`WebSocket`]: one io watcher re-armed after every event and
//! call, the engine's two halves in separate cells so callbacks can re-enter, the
//! close timer, and the end of the connection.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::TcpStream;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use crate::ev::{Events, Io, Loop, Timer};
use crate::proto::{
    Flow, Fragment, Handler, OpCode, Receiver, RecvStatus, Reply, ReplySink, Role, Rsv, SendStatus,
    Sender,
};

use super::params::{FrameChunk, FrameEnd, FrameStart, MsgRecv, OnClose, Params, Producer};
use super::{Error, WebSocket};

type Waiter = Box<dyn FnOnce(&WebSocket)>;

pub(crate) struct Conn {
    pub(crate) lp: Loop,
    pub(crate) role: Role,
    /// The socket; `None` once the connection is over. The std type gives us safe
    /// read/write/writev/shutdown on any stream socket fd.
    socket: RefCell<Option<TcpStream>>,
    io: RefCell<Option<Io>>,
    close_timer: RefCell<Option<Timer>>,
    wait_timer: RefCell<Option<Timer>>,
    pub(crate) receiver: RefCell<Receiver>,
    pub(crate) sender: RefCell<Sender>,
    initial_data: RefCell<Vec<u8>>,
    producers: RefCell<VecDeque<Producer>>,
    fragment_buf: RefCell<Vec<u8>>,
    waiters: RefCell<VecDeque<Waiter>>,
    callbacks: Callbacks,
    close_timeout: Option<f64>,
    /// Inside the io callback: calls only record their effect; the callback re-arms.
    in_io: Cell<bool>,
    read_stopped: Cell<bool>,
    write_stopped: Cell<bool>,
    /// shutdown_read() called while the receiver was busy: applied after it returns.
    read_shutdown_pending: Cell<bool>,
    peer_eof: Cell<bool>,
    status_received: Cell<u16>,
    finished: Cell<bool>,
    /// A panic raised by a user callback inside the io callback: caught where it was
    /// raised so the engine's state stays whole, resumed once the watcher is re-armed
    /// (the ev layer then carries it out of the loop's `run`).
    panic: RefCell<Option<Box<dyn Any + Send>>>,
}

struct Callbacks {
    msg_recv: RefCell<Option<MsgRecv>>,
    frame_start: RefCell<Option<FrameStart>>,
    frame_chunk: RefCell<Option<FrameChunk>>,
    frame_end: RefCell<Option<FrameEnd>>,
    close: RefCell<Option<OnClose>>,
}

/// Calls the closure in `slot` with it taken out, so it may re-enter anything,
/// replace itself, or drop the last handle; it is put back unless replaced.
fn call<F: ?Sized>(slot: &RefCell<Option<Box<F>>>, invoke: impl FnOnce(&mut F)) {
    let taken = slot.borrow_mut().take();
    if let Some(mut callback) = taken {
        invoke(&mut callback);
        let mut slot = slot.borrow_mut();
        if slot.is_none() {
            *slot = Some(callback);
        }
    }
}

impl Conn {
    pub(crate) fn open(role: Role, params: Params) -> Result<WebSocket, Error> {
        let lp = match params.event_loop {
            Some(lp) => lp,
            None => Loop::default_loop()?,
        };
        let socket = TcpStream::from(params.socket);
        socket.set_nonblocking(true)?;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&socket);
        let mut sender = Sender::new(role, &params.config);
        if let Some(genmask) = params.genmask {
            sender.set_mask_source(genmask);
        }
        let conn = Rc::new(Conn {
            receiver: RefCell::new(Receiver::new(role, &params.config)),
            sender: RefCell::new(sender),
            lp: lp.clone(),
            role,
            socket: RefCell::new(Some(socket)),
            io: RefCell::new(None),
            close_timer: RefCell::new(None),
            wait_timer: RefCell::new(None),
            initial_data: RefCell::new(params.initial_data),
            producers: RefCell::new(VecDeque::new()),
            fragment_buf: RefCell::new(Vec::new()),
            waiters: RefCell::new(VecDeque::new()),
            callbacks: Callbacks {
                msg_recv: RefCell::new(params.on_msg_recv),
                frame_start: RefCell::new(params.on_frame_recv_start),
                frame_chunk: RefCell::new(params.on_frame_recv_chunk),
                frame_end: RefCell::new(params.on_frame_recv_end),
                close: RefCell::new(params.on_close),
            },
            close_timeout: params.close_timeout,
            in_io: Cell::new(false),
            read_stopped: Cell::new(false),
            write_stopped: Cell::new(false),
            read_shutdown_pending: Cell::new(false),
            peer_eof: Cell::new(false),
            status_received: Cell::new(1006),
            finished: Cell::new(false),
            panic: RefCell::new(None),
        });
        // The watcher's closure holds the connection: it stays alive on its loop while
        // open, whether or not the user keeps a handle. `finish` drops the watcher.
        let keep = conn.clone();
        let io = Io::new(&lp, fd, Events::READ, move |events| keep.on_io(events));
        if !conn.initial_data.borrow().is_empty() {
            io.feed_event(Events::READ);
        }
        *conn.io.borrow_mut() = Some(io);
        conn.rearm();
        Ok(WebSocket { conn })
    }

    pub(crate) fn handle(self: &Rc<Self>) -> WebSocket {
        WebSocket { conn: self.clone() }
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.finished.get()
    }

    pub(crate) fn check_open(&self) -> Result<(), Error> {
        if self.finished.get() {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    /// The sender, or `Busy` when it is in use (a call from inside `genmask`).
    pub(crate) fn sender(&self) -> Result<std::cell::RefMut<'_, Sender>, Error> {
        self.check_open()?;
        self.sender.try_borrow_mut().map_err(|_| Error::Busy)
    }

    pub(crate) fn status_received(&self) -> u16 {
        self.status_received.get()
    }

    fn on_io(self: &Rc<Self>, events: Events) {
        if self.finished.get() {
            return;
        }
        self.in_io.set(true);
        if events.contains(Events::READ) && !self.read_stopped.get() {
            self.read();
        }
        // Write at once after reading (replies, pongs), not a loop turn later; the
        // watcher waits for WRITE only when the socket would block.
        if !self.finished.get() && !self.write_stopped.get() {
            self.write();
        }
        self.in_io.set(false);
        self.rearm();
        if let Some(payload) = self.panic.borrow_mut().take() {
            panic::resume_unwind(payload);
        }
    }

    /// Runs user code from inside the io callback; a panic is kept for `on_io` to
    /// resume after the engine and the watcher are back in order. False if it panicked.
    fn guarded(&self, f: impl FnOnce()) -> bool {
        match panic::catch_unwind(AssertUnwindSafe(f)) {
            Ok(()) => true,
            Err(payload) => {
                let mut slot = self.panic.borrow_mut();
                if slot.is_none() {
                    *slot = Some(payload);
                }
                false
            }
        }
    }

    fn read(self: &Rc<Self>) {
        let ws = self.handle();
        let Ok(mut receiver) = self.receiver.try_borrow_mut() else {
            return; // a nested loop run from inside one of our receive callbacks
        };
        let mut dispatch = Dispatch {
            conn: self,
            ws: &ws,
        };
        let mut replies = Replies { conn: self };
        let initial = std::mem::take(&mut *self.initial_data.borrow_mut());
        let mut status = if receiver.has_pending_input() {
            receiver.resume(&mut dispatch, &mut replies)
        } else {
            RecvStatus::WouldBlock
        };
        if matches!(status, RecvStatus::WouldBlock) && !initial.is_empty() {
            status = receiver.feed(&initial, &mut dispatch, &mut replies);
        }
        if matches!(status, RecvStatus::WouldBlock) {
            let socket = self.socket.borrow();
            let Some(mut stream) = socket.as_ref() else {
                return;
            };
            status = match receiver.recv_available(&mut stream, &mut dispatch, &mut replies) {
                Ok(status) => status,
                Err(_) => RecvStatus::Eof, // reset or other socket error: the peer is gone
            };
        }
        if self.read_shutdown_pending.replace(false) {
            receiver.shutdown_read();
        }
        if matches!(status, RecvStatus::Eof) {
            self.peer_eof.set(true);
        }
    }

    /// Writes what the sender has, feeding fragmented producers as it asks.
    fn write(self: &Rc<Self>) {
        loop {
            let result = {
                let Ok(mut sender) = self.sender.try_borrow_mut() else {
                    return;
                };
                let socket = self.socket.borrow();
                let Some(mut stream) = socket.as_ref() else {
                    return;
                };
                sender.send(&mut stream)
            };
            match result {
                Ok(SendStatus::NeedFragment { max_len }) => {
                    if !self.produce(max_len) {
                        return;
                    }
                }
                Ok(SendStatus::Idle | SendStatus::WouldBlock) => return,
                Err(_) => {
                    self.peer_eof.set(true);
                    return;
                }
            }
        }
    }

    /// Asks the oldest producer for the next piece; false when nothing was produced now.
    fn produce(self: &Rc<Self>, max_len: usize) -> bool {
        let taken = self.producers.borrow_mut().pop_front();
        let Some(mut producer) = taken else {
            // The sender wants a piece no producer exists for: cannot happen unless the
            // two queues disagree; abandon the message rather than hang.
            if let Ok(mut sender) = self.sender.try_borrow_mut() {
                sender.abort_fragmented();
            }
            return false;
        };
        let mut buf = std::mem::take(&mut *self.fragment_buf.borrow_mut());
        buf.resize(max_len, 0);
        let ws = self.handle();
        let mut outcome = Fragment::Error; // a panicking producer abandons its message
        self.guarded(|| outcome = producer(&ws, &mut buf[..max_len]));
        let (len, last) = match outcome {
            Fragment::Data(n) => (n, false),
            Fragment::Eof(n) => (n, true),
            Fragment::Error => (usize::MAX, true),
        };
        let mut sender = match self.sender.try_borrow_mut() {
            Ok(sender) if !self.finished.get() => sender,
            _ => return false,
        };
        let produced = if len > max_len {
            // ERROR, or a producer claiming more than the buffer holds.
            sender.abort_fragmented();
            self.producers.borrow_mut().clear();
            false
        } else if len == 0 && !last {
            self.producers.borrow_mut().push_front(producer);
            false
        } else {
            let pushed = sender.push_fragment(&buf[..len], last).is_ok();
            if !last {
                self.producers.borrow_mut().push_front(producer);
            }
            pushed
        };
        drop(sender);
        *self.fragment_buf.borrow_mut() = buf;
        produced
    }

    /// Re-arms the io watcher from what the engine wants and the user allows; ends the
    /// connection when neither direction is wanted. Inside the io callback, the
    /// callback does this once at its end.
    pub(crate) fn rearm(self: &Rc<Self>) {
        if self.in_io.get() || self.finished.get() {
            return;
        }
        if self.read_shutdown_pending.get() {
            if let Ok(mut receiver) = self.receiver.try_borrow_mut() {
                self.read_shutdown_pending.set(false);
                receiver.shutdown_read();
            }
        }
        let (want_read, pending_input) = match self.receiver.try_borrow() {
            Ok(r) => (r.want_read(), r.has_pending_input()),
            Err(_) => return, // inside a receive callback run from a nested loop
        };
        let (want_write, close_queued, drained) = match self.sender.try_borrow() {
            Ok(s) => (s.want_write(), s.close_queued(), s.queued_count() == 0),
            Err(_) => return,
        };
        let want_read = want_read && !self.peer_eof.get();
        if self.peer_eof.get() || (!want_read && !want_write) {
            self.finish();
            return;
        }
        let mut events = Events::empty();
        if want_read && !self.read_stopped.get() {
            events |= Events::READ;
        }
        if want_write && !self.write_stopped.get() {
            events |= Events::WRITE;
        }
        if let Some(io) = self.io.borrow().as_ref() {
            io.set_events(events);
            if events.is_empty() {
                io.stop();
            } else {
                io.start();
                if pending_input && events.contains(Events::READ) {
                    io.feed_event(Events::READ); // kept bytes from a pause: no fd event will come
                }
            }
        }
        if close_queued {
            self.arm_close_timer();
        }
        if drained && !want_write && !self.waiters.borrow().is_empty() {
            self.schedule_waiters();
        }
    }

    fn arm_close_timer(self: &Rc<Self>) {
        let Some(seconds) = self.close_timeout else {
            return;
        };
        let mut slot = self.close_timer.borrow_mut();
        if slot.is_none() {
            let weak = Rc::downgrade(self);
            let timer = Timer::new(&self.lp, seconds, 0.0, move |_| {
                if let Some(conn) = weak.upgrade() {
                    conn.finish();
                }
            });
            timer.start();
            *slot = Some(timer);
        }
    }

    /// `wait` callbacks fire from the loop, promptly, never inside the call that
    /// registered them.
    pub(crate) fn schedule_waiters(self: &Rc<Self>) {
        let mut slot = self.wait_timer.borrow_mut();
        let timer = slot.get_or_insert_with(|| {
            let weak = Rc::downgrade(self);
            Timer::new(&self.lp, 0.0, 0.0, move |_| {
                if let Some(conn) = weak.upgrade() {
                    conn.fire_waiters();
                }
            })
        });
        timer.start();
    }

    fn fire_waiters(self: &Rc<Self>) {
        let drained = self.finished.get()
            || self
                .sender
                .try_borrow()
                .is_ok_and(|s| s.queued_count() == 0 && !s.want_write());
        if !drained {
            return; // more was queued since: rearm schedules us again once it drains
        }
        let ws = self.handle();
        loop {
            let next = self.waiters.borrow_mut().pop_front();
            let Some(waiter) = next else { break };
            waiter(&ws);
        }
    }

    pub(crate) fn add_waiter(self: &Rc<Self>, waiter: Waiter) {
        self.waiters.borrow_mut().push_back(waiter);
        self.schedule_waiters();
    }

    pub(crate) fn add_producer(&self, producer: Producer) {
        self.producers.borrow_mut().push_back(producer);
    }

    pub(crate) fn set_read_stopped(self: &Rc<Self>, stopped: bool) {
        self.read_stopped.set(stopped);
        self.rearm();
    }

    pub(crate) fn set_write_stopped(self: &Rc<Self>, stopped: bool) {
        self.write_stopped.set(stopped);
        self.rearm();
    }

    pub(crate) fn shutdown_read(self: &Rc<Self>) {
        self.read_shutdown_pending.set(true);
        self.rearm();
    }

    pub(crate) fn shutdown_write(self: &Rc<Self>) -> Result<(), Error> {
        self.sender()?.shutdown_write();
        self.producers.borrow_mut().clear();
        self.rearm();
        Ok(())
    }

    pub(crate) fn in_io(&self) -> bool {
        self.in_io.get()
    }

    /// The end: socket closed, watchers dropped, waiters released, `on_close` called.
    pub(crate) fn finish(self: &Rc<Self>) {
        if self.finished.replace(true) {
            return;
        }
        let io = self.io.borrow_mut().take();
        drop(io); // may be our own running watcher: allowed by the ev layer
        self.close_timer.borrow_mut().take();
        if let Some(socket) = self.socket.borrow_mut().take() {
            // The peer may still be sending whenever its close has not come: after
            // our failure close, a close timeout, or shutdown_read with the queue
            // drained. Unread bytes at close would reset the connection.
            let received_close = self.status_received.get() != 1006;
            if !received_close && !self.peer_eof.get() {
                super::close_gently(&socket);
            }
            drop(socket);
        }
        self.producers.borrow_mut().clear();
        let ws = self.handle();
        self.fire_waiters();
        self.wait_timer.borrow_mut().take();
        let code = self.status_received.get();
        call(&self.callbacks.close, |cb| cb(&ws, code));
    }
}

/// Delivers receive events to the user's callbacks, with the connection handle.
struct Dispatch<'a> {
    conn: &'a Rc<Conn>,
    ws: &'a WebSocket,
}

impl Dispatch<'_> {
    /// Pause once the user stopped or shut down reading, or the connection ended.
    fn flow(&self) -> Flow {
        let conn = self.conn;
        if conn.read_stopped.get()
            || conn.read_shutdown_pending.get()
            || conn.finished.get()
            || conn.panic.borrow().is_some()
        {
            Flow::Pause
        } else {
            Flow::Continue
        }
    }
}

impl Handler for Dispatch<'_> {
    fn on_frame_start(&mut self, fin: bool, rsv: Rsv, opcode: OpCode, len: u64) -> Flow {
        let ws = self.ws;
        call(&self.conn.callbacks.frame_start, |cb| {
            self.conn.guarded(|| cb(ws, fin, rsv, opcode, len));
        });
        self.flow()
    }

    fn on_frame_chunk(&mut self, data: &[u8]) -> Flow {
        let ws = self.ws;
        call(&self.conn.callbacks.frame_chunk, |cb| {
            self.conn.guarded(|| cb(ws, data));
        });
        self.flow()
    }

    fn on_frame_end(&mut self) -> Flow {
        let ws = self.ws;
        call(&self.conn.callbacks.frame_end, |cb| {
            self.conn.guarded(|| cb(ws));
        });
        self.flow()
    }

    fn on_message(&mut self, rsv: Rsv, opcode: OpCode, data: &[u8], status: u16) -> Flow {
        let ws = self.ws;
        call(&self.conn.callbacks.msg_recv, |cb| {
            self.conn.guarded(|| cb(ws, rsv, opcode, data, status));
        });
        self.flow()
    }
}

/// Forwards the receiver's automatic replies to the sender.
struct Replies<'a> {
    conn: &'a Rc<Conn>,
}

impl ReplySink for Replies<'_> {
    fn reply(&mut self, reply: Reply<'_>) {
        let Ok(mut sender) = self.conn.sender.try_borrow_mut() else {
            return;
        };
        match reply {
            Reply::Pong(payload) => sender.queue_pong(payload),
            Reply::Close { code, reason } => {
                self.conn.status_received.set(code.unwrap_or(1005));
                sender.reply_close(code, reason);
                self.conn.producers.borrow_mut().clear();
            }
            Reply::Fail(err) => sender.fail(err.close_code()),
        }
    }
}
