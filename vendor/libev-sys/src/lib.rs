//! Raw FFI declarations for the system libev (4.x, built with its default
//! configuration: `EV_MULTIPLICITY`, priorities, `void *data` in every watcher).
//!
//! This crate is deliberately thin: `#[repr(C)]` watcher structs, the `extern "C"`
//! functions the safe layer uses, the constants, and Rust versions of the few `ev.h`
//! macros that initialise watchers. It has no logic. Its build script links the system
//! library and checks every struct's size and field offsets against the real `ev.h` at
//! compile time, so a layout mismatch fails the build.
//!
//! ```
//! // SAFETY: the default loop is created on first use and lives for the process.
//! let lp = unsafe { libev_sys::ev_default_loop(0) };
//! assert!(!lp.is_null());
//! ```
#![allow(non_camel_case_types)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

use libc::{c_double, c_int, c_uint, c_void};

include!(concat!(env!("OUT_DIR"), "/abi_check.rs"));

/// libev's time type: seconds as a double.
pub type ev_tstamp = c_double;

/// An event loop (opaque).
#[repr(C)]
#[derive(Debug)]
pub struct ev_loop {
    _opaque: [u8; 0],
}

/// The callback type shared by all watchers, taking the watcher as its base type.
pub type ev_cb = Option<unsafe extern "C" fn(*mut ev_loop, *mut ev_watcher, c_int)>;

/// The common head of every watcher (`EV_WATCHER`).
#[repr(C)]
#[derive(Debug)]
pub struct ev_watcher {
    /// Nonzero while the watcher is started (private to libev).
    pub active: c_int,
    /// Nonzero while an event is pending (private to libev).
    pub pending: c_int,
    /// Priority, from `EV_MINPRI` to `EV_MAXPRI`.
    pub priority: c_int,
    /// User data (`EV_COMMON`).
    pub data: *mut c_void,
    /// The callback.
    pub cb: ev_cb,
}

/// An I/O watcher (`ev_io`).
#[repr(C)]
#[derive(Debug)]
pub struct ev_io {
    /// See [`ev_watcher::active`].
    pub active: c_int,
    /// See [`ev_watcher::pending`].
    pub pending: c_int,
    /// See [`ev_watcher::priority`].
    pub priority: c_int,
    /// See [`ev_watcher::data`].
    pub data: *mut c_void,
    /// The callback.
    pub cb: Option<unsafe extern "C" fn(*mut ev_loop, *mut ev_io, c_int)>,
    /// libev's list link (private).
    pub next: *mut ev_watcher,
    /// The watched file descriptor.
    pub fd: c_int,
    /// `EV_READ`, `EV_WRITE`, ored with the private `EV__IOFDSET`.
    pub events: c_int,
}

/// A relative timer (`ev_timer`).
#[repr(C)]
#[derive(Debug)]
pub struct ev_timer {
    /// See [`ev_watcher::active`].
    pub active: c_int,
    /// See [`ev_watcher::pending`].
    pub pending: c_int,
    /// See [`ev_watcher::priority`].
    pub priority: c_int,
    /// See [`ev_watcher::data`].
    pub data: *mut c_void,
    /// The callback.
    pub cb: Option<unsafe extern "C" fn(*mut ev_loop, *mut ev_timer, c_int)>,
    /// When it fires (private; set through [`ev_timer_set`]).
    pub at: ev_tstamp,
    /// The repeat interval, 0 for a one-shot timer.
    pub repeat: ev_tstamp,
}

/// A signal watcher (`ev_signal`; one loop per signal at a time).
#[repr(C)]
#[derive(Debug)]
pub struct ev_signal {
    /// See [`ev_watcher::active`].
    pub active: c_int,
    /// See [`ev_watcher::pending`].
    pub pending: c_int,
    /// See [`ev_watcher::priority`].
    pub priority: c_int,
    /// See [`ev_watcher::data`].
    pub data: *mut c_void,
    /// The callback.
    pub cb: Option<unsafe extern "C" fn(*mut ev_loop, *mut ev_signal, c_int)>,
    /// libev's list link (private).
    pub next: *mut ev_watcher,
    /// The signal number.
    pub signum: c_int,
}

/// An idle watcher (`ev_idle`): runs when the loop has nothing else to do.
#[repr(C)]
#[derive(Debug)]
pub struct ev_idle {
    /// See [`ev_watcher::active`].
    pub active: c_int,
    /// See [`ev_watcher::pending`].
    pub pending: c_int,
    /// See [`ev_watcher::priority`].
    pub priority: c_int,
    /// See [`ev_watcher::data`].
    pub data: *mut c_void,
    /// The callback.
    pub cb: Option<unsafe extern "C" fn(*mut ev_loop, *mut ev_idle, c_int)>,
}

