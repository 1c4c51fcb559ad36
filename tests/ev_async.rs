//! `ev::Async`: other threads wake a loop; senders that outlive their watcher (and its
//! loop), or race with its stop and drop, never reach freed memory.
#![cfg(feature = "ev")]

#[path = "util/deadline.rs"]
mod deadline;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use deadline::deadline;
use net_websocket_ev::ev::{Async, AsyncSender, Events, Loop, RunFlags, Timer};

/// A timer that fails the test if the loop blocks for longer than the deadline.
fn watchdog(lp: &Loop) -> Timer {
    let timer = Timer::new(lp, deadline(), Duration::ZERO, |_| {
        panic!("no async event within the deadline")
    });
    timer.start();
    timer
}

#[test]
fn a_send_from_another_thread_wakes_a_blocked_loop() {
    let lp = Loop::new().unwrap();
    let calls = Rc::new(Cell::new(0));
    let seen = calls.clone();
    let wake = Async::new(&lp, move |events| {
        assert!(events.contains(Events::ASYNC));
        seen.set(seen.get() + 1);
    });
    wake.start();
    let sender = wake.sender();
    let (go, wait) = mpsc::channel::<()>();
    let worker = thread::spawn(move || {
        wait.recv().unwrap();
        sender.send()
    });
    let _watchdog = watchdog(&lp);
    go.send(()).unwrap();
    // Nothing else is started: only the send can end this blocking iteration.
    while calls.get() == 0 {
        lp.run_with(RunFlags::Once);
    }
    assert!(worker.join().unwrap());
    assert_eq!(calls.get(), 1);
}

#[test]
fn many_threads_many_sends_deliver_all_their_data() {
    const THREADS: usize = 4;
    const EACH: usize = 500;
    let lp = Loop::new().unwrap();
    let (tx, rx) = mpsc::channel::<usize>();
    let got = Rc::new(RefCell::new(Vec::new()));
    let sink = got.clone();
    let wake = Async::new(&lp, move |_| sink.borrow_mut().extend(rx.try_iter()));
    wake.start();
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (tx, sender) = (tx.clone(), wake.sender());
            thread::spawn(move || {
                for i in 0..EACH {
                    tx.send(t * EACH + i).unwrap();
                    assert!(sender.send());
                }
            })
        })
        .collect();
    drop(tx);
    let _watchdog = watchdog(&lp);
    while got.borrow().len() < THREADS * EACH {
        lp.run_with(RunFlags::Once);
    }
    for worker in workers {
        worker.join().unwrap();
    }
    let mut all = got.borrow().clone();
    all.sort_unstable();
    assert_eq!(all, (0..THREADS * EACH).collect::<Vec<_>>());
}

#[test]
fn stopped_watcher_loses_sends_and_restarts() {
    let lp = Loop::new().unwrap();
    let calls = Rc::new(Cell::new(0));
    let seen = calls.clone();
    let wake = Async::new(&lp, move |_| seen.set(seen.get() + 1));
    let sender = wake.sender();
    assert!(!sender.send(), "not started yet");
    wake.start();
    wake.stop();
    assert!(!sender.send(), "stopped");
    lp.run_with(RunFlags::NoWait);
    assert_eq!(calls.get(), 0);
    wake.start();
    assert!(sender.send());
    let _watchdog = watchdog(&lp);
    while calls.get() == 0 {
        lp.run_with(RunFlags::Once);
    }
}

#[test]
fn a_sender_outlives_its_watcher_and_loop() {
    let lp = Loop::new().unwrap();
    let wake = Async::new(&lp, |_| {});
    wake.start();
    let sender = wake.sender();
    assert!(sender.send());
    drop(wake);
    assert!(!sender.send());
    drop(lp); // the last handle: the loop is destroyed
    let from_thread = thread::spawn({
        let sender = sender.clone();
        move || sender.send()
    });
    assert!(!from_thread.join().unwrap());
    assert!(!sender.send());
}

