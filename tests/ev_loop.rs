//! The safe libev layer on real fds: io and timer callbacks, watchers that stop,
//! restart or drop themselves and each other, adopted raw loops, panics.
#![cfg(feature = "ev")]

use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixStream;
use std::panic::{self, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use net_websocket_ev::ev::{
    self, Events, Idle, Io, Loop, LoopError, RunFlags, Signal, Timer, WatcherError,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Tests that use the default loop or signals, which are process-wide, take turns.
fn serial() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(PoisonError::into_inner)
}

fn pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

#[test]
fn io_reports_readable_then_writable() {
    let lp = Loop::new().unwrap();
    let (mut a, mut b) = pair();
    let log = Rc::new(RefCell::new(Vec::new()));
    a.write_all(b"ping").unwrap();

    let seen = log.clone();
    let reader = Io::new(&lp, b.as_raw_fd(), Events::READ, |_| {}).unwrap();
    let handle = reader.handle();
    reader.set_callback(move |events| {
        let mut buf = [0u8; 16];
        let n = b.read(&mut buf).unwrap();
        seen.borrow_mut().push((events, buf[..n].to_vec()));
        handle.stop();
    });
    reader.start();
    lp.run();
    assert_eq!(*log.borrow(), vec![(Events::READ, b"ping".to_vec())]);

    let writable = Rc::new(Cell::new(0));
    let count = writable.clone();
    let writer = Io::new(&lp, a.as_raw_fd(), Events::WRITE, |_| {}).unwrap();
    let handle = writer.handle();
    writer.set_callback(move |events| {
        assert_eq!(events, Events::WRITE);
        count.set(count.get() + 1);
        handle.stop();
    });
    writer.start();
    lp.run();
    assert_eq!(writable.get(), 1);
    assert_eq!(writer.fd(), a.as_raw_fd());
    assert_eq!(writer.events(), Events::WRITE);
}

#[test]
fn set_events_switches_direction_of_an_active_watcher() {
    let lp = Loop::new().unwrap();
    let (a, _b) = pair();
    let io = Rc::new(RefCell::new(None::<Io>));
    let calls = Rc::new(RefCell::new(Vec::new()));
    let (slot, log) = (io.clone(), calls.clone());
    let watcher = Io::new(
        &lp,
        a.as_raw_fd(),
        Events::READ | Events::WRITE,
        move |events| {
            log.borrow_mut().push(events);
            let slot = slot.borrow();
            let me = slot.as_ref().unwrap();
            // Nothing to read ever arrives: once only READ is wanted, the loop goes quiet.
            me.set_events(Events::READ);
            assert!(me.is_active());
            me.stop();
        },
    )
    .unwrap();
    watcher.start();
    *io.borrow_mut() = Some(watcher);
    lp.run();
    assert_eq!(*calls.borrow(), vec![Events::WRITE]);
    assert_eq!(io.borrow().as_ref().unwrap().events(), Events::READ);
    io.borrow_mut().take(); // break the watcher -> closure -> slot cycle
}

#[test]
fn callback_may_drop_its_own_watcher() {
    let lp = Loop::new().unwrap();
    let (mut a, b) = pair();
    a.write_all(b"x").unwrap();
    let slot: Rc<RefCell<Option<Io>>> = Rc::new(RefCell::new(None));
    let dropped = Rc::new(Cell::new(false));
    let (inner, flag) = (slot.clone(), dropped.clone());
    let guard = DropFlag(dropped.clone());
    let io = Io::new(&lp, b.as_raw_fd(), Events::READ, move |_| {
        let _keep = &guard; // captured: freed with the closure
                            // Dropping the owner stops the watcher; the closure itself stays valid until
                            // it returns.
        inner.borrow_mut().take();
        assert!(!flag.get(), "closure must not be freed while running");
    })
    .unwrap();
    io.start();
    *slot.borrow_mut() = Some(io);
    lp.run();
    assert!(slot.borrow().is_none());
    assert!(dropped.get(), "closure freed once its watcher was dropped");
}

struct DropFlag(Rc<Cell<bool>>);
impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

#[test]
fn callback_may_stop_and_restart_other_watchers() {
    let lp = Loop::new().unwrap();
    let order = Rc::new(RefCell::new(Vec::new()));
    let second = Timer::new(&lp, ms(1), Duration::ZERO, {
        let order = order.clone();
        move |_| order.borrow_mut().push("second")
    });
    let never = Timer::new(&lp, ms(2), Duration::ZERO, {
        let order = order.clone();
        move |_| order.borrow_mut().push("never")
    });
    never.start();
    let (second_handle, never_handle) = (second.handle(), never.handle());
    let first = Timer::new(&lp, Duration::ZERO, Duration::ZERO, {
        let order = order.clone();
        move |_| {
            order.borrow_mut().push("first");
            never_handle.stop();
            second_handle.start();
        }
    });
    first.start();
    lp.run();
    assert_eq!(*order.borrow(), vec!["first", "second"]);
    assert!(!never.is_active());
}

#[test]
fn repeating_timer_fires_until_stopped_and_again_rearms() {
    let lp = Loop::new().unwrap();
    let count = Rc::new(Cell::new(0));
    let timer = Timer::new(&lp, ms(1), ms(1), |_| {});
    let handle = timer.handle();
    let seen = count.clone();
    timer.set_callback(move |events| {
        assert!(events.contains(Events::TIMER));
        seen.set(seen.get() + 1);
        if seen.get() == 3 {
            handle.stop();
        }
    });
    timer.start();
    lp.run();
    assert_eq!(count.get(), 3);

    timer.set(Duration::from_secs(10), ms(500));
    timer.again(); // restarts from `repeat`, not `after`
    assert!(timer.is_active());
    assert!(timer.remaining() <= ms(501)); // a rounding error of libev's float times
    timer.stop();
}

#[test]
fn dropping_a_watcher_stops_it_and_a_handle_outliving_it_is_inert() {
    let lp = Loop::new().unwrap();
    let fired = Rc::new(Cell::new(false));
    let seen = fired.clone();
    let timer = Timer::new(&lp, Duration::ZERO, Duration::ZERO, move |_| seen.set(true));
    timer.start();
    let handle = timer.handle();
    drop(timer);
    assert!(handle.is_dropped());
    handle.start(); // ignored: the owner is gone
    assert!(!handle.is_active());
    lp.run();
    assert!(!fired.get());
}

#[test]
fn adopted_raw_loop_runs_rust_watchers() {
    // SAFETY: a fresh loop, destroyed below after every handle is gone.
    let raw = unsafe { libev_sys::ev_loop_new(0) };
    {
        // SAFETY: `raw` is valid until ev_loop_destroy below, on this thread.
        let lp = unsafe { Loop::from_raw(raw) }.unwrap();
        assert_eq!(lp.as_raw(), raw);
        let fired = Rc::new(Cell::new(0));
        let seen = fired.clone();
        let timer = Timer::new(&lp, Duration::ZERO, Duration::ZERO, move |_| {
            seen.set(seen.get() + 1)
        });
        timer.start();
        // Foreign code runs the loop through the raw API.
        // SAFETY: valid loop; our callbacks never unwind.
        unsafe { libev_sys::ev_run(raw, 0) };
        assert_eq!(fired.get(), 1);
    }
    // SAFETY: no handle or watcher of `raw` remains.
    unsafe { libev_sys::ev_loop_destroy(raw) };
}

#[test]
fn panic_in_callback_is_resumed_from_run() {
    let lp = Loop::new().unwrap();
    let timer = Timer::new(&lp, Duration::ZERO, Duration::ZERO, |_| {
        panic!("boom in callback")
    });
    let later = Rc::new(Cell::new(false));
    let seen = later.clone();
    let other = Timer::new(&lp, ms(50), Duration::ZERO, move |_| seen.set(true));
    timer.start();
    other.start();
    let result = panic::catch_unwind(AssertUnwindSafe(|| lp.run()));
    let payload = result.expect_err("the panic comes out of run");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom in callback"));
    // The loop broke out at once, and still works afterwards.
    assert!(!later.get());
    assert!(ev::take_panic().is_none());
    lp.run();
    assert!(later.get());
}

#[test]
fn panic_under_foreign_run_is_parked_for_take_panic() {
    let lp = Loop::new().unwrap();
    let timer = Timer::new(&lp, Duration::ZERO, Duration::ZERO, |_| panic!("parked"));
    timer.start();
    // SAFETY: valid loop; the trampoline never unwinds into it.
    unsafe { libev_sys::ev_run(lp.as_raw(), 0) };
    let payload = ev::take_panic().expect("parked panic");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"parked"));
}

