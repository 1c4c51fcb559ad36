//! Which loop watches each signal. libev keeps one process-wide list of watchers per
//! signal and delivers the signal to the loop that started the first of them: a
//! watcher of another loop in that list would be fed to the wrong loop (libev asserts
//! "a signal must not be attached to two different loops", or corrupts both loops when
//! built without assertions). So [`Signal::new`](super::Signal) claims its signal for
//! its loop here, and the watcher's owner releases the claim when it is dropped.

use std::sync::{Mutex, PoisonError};

use libev_sys as sys;

use super::event_loop::Loop;
use super::watcher::WatcherError;

/// libev's `EV_NSIG`, the C library's `NSIG`: signal numbers are `1..NSIG`.
const NSIG: usize = 65;

/// The loop (by address) watching a signal, and how many of its watchers do.
#[derive(Clone, Copy)]
struct Watchers {
    lp: usize,
    count: usize,
}

/// Indexed by signal number. A loop's address names it while it lives, and a claim
/// never outlives its loop: the claiming watcher holds a handle to the loop.
static CLAIMS: Mutex<[Option<Watchers>; NSIG]> = Mutex::new([None; NSIG]);

/// Claims `signum` for one more watcher on `lp`.
pub(super) fn claim(lp: &Loop, signum: i32) -> Result<(), WatcherError> {
    let valid = signum > 0
        && signum <= libc::SIGRTMAX()
        && signum != libc::SIGKILL
        && signum != libc::SIGSTOP;
    let Some(index) = usize::try_from(signum).ok().filter(|&i| valid && i < NSIG) else {
        return Err(WatcherError::InvalidSignal(signum));
    };
    // libev's default loop starts its own SIGCHLD watcher when it is created.
    if signum == libc::SIGCHLD && !lp.is_default() {
        return Err(WatcherError::SignalNeedsDefaultLoop(signum));
    }
    let address = lp.as_raw() as usize;
    // Nothing panics under the lock, so a poisoned one holds consistent data.
    let mut claims = CLAIMS.lock().unwrap_or_else(PoisonError::into_inner);
    match &mut claims[index] {
        Some(watchers) if watchers.lp == address => watchers.count += 1,
        Some(_) => return Err(WatcherError::SignalInUse(signum)),
        slot @ None => {
            *slot = Some(Watchers {
                lp: address,
                count: 1,
            })
        }
    }
    Ok(())
}

/// Releases one watcher's claim of `signum` on `lp`, once that watcher is stopped for
/// good: the last one frees the signal for any loop.
pub(super) fn release(lp: *mut sys::ev_loop, signum: i32) {
    let mut claims = CLAIMS.lock().unwrap_or_else(PoisonError::into_inner);
    let Some(slot) = usize::try_from(signum).ok().and_then(|i| claims.get_mut(i)) else {
        return;
    };
    if let Some(watchers) = slot {
        if watchers.lp == lp as usize {
            watchers.count -= 1;
            if watchers.count == 0 {
                *slot = None;
            }
        }
    }
}
