use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::panic;
use std::ptr::NonNull;
use std::rc::{Rc, Weak};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::{self, ThreadId};

use libev_sys as sys;

/// A libev event loop: the default loop, a new loop, or one adopted from foreign code.
///
/// Cloning is cheap and gives another handle to the same loop. A loop created by
/// [`Loop::new`] is destroyed when its last handle is dropped; every watcher holds a
/// handle, so the loop outlives its watchers. The default loop and adopted loops are
/// never destroyed by this crate.
///
/// A loop, like libev itself, belongs to one thread: `Loop` is neither `Send` nor `Sync`.
/// libev's default loop is one per process, so it belongs to whichever thread holds
/// handles to it (see [`Loop::default_loop`]).
#[derive(Clone)]
pub struct Loop {
    inner: Rc<LoopInner>,
}

struct LoopInner {
    raw: NonNull<sys::ev_loop>,
    origin: Origin,
}

/// Where a loop came from, which decides what dropping its last handle does.
enum Origin {
    /// Created by [`Loop::new`]: destroyed with its last handle.
    New,
    /// libev's default loop: the claim of this thread, released with the last handle.
    Default(DefaultClaim),
    /// Adopted from foreign code, which destroys it.
    Adopted,
}

/// Why a [`Loop`] could not be had.
///
/// ```
/// use net_websocket_ev::ev::{Loop, LoopError};
/// let _mine = Loop::default_loop().unwrap();
/// let theirs = std::thread::spawn(|| Loop::default_loop().map(drop)).join().unwrap();
/// assert_eq!(theirs, Err(LoopError::DefaultLoopInUse));
/// assert!(LoopError::DefaultLoopInUse.to_string().contains("another thread"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoopError {
    /// libev could not create the loop (no usable backend, or out of file descriptors).
    Create,
    /// libev's default loop is held by another thread: it becomes free when that
    /// thread's last handle to it (and so its last watcher on it) is dropped.
    DefaultLoopInUse,
}

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
    /// libev's default loop (created on first use), the only one that can watch
    /// `SIGCHLD`.
    ///
    /// libev has one default loop per process, and a loop must only be used by one
    /// thread. So the default loop belongs to the thread that holds handles to it: the
    /// first call on a thread claims it, every handle of that thread shares the claim,
    /// and dropping the thread's last handle (every watcher holds one) frees it. While
    /// it is claimed, a call from any other thread fails with
    /// [`LoopError::DefaultLoopInUse`]. A thread that needs a loop of its own whatever
    /// other threads do should use [`Loop::new`].
    ///
    /// ```
    /// use net_websocket_ev::ev::{Loop, LoopError};
    ///
    /// let a = Loop::default_loop().unwrap();
    /// let b = Loop::default_loop().unwrap();
    /// assert_eq!(a.as_raw(), b.as_raw());
    /// assert!(a.is_default());
    ///
    /// // Another thread cannot have it while this one holds it...
    /// let other = || std::thread::spawn(|| Loop::default_loop().is_ok()).join().unwrap();
    /// assert!(!other());
    /// assert_eq!(
    ///     std::thread::spawn(|| Loop::default_loop().err()).join().unwrap(),
    ///     Some(LoopError::DefaultLoopInUse)
    /// );
    /// // ...and can once every handle here is gone.
    /// drop((a, b));
    /// assert!(other());
    /// ```
    pub fn default_loop() -> Result<Loop, LoopError> {
        let mut owner = lock_loops();
        if let Some(inner) = cached_default() {
            return Ok(Loop { inner });
        }
        let claim = DefaultClaim::acquire(&mut owner)?;
        // SAFETY: this thread holds the default loop's claim, under the lock that
        // serialises every call this crate makes into libev's loop set-up; 0 is
        // EVFLAG_AUTO.
        let raw = unsafe { sys::ev_default_loop(sys::EVFLAG_AUTO) };
        let Some(raw) = NonNull::new(raw) else {
            claim.release(&mut owner);
            return Err(LoopError::Create);
        };
        Ok(Self::wrap_default(raw, claim))
    }

    /// A new, independent loop, destroyed when its last handle (and watcher) is gone.
    ///
    /// ```
    /// let lp = net_websocket_ev::ev::Loop::new().unwrap();
    /// assert!(!lp.is_default());
    /// lp.run(); // returns at once: no watcher is active
    /// ```
    pub fn new() -> Result<Loop, LoopError> {
        let raw = {
            let _serialised = lock_loops();
            // SAFETY: ev_loop_new has no precondition (it returns null on failure); the
            // lock keeps libev's lazily initialised globals out of a race with another
            // thread's loop set-up.
            unsafe { sys::ev_loop_new(sys::EVFLAG_AUTO) }
        };
        let raw = NonNull::new(raw).ok_or(LoopError::Create)?;
        Ok(Loop {
            inner: Rc::new(LoopInner {
                raw,
                origin: Origin::New,
            }),
        })
    }

    /// Adopts a loop created by foreign code (C, or another crate linking libev).
    ///
    /// The loop is not destroyed by this crate; its creator destroys it. If `raw` is
    /// libev's default loop, the handle is one of [`default_loop`](Self::default_loop)'s:
    /// it claims the default loop for this thread, and fails with
    /// [`LoopError::DefaultLoopInUse`] while another thread holds it.
    ///
    /// # Safety
    /// `raw` must be a valid libev loop, must stay valid while any handle or watcher of
    /// it exists, and must only be used from this thread. Foreign code must not call
    /// libev's loop set-up functions (`ev_default_loop`, `ev_loop_new`,
    /// `ev_loop_destroy`) on another thread at the same time.
    ///
    /// ```
    /// use net_websocket_ev::ev::{sys, Loop};
    /// // A loop created the way C code would create it.
    /// let raw = unsafe { sys::ev_loop_new(0) };
    /// // SAFETY: `raw` is valid and destroyed only after `lp` is gone.
    /// let lp = unsafe { Loop::from_raw(raw) }.unwrap();
    /// assert_eq!(lp.as_raw(), raw);
    /// drop(lp);
    /// unsafe { sys::ev_loop_destroy(raw) };
    /// ```
    pub unsafe fn from_raw(raw: *mut sys::ev_loop) -> Result<Loop, LoopError> {
        let raw = NonNull::new(raw).ok_or(LoopError::Create)?;
        let mut owner = lock_loops();
        // SAFETY: libev writes this pointer only in its loop set-up and tear-down, which
        // this crate calls under the lock we hold, and foreign code not concurrently
        // (our precondition).
        let default = unsafe { std::ptr::addr_of!(sys::ev_default_loop_ptr).read() };
        if raw.as_ptr() != default {
            return Ok(Loop {
                inner: Rc::new(LoopInner {
                    raw,
                    origin: Origin::Adopted,
                }),
            });
        }
        if let Some(inner) = cached_default() {
            return Ok(Loop { inner });
        }
        let claim = DefaultClaim::acquire(&mut owner)?;
        Ok(Self::wrap_default(raw, claim))
    }

    /// The raw loop pointer, for foreign code sharing this loop.
    ///
    /// ```
    /// let lp = net_websocket_ev::ev::Loop::new().unwrap();
    /// assert!(!lp.as_raw().is_null());
    /// ```
    pub fn as_raw(&self) -> *mut sys::ev_loop {
        self.inner.raw.as_ptr()
    }

    /// Whether this is libev's default loop.
    ///
    /// ```
    /// use net_websocket_ev::ev::Loop;
    /// assert!(Loop::default_loop().unwrap().is_default());
    /// assert!(!Loop::new().unwrap().is_default());
    /// ```
    pub fn is_default(&self) -> bool {
        matches!(self.inner.origin, Origin::Default(_))
    }

    /// Runs until no active watcher is left or [`break_loop`](Self::break_loop) is
    /// called; resumes a panic raised by a callback.
    ///
    /// ```
    /// let lp = net_websocket_ev::ev::Loop::new().unwrap();
    /// lp.run(); // nothing to wait for
    /// ```
    pub fn run(&self) {
        self.run_with(RunFlags::UntilDone);
    }

    /// Runs the loop with the given flags; returns whether watchers are still active.
    /// Resumes a panic raised by a callback.
    ///
    /// ```
    /// use net_websocket_ev::ev::{Loop, RunFlags};
    /// let lp = Loop::new().unwrap();
    /// assert!(!lp.run_with(RunFlags::NoWait));
    /// ```
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
    ///
    /// ```
    /// use net_websocket_ev::ev::{Loop, Timer};
    /// use std::time::Duration;
    /// let lp = Loop::new().unwrap();
    /// let stopper = lp.clone();
    /// let repeat = Duration::from_millis(1);
    /// let timer = Timer::new(&lp, Duration::ZERO, repeat, move |_| stopper.break_loop());
    /// timer.start();
    /// lp.run(); // returns although the repeating timer is still active
    /// assert!(timer.is_active());
    /// ```
    pub fn break_loop(&self) {
        // SAFETY: valid loop; ev_break only sets a flag.
        unsafe { sys::ev_break(self.as_raw(), sys::EVBREAK_ONE) }
    }

    /// Makes every nested [`run`](Self::run) of this loop return.
    ///
    /// ```
    /// let lp = net_websocket_ev::ev::Loop::new().unwrap();
    /// lp.break_all(); // no run is active: the next one is not affected
    /// lp.run();
    /// ```
    pub fn break_all(&self) {
        // SAFETY: valid loop; ev_break only sets a flag.
        unsafe { sys::ev_break(self.as_raw(), sys::EVBREAK_ALL) }
    }

    /// The loop's cached time, libev's `ev_tstamp`: seconds since the Unix epoch as an
    /// `f64`, updated once per loop iteration (and by [`update_now`](Self::update_now)).
    /// It is the base of every timer; differences of two readings are durations.
    ///
    /// ```
    /// let lp = net_websocket_ev::ev::Loop::new().unwrap();
    /// let then = lp.now();
    /// lp.update_now();
    /// assert!(lp.now() >= then);
    /// ```
    pub fn now(&self) -> f64 {
        // SAFETY: valid loop.
        unsafe { sys::ev_now(self.as_raw()) }
    }

    /// Refreshes the cached time returned by [`now`](Self::now).
    ///
    /// ```
    /// net_websocket_ev::ev::Loop::new().unwrap().update_now();
    /// ```
    pub fn update_now(&self) {
        // SAFETY: valid loop.
        unsafe { sys::ev_now_update(self.as_raw()) }
    }

    /// The nesting depth of `ev_run` calls currently running this loop.
    ///
    /// ```
    /// assert_eq!(net_websocket_ev::ev::Loop::new().unwrap().depth(), 0);
    /// ```
    pub fn depth(&self) -> u32 {
        // SAFETY: valid loop.
        unsafe { sys::ev_depth(self.as_raw()) }
    }

    /// The number of loop iterations so far.
    ///
    /// ```
    /// use net_websocket_ev::ev::{Loop, RunFlags};
    /// let lp = Loop::new().unwrap();
    /// lp.run_with(RunFlags::NoWait);
    /// assert!(lp.iteration() >= 1);
    /// ```
    pub fn iteration(&self) -> u32 {
        // SAFETY: valid loop.
        unsafe { sys::ev_iteration(self.as_raw()) }
    }

    /// Keeps [`run`](Self::run) running even without an active watcher (undo with
    /// [`unref`](Self::unref)).
    ///
    /// ```
    /// use net_websocket_ev::ev::{Loop, RunFlags};
    /// let lp = Loop::new().unwrap();
    /// lp.add_ref();
    /// assert!(lp.run_with(RunFlags::NoWait)); // "still active"
    /// lp.unref();
    /// assert!(!lp.run_with(RunFlags::NoWait));
    /// ```
    pub fn add_ref(&self) {
        // SAFETY: valid loop.
        unsafe { sys::ev_ref(self.as_raw()) }
    }

    /// Lets [`run`](Self::run) return although one more watcher is active: for
    /// long-lived watchers (a stats timer) that should not keep a program alive.
    ///
    /// ```
    /// use net_websocket_ev::ev::{Loop, Timer};
    /// use std::time::Duration;
    /// let lp = Loop::new().unwrap();
    /// let stats = Timer::new(&lp, Duration::from_secs(3600), Duration::ZERO, |_| {});
    /// stats.start();
    /// lp.unref();
    /// lp.run(); // returns at once: only the unref'd timer is active
    /// lp.add_ref(); // before stopping the timer, as libev asks
    /// ```
    pub fn unref(&self) {
        // SAFETY: valid loop.
        unsafe { sys::ev_unref(self.as_raw()) }
    }

    /// Whether two handles name the same loop.
    ///
    /// ```
    /// use net_websocket_ev::ev::Loop;
    /// let lp = Loop::new().unwrap();
    /// assert!(lp.same_as(&lp.clone()));
    /// assert!(!lp.same_as(&Loop::new().unwrap()));
    /// ```
    pub fn same_as(&self, other: &Loop) -> bool {
        self.as_raw() == other.as_raw()
    }

    /// A handle to the default loop `raw` holding `claim`, remembered for this thread.
    fn wrap_default(raw: NonNull<sys::ev_loop>, claim: DefaultClaim) -> Loop {
        let inner = Rc::new(LoopInner {
            raw,
            origin: Origin::Default(claim),
        });
        // Once this thread's locals are gone (a destructor at thread exit) there is no
        // cache: the handle then holds a claim of its own, which is just as sound.
        let _ = DEFAULT_LOOP.try_with(|cache| *cache.borrow_mut() = Rc::downgrade(&inner));
        Loop { inner }
    }
}

