//! Hostile peers that stall rather than lie, over real loopback sockets: a close then
//! holding the connection, never answering our close, never reading while we send, a
//! ping flood that never reads the pongs, and silence (idle timeout, keepalive). Each
//! is bounded in time or memory by a limit, while a well-behaved client on the same
//! loop keeps getting its echoes.
//!
//! Nothing here bets on the machine's speed: times are only checked from below (a
//! timeout never fires early), work is bounded by counts, and the arena's small socket
//! buffers make the bytes in flight before a stalled peer blocks few and fixed. When a
//! timeout must be outrun (a live peer's pong before the idle timeout), the margin is
//! many times the period.
#![cfg(feature = "ev")]

#[path = "util/arena.rs"]
mod arena;
mod util;

use std::time::Duration;

use arena::{port_of, Arena, Outbox};
use net_websocket_ev::proto::Error as ProtoError;
use net_websocket_ev::{Error, OpCode, WebSocket};
use util::{masked_frame, LoopClock};

/// The memory a server-side send queue holds, as the read backpressure counts it.
fn backlog(ws: &WebSocket) -> usize {
    ws.queued_bytes().unwrap() + ws.queued_count().unwrap() * 128
}

#[test]
fn a_peer_that_closes_then_holds_the_connection_is_let_go_at_once() {
    // No close timeout: nothing but letting go at once can end the connection (holding
    // it would be waiting forever, and the wait fails at the deadline).
    let arena = Arena::with_params(|p| p.close_timeout(None));
    let mut good = arena.good_client();
    let mut bad = arena.upgraded();
    let port = port_of(&bad.sock);
    bad.close(Some(1000), "bye");
    // The bad peer neither reads nor closes from now on.
    arena.run_until("on_close", Some(&mut good), || {
        arena.close_of(port).is_some()
    });
    assert_eq!(arena.close_of(port), Some(1000));
    bad.pump();
    assert!(bad.close_received() && bad.eof);
    assert_eq!(bad.close_code(), 1000, "our echo of its close");
    arena.assert_serving(&mut good);
}

#[test]
fn a_peer_that_never_answers_our_close_is_dropped_at_the_close_timeout() {
    let arena = Arena::with_params(|p| p.close_timeout(Some(Duration::from_secs_f64(0.3))));
    let mut good = arena.good_client();
    let bad = arena.upgraded();
    let port = port_of(&bad.sock);
    let start = LoopClock::start(&arena.lp);
    arena.conn(port).close(Some(1001), "going away").unwrap();
    arena.run_until("on_close", Some(&mut good), || {
        arena.close_of(port).is_some()
    });
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(290), "{took:?}");
    assert_eq!(arena.close_of(port), Some(1006));
    arena.assert_serving(&mut good);
}

#[test]
fn a_peer_that_never_reads_is_bounded_by_the_high_water_mark() {
    const MARK: usize = 256 * 1024;
    let arena = Arena::with_params(|p| {
        p.max_queued_bytes(MARK)
            .close_timeout(Some(Duration::from_secs_f64(0.3)))
    });
    let mut good = arena.good_client();
    let bad = arena.upgraded();
    let port = port_of(&bad.sock);
    let ws = arena.conn(port);
    let chunk = vec![3u8; 16 * 1024];
    let mut peak = 0;
    let mut full = None;
    arena.run_until("the queue full", Some(&mut good), || {
        match ws.queue_binary(&chunk) {
            Ok(()) => {}
            Err(err) => full = Some(err),
        }
        peak = peak.max(ws.queued_bytes().unwrap());
        full.is_some()
    });
    assert!(
        matches!(
            full,
            Some(Error::Queue(ProtoError::QueueFull { limit: MARK, .. }))
        ),
        "{full:?}"
    );
    assert!(peak <= MARK, "{peak} bytes queued");
    // Giving up on it: the close waits behind the data, the close timeout ends it.
    ws.close(Some(1008), "not reading").unwrap();
    arena.run_until("on_close", Some(&mut good), || {
        arena.close_of(port).is_some()
    });
    assert_eq!(arena.close_of(port), Some(1006));
    drop(bad);
    arena.assert_serving(&mut good);
}

