use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::panic;
use std::ptr::NonNull;
use std::rc::Rc;

use libev_sys as sys;

/// A libev event loop: the default loop, a new loop, or one adopted from foreign code.
///
/// Cloning is cheap and gives another handle to the same loop. A loop created by
/// [`Loop::new`] is destroyed when its last handle is dropped; every watcher holds a
/// handle, so the loop outlives its watchers. The default loop and adopted loops are
/// never destroyed by this crate.
///
/// A loop, like libev itself, belongs to one thread: `Loop` is neither `Send` nor `Sync`.
#[derive(Clone)]
pub struct Loop {
    inner: Rc<LoopInner>,
}

struct LoopInner {
    raw: NonNull<sys::ev_loop>,
    owned: bool,
}

/// libev could not create a loop (no usable backend, or out of file descriptors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoopError;

/// How [`Loop::run_with`] waits, libev's `EVRUN_*` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunFlags {
    /// Run until no active watcher is left or [`Loop::break_loop`] is called.
    UntilDone,
    /// Wait for events once (blocking), handle them, return.
    Once,
    /// Handle what is ready now without blocking, return.
    NoWait,
}

impl Loop {
    /// libev's default loop (created on first use), the only one that handles signals.
    ///
    /// ```
    /// let a = net_websocket_ev::ev::Loop::default_loop().unwrap();
    /// let b = net_websocket_ev::ev::Loop::default_loop().unwrap();
    /// assert_eq!(a.as_raw(), b.as_raw());
    /// ```
    pub fn default_loop() -> Result<Loop, LoopError> {
        // SAFETY: ev_default_loop may be called any number of times; 0 = EVFLAG_AUTO.
        let raw = unsafe { sys::ev_default_loop(sys::EVFLAG_AUTO) };
        Ok(Self::wrap(NonNull::new(raw).ok_or(LoopError)?, false))
    }

    /// A new, independent loop, destroyed when its last handle (and watcher) is gone.
    ///
    /// ```
    /// let lp = net_websocket_ev::ev::Loop::new().unwrap();
    /// lp.run(); // returns at once: no watcher is active
    /// ```
    pub fn new() -> Result<Loop, LoopError> {
        // SAFETY: ev_loop_new has no precondition; it returns null on failure.
        let raw = unsafe { sys::ev_loop_new(sys::EVFLAG_AUTO) };
        Ok(Self::wrap(NonNull::new(raw).ok_or(LoopError)?, true))
    }

    /// Adopts a loop created by foreign code (C, or another crate linking libev).
    ///
    /// The loop is not destroyed by this crate; its creator destroys it.
    ///
    /// # Safety
    /// `raw` must be a valid libev loop, must stay valid while any handle or watcher of
    /// it exists, and must only be used from this thread.
    ///
    /// ```
    /// use net_websocket_ev::ev::Loop;
    /// // A loop created the way C code would create it.
    /// let raw = unsafe { libev_sys::ev_loop_new(0) };
    /// // SAFETY: `raw` is valid and destroyed only after `lp` is gone.
    /// let lp = unsafe { Loop::from_raw(raw) }.unwrap();
    /// assert_eq!(lp.as_raw(), raw);
    /// drop(lp);
    /// unsafe { libev_sys::ev_loop_destroy(raw) };
    /// ```
    pub unsafe fn from_raw(raw: *mut sys::ev_loop) -> Result<Loop, LoopError> {
        Ok(Self::wrap(NonNull::new(raw).ok_or(LoopError)?, false))
    }

    fn wrap(raw: NonNull<sys::ev_loop>, owned: bool) -> Loop {
        Loop {
            inner: Rc::new(LoopInner { raw, owned }),
        }
    }

    /// The raw loop pointer, for foreign code sharing this loop.
    pub fn as_raw(&self) -> *mut sys::ev_loop {
        self.inner.raw.as_ptr()
    }

    /// Runs until no active watcher is left or [`break_loop`](Self::break_loop) is
    /// called; resumes a panic raised by a callback.
    pub fn run(&self) {
        self.run_with(RunFlags::UntilDone);
    }

    /// Runs the loop with the given flags; returns whether watchers are still active.
    /// Resumes a panic raised by a callback.
    pub fn run_with(&self, flags: RunFlags) -> bool {
        let flags = match flags {
            RunFlags::UntilDone => 0,
            RunFlags::Once => sys::EVRUN_ONCE,
            RunFlags::NoWait => sys::EVRUN_NOWAIT,
        };
        // SAFETY: the loop is valid while `self` exists; callbacks enter Rust only
        // through the trampolines, which never unwind.
        let active = unsafe { sys::ev_run(self.as_raw(), flags) } != 0;
        if let Some(payload) = take_panic() {
            panic::resume_unwind(payload);
        }
        active
    }

