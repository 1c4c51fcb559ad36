use std::cell::{Cell, RefCell, UnsafeCell};
use std::fmt;
use std::os::raw::{c_int, c_void};
use std::os::unix::io::RawFd;
use std::panic::{self, AssertUnwindSafe};
use std::rc::{Rc, Weak};
use std::time::Duration;

use bitflags::bitflags;
use libev_sys as sys;

use super::event_loop::{park_panic, shield, Loop};
use super::signals;

bitflags! {
    /// The events a watcher waits for or received (libev's `EV_*` bits).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct Events: u32 {
        /// The fd is readable.
        const READ = sys::EV_READ as u32;
        /// The fd is writable.
        const WRITE = sys::EV_WRITE as u32;
        /// A timer expired.
        const TIMER = sys::EV_TIMER as u32;
        /// A signal arrived.
        const SIGNAL = sys::EV_SIGNAL as u32;
        /// The loop is idle.
        const IDLE = sys::EV_IDLE as u32;
        /// An [`Async`](super::Async) was sent.
        const ASYNC = sys::EV_ASYNC as u32;
        /// libev stopped the watcher after an error (a bad fd, for example).
        const ERROR = sys::EV_ERROR as u32;
    }
}

/// An owning watcher handle of kind `K`: see [`Io`], [`Timer`], [`Signal`], [`Idle`].
///
/// Dropping it stops the watcher. Its memory, which libev points into, lives in a
/// shared allocation that stays put until the last reference (the owner, or a running
/// callback) is gone.
#[must_use = "a watcher stops when it is dropped: keep it for as long as it should run"]
pub struct Watcher<K: Kind> {
    shared: Rc<Shared<K>>,
}

/// A non-owning handle to a watcher, for callbacks that control their own or another
/// watcher without keeping it alive. Every call is a no-op once the owner is dropped.
pub struct WatcherHandle<K: Kind> {
    shared: Weak<Shared<K>>,
}

/// An I/O watcher: calls back when a file descriptor is readable or writable.
///
/// It does not own the fd; the fd must stay open while the watcher is started. A
/// negative fd is refused ([`WatcherError::InvalidFd`]).
///
/// ```
/// use net_websocket_ev::ev::{Events, Io, Loop};
/// use std::io::Write;
/// use std::os::unix::{io::AsRawFd, net::UnixStream};
///
/// let lp = Loop::new().unwrap();
/// let (mut a, b) = UnixStream::pair().unwrap();
/// a.write_all(b"x").unwrap();
/// let io = Io::new(&lp, b.as_raw_fd(), Events::READ, |_| {}).unwrap();
/// let handle = io.handle();
/// io.set_callback(move |events| {
///     assert!(events.contains(Events::READ));
///     handle.stop(); // a callback may stop (or drop) its own watcher
/// });
/// io.start();
/// lp.run();
/// assert!(!io.is_active());
/// ```
pub type Io = Watcher<IoKind>;

/// A relative timer, one-shot (`repeat` zero) or repeating.
///
/// Delays are [`Duration`]s; libev is given at most about 100 years ([`MAX_DELAY`]),
/// which is what any longer delay, up to [`Duration::MAX`], means in practice: never.
///
/// ```
/// use net_websocket_ev::ev::{Loop, Timer};
/// use std::time::Duration;
/// let lp = Loop::new().unwrap();
/// let timer = Timer::new(&lp, Duration::from_millis(1), Duration::ZERO, |_| println!("fired"));
/// timer.start();
/// lp.run();
/// ```
pub type Timer = Watcher<TimerKind>;

/// A signal watcher.
///
/// libev keeps one process-wide list of watchers per signal and delivers the signal to
/// one loop, so a signal may be watched on one loop at a time (by any number of watchers
/// of that loop): [`Signal::new`](Watcher::<SignalKind>::new) refuses a signal watched
/// by another loop's watcher ([`WatcherError::SignalInUse`]) until that loop's last
/// watcher of it is dropped. `SIGCHLD` is libev's default loop's own (it reaps
/// children there), so it can only be watched on the default loop. Signals watched by
/// foreign code through the raw API are outside this bookkeeping.
///
/// ```
/// use net_websocket_ev::ev::{Loop, Signal, WatcherError};
/// let lp = Loop::new().unwrap();
/// let hup = Signal::new(&lp, libc::SIGHUP, |_| println!("reload")).unwrap();
/// hup.start();
/// let other = Loop::new().unwrap();
/// let refused = Signal::new(&other, libc::SIGHUP, |_| {}).unwrap_err();
/// assert_eq!(refused, WatcherError::SignalInUse(libc::SIGHUP));
/// drop(hup);
/// assert!(Signal::new(&other, libc::SIGHUP, |_| {}).is_ok());
/// ```
pub type Signal = Watcher<SignalKind>;

