//! Hostile frames after a valid handshake, over real loopback sockets: a frame that
//! declares 2^62 (and 2^63) bytes, a fragmented message just over the limit, invalid
//! UTF-8 split across fragments, random garbage, a reset in the middle of a frame,
//! 10,000 pings in a burst, and a message trickling a byte at a time. Each asserts
//! what the peer and the server see, while a well-behaved client on the same loop
//! keeps getting its echoes.
#![cfg(feature = "ev")]

#[path = "util/arena.rs"]
mod arena;
mod util;

use std::cell::Cell;
use std::net::Shutdown;
use std::rc::Rc;
use std::time::{Duration, Instant};

use arena::{garbage, port_of, Arena, Outbox};
use net_websocket_ev::OpCode;
use util::{masked_frame, LoopClock};

const LIMIT: usize = 1 << 20; // the arena's max_recv_size

/// A masked frame header declaring `len` bytes (64-bit length form), with its key.
fn huge_header(opcode: u8, len: u64) -> Vec<u8> {
    let mut out = vec![0x80 | opcode, 0x80 | 127];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&[1, 2, 3, 4]);
    out
}

/// Sends `bytes` and runs until the server has closed the bad peer's socket.
fn send_and_wait_close(
    arena: &Arena,
    good: &mut arena::Good,
    bad: &mut util::Peer<std::net::TcpStream>,
    bytes: &[u8],
) {
    let mut out = Outbox::default();
    out.push(bytes);
    arena.run_until("the bad peer's socket closed", Some(good), || {
        out.flush(&mut bad.sock);
        bad.pump();
        bad.eof || bad.error.is_some()
    });
}

fn declared_length_is_refused(
    tweak: fn(net_websocket_ev::Params) -> net_websocket_ev::Params,
    len: u64,
    code: u16,
) {
    let arena = Arena::with_params(tweak);
    let mut good = arena.good_client();
    let mut bad = arena.upgraded();
    let port = port_of(&bad.sock);
    let mut wire = huge_header(2, len);
    wire.extend_from_slice(&[0u8; 1000]);
    send_and_wait_close(&arena, &mut good, &mut bad, &wire);
    assert!(
        bad.close_received(),
        "no close frame before the socket closed"
    );
    assert_eq!(bad.close_code(), code);
    arena.run_until("on_close", Some(&mut good), || {
        arena.close_of(port).is_some()
    });
    assert_eq!(
        arena.close_of(port),
        Some(1006),
        "the bad peer sent no close"
    );
    assert_eq!(arena.seen.borrow().messages.get(&port), None);
    arena.assert_serving(&mut good);
}

#[test]
fn a_frame_declaring_2_pow_62_bytes_is_refused_with_1009() {
    declared_length_is_refused(|p| p, 1 << 62, 1009);
}

#[test]
fn a_frame_declaring_2_pow_62_bytes_is_refused_under_the_perl_default_limit_too() {
    declared_length_is_refused(|p| p.max_recv_size((1 << 31) - 1), 1 << 62, 1009);
}

#[test]
fn a_frame_length_with_the_top_bit_set_is_a_protocol_error() {
    declared_length_is_refused(|p| p.max_recv_size(u64::MAX), 1 << 63, 1002);
}

#[test]
fn a_fragmented_message_just_over_the_limit_is_refused_with_1009() {
    let arena = Arena::with_params(|p| p);
    let mut good = arena.good_client();
    let mut bad = arena.upgraded();
    let port = port_of(&bad.sock);
    let piece = vec![7u8; LIMIT / 4];
    // Exactly at the limit: accepted and echoed.
    let mut out = Outbox::default();
    out.push(&masked_frame(false, 2, &piece));
    for _ in 0..2 {
        out.push(&masked_frame(false, 0, &piece));
    }
    out.push(&masked_frame(true, 0, &piece));
    arena.run_until("the 1 MiB echo", Some(&mut good), || {
        out.flush(&mut bad.sock);
        bad.pump();
        !bad.data_msgs().is_empty()
    });
    assert_eq!(bad.data_msgs()[0].1.len(), LIMIT);
    // One byte more, in the last fragment: 1009.
    let mut wire = masked_frame(false, 2, &piece);
    for _ in 0..3 {
        wire.extend(masked_frame(false, 0, &piece));
    }
    wire.extend(masked_frame(true, 0, b"!"));
    send_and_wait_close(&arena, &mut good, &mut bad, &wire);
    assert_eq!(bad.close_code(), 1009);
    assert_eq!(
        bad.data_msgs().len(),
        1,
        "the oversized message was not echoed"
    );
    arena.run_until("on_close", Some(&mut good), || {
        arena.close_of(port).is_some()
    });
    assert_eq!(arena.seen.borrow().messages[&port], 1);
    arena.assert_serving(&mut good);
}

