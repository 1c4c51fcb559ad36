//! [`Async`]: libev's `ev_async`, the one way another thread may wake a loop.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use libev_sys as sys;

use super::event_loop::Loop;
use super::watcher::{AsyncKind, Events, Watcher};

/// A watcher another thread can trigger (libev's `ev_async`): the loop owns the
/// watcher, and any thread holding an [`AsyncSender`] may wake the loop and have the
/// callback run there.
///
/// Several sends before the loop gets round to the watcher call the callback once
/// (libev merges them), so pass the data itself through a queue or a `Mutex` the
/// callback drains. A send while the watcher is stopped, or after it is dropped, is
/// lost ([`AsyncSender::send`] says so); a sender may outlive the watcher and its loop.
///
/// ```
/// use net_websocket_ev::ev::{Async, Loop};
/// use std::sync::{mpsc, Arc, Mutex};
///
/// let lp = Loop::new().unwrap();
/// let (tx, rx) = mpsc::channel::<String>();
/// let got = Arc::new(Mutex::new(Vec::new()));
/// let seen = got.clone();
/// let wake = Async::new(&lp, move |_| seen.lock().unwrap().extend(rx.try_iter()));
/// wake.start();
/// let sender = wake.sender();
/// let worker = std::thread::spawn(move || {
///     tx.send("computed elsewhere".to_owned()).unwrap();
///     assert!(sender.send()); // the watcher is started: the loop will call back
/// });
/// while got.lock().unwrap().is_empty() {
///     lp.run_with(net_websocket_ev::ev::RunFlags::Once);
/// }
/// worker.join().unwrap();
/// assert_eq!(*got.lock().unwrap(), ["computed elsewhere"]);
/// ```
#[must_use = "a watcher stops when it is dropped: keep it for as long as it should run"]
pub struct Async {
    target: Arc<Target>,
    // Declared after `target`, so dropped after Drop has cleared it.
    watcher: Watcher<AsyncKind>,
}

/// A handle any thread may use to wake an [`Async`]'s loop: `Send`, `Sync` and
/// cheap to clone. It never keeps the watcher or the loop alive.
#[derive(Clone)]
pub struct AsyncSender {
    target: Arc<Target>,
}

/// The started watcher, if any: `ev_async_send` is called under this lock, and the
/// loop's thread starts, stops and drops the watcher under it too, so a sender never
/// reaches a stopped, freed or unowned watcher.
struct Target {
    raw: Mutex<Option<RawAsync>>,
}

/// The loop and the watcher, as raw pointers.
struct RawAsync {
    lp: *mut sys::ev_loop,
    watcher: *mut sys::ev_async,
}

// SAFETY: the pointers are only used for `ev_async_send`, which libev allows from any
// thread, and only under `Target::raw`'s lock while the watcher is started: the owner
// clears them (under that lock) before stopping or freeing the watcher, and the
// watcher holds a handle to its loop, so both exist while they are set.
unsafe impl Send for RawAsync {}

impl Async {
    /// A stopped async watcher on `lp` calling `callback` (with [`Events::ASYNC`]) on
    /// the loop's thread after a send.
    ///
    /// ```
    /// use net_websocket_ev::ev::{Async, Loop};
    /// let lp = Loop::new().unwrap();
    /// let wake = Async::new(&lp, |_| println!("woken"));
    /// assert!(!wake.is_active());
    /// assert!(!wake.sender().send()); // stopped: the send is lost
    /// ```
    pub fn new(lp: &Loop, callback: impl FnMut(Events) + 'static) -> Async {
        Async {
            target: Arc::new(Target {
                raw: Mutex::new(None),
            }),
            watcher: Watcher::create(lp, Box::new(callback)),
        }
    }

    /// Starts the watcher (no-op if it is active): sends are delivered from now on.
    ///
    /// ```
    /// use net_websocket_ev::ev::{Async, Loop};
    /// let lp = Loop::new().unwrap();
    /// let wake = Async::new(&lp, |_| {});
    /// wake.start();
    /// assert!(wake.is_active() && wake.sender().send());
    /// ```
    pub fn start(&self) {
        let mut raw = self.target.lock();
        self.watcher.start();
        if self.watcher.is_active() {
            *raw = Some(RawAsync {
                lp: self.watcher.event_loop().as_raw(),
                watcher: self.watcher.raw(),
            });
        }
    }

