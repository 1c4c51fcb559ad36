//! The object receiving and sending messages over a real socket and a real loop:
//! echo, automatic pong, frame callbacks, no-buffering mode, the size limit, bytes
//! that came with the handshake, protocol violations and client masking.
#![cfg(feature = "ev")]

mod util;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use net_websocket_ev::ev::Loop;
use net_websocket_ev::proto::Role;
use net_websocket_ev::{Client, OpCode, Params, Rsv, Server};
use util::{masked_frame, run_until, server, tcp_pair, unix_pair, Peer};

#[test]
fn echoes_text_binary_and_empty_messages() {
    let mut s = server(|p| {
        p.on_msg_recv(|ws, _rsv, op, msg, status| {
            assert_eq!(status, 0);
            ws.queue_msg(msg, op).unwrap();
        })
    });
    s.peer.send_msg(OpCode::Text, "héllo".as_bytes());
    s.peer.send_msg(OpCode::Binary, &[0, 1, 2, 255]);
    s.peer.send_msg(OpCode::Text, b"");
    s.peer.send_msg(OpCode::Binary, b"");
    let big = vec![7u8; 70_000];
    s.peer.send_msg(OpCode::Binary, &big);
    s.until("five echoes", |p, _| p.data_msgs().len() == 5);
    assert_eq!(
        s.peer.data_msgs(),
        vec![
            (OpCode::Text, "héllo".as_bytes().to_vec()),
            (OpCode::Binary, vec![0, 1, 2, 255]),
            (OpCode::Text, vec![]),
            (OpCode::Binary, vec![]),
            (OpCode::Binary, big),
        ]
    );
    // A server never masks.
    assert_eq!(s.peer.raw[1] & 0x80, 0);
    assert_eq!(s.ws.queued_count().unwrap(), 0);
    assert!(!s.ws.is_closed());
}

#[test]
fn ping_is_answered_without_on_msg_recv() {
    let lp = Loop::new().unwrap();
    let (ours, peer) = unix_pair();
    let ws = Server::new(Params::new(ours).event_loop(&lp)).unwrap();
    let mut peer = Peer::new(peer, Role::Client);
    peer.send_msg(OpCode::Ping, b"are you there");
    run_until(&lp, "pong", || {
        peer.pump();
        !peer.msgs().is_empty()
    });
    assert_eq!(peer.msgs(), vec![(OpCode::Pong, b"are you there".to_vec())]);
    net_websocket_ev::websocket::abort_all(ws.event_loop()); // end the still-open connection with the test
}

#[test]
fn ping_between_fragments_is_answered_and_reported() {
    let mut s = server(|p| p);
    let mut wire = masked_frame(false, 1, b"ab");
    wire.extend(masked_frame(true, 9, b"P"));
    wire.extend(masked_frame(true, 0, b"cd"));
    s.peer.send_raw(&wire);
    s.until("pong and text", |p, log| {
        !p.msgs().is_empty() && log.msgs.len() == 2
    });
    assert_eq!(s.peer.msgs(), vec![(OpCode::Pong, b"P".to_vec())]);
    let log = s.log.borrow();
    assert_eq!(log.msgs[0], (Rsv::empty(), OpCode::Ping, b"P".to_vec(), 0));
    assert_eq!(
        log.msgs[1],
        (Rsv::empty(), OpCode::Text, b"abcd".to_vec(), 0)
    );
}

type Events = Rc<RefCell<Vec<String>>>;

fn with_frame_callbacks(params: Params, ev: &Events) -> Params {
    let (a, b, c, d) = (ev.clone(), ev.clone(), ev.clone(), ev.clone());
    params
        .on_frame_recv_start(move |_ws, fin, rsv, op, len| {
            a.borrow_mut()
                .push(format!("start {fin} {} {op:?} {len}", rsv.bits()))
        })
        .on_frame_recv_chunk(move |_ws, data| {
            b.borrow_mut()
                .push(format!("chunk {}", String::from_utf8_lossy(data)))
        })
        .on_frame_recv_end(move |_ws| c.borrow_mut().push("end".into()))
        .on_msg_recv(move |_ws, _rsv, op, msg, status| {
            d.borrow_mut().push(format!(
                "msg {op:?} {} {status}",
                String::from_utf8_lossy(msg)
            ))
        })
}

