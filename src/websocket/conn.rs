//! The machinery behind a [`WebSocket`]: the connection's life as one state
//! ([`State`]), one io watcher re-armed after every event and call, the engine's
//! two halves, one timer (deadlines, `wait` callbacks, an end decided outside the
//! io callback), and the end of the connection.
//!
//! Two rules keep user code safe to run anywhere: no `RefCell` is borrowed while
//! user code runs (the receiver is taken out of its cell while it dispatches;
//! every other borrow is released before a callback), and the end of a connection
//! (`on_close`) runs only from the loop, never inside a call of the user's.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::panic::{self, AssertUnwindSafe};
use std::rc::{Rc, Weak};
use std::time::Duration;

use crate::ev::{Events, Io, Loop, Timer};
use crate::proto::{OpCode, Produced, Receiver, RecvStatus, Role, SendStatus, Sender};

use super::deadlines::{Deadlines, Due};
use super::dispatch::{call, Callbacks, Dispatch, Replies};
use super::params::{Params, Producer};
use super::transport::{Plain, Transport};
use super::{CloseCause, Error, Waited, WebSocket};

pub(crate) type Waiter = Box<dyn FnOnce(&WebSocket, Waited)>;

/// What one queued frame costs beyond its payload, for the read backpressure
/// (about the size of the engine's record of a control frame).
const FRAME_OVERHEAD: usize = 128;

/// The life of a connection. Every transition is in this file: `begin_closing`,
/// `end`, `settle` and `finish`.
#[derive(Debug)]
enum State {
    /// Reading and writing as the engine wants.
    Open,
    /// The connection is on its way out for `cause`: a close is queued or was
    /// received, the peer's EOF came, or reading was shut down. The send queue
    /// drains, bounded by the close timeout (which counts from the last progress);
    /// reading goes on only while the engine waits for the peer's close.
    Closing { cause: CloseCause },
    /// The end is decided; the loop carries it out at the next safe point (when the
    /// io callback returns, or from the timer).
    Ending { cause: CloseCause },
    /// Over: socket closed, `on_close` called.
    Closed { cause: CloseCause },
}

impl State {
    fn is_live(&self) -> bool {
        matches!(self, State::Open | State::Closing { .. })
    }
}

pub(crate) struct Conn {
    lp: Loop,
    /// READ/WRITE on the socket; its callback holds a weak reference.
    io: Io,
    pub(crate) role: Role,
    /// The transport; taken (and closed) by `finish`. Borrowed only for one read,
    /// write or query at a time, never across user code.
    transport: RefCell<Option<Box<dyn Transport>>>,
    state: RefCell<State>,
    /// The connection itself while it is not closed: it stays alive on its loop
    /// whether or not a handle is kept. Taken by `finish`.
    keep: Cell<Option<Rc<Conn>>>,
    /// The receiver; `None` while it is dispatching to user callbacks (taken out
    /// of the cell, so that nothing is borrowed while user code runs).
    receiver: RefCell<Option<Receiver>>,
    /// The sender. The only user code run while it is borrowed is `genmask`
    /// (documented: calls from there return [`Error::Busy`]).
    pub(crate) sender: RefCell<Sender>,
    deadlines: RefCell<Deadlines>,
    /// When the timer is set to fire (loop time); `None` while it is stopped.
    timer_at: Cell<Option<f64>>,
    pub(super) callbacks: Callbacks,
    read_stopped: Cell<bool>,
    write_stopped: Cell<bool>,
    /// `shutdown_read()` came while the receiver was dispatching: applied when it
    /// is back.
    read_shutdown_pending: Cell<bool>,
    /// Inside the io callback (or a direct flush): calls only record their effect,
    /// and the end waits until it returns.
    in_io: Cell<bool>,
    /// A producer is out of its queue, being called.
    producing: Cell<bool>,
    status_received: Cell<u16>,
    /// `cold.panic` holds a payload.
    panicked: Cell<bool>,
    /// What an idle connection never uses, allocated on first need.
    /// Borrowed only briefly: never across user code.
    cold: RefCell<Option<Box<Cold>>>,
}

