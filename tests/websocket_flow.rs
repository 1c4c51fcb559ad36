//! Flow control and the object's life: wait (callback and blocking), fragmented
//! sending, pausing and resuming each direction, shutdown, re-entrant calls from
//! every callback (dropping every handle too) and an adopted foreign loop.
#![cfg(feature = "ev")]

mod util;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use net_websocket_ev::ev::Loop;
use net_websocket_ev::proto::Role;
use net_websocket_ev::{Error, Fragment, OpCode, Params, Server};
use util::{masked_frame, run_for, run_until, server, unix_pair, Peer, Seen};

const PAUSE: Duration = Duration::from_millis(30);

#[test]
fn wait_on_an_empty_queue_fires_from_the_loop() {
    let s = server(|p| p);
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    s.ws.wait(move |ws, _| {
        assert_eq!(ws.queued_count().unwrap(), 0);
        f.set(true);
    })
    .unwrap();
    assert!(!fired.get(), "wait fired inside the call");
    run_until(&s.lp, "wait callback", || fired.get());
}

#[test]
fn several_waits_fire_once_each_in_order_after_the_queue_drains() {
    let mut s = server(|p| p);
    let order = Rc::new(RefCell::new(Vec::new()));
    s.ws.queue_binary(&vec![1; 300_000]).unwrap();
    for i in 0..3 {
        let o = order.clone();
        s.ws.wait(move |ws, _| o.borrow_mut().push((i, ws.queued_count().unwrap())))
            .unwrap();
    }
    // The peer must read for the queue to drain.
    s.until("three waits", |_, _| order.borrow().len() == 3);
    assert_eq!(*order.borrow(), [(0, 0), (1, 0), (2, 0)]);
    run_for(&s.lp, PAUSE);
    assert_eq!(order.borrow().len(), 3, "a wait callback fired twice");
}

#[test]
fn wait_registered_from_a_wait_callback_fires_later() {
    let s = server(|p| p);
    let order = Rc::new(RefCell::new(Vec::new()));
    let o = order.clone();
    s.ws.wait(move |ws, _| {
        o.borrow_mut().push("outer");
        let o2 = o.clone();
        ws.wait(move |_, _| o2.borrow_mut().push("inner")).unwrap();
    })
    .unwrap();
    run_until(&s.lp, "both waits", || order.borrow().len() == 2);
    assert_eq!(*order.borrow(), ["outer", "inner"]);
}

#[test]
fn waits_are_released_when_the_connection_ends() {
    let mut s = server(|p| p);
    s.ws.stop_write().unwrap();
    s.ws.queue_text("stuck").unwrap();
    let fired = Rc::new(Cell::new(0));
    let f = fired.clone();
    s.ws.wait(move |_, _| f.set(f.get() + 1)).unwrap();
    run_for(&s.lp, PAUSE);
    assert_eq!(fired.get(), 0, "fired with a message still queued");
    s.peer.sock.shutdown(std::net::Shutdown::Both).unwrap();
    s.until("end", |_, log| !log.closes.is_empty());
    assert_eq!(fired.get(), 1);
}

#[test]
fn wait_blocking_runs_the_loop_until_the_queue_is_empty() {
    let s = server(|p| p);
    s.ws.queue_binary(&vec![3; 200_000]).unwrap();
    s.ws.queue_text("last").unwrap();
    // The peer reads on another thread so the queue can drain while we block.
    let peer_sock = s.peer.sock.try_clone().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::Read;
        peer_sock.set_nonblocking(false).unwrap();
        peer_sock.set_read_timeout(Some(util::deadline())).unwrap();
        let mut total = 0;
        let mut buf = [0u8; 65536];
        while total < 200_000 + 10 + 6 {
            match (&peer_sock).read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
        total
    });
    s.ws.wait_blocking().unwrap();
    assert_eq!(s.ws.queued_count().unwrap(), 0);
    assert_eq!(reader.join().unwrap(), 200_000 + 10 + 6);
}

fn frame_starts(seen: &[Seen]) -> Vec<(bool, OpCode, u64)> {
    seen.iter()
        .filter_map(|s| match s {
            Seen::Start(fin, _, op, len) => Some((*fin, *op, *len)),
            _ => None,
        })
        .collect()
}