#[test]
fn idle_and_run_flags() {
    let lp = Loop::new().unwrap();
    let count = Rc::new(Cell::new(0));
    let seen = count.clone();
    let idle = Idle::new(&lp, move |events| {
        assert!(events.contains(Events::IDLE));
        seen.set(seen.get() + 1);
    });
    idle.start();
    assert!(lp.run_with(RunFlags::NoWait));
    assert!(lp.run_with(RunFlags::Once));
    assert_eq!(count.get(), 2);
    idle.stop();
    assert!(!lp.run_with(RunFlags::NoWait));
}

#[test]
fn signal_watcher_on_default_loop() {
    let _serial = serial();
    let lp = Loop::default_loop().unwrap();
    let got = Rc::new(Cell::new(false));
    let seen = got.clone();
    let signal = Signal::new(&lp, libc::SIGUSR1, |_| {}).unwrap();
    let handle = signal.handle();
    signal.set_callback(move |events| {
        assert!(events.contains(Events::SIGNAL));
        seen.set(true);
        handle.stop();
    });
    signal.start();
    // SAFETY: raising a signal we handle.
    unsafe { libc::raise(libc::SIGUSR1) };
    lp.run();
    assert!(got.get());
}

#[test]
fn loop_time_and_versions() {
    let lp = Loop::new().unwrap();
    let before = lp.now();
    std::thread::sleep(std::time::Duration::from_millis(5));
    lp.update_now();
    assert!(lp.now() >= before + 0.004);
    let (major, minor) = ev::runtime_version();
    assert_eq!(ev::LIBEV_VERSION, format!("{major}.{minor}"));
    assert_eq!(libev_sys::HEADER_VERSION, ev::LIBEV_VERSION);
}