/// An idle watcher: called on every loop iteration that has no other pending event.
///
/// ```
/// use net_websocket_ev::ev::{Idle, Loop};
/// let lp = Loop::new().unwrap();
/// let idle = Idle::new(&lp, |_| {});
/// let handle = idle.handle();
/// idle.set_callback(move |_| handle.stop());
/// idle.start();
/// lp.run(); // one idle call, which stops it
/// assert!(!idle.is_active());
/// ```
pub type Idle = Watcher<IdleKind>;

/// The longest delay a [`Timer`] hands to libev, about 100 years: longer ones are
/// shortened to it, so no infinite or overflowing time reaches libev's arithmetic.
pub const MAX_DELAY: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// The largest fd an [`Io`] accepts. libev sizes its per-fd table with `int`
/// arithmetic that overflows for fds near 2^26; real fds stay far below this bound
/// (Linux caps a process's open files at 2^20 unless configured otherwise).
pub const MAX_FD: RawFd = (1 << 24) - 1;

/// Arguments a watcher refused: libev would assert (or, built without assertions,
/// corrupt memory) on them.
///
/// ```
/// use net_websocket_ev::ev::{Events, Io, Loop, WatcherError};
/// let lp = Loop::new().unwrap();
/// let err = Io::new(&lp, -1, Events::READ, |_| {}).unwrap_err();
/// assert_eq!(err, WatcherError::InvalidFd(-1));
/// assert_eq!(
///     err.to_string(),
///     "invalid file descriptor -1 for an io watcher (0 to 16777215)"
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WatcherError {
    /// A file descriptor that is negative or above [`MAX_FD`].
    InvalidFd(RawFd),
    /// Not a signal that can be watched: outside `1..NSIG` (1 to `SIGRTMAX`), or
    /// `SIGKILL` / `SIGSTOP`, which cannot be caught.
    InvalidSignal(i32),
    /// The signal is watched on another loop; libev delivers a signal to one loop.
    SignalInUse(i32),
    /// The signal (`SIGCHLD`) belongs to libev's default loop and cannot be watched
    /// on another.
    SignalNeedsDefaultLoop(i32),
}

type Callback = Box<dyn FnMut(Events)>;

struct Shared<K: Kind> {
    raw: UnsafeCell<K::Raw>,
    lp: Loop,
    callback: RefCell<Option<Callback>>,
    /// False once the owner is dropped: the watcher may no longer be started.
    owned: Cell<bool>,
}

mod private {
    pub trait Sealed {}
}

/// The libev watcher types this module wraps (sealed).
pub trait Kind: private::Sealed + Sized + 'static {
    /// The libev struct.
    #[doc(hidden)]
    type Raw;
    /// Installs the trampoline as the C callback.
    #[doc(hidden)]
    unsafe fn init(raw: *mut Self::Raw);
    /// `ev_TYPE_start`.
    #[doc(hidden)]
    unsafe fn start(lp: *mut sys::ev_loop, raw: *mut Self::Raw);
    /// `ev_TYPE_stop`.
    #[doc(hidden)]
    unsafe fn stop(lp: *mut sys::ev_loop, raw: *mut Self::Raw);
    /// Undoes what the constructor registered, once the owner has stopped the watcher
    /// for good.
    #[doc(hidden)]
    unsafe fn release(_lp: *mut sys::ev_loop, _raw: *mut Self::Raw) {}
}

