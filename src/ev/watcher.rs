use std::cell::{Cell, RefCell, UnsafeCell};
use std::fmt;
use std::os::raw::{c_int, c_void};
use std::os::unix::io::RawFd;
use std::panic::{self, AssertUnwindSafe};
use std::rc::{Rc, Weak};

use bitflags::bitflags;
use libev_sys as sys;

use super::event_loop::{park_panic, shield, Loop};

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
        /// libev stopped the watcher after an error (a bad fd, for example).
        const ERROR = sys::EV_ERROR as u32;
    }
}

/// An owning watcher handle of kind `K`: see [`Io`], [`Timer`], [`Signal`], [`Idle`].
///
/// Dropping it stops the watcher. Its memory, which libev points into, lives in a
/// shared allocation that stays put until the last reference (the owner, or a running
/// callback) is gone.
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
/// It does not own the fd; the fd must stay open while the watcher is started.
///
/// ```
/// use net_websocket_ev::ev::{Events, Io, Loop};
/// use std::io::Write;
/// use std::os::unix::{io::AsRawFd, net::UnixStream};
///
/// let lp = Loop::new().unwrap();
/// let (mut a, b) = UnixStream::pair().unwrap();
/// a.write_all(b"x").unwrap();
/// let io = Io::new(&lp, b.as_raw_fd(), Events::READ, |_| {});
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

/// A relative timer, one-shot (`repeat` 0) or repeating.
///
/// ```
/// use net_websocket_ev::ev::{Loop, Timer};
/// let lp = Loop::new().unwrap();
/// let timer = Timer::new(&lp, 0.001, 0.0, |_| println!("fired"));
/// timer.start();
/// lp.run();
/// ```
pub type Timer = Watcher<TimerKind>;

/// A signal watcher (one loop per signal; normally the default loop).
pub type Signal = Watcher<SignalKind>;

/// An idle watcher: called on every loop iteration that has no other pending event.
pub type Idle = Watcher<IdleKind>;

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
}

macro_rules! kind {
    ($(#[$doc:meta])* $name:ident, $raw:ty, $init:expr, $start:path, $stop:path) => {
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
    sys::ev_signal_start, sys::ev_signal_stop
);
kind!(
    /// Marker for [`Idle`].
    IdleKind, sys::ev_idle,
    |raw, cb| sys::ev_idle_init(raw, cb),
    sys::ev_idle_start, sys::ev_idle_stop
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
    fn create(lp: &Loop, callback: Callback) -> Self {
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
    pub fn start(&self) {
        self.shared.start();
    }

    /// Stops the watcher and clears its pending events (no-op if it is not active).
    pub fn stop(&self) {
        self.shared.stop();
    }

    /// Whether the watcher is started.
    pub fn is_active(&self) -> bool {
        self.shared.is_active()
    }

    /// Makes the loop call this watcher's callback with `events` on its next iteration,
    /// as if they had occurred (libev's `ev_feed_event`); works on a stopped watcher.
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
    pub fn set_callback(&self, callback: impl FnMut(Events) + 'static) {
        *self.shared.callback.borrow_mut() = Some(Box::new(callback));
    }

    /// A non-owning handle, for callbacks.
    pub fn handle(&self) -> WatcherHandle<K> {
        WatcherHandle {
            shared: Rc::downgrade(&self.shared),
        }
    }

    /// The loop this watcher belongs to.
    pub fn event_loop(&self) -> &Loop {
        &self.shared.lp
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
    pub fn start(&self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.start();
        }
    }

    /// Stops the watcher, if its owner still exists.
    pub fn stop(&self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.stop();
        }
    }

    /// Whether the watcher exists and is started.
    pub fn is_active(&self) -> bool {
        self.shared.upgrade().is_some_and(|s| s.is_active())
    }

    /// Whether the owning handle has been dropped.
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
    /// A stopped I/O watcher for `fd` and `events` (READ and/or WRITE).
    pub fn new(lp: &Loop, fd: RawFd, events: Events, callback: impl FnMut(Events) + 'static) -> Io {
        let io = Self::create(lp, Box::new(callback));
        io.set(fd, events);
        io
    }

    /// Changes fd and events (restarting the watcher if it was active).
    pub fn set(&self, fd: RawFd, events: Events) {
        let events = (events & (Events::READ | Events::WRITE)).bits() as c_int;
        // SAFETY: `modify` gives us the stopped watcher.
        self.modify(|raw| unsafe { sys::ev_io_set(raw, fd, events) });
    }

    /// Changes the events, keeping the fd; an active watcher is restarted only when the
    /// events actually change, so re-arming after every event costs nothing.
    pub fn set_events(&self, events: Events) {
        if events != self.events() {
            let bits = (events & (Events::READ | Events::WRITE)).bits() as c_int;
            // SAFETY: `modify` gives us the stopped watcher.
            self.modify(|raw| unsafe { sys::ev_io_modify(raw, bits) });
        }
    }

    /// The watched fd.
    pub fn fd(&self) -> RawFd {
        // SAFETY: reading a field of our initialised watcher.
        unsafe { (*self.shared.raw.get()).fd }
    }

    /// The events waited for.
    pub fn events(&self) -> Events {
        // SAFETY: reading a field of our initialised watcher.
        let bits = unsafe { (*self.shared.raw.get()).events } & !sys::EV__IOFDSET;
        Events::from_bits_truncate(bits as u32)
    }
}

impl Watcher<TimerKind> {
    /// A stopped timer firing `after` seconds after [`start`](Self::start), then every
    /// `repeat` seconds (0: once).
    pub fn new(
        lp: &Loop,
        after: f64,
        repeat: f64,
        callback: impl FnMut(Events) + 'static,
    ) -> Timer {
        let timer = Self::create(lp, Box::new(callback));
        timer.set(after, repeat);
        timer
    }

    /// Changes delay and repeat (restarting the timer, counting from now, if active).
    pub fn set(&self, after: f64, repeat: f64) {
        // SAFETY: `modify` gives us the stopped watcher.
        self.modify(|raw| unsafe { sys::ev_timer_set(raw, after, repeat) });
    }

    /// libev's `ev_timer_again`: restarts a repeating timer to fire `repeat` seconds from
    /// now, or stops it if `repeat` is 0.
    pub fn again(&self) {
        // SAFETY: initialised timer of this loop.
        unsafe { sys::ev_timer_again(self.shared.lp.as_raw(), self.shared.raw.get()) }
    }

    /// Seconds until it fires (its delay if stopped).
    pub fn remaining(&self) -> f64 {
        // SAFETY: initialised timer of this loop.
        unsafe { sys::ev_timer_remaining(self.shared.lp.as_raw(), self.shared.raw.get()) }
    }
}

impl Watcher<SignalKind> {
    /// A stopped watcher for signal `signum`.
    pub fn new(lp: &Loop, signum: i32, callback: impl FnMut(Events) + 'static) -> Signal {
        let signal = Self::create(lp, Box::new(callback));
        // SAFETY: `modify` gives us the stopped watcher.
        signal.modify(|raw| unsafe { (*raw).signum = signum });
        signal
    }
}

impl Watcher<IdleKind> {
    /// A stopped idle watcher.
    pub fn new(lp: &Loop, callback: impl FnMut(Events) + 'static) -> Idle {
        Self::create(lp, Box::new(callback))
    }
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