#[test]
fn frame_callbacks_come_in_order_then_the_message() {
    let ev = Events::default();
    let mut s = server(|p| with_frame_callbacks(p, &ev));
    let mut wire = masked_frame(false, 1, b"ab");
    wire.extend(masked_frame(false, 0, b""));
    wire.extend(masked_frame(true, 9, b"p"));
    wire.extend(masked_frame(true, 0, b"c"));
    s.peer.send_raw(&wire);
    s.until("text message", |_, _| {
        ev.borrow().iter().any(|e| e.starts_with("msg Text"))
    });
    assert_eq!(
        *ev.borrow(),
        [
            "start false 0 Text 2",
            "chunk ab",
            "end",
            "start false 0 Continuation 0",
            "chunk ",
            "end",
            "start true 0 Ping 1",
            "chunk p",
            "end",
            "msg Ping p 0",
            "start true 0 Continuation 1",
            "chunk c",
            "end",
            "msg Text abc 0",
        ]
    );
}

#[test]
fn close_frame_is_reported_through_frame_callbacks_not_on_msg_recv() {
    let ev = Events::default();
    let mut s = server(|p| with_frame_callbacks(p, &ev));
    s.peer.close(Some(1000), "ok");
    s.until("closed", |_, log| !log.closes.is_empty());
    let mut payload = 1000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"ok");
    assert_eq!(
        *ev.borrow(),
        [
            "start true 0 Close 4".to_string(),
            format!("chunk {}", String::from_utf8_lossy(&payload)),
            "end".to_string(),
        ]
    );
}

#[test]
fn without_buffering_data_comes_through_chunks_and_the_limit_is_per_frame() {
    let ev = Events::default();
    let mut s = server(|p| with_frame_callbacks(p.buffering(false).max_recv_size(4), &ev));
    let mut wire = masked_frame(false, 2, b"abcd");
    wire.extend(masked_frame(true, 0, b"efgh"));
    s.peer.send_raw(&wire);
    s.until("binary message", |_, _| {
        ev.borrow().iter().any(|e| e.starts_with("msg Binary"))
    });
    assert_eq!(
        *ev.borrow(),
        [
            "start false 0 Binary 4",
            "chunk abcd",
            "end",
            "start true 0 Continuation 4",
            "chunk efgh",
            "end",
            "msg Binary  0",
        ]
    );
    // A single frame over the limit is refused with 1009.
    s.peer.send_raw(&masked_frame(true, 2, b"12345"));
    s.until("close 1009", |p, _| p.close_received());
    assert_eq!(s.peer.close_code(), 1009);
}

#[test]
fn max_recv_size_exact_limit_is_fine_one_more_is_1009() {
    let mut s = server(|p| p.max_recv_size(10));
    s.peer.send_msg(OpCode::Binary, &[1; 10]);
    // Over the limit across fragments: 6 + 5.
    let mut wire = masked_frame(false, 2, &[2; 6]);
    wire.extend(masked_frame(true, 0, &[2; 5]));
    s.peer.send_raw(&wire);
    s.until("close 1009", |p, _| p.close_received());
    assert_eq!(s.peer.close_code(), 1009);
    {
        let log = s.log.borrow();
        assert_eq!(log.msgs.len(), 1);
        assert_eq!(log.msgs[0].2, vec![1; 10]);
    }
    // Failing the connection: our close goes out, then the fd is closed at once,
    // and no close came from the peer.
    s.until("on_close", |p, log| !log.closes.is_empty() && p.eof);
    assert_eq!(s.log.borrow().closes, [1006]);
    assert!(s.ws.is_closed());
}

#[test]
fn initial_data_is_delivered_before_socket_bytes() {
    let lp = Loop::new().unwrap();
    let (ours, peer) = unix_pair();
    let mut peer = Peer::new(peer, Role::Client);
    let first = peer.frame(OpCode::Text, b"from the handshake");
    peer.send_msg(OpCode::Text, b"from the socket");
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    let ws = Server::new(
        Params::new(ours)
            .event_loop(&lp)
            .initial_data(first)
            .on_msg_recv(move |_ws, _, _, msg, _| g.borrow_mut().push(msg.to_vec())),
    )
    .unwrap();
    assert!(got.borrow().is_empty(), "delivered from inside new()");
    run_until(&lp, "two messages", || got.borrow().len() == 2);
    assert_eq!(
        *got.borrow(),
        [b"from the handshake".to_vec(), b"from the socket".to_vec()]
    );
    net_websocket_ev::websocket::abort_all(ws.event_loop()); // end the still-open connection with the test
}