macro_rules! kind {
    (
        $(#[$doc:meta])* $name:ident, $raw:ty, $init:expr, $start:path, $stop:path
        $(, release = $release:expr)?
    ) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name;
        impl private::Sealed for $name {}
        impl Kind for $name {
            type Raw = $raw;
            unsafe fn init(raw: *mut $raw) {
                $init(raw, trampoline::<$name>)
            }
            unsafe fn start(lp: *mut sys::ev_loop, raw: *mut $raw) {
                $start(lp, raw)
            }
            unsafe fn stop(lp: *mut sys::ev_loop, raw: *mut $raw) {
                $stop(lp, raw)
            }
            $(
                unsafe fn release(lp: *mut sys::ev_loop, raw: *mut $raw) {
                    $release(lp, raw)
                }
            )?
        }
    };
}

kind!(
    /// Marker for [`Io`].
    IoKind, sys::ev_io,
    |raw, cb| sys::ev_io_init(raw, cb, -1, 0),
    sys::ev_io_start, sys::ev_io_stop
);
kind!(
    /// Marker for [`Timer`].
    TimerKind, sys::ev_timer,
    |raw, cb| sys::ev_timer_init(raw, cb, 0.0, 0.0),
    sys::ev_timer_start, sys::ev_timer_stop
);
kind!(
    /// Marker for [`Signal`].
    SignalKind, sys::ev_signal,
    |raw, cb| sys::ev_signal_init(raw, cb, 0),
    sys::ev_signal_start, sys::ev_signal_stop,
    release = |lp, raw: *mut sys::ev_signal| signals::release(lp, (*raw).signum)
);
kind!(
    /// Marker for [`Idle`].
    IdleKind, sys::ev_idle,
    |raw, cb| sys::ev_idle_init(raw, cb),
    sys::ev_idle_start, sys::ev_idle_stop
);
kind!(
    /// Marker for the watcher inside an [`Async`](super::Async).
    AsyncKind, sys::ev_async,
    |raw, cb| sys::ev_async_init(raw, cb),
    sys::ev_async_start, sys::ev_async_stop
);

/// The one entry point from libev into Rust for watchers of kind `K`.
///
/// It keeps the shared allocation alive for the call, takes the closure out of its
/// slot (so the closure may drop or replace its own watcher), and never unwinds: a
/// panic is parked and the loop told to break out.
unsafe extern "C" fn trampoline<K: Kind>(lp: *mut sys::ev_loop, raw: *mut K::Raw, revents: c_int) {
    let body = || {
        // SAFETY: every watcher's `data` is set to its `Shared` at creation, and libev
        // only calls started watchers, whose owner (holding a strong count) exists.
        let shared = unsafe {
            let ptr = (*raw.cast::<sys::ev_watcher>()).data as *const Shared<K>;
            Rc::increment_strong_count(ptr);
            Rc::from_raw(ptr)
        };
        let taken = shared.callback.borrow_mut().take();
        // A callback that is already running (a nested `ev_run` inside it) is skipped.
        if let Some(mut callback) = taken {
            let result = panic::catch_unwind(AssertUnwindSafe(|| {
                callback(Events::from_bits_retain(revents as u32))
            }));
            let mut slot = shared.callback.borrow_mut();
            if slot.is_none() {
                *slot = Some(callback);
            }
            drop(slot);
            if let Err(payload) = result {
                park_panic(payload);
            }
        }
        // Dropping `shared` may free the watcher and the closure's captures here.
    };
    // SAFETY: `lp` is the loop calling us.
    unsafe { shield(lp, body) }
}

impl<K: Kind> Watcher<K> {
    pub(super) fn create(lp: &Loop, callback: Callback) -> Self {
        let shared = Rc::new(Shared::<K> {
            // SAFETY: libev watcher structs are plain C data for which all-zero bytes are
            // a valid (unstarted) value; `init` then sets them up.
            raw: UnsafeCell::new(unsafe { std::mem::zeroed() }),
            lp: lp.clone(),
            callback: RefCell::new(Some(callback)),
            owned: Cell::new(true),
        });
        let raw = shared.raw.get();
        // SAFETY: `raw` is ours, not started; the Rc allocation never moves, so `data`
        // stays valid for the allocation's life.
        unsafe {
            K::init(raw);
            (*raw.cast::<sys::ev_watcher>()).data = Rc::as_ptr(&shared) as *mut c_void;
        }
        Watcher { shared }
    }