#[test]
fn invalid_utf8_split_across_fragments_is_refused_with_1007() {
    let arena = Arena::with_params(|p| p);
    let mut good = arena.good_client();
    let mut bad = arena.upgraded();
    let port = port_of(&bad.sock);
    // A valid character split across fragments passes...
    let mut out = Outbox::default();
    out.push(&masked_frame(false, 1, b"caf\xc3"));
    out.push(&masked_frame(true, 0, b"\xa9"));
    arena.run_until("the split character echoed", Some(&mut good), || {
        out.flush(&mut bad.sock);
        bad.pump();
        !bad.data_msgs().is_empty()
    });
    assert_eq!(
        bad.data_msgs()[0],
        (OpCode::Text, "café".as_bytes().to_vec())
    );
    // ...a lead byte whose continuation is wrong, one fragment later, does not.
    let mut wire = masked_frame(false, 1, b"caf\xc3");
    wire.extend(masked_frame(false, 0, b"\x28 and more"));
    wire.extend(masked_frame(true, 0, b"end"));
    send_and_wait_close(&arena, &mut good, &mut bad, &wire);
    assert_eq!(bad.close_code(), 1007);
    assert_eq!(bad.data_msgs().len(), 1);
    arena.run_until("on_close", Some(&mut good), || {
        arena.close_of(port).is_some()
    });
    arena.assert_serving(&mut good);
}

#[test]
fn random_garbage_after_a_valid_handshake_ends_every_connection_cleanly() {
    let arena = Arena::with_params(|p| p);
    let mut good = arena.good_client();
    let mut bads: Vec<_> = (0..16).map(|_| arena.upgraded()).collect();
    let mut outs: Vec<Outbox> = (0..bads.len())
        .map(|i| {
            let mut out = Outbox::default();
            out.push(&garbage(i as u64 + 1, 16 * 1024));
            out
        })
        .collect();
    arena.run_until("garbage sent", Some(&mut good), || {
        let mut all = true;
        for (bad, out) in bads.iter_mut().zip(&mut outs) {
            all &= out.flush(&mut bad.sock) || out.broken;
            bad.pump();
        }
        all
    });
    // A frame the garbage happened to begin may wait for more: end the input.
    for bad in &bads {
        let _ = bad.sock.shutdown(Shutdown::Write);
    }
    arena.run_until("every garbage connection over", Some(&mut good), || {
        for bad in &mut bads {
            bad.pump();
        }
        bads.iter()
            .all(|bad| arena.close_of(port_of(&bad.sock)).is_some())
    });
    let mut refused = 0;
    for bad in &bads {
        if bad.close_received() {
            refused += 1;
            assert!(
                [1002, 1007, 1009].contains(&bad.close_code()),
                "close {}",
                bad.close_code()
            );
        }
    }
    assert!(
        refused >= bads.len() / 2,
        "only {refused} got a close frame"
    );
    arena.assert_serving(&mut good);
}