/// Threads send without pause while the loop's thread stops, restarts and finally
/// drops the watcher and destroys the loop: every send either lands on a started
/// watcher or is refused (a use after free would crash or show under a sanitizer).
#[test]
fn senders_racing_stop_drop_and_loop_destruction() {
    for _round in 0..10 {
        let lp = Loop::new().unwrap();
        let wake = Async::new(&lp, |_| {});
        wake.start();
        let stop = Arc::new(AtomicBool::new(false));
        let delivered = Arc::new(AtomicUsize::new(0));
        let ready = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..3)
            .map(|_| {
                let (sender, stop, delivered, ready) = (
                    wake.sender(),
                    stop.clone(),
                    delivered.clone(),
                    ready.clone(),
                );
                thread::spawn(move || {
                    ready.fetch_add(1, Ordering::SeqCst);
                    while !stop.load(Ordering::SeqCst) {
                        if sender.send() {
                            delivered.fetch_add(1, Ordering::Relaxed);
                        }
                        // Let the loop's thread in: under valgrind, which runs one
                        // thread at a time, spinning senders would starve it.
                        thread::yield_now();
                    }
                    sender
                })
            })
            .collect();
        let start = Instant::now();
        while ready.load(Ordering::SeqCst) < 3 {
            assert!(start.elapsed() < deadline(), "workers did not start");
            thread::yield_now();
        }
        for _ in 0..50 {
            wake.stop();
            lp.run_with(RunFlags::NoWait);
            wake.start();
            lp.run_with(RunFlags::NoWait);
        }
        drop(wake);
        drop(lp);
        stop.store(true, Ordering::SeqCst);
        let senders: Vec<AsyncSender> = workers.into_iter().map(|w| w.join().unwrap()).collect();
        assert!(senders.iter().all(|s| !s.send()));
    }
}

#[test]
fn the_callback_may_drop_its_own_watcher() {
    let lp = Loop::new().unwrap();
    let slot: Rc<RefCell<Option<Async>>> = Rc::new(RefCell::new(None));
    let own = slot.clone();
    let calls = Rc::new(Cell::new(0));
    let seen = calls.clone();
    let wake = Async::new(&lp, move |_| {
        seen.set(seen.get() + 1);
        own.borrow_mut().take();
    });
    wake.start();
    let sender = wake.sender();
    *slot.borrow_mut() = Some(wake);
    thread::spawn(move || assert!(sender.send()))
        .join()
        .unwrap();
    let _watchdog = watchdog(&lp);
    while calls.get() == 0 {
        lp.run_with(RunFlags::Once);
    }
    assert!(slot.borrow().is_none());
}

#[test]
fn sender_is_send_and_sync() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<AsyncSender>();
}

/// A writer that wakes the loop on each write (a log sink, say) may format the
/// sender it uses: its debug output does not hold the sender's lock while writing.
#[test]
fn formatting_a_sender_into_a_writer_that_sends_does_not_deadlock() {
    struct Waking(AsyncSender, String);
    impl std::fmt::Write for Waking {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0.send();
            self.1.push_str(s);
            Ok(())
        }
    }
    let lp = Loop::new().unwrap();
    let wake = Async::new(&lp, |_| {});
    wake.start();
    let sender = wake.sender();
    let (done, finished) = mpsc::channel();
    // On a thread, so that a deadlock fails the test instead of hanging it.
    thread::spawn(move || {
        let mut out = Waking(sender.clone(), String::new());
        std::fmt::write(&mut out, format_args!("{sender:?}")).unwrap();
        done.send(out.1).unwrap();
    });
    let Ok(shown) = finished.recv_timeout(deadline()) else {
        // The thread holds the lock for ever: dropping the watcher would block too.
        std::mem::forget(wake);
        panic!("formatting the sender deadlocked");
    };
    assert_eq!(shown, "AsyncSender { connected: true }");
}