/// An async watcher (`ev_async`): another thread wakes the loop with [`ev_async_send`].
#[repr(C)]
#[derive(Debug)]
pub struct ev_async {
    /// See [`ev_watcher::active`].
    pub active: c_int,
    /// See [`ev_watcher::pending`].
    pub pending: c_int,
    /// See [`ev_watcher::priority`].
    pub priority: c_int,
    /// See [`ev_watcher::data`].
    pub data: *mut c_void,
    /// The callback.
    pub cb: Option<unsafe extern "C" fn(*mut ev_loop, *mut ev_async, c_int)>,
    /// Private: `EV_ATOMIC_T` (`sig_atomic_t volatile`), written by `ev_async_send`
    /// from any thread; never read or write it from Rust once the watcher is shared.
    pub sent: c_int,
}

/// `ev_io` detected that reading will not block.
pub const EV_READ: c_int = 0x01;
/// `ev_io` detected that writing will not block.
pub const EV_WRITE: c_int = 0x02;
/// Private flag `ev_io_set` adds to `events`.
pub const EV__IOFDSET: c_int = 0x80;
/// A timer expired.
pub const EV_TIMER: c_int = 0x100;
/// A signal arrived.
pub const EV_SIGNAL: c_int = 0x400;
/// The loop is idle.
pub const EV_IDLE: c_int = 0x2000;
/// An `ev_async` was sent.
pub const EV_ASYNC: c_int = 0x0008_0000;
/// An error occurred (the watcher was stopped).
pub const EV_ERROR: c_int = 0x8000_0000_u32 as c_int;
/// `ev_run` flag: do not block.
pub const EVRUN_NOWAIT: c_int = 1;
/// `ev_run` flag: block once at most.
pub const EVRUN_ONCE: c_int = 2;
/// `ev_break`: undo a pending break.
pub const EVBREAK_CANCEL: c_int = 0;
/// `ev_break`: leave the innermost `ev_run`.
pub const EVBREAK_ONE: c_int = 1;
/// `ev_break`: leave every `ev_run`.
pub const EVBREAK_ALL: c_int = 2;
/// Loop flag: the default set of backends.
pub const EVFLAG_AUTO: c_uint = 0;

extern "C" {
    /// libev's default loop once [`ev_default_loop`] has created it, else null. Written
    /// by `ev_default_loop` (and cleared by destroying the default loop): read it with
    /// `std::ptr::addr_of!(ev_default_loop_ptr).read()`, never concurrently with those.
    pub static mut ev_default_loop_ptr: *mut ev_loop;
    /// The major version of the linked library.
    pub fn ev_version_major() -> c_int;
    /// The minor version of the linked library.
    pub fn ev_version_minor() -> c_int;
    /// Wall-clock time.
    pub fn ev_time() -> ev_tstamp;
    /// The default loop, created on first call; null if it could not be created.
    pub fn ev_default_loop(flags: c_uint) -> *mut ev_loop;
    /// A new loop; null if it could not be created.
    pub fn ev_loop_new(flags: c_uint) -> *mut ev_loop;
    /// Destroys a loop (also the default loop).
    pub fn ev_loop_destroy(lp: *mut ev_loop);
    /// The loop's cached time.
    pub fn ev_now(lp: *mut ev_loop) -> ev_tstamp;
    /// Refreshes the loop's cached time.
    pub fn ev_now_update(lp: *mut ev_loop);
    /// Runs the loop; nonzero when watchers are still active.
    pub fn ev_run(lp: *mut ev_loop, flags: c_int) -> c_int;
    /// Asks `ev_run` to return.
    pub fn ev_break(lp: *mut ev_loop, how: c_int);
    /// Adds a reference that keeps `ev_run` running.
    pub fn ev_ref(lp: *mut ev_loop);
    /// Removes a reference.
    pub fn ev_unref(lp: *mut ev_loop);
    /// The number of loop iterations so far.
    pub fn ev_iteration(lp: *mut ev_loop) -> c_uint;
    /// The nesting depth of `ev_run` calls.
    pub fn ev_depth(lp: *mut ev_loop) -> c_uint;
    /// The number of pending watchers.
    pub fn ev_pending_count(lp: *mut ev_loop) -> c_uint;
    /// Feeds an event to any watcher as if it occurred.
    pub fn ev_feed_event(lp: *mut ev_loop, w: *mut c_void, revents: c_int);
    /// Clears a watcher's pending state, returning its pending events.
    pub fn ev_clear_pending(lp: *mut ev_loop, w: *mut c_void) -> c_int;
    /// Starts an I/O watcher.
    pub fn ev_io_start(lp: *mut ev_loop, w: *mut ev_io);
    /// Stops an I/O watcher (also clears its pending events).
    pub fn ev_io_stop(lp: *mut ev_loop, w: *mut ev_io);
    /// Starts a timer.
    pub fn ev_timer_start(lp: *mut ev_loop, w: *mut ev_timer);
    /// Stops a timer.
    pub fn ev_timer_stop(lp: *mut ev_loop, w: *mut ev_timer);
    /// Restarts a repeating timer from its repeat value.
    pub fn ev_timer_again(lp: *mut ev_loop, w: *mut ev_timer);
    /// Seconds until the timer fires.
    pub fn ev_timer_remaining(lp: *mut ev_loop, w: *mut ev_timer) -> ev_tstamp;
    /// Starts a signal watcher (a signal may be watched on one loop at a time).
    pub fn ev_signal_start(lp: *mut ev_loop, w: *mut ev_signal);
    /// Stops a signal watcher.
    pub fn ev_signal_stop(lp: *mut ev_loop, w: *mut ev_signal);
    /// Starts an idle watcher.
    pub fn ev_idle_start(lp: *mut ev_loop, w: *mut ev_idle);
    /// Stops an idle watcher.
    pub fn ev_idle_stop(lp: *mut ev_loop, w: *mut ev_idle);
    /// Starts an async watcher.
    pub fn ev_async_start(lp: *mut ev_loop, w: *mut ev_async);
    /// Stops an async watcher.
    pub fn ev_async_stop(lp: *mut ev_loop, w: *mut ev_async);
    /// Wakes the loop and makes it call the watcher: the one libev call that is safe
    /// from any thread (the watcher's memory and the loop must exist meanwhile).
    pub fn ev_async_send(lp: *mut ev_loop, w: *mut ev_async);
}