#[test]
fn queue_fragmented_data_then_eof() {
    let mut s = server(|p| p);
    let pieces: Vec<&[u8]> = vec![b"ab", b"", b"cde"];
    let mut calls = 0;
    s.ws.queue_fragmented(
        move |_ws, buf| {
            calls += 1;
            assert_eq!(buf.len(), 4096, "the default fragment size");
            let piece = pieces[calls - 1];
            buf[..piece.len()].copy_from_slice(piece);
            match calls {
                1 => Fragment::Data(piece.len()),
                // Data(0) sends nothing and asks again at the next writable event.
                2 => Fragment::Data(0),
                _ => Fragment::Eof(piece.len()),
            }
        },
        OpCode::Text,
    )
    .unwrap();
    s.ws.queue_text("after").unwrap();
    s.until("two messages", |p, _| p.data_msgs().len() == 2);
    assert_eq!(
        s.peer.data_msgs(),
        [
            (OpCode::Text, b"abcde".to_vec()),
            (OpCode::Text, b"after".to_vec())
        ]
    );
    assert_eq!(
        frame_starts(&s.peer.seen),
        [
            (false, OpCode::Text, 2),
            (true, OpCode::Continuation, 3),
            (true, OpCode::Text, 5)
        ]
    );
}

#[test]
fn queue_fragmented_empty_eof_and_fragment_size() {
    let mut s = server(|p| p.fragment_size(3));
    let mut n = 0;
    s.ws.queue_fragmented(
        move |_ws, buf| {
            n += 1;
            assert_eq!(buf.len(), 3);
            if n <= 2 {
                buf.copy_from_slice(b"xyz");
                Fragment::Data(3)
            } else {
                Fragment::Eof(0)
            }
        },
        OpCode::Binary,
    )
    .unwrap();
    s.ws.queue_fragmented(|_, _| Fragment::Eof(0), OpCode::Binary)
        .unwrap();
    s.until("two messages", |p, _| p.data_msgs().len() == 2);
    assert_eq!(
        s.peer.data_msgs(),
        [
            (OpCode::Binary, b"xyzxyz".to_vec()),
            (OpCode::Binary, vec![])
        ]
    );
    assert_eq!(
        frame_starts(&s.peer.seen),
        [
            (false, OpCode::Binary, 3),
            (false, OpCode::Continuation, 3),
            (true, OpCode::Continuation, 0),
            (true, OpCode::Binary, 0),
        ]
    );
}

#[test]
fn queue_fragmented_error_sends_1011() {
    let mut s = server(|p| p);
    let mut n = 0;
    s.ws.queue_fragmented(
        move |_ws, buf| {
            n += 1;
            if n == 1 {
                buf[0] = b'a';
                Fragment::Data(1)
            } else {
                Fragment::Error
            }
        },
        OpCode::Binary,
    )
    .unwrap();
    s.ws.queue_text("dropped").unwrap();
    s.until("close", |p, _| p.close_received());
    assert_eq!(s.peer.close_code(), 1011);
    assert!(s.peer.data_msgs().is_empty());
    s.peer.flush();
    s.until("end", |p, log| p.eof && !log.closes.is_empty());
    assert_eq!(s.log.borrow().closes, [1011]);
}

#[test]
fn ping_queued_by_the_producer_goes_between_fragments() {
    let mut s = server(|p| p);
    let mut n = 0;
    s.ws.queue_fragmented(
        move |ws, buf| {
            n += 1;
            buf[0] = b'0' + n;
            if n == 2 {
                ws.queue_msg(b"mid", OpCode::Ping).unwrap();
            }
            if n < 3 {
                Fragment::Data(1)
            } else {
                Fragment::Eof(1)
            }
        },
        OpCode::Text,
    )
    .unwrap();
    s.until("message", |p, _| !p.data_msgs().is_empty());
    let starts = frame_starts(&s.peer.seen);
    assert_eq!(starts.len(), 4, "{starts:?}");
    assert_eq!(starts[0], (false, OpCode::Text, 1));
    assert_eq!(starts[3], (true, OpCode::Continuation, 1));
    assert!(
        starts[1..3].contains(&(true, OpCode::Ping, 3)),
        "{starts:?}"
    );
    assert_eq!(s.peer.data_msgs(), [(OpCode::Text, b"123".to_vec())]);
}

