//! The machinery behind a [`WebSocket`]: one io watcher re-armed after every event and
//! call, the engine's two halves in separate cells so callbacks can re-enter, one
//! deadline timer (close timeout, idle timeout, keepalive pings), and the end of the
//! connection.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::net::TcpStream;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use crate::ev::{EmbeddedIo, Events, IoTarget, Loop, Timer};
use crate::proto::{Fragment, OpCode, Receiver, RecvStatus, Role, SendStatus, Sender};

use super::deadlines::Deadlines;
use super::dispatch::{call, Callbacks, Dispatch, Replies};
use super::params::{Params, Producer};
use super::{Error, WebSocket};

type Waiter = Box<dyn FnOnce(&WebSocket)>;

/// What one queued frame costs beyond its payload, for the read backpressure
/// (about the size of the engine's record of a control frame).
const FRAME_OVERHEAD: usize = 128;

pub(crate) struct Conn {
    /// The io watcher, in this allocation (no allocation of its own); it holds the
    /// loop. Started only while `keep` holds the connection.
    io: EmbeddedIo,
    /// The connection itself while it is open: it stays alive on its loop whether
    /// or not a handle is kept. Taken by `finish`.
    keep: Cell<Option<Rc<Conn>>>,
    pub(crate) role: Role,
    /// The socket; `None` once the connection is over. The std type gives us safe
    /// read/write/shutdown on any stream socket fd.
    socket: RefCell<Option<TcpStream>>,
    deadlines: Deadlines,
    pub(crate) receiver: RefCell<Receiver>,
    pub(crate) sender: RefCell<Sender>,
    /// What an idle connection never uses, allocated on first need (see [`Cold`]).
    /// Borrowed only briefly: never across user code.
    cold: RefCell<Option<Box<Cold>>>,
    pub(super) callbacks: Callbacks,
    /// Inside the io callback: calls only record their effect; the callback re-arms.
    in_io: Cell<bool>,
    read_stopped: Cell<bool>,
    write_stopped: Cell<bool>,
    /// shutdown_read() called while the receiver was busy: applied after it returns.
    read_shutdown_pending: Cell<bool>,
    peer_eof: Cell<bool>,
    /// `abort()` was called: finish at the next safe point.
    aborted: Cell<bool>,
    status_received: Cell<u16>,
    finished: Cell<bool>,
    /// `cold.panic` holds a payload (checked after every receive event).
    panicked: Cell<bool>,
}

/// The parts of a connection that an idle one never uses, in one box allocated on
/// first need: an idle connection pays 8 bytes for them instead of ~150.
#[derive(Default)]
struct Cold {
    /// Bytes read past the handshake, fed to the receiver before the socket.
    initial_data: Vec<u8>,
    producers: VecDeque<Producer>,
    fragment_buf: Vec<u8>,
    waiters: VecDeque<Waiter>,
    wait_timer: Option<Timer>,
    /// The deadline timer (close timeout, idle timeout, keepalive pings).
    deadline_timer: Option<Timer>,
    /// A panic raised by a user callback inside the io callback: caught where it was
    /// raised so the engine's state stays whole, resumed once the watcher is re-armed
    /// (the ev layer then carries it out of the loop's `run`).
    panic: Option<Box<dyn Any + Send>>,
}

impl Cold {
    /// Whether dropping it loses nothing (every part empty, no timer).
    fn is_unused(&self) -> bool {
        self.initial_data.capacity() == 0
            && self.producers.is_empty()
            && self.fragment_buf.capacity() == 0
            && self.waiters.is_empty()
            && self.wait_timer.is_none()
            && self.deadline_timer.is_none()
            && self.panic.is_none()
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
        let has_initial = !params.initial_data.is_empty();
        let cold = has_initial.then(|| {
            Box::new(Cold {
                initial_data: params.initial_data,
                ..Cold::default()
            })
        });
        let conn = Rc::new(Conn {
            receiver: RefCell::new(Receiver::new(role, &params.config)),
            sender: RefCell::new(sender),
            io: EmbeddedIo::new(&lp),
            keep: Cell::new(None),
            role,
            socket: RefCell::new(Some(socket)),
            deadlines: Deadlines::new(params.close_timeout, params.idle_timeout, params.keepalive),
            cold: RefCell::new(cold),
            callbacks: Callbacks::new(
                params.on_msg_recv,
                params.on_close,
                (
                    params.on_frame_recv_start,
                    params.on_frame_recv_chunk,
                    params.on_frame_recv_end,
                ),
            ),
            in_io: Cell::new(false),
            read_stopped: Cell::new(false),
            write_stopped: Cell::new(false),
            read_shutdown_pending: Cell::new(false),
            peer_eof: Cell::new(false),
            aborted: Cell::new(false),
            status_received: Cell::new(1006),
            finished: Cell::new(false),
            panicked: Cell::new(false),
        });
        // The connection holds itself while open, whether or not the user keeps a
        // handle; `finish` lets go.
        conn.keep.set(Some(conn.clone()));
        EmbeddedIo::attach(&conn, fd, Events::READ);
        if has_initial {
            conn.io.feed_event(Events::READ);
        }
        if conn.deadlines.watch_recv() {
            let now = conn.lp().now();
            conn.deadlines.set_last_recv(now);
            conn.deadlines.set_last_ping(now);
        }
        conn.rearm();
        conn.arm_deadline();
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

    /// The loop the connection runs on.
    pub(crate) fn lp(&self) -> &Loop {
        self.io.event_loop()
    }

    pub(crate) fn status_received(&self) -> u16 {
        self.status_received.get()
    }

    /// The cold parts, allocated on first need. Never held across user code.
    fn cold_mut(&self) -> std::cell::RefMut<'_, Cold> {
        std::cell::RefMut::map(self.cold.borrow_mut(), |c| {
            &mut **c.get_or_insert_with(Box::default)
        })
    }

