//! The end of a connection: the peer's close (with and without code), the peer
//! vanishing, our close (data first, then close, read until the peer's close), the
//! close timeout, methods after the end, and a panic in a callback.
#![cfg(feature = "ev")]

mod util;

use std::cell::{Cell, RefCell};
use std::net::Shutdown;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Duration;

use net_websocket_ev::ev::RunFlags;
use net_websocket_ev::{Error, Fragment, OpCode};
use util::{masked_frame, run_until, server, server_on, small_unix_pair, LoopClock, Setup};

fn assert_every_method_is_closed(s: &Setup) {
    let ws = &s.ws;
    assert!(ws.is_closed());
    assert!(matches!(ws.queue_text("x"), Err(Error::Closed)));
    assert!(matches!(ws.queue_binary(b"x"), Err(Error::Closed)));
    assert!(matches!(
        ws.queue_msg(b"x", OpCode::Ping),
        Err(Error::Closed)
    ));
    assert!(matches!(
        ws.queue_fragmented(|_, _| Fragment::Eof(0), OpCode::Binary),
        Err(Error::Closed)
    ));
    assert!(matches!(ws.close(Some(1000), ""), Err(Error::Closed)));
    assert!(matches!(ws.wait(|_, _| {}), Err(Error::Closed)));
    assert!(matches!(ws.wait_blocking(), Err(Error::Closed)));
    assert!(matches!(ws.queued_count(), Err(Error::Closed)));
    assert!(matches!(ws.queued_bytes(), Err(Error::Closed)));
    assert!(matches!(ws.start(), Err(Error::Closed)));
    assert!(matches!(ws.stop(), Err(Error::Closed)));
    assert!(matches!(ws.start_read(), Err(Error::Closed)));
    assert!(matches!(ws.stop_read(), Err(Error::Closed)));
    assert!(matches!(ws.start_write(), Err(Error::Closed)));
    assert!(matches!(ws.stop_write(), Err(Error::Closed)));
    assert!(matches!(ws.shutdown_read(), Err(Error::Closed)));
    assert!(matches!(ws.shutdown_write(), Err(Error::Closed)));
}

#[test]
fn peer_close_with_code_is_echoed_then_fd_closed() {
    let mut s = server(|p| p);
    s.peer.close(Some(4001), "going away now");
    s.until("fd closed", |p, log| p.eof && !log.closes.is_empty());
    assert!(s.peer.close_received());
    assert_eq!(s.peer.close_code(), 4001);
    // The echo carries the reason too.
    let tail = &s.peer.raw[s.peer.raw.len() - 18..];
    assert_eq!(&tail[..2], &[0x88, 16]);
    assert_eq!(&tail[4..], b"going away now");
    assert_eq!(s.log.borrow().closes, [4001]);
    assert_eq!(s.ws.status_code_received(), 4001);
    assert_every_method_is_closed(&s);
}

#[test]
fn peer_close_drops_unstarted_data() {
    let mut s = server(|p| p);
    // A paused writer keeps the message unstarted when the peer's close arrives.
    s.ws.stop_write().unwrap();
    s.ws.queue_text("never sent").unwrap();
    s.peer.close(Some(1000), "");
    // Reading goes on while writing is paused; the close reply needs the writer.
    run_until(&s.lp.clone(), "close read", || {
        s.ws.status_code_received() == 1000
    });
    s.ws.start_write().unwrap();
    s.until("fd closed", |p, _| p.eof);
    assert!(s.peer.data_msgs().is_empty(), "{:?}", s.peer.data_msgs());
    assert_eq!(s.peer.close_code(), 1000);
    assert_eq!(s.log.borrow().closes, [1000]);
}

#[test]
fn peer_close_without_code_is_1005() {
    let mut s = server(|p| p);
    s.peer.close(None, "");
    s.until("fd closed", |p, log| p.eof && !log.closes.is_empty());
    assert!(s.peer.close_received());
    assert_eq!(s.peer.close_code(), 1005, "the echo has no code either");
    assert_eq!(s.log.borrow().closes, [1005]);
}