    /// Starts the watcher (no-op if it is active).
    ///
    /// ```
    /// use net_websocket_ev::ev::{Loop, Timer};
    /// use std::time::Duration;
    /// let lp = Loop::new().unwrap();
    /// let timer = Timer::new(&lp, Duration::from_millis(1), Duration::ZERO, |_| println!("fired"));
    /// assert!(!timer.is_active()); // created stopped
    /// timer.start();
    /// assert!(timer.is_active());
    /// lp.run(); // fires; a one-shot timer then stops by itself
    /// assert!(!timer.is_active());
    /// ```
    pub fn start(&self) {
        self.shared.start();
    }

    /// Stops the watcher and clears its pending events (no-op if it is not active).
    ///
    /// ```
    /// use net_websocket_ev::ev::{Loop, Timer};
    /// use std::time::Duration;
    /// let lp = Loop::new().unwrap();
    /// let timer = Timer::new(&lp, Duration::from_secs(60), Duration::ZERO, |_| unreachable!());
    /// timer.start();
    /// timer.stop();
    /// lp.run(); // returns at once: no watcher is active
    /// ```
    pub fn stop(&self) {
        self.shared.stop();
    }

    /// Whether the watcher is started.
    ///
    /// ```
    /// use net_websocket_ev::ev::{Idle, Loop};
    /// let lp = Loop::new().unwrap();
    /// let idle = Idle::new(&lp, |_| {});
    /// assert!(!idle.is_active());
    /// idle.start();
    /// assert!(idle.is_active());
    /// ```
    pub fn is_active(&self) -> bool {
        self.shared.is_active()
    }

    /// Makes the loop call this watcher's callback with `events` on its next iteration,
    /// as if they had occurred (libev's `ev_feed_event`); works on a stopped watcher.
    ///
    /// ```
    /// use net_websocket_ev::ev::{Events, Io, Loop, RunFlags};
    /// use std::{cell::Cell, os::unix::{io::AsRawFd, net::UnixStream}, rc::Rc};
    /// let lp = Loop::new().unwrap();
    /// let (a, _b) = UnixStream::pair().unwrap();
    /// let got = Rc::new(Cell::new(Events::empty()));
    /// let seen = got.clone();
    /// let io = Io::new(&lp, a.as_raw_fd(), Events::READ, move |events| seen.set(events)).unwrap();
    /// io.feed_event(Events::READ); // "readable", though nothing arrived and it is stopped
    /// lp.run_with(RunFlags::NoWait);
    /// assert_eq!(got.get(), Events::READ);
    /// ```
    pub fn feed_event(&self, events: Events) {
        // SAFETY: an initialised watcher of this loop; while the event is pending libev
        // keeps a pointer to it, and stopping the watcher (done by the owner's Drop)
        // clears the pending event before the memory can go.
        unsafe {
            sys::ev_feed_event(
                self.shared.lp.as_raw(),
                self.shared.raw.get().cast(),
                events.bits() as c_int,
            )
        }
    }

    /// Replaces the callback (also from inside the running callback).
    ///
    /// ```
    /// use net_websocket_ev::ev::{Idle, Loop};
    /// use std::{cell::Cell, rc::Rc};
    /// let lp = Loop::new().unwrap();
    /// let idle = Idle::new(&lp, |_| {});
    /// // The callback that needs its own watcher's handle is set once the watcher exists.
    /// let handle = idle.handle();
    /// let calls = Rc::new(Cell::new(0));
    /// let count = calls.clone();
    /// idle.set_callback(move |_| {
    ///     count.set(count.get() + 1);
    ///     if count.get() == 3 {
    ///         handle.stop();
    ///     }
    /// });
    /// idle.start();
    /// lp.run();
    /// assert_eq!(calls.get(), 3);
    /// ```
    pub fn set_callback(&self, callback: impl FnMut(Events) + 'static) {
        *self.shared.callback.borrow_mut() = Some(Box::new(callback));
    }

    /// A non-owning handle, for callbacks.
    ///
    /// ```
    /// use net_websocket_ev::ev::{Idle, Loop, Timer};
    /// use std::time::Duration;
    /// let lp = Loop::new().unwrap();
    /// let busy = Idle::new(&lp, |_| {}); // background work while the loop has nothing else
    /// let busy_handle = busy.handle(); // does not keep `busy` alive
    /// let deadline = Timer::new(&lp, Duration::from_millis(1), Duration::ZERO, move |_| {
    ///     busy_handle.stop();
    /// });
    /// busy.start();
    /// deadline.start();
    /// lp.run(); // the idle watcher runs until the timer stops it
    /// assert!(!busy.is_active());
    /// ```
    pub fn handle(&self) -> WatcherHandle<K> {
        WatcherHandle {
            shared: Rc::downgrade(&self.shared),
        }
    }

