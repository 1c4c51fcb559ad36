//! wss:// flow control and time over TLS, our client against our server on one loop
//! (see `util::tls`): `stop_write`/`start_write`, `wait` and `wait_blocking` (which
//! mean that everything left the TLS session too), the close timeout (a peer that
//! stops answering or reading, and records leaving rustls's buffer counting as
//! progress), keepalive and the idle timeout, and backpressure with a peer that does
//! not read. The data path over TLS is in `websocket_tls.rs`.
#![cfg(feature = "tls")]

mod util;

use std::cell::Cell;
use std::io::Read;
use std::rc::Rc;
use std::time::Duration;

use net_websocket_ev::ev::Loop;
use net_websocket_ev::{websocket, Client, CloseCause, Error, OpCode, Server, Waited};
use util::tls::{close_both, echo_pair, pattern, tls_pair, Seen, TestPki};
use util::{run_for, run_until, LoopClock};

#[test]
fn stop_write_then_start_write() {
    let lp = Loop::new().unwrap();
    let pki = TestPki::new();
    let ends = tls_pair(&lp, &pki, false);
    let echoed = Rc::new(Cell::new(0usize));
    let e = echoed.clone();
    let (server, client, server_seen, client_seen) = echo_pair(
        &lp,
        ends,
        move |p| {
            p.on_msg_recv(move |ws, _, op, msg, _| {
                ws.queue_msg(msg, op).unwrap();
                e.set(e.get() + 1);
            })
        },
        |p| p,
    );
    server.stop_write().unwrap();
    for seed in 0..3 {
        client
            .queue_msg(&pattern(seed, 100_000), OpCode::Binary)
            .unwrap();
    }
    run_until(&lp, "the server got all", || echoed.get() == 3);
    run_for(&lp, Duration::from_millis(100));
    assert_eq!(client_seen.count(), 0, "a stopped writer sent");
    assert_eq!(server.queued_count().unwrap(), 3);
    server.start_write().unwrap();
    run_until(&lp, "the echoes", || client_seen.count() == 3);
    for (seed, (_, msg)) in client_seen.msgs.borrow().iter().enumerate() {
        assert!(*msg == pattern(seed, 100_000));
    }
    close_both(&lp, &client, &server_seen, &client_seen);
}

#[test]
fn wait_and_wait_blocking_mean_everything_left_the_tls_session() {
    let lp = Loop::new().unwrap();
    let pki = TestPki::new();
    // Small socket buffers: when the send queue empties, rustls still holds records
    // (up to 64 KiB) that the socket has not taken.
    let ends = tls_pair(&lp, &pki, true);
    let (server, client, server_seen, client_seen) = echo_pair(&lp, ends, |p| p, |p| p);
    // wait(cb): once it fires, writing stops; everything must still arrive (nothing
    // was left inside the TLS session).
    server.queue_binary(&pattern(1, 2 << 20)).unwrap();
    let waited = Rc::new(Cell::new(None));
    let w = waited.clone();
    server
        .wait(move |ws, how| {
            assert_eq!(ws.queued_count().unwrap(), 0);
            ws.stop_write().unwrap();
            w.set(Some(how));
        })
        .unwrap();
    run_until(&lp, "the wait callback", || waited.get().is_some());
    assert_eq!(waited.get(), Some(Waited::Drained));
    run_until(&lp, "the first message", || client_seen.count() == 1);
    server.start_write().unwrap();
    // wait_blocking, the same.
    server.queue_binary(&pattern(2, 2 << 20)).unwrap();
    assert_eq!(server.wait_blocking().unwrap(), Waited::Drained);
    server.stop_write().unwrap();
    run_until(&lp, "the second message", || client_seen.count() == 2);
    let msgs = client_seen.msgs.borrow();
    assert!(msgs[0].1 == pattern(1, 2 << 20));
    assert!(msgs[1].1 == pattern(2, 2 << 20));
    drop(msgs);
    server.start_write().unwrap();
    close_both(&lp, &client, &server_seen, &client_seen);
}