#[test]
fn stop_read_in_a_callback_holds_the_rest_of_the_read() {
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    let mut s = server(|p| {
        p.on_msg_recv(move |ws, _, _, msg, _| {
            g.borrow_mut().push(msg.to_vec());
            if msg == b"first" {
                ws.stop_read().unwrap();
            }
        })
    });
    let mut wire = s.peer.frame(OpCode::Text, b"first");
    wire.extend(s.peer.frame(OpCode::Text, b"second"));
    wire.extend(s.peer.frame(OpCode::Ping, b"p"));
    s.peer.send_raw(&wire); // one write: both arrive in one read
    run_until(&s.lp, "first", || !got.borrow().is_empty());
    run_for(&s.lp, PAUSE);
    assert_eq!(*got.borrow(), [b"first".to_vec()]);
    s.peer.pump();
    assert!(
        s.peer.msgs().is_empty(),
        "the ping was answered while paused"
    );
    s.ws.start_read().unwrap();
    s.until("second and the pong", |p, _| !p.msgs().is_empty());
    assert_eq!(got.borrow()[1], b"second");
    assert_eq!(s.peer.msgs(), [(OpCode::Pong, b"p".to_vec())]);
}

#[test]
fn stop_read_in_a_frame_callback_pauses_mid_frame() {
    let chunks = Rc::new(RefCell::new(Vec::new()));
    let c = chunks.clone();
    let mut s = server(|p| {
        p.on_frame_recv_start(|ws, _, _, _, _| ws.stop_read().unwrap())
            .on_frame_recv_chunk(move |_, data| c.borrow_mut().push(data.to_vec()))
    });
    s.peer.send_msg(OpCode::Binary, b"abc");
    run_for(&s.lp, PAUSE);
    assert!(chunks.borrow().is_empty());
    s.ws.start_read().unwrap();
    run_until(&s.lp, "chunk", || !chunks.borrow().is_empty());
    assert_eq!(chunks.borrow().concat(), b"abc");
    assert_eq!(s.log.borrow().msgs.len(), 1);
}

#[test]
fn a_paused_reader_does_not_notice_eof() {
    let mut s = server(|p| p);
    s.ws.stop_read().unwrap();
    s.peer.send_msg(OpCode::Text, b"kept");
    s.peer.sock.shutdown(std::net::Shutdown::Write).unwrap();
    run_for(&s.lp, PAUSE);
    assert!(s.log.borrow().closes.is_empty() && !s.ws.is_closed());
    s.ws.start().unwrap();
    s.until("end", |_, log| !log.closes.is_empty());
    assert_eq!(s.log.borrow().msgs[0].2, b"kept");
    assert_eq!(s.log.borrow().closes, [1006]);
}

#[test]
fn stop_write_holds_output_until_start_write() {
    let mut s = server(|p| p);
    s.ws.stop_write().unwrap();
    s.ws.queue_text("held").unwrap();
    s.peer.send_msg(OpCode::Ping, b"x"); // the pong waits too
    run_for(&s.lp, PAUSE);
    s.peer.pump();
    assert!(s.peer.raw.is_empty());
    assert_eq!(s.log.borrow().msgs.len(), 1, "reading goes on");
    assert_eq!(s.ws.queued_count().unwrap(), 2);
    s.ws.start_write().unwrap();
    s.until("both", |p, _| p.msgs().len() == 2);
    assert_eq!(
        s.peer.msgs(),
        [
            (OpCode::Pong, b"x".to_vec()),
            (OpCode::Text, b"held".to_vec())
        ]
    );
}

#[test]
fn stop_pauses_both_directions() {
    let mut s = server(|p| p);
    s.ws.stop().unwrap();
    s.ws.queue_text("out").unwrap();
    s.peer.send_msg(OpCode::Text, b"in");
    run_for(&s.lp, PAUSE);
    s.peer.pump();
    assert!(s.peer.raw.is_empty() && s.log.borrow().msgs.is_empty());
    s.ws.start().unwrap();
    s.until("both ways", |p, log| {
        !p.msgs().is_empty() && !log.msgs.is_empty()
    });
}