#[test]
fn a_reset_in_the_middle_of_a_frame_is_1006_and_nothing_delivered() {
    // The server reports when the bad peer's binary frame has begun (the good client
    // sends text only).
    let begun = Rc::new(Cell::new(false));
    let b = begun.clone();
    let arena = Arena::with_params(move |p| {
        let b = b.clone();
        p.on_frame_recv_start(move |_, _, _, op, _| {
            if op == OpCode::Binary {
                b.set(true);
            }
        })
    });
    let mut good = arena.good_client();
    let mut bad = arena.upgraded();
    let port = port_of(&bad.sock);
    // A pong left unread in the bad peer's socket makes its close a reset.
    bad.send_msg(OpCode::Ping, b"unread");
    arena.run_until("the pong in the bad peer's socket", Some(&mut good), || {
        bad.sock.peek(&mut [0u8; 1]).is_ok_and(|n| n > 0)
    });
    assert_eq!(arena.seen.borrow().messages.get(&port), Some(&1));
    let wire = masked_frame(true, 2, &[5u8; 100]);
    bad.send_raw(&wire[..60]);
    arena.run_until("the frame begun", Some(&mut good), || begun.get());
    drop(bad);
    arena.run_until("on_close", Some(&mut good), || {
        arena.close_of(port).is_some()
    });
    assert_eq!(arena.close_of(port), Some(1006));
    assert_eq!(
        arena.seen.borrow().messages[&port],
        1,
        "half a frame delivered"
    );
    arena.assert_serving(&mut good);
}

#[test]
fn ten_thousand_pings_in_a_burst_are_all_answered_in_order() {
    let arena = Arena::with_params(|p| p);
    let mut good = arena.good_client();
    let mut bad = arena.upgraded();
    let port = port_of(&bad.sock);
    const PINGS: u32 = 10_000;
    let mut out = Outbox::default();
    for i in 0..PINGS {
        out.push(&masked_frame(true, 9, &i.to_be_bytes()));
    }
    arena.run_until("10,000 pongs", Some(&mut good), || {
        out.flush(&mut bad.sock);
        bad.pump();
        bad.msgs().len() >= PINGS as usize
    });
    let pongs = bad.msgs();
    assert_eq!(pongs.len(), PINGS as usize);
    for (i, (op, payload)) in pongs.iter().enumerate() {
        assert_eq!(*op, OpCode::Pong);
        assert_eq!(payload[..], (i as u32).to_be_bytes());
    }
    assert_eq!(arena.seen.borrow().messages[&port], PINGS as usize);
    assert_eq!(arena.close_of(port), None);
    arena.assert_serving(&mut good);
}

#[test]
fn a_message_trickling_a_byte_at_a_time_is_cut_at_the_message_timeout() {
    // 1 MiB declared, then a byte every 50 ms: each byte is "received" (an idle
    // timeout would never fire), and the message timeout (scaled down from
    // seconds to 0.3 s) ends it.
    const TIMEOUT: Duration = Duration::from_millis(300);
    let arena = Arena::with_params(|p| p.message_timeout(Some(TIMEOUT)));
    let mut good = arena.good_client();
    let mut bad = arena.upgraded();
    let port = port_of(&bad.sock);
    let clock = LoopClock::start(&arena.lp);
    let start = Instant::now();
    let mut wire = huge_header(2, LIMIT as u64);
    wire.resize(wire.len() + 1000, 0x55);
    let head = huge_header(2, LIMIT as u64).len();
    let mut sent = 0;
    arena.run_until("the server's close", Some(&mut good), || {
        let due = head + (start.elapsed().as_millis() / 50) as usize;
        while sent < due.min(wire.len()) && !bad.close_received() {
            bad.send_raw(&wire[sent..=sent]);
            sent += 1;
        }
        bad.pump();
        bad.close_received()
    });
    assert!(
        clock.elapsed() >= TIMEOUT,
        "cut after {:?}",
        clock.elapsed()
    );
    assert!(sent < wire.len(), "the whole trickle went out");
    assert_eq!(bad.close_code(), 1008);
    arena.run_until("on_close", Some(&mut good), || {
        arena.close_of(port).is_some()
    });
    assert_eq!(arena.close_of(port), Some(1006));
    assert_eq!(
        arena.conn(port).close_cause(),
        Some(net_websocket_ev::CloseCause::MessageTimeout)
    );
    assert_eq!(arena.seen.borrow().messages.get(&port), None);
    // The good client's messages arrive in time, connection after connection
    // lifetime: it is never cut.
    arena.assert_serving(&mut good);
}
