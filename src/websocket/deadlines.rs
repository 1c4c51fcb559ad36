//! The deadlines of a connection (close timeout, idle timeout, keepalive pings,
//! message timeout),
//! computed without a clock of its own: the connection passes the loop's time in
//! (`handle_timeout(now)`) and arms one timer for [`Deadlines::poll_timeout`], in
//! the style of quinn-proto. Times are seconds of loop time.

use std::time::Duration;

/// The timeouts a connection was given (see [`Params`](super::Params)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Timeouts {
    pub(crate) close: Option<Duration>,
    pub(crate) idle: Option<Duration>,
    pub(crate) keepalive: Option<Duration>,
    pub(crate) message: Option<Duration>,
}

/// What came due at [`Deadlines::handle_timeout`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Due {
    Nothing,
    /// Keepalive: send a ping.
    Ping,
    /// Nothing received for the idle timeout: start the closing handshake.
    IdleClose,
    /// Closing made no progress for the close timeout: end the connection.
    CloseTimeout,
    /// A message has been arriving for longer than the message timeout: fail
    /// the connection (close 1008).
    MessageTimeout,
}

pub(super) struct Deadlines {
    close_timeout: Option<f64>,
    /// Some once the connection is closing: the time of its last progress (the
    /// start of closing, or a write since). The close timeout counts from it, so
    /// a close behind a large queue on a slow but live link is not cut off.
    closing_since: Option<f64>,
    /// The idle timeout, keepalive and message timeout, boxed: `None` (most
    /// connections) when none is set.
    watch: Option<Box<RecvWatch>>,
}

struct RecvWatch {
    idle: Option<f64>,
    keepalive: Option<f64>,
    message: Option<f64>,
    last_recv: f64,
    last_ping: f64,
    /// When the message in progress began arriving, moved later by the time
    /// reading was stopped since; `None` between messages.
    message_since: Option<f64>,
    /// Since when reading is stopped by the user: a paused reader is not an
    /// idle peer, and a message it does not read is not the peer's delay.
    paused_since: Option<f64>,
}

impl RecvWatch {
    fn paused(&self) -> bool {
        self.paused_since.is_some()
    }
}

/// Seconds, capped so that no sum of them overflows into infinity.
fn seconds(d: Duration) -> f64 {
    const CAP: f64 = 100.0 * 365.0 * 86400.0;
    d.as_secs_f64().min(CAP)
}

impl Deadlines {
    /// Deadlines for a connection opened at `now`.
    pub(super) fn new(timeouts: Timeouts, now: f64) -> Deadlines {
        let idle = timeouts.idle.map(seconds);
        let keepalive = timeouts.keepalive.filter(|k| !k.is_zero()).map(seconds);
        let message = timeouts.message.filter(|m| !m.is_zero()).map(seconds);
        let watch = (idle.is_some() || keepalive.is_some() || message.is_some()).then(|| {
            Box::new(RecvWatch {
                idle,
                keepalive,
                message,
                last_recv: now,
                last_ping: now,
                message_since: None,
                paused_since: None,
            })
        });
        Deadlines {
            close_timeout: timeouts.close.map(seconds),
            closing_since: None,
            watch,
        }
    }

    /// Whether receiving moves a deadline (an idle timeout or keepalive is set).
    #[inline]
    pub(super) fn watch_recv(&self) -> bool {
        self.watch.is_some()
    }

    /// Something arrived from the peer.
    #[inline]
    pub(super) fn on_recv(&mut self, now: f64) {
        if let Some(w) = &mut self.watch {
            w.last_recv = now;
        }
    }

    /// Whether the message timeout is set: the caller then reports each read's
    /// outcome ([`Deadlines::on_message_progress`]).
    #[inline]
    pub(super) fn watch_message(&self) -> bool {
        self.watch.as_ref().is_some_and(|w| w.message.is_some())
    }

    /// After a read at `now`: whether a message is `in_progress` (partly
    /// received), and whether one `started` during the read (then the one in
    /// progress is a new one, even if one was in progress before: a read can
    /// end a message and begin the next). The message timeout counts from the
    /// read in which a message's first byte came.
    pub(super) fn on_message_progress(&mut self, in_progress: bool, started: bool, now: f64) {
        let Some(w) = self.watch.as_mut().filter(|w| w.message.is_some()) else {
            return;
        };
        w.message_since = match w.message_since {
            _ if !in_progress => None,
            Some(since) if !started => Some(since),
            _ => Some(now),
        };
    }