/// Which thread holds libev's default loop, and how many [`LoopInner`]s of it that
/// thread has (normally one, shared through [`DEFAULT_LOOP`]). Its lock also serialises
/// libev's loop set-up and tear-down, which touch process-wide state.
static LOOPS: Mutex<Option<(ThreadId, usize)>> = Mutex::new(None);

thread_local! {
    /// This thread's default-loop handle, while it has one.
    static DEFAULT_LOOP: RefCell<Weak<LoopInner>> = const { RefCell::new(Weak::new()) };
}

/// Locks [`LOOPS`]. Nothing panics while it is held, so a poisoned lock holds
/// consistent data and is taken as it is.
fn lock_loops() -> MutexGuard<'static, Option<(ThreadId, usize)>> {
    LOOPS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// This thread's live default-loop handle, if any.
fn cached_default() -> Option<Rc<LoopInner>> {
    DEFAULT_LOOP
        .try_with(|cache| cache.borrow().upgrade())
        .ok()
        .flatten()
}

/// One count of this thread's claim on the default loop. `LoopInner` is neither `Send`
/// nor `Sync`, so the claim is released on the thread that took it.
struct DefaultClaim(());

impl DefaultClaim {
    fn acquire(owner: &mut Option<(ThreadId, usize)>) -> Result<DefaultClaim, LoopError> {
        let me = thread::current().id();
        match owner {
            Some((thread, count)) if *thread == me => *count += 1,
            Some(_) => return Err(LoopError::DefaultLoopInUse),
            None => *owner = Some((me, 1)),
        }
        Ok(DefaultClaim(()))
    }

