//! Safe wrappers over libev: the [`Loop`] and its watchers ([`Io`], [`Timer`],
//! [`Signal`], [`Idle`], and [`Async`] to wake a loop from another thread), with Rust
//! closures as callbacks.
//!
//! Every watcher is an owning handle: dropping it stops it. Its callback may stop,
//! restart or drop its own watcher and any other (through a [`WatcherHandle`], which
//! does not keep the watcher alive). libev holds a pointer into the watcher's shared
//! allocation, which never moves while it exists.
//!
//! # Threads, arguments and process-wide state
//! Safe code cannot make libev misbehave. Loops and watchers are neither `Send` nor
//! `Sync`; the one way in from another thread is an [`AsyncSender`], which wakes its
//! [`Async`] watcher's loop. libev's process-wide pieces are guarded: the default loop belongs to one
//! thread at a time ([`Loop::default_loop`]), a signal to one loop at a time
//! ([`Signal`]). Arguments libev would assert on are refused with a [`WatcherError`]
//! (a negative fd, a bad signal number), and times are [`Duration`](std::time::Duration)s,
//! never negative, NaN or infinite.
//!
//! # Panics in callbacks
//! A panic never unwinds into libev: each callback runs under `catch_unwind`. The first
//! panic is parked, the loop is told to break out of every `ev_run` level, and
//! [`Loop::run`] (and its siblings) resume the panic once `ev_run` has returned, so it
//! surfaces in the caller's thread as if the callback had been called directly. When
//! foreign code runs the loop itself, call [`take_panic`] after its `ev_run` returns.
//!
//! ```
//! use net_websocket_ev::ev::{Events, Loop, Timer};
//! use std::{cell::Cell, rc::Rc, time::Duration};
//!
//! let lp = Loop::new().unwrap();
//! let fired = Rc::new(Cell::new(false));
//! let seen = fired.clone();
//! let timer = Timer::new(&lp, Duration::from_millis(1), Duration::ZERO, move |events| {
//!     assert!(events.contains(Events::TIMER));
//!     seen.set(true);
//! });
//! timer.start();
//! lp.run();
//! assert!(fired.get());
//! ```

mod async_watcher;
mod event_loop;
mod signals;
mod watcher;

/// The raw libev bindings (`libev-sys`) this layer wraps: for [`Loop::from_raw`] and
/// [`Loop::as_raw`] with a loop that C code created or keeps using.
pub use libev_sys as sys;

pub use async_watcher::{Async, AsyncSender};
pub use event_loop::{take_panic, Loop, LoopError, RunFlags};
pub use watcher::{
    Events, Idle, IdleKind, Io, IoKind, Kind, Signal, SignalKind, Timer, TimerKind, Watcher,
    WatcherError, WatcherHandle, MAX_DELAY, MAX_FD,
};

/// The version of the libev this crate was built against, as `"major.minor"`.
pub const LIBEV_VERSION: &str = env!("LIBEV_VERSION");

/// The version of the libev linked at run time, as `(major, minor)`.
///
/// ```
/// let (major, _minor) = net_websocket_ev::ev::runtime_version();
/// assert_eq!(major, 4);
/// ```
pub fn runtime_version() -> (i32, i32) {
    // SAFETY: both functions only return compile-time constants of the library.
    unsafe { (libev_sys::ev_version_major(), libev_sys::ev_version_minor()) }
}