    /// Makes the innermost running [`run`](Self::run) return.
    pub fn break_loop(&self) {
        // SAFETY: valid loop; ev_break only sets a flag.
        unsafe { sys::ev_break(self.as_raw(), sys::EVBREAK_ONE) }
    }

    /// Makes every nested [`run`](Self::run) of this loop return.
    pub fn break_all(&self) {
        // SAFETY: valid loop; ev_break only sets a flag.
        unsafe { sys::ev_break(self.as_raw(), sys::EVBREAK_ALL) }
    }

    /// The loop's cached time in seconds (updated once per iteration).
    pub fn now(&self) -> f64 {
        // SAFETY: valid loop.
        unsafe { sys::ev_now(self.as_raw()) }
    }

    /// Refreshes the cached time returned by [`now`](Self::now).
    pub fn update_now(&self) {
        // SAFETY: valid loop.
        unsafe { sys::ev_now_update(self.as_raw()) }
    }

    /// The nesting depth of `ev_run` calls currently running this loop.
    pub fn depth(&self) -> u32 {
        // SAFETY: valid loop.
        unsafe { sys::ev_depth(self.as_raw()) }
    }

    /// The number of loop iterations so far.
    pub fn iteration(&self) -> u32 {
        // SAFETY: valid loop.
        unsafe { sys::ev_iteration(self.as_raw()) }
    }

    /// Keeps [`run`](Self::run) running even without an active watcher (undo with
    /// [`unref`](Self::unref)).
    pub fn add_ref(&self) {
        // SAFETY: valid loop.
        unsafe { sys::ev_ref(self.as_raw()) }
    }

    /// Lets [`run`](Self::run) return although one more watcher is active: for
    /// long-lived watchers (a stats timer) that should not keep a program alive.
    pub fn unref(&self) {
        // SAFETY: valid loop.
        unsafe { sys::ev_unref(self.as_raw()) }
    }

    /// Whether two handles name the same loop.
    pub fn same_as(&self, other: &Loop) -> bool {
        self.as_raw() == other.as_raw()
    }
}

impl Drop for LoopInner {
    fn drop(&mut self) {
        if self.owned {
            // SAFETY: we created this loop, and every watcher holds a handle, so none is
            // left to reference it.
            unsafe { sys::ev_loop_destroy(self.raw.as_ptr()) }
        }
    }
}

impl fmt::Debug for Loop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Loop")
            .field("raw", &self.as_raw())
            .field("owned", &self.inner.owned)
            .finish()
    }
}

impl fmt::Display for LoopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("libev could not create an event loop")
    }
}

impl std::error::Error for LoopError {}

thread_local! {
    static PARKED_PANIC: RefCell<Option<Box<dyn Any + Send>>> = const { RefCell::new(None) };
}

/// Parks a callback's panic (the first one wins) until the loop's runner takes it.
pub(crate) fn park_panic(payload: Box<dyn Any + Send>) {
    PARKED_PANIC.with(|slot| {
        let mut slot = slot.borrow_mut();
        if slot.is_none() {
            *slot = Some(payload);
        }
    });
}

/// The envelope of every callback libev makes into Rust: runs `body` so that no panic
/// unwinds into C. A panic is parked (the first one wins) and, whenever one is parked,
/// every `ev_run` level of `lp` is told to return so that the runner can resume it.
///
/// # Safety
/// `lp` must be the loop that is calling back into us.
pub(crate) unsafe fn shield(lp: *mut sys::ev_loop, body: impl FnOnce()) {
    if let Err(payload) = panic::catch_unwind(panic::AssertUnwindSafe(body)) {
        park_panic(payload);
    }
    if PARKED_PANIC.with(|slot| slot.borrow().is_some()) {
        // SAFETY: `lp` is the running loop (our precondition); ev_break sets a flag.
        unsafe { sys::ev_break(lp, sys::EVBREAK_ALL) };
    }
}

/// Takes the panic a callback raised on this thread, if any.
///
/// [`Loop::run`] resumes it by itself; call this when foreign code ran the loop, then
/// `std::panic::resume_unwind` the payload (or report it).
pub fn take_panic() -> Option<Box<dyn Any + Send>> {
    PARKED_PANIC.with(|slot| slot.borrow_mut().take())
}