    /// The loop this watcher belongs to.
    ///
    /// ```
    /// use net_websocket_ev::ev::{Idle, Loop};
    /// let lp = Loop::new().unwrap();
    /// let idle = Idle::new(&lp, |_| {});
    /// assert!(idle.event_loop().same_as(&lp));
    /// ```
    pub fn event_loop(&self) -> &Loop {
        &self.shared.lp
    }

    /// The libev struct, which stays at this address while the allocation lives.
    pub(super) fn raw(&self) -> *mut K::Raw {
        self.shared.raw.get()
    }

    /// Runs `change` on the raw watcher with the watcher stopped, then restarts it if it
    /// was active (libev forbids changing a started watcher).
    fn modify(&self, change: impl FnOnce(*mut K::Raw)) {
        let was_active = self.is_active();
        self.stop();
        change(self.shared.raw.get());
        if was_active {
            self.start();
        }
    }
}

impl<K: Kind> Shared<K> {
    fn start(&self) {
        if self.owned.get() {
            // SAFETY: the watcher is initialised, its memory is pinned in the Rc, and the
            // owner's Drop stops it before the memory can go.
            unsafe { K::start(self.lp.as_raw(), self.raw.get()) }
        }
    }

    fn stop(&self) {
        // SAFETY: stopping an initialised watcher is always allowed (no-op when stopped).
        unsafe { K::stop(self.lp.as_raw(), self.raw.get()) }
    }

    fn is_active(&self) -> bool {
        // SAFETY: reading the `active` field of an initialised watcher.
        unsafe { sys::ev_is_active(self.raw.get()) }
    }
}

impl<K: Kind> Drop for Watcher<K> {
    fn drop(&mut self) {
        self.shared.owned.set(false);
        self.shared.stop();
        // SAFETY: the watcher is stopped, and without its owner it cannot be started
        // again (`Shared::start` checks `owned`) nor fed events.
        unsafe { K::release(self.shared.lp.as_raw(), self.shared.raw.get()) }
    }
}

impl<K: Kind> Drop for Shared<K> {
    fn drop(&mut self) {
        // Owner drop already stopped it; this guards the allocation regardless.
        self.stop();
    }
}

impl<K: Kind> WatcherHandle<K> {
    /// Starts the watcher, if its owner still exists.
    ///
    /// ```
    /// use net_websocket_ev::ev::{Loop, Timer};
    /// use std::time::Duration;
    /// let lp = Loop::new().unwrap();
    /// let timer = Timer::new(&lp, Duration::from_secs(60), Duration::ZERO, |_| {});
    /// let handle = timer.handle();
    /// handle.start();
    /// assert!(timer.is_active());
    /// drop(timer);
    /// handle.start(); // no-op: the owner is gone
    /// assert!(!handle.is_active());
    /// ```
    pub fn start(&self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.start();
        }
    }

    /// Stops the watcher, if its owner still exists.
    ///
    /// ```
    /// use net_websocket_ev::ev::{Loop, Timer};
    /// use std::time::Duration;
    /// let lp = Loop::new().unwrap();
    /// let timer = Timer::new(&lp, Duration::from_secs(60), Duration::ZERO, |_| {});
    /// let handle = timer.handle();
    /// timer.start();
    /// handle.stop();
    /// assert!(!timer.is_active());
    /// ```
    pub fn stop(&self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.stop();
        }
    }

    /// Whether the watcher exists and is started.
    ///
    /// ```
    /// use net_websocket_ev::ev::{Loop, Timer};
    /// use std::time::Duration;
    /// let lp = Loop::new().unwrap();
    /// let timer = Timer::new(&lp, Duration::from_secs(60), Duration::ZERO, |_| {});
    /// let handle = timer.handle();
    /// assert!(!handle.is_active());
    /// timer.start();
    /// assert!(handle.is_active());
    /// drop(timer); // dropping the owner stops it
    /// assert!(!handle.is_active());
    /// ```
    pub fn is_active(&self) -> bool {
        self.shared.upgrade().is_some_and(|s| s.is_active())
    }

    /// Whether the owning handle has been dropped.
    ///
    /// ```
    /// use net_websocket_ev::ev::{Loop, Timer};
    /// use std::time::Duration;
    /// let lp = Loop::new().unwrap();
    /// let timer = Timer::new(&lp, Duration::from_secs(60), Duration::ZERO, |_| {});
    /// let handle = timer.handle();
    /// assert!(!handle.is_dropped());
    /// drop(timer);
    /// assert!(handle.is_dropped());
    /// ```
    pub fn is_dropped(&self) -> bool {
        self.shared.upgrade().map_or(true, |s| !s.owned.get())
    }
}