    fn release(self, owner: &mut Option<(ThreadId, usize)>) {
        if let Some((_, count)) = owner {
            *count -= 1;
            if *count == 0 {
                *owner = None;
            }
        }
    }
}

impl Drop for LoopInner {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.origin, Origin::Adopted) {
            Origin::New => {
                let _serialised = lock_loops();
                // SAFETY: we created this loop, and every watcher holds a handle, so none
                // is left to reference it; the lock serialises libev's loop tear-down.
                unsafe { sys::ev_loop_destroy(self.raw.as_ptr()) }
            }
            Origin::Default(claim) => claim.release(&mut lock_loops()),
            Origin::Adopted => {}
        }
    }
}

impl fmt::Debug for Loop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let origin = match self.inner.origin {
            Origin::New => "new",
            Origin::Default(_) => "default",
            Origin::Adopted => "adopted",
        };
        f.debug_struct("Loop")
            .field("raw", &self.as_raw())
            .field("origin", &origin)
            .finish()
    }
}

impl fmt::Display for LoopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LoopError::Create => {
                "libev could not create an event loop (no usable backend, or out of file \
                 descriptors)"
            }
            LoopError::DefaultLoopInUse => {
                "libev's default loop is in use by another thread (a loop belongs to one \
                 thread): give this thread a loop of its own with Loop::new()"
            }
        })
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
///
/// ```
/// use net_websocket_ev::ev::{self, sys, Idle, Loop};
/// let lp = Loop::new().unwrap();
/// let idle = Idle::new(&lp, |_| panic!("in a callback"));
/// idle.start();
/// // Foreign code runs the loop through the raw API; the panic breaks it out...
/// // SAFETY: `lp` is a valid loop of this thread.
/// unsafe { sys::ev_run(lp.as_raw(), 0) };
/// // ...and waits here, instead of unwinding through C.
/// let payload = ev::take_panic().expect("the callback panicked");
/// assert_eq!(payload.downcast_ref::<&str>(), Some(&"in a callback"));
/// assert!(ev::take_panic().is_none()); // taken once
/// ```
pub fn take_panic() -> Option<Box<dyn Any + Send>> {
    PARKED_PANIC.with(|slot| slot.borrow_mut().take())
}