#[test]
fn shutdown_read_ends_once_the_queue_drains() {
    let mut s = server(|p| p);
    s.ws.queue_text("still sent").unwrap();
    s.ws.shutdown_read().unwrap();
    s.peer.send_msg(OpCode::Text, b"ignored");
    s.until("end", |p, log| {
        (p.eof || p.error.is_some()) && !log.closes.is_empty()
    });
    assert_eq!(s.peer.error, None, "reset instead of a clean end");
    assert_eq!(s.peer.data_msgs(), [(OpCode::Text, b"still sent".to_vec())]);
    assert!(s.log.borrow().msgs.is_empty());
    assert_eq!(s.log.borrow().closes, [1006]);
}

#[test]
fn shutdown_read_from_on_msg_recv_takes_effect_at_once() {
    let mut s = server(|p| {
        p.on_frame_recv_start(|ws, _, _, op, _| {
            if op == OpCode::Binary {
                ws.shutdown_read().unwrap();
            }
        })
    });
    let mut wire = s.peer.frame(OpCode::Binary, b"a");
    wire.extend(s.peer.frame(OpCode::Text, b"b"));
    s.peer.send_raw(&wire);
    s.until("end", |_, log| !log.closes.is_empty());
    assert!(s.log.borrow().msgs.is_empty(), "{:?}", s.log.borrow().msgs);
}

#[test]
fn shutdown_write_drops_the_queue_and_reading_goes_on() {
    let mut s = server(|p| p);
    s.ws.stop_write().unwrap();
    s.ws.queue_text("dropped").unwrap();
    s.ws.shutdown_write().unwrap();
    assert!(matches!(s.ws.queue_text("x"), Err(Error::Closed)));
    s.ws.start_write().unwrap();
    s.peer.send_msg(OpCode::Text, b"still read");
    s.until("message", |_, log| !log.msgs.is_empty());
    s.peer.close(Some(1000), "");
    s.until("end", |p, log| p.eof && !log.closes.is_empty());
    assert_eq!(s.log.borrow().closes, [1000]);
    assert!(!s.peer.close_received(), "wrote after shutdown_write");
    assert!(s.peer.raw.is_empty());
}

#[test]
fn every_callback_may_reenter_and_every_handle_may_be_dropped() {
    let lp = Loop::new().unwrap();
    let (ours, peer) = unix_pair();
    let log = Rc::new(RefCell::new(Vec::<String>::new()));
    let (l1, l2, l3, l4, l5) = (
        log.clone(),
        log.clone(),
        log.clone(),
        log.clone(),
        log.clone(),
    );
    let ws = Server::new(
        Params::new(ours)
            .event_loop(&lp)
            .on_frame_recv_start(move |ws, _, _, op, _| {
                l1.borrow_mut().push(format!("start {op:?}"));
                ws.stop_write().unwrap();
                ws.queued_count().unwrap();
            })
            .on_frame_recv_chunk(move |ws, data| {
                l2.borrow_mut().push("chunk".into());
                ws.start_write().unwrap();
                if data == b"close-me" {
                    ws.close(Some(4000), "bye").unwrap();
                }
            })
            .on_frame_recv_end(move |ws| {
                l3.borrow_mut().push("end".into());
                ws.stop_read().unwrap();
                ws.start_read().unwrap();
            })
            .on_msg_recv(move |ws, _, op, msg, _| {
                l4.borrow_mut().push(format!("msg {op:?}"));
                if op == OpCode::Text && msg != b"close-me" {
                    ws.queue_msg(msg, op).unwrap();
                    let l = l4.clone();
                    ws.wait(move |_, _| l.borrow_mut().push("waited".into()))
                        .unwrap();
                }
            })
            .on_close(move |ws, code| {
                l5.borrow_mut().push(format!("close {code}"));
                assert!(matches!(ws.queue_text("x"), Err(Error::Closed)));
            }),
    )
    .unwrap();
    drop(ws); // no handle left: the connection lives on its loop
    let mut peer = Peer::new(peer, Role::Client);
    peer.send_msg(OpCode::Text, b"echo");
    run_until(&lp, "echo", || {
        peer.pump();
        !peer.data_msgs().is_empty()
    });
    assert_eq!(peer.data_msgs(), [(OpCode::Text, b"echo".to_vec())]);
    run_until(&lp, "waited", || log.borrow().iter().any(|e| e == "waited"));
    peer.send_msg(OpCode::Text, b"close-me");
    run_until(&lp, "our close", || {
        peer.pump();
        peer.close_received()
    });
    assert_eq!(peer.close_code(), 4000);
    peer.flush();
    run_until(&lp, "end", || {
        peer.pump();
        peer.eof && log.borrow().iter().any(|e| e.starts_with("close"))
    });
    assert_eq!(log.borrow().last().unwrap(), "close 4000");
    assert_eq!(
        log.borrow()[..5],
        ["start Text", "chunk", "end", "msg Text", "waited"]
    );
    // Everything is gone from the loop: run returns at once.
    lp.run();
}

