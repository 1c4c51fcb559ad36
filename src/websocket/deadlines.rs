//! The deadlines of a connection: the close timeout, the idle timeout and
//! keepalive pings, all served by one timer (see `Conn::arm_deadline`).

use std::cell::Cell;

/// The close timeout, the idle timeout and keepalive pings, served by one timer
/// created on first need (none for a connection without them, until it closes).
pub(super) struct Deadlines {
    /// When the timer (kept in the connection's cold part) fires (loop time);
    /// infinity while stopped.
    pub(super) armed_at: Cell<f64>,
    /// Infinity for none (an `Option<f64>` takes twice the room).
    close_timeout: f64,
    /// NaN until a close is queued (closing); then only this deadline counts
    /// (infinity without a close timeout). NaN rather than a flag: 8 bytes fewer.
    pub(super) close_at: Cell<f64>,
    /// The idle timeout and keepalive, boxed: `None` (most connections) when neither
    /// is set.
    watch: Option<Box<RecvWatch>>,
}

struct RecvWatch {
    /// Infinity for none.
    idle_timeout: f64,
    keepalive: f64,
    last_recv: Cell<f64>,
    last_ping: Cell<f64>,
}

impl Deadlines {
    pub(super) fn new(
        close_timeout: Option<f64>,
        idle_timeout: Option<f64>,
        keepalive: Option<f64>,
    ) -> Self {
        let positive = |t: Option<f64>| {
            t.filter(|t| *t >= 0.0 && t.is_finite())
                .unwrap_or(f64::INFINITY)
        };
        let idle_timeout = positive(idle_timeout);
        let keepalive = Some(positive(keepalive))
            .filter(|k| *k > 0.0)
            .unwrap_or(f64::INFINITY);
        let watch = (idle_timeout.is_finite() || keepalive.is_finite()).then(|| {
            Box::new(RecvWatch {
                idle_timeout,
                keepalive,
                last_recv: Cell::new(0.0),
                last_ping: Cell::new(0.0),
            })
        });
        Deadlines {
            armed_at: Cell::new(f64::INFINITY),
            close_timeout: positive(close_timeout),
            close_at: Cell::new(f64::NAN),
            watch,
        }
    }

    /// Whether a close is queued.
    pub(super) fn closing(&self) -> bool {
        !self.close_at.get().is_nan()
    }

    pub(super) fn close_timeout(&self) -> Option<f64> {
        Some(self.close_timeout).filter(|t| t.is_finite())
    }

    pub(super) fn idle_timeout(&self) -> Option<f64> {
        self.watch
            .as_ref()
            .map(|w| w.idle_timeout)
            .filter(|t| t.is_finite())
    }

    pub(super) fn keepalive(&self) -> Option<f64> {
        self.watch
            .as_ref()
            .map(|w| w.keepalive)
            .filter(|t| t.is_finite())
    }

    /// Whether receiving moves a deadline (idle timeout or keepalive set).
    pub(super) fn watch_recv(&self) -> bool {
        self.watch.is_some()
    }

    pub(super) fn last_recv(&self) -> f64 {
        self.watch.as_ref().map_or(0.0, |w| w.last_recv.get())
    }

    pub(super) fn last_ping(&self) -> f64 {
        self.watch.as_ref().map_or(0.0, |w| w.last_ping.get())
    }

    pub(super) fn set_last_recv(&self, at: f64) {
        if let Some(w) = &self.watch {
            w.last_recv.set(at);
        }
    }

    pub(super) fn set_last_ping(&self, at: f64) {
        if let Some(w) = &self.watch {
            w.last_ping.set(at);
        }
    }

    /// The nearest deadline (loop time), infinity if none.
    pub(super) fn next(&self) -> f64 {
        if self.closing() {
            return self.close_at.get();
        }
        let Some(w) = &self.watch else {
            return f64::INFINITY;
        };
        // Infinite periods give infinite deadlines.
        let idle = w.last_recv.get() + w.idle_timeout;
        let ping = w.last_recv.get().max(w.last_ping.get()) + w.keepalive;
        idle.min(ping)
    }
}
