//! Hostile peers that stall rather than lie, over real loopback sockets: a close then
//! holding the connection, never answering our close, never reading while we send, a
//! ping flood that never reads the pongs, and silence (idle timeout, keepalive). Each
//! is bounded in time or memory by a limit, while a well-behaved client on the same
//! loop keeps getting its echoes.

#[path = "util/arena.rs"]
mod arena;
mod util;

use std::time::{Duration, Instant};

use arena::{port_of, Arena, Outbox};
use net_websocket_ev::proto::Error as ProtoError;
use net_websocket_ev::{Error, OpCode, WebSocket};
use util::masked_frame;

/// The memory a server-side send queue holds, as the read backpressure counts it.
fn backlog(ws: &WebSocket) -> usize {
    ws.queued_bytes().unwrap() + ws.queued_count().unwrap() * 128
}

#[test]
fn a_peer_that_closes_then_holds_the_connection_is_let_go_at_once() {
    let arena = Arena::with_params(|p| p.close_timeout(Some(5.0)));
    let mut good = arena.good_client();
    let mut bad = arena.upgraded();
    let port = port_of(&bad.sock);
    bad.close(Some(1000), "bye");
    // The bad peer neither reads nor closes from now on.
    let start = Instant::now();
    arena.run_until("on_close", Some(&mut good), || {
        arena.close_of(port).is_some()
    });
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "held for {:?}",
        start.elapsed()
    );
    assert_eq!(arena.close_of(port), Some(1000));
    bad.pump();
    assert!(bad.close_received() && bad.eof);
    assert_eq!(bad.close_code(), 1000, "our echo of its close");
    arena.assert_serving(&mut good);
}

#[test]
fn a_peer_that_never_answers_our_close_is_dropped_at_the_close_timeout() {
    let arena = Arena::with_params(|p| p.close_timeout(Some(0.3)));
    let mut good = arena.good_client();
    let bad = arena.upgraded();
    let port = port_of(&bad.sock);
    arena.conn(port).close(Some(1001), "going away").unwrap();
    let start = Instant::now();
    arena.run_until("on_close", Some(&mut good), || {
        arena.close_of(port).is_some()
    });
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert_eq!(arena.close_of(port), Some(1006));
    arena.assert_serving(&mut good);
}

#[test]
fn a_peer_that_never_reads_is_bounded_by_the_high_water_mark() {
    const MARK: usize = 256 * 1024;
    let arena = Arena::with_params(|p| p.max_queued_bytes(MARK).close_timeout(Some(0.3)));
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
    let arena = Arena::with_params(|p| p.max_queued_bytes(MARK));
    let mut good = arena.good_client();
    let mut bad = arena.upgraded();
    let port = port_of(&bad.sock);
    let ws = arena.conn(port);
    let mut payload = [b'p'; 125];
    let mut out = Outbox::default();
    let mut pings = 0u32;
    let mut peak = 0;
    let mut blocked_since: Option<Instant> = None;
    // Ping without reading until the writes have been blocked for 200 ms: the
    // server has stopped reading us, not died.
    arena.run_until("the flood stopped by backpressure", Some(&mut good), || {
        while out.pending() < 64 * 1024 && pings < 2_000_000 {
            payload[..4].copy_from_slice(&pings.to_be_bytes());
            out.push(&masked_frame(true, 9, &payload));
            pings += 1;
        }
        let before = out.pending();
        out.flush(&mut bad.sock);
        peak = peak.max(backlog(&ws));
        if out.pending() < before {
            blocked_since = None;
        } else if blocked_since.is_none() {
            blocked_since = Some(Instant::now());
        }
        blocked_since.is_some_and(|t| t.elapsed() > Duration::from_millis(200))
    });
    assert!(peak <= MARK + 512, "backlog peaked at {peak} bytes");
    assert!(
        peak > MARK / 2,
        "the backpressure was never reached ({peak})"
    );
    assert!(pings < 2_000_000, "the server read everything");
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
    let arena = Arena::with_params(|p| p.idle_timeout(Some(0.3)).close_timeout(Some(0.3)));
    let mut good = arena.good_client();
    let mut bad = arena.upgraded();
    let port = port_of(&bad.sock);
    let start = Instant::now();
    arena.run_until("the idle close", Some(&mut good), || {
        bad.pump();
        bad.close_received()
    });
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_secs(1),
        "{took:?}"
    );
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
    let arena = Arena::with_params(|p| p.idle_timeout(Some(0.2)));
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
    let arena = Arena::with_params(|p| {
        p.keepalive(Some(0.05))
            .idle_timeout(Some(0.3))
            .close_timeout(Some(0.2))
    });
    let mut good = arena.good_client();
    let mut live = arena.upgraded();
    let mut dead = arena.upgraded();
    let (live_port, dead_port) = (port_of(&live.sock), port_of(&dead.sock));
    let start = Instant::now();
    arena.run_until("the dead peer's end", Some(&mut good), || {
        live.pump();
        live.flush(); // answers pings with pongs
        arena.close_of(dead_port).is_some()
    });
    assert!(
        start.elapsed() >= Duration::from_millis(490),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(arena.close_of(dead_port), Some(1006));
    let more = Instant::now();
    arena.run_until("more time", Some(&mut good), || {
        live.pump();
        live.flush();
        more.elapsed() > Duration::from_millis(300)
    });
    assert_eq!(arena.close_of(live_port), None, "the live peer was closed");
    assert!(!live.close_received());
    let pings = live
        .msgs()
        .iter()
        .filter(|(op, _)| *op == OpCode::Ping)
        .count();
    assert!(pings >= 4, "{pings} keepalive pings in ~0.8 s");
    dead.pump();
    let dead_pings = dead
        .msgs()
        .iter()
        .filter(|(op, _)| *op == OpCode::Ping)
        .count();
    assert!(
        (2..=7).contains(&dead_pings),
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
    let arena = Arena::with_params(|p| p.idle_timeout(Some(0.2)).close_timeout(Some(0.2)));
    let mut good = arena.good_client();
    let mut quiet = arena.upgraded();
    let port = port_of(&quiet.sock);
    let ws = arena.conn(port);
    ws.stop_read().unwrap();
    arena.run_for(Duration::from_millis(400), Some(&mut good));
    quiet.pump();
    assert!(!quiet.close_received(), "closed while reading was stopped");
    ws.start_read().unwrap();
    let start = Instant::now();
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