#[test]
fn close_timeout_when_the_tls_peer_stops_answering() {
    let lp = Loop::new().unwrap();
    let pki = TestPki::new();
    let ends = tls_pair(&lp, &pki, false);
    let (server, client, server_seen, _) = echo_pair(
        &lp,
        ends,
        |p| p.close_timeout(Some(Duration::from_millis(50))),
        |p| p,
    );
    client.stop_read().unwrap(); // a stopped reader notices nothing: no reply comes
    let start = LoopClock::start(&lp);
    server.close(Some(1000), "").unwrap();
    run_until(&lp, "the server's on_close", || {
        server_seen.close.get().is_some()
    });
    assert!(
        start.elapsed() >= Duration::from_millis(45),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(server_seen.close.get(), Some(1006));
    assert_eq!(server.close_cause(), Some(CloseCause::CloseTimeout));
    websocket::abort_all(&lp);
}

#[test]
fn close_timeout_when_the_tls_peer_stops_reading() {
    let lp = Loop::new().unwrap();
    let pki = TestPki::new();
    let ends = tls_pair(&lp, &pki, true);
    let (server, client, server_seen, _) = echo_pair(
        &lp,
        ends,
        |p| p.close_timeout(Some(Duration::from_millis(50))),
        |p| p,
    );
    client.stop_read().unwrap();
    // Far more than the small socket buffers and rustls's 64 KiB hold: the close
    // frame never leaves.
    server.queue_binary(&vec![7; 2 << 20]).unwrap();
    server.close(Some(1000), "").unwrap();
    run_until(&lp, "the server's on_close", || {
        server_seen.close.get().is_some()
    });
    assert_eq!(server_seen.close.get(), Some(1006));
    assert_eq!(server.close_cause(), Some(CloseCause::CloseTimeout));
    websocket::abort_all(&lp);
}

/// The close timeout counts from progress, and TLS records leaving rustls's own
/// buffer are progress: a peer that reads slowly but steadily gets everything. (The
/// records rustls held, up to 64 KiB, once went out uncounted: a reader slower than
/// that per close timeout was cut off with the end of the data still inside.)
#[test]
fn the_close_timeout_counts_records_leaving_the_tls_session() {
    const PAYLOAD: usize = 200 << 10;
    let lp = Loop::new().unwrap();
    let pki = TestPki::new();
    let (served, connected) = tls_pair(&lp, &pki, true);
    let closed = Rc::new(Cell::new(None));
    let c = closed.clone();
    let server = Server::new(
        served
            .into_params()
            .event_loop(&lp)
            .close_timeout(Some(Duration::from_millis(300)))
            .on_close(move |_, code| c.set(Some(code))),
    )
    .unwrap();
    server.queue_msg(&vec![7; PAYLOAD], OpCode::Binary).unwrap();
    server.close(Some(1000), "").unwrap();
    // The client's socket read raw (records counted, not decrypted): 2 KiB every
    // 20 ms, 100 KB/s, so rustls's 64 KiB take 640 ms to leave, twice the timeout;
    // each read lets more out within 20 ms, a fifteenth of it.
    let raw = connected.stream;
    raw.set_nonblocking(false).unwrap();
    raw.set_read_timeout(Some(util::deadline())).unwrap();
    let reader = std::thread::spawn(move || {
        let (mut total, mut buf) = (0, [0u8; 2048]);
        while let Ok(n @ 1..) = (&raw).read(&mut buf) {
            total += n;
            std::thread::sleep(Duration::from_millis(20));
        }
        total
    });
    run_until(&lp, "the server's end", || closed.get().is_some());
    let received = reader.join().unwrap();
    assert!(
        received > PAYLOAD,
        "{received} bytes of TLS records for a {PAYLOAD}-byte message: cut off"
    );
    // No close reply ever comes from a raw reader: the timeout ends it then.
    assert_eq!(server.close_cause(), Some(CloseCause::CloseTimeout));
}

#[test]
fn keepalive_and_idle_timeout_over_tls() {
    let lp = Loop::new().unwrap();
    let pki = TestPki::new();
    let (served, connected) = tls_pair(&lp, &pki, false);
    let server_seen = Rc::new(Seen::default());
    let server = Server::new(
        server_seen.record(
            served
                .into_params()
                .event_loop(&lp)
                .keepalive(Some(Duration::from_millis(30)))
                .idle_timeout(Some(Duration::from_millis(200))),
        ),
    )
    .unwrap();
    let client_seen = Rc::new(Seen::default());
    let client = Client::new(client_seen.record(connected.into_params().event_loop(&lp))).unwrap();
    // The client answers the pings by itself: the connection stays open.
    run_for(&lp, Duration::from_millis(300));
    let pongs = server_seen
        .msgs
        .borrow()
        .iter()
        .filter(|(op, _)| *op == OpCode::Pong)
        .count();
    assert!(pongs >= 2, "{pongs} pongs");
    assert_eq!(server_seen.close.get(), None);
    // A client that stops reading stops answering: the server closes with 1001.
    client.stop_read().unwrap();
    let clock = LoopClock::start(&lp);
    run_until(&lp, "the idle close", || {
        server.status_code_sent().is_some()
    });
    assert_eq!(server.status_code_sent(), Some(1001));
    // 200 ms since the last pong, which came a ping period (30 ms) and a round trip
    // before the stop.
    assert!(
        clock.elapsed() >= Duration::from_millis(100),
        "{:?}",
        clock.elapsed()
    );
    client.start_read().unwrap();
    run_until(&lp, "both ends", || {
        server_seen.close.get().is_some() && client_seen.close.get().is_some()
    });
    assert_eq!(client_seen.close.get(), Some(1001));
    assert_eq!(
        server_seen.close.get(),
        Some(1001),
        "the client echoed the code"
    );
    assert_eq!(server.close_cause(), Some(CloseCause::IdleTimeout));
}

#[test]
fn backpressure_with_a_peer_that_does_not_read() {
    let lp = Loop::new().unwrap();
    let pki = TestPki::new();
    let ends = tls_pair(&lp, &pki, true);
    const LIMIT: usize = 256 * 1024;
    const SIZE: usize = 32 * 1024;
    let (server, client, server_seen, client_seen) =
        echo_pair(&lp, ends, |p| p.max_queued_bytes(LIMIT), |p| p);
    client.stop_read().unwrap();
    // Queue until full, letting the loop write between messages.
    let mut queued = 0;
    loop {
        match server.queue_binary(&pattern(queued, SIZE)) {
            Ok(()) => queued += 1,
            Err(Error::Queue(_)) => break,
            Err(err) => panic!("{err}"),
        }
        run_for(&lp, Duration::ZERO);
        // Socket buffers (tens of KiB), rustls's 64 KiB and the limit: far fewer.
        assert!(queued < 64, "never full: {queued} messages of {SIZE} bytes");
    }
    assert!(server.queued_bytes().unwrap() <= LIMIT);
    run_for(&lp, Duration::from_millis(50));
    assert!(
        server.queue_binary(&pattern(0, SIZE)).is_err(),
        "still full"
    );
    client.start_read().unwrap();
    run_until(&lp, "every message", || client_seen.count() == queued);
    for (seed, (op, msg)) in client_seen.msgs.borrow().iter().enumerate() {
        assert_eq!(*op, OpCode::Binary);
        assert!(*msg == pattern(seed, SIZE), "message {seed} differs");
    }
    server.queue_binary(b"room again").unwrap();
    run_until(&lp, "one more", || client_seen.count() == queued + 1);
    close_both(&lp, &client, &server_seen, &client_seen);
}