#[test]
fn a_ping_flood_that_never_reads_the_pongs_is_bounded_then_fully_answered() {
    const MARK: usize = 64 * 1024;
    // Each ping's pong costs the server 255 bytes of backlog: the mark is reached
    // after ~260 pings, and the small socket buffers hold a few hundred more. Many
    // times that is a flood the server must stop reading well before its end.
    const MAX_PINGS: u32 = 20_000;
    let arena = Arena::with_params(|p| p.max_queued_bytes(MARK));
    let mut good = arena.good_client();
    let mut bad = arena.upgraded();
    let port = port_of(&bad.sock);
    let ws = arena.conn(port);
    let mut payload = [b'p'; 125];
    let mut out = Outbox::default();
    let mut pings = 0u32;
    let mut peak = 0;
    // Ping without reading until the server stops reading us: its backlog is over the
    // mark after its turn of the loop (so it has paused its reading, and its socket
    // is full: it cannot drain) and our writes block. Or until every ping went out.
    arena.run_until("the flood stopped by backpressure", Some(&mut good), || {
        while out.pending() < 4 * 1024 && pings < MAX_PINGS {
            payload[..4].copy_from_slice(&pings.to_be_bytes());
            out.push(&masked_frame(true, 9, &payload));
            pings += 1;
        }
        let blocked = !out.flush(&mut bad.sock);
        let backlog = backlog(&ws);
        peak = peak.max(backlog);
        (blocked && backlog > MARK) || (!blocked && pings == MAX_PINGS)
    });
    assert!(peak <= MARK + 512, "backlog peaked at {peak} bytes");
    assert!(
        peak > MARK / 2,
        "the backpressure was never reached ({peak})"
    );
    assert!(
        out.pending() > 0,
        "the server read all {pings} pings: the flood was never stopped"
    );
    // Now the peer reads: every ping it got out is answered, in order.
    let mut sent = pings - (out.pending() / 131) as u32;
    arena.run_until("every pong", Some(&mut good), || {
        out.flush(&mut bad.sock);
        sent = pings - (out.pending() / 131) as u32;
        bad.pump();
        let pongs = bad
            .seen
            .iter()
            .filter(|s| matches!(s, util::Seen::Msg(OpCode::Pong, _)))
            .count();
        out.pending() == 0 && pongs == sent as usize
    });
    let mut next = 0u32;
    for (op, data) in bad.msgs() {
        assert_eq!(op, OpCode::Pong);
        assert_eq!(data[..4], next.to_be_bytes());
        next += 1;
    }
    assert_eq!(next, pings);
    assert_eq!(arena.close_of(port), None);
    arena.assert_serving(&mut good);
}

#[test]
fn a_silent_peer_is_closed_with_1001_at_the_idle_timeout() {
    let arena = Arena::with_params(|p| {
        p.idle_timeout(Some(Duration::from_secs_f64(0.3)))
            .close_timeout(Some(Duration::from_secs_f64(0.3)))
    });
    let mut good = arena.good_client();
    // Before the connection exists: its idle clock starts later.
    let start = LoopClock::start(&arena.lp);
    let mut bad = arena.upgraded();
    let port = port_of(&bad.sock);
    arena.run_until("the idle close", Some(&mut good), || {
        bad.pump();
        bad.close_received()
    });
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(290), "{took:?}");
    assert_eq!(bad.close_code(), 1001);
    assert!(bad.raw.ends_with(b"idle timeout"));
    // It stays silent: the close timeout ends it.
    arena.run_until("on_close", Some(&mut good), || {
        arena.close_of(port).is_some()
    });
    assert_eq!(arena.close_of(port), Some(1006));
    assert!(start.elapsed() >= Duration::from_millis(590));
    // The good client was never idle.
    arena.assert_serving(&mut good);
}

#[test]
fn an_idle_peer_that_answers_the_close_reports_its_code() {
    let arena = Arena::with_params(|p| p.idle_timeout(Some(Duration::from_secs_f64(0.2))));
    let mut good = arena.good_client();
    let mut bad = arena.upgraded();
    let port = port_of(&bad.sock);
    arena.run_until("on_close", Some(&mut good), || {
        bad.pump();
        bad.flush(); // the peer's engine echoes the close
        arena.close_of(port).is_some()
    });
    assert_eq!(arena.close_of(port), Some(1001));
    arena.assert_serving(&mut good);
}