/// `ev_init` for an `ev_io`: clears the private state and sets the callback.
///
/// # Safety
/// `w` must point to writable memory of an `ev_io` that libev does not hold (not started).
pub unsafe fn ev_io_init(
    w: *mut ev_io,
    cb: unsafe extern "C" fn(*mut ev_loop, *mut ev_io, c_int),
    fd: c_int,
    events: c_int,
) {
    (*w).active = 0;
    (*w).pending = 0;
    (*w).priority = 0;
    (*w).cb = Some(cb);
    ev_io_set(w, fd, events);
}

/// `ev_io_set`: the fd and events of a stopped watcher.
///
/// # Safety
/// `w` must point to an initialised `ev_io` that is not started.
pub unsafe fn ev_io_set(w: *mut ev_io, fd: c_int, events: c_int) {
    (*w).fd = fd;
    (*w).events = events | EV__IOFDSET;
}

/// `ev_io_modify`: the events of a stopped watcher, keeping its fd.
///
/// # Safety
/// `w` must point to an initialised `ev_io` that is not started.
pub unsafe fn ev_io_modify(w: *mut ev_io, events: c_int) {
    (*w).events = ((*w).events & EV__IOFDSET) | events;
}

/// `ev_init` + `ev_timer_set` for an `ev_timer`.
///
/// # Safety
/// `w` must point to writable memory of an `ev_timer` that is not started.
pub unsafe fn ev_timer_init(
    w: *mut ev_timer,
    cb: unsafe extern "C" fn(*mut ev_loop, *mut ev_timer, c_int),
    after: ev_tstamp,
    repeat: ev_tstamp,
) {
    (*w).active = 0;
    (*w).pending = 0;
    (*w).priority = 0;
    (*w).cb = Some(cb);
    ev_timer_set(w, after, repeat);
}

/// `ev_timer_set`: the delay and repeat of a stopped timer.
///
/// # Safety
/// `w` must point to an initialised `ev_timer` that is not started.
pub unsafe fn ev_timer_set(w: *mut ev_timer, after: ev_tstamp, repeat: ev_tstamp) {
    (*w).at = after;
    (*w).repeat = repeat;
}

/// `ev_init` + `ev_signal_set` for an `ev_signal`.
///
/// # Safety
/// `w` must point to writable memory of an `ev_signal` that is not started.
pub unsafe fn ev_signal_init(
    w: *mut ev_signal,
    cb: unsafe extern "C" fn(*mut ev_loop, *mut ev_signal, c_int),
    signum: c_int,
) {
    (*w).active = 0;
    (*w).pending = 0;
    (*w).priority = 0;
    (*w).cb = Some(cb);
    (*w).signum = signum;
}

/// `ev_init` for an `ev_idle`.
///
/// # Safety
/// `w` must point to writable memory of an `ev_idle` that is not started.
pub unsafe fn ev_idle_init(
    w: *mut ev_idle,
    cb: unsafe extern "C" fn(*mut ev_loop, *mut ev_idle, c_int),
) {
    (*w).active = 0;
    (*w).pending = 0;
    (*w).priority = 0;
    (*w).cb = Some(cb);
}

/// `ev_async_init`: `ev_init` (`ev_async_set` does nothing).
///
/// # Safety
/// `w` must point to writable memory of an `ev_async` that is not started.
pub unsafe fn ev_async_init(
    w: *mut ev_async,
    cb: unsafe extern "C" fn(*mut ev_loop, *mut ev_async, c_int),
) {
    (*w).active = 0;
    (*w).pending = 0;
    (*w).priority = 0;
    (*w).cb = Some(cb);
    (*w).sent = 0;
}

/// `ev_is_active` for any watcher type (they all start with the `ev_watcher` head).
///
/// # Safety
/// `w` must point to an initialised watcher.
pub unsafe fn ev_is_active<W>(w: *const W) -> bool {
    (*(w as *const ev_watcher)).active != 0
}