impl<K: Kind> Clone for WatcherHandle<K> {
    fn clone(&self) -> Self {
        WatcherHandle {
            shared: self.shared.clone(),
        }
    }
}

impl Watcher<IoKind> {
    /// A stopped I/O watcher for `fd` and `events` (READ and/or WRITE); a negative fd
    /// (or one above [`MAX_FD`]) is refused.
    ///
    /// ```
    /// use net_websocket_ev::ev::{Events, Io, Loop, WatcherError};
    /// use std::os::unix::io::AsRawFd;
    /// let lp = Loop::new().unwrap();
    /// let stdin = std::io::stdin();
    /// let io = Io::new(&lp, stdin.as_raw_fd(), Events::READ, |_| {}).unwrap();
    /// assert_eq!(io.fd(), stdin.as_raw_fd());
    /// assert_eq!(
    ///     Io::new(&lp, -1, Events::READ, |_| {}).unwrap_err(),
    ///     WatcherError::InvalidFd(-1)
    /// );
    /// ```
    pub fn new(
        lp: &Loop,
        fd: RawFd,
        events: Events,
        callback: impl FnMut(Events) + 'static,
    ) -> Result<Io, WatcherError> {
        check_fd(fd)?;
        let io = Self::create(lp, Box::new(callback));
        io.set(fd, events)?;
        Ok(io)
    }

    /// Changes fd and events (restarting the watcher if it was active). A refused fd
    /// leaves the watcher as it was.
    ///
    /// ```
    /// use net_websocket_ev::ev::{Events, Io, Loop};
    /// use std::os::unix::io::AsRawFd;
    /// let lp = Loop::new().unwrap();
    /// let (out, err) = (std::io::stdout(), std::io::stderr());
    /// let io = Io::new(&lp, out.as_raw_fd(), Events::WRITE, |_| {}).unwrap();
    /// io.set(err.as_raw_fd(), Events::WRITE).unwrap();
    /// assert!(io.set(-5, Events::WRITE).is_err());
    /// assert_eq!(io.fd(), err.as_raw_fd());
    /// ```
    pub fn set(&self, fd: RawFd, events: Events) -> Result<(), WatcherError> {
        check_fd(fd)?;
        let events = (events & (Events::READ | Events::WRITE)).bits() as c_int;
        // SAFETY: `modify` gives us the stopped watcher; `fd` is in libev's range.
        self.modify(|raw| unsafe { sys::ev_io_set(raw, fd, events) });
        Ok(())
    }

    /// Changes the events, keeping the fd; an active watcher is restarted only when the
    /// events actually change, so re-arming after every event costs nothing.
    ///
    /// ```
    /// use net_websocket_ev::ev::{Events, Io, Loop};
    /// use std::os::unix::{io::AsRawFd, net::UnixStream};
    /// let lp = Loop::new().unwrap();
    /// let (socket, _peer) = UnixStream::pair().unwrap();
    /// let io = Io::new(&lp, socket.as_raw_fd(), Events::READ, |_| {}).unwrap();
    /// io.start();
    /// // Something to write: also wake up when the socket is writable.
    /// io.set_events(Events::READ | Events::WRITE);
    /// assert_eq!(io.events(), Events::READ | Events::WRITE);
    /// assert!(io.is_active()); // still started
    /// ```
    pub fn set_events(&self, events: Events) {
        if events != self.events() {
            let bits = (events & (Events::READ | Events::WRITE)).bits() as c_int;
            // SAFETY: `modify` gives us the stopped watcher.
            self.modify(|raw| unsafe { sys::ev_io_modify(raw, bits) });
        }
    }

