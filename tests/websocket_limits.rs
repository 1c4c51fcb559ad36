//! The limits a server on the open internet wants, on a real socket pair and a
//! real loop: a message that trickles is cut at the message timeout (a control
//! frame between its fragments neither restarts nor trips it; messages that
//! arrive in time are unaffected, however long the connection lives), and a
//! message in too many fragments is refused with 1009.
#![cfg(feature = "ev")]

mod util;

use std::time::Duration;

use net_websocket_ev::proto::ProtocolError;
use net_websocket_ev::{CloseCause, OpCode};
use util::{masked_frame, server, LoopClock};

/// The start of a masked binary frame declaring `len` bytes, with `sent` bytes
/// of its payload.
fn declared(len: u64, sent: usize) -> Vec<u8> {
    let mut out = vec![0x82, 0x80 | 127];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&[1, 2, 3, 4]);
    out.extend(std::iter::repeat(0x55).take(sent));
    out
}

fn pongs(peer: &util::Peer<std::os::unix::net::UnixStream>) -> usize {
    peer.msgs()
        .iter()
        .filter(|(op, _)| *op == OpCode::Pong)
        .count()
}

#[test]
fn a_trickling_message_is_cut_at_the_message_timeout_with_1008() {
    const TIMEOUT: Duration = Duration::from_millis(200);
    let mut s = server(|p| {
        p.message_timeout(Some(TIMEOUT))
            // Each byte is "received": the idle timeout never fires on a trickle.
            .idle_timeout(Some(Duration::from_secs(3600)))
    });
    let start = LoopClock::start(&s.lp);
    // 1 MiB declared (within max_recv_size), a few bytes sent, then nothing.
    s.peer.send_raw(&declared(1 << 20, 5));
    s.until("the server's close", |p, _| p.close_received());
    assert!(start.elapsed() >= TIMEOUT, "{:?}", start.elapsed());
    assert_eq!(s.peer.close_code(), 1008);
    // Reading is over: the connection ends without waiting for our close.
    s.until("on_close", |_, log| !log.closes.is_empty());
    assert_eq!(s.log.borrow().closes, [1006]);
    assert_eq!(s.ws.close_cause(), Some(CloseCause::MessageTimeout));
    assert!(s.log.borrow().msgs.is_empty());
    assert_eq!(s.ws.status_code_sent(), Some(1008));
}

#[test]
fn pings_between_the_fragments_neither_restart_nor_trip_the_message_timeout() {
    const TIMEOUT: Duration = Duration::from_millis(300);
    let mut s = server(|p| p.message_timeout(Some(TIMEOUT)));
    let start = LoopClock::start(&s.lp);
    s.peer.send_raw(&masked_frame(false, 2, b"first"));
    // A ping after each pong: were the clock restarted by control frames, the
    // message would never time out and this would run into the test deadline.
    s.peer.send_raw(&masked_frame(true, 9, b"p"));
    let mut answered = 0;
    s.until("the server's close", |p, _| {
        if pongs(p) > answered && !p.close_received() {
            answered = pongs(p);
            p.send_raw(&masked_frame(true, 9, b"p"));
        }
        p.close_received()
    });
    assert!(start.elapsed() >= TIMEOUT, "{:?}", start.elapsed());
    assert!(pongs(&s.peer) >= 1, "pings answered meanwhile");
    assert_eq!(s.peer.close_code(), 1008);
    s.until("on_close", |_, log| !log.closes.is_empty());
    assert_eq!(s.ws.close_cause(), Some(CloseCause::MessageTimeout));
    assert!(s.log.borrow().msgs.iter().all(|m| m.1 == OpCode::Ping));
}

