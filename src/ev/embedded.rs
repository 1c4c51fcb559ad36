//! An io watcher stored inside the `Rc` allocation of the object it calls back
//! (crate-private): no allocation of its own and no boxed closure. Used by the
//! WebSocket connection, for which it saves two allocations per connection.
//!
//! Soundness rests on two facts: the contents of an `Rc` never move, and the
//! watcher is stopped (by its `Drop`) before the allocation holding it is freed.
//! libev only touches a watcher while it is started or pending; stopping clears
//! both.

use std::cell::{Cell, UnsafeCell};
use std::os::raw::c_int;
use std::os::unix::io::RawFd;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;

use libev_sys as sys;

use super::event_loop::{park_panic, shield, Loop};
use super::Events;

/// The object an [`EmbeddedIo`] calls back.
///
/// # Safety
///
/// `embedded_io` must return a field of `self` (stored inline, not behind a
/// pointer), and always the same one: the watcher must live in the same
/// allocation as the object it calls.
pub(crate) unsafe trait IoTarget: 'static {
    /// The watcher inside `self`.
    fn embedded_io(&self) -> &EmbeddedIo;
    /// An event: called with a strong reference held for the call. Not called
    /// again while it runs (a nested loop run inside it skips this watcher).
    fn on_io(self: &Rc<Self>, events: Events);
}

/// An io watcher to embed in an [`IoTarget`]; inert until [`EmbeddedIo::attach`].
pub(crate) struct EmbeddedIo {
    raw: UnsafeCell<sys::ev_io>,
    lp: Loop,
    attached: Cell<bool>,
    running: Cell<bool>,
}

impl EmbeddedIo {
    pub(crate) fn new(lp: &Loop) -> EmbeddedIo {
        EmbeddedIo {
            // SAFETY: ev_io is plain C data for which all-zero bytes are a valid,
            // unstarted (inactive, not pending) value.
            raw: UnsafeCell::new(unsafe { std::mem::zeroed() }),
            lp: lp.clone(),
            attached: Cell::new(false),
            running: Cell::new(false),
        }
    }

    /// Sets the watcher inside `target` up for `fd` and `events`, calling
    /// `T::on_io`. Not started. Attaching again is a no-op.
    pub(crate) fn attach<T: IoTarget>(target: &Rc<T>, fd: RawFd, events: Events) {
        let io = target.embedded_io();
        if io.attached.replace(true) {
            return;
        }
        let raw = io.raw.get();
        let bits = (events & (Events::READ | Events::WRITE)).bits() as c_int;
        // SAFETY: the watcher is not started (never attached before); `data` points
        // at the target, in whose allocation the watcher lives (the `IoTarget`
        // contract) and which never moves: the pointer is valid whenever libev can
        // call us, since the watcher is stopped before that allocation goes.
        unsafe {
            sys::ev_io_init(raw, trampoline::<T>, fd, bits);
            (*raw.cast::<sys::ev_watcher>()).data = Rc::as_ptr(target) as *mut _;
        }
    }

    pub(crate) fn event_loop(&self) -> &Loop {
        &self.lp
    }

    /// Starts the watcher (no-op unless attached).
    pub(crate) fn start(&self) {
        if self.attached.get() {
            // SAFETY: an attached watcher is initialised and lives in its target's
            // allocation; Drop stops it before that memory can go.
            unsafe { sys::ev_io_start(self.lp.as_raw(), self.raw.get()) }
        }
    }

    pub(crate) fn stop(&self) {
        // SAFETY: stopping an initialised or all-zero watcher is allowed (no-op when
        // inactive and not pending).
        unsafe { sys::ev_io_stop(self.lp.as_raw(), self.raw.get()) }
    }

    pub(crate) fn is_active(&self) -> bool {
        // SAFETY: reading the `active` field of our watcher.
        unsafe { sys::ev_is_active(self.raw.get()) }
    }

    /// The events waited for.
    pub(crate) fn events(&self) -> Events {
        // SAFETY: reading a field of our watcher.
        let bits = unsafe { (*self.raw.get()).events } & !sys::EV__IOFDSET;
        Events::from_bits_truncate(bits as u32)
    }

    /// Changes the events waited for (restarting the watcher if it was active).
    pub(crate) fn set_events(&self, events: Events) {
        if events == self.events() || !self.attached.get() {
            return;
        }
        let was_active = self.is_active();
        self.stop();
        let bits = (events & (Events::READ | Events::WRITE)).bits() as c_int;
        // SAFETY: the watcher is stopped, as ev_io_modify requires.
        unsafe { sys::ev_io_modify(self.raw.get(), bits) };
        if was_active {
            self.start();
        }
    }

    /// Makes libev call the watcher with `events` at the next loop iteration.
    pub(crate) fn feed_event(&self, events: Events) {
        if !self.attached.get() {
            return;
        }
        // SAFETY: an attached watcher of this loop; while the event is pending libev
        // keeps a pointer to it, and stopping it (done by Drop at the latest) clears
        // the pending event before the memory can go.
        unsafe {
            sys::ev_feed_event(
                self.lp.as_raw(),
                self.raw.get().cast(),
                events.bits() as c_int,
            )
        }
    }
}

impl Drop for EmbeddedIo {
    fn drop(&mut self) {
        self.stop();
    }
}

unsafe extern "C" fn trampoline<T: IoTarget>(
    lp: *mut sys::ev_loop,
    raw: *mut sys::ev_io,
    revents: c_int,
) {
    let body = || {
        // SAFETY: `data` was set by `attach` to the target holding this watcher;
        // libev calls only a started or pending watcher, which is never the case once
        // the watcher (and so its target) is dropped, so the target is alive and we
        // may take a strong count for the call.
        let target = unsafe {
            let ptr = (*raw.cast::<sys::ev_watcher>()).data as *const T;
            Rc::increment_strong_count(ptr);
            Rc::from_raw(ptr)
        };
        let io = target.embedded_io();
        if io.running.replace(true) {
            return; // already running: a nested loop run inside the callback
        }
        let result = panic::catch_unwind(AssertUnwindSafe(|| {
            target.on_io(Events::from_bits_retain(revents as u32))
        }));
        target.embedded_io().running.set(false);
        if let Err(payload) = result {
            park_panic(payload);
        }
        // Dropping `target` may free it, the watcher included: libev does not touch
        // a watcher after its callback returns.
    };
    // SAFETY: `lp` is the loop calling us.
    unsafe { shield(lp, body) }
}