/// Whether a fresh thread can have the default loop (or the error it gets).
fn default_loop_from_another_thread() -> Result<(), LoopError> {
    thread::spawn(|| Loop::default_loop().map(|lp| assert!(lp.is_default())))
        .join()
        .unwrap()
}

#[test]
fn default_loop_belongs_to_the_thread_holding_it() {
    let _serial = serial();
    let mine = Loop::default_loop().unwrap();
    assert!(mine.is_default());
    let timer = Timer::new(&mine, Duration::MAX, Duration::ZERO, |_| {});
    drop(mine);
    // The watcher's handle alone keeps the claim.
    assert_eq!(
        default_loop_from_another_thread(),
        Err(LoopError::DefaultLoopInUse)
    );
    // This thread's handles all share one loop.
    let again = Loop::default_loop().unwrap();
    assert!(again.same_as(timer.event_loop()));
    // The default loop adopted from its raw pointer is the same claim.
    let raw = again.as_raw() as usize;
    // SAFETY: the default loop is valid for the process and used on this thread only.
    let adopted = unsafe { Loop::from_raw(raw as *mut libev_sys::ev_loop) }.unwrap();
    assert!(adopted.is_default());
    let refused = thread::spawn(move || {
        // SAFETY: as above; the call is refused, so the other thread never uses it.
        unsafe { Loop::from_raw(raw as *mut libev_sys::ev_loop) }.map(drop)
    })
    .join()
    .unwrap();
    assert_eq!(refused, Err(LoopError::DefaultLoopInUse));

    drop((again, adopted, timer));
    assert_eq!(default_loop_from_another_thread(), Ok(()));
    // ...which let go of it when it ended: this thread can have it back.
    assert!(Loop::default_loop().is_ok());
}

#[test]
fn default_loop_passes_between_threads_once_released() {
    use std::sync::mpsc::channel;

    let _serial = serial();
    let (claimed_tx, claimed_rx) = channel();
    let (release_tx, release_rx) = channel::<()>();
    let holder = thread::spawn(move || {
        let lp = Loop::default_loop().unwrap();
        let _timer = run_a_zero_timer(&lp);
        claimed_tx.send(()).unwrap();
        release_rx.recv().unwrap();
        // Every handle (the loop and the watcher) goes here.
    });
    claimed_rx.recv().unwrap();
    let err = Loop::default_loop().unwrap_err();
    assert_eq!(err, LoopError::DefaultLoopInUse);
    assert!(err.to_string().contains("another thread"));
    release_tx.send(()).unwrap();
    holder.join().unwrap();

    let lp = Loop::default_loop().unwrap();
    drop(run_a_zero_timer(&lp));
}

/// Runs `lp` with a zero timer started on it and checks that it fired; returns the
/// timer, a watcher that holds the loop.
fn run_a_zero_timer(lp: &Loop) -> Timer {
    let fired = Rc::new(Cell::new(false));
    let seen = fired.clone();
    let timer = Timer::new(lp, Duration::ZERO, Duration::ZERO, move |_| seen.set(true));
    timer.start();
    lp.run();
    assert!(fired.get());
    timer
}

#[test]
fn signal_numbers_outside_the_valid_range_are_refused() {
    let _serial = serial();
    let lp = Loop::new().unwrap();
    for signum in [0, -1, i32::MIN, 65, 1000, libc::SIGRTMAX() + 1] {
        let err = Signal::new(&lp, signum, |_| {}).unwrap_err();
        assert_eq!(err, WatcherError::InvalidSignal(signum));
    }
    for uncatchable in [libc::SIGKILL, libc::SIGSTOP] {
        let err = Signal::new(&lp, uncatchable, |_| {}).unwrap_err();
        assert_eq!(err, WatcherError::InvalidSignal(uncatchable));
    }
    // The bounds themselves are fine.
    let low = Signal::new(&lp, 1, |_| {}).unwrap();
    let high = Signal::new(&lp, libc::SIGRTMAX(), |_| {}).unwrap();
    drop((low, high));
    let err: Box<dyn std::error::Error> = Box::new(WatcherError::InvalidSignal(0));
    assert_eq!(
        err.to_string(),
        "signal 0 cannot be watched (1 to SIGRTMAX, not SIGKILL or SIGSTOP)"
    );
}