/// The parts of a connection that an idle one never uses, in one box allocated on
/// first need.
#[derive(Default)]
struct Cold {
    /// Bytes read past the handshake, fed to the receiver before the socket.
    initial_data: Vec<u8>,
    producers: VecDeque<Producer>,
    fragment_buf: Vec<u8>,
    waiters: VecDeque<Waiter>,
    timer: Option<Timer>,
    /// The reason of the peer's close frame.
    reason_received: Option<String>,
    /// Messages left unsent at the end.
    unsent: usize,
    /// The code of the close we sent, kept at the end.
    code_sent: Option<u16>,
    /// A panic raised by a user callback inside the io callback: caught where it
    /// was raised so the engine's state stays whole, resumed once the watcher is
    /// re-armed (the ev layer then carries it out of the loop's `run`).
    panic: Option<Box<dyn Any + Send>>,
}

/// Reads and writes the transport, borrowing it for one call at a time; counts
/// what was written (progress, for the close timeout).
struct Through<'a> {
    conn: &'a Conn,
    written: usize,
}

impl Read for Through<'_> {
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.conn.transport.try_borrow_mut().as_deref_mut() {
            Ok(Some(t)) => t.read(buf),
            Ok(None) => Ok(0),
            Err(_) => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Write for Through<'_> {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match self.conn.transport.try_borrow_mut().as_deref_mut() {
            Ok(Some(t)) => t.write(buf)?,
            Ok(None) => return Err(io::ErrorKind::NotConnected.into()),
            Err(_) => return Err(io::ErrorKind::WouldBlock.into()),
        };
        self.written += n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

thread_local! {
    /// The open connections of this thread, by address, with their loop: what
    /// [`abort_all`] ends.
    static OPEN: RefCell<HashMap<usize, (usize, Weak<Conn>)>> = RefCell::new(HashMap::new());
}

/// Ends every connection on `lp` now (see [`super::abort_all`]).
pub(crate) fn abort_all(lp: &Loop) -> usize {
    let key = lp.as_raw() as usize;
    let conns: Vec<Rc<Conn>> = OPEN.with(|open| {
        open.borrow()
            .values()
            .filter(|(l, _)| *l == key)
            .filter_map(|(_, weak)| weak.upgrade())
            .collect()
    });
    let mut ended = 0;
    for conn in conns {
        if conn.end(CloseCause::Aborted) {
            ended += 1;
        }
        if !conn.in_io.get() {
            conn.finish();
        }
    }
    ended
}

impl Conn {
    pub(crate) fn open(role: Role, params: Params) -> Result<WebSocket, Error> {
        let lp = match params.event_loop {
            Some(lp) => lp,
            None => Loop::default_loop()?,
        };
        let transport = Plain::new(params.socket)?;
        let fd = transport.fd();
        let mut sender = Sender::new(role, &params.config);
        if let Some(genmask) = params.genmask {
            sender.set_mask_source(genmask);
        }
        let cold = (!params.initial_data.is_empty()).then(|| {
            Box::new(Cold {
                initial_data: params.initial_data,
                ..Cold::default()
            })
        });
        let now = lp.now();
        let io = Io::new(&lp, fd, Events::READ, |_| {})
            .map_err(|err| Error::Io(io::Error::new(io::ErrorKind::InvalidInput, err)))?;
        let conn = Rc::new_cyclic(|weak: &Weak<Conn>| {
            let weak = weak.clone();
            io.set_callback(move |events| {
                if let Some(conn) = weak.upgrade() {
                    conn.handle_io(events);
                }
            });
            Conn {
                io,
                lp: lp.clone(),
                role,
                transport: RefCell::new(Some(Box::new(transport))),
                state: RefCell::new(State::Open),
                keep: Cell::new(None),
                receiver: RefCell::new(Some(Receiver::new(role, &params.config))),
                sender: RefCell::new(sender),
                deadlines: RefCell::new(Deadlines::new(params.timeouts, now)),
                timer_at: Cell::new(None),
                callbacks: Callbacks::new(
                    params.on_msg_recv,
                    params.on_close,
                    (
                        params.on_frame_recv_start,
                        params.on_frame_recv_chunk,
                        params.on_frame_recv_end,
                    ),
                ),
                read_stopped: Cell::new(false),
                write_stopped: Cell::new(false),
                read_shutdown_pending: Cell::new(false),
                in_io: Cell::new(false),
                producing: Cell::new(false),
                status_received: Cell::new(1006),
                panicked: Cell::new(false),
                cold: RefCell::new(cold),
            }
        });
        conn.keep.set(Some(conn.clone()));
        OPEN.with(|open| {
            let entry = (lp.as_raw() as usize, Rc::downgrade(&conn));
            open.borrow_mut().insert(Rc::as_ptr(&conn) as usize, entry);
        });
        conn.settle(false);
        Ok(WebSocket { conn })
    }