    /// The watched fd.
    ///
    /// ```
    /// use net_websocket_ev::ev::{Events, Io, Loop};
    /// use std::os::unix::{io::AsRawFd, net::UnixStream};
    /// let lp = Loop::new().unwrap();
    /// let (socket, _peer) = UnixStream::pair().unwrap();
    /// let io = Io::new(&lp, socket.as_raw_fd(), Events::READ, |_| {}).unwrap();
    /// assert_eq!(io.fd(), socket.as_raw_fd());
    /// ```
    pub fn fd(&self) -> RawFd {
        // SAFETY: reading a field of our initialised watcher.
        unsafe { (*self.shared.raw.get()).fd }
    }

    /// The events waited for.
    ///
    /// ```
    /// use net_websocket_ev::ev::{Events, Io, Loop};
    /// use std::os::unix::{io::AsRawFd, net::UnixStream};
    /// let lp = Loop::new().unwrap();
    /// let (socket, _peer) = UnixStream::pair().unwrap();
    /// let io = Io::new(&lp, socket.as_raw_fd(), Events::READ, |_| {}).unwrap();
    /// assert_eq!(io.events(), Events::READ);
    /// ```
    pub fn events(&self) -> Events {
        // SAFETY: reading a field of our initialised watcher.
        let bits = unsafe { (*self.shared.raw.get()).events } & !sys::EV__IOFDSET;
        Events::from_bits_truncate(bits as u32)
    }
}

impl Watcher<TimerKind> {
    /// A stopped timer firing `after` [`start`](Self::start), then every `repeat`
    /// (zero: once). Delays over [`MAX_DELAY`] are shortened to it.
    ///
    /// ```
    /// use net_websocket_ev::ev::{Loop, Timer};
    /// use std::time::Duration;
    /// let lp = Loop::new().unwrap();
    /// let tick = Duration::from_millis(5);
    /// let ticker = Timer::new(&lp, tick, tick, |_| println!("tick"));
    /// assert!(!ticker.is_active());
    /// ```
    pub fn new(
        lp: &Loop,
        after: Duration,
        repeat: Duration,
        callback: impl FnMut(Events) + 'static,
    ) -> Timer {
        let timer = Self::create(lp, Box::new(callback));
        timer.set(after, repeat);
        timer
    }

    /// Changes delay and repeat (restarting the timer, counting from now, if active).
    ///
    /// ```
    /// use net_websocket_ev::ev::{Loop, Timer};
    /// use std::time::Duration;
    /// let lp = Loop::new().unwrap();
    /// let timer = Timer::new(&lp, Duration::ZERO, Duration::ZERO, |_| {});
    /// timer.set(Duration::from_secs(60), Duration::ZERO);
    /// assert_eq!(timer.remaining(), Duration::from_secs(60)); // stopped: its delay
    /// ```
    pub fn set(&self, after: Duration, repeat: Duration) {
        let (after, repeat) = (tstamp(after), tstamp(repeat));
        // SAFETY: `modify` gives us the stopped watcher; both times are finite and
        // non-negative, as libev requires.
        self.modify(|raw| unsafe { sys::ev_timer_set(raw, after, repeat) });
    }

    /// libev's `ev_timer_again`: restarts a repeating timer to fire `repeat` from now,
    /// or stops it if `repeat` is zero.
    ///
    /// ```
    /// use net_websocket_ev::ev::{Loop, Timer};
    /// use std::time::Duration;
    /// let lp = Loop::new().unwrap();
    /// let idle_timeout = Timer::new(&lp, Duration::ZERO, Duration::from_secs(30), |_| {});
    /// idle_timeout.again(); // on every sign of life: 30 s from now
    /// assert!(idle_timeout.is_active());
    /// // Give or take a rounding error of libev's float times.
    /// assert!(idle_timeout.remaining() <= Duration::from_millis(30_001));
    /// ```
    pub fn again(&self) {
        // SAFETY: initialised timer of this loop.
        unsafe { sys::ev_timer_again(self.shared.lp.as_raw(), self.shared.raw.get()) }
    }