#[test]
fn peer_eof_is_1006() {
    let mut s = server(|p| p);
    s.peer.sock.shutdown(Shutdown::Write).unwrap();
    s.until("on_close", |_, log| !log.closes.is_empty());
    assert_eq!(s.log.borrow().closes, [1006]);
    s.until("fd closed", |p, _| p.eof);
    assert!(!s.peer.close_received());
    assert_every_method_is_closed(&s);
}

#[test]
fn peer_vanishing_mid_message_is_1006() {
    let mut s = server(|p| p);
    let wire = s.peer.frame(OpCode::Binary, &[9; 100]);
    s.peer.send_raw(&wire[..50]);
    let lp = s.lp.clone();
    util::spin(&lp, 3);
    drop(std::mem::replace(&mut s.peer.sock, util::unix_pair().0));
    run_until(&lp, "on_close", || !s.log.borrow().closes.is_empty());
    assert_eq!(s.log.borrow().closes, [1006]);
    assert!(s.log.borrow().msgs.is_empty());
}

#[test]
fn our_close_sends_queued_data_first_and_reads_until_the_peer_closes() {
    let mut s = server(|p| p);
    s.ws.queue_text("one").unwrap();
    s.ws.queue_binary(&[2; 100_000]).unwrap();
    s.ws.close(Some(4000), "done").unwrap();
    assert!(matches!(s.ws.queue_text("late"), Err(Error::Closed)));
    s.until("our close at the peer", |p, _| p.close_received());
    assert_eq!(s.peer.data_msgs().len(), 2);
    assert_eq!(s.peer.data_msgs()[0], (OpCode::Text, b"one".to_vec()));
    assert_eq!(s.peer.data_msgs()[1].1.len(), 100_000);
    assert_eq!(s.peer.close_code(), 4000);
    // We keep reading: a message the peer sent before seeing our close arrives, and
    // the fd stays open until the peer's close.
    // (The peer's engine refuses to queue after a close: hand-made frames.)
    s.peer.send_raw(&masked_frame(true, 1, b"in flight"));
    s.until("in-flight message", |_, log| !log.msgs.is_empty());
    assert!(!s.peer.eof && s.log.borrow().closes.is_empty());
    // A code other than our 4000, to see that on_close gets the peer's code.
    s.peer
        .send_raw(&masked_frame(true, 8, &4002u16.to_be_bytes()));
    s.until("fd closed", |p, log| p.eof && !log.closes.is_empty());
    assert_eq!(s.log.borrow().closes, [4002]);
    assert_eq!(s.log.borrow().msgs[0].2, b"in flight");
}

#[test]
fn our_close_without_code() {
    let mut s = server(|p| p);
    assert!(s.ws.close(None, "reason needs a code").is_err());
    assert!(s.ws.close(Some(1005), "").is_err());
    s.ws.close(None, "").unwrap();
    s.until("close at the peer", |p, _| p.close_received());
    assert_eq!(s.peer.close_code(), 1005);
    s.peer.flush(); // the peer's engine echoes an empty close
    s.until("fd closed", |p, log| p.eof && !log.closes.is_empty());
    assert_eq!(s.log.borrow().closes, [1005]);
}