#[test]
fn one_signal_is_watched_on_one_loop_at_a_time() {
    let _serial = serial();
    let (a, b) = (Loop::new().unwrap(), Loop::new().unwrap());
    let first = Signal::new(&a, libc::SIGUSR2, |_| {}).unwrap();
    first.start();
    let second = Signal::new(&a, libc::SIGUSR2, |_| {}).unwrap(); // same loop: fine
    second.start();
    assert_eq!(
        Signal::new(&b, libc::SIGUSR2, |_| {}).unwrap_err(),
        WatcherError::SignalInUse(libc::SIGUSR2)
    );
    // Another signal on the other loop is fine meanwhile.
    let other = Signal::new(&b, libc::SIGWINCH, |_| {}).unwrap();
    drop(first);
    assert_eq!(
        Signal::new(&b, libc::SIGUSR2, |_| {}).unwrap_err(),
        WatcherError::SignalInUse(libc::SIGUSR2),
        "a's second watcher still holds it"
    );
    drop(second);

    // The last watcher on `a` is gone: `b` takes the signal, and libev delivers it there.
    let got = Rc::new(Cell::new(0));
    let seen = got.clone();
    let moved = Signal::new(&b, libc::SIGUSR2, |_| {}).unwrap();
    let handle = moved.handle();
    moved.set_callback(move |events| {
        assert!(events.contains(Events::SIGNAL));
        seen.set(seen.get() + 1);
        handle.stop();
    });
    moved.start();
    assert_eq!(
        Signal::new(&a, libc::SIGUSR2, |_| {}).unwrap_err(),
        WatcherError::SignalInUse(libc::SIGUSR2)
    );
    // SAFETY: raising a signal a started watcher handles.
    unsafe { libc::raise(libc::SIGUSR2) };
    b.run();
    assert_eq!(got.get(), 1);
    drop((moved, other));
    assert!(Signal::new(&a, libc::SIGUSR2, |_| {}).is_ok());
}

#[test]
fn sigchld_is_the_default_loops() {
    let _serial = serial();
    let lp = Loop::new().unwrap();
    assert_eq!(
        Signal::new(&lp, libc::SIGCHLD, |_| {}).unwrap_err(),
        WatcherError::SignalNeedsDefaultLoop(libc::SIGCHLD)
    );
    let default = Loop::default_loop().unwrap();
    let child = Signal::new(&default, libc::SIGCHLD, |_| {}).unwrap();
    child.start();
    child.stop();
}

#[test]
fn io_refuses_negative_and_huge_fds() {
    let lp = Loop::new().unwrap();
    for fd in [-1, i32::MIN, ev::MAX_FD + 1, i32::MAX] {
        let err = Io::new(&lp, fd, Events::READ, |_| {}).unwrap_err();
        assert_eq!(err, WatcherError::InvalidFd(fd));
    }
    let (a, _b) = pair();
    let io = Io::new(&lp, a.as_raw_fd(), Events::READ, |_| {}).unwrap();
    io.start();
    assert_eq!(io.set(-1, Events::WRITE), Err(WatcherError::InvalidFd(-1)));
    // Refused: the watcher is as it was.
    assert_eq!(io.fd(), a.as_raw_fd());
    assert_eq!(io.events(), Events::READ);
    assert!(io.is_active());
}

#[test]
fn timer_with_the_longest_duration_stays_pending() {
    let lp = Loop::new().unwrap();
    let fired = Rc::new(Cell::new(false));
    let seen = fired.clone();
    let timer = Timer::new(&lp, Duration::MAX, Duration::MAX, move |_| seen.set(true));
    timer.start();
    assert!(lp.run_with(RunFlags::NoWait), "the timer is still active");
    assert!(timer.is_active());
    assert!(!fired.get());
    // About MAX_DELAY: libev's float arithmetic may be off by a rounding error.
    let second = Duration::from_secs(1);
    let remaining = timer.remaining();
    assert!(remaining <= ev::MAX_DELAY + second);
    assert!(remaining > ev::MAX_DELAY - Duration::from_secs(3600));
    timer.again(); // from `repeat`, also shortened to MAX_DELAY
    assert!(timer.is_active());
    assert!(lp.run_with(RunFlags::NoWait));
    assert!(!fired.get());
    timer.set(Duration::MAX, Duration::ZERO);
    assert!(timer.is_active());
    timer.stop();
    let remaining = timer.remaining();
    assert!(remaining > ev::MAX_DELAY - second && remaining < ev::MAX_DELAY + second);
    assert!(!lp.run_with(RunFlags::NoWait));
}