    /// The time until it fires (its delay if stopped; zero if overdue).
    ///
    /// ```
    /// use net_websocket_ev::ev::{Loop, Timer};
    /// use std::time::Duration;
    /// let lp = Loop::new().unwrap();
    /// let timer = Timer::new(&lp, Duration::from_secs(5), Duration::ZERO, |_| {});
    /// timer.start();
    /// assert!(timer.remaining() <= Duration::from_millis(5_001)); // give or take rounding
    /// ```
    pub fn remaining(&self) -> Duration {
        // SAFETY: initialised timer of this loop.
        let secs =
            unsafe { sys::ev_timer_remaining(self.shared.lp.as_raw(), self.shared.raw.get()) };
        // Finite and at most about MAX_DELAY: only NaN (never produced) would fail.
        Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(Duration::ZERO)
    }
}

impl Watcher<SignalKind> {
    /// A stopped watcher for signal `signum`, refused when the signal cannot be watched
    /// or is watched on another loop (see [`Signal`]).
    ///
    /// ```
    /// use net_websocket_ev::ev::{Loop, Signal, WatcherError};
    /// let lp = Loop::new().unwrap();
    /// let a = Signal::new(&lp, libc::SIGUSR2, |_| {}).unwrap();
    /// let b = Signal::new(&lp, libc::SIGUSR2, |_| {}).unwrap(); // same loop: fine
    /// assert_eq!(Signal::new(&lp, 0, |_| {}).unwrap_err(), WatcherError::InvalidSignal(0));
    /// assert_eq!(
    ///     Signal::new(&lp, libc::SIGCHLD, |_| {}).unwrap_err(),
    ///     WatcherError::SignalNeedsDefaultLoop(libc::SIGCHLD)
    /// );
    /// # drop((a, b));
    /// ```
    pub fn new(
        lp: &Loop,
        signum: i32,
        callback: impl FnMut(Events) + 'static,
    ) -> Result<Signal, WatcherError> {
        signals::claim(lp, signum)?;
        let signal = Self::create(lp, Box::new(callback));
        // SAFETY: `modify` gives us the stopped watcher; from here on the owner's Drop
        // releases the claim for this `signum`.
        signal.modify(|raw| unsafe { (*raw).signum = signum });
        Ok(signal)
    }
}

impl Watcher<IdleKind> {
    /// A stopped idle watcher.
    ///
    /// ```
    /// let lp = net_websocket_ev::ev::Loop::new().unwrap();
    /// let idle = net_websocket_ev::ev::Idle::new(&lp, |_| {});
    /// assert!(!idle.is_active());
    /// ```
    pub fn new(lp: &Loop, callback: impl FnMut(Events) + 'static) -> Idle {
        Self::create(lp, Box::new(callback))
    }
}

/// Refuses an fd libev cannot take (see [`MAX_FD`]).
fn check_fd(fd: RawFd) -> Result<(), WatcherError> {
    if (0..=MAX_FD).contains(&fd) {
        Ok(())
    } else {
        Err(WatcherError::InvalidFd(fd))
    }
}

/// A delay as libev's `ev_tstamp`: finite, non-negative, at most [`MAX_DELAY`].
fn tstamp(delay: Duration) -> f64 {
    delay.min(MAX_DELAY).as_secs_f64()
}

impl<K: Kind> fmt::Debug for Watcher<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(
            std::any::type_name::<K>()
                .rsplit("::")
                .next()
                .unwrap_or("Watcher"),
        )
        .field("active", &self.is_active())
        .finish()
    }
}

impl<K: Kind> fmt::Debug for WatcherHandle<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatcherHandle")
            .field("active", &self.is_active())
            .field("dropped", &self.is_dropped())
            .finish()
    }
}

impl fmt::Display for WatcherError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WatcherError::InvalidFd(fd) => write!(
                f,
                "invalid file descriptor {fd} for an io watcher (0 to {MAX_FD})"
            ),
            WatcherError::InvalidSignal(signum) => write!(
                f,
                "signal {signum} cannot be watched (1 to SIGRTMAX, not SIGKILL or SIGSTOP)"
            ),
            WatcherError::SignalInUse(signum) => write!(
                f,
                "signal {signum} is watched on another loop: libev delivers a signal to one \
                 loop, so watch it there (or drop that loop's signal watchers first)"
            ),
            WatcherError::SignalNeedsDefaultLoop(signum) => write!(
                f,
                "signal {signum} belongs to libev's default loop: watch it on \
                 Loop::default_loop()"
            ),
        }
    }
}

impl std::error::Error for WatcherError {}
