//! One message to many connections (`Group`, `PreparedMessage`), and large messages
//! echoed or relayed without a copy, on real socket pairs and a real loop.
#![cfg(feature = "ev")]
mod util;

use std::cell::RefCell;
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use net_websocket_ev::ev::{Loop, RunFlags};
use net_websocket_ev::proto::Role;
use net_websocket_ev::{
    websocket, Group, OpCode, Overflow, Params, PreparedMessage, Server, WebSocket,
};
use util::{run_until, small_unix_pair, unix_pair, Peer};

/// `n` server connections on `lp`, each with a raw peer (client role).
fn members(
    lp: &Loop,
    n: usize,
    pair: fn() -> (UnixStream, UnixStream),
    tweak: impl Fn(Params) -> Params,
) -> Vec<(WebSocket, Peer<UnixStream>)> {
    (0..n)
        .map(|_| {
            let (ours, theirs) = pair();
            let ws = Server::new(tweak(Params::new(ours).event_loop(lp))).expect("Server::new");
            (ws, Peer::new(theirs, Role::Client))
        })
        .collect()
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ seed).collect()
}

#[test]
fn publish_reaches_every_member_and_forgets_those_that_ended() {
    let lp = Loop::new().expect("loop");
    let mut all = members(&lp, 5, unix_pair, |p| p);
    let room = Group::new();
    for (ws, _) in &all {
        assert!(room.insert(ws));
    }
    let large = pattern(200_000, 7);
    let first = room.publish(&PreparedMessage::text("hello, all"));
    assert_eq!(
        (first.queued, first.skipped, first.dropped, first.gone),
        (5, 0, 0, 0)
    );
    let second = room
        .publish_msg(&large, OpCode::Binary)
        .expect("publish_msg");
    assert_eq!(second.queued, 5);
    run_until(&lp, "every member got both", || {
        all.iter_mut().all(|(_, peer)| {
            peer.pump();
            peer.data_msgs().len() == 2
        })
    });
    for (_, peer) in &all {
        let got = peer.data_msgs();
        assert_eq!(got[0], (OpCode::Text, b"hello, all".to_vec()));
        assert!(
            got[1] == (OpCode::Binary, large.clone()),
            "the large payload arrives intact"
        );
    }

    // One member's peer goes away: the member ends, and the next publish drops it.
    let (gone_ws, gone_peer) = all.remove(2);
    drop(gone_peer);
    run_until(&lp, "the member ends", || gone_ws.is_closed());
    let third = room.publish(&PreparedMessage::binary(b"third"));
    assert_eq!((third.queued, third.gone), (4, 1));
    assert_eq!(room.len(), 4);
    assert!(!room.contains(&gone_ws));
    assert!(room.remove(&all[0].0));
    assert_eq!(room.len(), 3);
    websocket::abort_all(&lp);
}

/// `publish` only queues; the group writes every member once, right after the
/// loop's next poll, with everything published meanwhile: one loop iteration
/// (without waiting) delivers it all.
#[test]
fn publish_writes_each_member_at_the_next_loop_iteration() {
    let lp = Loop::new().expect("loop");
    let mut all = members(&lp, 3, unix_pair, |p| p);
    let room = Group::new();
    for (ws, _) in &all {
        room.insert(ws);
    }
    let big = pattern(50_000, 1);
    room.publish(&PreparedMessage::binary(b"now"));
    room.publish(&PreparedMessage::binary(&big));
    for (ws, peer) in &mut all {
        assert!(!peer.pump(), "nothing is written inside publish");
        assert_eq!(ws.queued_count().unwrap(), 2);
    }
    lp.run_with(RunFlags::NoWait);
    for (ws, peer) in &mut all {
        peer.pump();
        assert_eq!(
            peer.data_msgs(),
            [
                (OpCode::Binary, b"now".to_vec()),
                (OpCode::Binary, big.clone())
            ]
        );
        assert_eq!(ws.queued_count().unwrap(), 0);
    }
    // A group dropped before its flush writes what was published to it.
    room.publish(&PreparedMessage::text("last"));
    drop(room);
    for (_, peer) in &mut all {
        peer.pump();
        assert_eq!(peer.data_msgs().len(), 3);
    }
    websocket::abort_all(&lp);
}