#[test]
fn dropping_the_last_handle_inside_a_callback() {
    let lp = Loop::new().unwrap();
    let (ours, peer) = unix_pair();
    let slot: Rc<RefCell<Option<net_websocket_ev::WebSocket>>> = Rc::default();
    let s2 = slot.clone();
    let closed = Rc::new(Cell::new(0u16));
    let c = closed.clone();
    let ws = Server::new(
        Params::new(ours)
            .event_loop(&lp)
            .on_msg_recv(move |ws, _, op, msg, _| {
                s2.borrow_mut().take(); // the user's only handle
                ws.queue_msg(msg, op).unwrap();
            })
            .on_close(move |_, code| c.set(code)),
    )
    .unwrap();
    *slot.borrow_mut() = Some(ws);
    let mut peer = Peer::new(peer, Role::Client);
    peer.send_msg(OpCode::Binary, b"1");
    peer.send_msg(OpCode::Binary, b"2");
    run_until(&lp, "echoes", || {
        peer.pump();
        peer.data_msgs().len() == 2
    });
    assert!(slot.borrow().is_none());
    peer.close(Some(1001), "");
    run_until(&lp, "end", || {
        peer.pump();
        peer.eof && closed.get() != 0
    });
    assert_eq!(closed.get(), 1001);
}

#[test]
fn runs_on_a_loop_adopted_from_its_raw_pointer() {
    // SAFETY: a fresh loop, destroyed below after every handle and watcher is gone.
    let raw = unsafe { libev_sys::ev_loop_new(0) };
    assert!(!raw.is_null());
    {
        // SAFETY: `raw` is valid until ev_loop_destroy below; this thread only.
        let lp = unsafe { Loop::from_raw(raw) }.unwrap();
        let (ours, peer) = unix_pair();
        let closed = Rc::new(Cell::new(0u16));
        let c = closed.clone();
        let ws = Server::new(
            Params::new(ours)
                .event_loop(&lp)
                .on_msg_recv(|ws, _, op, msg, _| ws.queue_msg(msg, op).unwrap())
                .on_close(move |_, code| c.set(code)),
        )
        .unwrap();
        assert_eq!(ws.event_loop().as_raw(), raw);
        let mut peer = Peer::new(peer, Role::Client);
        peer.send_msg(OpCode::Text, b"adopted");
        run_until(&lp, "echo", || {
            peer.pump();
            !peer.data_msgs().is_empty()
        });
        assert_eq!(peer.data_msgs(), [(OpCode::Text, b"adopted".to_vec())]);
        peer.close(Some(1000), "");
        run_until(&lp, "end", || {
            peer.pump();
            peer.eof && closed.get() == 1000
        });
    }
    // SAFETY: no handle or watcher of the loop is left.
    unsafe { libev_sys::ev_loop_destroy(raw) };
}

#[test]
fn panicking_producer_abandons_its_message_with_1011() {
    let mut s = server(|p| p);
    s.ws.queue_fragmented(|_, _| panic!("producer panicked"), OpCode::Binary)
        .unwrap();
    let lp = s.lp.clone();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_until(&lp, "the panic", || false)
    }));
    assert!(caught.is_err());
    s.until("close 1011", |p, _| p.close_received());
    assert_eq!(s.peer.close_code(), 1011);
}

#[test]
fn handshake_frame_after_masked_frame_helper_is_valid() {
    // The hand-made frame helper agrees with the engine's framing.
    let mut s = server(|p| p);
    s.peer.send_raw(&masked_frame(true, 2, &[5; 300]));
    s.until("message", |_, log| !log.msgs.is_empty());
    assert_eq!(s.log.borrow().msgs[0].2, vec![5; 300]);
}
