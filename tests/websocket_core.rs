//! Regression tests of the connection core, one per bug found in it, over real
//! socket pairs and a real loop: bytes that came with the handshake, producers
//! (invalid text, pausing, their drop), re-entrancy (a nested loop run, `abort`
//! while iterating, `wait_blocking` inside a callback), the close timeout counted
//! from progress, pongs while our close waits, the peer's EOF with data queued,
//! the loop of an upgraded connection, and what the user can ask once it ended.
#![cfg(feature = "ev")]

mod util;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::rc::Rc;
use std::time::Duration;

use net_websocket_ev::ev::{Idle, Loop, LoopError, RunFlags, Timer};
use net_websocket_ev::handshake::ClientRequest;
use net_websocket_ev::proto::{Engine, Flow, Handler, ProtocolError, Role, Rsv};
use net_websocket_ev::websocket::upgrade;
use net_websocket_ev::{
    websocket, Client, CloseCause, Error, Fragment, OpCode, Params, Server, Waited, WebSocket,
};
use util::{masked_frame, run_until, server, small_buffers, unix_pair, Peer};

#[test]
fn bytes_that_came_with_the_handshake_are_delivered_when_a_message_is_queued_at_once() {
    let lp = Loop::new().unwrap();
    let (ours, peer) = unix_pair();
    let got = Rc::new(RefCell::new(Vec::new()));
    let seen = got.clone();
    let first = masked_frame(true, 1, b"came with the 101");
    let ws = Server::new(
        Params::new(ours)
            .event_loop(&lp)
            .initial_data(first)
            .on_msg_recv(move |_, _, _, msg, _| seen.borrow_mut().push(msg.to_vec())),
    )
    .unwrap();
    ws.queue_text("hello").unwrap(); // re-arms the watcher before the first turn
    let mut peer = Peer::new(peer, Role::Client);
    run_until(&lp, "the initial bytes delivered", || {
        peer.pump();
        !got.borrow().is_empty() && !peer.data_msgs().is_empty()
    });
    assert_eq!(*got.borrow(), [b"came with the 101".to_vec()]);
    assert_eq!(peer.data_msgs(), [(OpCode::Text, b"hello".to_vec())]);
    websocket::abort_all(&lp);
}

#[test]
fn a_client_gets_the_servers_first_message_sent_with_the_101() {
    let lp = Loop::new().unwrap();
    let (ours, peer) = unix_pair();
    let got = Rc::new(RefCell::new(Vec::new()));
    let seen = got.clone();
    let mut server_side = Peer::new(peer, Role::Server);
    let first = server_side.frame(OpCode::Text, b"welcome");
    let ws = Client::new(
        Params::new(ours)
            .event_loop(&lp)
            .initial_data(first)
            .on_msg_recv(move |_, _, _, msg, _| seen.borrow_mut().push(msg.to_vec())),
    )
    .unwrap();
    ws.queue_text("hi").unwrap();
    run_until(&lp, "the welcome", || {
        server_side.pump();
        !got.borrow().is_empty() && !server_side.data_msgs().is_empty()
    });
    assert_eq!(*got.borrow(), [b"welcome".to_vec()]);
    websocket::abort_all(&lp);
}

#[test]
fn a_text_producer_that_yields_invalid_utf8_fails_the_message_with_1011() {
    let mut s = server(|p| p);
    let mut step = 0;
    s.ws.queue_fragmented(
        move |_, buf| {
            step += 1;
            match step {
                1 => {
                    buf[..2].copy_from_slice(b"ab");
                    Fragment::Data(2)
                }
                2 => {
                    buf[0] = 0xff;
                    Fragment::Data(1)
                }
                _ => {
                    buf[..2].copy_from_slice(b"cd");
                    Fragment::Eof(2)
                }
            }
        },
        OpCode::Text,
    )
    .unwrap();
    s.until("close 1011", |peer, _| peer.close_received());
    assert_eq!(s.peer.close_code(), 1011);
    assert!(s.peer.data_msgs().is_empty(), "no message completed");
    assert_eq!(s.ws.close_cause(), Some(CloseCause::ProducerError));
}