    pub(crate) fn handle(self: &Rc<Self>) -> WebSocket {
        WebSocket { conn: self.clone() }
    }

    /// The loop the connection runs on.
    pub(crate) fn lp(&self) -> &Loop {
        &self.lp
    }

    /// Whether the connection is over or its end is decided (calls then fail).
    pub(crate) fn is_finished(&self) -> bool {
        !self.state.borrow().is_live()
    }

    pub(crate) fn check_open(&self) -> Result<(), Error> {
        if self.state.borrow().is_live() {
            Ok(())
        } else {
            Err(Error::Closed)
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

    pub(crate) fn reason_received(&self) -> Option<String> {
        self.cold
            .borrow()
            .as_ref()
            .and_then(|c| c.reason_received.clone())
    }

    pub(crate) fn status_sent(&self) -> Option<u16> {
        if matches!(*self.state.borrow(), State::Closed { .. }) {
            return self.cold.borrow().as_ref().and_then(|c| c.code_sent);
        }
        let sender = self.sender.try_borrow().ok()?;
        sender.close_sent().then(|| sender.status_code_sent())
    }

    pub(crate) fn cause(&self) -> Option<CloseCause> {
        match &*self.state.borrow() {
            State::Open => None,
            State::Closing { cause } | State::Ending { cause } | State::Closed { cause } => {
                Some(cause.clone())
            }
        }
    }

    pub(crate) fn peer_addr(&self) -> io::Result<SocketAddr> {
        match self.transport.try_borrow().as_deref() {
            Ok(Some(t)) => t.peer_addr(),
            _ => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    pub(crate) fn raw_fd(&self) -> Option<RawFd> {
        match self.transport.try_borrow().as_deref() {
            Ok(Some(t)) => Some(t.fd()),
            _ => None,
        }
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

    fn has_initial_data(&self) -> bool {
        self.cold
            .borrow()
            .as_ref()
            .is_some_and(|c| !c.initial_data.is_empty())
    }

    // ---- transitions -------------------------------------------------------

    /// The connection starts closing for `cause` (a no-op once it is closing,
    /// except that a failure replaces a close of ours that was going normally: the
    /// user asking why `on_close` got 1006 wants the failure).
    pub(super) fn begin_closing(&self, cause: CloseCause) {
        let mut state = self.state.borrow_mut();
        match &*state {
            State::Open => *state = State::Closing { cause },
            State::Closing { cause: old } if old.yields_to(&cause) => {
                *state = State::Closing { cause }
            }
            _ => return,
        }
        drop(state);
        self.deadlines.borrow_mut().on_closing(self.lp.now());
    }

    /// Decides the end for `cause`; the loop carries it out. False if it was
    /// already decided.
    fn end(&self, cause: CloseCause) -> bool {
        let mut state = self.state.borrow_mut();
        let cause = match &*state {
            State::Open => cause,
            State::Closing { cause: old } if old.yields_to(&cause) => cause,
            State::Closing { cause: old } => old.clone(),
            State::Ending { .. } | State::Closed { .. } => return false,
        };
        *state = State::Ending { cause };
        true
    }

    /// Brings the watcher and the timer in line with the state, the engine and
    /// the user's pauses; decides the end when neither direction is wanted. At a
    /// safe point (the end of the io callback, the timer) the end is carried out
    /// at once; otherwise (a call of the user's) from the loop, a moment later.
    pub(crate) fn settle(self: &Rc<Self>, at_safe_point: bool) {
        if self.in_io.get() {
            return; // the io callback settles once at its end
        }
        if self.state.borrow().is_live() {
            self.apply_read_shutdown();
            self.sync_producers();
            self.decide();
        }
        if matches!(*self.state.borrow(), State::Ending { .. }) {
            if at_safe_point {
                self.finish();
            } else {
                self.arm_timer(self.lp.now());
            }
            return;
        }
        if matches!(*self.state.borrow(), State::Closed { .. }) {
            return;
        }
        let now = self.lp.now();
        if self.has_waiters() && self.drained() {
            self.arm_timer(now);
        }
        if let Some(at) = self.deadlines.borrow().poll_timeout() {
            self.arm_timer(at);
        }
    }

    /// The live part of `settle`: what to wait for, or the end.
    fn decide(self: &Rc<Self>) {
        let (want_read, pending_input) = match &*self.receiver.borrow() {
            Some(r) => (
                r.want_read(),
                r.has_pending_input() || self.has_initial_data(),
            ),
            None => return, // dispatching (a nested loop run in a receive callback)
        };
        let Ok(sender) = self.sender.try_borrow() else {
            return; // inside genmask
        };
        let want_write = sender.want_write();
        let backlogged = backlogged(&sender);
        drop(sender);
        if !want_read && !want_write {
            self.end(CloseCause::Shutdown);
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
            return;
        }
        self.io.start();
        if pending_input && events.contains(Events::READ) {
            // Bytes kept from a pause or from the handshake: no fd event will
            // announce them. Fed on every settle, since restarting the watcher
            // clears a pending event.
            self.io.feed_event(Events::READ);
        }
    }

    /// The end: socket closed, watchers stopped, producers dropped, waiters
    /// released, `on_close` called; in that order, with nothing borrowed while
    /// user code runs.
    pub(crate) fn finish(self: &Rc<Self>) {
        let cause = {
            let mut state = self.state.borrow_mut();
            let cause = match &*state {
                State::Closed { .. } => return,
                State::Open => CloseCause::Aborted,
                State::Closing { cause } | State::Ending { cause } => cause.clone(),
            };
            *state = State::Closed {
                cause: cause.clone(),
            };
            cause
        };
        self.io.stop();
        OPEN.with(|open| open.borrow_mut().remove(&(Rc::as_ptr(self) as usize)));
        let keep = self.keep.take();
        let timer = self.cold.borrow_mut().as_mut().and_then(|c| c.timer.take());
        self.timer_at.set(None);
        drop(timer); // may be our own running timer: allowed by the ev layer
        let transport = self.transport.borrow_mut().take();
        if let Some(transport) = transport {
            // The peer may still be sending unless its close or its EOF came.
            let gently = self.status_received.get() == 1006
                && !matches!(cause, CloseCause::Eof | CloseCause::Io(_));
            transport.close(gently);
        }
        let (unsent, code_sent) = match self.sender.try_borrow_mut() {
            Ok(mut sender) => {
                let unsent = sender.queued_count();
                let code_sent = sender.close_sent().then(|| sender.status_code_sent());
                sender.shutdown_write();
                (unsent, code_sent)
            }
            Err(_) => (0, None),
        };
        if let Some(receiver) = self.receiver.borrow_mut().as_mut() {
            receiver.shutdown_read();
        }
        let (producers, waiters) = {
            let mut cold = self.cold_mut();
            cold.unsent = unsent;
            cold.code_sent = code_sent;
            (
                std::mem::take(&mut cold.producers),
                std::mem::take(&mut cold.waiters),
            )
        };
        drop(producers);
        let ws = self.handle();
        let waited = if unsent == 0 {
            Waited::Drained
        } else {
            Waited::Closed { unsent }
        };
        for waiter in waiters {
            waiter(&ws, waited);
        }
        let code = self.status_received.get();
        call(&self.callbacks.close, |cb| cb(&ws, code));
        drop(keep); // the caller holds another reference
    }

    // ---- events ------------------------------------------------------------

    fn handle_io(self: &Rc<Self>, events: Events) {
        if !self.state.borrow().is_live() {
            return;
        }
        self.in_io.set(true);
        if events.contains(Events::READ) && !self.read_stopped.get() {
            self.read();
        }
        // Write at once after reading (replies, pongs), not a loop turn later; the
        // watcher waits for WRITE only when the socket would block.
        if !self.write_stopped.get() {
            self.write();
        }
        self.in_io.set(false);
        self.settle(true);
        self.resume_panic();
    }

    /// Raises again a panic of a user callback, now that the connection is whole.
    fn resume_panic(&self) {
        if self.panicked.replace(false) {
            let payload = self.cold.borrow_mut().as_mut().and_then(|c| c.panic.take());
            if let Some(payload) = payload {
                panic::resume_unwind(payload);
            }
        }
    }

    /// Runs user code from inside the io callback; a panic is kept and resumed
    /// once the engine and the watcher are back in order. False if it panicked.
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
        if !self.state.borrow().is_live() {
            return;
        }
        let Some(mut receiver) = self.receiver.borrow_mut().take() else {
            return; // dispatching already (a nested loop run in a receive callback)
        };
        let ws = self.handle();
        let mut dispatch = Dispatch::new(self, &ws);
        let mut replies = Replies::new(self);
        let initial = self
            .cold
            .borrow_mut()
            .as_mut()
            .map(|c| std::mem::take(&mut c.initial_data))
            .unwrap_or_default();
        let mut status = Ok(RecvStatus::WouldBlock);
        if receiver.has_pending_input() {
            status = Ok(receiver.resume(&mut dispatch, &mut replies));
        }
        if matches!(status, Ok(RecvStatus::WouldBlock)) && !initial.is_empty() {
            status = Ok(receiver.feed(&initial, &mut dispatch, &mut replies));
        }
        if matches!(status, Ok(RecvStatus::WouldBlock)) && !self.should_pause() {
            let mut through = Through {
                conn: self,
                written: 0,
            };
            status = receiver.recv_available(&mut through, &mut dispatch, &mut replies);
        }
        match status {
            Ok(RecvStatus::Eof) => {
                // The peer is done sending: what we queued still goes out (bounded
                // by the close timeout), then the connection ends (1006).
                receiver.shutdown_read();
                self.begin_closing(CloseCause::Eof);
            }
            Err(err) => {
                receiver.shutdown_read();
                self.end(CloseCause::Io(err.kind()));
            }
            Ok(_) => {}
        }
        *self.receiver.borrow_mut() = Some(receiver);
        self.apply_read_shutdown();
    }

    fn apply_read_shutdown(&self) {
        if !self.read_shutdown_pending.get() {
            return;
        }
        let applied = match self.receiver.borrow_mut().as_mut() {
            Some(receiver) => {
                receiver.shutdown_read();
                true
            }
            None => false, // dispatching: applied when it is back
        };
        if applied {
            self.read_shutdown_pending.set(false);
            self.begin_closing(CloseCause::Shutdown);
        }
    }

    /// Writes what the sender has, feeding fragmented producers as it asks.
    fn write(self: &Rc<Self>) {
        while self.state.borrow().is_live() {
            let mut through = Through {
                conn: self,
                written: 0,
            };
            let result = {
                let Ok(mut sender) = self.sender.try_borrow_mut() else {
                    return;
                };
                // The sender raises a panic of `genmask` once its queue is whole: it
                // is kept and resumed once the watcher is re-armed.
                let mut result = Ok(SendStatus::Idle);
                if !self.guarded(|| result = sender.send(&mut through)) {
                    return;
                }
                result
            };
            if through.written > 0 {
                self.deadlines.borrow_mut().on_write_progress(self.lp.now());
            }
            match result {
                Ok(SendStatus::NeedFragment { max_len }) => {
                    if !self.produce(max_len) {
                        return;
                    }
                }
                Ok(SendStatus::Idle | SendStatus::WouldBlock) => return,
                Err(err) => {
                    self.end(CloseCause::Io(err.kind()));
                    return;
                }
            }
        }
    }

    /// Asks the oldest producer for the next piece; false when nothing more can be
    /// written now. What the producer returned is interpreted by the sender
    /// ([`Sender::push_produced`]), the same code as the engine's.
    fn produce(self: &Rc<Self>, max_len: usize) -> bool {
        let taken = self.cold_mut().producers.pop_front();
        let Some(mut producer) = taken else {
            // The sender wants a piece no producer exists for: cannot happen unless
            // the two queues disagree; abandon the message rather than hang.
            if let Ok(mut sender) = self.sender.try_borrow_mut() {
                sender.abort_fragmented();
            }
            self.begin_closing(CloseCause::ProducerError);
            return false;
        };
        let mut buf = std::mem::take(&mut self.cold_mut().fragment_buf);
        buf.resize(max_len, 0);
        let ws = self.handle();
        let mut outcome = crate::proto::Fragment::Error; // a panic abandons the message
        self.producing.set(true);
        self.guarded(|| outcome = producer(&ws, &mut buf[..max_len]));
        self.producing.set(false);
        let produced = match self.sender.try_borrow_mut() {
            // Still its message's turn? (The producer may have ended the
            // connection or shut writing down.)
            Ok(mut sender) if self.state.borrow().is_live() && sender.fragmented_count() > 0 => {
                self.guarded_push(&mut sender, &buf[..max_len], outcome)
            }
            _ => None,
        };
        self.cold_mut().fragment_buf = buf;
        let keep = matches!(
            produced,
            Some(Produced::Queued | Produced::NotReady | Produced::Paused)
        );
        if keep {
            self.cold_mut().producers.push_front(producer);
        } else {
            drop(producer); // user code: nothing is borrowed
        }
        match produced {
            Some(Produced::Failed) => {
                self.begin_closing(CloseCause::ProducerError);
                self.sync_producers();
                false
            }
            Some(Produced::Queued | Produced::Finished) => true,
            _ => false,
        }
    }

    /// `push_produced` under the panic guard (a client's `genmask` runs in it).
    fn guarded_push(
        &self,
        sender: &mut Sender,
        buf: &[u8],
        outcome: crate::proto::Fragment,
    ) -> Option<Produced> {
        let mut produced = None;
        self.guarded(|| produced = Some(sender.push_produced(buf, outcome)));
        produced
    }

    /// Drops the producers whose messages the sender no longer has (a close, an
    /// abort or a shutdown drops fragmented messages from the back of its queue),
    /// outside every borrow (their drop is user code).
    fn sync_producers(&self) {
        let Ok(sender) = self.sender.try_borrow() else {
            return;
        };
        let queued = sender
            .fragmented_count()
            .saturating_sub(self.producing.get() as usize);
        drop(sender);
        let dropped = self
            .cold
            .borrow_mut()
            .as_mut()
            .filter(|c| c.producers.len() > queued)
            .map(|c| c.producers.split_off(queued));
        drop(dropped);
    }

    /// Whether the send queue is empty and nothing waits to be written.
    fn drained(&self) -> bool {
        self.sender
            .try_borrow()
            .is_ok_and(|s| s.queued_count() == 0 && !s.want_write())
    }

    /// Whether the receiver should pause: the user stopped or shut down reading,
    /// the connection is ending, a callback panicked, or the send queue is
    /// backlogged (what we read would only add to it).
    pub(super) fn should_pause(&self) -> bool {
        self.read_stopped.get()
            || self.read_shutdown_pending.get()
            || self.panicked.get()
            || !self.state.borrow().is_live()
            || self.sender.try_borrow().is_ok_and(|s| backlogged(&s))
    }

    /// The peer's close arrived (`code` 1005 for an empty one).
    pub(super) fn note_peer_close(&self, code: u16, reason: &[u8]) {
        self.status_received.set(code);
        if !reason.is_empty() {
            self.cold_mut().reason_received = Some(String::from_utf8_lossy(reason).into_owned());
        }
        self.begin_closing(CloseCause::PeerClose);
    }

    /// Something arrived from the peer (a frame began or a piece of payload came):
    /// the idle and keepalive clocks start again.
    #[inline]
    pub(super) fn note_recv(&self) {
        let mut deadlines = self.deadlines.borrow_mut();
        if deadlines.watch_recv() {
            deadlines.on_recv(self.lp.now());
        }
    }

    // ---- the timer -----------------------------------------------------------

    /// Makes the timer fire no later than `at` (loop time). A later time leaves it
    /// as it is: it fires early and re-arms (libev's cheapest way to track a
    /// deadline that moves on every read).
    fn arm_timer(self: &Rc<Self>, at: f64) {
        if self.timer_at.get().is_some_and(|armed| armed <= at) {
            return;
        }
        if matches!(*self.state.borrow(), State::Closed { .. }) {
            return;
        }
        self.timer_at.set(Some(at));
        let after = Duration::from_secs_f64((at - self.lp.now()).max(0.0));
        let mut cold = self.cold_mut();
        let timer = cold.timer.get_or_insert_with(|| {
            let weak = Rc::downgrade(self);
            Timer::new(&self.lp, Duration::ZERO, Duration::ZERO, move |_| {
                if let Some(conn) = weak.upgrade() {
                    conn.on_timer();
                }
            })
        });
        timer.set(after, Duration::ZERO);
        timer.start();
    }

    /// The timer fired: the end if it is decided, a deadline if one is due, the
    /// `wait` callbacks if the queue is drained.
    fn on_timer(self: &Rc<Self>) {
        self.timer_at.set(None);
        if self.in_io.get() {
            // A nested loop run inside one of our io callbacks: the io callback
            // settles (and re-arms) when it returns.
            return;
        }
        if matches!(*self.state.borrow(), State::Ending { .. }) {
            self.finish();
            return;
        }
        if !self.state.borrow().is_live() {
            return;
        }
        let due = self.deadlines.borrow_mut().handle_timeout(self.lp.now());
        match due {
            Due::CloseTimeout => {
                self.end(CloseCause::CloseTimeout);
                self.finish();
                return;
            }
            Due::IdleClose => {
                let queued = self
                    .sender()
                    .and_then(|mut s| Ok(s.queue_close(Some(1001), b"idle timeout")?));
                if queued.is_ok() {
                    self.begin_closing(CloseCause::IdleTimeout);
                }
            }
            Due::Ping => {
                // A full queue skips this ping: the peer is not reading anyway.
                if let Ok(mut sender) = self.sender() {
                    let _ = sender.queue_msg(OpCode::Ping, b"");
                }
            }
            Due::Nothing => {}
        }
        if self.has_waiters() && self.drained() {
            self.fire_waiters();
        }
        self.settle(true);
    }

    /// Calls the `wait` callbacks registered so far, in order (the queue is
    /// drained).
    fn fire_waiters(self: &Rc<Self>) {
        let ws = self.handle();
        loop {
            let next = self
                .cold
                .borrow_mut()
                .as_mut()
                .and_then(|c| c.waiters.pop_front());
            let Some(waiter) = next else { break };
            waiter(&ws, Waited::Drained);
            if !self.drained() || !self.state.borrow().is_live() {
                break; // a waiter queued more (or ended the connection)
            }
        }
    }

    // ---- calls ---------------------------------------------------------------

    pub(crate) fn add_waiter(self: &Rc<Self>, waiter: Waiter) {
        self.cold_mut().waiters.push_back(waiter);
        self.settle(false);
    }

    pub(crate) fn add_producer(&self, producer: Producer) {
        self.cold_mut().producers.push_back(producer);
    }

    pub(crate) fn set_read_stopped(self: &Rc<Self>, stopped: bool) {
        if stopped != self.read_stopped.get() {
            // The time of the call itself, not the loop's cached time (a callback
            // may have run long since the loop last read the clock).
            self.lp.update_now();
            let now = self.lp.now();
            self.deadlines.borrow_mut().on_read_paused(stopped, now);
        }
        self.read_stopped.set(stopped);
        self.settle(false);
    }

    pub(crate) fn set_write_stopped(self: &Rc<Self>, stopped: bool) {
        self.write_stopped.set(stopped);
        self.settle(false);
    }

    pub(crate) fn shutdown_read(self: &Rc<Self>) {
        self.read_shutdown_pending.set(true);
        self.settle(false);
    }

    pub(crate) fn shutdown_write(self: &Rc<Self>) -> Result<(), Error> {
        self.sender()?.shutdown_write();
        self.settle(false);
        Ok(())
    }

    pub(crate) fn close(self: &Rc<Self>, code: Option<u16>, reason: &[u8]) -> Result<(), Error> {
        self.sender()?.queue_close(code, reason)?;
        self.begin_closing(CloseCause::LocalClose);
        self.settle(false);
        Ok(())
    }

    pub(crate) fn resume_fragmented(self: &Rc<Self>) -> Result<(), Error> {
        self.sender()?.resume_fragmented();
        self.settle(false);
        Ok(())
    }

    /// Ends the connection from the loop, at once (`abort`).
    pub(crate) fn abort(self: &Rc<Self>) -> Result<(), Error> {
        self.check_open()?;
        self.end(CloseCause::Aborted);
        self.settle(false);
        Ok(())
    }

    /// `wait_blocking`: writes until the queue is drained, the connection ends,
    /// or nothing can make progress.
    pub(crate) fn wait_blocking(self: &Rc<Self>) -> Result<Waited, Error> {
        self.check_open()?;
        loop {
            if !self.state.borrow().is_live() {
                let unsent = self.cold.borrow().as_ref().map_or(0, |c| c.unsent);
                return Ok(if unsent == 0 {
                    Waited::Drained
                } else {
                    Waited::Closed { unsent }
                });
            }
            if self.drained() {
                return Ok(Waited::Drained);
            }
            if self.stalled() {
                return Err(Error::Stalled);
            }
            // Write directly (inside one of our own callbacks the loop would not call
            // us), then let the loop run once, woken when the socket takes more.
            let in_io = self.in_io.replace(true);
            self.write();
            self.in_io.set(in_io);
            if !in_io {
                self.settle(true);
            }
            if self.state.borrow().is_live() && !self.drained() && !self.stalled() {
                let fd = self.raw_fd().ok_or(Error::Closed)?;
                let writable = Io::new(&self.lp, fd, Events::WRITE, |_| {})
                    .map_err(|err| Error::Io(io::Error::new(io::ErrorKind::InvalidInput, err)))?;
                writable.start();
                self.lp.run_with(crate::ev::RunFlags::Once);
            }
        }
    }

    /// Whether writing cannot make progress whatever the peer does: the user
    /// stopped writing, or the head of the queue is a paused producer.
    fn stalled(&self) -> bool {
        if self.write_stopped.get() {
            return true;
        }
        let Ok(sender) = self.sender.try_borrow() else {
            return true;
        };
        !sender.want_write()
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Normally `finish` did this; at thread exit the table may be gone already.
        let _ = OPEN.try_with(|open| {
            if let Ok(mut open) = open.try_borrow_mut() {
                open.remove(&(self as *const Conn as usize));
            }
        });
    }
}

/// Whether the send queue holds more than the high-water mark, counting each
/// queued frame's bookkeeping too (an automatic pong to an empty ping has no
/// payload but still takes memory). Reading pauses meanwhile: a peer that sends
/// pings (or anything we answer) without reading our answers is slowed down to
/// the pace at which it reads, and our memory stays bounded.
fn backlogged(sender: &Sender) -> bool {
    sender
        .queued_bytes()
        .saturating_add(sender.queued_count().saturating_mul(FRAME_OVERHEAD))
        > sender.max_queued_bytes()
}

#[cfg(test)]
mod size_tests {
    use super::*;

    /// Not an assertion: prints what an idle connection's parts take, for the
    /// idle-memory work (`cargo test size_report -- --nocapture`).
    #[test]
    fn size_report() {
        println!(
            "Conn {} State {} Receiver {} Sender {} Deadlines {} Callbacks {} Cause {}",
            std::mem::size_of::<Conn>(),
            std::mem::size_of::<RefCell<State>>(),
            std::mem::size_of::<RefCell<Option<Receiver>>>(),
            std::mem::size_of::<RefCell<Sender>>(),
            std::mem::size_of::<RefCell<Deadlines>>(),
            std::mem::size_of::<Callbacks>(),
            std::mem::size_of::<CloseCause>(),
        );
    }
}