    /// Stops the watcher (no-op if it is not active): later sends are lost, and one
    /// not yet handled is dropped.
    ///
    /// ```
    /// use net_websocket_ev::ev::{Async, Loop};
    /// let lp = Loop::new().unwrap();
    /// let wake = Async::new(&lp, |_| {});
    /// wake.start();
    /// wake.stop();
    /// assert!(!wake.sender().send());
    /// ```
    pub fn stop(&self) {
        let mut raw = self.target.lock();
        *raw = None;
        self.watcher.stop();
    }

    /// Whether the watcher is started.
    ///
    /// ```
    /// let lp = net_websocket_ev::ev::Loop::new().unwrap();
    /// let wake = net_websocket_ev::ev::Async::new(&lp, |_| {});
    /// assert!(!wake.is_active());
    /// ```
    pub fn is_active(&self) -> bool {
        self.watcher.is_active()
    }

    /// A sender for other threads (or this one).
    ///
    /// ```
    /// use net_websocket_ev::ev::{Async, AsyncSender, Loop};
    /// fn needs_send_sync<T: Send + Sync + 'static>(_: T) {}
    /// let lp = Loop::new().unwrap();
    /// let wake = Async::new(&lp, |_| {});
    /// needs_send_sync::<AsyncSender>(wake.sender());
    /// ```
    pub fn sender(&self) -> AsyncSender {
        AsyncSender {
            target: self.target.clone(),
        }
    }

    /// Replaces the callback (also from inside the running callback).
    ///
    /// ```
    /// let lp = net_websocket_ev::ev::Loop::new().unwrap();
    /// let wake = net_websocket_ev::ev::Async::new(&lp, |_| {});
    /// wake.set_callback(|_| println!("the new callback"));
    /// ```
    pub fn set_callback(&self, callback: impl FnMut(Events) + 'static) {
        self.watcher.set_callback(callback);
    }

    /// The loop this watcher belongs to.
    ///
    /// ```
    /// let lp = net_websocket_ev::ev::Loop::new().unwrap();
    /// let wake = net_websocket_ev::ev::Async::new(&lp, |_| {});
    /// assert!(wake.event_loop().same_as(&lp));
    /// ```
    pub fn event_loop(&self) -> &Loop {
        self.watcher.event_loop()
    }
}

impl AsyncSender {
    /// Wakes the loop to call the watcher's callback (libev's `ev_async_send`), from
    /// any thread. Returns whether it was delivered: false once the watcher is stopped
    /// or dropped (the loop may be gone too), which is never unsafe.
    ///
    /// ```
    /// use net_websocket_ev::ev::{Async, Loop};
    /// let lp = Loop::new().unwrap();
    /// let wake = Async::new(&lp, |_| {});
    /// wake.start();
    /// let sender = wake.sender();
    /// assert!(std::thread::spawn({ let s = sender.clone(); move || s.send() }).join().unwrap());
    /// drop(wake);
    /// drop(lp);
    /// assert!(!sender.send()); // outlived the watcher and the loop: nothing happens
    /// ```
    pub fn send(&self) -> bool {
        let raw = self.target.lock();
        match raw.as_ref() {
            Some(raw) => {
                // SAFETY: set only while the watcher is started, and cleared under this
                // lock before it is stopped or freed; the watcher keeps its loop alive.
                unsafe { sys::ev_async_send(raw.lp, raw.watcher) };
                true
            }
            None => false,
        }
    }
}

impl Target {
    /// The lock; no code that can panic runs under it, so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, Option<RawAsync>> {
        self.raw.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Async {
    fn drop(&mut self) {
        // Senders lose the watcher before it is stopped (by `watcher`'s own Drop).
        *self.target.lock() = None;
    }
}

impl fmt::Debug for Async {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Async")
            .field("active", &self.is_active())
            .finish()
    }
}

impl fmt::Debug for AsyncSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Read first: the lock must not be held while the formatter writes (a writer
        // may send through this very sender).
        let connected = self.target.lock().is_some();
        f.debug_struct("AsyncSender")
            .field("connected", &connected)
            .finish()
    }
}