#[test]
fn a_paused_producer_lets_pongs_through_and_resumes_on_request() {
    let mut s = server(|p| p);
    let calls = Rc::new(Cell::new(0));
    let counted = calls.clone();
    s.ws.queue_fragmented(
        move |_, buf| {
            counted.set(counted.get() + 1);
            match counted.get() {
                1 => {
                    buf[..3].copy_from_slice(b"one");
                    Fragment::Data(3)
                }
                2 => Fragment::Pause,
                _ => {
                    buf[..3].copy_from_slice(b"two");
                    Fragment::Eof(3)
                }
            }
        },
        OpCode::Binary,
    )
    .unwrap();
    s.ws.queue_text("after").unwrap();
    s.until("the producer paused", |_, _| calls.get() == 2);
    s.peer.send_msg(OpCode::Ping, b"still there?");
    s.until("the pong", |peer, _| {
        peer.msgs()
            .contains(&(OpCode::Pong, b"still there?".to_vec()))
    });
    // Many loop turns later it has not been asked again: no busy loop.
    for _ in 0..50 {
        s.lp.run_with(RunFlags::NoWait);
    }
    assert_eq!(calls.get(), 2);
    assert!(
        s.peer.data_msgs().is_empty(),
        "the message waits, and what follows"
    );
    s.ws.resume_fragmented().unwrap();
    s.until("the message and the one after it", |peer, _| {
        peer.data_msgs().len() == 2
    });
    assert_eq!(
        s.peer.data_msgs(),
        [
            (OpCode::Binary, b"onetwo".to_vec()),
            (OpCode::Text, b"after".to_vec())
        ]
    );
}

#[test]
fn a_close_behind_a_paused_producer_ends_at_the_close_timeout() {
    let mut s = server(|p| p.close_timeout(Some(Duration::from_millis(50))));
    s.ws.queue_fragmented(|_, _| Fragment::Pause, OpCode::Binary)
        .unwrap();
    s.ws.close(Some(1000), "").unwrap();
    s.until("on_close", |_, log| !log.closes.is_empty());
    assert_eq!(s.log.borrow().closes, [1006]);
    assert_eq!(s.ws.close_cause(), Some(CloseCause::CloseTimeout));
}

#[test]
fn running_the_loop_inside_a_callback_then_ending_calls_on_close_and_waiters_once() {
    let lp = Loop::new().unwrap();
    let (ours, peer) = unix_pair();
    let closes = Rc::new(Cell::new(0));
    let waited = Rc::new(RefCell::new(Vec::new()));
    let (c, w) = (closes.clone(), waited.clone());
    let _ws = Server::new(
        Params::new(ours)
            .event_loop(&lp)
            .on_msg_recv(move |ws, _, _, _, _| {
                let w = w.clone();
                ws.wait(move |_, how| w.borrow_mut().push(how)).unwrap();
                ws.abort().unwrap();
                // The ev layer allows this; the timer that carries the abort out
                // fires in here, inside our own receive callback.
                for _ in 0..3 {
                    ws.event_loop().run_with(RunFlags::NoWait);
                }
                assert!(matches!(ws.queue_text("x"), Err(Error::Closed)));
            })
            .on_close(move |_, code| {
                assert_eq!(code, 1006);
                c.set(c.get() + 1);
            }),
    )
    .unwrap();
    let mut peer = Peer::new(peer, Role::Client);
    peer.send_msg(OpCode::Text, b"go");
    run_until(&lp, "on_close", || closes.get() > 0);
    for _ in 0..3 {
        lp.run_with(RunFlags::NoWait);
    }
    assert_eq!(closes.get(), 1);
    assert_eq!(*waited.borrow(), [Waited::Drained]);
}