/// A member that does not read fills its queue; what it gets then is the group's
/// choice, and a reading member gets every message meanwhile.
#[test]
fn a_slow_member_is_skipped_closed_or_aborted_and_never_delays_the_others() {
    for overflow in [Overflow::Skip, Overflow::Close, Overflow::Abort] {
        let lp = Loop::new().expect("loop");
        let limit = |p: Params| p.max_queued_bytes(100_000);
        let mut fast = members(&lp, 1, small_unix_pair, limit).remove(0);
        let closes = Rc::new(RefCell::new(Vec::new()));
        let c = closes.clone();
        let slow = members(&lp, 1, small_unix_pair, move |p| {
            let c = c.clone();
            limit(p).on_close(move |_, code| c.borrow_mut().push(code))
        })
        .remove(0);
        let room = Group::new().overflow(overflow);
        room.insert(&fast.0);
        room.insert(&slow.0);
        let msg = PreparedMessage::binary(&pattern(30_000, 3));
        let mut over = None;
        for round in 0..40 {
            let published = room.publish(&msg);
            // The fast member reads everything at once, so its queue never fills.
            run_until(&lp, "the fast member reads", || {
                fast.1.pump();
                fast.1.data_msgs().len() == round + 1
            });
            if published.queued < 2 {
                over = Some((round, published));
                break;
            }
        }
        let (round, published) = over.expect("the slow member's queue filled");
        match overflow {
            Overflow::Skip => {
                assert_eq!((published.skipped, published.dropped), (1, 0));
                assert!(room.contains(&slow.0));
                assert!(!slow.0.is_closed());
            }
            Overflow::Close => {
                assert_eq!((published.skipped, published.dropped), (0, 1));
                assert!(!room.contains(&slow.0));
                assert!(slow.0.queue_text("more").is_err(), "a close is queued");
            }
            _ => {
                assert_eq!((published.skipped, published.dropped), (0, 1));
                assert!(!room.contains(&slow.0));
                run_until(&lp, "the aborted member ends", || {
                    !closes.borrow().is_empty()
                });
                assert_eq!(*closes.borrow(), [1006]);
            }
        }
        assert!(
            round >= 3,
            "{round}: 100,000 bytes hold 3 messages and more"
        );
        assert!(fast.1.data_msgs().iter().all(|m| m.1 == msg.payload()));
        websocket::abort_all(&lp);
    }
}

/// A large message queued from `on_msg_recv` with the slice it got is shared,
/// not copied: echoed to its sender and relayed to another connection, both
/// intact, message after message (the buffer is reused between them).
#[test]
fn large_messages_echoed_and_relayed_from_on_msg_recv_arrive_intact() {
    let lp = Loop::new().expect("loop");
    let (relay_ours, relay_theirs) = unix_pair();
    let relay = Server::new(Params::new(relay_ours).event_loop(&lp)).expect("Server::new");
    let mut relay_peer = Peer::new(relay_theirs, Role::Client);
    let (ours, theirs) = unix_pair();
    let to = relay.clone();
    let echo = Server::new(Params::new(ours).event_loop(&lp).on_msg_recv(
        move |ws, _, op, msg, _| {
            ws.queue_msg(msg, op).expect("echo");
            to.queue_msg(msg, op).expect("relay");
        },
    ))
    .expect("Server::new");
    let mut peer = Peer::new(theirs, Role::Client);
    let sent: Vec<(OpCode, Vec<u8>)> = vec![
        (OpCode::Binary, pattern(300_000, 1)),
        (OpCode::Text, "é".repeat(40_000).into_bytes()),
        (OpCode::Binary, pattern(20_000, 2)),
        (OpCode::Binary, pattern(150_000, 3)),
    ];
    for (op, data) in &sent {
        let wire = peer.frame(*op, data);
        let mut off = 0;
        run_until(&lp, "the message is echoed and relayed", || {
            if off < wire.len() {
                use std::io::Write;
                if let Ok(n) = peer.sock.write(&wire[off..]) {
                    off += n;
                }
            }
            peer.pump();
            relay_peer.pump();
            peer.data_msgs().len() == relay_peer.data_msgs().len()
                && relay_peer.data_msgs().last().map(|m| &m.1) == Some(data)
        });
    }
    assert!(peer.data_msgs() == sent);
    assert!(relay_peer.data_msgs() == sent);
    drop(echo);
    websocket::abort_all(&lp);
}
