//! The one timer of a connection: its deadlines, its `wait` callbacks, and an end
//! decided outside the io callback.

use super::*;

impl Conn {
    /// Makes the timer fire no later than `at` (loop time). A later time leaves it
    /// as it is: it fires early and re-arms (libev's cheapest way to track a
    /// deadline that moves on every read).
    pub(super) fn arm_timer(self: &Rc<Self>, at: f64) {
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
    pub(super) fn on_timer(self: &Rc<Self>) {
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
            Due::MessageTimeout => {
                // The peer is failing us: close 1008 after what is queued (as for a
                // protocol violation), and read no more of it.
                if let Ok(mut sender) = self.sender() {
                    sender.fail(1008);
                }
                self.begin_closing(CloseCause::MessageTimeout);
                self.read_shutdown_pending.set(true);
                self.apply_read_shutdown();
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
    pub(super) fn fire_waiters(self: &Rc<Self>) {
        let ws = self.handle();
        loop {
            let next = self
                .cold
                .borrow_mut()
                .as_mut()
                .and_then(|c| c.waiters.pop_front());
            let Some(waiter) = next else { break };
            self.in_user_code(|| waiter(&ws, Waited::Drained));
            if !self.drained() || !self.state.borrow().is_live() {
                break; // a waiter queued more (or ended the connection)
            }
        }
    }
}
