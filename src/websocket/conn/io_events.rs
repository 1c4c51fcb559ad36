//! The io side of a connection: the io callback, reading (the receiver taken out
//! of its cell while it dispatches), writing (producers asked for their pieces),
//! and `wait_blocking`.

use super::*;

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

impl Conn {
    pub(super) fn handle_io(self: &Rc<Self>, events: Events) {
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
    pub(super) fn resume_panic(&self) {
        if self.panicked.replace(false) {
            let payload = self.cold.borrow_mut().as_mut().and_then(|c| c.panic.take());
            if let Some(payload) = payload {
                panic::resume_unwind(payload);
            }
        }
    }

    /// Runs user code from inside the io callback; a panic is kept and resumed
    /// once the engine and the watcher are back in order. False if it panicked.
    pub(in crate::websocket) fn guarded(&self, f: impl FnOnce()) -> bool {
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

    pub(super) fn read(self: &Rc<Self>) {
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
                self.end(CloseCause::from_io(&err));
            }
            Ok(_) => {}
        }
        self.note_message_progress(&mut receiver);
        *self.receiver.borrow_mut() = Some(receiver);
        self.apply_read_shutdown();
    }

    /// After a read: tells the message timeout whether a message is arriving.
    #[inline]
    fn note_message_progress(&self, receiver: &mut Receiver) {
        let mut deadlines = self.deadlines.borrow_mut();
        if deadlines.watch_message() {
            let started = receiver.take_message_started();
            let in_progress = receiver.message_in_progress();
            deadlines.on_message_progress(in_progress, started, self.lp.now());
        }
    }

    pub(super) fn apply_read_shutdown(&self) {
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

    /// Writes what is queued now rather than from the loop (a broadcast: each of
    /// thousands of members written by one call, none of their watchers armed for
    /// WRITE first). Only where writing runs no user code (no producer, no
    /// `genmask`), not inside this connection's io callback (which writes at its
    /// end), and not to a socket already known to be full (the watcher waits for
    /// it to drain); an error is recorded for the loop to carry out, as for any
    /// call of the user's.
    pub(crate) fn write_now(self: &Rc<Self>) {
        if self.in_io.get()
            || self.write_stopped.get()
            || self.producing.get()
            || self.io.events().contains(Events::WRITE)
        {
            return;
        }
        match self.sender.try_borrow() {
            Ok(sender) if sender.want_write() && !sender.sends_user_code() => {}
            _ => return,
        }
        self.write();
    }

    /// Writes what the sender has, feeding fragmented producers as it asks.
    pub(super) fn write(self: &Rc<Self>) {
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
            if through.written > 0 || self.take_transport_flushed() > 0 {
                self.deadlines.borrow_mut().on_write_progress(self.lp.now());
            }
            match result {
                Ok(SendStatus::NeedFragment { max_len }) => {
                    // A write nested in a producer (its `wait_blocking`) must not ask
                    // for the piece that producer is making: it would pop the next
                    // message's producer in its place.
                    if self.producing.get() || !self.produce(max_len) {
                        return;
                    }
                }
                Ok(SendStatus::Idle) => {
                    self.flush_transport();
                    return;
                }
                Ok(SendStatus::WouldBlock) => return,
                Err(err) => {
                    self.end(CloseCause::from_io(&err));
                    return;
                }
            }
        }
    }

    /// Writes what the transport itself holds (TLS records the socket did not
    /// take when the sender wrote them).
    fn flush_transport(&self) {
        let result = match self.transport.try_borrow_mut().as_deref_mut() {
            Ok(Some(t)) if t.wants_write() => t.flush(),
            _ => return,
        };
        match result {
            Ok(()) if self.take_transport_flushed() > 0 => {
                self.deadlines.borrow_mut().on_write_progress(self.lp.now());
            }
            Ok(()) => {}
            Err(err) => {
                self.end(CloseCause::from_io(&err));
            }
        }
    }

    /// What the transport wrote from its own buffer since the last call.
    fn take_transport_flushed(&self) -> usize {
        match self.transport.try_borrow_mut().as_deref_mut() {
            Ok(Some(t)) => t.take_flushed(),
            _ => 0,
        }
    }

    /// Whether the transport holds output the socket did not take yet.
    fn transport_wants_write(&self) -> bool {
        matches!(self.transport.try_borrow().as_deref(), Ok(Some(t)) if t.wants_write())
    }