#[test]
fn keepalive_pings_keep_a_live_peer_open_and_a_dead_one_is_closed() {
    // The live peer's pong must be back within IDLE - KEEPALIVE of the ping: 19
    // keepalive periods, a margin no loaded machine comes near.
    const KEEPALIVE: f64 = 0.05;
    const IDLE: f64 = 1.0;
    const CLOSE: f64 = 0.2;
    let arena = Arena::with_params(|p| {
        p.keepalive(Some(Duration::from_secs_f64(KEEPALIVE)))
            .idle_timeout(Some(Duration::from_secs_f64(IDLE)))
            .close_timeout(Some(Duration::from_secs_f64(CLOSE)))
    });
    let mut good = arena.good_client();
    let mut live = arena.upgraded();
    let start = LoopClock::start(&arena.lp);
    let mut dead = arena.upgraded();
    let (live_port, dead_port) = (port_of(&live.sock), port_of(&dead.sock));
    let pings_of = |peer: &util::Peer<std::net::TcpStream>| {
        peer.msgs()
            .iter()
            .filter(|(op, _)| *op == OpCode::Ping)
            .count()
    };
    arena.run_until("the dead peer's end", Some(&mut good), || {
        live.pump();
        live.flush(); // answers pings with pongs
        arena.close_of(dead_port).is_some()
    });
    let took = start.elapsed();
    assert!(took.as_secs_f64() >= IDLE + CLOSE - 0.001, "{took:?}");
    assert_eq!(arena.close_of(dead_port), Some(1006));
    // The live peer has been silent but for its pongs for longer than the idle
    // timeout; it stays open for more pings (counted, each after a silence).
    let before = pings_of(&live);
    arena.run_until("four more keepalive pings", Some(&mut good), || {
        live.pump();
        live.flush();
        pings_of(&live) >= before + 4 || live.close_received() || live.eof
    });
    assert_eq!(arena.close_of(live_port), None, "the live peer was closed");
    assert!(!live.close_received());
    let pings = pings_of(&live);
    assert!(pings >= 4, "{pings} keepalive pings");
    dead.pump();
    // One ping per keepalive period of silence before the idle close, at most.
    let dead_pings = pings_of(&dead);
    let most = (IDLE / KEEPALIVE) as usize + 1;
    assert!(
        (1..=most).contains(&dead_pings),
        "{dead_pings} pings before the idle close"
    );
    assert_eq!(dead.close_code(), 1001);
    // The good client never got a ping: it was never silent for 50 ms.
    arena.assert_serving(&mut good);
}

#[test]
fn idle_and_keepalive_are_off_by_default() {
    let arena = Arena::with_params(|p| p);
    let mut good = arena.good_client();
    let mut quiet = arena.upgraded();
    let port = port_of(&quiet.sock);
    arena.run_for(Duration::from_millis(300), Some(&mut good));
    quiet.pump();
    assert!(quiet.raw.is_empty(), "sent {:?}", quiet.raw);
    assert_eq!(arena.close_of(port), None);
    arena.assert_serving(&mut good);
}

#[test]
fn the_idle_clock_is_suspended_while_the_user_stopped_reading() {
    let arena = Arena::with_params(|p| {
        p.idle_timeout(Some(Duration::from_secs_f64(0.2)))
            .close_timeout(Some(Duration::from_secs_f64(0.2)))
    });
    let mut good = arena.good_client();
    let mut quiet = arena.upgraded();
    let port = port_of(&quiet.sock);
    let ws = arena.conn(port);
    ws.stop_read().unwrap();
    arena.run_for(Duration::from_millis(400), Some(&mut good));
    quiet.pump();
    assert!(!quiet.close_received(), "closed while reading was stopped");
    let start = LoopClock::start(&arena.lp);
    ws.start_read().unwrap();
    arena.run_until("the idle close", Some(&mut good), || {
        quiet.pump();
        quiet.close_received()
    });
    assert!(
        start.elapsed() >= Duration::from_millis(190),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(quiet.close_code(), 1001);
    arena.assert_serving(&mut good);
}