#[test]
fn initial_data_alone_is_delivered() {
    let lp = Loop::new().unwrap();
    let (ours, peer) = unix_pair();
    let mut peer = Peer::new(peer, Role::Client);
    let mut wire = peer.frame(OpCode::Text, b"a");
    wire.extend(peer.frame(OpCode::Ping, b"b"));
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    let ws = Server::new(
        Params::new(ours)
            .event_loop(&lp)
            .initial_data(wire)
            .on_msg_recv(move |_ws, _, op, msg, _| g.borrow_mut().push((op, msg.to_vec()))),
    )
    .unwrap();
    run_until(&lp, "two messages and the pong", || {
        peer.pump();
        got.borrow().len() == 2 && !peer.msgs().is_empty()
    });
    assert_eq!(
        *got.borrow(),
        [(OpCode::Text, b"a".to_vec()), (OpCode::Ping, b"b".to_vec())]
    );
    assert_eq!(peer.msgs(), [(OpCode::Pong, b"b".to_vec())]);
    net_websocket_ev::websocket::abort_all(ws.event_loop()); // end the still-open connection with the test
}

/// A violation followed by more bytes: the peer must get close 1002 intact, then a
/// clean end of stream (not a reset that could destroy the close frame).
fn violation_gets_1002_before_tcp_close(bad: Vec<u8>) {
    let lp = Loop::new().unwrap();
    let (ours, peer) = tcp_pair();
    let closes = Rc::new(RefCell::new(Vec::new()));
    let c = closes.clone();
    let _ws = Server::new(
        Params::new(ours)
            .event_loop(&lp)
            .close_timeout(Some(Duration::from_secs_f64(0.2)))
            .on_close(move |_ws, code| c.borrow_mut().push(code)),
    )
    .unwrap();
    let mut peer = Peer::new(peer, Role::Client);
    let mut wire = bad;
    wire.extend(std::iter::repeat(0x42).take(2000));
    peer.send_raw(&wire);
    run_until(&lp, "fd closed after close 1002", || {
        peer.pump();
        (peer.eof || peer.error.is_some()) && !closes.borrow().is_empty()
    });
    assert_eq!(
        peer.error, None,
        "connection reset instead of a clean close"
    );
    assert!(peer.close_received(), "no close frame before the TCP close");
    assert_eq!(peer.close_code(), 1002);
    assert_eq!(*closes.borrow(), [1006]);
}

#[test]
fn unmasked_frame_from_client_is_a_protocol_error() {
    violation_gets_1002_before_tcp_close(vec![0x81, 0x02, b'h', b'i']);
}

#[test]
fn control_frame_over_125_bytes_is_a_protocol_error() {
    violation_gets_1002_before_tcp_close(masked_frame(true, 9, &[0; 126]));
}

#[test]
fn fragmented_control_frame_is_a_protocol_error() {
    violation_gets_1002_before_tcp_close(masked_frame(false, 9, b"x"));
}

#[test]
fn reserved_opcode_is_a_protocol_error() {
    violation_gets_1002_before_tcp_close(masked_frame(true, 3, b"x"));
}

#[test]
fn invalid_utf8_text_is_1007() {
    let mut s = server(|p| p);
    s.peer.send_raw(&masked_frame(true, 1, &[b'o', b'k', 0xff]));
    s.until("close", |p, _| p.close_received());
    assert_eq!(s.peer.close_code(), 1007);
    assert!(s.log.borrow().msgs.is_empty());
}