    /// Asks the oldest producer for the next piece; false when nothing more can be
    /// written now. What the producer returned is interpreted by the sender
    /// ([`Sender::push_produced`]), the same code as the engine's.
    pub(super) fn produce(self: &Rc<Self>, max_len: usize) -> bool {
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
    pub(super) fn guarded_push(
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
    pub(super) fn sync_producers(&self) {
        let none = self
            .cold
            .borrow()
            .as_ref()
            .map_or(true, |c| c.producers.is_empty());
        if none {
            return; // the common case: no fragmented message
        }
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
        self.in_user_code(|| drop(dropped));
    }

    /// Whether the send queue is empty and nothing waits to be written.
    pub(super) fn drained(&self) -> bool {
        self.sender
            .try_borrow()
            .is_ok_and(|s| s.queued_count() == 0 && !s.want_write())
            && !self.transport_wants_write()
    }

    /// Whether the receiver should pause: the user stopped or shut down reading,
    /// the connection is ending, a callback panicked, or the send queue is
    /// backlogged (what we read would only add to it).
    pub(in crate::websocket) fn should_pause(&self) -> bool {
        self.read_stopped.get()
            || self.read_shutdown_pending.get()
            || self.panicked.get()
            || !self.state.borrow().is_live()
            || self.sender.try_borrow().is_ok_and(|s| backlogged(&s))
    }

    /// The peer's close arrived (`code` 1005 for an empty one).
    pub(in crate::websocket) fn note_peer_close(&self, code: u16, reason: &[u8]) {
        self.status_received.set(code);
        if !reason.is_empty() {
            self.cold_mut().reason_received = Some(String::from_utf8_lossy(reason).into_owned());
        }
        self.begin_closing(CloseCause::PeerClose);
    }

    /// Something arrived from the peer (a frame began or a piece of payload came):
    /// the idle and keepalive clocks start again.
    #[inline]
    pub(in crate::websocket) fn note_recv(&self) {
        let mut deadlines = self.deadlines.borrow_mut();
        if deadlines.watch_recv() {
            deadlines.on_recv(self.lp.now());
        }
    }

    /// `wait_blocking`: writes until the queue is drained, the connection ends,
    /// or nothing can make progress.
    pub(crate) fn wait_blocking(self: &Rc<Self>) -> Result<Waited, Error> {
        self.check_open()?;
        loop {
            if !self.state.borrow().is_live() {
                let unsent = self.unsent();
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
            // Write directly, then let the loop run once, woken when the socket
            // takes more: outside our io callback by our own watcher (armed for
            // WRITE); inside it, where the loop does not call that watcher again, by a
            // second watcher on the fd, which stays open meanwhile (the end waits for
            // the io callback to return). Outside, no second watcher: an event
            // handled in this very loop run may end the connection and close the fd
            // before libev would register it.
            let in_io = self.in_io.replace(true);
            self.write();
            self.in_io.set(in_io);
            self.settle(true); // returns at once inside our io callback
            if self.state.borrow().is_live() && !self.drained() && !self.stalled() {
                let writable = match (in_io, self.raw_fd()) {
                    (true, Some(fd)) => {
                        Some(Io::new(&self.lp, fd, Events::WRITE, |_| {}).map_err(|err| {
                            Error::Io(io::Error::new(io::ErrorKind::InvalidInput, err))
                        })?)
                    }
                    _ => None,
                };
                if let Some(writable) = &writable {
                    // Our own watcher cannot be called back here, and left armed its
                    // level-triggered READ would make every loop run return at once (a
                    // busy loop until the peer reads): it rests until the io callback
                    // returns and re-arms it.
                    self.io.stop();
                    writable.start();
                }
                self.lp.run_with(crate::ev::RunFlags::Once);
            }
        }
    }

    /// Whether writing cannot make progress whatever the peer does: the user
    /// stopped writing, the head of the queue is a paused producer, or we are inside
    /// a producer.
    pub(super) fn stalled(&self) -> bool {
        // Inside a producer, the message it makes is in the queue: it cannot drain
        // before the producer returns.
        if self.write_stopped.get() || self.producing.get() {
            return true;
        }
        let Ok(sender) = self.sender.try_borrow() else {
            return true;
        };
        !sender.want_write() && !self.transport_wants_write()
    }
}