#[test]
fn abort_outside_a_callback_runs_on_close_from_the_loop_so_a_map_can_be_iterated() {
    let lp = Loop::new().unwrap();
    let clients: Rc<RefCell<HashMap<usize, WebSocket>>> = Rc::default();
    let mut peers = Vec::new();
    for id in 0..4 {
        let (ours, peer) = unix_pair();
        peers.push(peer);
        let map = clients.clone();
        let ws = Server::new(Params::new(ours).event_loop(&lp).on_close(move |_, _| {
            map.borrow_mut().remove(&id); // panics if the map is still borrowed
        }))
        .unwrap();
        clients.borrow_mut().insert(id, ws);
    }
    for (id, ws) in clients.borrow().iter() {
        if id % 2 == 0 {
            ws.abort().unwrap();
            assert!(ws.is_closed(), "calls fail from now on");
        }
    }
    assert_eq!(clients.borrow().len(), 4, "no on_close inside abort()");
    run_until(&lp, "two on_close", || clients.borrow().len() == 2);
    let mut left: Vec<usize> = clients.borrow().keys().copied().collect();
    left.sort();
    assert_eq!(left, [1, 3]);
    assert_eq!(websocket::abort_all(&lp), 2);
    assert!(clients.borrow().is_empty());
}

#[test]
fn a_producer_whose_drop_calls_the_connection_does_not_panic() {
    struct CallsOnDrop(WebSocket);
    impl Drop for CallsOnDrop {
        fn drop(&mut self) {
            let _ = self.0.wait(|_, _| {});
            let _ = self.0.queued_count();
        }
    }
    let mut s = server(|p| p);
    let guard = CallsOnDrop(s.ws.clone());
    s.ws.queue_fragmented(
        move |_, buf| {
            let _keep = &guard;
            buf[0] = b'x';
            Fragment::Eof(1)
        },
        OpCode::Binary,
    )
    .unwrap();
    s.until("the message", |peer, _| !peer.data_msgs().is_empty());
    // A producer dropped by the end of the connection too.
    let guard = CallsOnDrop(s.ws.clone());
    s.ws.stop_write().unwrap();
    s.ws.queue_fragmented(
        move |_, _| {
            let _keep = &guard;
            Fragment::Eof(0)
        },
        OpCode::Binary,
    )
    .unwrap();
    s.ws.abort().unwrap();
    s.until("on_close", |_, log| !log.closes.is_empty());
}

#[test]
fn wait_blocking_inside_a_callback_returns_once_the_queue_is_empty() {
    let lp = Loop::new().unwrap();
    let (ours, peer) = unix_pair();
    let result = Rc::new(RefCell::new(None));
    let r = result.clone();
    let _ws = Server::new(
        Params::new(ours)
            .event_loop(&lp)
            .on_msg_recv(move |ws, _, _, _, _| {
                for text in ["w1", "w2", "w3"] {
                    ws.queue_text(text).unwrap();
                }
                *r.borrow_mut() = Some((ws.wait_blocking(), ws.queued_count().unwrap()));
            }),
    )
    .unwrap();
    let mut peer = Peer::new(peer, Role::Client);
    peer.send_msg(OpCode::Text, b"go");
    run_until(&lp, "wait_blocking returned", || result.borrow().is_some());
    assert!(matches!(*result.borrow(), Some((Ok(Waited::Drained), 0))));
    // Already on the wire when it returned: no other event was needed.
    peer.pump();
    assert_eq!(peer.data_msgs().len(), 3);
    websocket::abort_all(&lp);
}

#[test]
fn wait_blocking_with_writing_stopped_is_an_error_not_a_spin() {
    let s = server(|p| p);
    s.ws.queue_text("x").unwrap();
    s.ws.stop().unwrap();
    assert!(matches!(s.ws.wait_blocking(), Err(Error::Stalled)));
    s.ws.start_write().unwrap();
    assert!(matches!(s.ws.wait_blocking(), Ok(Waited::Drained)));
}