#[test]
fn messages_that_arrive_in_time_are_unaffected_however_long_the_connection_lives() {
    // Each message takes one round trip; the connection lives three timeouts,
    // with a message in progress at the end of almost every read (the rest of
    // one and the start of the next come in one write): each message counts
    // from its own first byte.
    const TIMEOUT: Duration = Duration::from_secs(1);
    let mut s = server(|p| p.message_timeout(Some(TIMEOUT)));
    let start = LoopClock::start(&s.lp);
    s.peer.send_raw(&masked_frame(false, 1, b"m0-"));
    let mut sent = 0;
    while start.elapsed() < 3 * TIMEOUT {
        let mut bytes = masked_frame(true, 9, b"between");
        bytes.extend(masked_frame(true, 0, b"end"));
        bytes.extend(masked_frame(false, 1, format!("m{}-", sent + 1).as_bytes()));
        s.peer.send_raw(&bytes);
        sent += 1;
        s.until("the message", |p, log| {
            assert!(!p.close_received(), "closed after {sent} messages");
            log.msgs.iter().filter(|m| m.1 == OpCode::Text).count() == sent
        });
    }
    let texts: Vec<Vec<u8>> = s
        .log
        .borrow()
        .msgs
        .iter()
        .filter(|m| m.1 == OpCode::Text)
        .map(|m| m.2.clone())
        .collect();
    assert_eq!(texts.len(), sent);
    assert_eq!(texts[0], b"m0-end");
    assert_eq!(texts[sent - 1], format!("m{}-end", sent - 1).into_bytes());
    assert_eq!(s.ws.close_cause(), None);
    assert!(s.log.borrow().closes.is_empty());
}

#[test]
fn the_message_timeout_is_off_by_default() {
    let mut s = server(|p| p);
    s.peer.send_raw(&declared(1 << 20, 5));
    util::run_for(&s.lp, Duration::from_millis(300));
    s.peer.pump();
    assert!(s.peer.raw.is_empty(), "sent {:?}", s.peer.raw);
    assert_eq!(s.ws.close_cause(), None);
}

#[test]
fn a_stopped_reader_does_not_time_a_message_out() {
    const TIMEOUT: Duration = Duration::from_millis(200);
    let mut s = server(|p| p.message_timeout(Some(TIMEOUT)));
    s.peer.send_raw(&masked_frame(false, 2, b"first"));
    s.peer.send_raw(&masked_frame(true, 9, b"p"));
    s.until("the pong", |p, _| pongs(p) == 1);
    s.ws.stop_read().unwrap();
    util::run_for(&s.lp, 2 * TIMEOUT);
    s.peer.pump();
    assert!(!s.peer.close_received(), "closed while reading was stopped");
    // Resumed: the clock goes on, and the message that never ends is cut.
    s.ws.start_read().unwrap();
    s.until("the server's close", |p, _| p.close_received());
    assert_eq!(s.peer.close_code(), 1008);
}

#[test]
fn a_message_in_too_many_fragments_is_refused_with_1009() {
    let mut s = server(|p| p.max_fragments(Some(4)));
    // Four frames are fine, a ping between them is not counted.
    let mut bytes = masked_frame(false, 2, b"a");
    bytes.extend(masked_frame(true, 9, b"p"));
    for _ in 0..2 {
        bytes.extend(masked_frame(false, 0, b"b"));
    }
    bytes.extend(masked_frame(true, 0, b"c"));
    s.peer.send_raw(&bytes);
    s.until("the message", |_, log| {
        log.msgs.iter().any(|m| m.1 == OpCode::Binary)
    });
    assert_eq!(s.log.borrow().msgs.last().unwrap().2, b"abbc");
    // Five are not: refused from the fifth header, nothing of it delivered.
    let mut bytes = masked_frame(false, 2, b"a");
    for _ in 0..3 {
        bytes.extend(masked_frame(false, 0, b"b"));
    }
    bytes.extend(masked_frame(true, 0, b"c"));
    s.peer.send_raw(&bytes);
    s.until("the server's close", |p, _| p.close_received());
    assert_eq!(s.peer.close_code(), 1009);
    s.until("on_close", |_, log| !log.closes.is_empty());
    assert_eq!(
        s.ws.close_cause(),
        Some(CloseCause::ProtocolError(ProtocolError::TooManyFragments {
            limit: 4
        }))
    );
    let binaries = s
        .log
        .borrow()
        .msgs
        .iter()
        .filter(|m| m.1 == OpCode::Binary)
        .count();
    assert_eq!(binaries, 1);
}