    /// The user stopped (`true`) or resumed reading at `now`: the idle clock is
    /// suspended meanwhile and starts again from the resume; the message
    /// clock is suspended and goes on from where it stood.
    pub(super) fn on_read_paused(&mut self, paused: bool, now: f64) {
        let Some(w) = &mut self.watch else {
            return;
        };
        match (w.paused_since, paused) {
            (None, true) => w.paused_since = Some(now),
            (Some(at), false) => {
                w.last_recv = now;
                w.last_ping = now;
                if let Some(since) = &mut w.message_since {
                    *since += (now - at).max(0.0);
                }
                w.paused_since = None;
            }
            _ => {}
        }
    }

    /// The connection started closing at `now` (a close queued, the peer's EOF with
    /// data still queued, ...). Idempotent: the first call counts.
    pub(super) fn on_closing(&mut self, now: f64) {
        if self.closing_since.is_none() {
            self.closing_since = Some(now);
        }
    }

    /// Bytes were written at `now`: while closing, the close timeout counts again.
    #[inline]
    pub(super) fn on_write_progress(&mut self, now: f64) {
        if let Some(since) = &mut self.closing_since {
            *since = now;
        }
    }

    /// The nearest deadline, `None` if there is none.
    pub(super) fn poll_timeout(&self) -> Option<f64> {
        if let Some(since) = self.closing_since {
            return self.close_timeout.map(|t| since + t);
        }
        let w = self.watch.as_ref().filter(|w| !w.paused())?;
        let idle = w.idle.map(|t| w.last_recv + t);
        let ping = w.keepalive.map(|k| w.last_recv.max(w.last_ping) + k);
        let message = w.message.zip(w.message_since).map(|(t, since)| since + t);
        [idle, ping, message].into_iter().flatten().reduce(f64::min)
    }