#[test]
fn client_masks_every_frame_with_genmask() {
    let lp = Loop::new().unwrap();
    let (ours, peer) = unix_pair();
    // genmask is Send: its state is shared through an Arc.
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let c = calls.clone();
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    let ws = Client::new(
        Params::new(ours)
            .event_loop(&lp)
            .genmask(move |key| {
                c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                *key = [1, 2, 3, 4];
            })
            .on_msg_recv(move |_ws, _, op, msg, _| g.borrow_mut().push((op, msg.to_vec()))),
    )
    .unwrap();
    assert_eq!(ws.role(), Role::Client);
    ws.queue_text("hi").unwrap();
    ws.queue_binary(b"xyz").unwrap();
    let mut peer = Peer::new(peer, Role::Server);
    run_until(&lp, "two messages at the server", || {
        peer.pump();
        peer.msgs().len() == 2
    });
    assert_eq!(
        peer.msgs(),
        [
            (OpCode::Text, b"hi".to_vec()),
            (OpCode::Binary, b"xyz".to_vec())
        ]
    );
    // First frame: FIN|text, MASK|2, key 1 2 3 4, payload masked with it.
    assert_eq!(
        &peer.raw[..8],
        &[0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2]
    );
    assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 2);
    // The client accepts the server's unmasked frames.
    peer.send_msg(OpCode::Text, b"back");
    run_until(&lp, "reply at the client", || !got.borrow().is_empty());
    assert_eq!(*got.borrow(), [(OpCode::Text, b"back".to_vec())]);
    net_websocket_ev::websocket::abort_all(ws.event_loop()); // end the still-open connection with the test
}

#[test]
fn client_refuses_masked_frames_with_1002() {
    let lp = Loop::new().unwrap();
    let (ours, peer) = unix_pair();
    let _ws = Client::new(Params::new(ours).event_loop(&lp)).unwrap();
    let mut peer = Peer::new(peer, Role::Server);
    peer.send_raw(&masked_frame(true, 1, b"masked"));
    run_until(&lp, "close", || {
        peer.pump();
        peer.close_received()
    });
    assert_eq!(peer.close_code(), 1002);
    // The close a client sends is masked too.
    assert_eq!(peer.raw[0], 0x88);
    assert_eq!(peer.raw[1] & 0x80, 0x80);
}

#[test]
fn queue_msg_refuses_bad_input() {
    let s = server(|p| p);
    assert!(s.ws.queue_msg(b"x", OpCode::Continuation).is_err());
    assert!(s.ws.queue_msg(b"x", OpCode::Close).is_err());
    assert!(s.ws.queue_msg(&[0xff], OpCode::Text).is_err());
    assert!(s.ws.queue_msg(&[0; 126], OpCode::Ping).is_err());
    assert_eq!(s.ws.queued_count().unwrap(), 0);
    s.ws.queue_msg(&[0; 125], OpCode::Ping).unwrap();
    s.ws.queue_msg(b"", OpCode::Pong).unwrap();
    assert_eq!(s.ws.queued_count().unwrap(), 2);
}

#[test]
fn queue_high_water_mark() {
    let s = server(|p| p.max_queued_bytes(100));
    s.ws.stop_write().unwrap();
    s.ws.queue_binary(&[0; 80]).unwrap();
    let err = s.ws.queue_binary(&[0; 80]).unwrap_err();
    assert!(matches!(err, net_websocket_ev::Error::Queue(_)), "{err:?}");
    assert_eq!(s.ws.queued_count().unwrap(), 1);
}

#[test]
fn a_panicking_genmask_costs_one_mask_and_leaves_the_connection_whole() {
    let lp = Loop::new().unwrap();
    let (ours, peer) = unix_pair();
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let c = calls.clone();
    let ws = Client::new(Params::new(ours).event_loop(&lp).genmask(move |key| {
        if c.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1 == 2 {
            panic!("genmask failed");
        }
        *key = [1, 2, 3, 4];
    }))
    .unwrap();
    for msg in [&b"one"[..], b"two", b"six"] {
        ws.queue_binary(msg).unwrap();
    }
    let mut peer = Peer::new(peer, Role::Server);
    let raised = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_until(&lp, "three messages at the server", || {
            peer.pump();
            peer.msgs().len() == 3
        })
    }));
    let payload = raised.expect_err("the panic comes out of the loop's run");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"genmask failed"));
    // The connection goes on: everything queued arrives, in order, masked.
    run_until(&lp, "three messages at the server", || {
        peer.pump();
        peer.msgs().len() == 3
    });
    let expected: Vec<(OpCode, Vec<u8>)> = [b"one", b"two", b"six"]
        .iter()
        .map(|m| (OpCode::Binary, m.to_vec()))
        .collect();
    assert_eq!(peer.msgs(), expected);
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::Relaxed),
        3,
        "one call per frame, the failed one included"
    );
    ws.queue_text("after").unwrap();
    run_until(&lp, "a fourth message", || {
        peer.pump();
        peer.msgs().len() == 4
    });
    net_websocket_ev::websocket::abort_all(ws.event_loop());
}
