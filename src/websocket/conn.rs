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
use super::transport::{Parts, Transport};
use super::{CloseCause, Error, Waited, WebSocket};

mod io_events;
mod timer;

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
    /// User code outside the io callback (a `wait` callback, a producer's drop) is
    /// running: the end waits for it to return.
    user_depth: Cell<u32>,
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

thread_local! {
    /// The open connections of this thread, by address, with their loop: what
    /// [`abort_all`] ends. An entry lives as long as the connection's `keep` (both
    /// end in `finish`), so no connection is freed while it is listed.
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
        if !conn.in_io.get() && conn.user_depth.get() == 0 {
            conn.finish();
        }
    }
    ended
}

impl Conn {
    pub(crate) fn open(role: Role, mut params: Params) -> Result<WebSocket, Error> {
        let on_close = params.take_on_close();
        let lp = match params.event_loop {
            Some(lp) => lp,
            None => Loop::default_loop()?,
        };
        let parts = Parts {
            #[cfg(feature = "tls")]
            tls: params.tls,
            ..Parts::plain(params.socket)
        };
        let transport = parts.open()?;
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
                transport: RefCell::new(Some(transport)),
                state: RefCell::new(State::Open),
                keep: Cell::new(None),
                receiver: RefCell::new(Some(Receiver::new(role, &params.config))),
                sender: RefCell::new(sender),
                deadlines: RefCell::new(Deadlines::new(params.timeouts, now)),
                timer_at: Cell::new(None),
                callbacks: Callbacks::new(
                    params.on_msg_recv,
                    on_close,
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
                user_depth: Cell::new(0),
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

    /// Runs user code outside the io callback: an end decided meanwhile waits for it.
    pub(super) fn in_user_code<R>(&self, f: impl FnOnce() -> R) -> R {
        /// Counts back down also when the user code panics.
        struct Depth<'a>(&'a Cell<u32>);
        impl Drop for Depth<'_> {
            fn drop(&mut self) {
                self.0.set(self.0.get() - 1);
            }
        }
        self.user_depth.set(self.user_depth.get() + 1);
        let _depth = Depth(&self.user_depth);
        f()
    }

    /// Messages not (fully) written: those left at the end once closed.
    pub(super) fn unsent(&self) -> usize {
        if matches!(*self.state.borrow(), State::Closed { .. }) {
            return self.cold.borrow().as_ref().map_or(0, |c| c.unsent);
        }
        self.sender.try_borrow().map_or(0, |s| s.queued_count())
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

    #[cfg(feature = "tls")]
    pub(crate) fn tls_info(&self) -> Option<crate::tls::TlsInfo> {
        match self.transport.try_borrow().as_deref() {
            Ok(Some(t)) => t.tls_info(),
            _ => None,
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
    #[inline]
    pub(crate) fn settle(self: &Rc<Self>, at_safe_point: bool) {
        if self.in_io.get() {
            return; // a call from a callback (the common case): the io callback settles at its end
        }
        self.settle_now(at_safe_point);
    }

    fn settle_now(self: &Rc<Self>, at_safe_point: bool) {
        if self.state.borrow().is_live() {
            self.apply_read_shutdown();
            self.sync_producers(); // may run user code (a producer's drop)
            self.decide();
        }
        if matches!(*self.state.borrow(), State::Ending { .. }) {
            if at_safe_point && self.user_depth.get() == 0 {
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
        if !self.state.borrow().is_live() {
            return;
        }
        let (want_read, pending_input) = match &*self.receiver.borrow() {
            Some(r) => (
                r.want_read(),
                r.has_pending_input() || self.has_initial_data(),
            ),
            None => return, // dispatching (a nested loop run in a receive callback)
        };
        let (transport_output, transport_input) = match self.transport.try_borrow().as_deref() {
            Ok(Some(t)) => (t.wants_write(), t.has_buffered_input()),
            _ => (false, false),
        };
        let pending_input = pending_input || transport_input;
        let Ok(sender) = self.sender.try_borrow() else {
            return; // inside genmask
        };
        let want_write = sender.want_write() || transport_output;
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
        if cause.is_tls() && self.status_received.get() == 1006 {
            self.status_received.set(1015); // RFC 6455: reserved for this report
        }
        let code = self.status_received.get();
        call(&self.callbacks.close, |cb| cb(&ws, code));
        drop(keep); // the caller holds another reference
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
        // The close timeout counts from this call, not from the loop's cached time
        // (a callback may have run long since the loop last read the clock).
        self.lp.update_now();
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
