//! Hostile peers during the opening handshake, over real loopback sockets: a
//! slowloris sending one byte at a time, a head whose headers never end, one endless
//! header line. Each is cut off by a limit while a well-behaved client on the same loop
//! keeps getting its echoes.

#[path = "util/arena.rs"]
mod arena;
mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use arena::{port_of, Arena, Outbox};
use net_websocket_ev::websocket::upgrade::HandshakeOptions;
use util::LoopClock;

/// The handshake timeout of the tests about it (scaled down from seconds).
const SHORT_TIMEOUT: Duration = Duration::from_millis(300);

/// A 1 KiB head limit and a short timeout, for the tests of the timeout.
fn short_handshake() -> HandshakeOptions {
    HandshakeOptions::default()
        .timeout(SHORT_TIMEOUT)
        .max_header_size(1024)
}

/// A 1 KiB head limit and a timeout longer than any wait, for the tests of the limit
/// (however slowly the head arrives, only the limit can refuse it).
fn limited_head() -> HandshakeOptions {
    HandshakeOptions::default()
        .timeout(2 * util::deadline())
        .max_header_size(1024)
}

/// Reads what the server sent until it closed (EOF or reset); false if still open.
fn read_to_end(sock: &mut TcpStream, into: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match sock.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => into.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

#[test]
fn slowloris_handshake_is_cut_at_the_handshake_timeout() {
    let arena = Arena::new(short_handshake, |p| p);
    let mut good = arena.good_client();
    // Before the connection exists: the handshake's timer starts later.
    let clock = LoopClock::start(&arena.lp);
    let mut bad = arena.connect();
    let port = port_of(&bad);
    // A head that never ends, within the size limit for 49 s at this pace: only the
    // timeout of the whole handshake (not a pause between bytes) cuts it in time.
    let mut head = b"GET /chat HTTP/1.1\r\nHost: localhost\r\nX-Slow: ".to_vec();
    head.resize(1024, b'z');
    let start = Instant::now();
    let mut sent = 0;
    let mut answer = Vec::new();
    arena.run_until("the slowloris cut off", Some(&mut good), || {
        // One byte every 50 ms (the timeout is scaled down from seconds to 0.3 s).
        let due = (start.elapsed().as_millis() / 50) as usize + 1;
        while sent < due.min(head.len()) {
            if bad.write(&head[sent..=sent]).is_err() {
                break;
            }
            sent += 1;
        }
        read_to_end(&mut bad, &mut answer)
    });
    let took = clock.elapsed();
    assert!(sent < head.len(), "the whole head went out ({sent} bytes)");
    assert!(took >= Duration::from_millis(290), "cut after {took:?}");
    assert!(answer.is_empty(), "no answer to an unfinished head");
    assert_eq!(arena.seen.borrow().refused[&port], "Timeout");
    arena.assert_serving(&mut good);
}

#[test]
fn headers_that_never_end_are_refused_at_the_header_limit() {
    let arena = Arena::new(limited_head, |p| p);
    let mut good = arena.good_client();
    let mut bad = arena.connect();
    let port = port_of(&bad);
    let mut out = Outbox::default();
    out.push(b"GET /chat HTTP/1.1\r\nHost: localhost\r\n");
    let mut answer = Vec::new();
    let mut lines = 0;
    arena.run_until("the endless head refused", Some(&mut good), || {
        if out.pending() < 4096 && !out.broken && lines < 100_000 {
            out.push(format!("X-Filler-{lines}: {}\r\n", "a".repeat(40)).as_bytes());
            lines += 1;
        }
        out.flush(&mut bad);
        read_to_end(&mut bad, &mut answer)
    });
    assert!(
        answer.starts_with(b"HTTP/1.1 400 Bad Request\r\n"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    assert!(
        lines < 1000,
        "{lines} header lines were read before the refusal"
    );
    let refused = arena.seen.borrow().refused[&port].clone();
    assert!(refused.contains("HeaderTooLarge"), "{refused}");
    arena.assert_serving(&mut good);
}

#[test]
fn an_endless_header_line_is_refused_at_the_header_limit() {
    let arena = Arena::new(limited_head, |p| p);
    let mut good = arena.good_client();
    let mut bad = arena.connect();
    let port = port_of(&bad);
    bad.write_all(b"GET /chat HTTP/1.1\r\nX-Long: ").unwrap();
    let mut out = Outbox::default();
    let mut answer = Vec::new();
    let mut pushed = 0usize;
    arena.run_until("the endless line refused", Some(&mut good), || {
        if out.pending() < 4096 && pushed < 1 << 24 {
            out.push(&[b'z'; 1024]);
            pushed += 1024;
        }
        out.flush(&mut bad);
        read_to_end(&mut bad, &mut answer)
    });
    assert!(answer.starts_with(b"HTTP/1.1 400 "));
    let refused = arena.seen.borrow().refused[&port].clone();
    assert!(refused.contains("HeaderTooLarge"), "{refused}");
    arena.assert_serving(&mut good);
}

#[test]
fn a_connection_that_sends_nothing_is_cut_at_the_handshake_timeout() {
    let arena = Arena::new(short_handshake, |p| p);
    let mut good = arena.good_client();
    let mut bad = arena.connect();
    let port = port_of(&bad);
    let mut answer = Vec::new();
    arena.run_until("the silent connection cut", Some(&mut good), || {
        read_to_end(&mut bad, &mut answer)
    });
    assert!(answer.is_empty());
    assert_eq!(arena.seen.borrow().refused[&port], "Timeout");
    arena.assert_serving(&mut good);
}