    fn has_waiters(&self) -> bool {
        self.cold
            .borrow()
            .as_ref()
            .is_some_and(|c| !c.waiters.is_empty())
    }

    /// Drops the producers outside the borrow (their drop is user code).
    fn clear_producers(&self) {
        let producers = self
            .cold
            .borrow_mut()
            .as_mut()
            .map(|c| std::mem::take(&mut c.producers));
        drop(producers);
    }

    fn handle_io(self: &Rc<Self>, events: Events) {
        if self.finished.get() {
            return;
        }
        self.in_io.set(true);
        if events.contains(Events::READ) && !self.read_stopped.get() {
            self.read();
        }
        // Write at once after reading (replies, pongs), not a loop turn later; the
        // watcher waits for WRITE only when the socket would block.
        if !self.finished.get() && !self.write_stopped.get() && !self.aborted.get() {
            self.write();
        }
        self.in_io.set(false);
        self.rearm();
        if self.panicked.replace(false) {
            let payload = self.cold.borrow_mut().as_mut().and_then(|c| c.panic.take());
            if let Some(payload) = payload {
                panic::resume_unwind(payload);
            }
        }
    }

    /// Runs user code from inside the io callback; a panic is kept for `on_io` to
    /// resume after the engine and the watcher are back in order. False if it panicked.
    pub(super) fn guarded(&self, f: impl FnOnce()) -> bool {
        match panic::catch_unwind(AssertUnwindSafe(f)) {
            Ok(()) => true,
            Err(payload) => {
                let mut cold = self.cold_mut();
                if cold.panic.is_none() {
                    cold.panic = Some(payload);
                    self.panicked.set(true);
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
        let mut dispatch = Dispatch::new(self, &ws);
        let mut replies = Replies::new(self);
        let initial = {
            let mut slot = self.cold.borrow_mut();
            match slot.as_mut() {
                Some(cold) => {
                    let initial = std::mem::take(&mut cold.initial_data);
                    if cold.is_unused() {
                        *slot = None; // it held only the initial data
                    }
                    initial
                }
                None => Vec::new(),
            }
        };
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
                // The sender raises a panic of `genmask` once its queue is whole: it
                // is kept and resumed once the watcher is re-armed.
                let mut result = Ok(SendStatus::Idle);
                if !self.guarded(|| result = sender.send(&mut stream)) {
                    return;
                }
                result
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
        let taken = self.cold_mut().producers.pop_front();
        let Some(mut producer) = taken else {
            // The sender wants a piece no producer exists for: cannot happen unless the
            // two queues disagree; abandon the message rather than hang.
            if let Ok(mut sender) = self.sender.try_borrow_mut() {
                sender.abort_fragmented();
            }
            return false;
        };
        let mut buf = std::mem::take(&mut self.cold_mut().fragment_buf);
        buf.resize(max_len, 0);
        let ws = self.handle();
        let mut outcome = Fragment::Error; // a panicking producer abandons its message
        self.guarded(|| outcome = producer(&ws, &mut buf[..max_len]));
        let (len, last) = match outcome {
            Fragment::Data(n) => (n, false),
            Fragment::Pause => (0, false), // as Data(0) until this adopts push_produced
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
            self.cold_mut().producers.clear();
            false
        } else if len == 0 && !last {
            self.cold_mut().producers.push_front(producer);
            false
        } else {
            // Stays false if `genmask` panicked (see `write`): the piece is queued all
            // the same, and writing stops until the panic has been resumed.
            let mut pushed = false;
            self.guarded(|| pushed = sender.push_fragment(&buf[..len], last).is_ok());
            if !last {
                self.cold_mut().producers.push_front(producer);
            }
            pushed
        };
        drop(sender);
        self.cold_mut().fragment_buf = buf;
        produced
    }

    /// Re-arms the io watcher from what the engine wants and the user allows; ends the
    /// connection when neither direction is wanted. Inside the io callback, the
    /// callback does this once at its end.
    #[inline]
    pub(crate) fn rearm(self: &Rc<Self>) {
        if self.in_io.get() || self.finished.get() {
            return; // a call from a callback (the very common case): nothing to do yet
        }
        self.rearm_now();
    }

    fn rearm_now(self: &Rc<Self>) {
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
        let (want_write, close_queued, drained, backlogged) = match self.sender.try_borrow() {
            Ok(s) => (
                s.want_write(),
                s.close_queued(),
                s.queued_count() == 0,
                self.backlogged(&s),
            ),
            Err(_) => return,
        };
        let want_read = want_read && !self.peer_eof.get();
        if self.peer_eof.get() || self.aborted.get() || (!want_read && !want_write) {
            self.finish();
            return;
        }
        let mut events = Events::empty();
        if want_read && !self.read_stopped.get() && !backlogged {
            events |= Events::READ;
        }
        if want_write && !self.write_stopped.get() {
            events |= Events::WRITE;
        }
        self.io.set_events(events);
        if events.is_empty() {
            self.io.stop();
        } else {
            self.io.start();
            if pending_input && events.contains(Events::READ) {
                self.io.feed_event(Events::READ); // kept bytes from a pause: no fd event will come
            }
        }
        if close_queued && !self.deadlines.closing() {
            match self.deadlines.close_timeout() {
                Some(seconds) => {
                    self.deadlines.close_at.set(self.lp().now() + seconds);
                    self.arm_deadline();
                }
                None => self.deadlines.close_at.set(f64::INFINITY),
            }
        }
        if drained && !want_write && self.has_waiters() {
            self.schedule_waiters();
        }
    }

    /// Whether the receiver should pause: the user stopped or shut down reading, the
    /// connection ended or is ending, a callback panicked, or the send queue is
    /// backlogged (what we read would only add to it).
    pub(super) fn should_pause(&self) -> bool {
        self.read_stopped.get()
            || self.read_shutdown_pending.get()
            || self.aborted.get()
            || self.finished.get()
            || self.panicked.get()
            || self.sender.try_borrow().is_ok_and(|s| self.backlogged(&s))
    }

    /// The peer's close arrived (`code` 1005 for an empty one): nothing more of ours
    /// will be produced.
    pub(super) fn note_peer_close(&self, code: u16) {
        self.status_received.set(code);
        self.clear_producers();
    }

    /// Whether the send queue holds more than the high-water mark, counting each
    /// queued frame's bookkeeping too (an automatic pong to an empty ping has no
    /// payload but still takes memory). Reading pauses meanwhile: a peer that sends
    /// pings (or anything we answer) without reading our answers is slowed down to
    /// the pace at which it reads, and our memory stays bounded.
    fn backlogged(&self, sender: &Sender) -> bool {
        sender
            .queued_bytes()
            .saturating_add(sender.queued_count().saturating_mul(FRAME_OVERHEAD))
            > sender.max_queued_bytes()
    }

    /// Makes the deadline timer fire no later than the nearest deadline. A later
    /// deadline leaves it as it is: it fires early and re-arms (libev's cheapest way to
    /// track a timeout that moves on every read).
    fn arm_deadline(self: &Rc<Self>) {
        let at = self.deadlines.next();
        if at >= self.deadlines.armed_at.get() || self.finished.get() {
            return;
        }
        self.deadlines.armed_at.set(at);
        let after = (at - self.lp().now()).max(0.0);
        let mut cold = self.cold_mut();
        let timer = cold.deadline_timer.get_or_insert_with(|| {
            let weak = Rc::downgrade(self);
            Timer::new(self.lp(), after, 0.0, move |_| {
                if let Some(conn) = weak.upgrade() {
                    conn.on_deadline();
                }
            })
        });
        timer.set(after, 0.0);
        timer.start();
    }

    /// The deadline timer fired: close timeout → the end (1006); idle timeout → close
    /// 1001; keepalive due → a ping. Then the timer is set for the next deadline.
    fn on_deadline(self: &Rc<Self>) {
        let d = &self.deadlines;
        d.armed_at.set(f64::INFINITY);
        if self.finished.get() {
            return;
        }
        let now = self.lp().now();
        if d.closing() {
            if now >= d.close_at.get() {
                self.finish();
                return;
            }
        } else if d.watch_recv() {
            let reading =
                !self.read_stopped.get() && self.receiver.try_borrow().is_ok_and(|r| r.want_read());
            if !reading {
                // A paused reader is not an idle peer: the clock starts again on resume.
                d.set_last_recv(now);
            } else if d.idle_timeout().is_some_and(|t| now >= d.last_recv() + t) {
                let closed = self
                    .sender()
                    .and_then(|mut s| Ok(s.queue_close(Some(1001), b"idle timeout")?));
                if closed.is_err() {
                    d.set_last_recv(now); // busy (a nested loop): try again a period later
                }
            } else if d
                .keepalive()
                .is_some_and(|k| now >= d.last_recv().max(d.last_ping()) + k)
            {
                // A full queue skips this ping: the peer is not reading anyway.
                if let Ok(mut sender) = self.sender() {
                    let _ = sender.queue_msg(OpCode::Ping, b"");
                }
                d.set_last_ping(now);
            }
            self.rearm();
        }
        self.arm_deadline();
    }

    /// `wait` callbacks fire from the loop, promptly, never inside the call that
    /// registered them.
    pub(crate) fn schedule_waiters(self: &Rc<Self>) {
        let mut cold = self.cold_mut();
        let timer = cold.wait_timer.get_or_insert_with(|| {
            let weak = Rc::downgrade(self);
            Timer::new(self.lp(), 0.0, 0.0, move |_| {
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
            let next = self
                .cold
                .borrow_mut()
                .as_mut()
                .and_then(|c| c.waiters.pop_front());
            let Some(waiter) = next else { break };
            waiter(&ws);
        }
    }

    pub(crate) fn add_waiter(self: &Rc<Self>, waiter: Waiter) {
        self.cold_mut().waiters.push_back(waiter);
        self.schedule_waiters();
    }

    pub(crate) fn add_producer(&self, producer: Producer) {
        self.cold_mut().producers.push_back(producer);
    }

    pub(crate) fn set_read_stopped(self: &Rc<Self>, stopped: bool) {
        if !stopped && self.read_stopped.get() {
            self.note_recv(); // the idle clock restarts when reading resumes
        }
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
        self.clear_producers();
        self.rearm();
        Ok(())
    }

    /// Ends the connection at the next safe point: at once, or when the running io
    /// callback returns (the receiver may be reading from the socket right now).
    pub(crate) fn abort(self: &Rc<Self>) {
        self.aborted.set(true);
        self.rearm();
    }

    /// Something arrived from the peer (a frame began or a piece of payload came):
    /// the idle and keepalive clocks start again.
    #[inline]
    pub(super) fn note_recv(&self) {
        if self.deadlines.watch_recv() {
            self.deadlines.set_last_recv(self.lp().now());
        }
    }

    pub(crate) fn in_io(&self) -> bool {
        self.in_io.get()
    }

    /// The end: socket closed, watchers dropped, waiters released, `on_close` called.
    pub(crate) fn finish(self: &Rc<Self>) {
        if self.finished.replace(true) {
            return;
        }
        self.io.stop(); // may be our own running watcher: allowed by libev
        let keep = self.keep.take();
        drop(keep); // the caller holds another reference
        let timer = self
            .cold
            .borrow_mut()
            .as_mut()
            .and_then(|c| c.deadline_timer.take());
        drop(timer); // may be our own running timer: allowed by the ev layer
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
        self.clear_producers();
        let ws = self.handle();
        self.fire_waiters();
        let timer = self
            .cold
            .borrow_mut()
            .as_mut()
            .and_then(|c| c.wait_timer.take());
        drop(timer);
        let code = self.status_received.get();
        call(&self.callbacks.close, |cb| cb(&ws, code));
    }
}

// SAFETY: `embedded_io` returns the `io` field, stored inline in the connection.
unsafe impl IoTarget for Conn {
    fn embedded_io(&self) -> &EmbeddedIo {
        &self.io
    }

    fn on_io(self: &Rc<Self>, events: Events) {
        self.handle_io(events);
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    /// Not an assertion: prints what an idle connection's parts take, for the
    /// idle-memory work (`cargo test size_report -- --nocapture`).
    #[test]
    fn size_report() {
        println!(
            "Conn {} Receiver {} Sender {} Deadlines {} Callbacks {} Io {} Timer {}",
            std::mem::size_of::<Conn>(),
            std::mem::size_of::<Receiver>(),
            std::mem::size_of::<Sender>(),
            std::mem::size_of::<Deadlines>(),
            std::mem::size_of::<Callbacks>(),
            std::mem::size_of::<EmbeddedIo>(),
            std::mem::size_of::<Timer>(),
        );
    }
}