#[test]
fn close_timeout_when_the_peer_never_answers() {
    let mut s = server(|p| p.close_timeout(Some(Duration::from_secs_f64(0.05))));
    let start = LoopClock::start(&s.lp);
    s.ws.close(Some(1000), "").unwrap();
    s.until("on_close", |_, log| !log.closes.is_empty());
    assert!(
        start.elapsed() >= Duration::from_millis(40),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(s.log.borrow().closes, [1006]);
    s.until("fd closed", |p, _| p.eof);
    assert!(s.peer.close_received());
}

#[test]
fn close_timeout_when_the_peer_stops_reading() {
    let s = server_on(small_unix_pair(), |p| {
        p.close_timeout(Some(Duration::from_secs_f64(0.05)))
            .max_queued_bytes(64 << 20)
    });
    // Far more than the (small) socket buffers hold: the close frame never leaves.
    s.ws.queue_binary(&vec![0; 1 << 20]).unwrap();
    s.ws.close(Some(1000), "").unwrap();
    let lp = s.lp.clone();
    let log = s.log.clone();
    run_until(&lp, "on_close", || !log.borrow().closes.is_empty());
    assert_eq!(log.borrow().closes, [1006]);
}

#[test]
fn methods_called_from_on_close_see_the_end() {
    let seen = Rc::new(RefCell::new(Vec::new()));
    let v = seen.clone();
    let mut s = server(|p| {
        p.on_close(move |ws, code| {
            v.borrow_mut().push(format!(
                "{code} {} {:?} {:?}",
                ws.is_closed(),
                ws.queue_text("x").err().map(|e| matches!(e, Error::Closed)),
                ws.close(Some(1000), "")
                    .err()
                    .map(|e| matches!(e, Error::Closed)),
            ))
        })
    });
    s.peer.close(Some(1001), "");
    let lp = s.lp.clone();
    run_until(&lp, "on_close", || !seen.borrow().is_empty());
    assert_eq!(*seen.borrow(), ["1001 true Some(true) Some(true)"]);
    s.until("fd closed", |p, _| p.eof);
}

#[test]
fn panic_in_on_msg_recv_comes_out_of_run_and_the_loop_goes_on() {
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    let mut s = server(|p| {
        p.on_msg_recv(move |ws, _, op, msg, _| {
            c.set(c.get() + 1);
            if msg == b"boom" {
                panic!("user callback panicked");
            }
            ws.queue_msg(msg, op).unwrap();
        })
    });
    s.peer.send_msg(OpCode::Text, b"boom");
    let lp = s.lp.clone();
    let caught = catch_unwind(AssertUnwindSafe(|| {
        run_until(&lp, "the panic", || false);
    }));
    let payload = caught.expect_err("the panic did not come out of run");
    assert_eq!(
        payload.downcast_ref::<&str>().copied(),
        Some("user callback panicked")
    );
    assert_eq!(calls.get(), 1);
    // The loop and the connection go on.
    lp.run_with(RunFlags::NoWait);
    s.peer.send_msg(OpCode::Text, b"after");
    s.until("echo after the panic", |p, _| !p.data_msgs().is_empty());
    assert_eq!(s.peer.data_msgs(), [(OpCode::Text, b"after".to_vec())]);
    assert_eq!(calls.get(), 2);
    s.ws.close(Some(1000), "").unwrap();
    s.until("close", |p, _| p.close_received());
    s.peer.flush();
    s.until("fd closed", |p, log| p.eof && log.closes == [1000]);
}

#[test]
fn abort_ends_without_a_close_frame_and_on_close_runs_from_the_loop() {
    let mut s = server(|p| p);
    s.ws.queue_text("never sent").unwrap();
    s.ws.abort().unwrap();
    assert!(s.ws.is_closed());
    assert!(s.log.borrow().closes.is_empty(), "not inside the call");
    assert!(matches!(s.ws.queued_count(), Err(Error::Closed)));
    assert!(matches!(s.ws.abort(), Err(Error::Closed)));
    s.until("peer sees EOF", |p, _| p.eof);
    assert_eq!(s.log.borrow().closes, [1006]);
    assert!(s.peer.msgs().is_empty(), "queued data is dropped");
    assert!(!s.peer.close_received(), "no close frame");
}

#[test]
fn abort_inside_a_callback_takes_effect_when_it_returns() {
    let mut s = server(|p| {
        p.on_msg_recv(|ws, _, _, msg, _| {
            if msg == b"abort" {
                ws.abort().unwrap();
                // Over for the user at once; the loop ends it when we return.
                assert!(ws.is_closed());
                assert!(matches!(ws.queue_text("dropped"), Err(Error::Closed)));
            }
        })
    });
    let mut wire = masked_frame(true, 1, b"abort");
    wire.extend(masked_frame(true, 1, b"not delivered"));
    s.peer.send_raw(&wire);
    s.until("closed", |p, log| !log.closes.is_empty() && p.eof);
    assert_eq!(s.log.borrow().closes, [1006]);
    assert!(s.peer.msgs().is_empty());
}