    /// What is due at `now`; a keepalive ping counts as sent.
    pub(super) fn handle_timeout(&mut self, now: f64) -> Due {
        if let Some(since) = self.closing_since {
            return match self.close_timeout {
                Some(t) if now >= since + t => Due::CloseTimeout,
                _ => Due::Nothing,
            };
        }
        let Some(w) = self.watch.as_mut().filter(|w| !w.paused()) else {
            return Due::Nothing;
        };
        // Before the idle timeout: a peer trickling a message is not idle, and
        // the more precise cause wins when both are due.
        if let (Some(t), Some(since)) = (w.message, w.message_since) {
            if now >= since + t {
                w.message_since = None;
                return Due::MessageTimeout;
            }
        }
        if w.idle.is_some_and(|t| now >= w.last_recv + t) {
            return Due::IdleClose;
        }
        if w.keepalive
            .is_some_and(|k| now >= w.last_recv.max(w.last_ping) + k)
        {
            w.last_ping = now;
            return Due::Ping;
        }
        Due::Nothing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Option<Duration> {
        Some(Duration::from_secs_f64(s))
    }

    fn deadlines(close: f64, idle: Option<f64>, keepalive: Option<f64>) -> Deadlines {
        let t = Timeouts {
            close: secs(close),
            idle: idle.and_then(secs),
            keepalive: keepalive.and_then(secs),
            message: None,
        };
        Deadlines::new(t, 100.0)
    }

    fn with_message(message: f64, idle: Option<f64>, keepalive: Option<f64>) -> Deadlines {
        let t = Timeouts {
            close: secs(10.0),
            idle: idle.and_then(secs),
            keepalive: keepalive.and_then(secs),
            message: secs(message),
        };
        Deadlines::new(t, 100.0)
    }

    #[test]
    fn nothing_is_due_without_timeouts() {
        let mut d = Deadlines::new(Timeouts::default(), 0.0);
        assert_eq!(d.poll_timeout(), None);
        assert_eq!(d.handle_timeout(1e9), Due::Nothing);
        d.on_closing(5.0);
        assert_eq!(d.poll_timeout(), None, "no close timeout: wait forever");
        assert_eq!(d.handle_timeout(1e12), Due::Nothing);
    }

    #[test]
    fn the_close_timeout_counts_from_the_last_progress_while_closing() {
        let mut d = deadlines(10.0, None, None);
        assert_eq!(d.poll_timeout(), None, "not closing yet");
        d.on_write_progress(101.0); // not closing: no effect
        d.on_closing(110.0);
        assert_eq!(d.poll_timeout(), Some(120.0));
        d.on_closing(115.0); // idempotent
        assert_eq!(d.poll_timeout(), Some(120.0));
        assert_eq!(d.handle_timeout(119.9), Due::Nothing);
        // A slow but live link: every write moves the deadline.
        d.on_write_progress(119.0);
        assert_eq!(d.poll_timeout(), Some(129.0));
        assert_eq!(d.handle_timeout(120.0), Due::Nothing);
        assert_eq!(d.handle_timeout(129.0), Due::CloseTimeout);
    }

    #[test]
    fn receiving_does_not_move_the_close_timeout() {
        let mut d = deadlines(1.0, Some(5.0), Some(2.0));
        d.on_closing(100.0);
        d.on_recv(100.9);
        assert_eq!(d.poll_timeout(), Some(101.0));
        assert_eq!(d.handle_timeout(101.0), Due::CloseTimeout);
    }

    #[test]
    fn the_idle_timeout_counts_from_the_last_receive() {
        let mut d = deadlines(10.0, Some(30.0), None);
        assert_eq!(d.poll_timeout(), Some(130.0));
        d.on_recv(120.0);
        assert_eq!(d.poll_timeout(), Some(150.0));
        assert_eq!(d.handle_timeout(149.0), Due::Nothing);
        assert_eq!(d.handle_timeout(150.0), Due::IdleClose);
    }

    #[test]
    fn keepalive_pings_each_period_of_silence() {
        let mut d = deadlines(10.0, None, Some(5.0));
        assert_eq!(d.poll_timeout(), Some(105.0));
        assert_eq!(d.handle_timeout(104.0), Due::Nothing);
        assert_eq!(d.handle_timeout(105.0), Due::Ping);
        assert_eq!(
            d.poll_timeout(),
            Some(110.0),
            "the next ping a period later"
        );
        d.on_recv(107.0); // the pong
        assert_eq!(d.poll_timeout(), Some(112.0));
        assert_eq!(d.handle_timeout(112.5), Due::Ping);
    }

    #[test]
    fn idle_wins_over_keepalive_when_both_are_due() {
        let mut d = deadlines(10.0, Some(4.0), Some(4.0));
        assert_eq!(d.handle_timeout(104.0), Due::IdleClose);
    }

    #[test]
    fn a_paused_reader_is_not_idle_and_its_clock_restarts_at_resume() {
        let mut d = deadlines(10.0, Some(30.0), Some(10.0));
        d.on_read_paused(true, 105.0);
        assert_eq!(d.poll_timeout(), None);
        assert_eq!(d.handle_timeout(1000.0), Due::Nothing);
        // Resumed long after: the clock starts from the resume, not from the
        // last receive nor from a stale time.
        d.on_read_paused(false, 1000.0);
        assert_eq!(d.poll_timeout(), Some(1010.0));
        assert_eq!(d.handle_timeout(1009.0), Due::Nothing);
        assert_eq!(d.handle_timeout(1010.0), Due::Ping);
        assert_eq!(d.handle_timeout(1030.0), Due::IdleClose);
    }

    #[test]
    fn a_zero_keepalive_means_none_and_huge_timeouts_stay_finite() {
        let t = Timeouts {
            close: Some(Duration::MAX),
            idle: Some(Duration::MAX),
            keepalive: Some(Duration::ZERO),
            message: Some(Duration::MAX),
        };
        let mut d = Deadlines::new(t, 0.0);
        let at = d.poll_timeout().expect("the idle deadline");
        assert!(at.is_finite() && at > 1e9);
        assert_eq!(d.handle_timeout(1e9), Due::Nothing);
        d.on_closing(1.0);
        assert!(d.poll_timeout().is_some_and(f64::is_finite));
    }

    #[test]
    fn the_message_timeout_counts_from_the_read_that_began_the_message() {
        let mut d = with_message(5.0, None, None);
        assert!(d.watch_message());
        assert_eq!(d.poll_timeout(), None, "no message yet");
        d.on_message_progress(true, true, 101.0);
        assert_eq!(d.poll_timeout(), Some(106.0));
        // More bytes of the same message do not move it.
        d.on_recv(104.0);
        d.on_message_progress(true, false, 104.0);
        assert_eq!(d.poll_timeout(), Some(106.0));
        assert_eq!(d.handle_timeout(105.9), Due::Nothing);
        assert_eq!(d.handle_timeout(106.0), Due::MessageTimeout);
        assert_eq!(d.poll_timeout(), None, "reported once");
        assert_eq!(d.handle_timeout(200.0), Due::Nothing);
    }

    #[test]
    fn a_message_that_completes_in_time_clears_it_and_the_next_starts_afresh() {
        let mut d = with_message(5.0, None, None);
        d.on_message_progress(true, true, 101.0);
        d.on_message_progress(false, false, 105.0);
        assert_eq!(d.poll_timeout(), None);
        assert_eq!(d.handle_timeout(107.0), Due::Nothing);
        // A read that ends one message and begins the next: the new one counts
        // from this read, not from the first one's start.
        d.on_message_progress(true, true, 110.0);
        d.on_message_progress(true, true, 114.0);
        assert_eq!(d.poll_timeout(), Some(119.0));
        assert_eq!(d.handle_timeout(116.0), Due::Nothing);
        // A message begun and completed within one read leaves nothing.
        d.on_message_progress(false, true, 118.0);
        assert_eq!(d.poll_timeout(), None);
    }

    #[test]
    fn a_read_that_saw_no_start_still_times_a_message_in_progress() {
        let mut d = with_message(5.0, None, None);
        d.on_message_progress(true, false, 120.0);
        assert_eq!(d.poll_timeout(), Some(125.0));
    }

    #[test]
    fn a_stopped_reader_suspends_the_message_clock_without_resetting_it() {
        let mut d = with_message(5.0, None, None);
        d.on_message_progress(true, true, 100.0);
        d.on_read_paused(true, 103.0);
        assert_eq!(d.poll_timeout(), None);
        assert_eq!(d.handle_timeout(500.0), Due::Nothing);
        d.on_read_paused(true, 600.0); // idempotent
        d.on_read_paused(false, 1003.0);
        // 3 s were spent before the pause: 2 s are left.
        assert_eq!(d.poll_timeout(), Some(1005.0));
        assert_eq!(d.handle_timeout(1004.9), Due::Nothing);
        assert_eq!(d.handle_timeout(1005.0), Due::MessageTimeout);
    }

    #[test]
    fn the_message_timeout_leaves_idle_and_keepalive_as_they_were() {
        let mut d = with_message(5.0, Some(30.0), Some(10.0));
        assert_eq!(d.poll_timeout(), Some(110.0), "the keepalive ping");
        d.on_recv(108.0);
        d.on_message_progress(true, true, 108.0);
        assert_eq!(d.poll_timeout(), Some(113.0), "the message deadline");
        d.on_recv(112.0);
        d.on_message_progress(false, false, 112.0);
        assert_eq!(d.poll_timeout(), Some(122.0));
        assert_eq!(d.handle_timeout(122.0), Due::Ping);
        assert_eq!(d.handle_timeout(142.0), Due::IdleClose);
        // A trickling message times out before the idle close, and is the cause
        // when both are due.
        let mut d = with_message(5.0, Some(5.0), None);
        d.on_message_progress(true, true, 100.0);
        assert_eq!(d.handle_timeout(105.0), Due::MessageTimeout);
        assert_eq!(d.handle_timeout(105.0), Due::IdleClose);
    }

    #[test]
    fn while_closing_only_the_close_timeout_counts() {
        let mut d = with_message(5.0, None, None);
        d.on_message_progress(true, true, 100.0);
        d.on_closing(101.0);
        assert_eq!(d.poll_timeout(), Some(111.0));
        assert_eq!(d.handle_timeout(106.0), Due::Nothing);
        assert_eq!(d.handle_timeout(111.0), Due::CloseTimeout);
    }

    #[test]
    fn a_zero_message_timeout_means_none_and_none_watches_nothing() {
        let t = Timeouts {
            message: Some(Duration::ZERO),
            ..Timeouts::default()
        };
        let mut d = Deadlines::new(t, 0.0);
        assert!(!d.watch_message());
        d.on_message_progress(true, true, 1.0);
        assert_eq!(d.poll_timeout(), None);
        let mut d = with_message(5.0, None, None);
        d.on_message_progress(true, true, 1.0);
        assert!(d.poll_timeout().is_some());
        let mut d = deadlines(10.0, Some(30.0), None);
        assert!(!d.watch_message());
        d.on_message_progress(true, true, 100.0);
        assert_eq!(d.poll_timeout(), Some(130.0), "the idle deadline only");
    }
}