#[test]
fn a_wait_callback_tells_a_drained_queue_from_an_end_with_data_unsent() {
    let lp = Loop::new().unwrap();
    let (ours, peer) = unix_pair();
    small_buffers(&ours);
    small_buffers(&peer);
    let ws = Server::new(Params::new(ours).event_loop(&lp)).unwrap();
    let outcome = Rc::new(RefCell::new(None));
    let o = outcome.clone();
    for _ in 0..8 {
        ws.queue_binary(&[7u8; 64 * 1024]).unwrap();
    }
    ws.wait(move |_, how| *o.borrow_mut() = Some(how)).unwrap();
    for _ in 0..5 {
        lp.run_with(RunFlags::NoWait);
    }
    drop(peer); // killed mid-upload
    run_until(&lp, "the wait callback", || outcome.borrow().is_some());
    let seen = *outcome.borrow();
    match seen {
        Some(Waited::Closed { unsent }) => assert!(unsent > 0),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_close_timeout_counts_from_progress_so_a_slow_reader_gets_everything() {
    const TOTAL: usize = 512 * 1024;
    let lp = Loop::new().unwrap();
    let (ours, peer_sock) = unix_pair();
    small_buffers(&ours);
    small_buffers(&peer_sock);
    let closes = Rc::new(RefCell::new(Vec::new()));
    let c = closes.clone();
    let ws = Server::new(
        Params::new(ours)
            .event_loop(&lp)
            .close_timeout(Some(Duration::from_secs(1)))
            .on_close(move |_, code| c.borrow_mut().push(code)),
    )
    .unwrap();
    for _ in 0..TOTAL / 4096 {
        ws.queue_binary(&[1u8; 4096]).unwrap();
    }
    ws.close(Some(1000), "done").unwrap();
    // The peer reads a little every 20 ms: slower than the close timeout in
    // total (about 3 s), but never silent for long.
    struct Count(usize);
    impl Handler for Count {
        fn on_message(&mut self, _: Rsv, op: OpCode, _: &[u8], _: u16) -> Flow {
            self.0 += usize::from(op == OpCode::Binary);
            Flow::Continue
        }
    }
    let mut peer = Engine::new(Role::Client, Default::default());
    let mut peer_sock = peer_sock;
    let mut count = Count(0);
    let ticks = Rc::new(Cell::new(0u32));
    let t = ticks.clone();
    let tick = Duration::from_millis(20);
    let reader = Timer::new(&lp, tick, tick, move |_| t.set(t.get() + 1));
    reader.start();
    let mut last = 0;
    run_until(&lp, "the closing handshake", || {
        if ticks.get() != last {
            last = ticks.get();
            let mut buf = [0u8; 8192];
            if let Ok(n) = peer_sock.read(&mut buf) {
                peer.feed(&buf[..n], &mut count);
                let mut answer = Vec::new();
                peer.send(&mut answer).unwrap();
                peer_sock.write_all(&answer).unwrap();
            }
        }
        !closes.borrow().is_empty()
    });
    assert_eq!(count.0, TOTAL / 4096, "nothing cut off");
    assert_eq!(*closes.borrow(), [1000]);
    assert_eq!(ws.close_cause(), Some(CloseCause::LocalClose));
}

#[test]
fn pings_that_come_while_our_close_waits_in_the_queue_get_pongs() {
    let mut s = server(|p| p);
    s.ws.stop_write().unwrap();
    s.ws.queue_text("data").unwrap();
    s.ws.close(Some(1000), "bye").unwrap();
    s.peer.send_msg(OpCode::Ping, b"p1");
    s.until("the ping read", |_, log| {
        log.msgs.iter().any(|m| m.1 == OpCode::Ping)
    });
    s.ws.start_write().unwrap();
    s.until("our close", |peer, _| peer.close_received());
    let msgs = s.peer.msgs();
    assert!(msgs.contains(&(OpCode::Pong, b"p1".to_vec())), "{msgs:?}");
    assert!(msgs.contains(&(OpCode::Text, b"data".to_vec())));
}

#[test]
fn after_the_peers_eof_what_was_queued_still_goes_out_whole() {
    const REPLY: usize = 1 << 20;
    let lp = Loop::new().unwrap();
    let (ours, peer) = unix_pair();
    small_buffers(&ours);
    small_buffers(&peer);
    let closes = Rc::new(RefCell::new(Vec::new()));
    let c = closes.clone();
    let ws = Server::new(
        Params::new(ours)
            .event_loop(&lp)
            .on_msg_recv(|ws, _, _, _, _| {
                ws.queue_binary(&vec![9u8; REPLY]).unwrap();
            })
            .on_close(move |_, code| c.borrow_mut().push(code)),
    )
    .unwrap();
    let mut peer = Peer::new(peer, Role::Client);
    peer.send_msg(OpCode::Text, b"last request");
    peer.sock.shutdown(Shutdown::Write).unwrap();
    run_until(&lp, "the whole reply, then the end", || {
        peer.pump();
        !closes.borrow().is_empty() && peer.eof
    });
    assert_eq!(peer.data_msgs(), [(OpCode::Binary, vec![9u8; REPLY])]);
    assert_eq!(*closes.borrow(), [1006]);
    assert_eq!(ws.close_cause(), Some(CloseCause::Eof));
}

#[test]
fn an_upgraded_connection_stays_on_the_loop_of_its_handshake() {
    let lp = Loop::new().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut client = TcpStream::connect(addr).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    let (request, _, _) = ClientRequest::from_url(&format!("ws://{addr}/")).unwrap();
    client.write_all(&request.build().0).unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    let conn: Rc<RefCell<Option<WebSocket>>> = Rc::default();
    let (g, c) = (got.clone(), conn.clone());
    upgrade::accept(&lp, accepted, Default::default(), move |result| {
        let params = result.unwrap().into_params();
        let ws = Server::new(
            params.on_msg_recv(move |_, _, _, msg, _| g.borrow_mut().push(msg.to_vec())),
        )
        .unwrap();
        *c.borrow_mut() = Some(ws);
    });
    run_until(&lp, "the handshake", || conn.borrow().is_some());
    let ws = conn.borrow().clone().unwrap();
    assert!(ws.event_loop().same_as(&lp));
    // Skip the 101 and talk.
    client.set_nonblocking(true).unwrap();
    let mut peer = Peer::new(client, Role::Client);
    peer.send_msg(OpCode::Text, b"on my loop");
    run_until(&lp, "the message", || {
        peer.pump();
        !got.borrow().is_empty()
    });
    assert_eq!(*got.borrow(), [b"on my loop".to_vec()]);
    websocket::abort_all(&lp);
}

#[test]
fn the_peers_close_reason_our_code_and_the_cause_are_kept() {
    let mut s = server(|p| p);
    assert_eq!(s.ws.close_cause(), None);
    assert!(s.ws.as_raw_fd().is_some());
    s.peer.close(Some(4000), "going home");
    s.until("on_close", |_, log| !log.closes.is_empty());
    assert_eq!(s.log.borrow().closes, [4000]);
    assert_eq!(s.ws.close_reason_received().as_deref(), Some("going home"));
    assert_eq!(s.ws.status_code_sent(), Some(4000));
    assert_eq!(s.ws.close_cause(), Some(CloseCause::PeerClose));
    assert_eq!(s.ws.as_raw_fd(), None);
}

#[test]
fn a_protocol_violation_is_reported_as_the_cause_with_the_code_sent() {
    let mut s = server(|p| p);
    s.peer.send_raw(&masked_frame(true, 3, b"reserved opcode"));
    s.until("on_close", |_, log| !log.closes.is_empty());
    assert_eq!(s.log.borrow().closes, [1006]);
    assert_eq!(s.ws.status_code_sent(), Some(1002));
    assert_eq!(
        s.ws.close_cause(),
        Some(CloseCause::ProtocolError(ProtocolError::ReservedOpcode(3)))
    );
}

#[test]
fn peer_addr_is_the_tcp_peers_address() {
    let lp = Loop::new().unwrap();
    let (ours, peer) = util::tcp_pair();
    let ws = Server::new(Params::new(ours).event_loop(&lp)).unwrap();
    assert_eq!(ws.peer_addr().unwrap(), peer.local_addr().unwrap());
    websocket::abort_all(&lp);
    run_until(&lp, "the end", || ws.as_raw_fd().is_none());
    assert!(ws.peer_addr().is_err());
}

#[test]
fn the_idle_clock_restarts_at_start_read_not_at_the_loops_stale_time() {
    let lp = Loop::new().unwrap();
    let (ours, peer) = unix_pair();
    let ws = Server::new(
        Params::new(ours)
            .event_loop(&lp)
            .idle_timeout(Some(Duration::from_secs(1))),
    )
    .unwrap();
    let _peer = peer;
    ws.stop_read().unwrap();
    // The loop's cached time goes stale while we block (as a slow callback does).
    std::thread::sleep(Duration::from_secs(2));
    ws.start_read().unwrap();
    for _ in 0..3 {
        lp.run_with(RunFlags::NoWait);
    }
    assert_eq!(ws.close_cause(), None, "the idle timeout fired early");
    websocket::abort_all(&lp);
}

#[test]
fn abort_all_ends_every_connection_of_one_loop_only() {
    let lp = Loop::new().unwrap();
    let other = Loop::new().unwrap();
    let closed = Rc::new(Cell::new(0));
    let mut peers = Vec::new();
    let mut handles = Vec::new();
    for lp in [&lp, &lp, &other] {
        let (ours, peer) = unix_pair();
        peers.push(peer);
        let c = closed.clone();
        handles.push(
            Server::new(
                Params::new(ours)
                    .event_loop(lp)
                    .on_close(move |_, _| c.set(c.get() + 1)),
            )
            .unwrap(),
        );
    }
    assert_eq!(websocket::abort_all(&lp), 2);
    assert_eq!(closed.get(), 2);
    assert!(!handles[2].is_closed());
    assert_eq!(websocket::abort_all(&other), 1);
    assert_eq!(closed.get(), 3);
}

/// Found by the object fuzz target: `wait_blocking` in a receive callback, with more
/// input unread on the socket, spun at 100 % CPU until the peer read (our own
/// level-triggered READ, which the loop cannot deliver inside its own callback,
/// made every loop run return at once), and starved idle watchers meanwhile.
#[test]
fn wait_blocking_in_a_receive_callback_does_not_spin_on_unread_input() {
    let lp = Loop::new().unwrap();
    let (ours, peer) = util::small_unix_pair();
    let peer = Rc::new(RefCell::new(peer));
    peer.borrow_mut()
        .write_all(&masked_frame(true, 1, b"one"))
        .unwrap();
    let result = Rc::new(RefCell::new(None));
    let (r, writer) = (result.clone(), peer.clone());
    let _ws = Server::new(Params::new(ours).event_loop(&lp).on_msg_recv(
        move |ws, _, _, msg, _| {
            if msg == b"one" {
                // More input arrives while we wait: our socket stays readable.
                writer
                    .borrow_mut()
                    .write_all(&masked_frame(true, 1, b"two"))
                    .unwrap();
                ws.queue_binary(&vec![7u8; 256 * 1024]).unwrap();
                *r.borrow_mut() = Some(ws.wait_blocking());
            }
        },
    ))
    .unwrap();
    let read_all = |peer: &RefCell<std::os::unix::net::UnixStream>| {
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n) = peer.borrow_mut().read(&mut buf) {
            if n == 0 {
                break;
            }
        }
    };
    // The peer reads only when the loop has nothing else to do.
    let p = peer.clone();
    let pump = Idle::new(&lp, move |_| read_all(&p));
    pump.start();
    // The bound: after the common deadline the peer reads from a timer instead, so
    // that a spinning wait ends, and the test fails.
    let gave_up = Rc::new(Cell::new(false));
    let (g, p) = (gave_up.clone(), peer.clone());
    let start = std::time::Instant::now();
    let guard = Timer::new(&lp, util::TICK, util::TICK, move |_| {
        if start.elapsed() > util::deadline() {
            g.set(true);
            read_all(&p);
        }
    });
    guard.start();
    run_until(&lp, "wait_blocking returned", || result.borrow().is_some());
    assert!(!gave_up.get(), "wait_blocking spun on its own unread input");
    assert!(matches!(*result.borrow(), Some(Ok(Waited::Drained))));
    websocket::abort_all(&lp);
}

/// libev's one default loop belongs to the thread holding it: a connection made
/// without `.event_loop(..)` on another thread meanwhile is refused with an error
/// instead of corrupting it (the only test of this binary using the default loop).
#[test]
fn a_connection_on_the_default_loop_from_a_second_thread_is_refused() {
    let held = Loop::default_loop().unwrap();
    let refused = std::thread::spawn(|| {
        let (ours, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
        matches!(
            Server::new(Params::new(ours)),
            Err(Error::Loop(LoopError::DefaultLoopInUse))
        )
    })
    .join()
    .unwrap();
    assert!(refused);
    drop(held);
}
