//! Hostile peers during the opening handshake, over real loopback sockets: a
//! slowloris sending one byte at a time, a head whose headers never end, one endless
//! header line, too many header lines (also fed to the pure parsers whole and one
//! byte at a time). Each is cut off by a limit while a well-behaved client on the same loop
//! keeps getting its echoes.
#![cfg(feature = "ev")]

#[path = "util/arena.rs"]
mod arena;
mod util;

use std::io::Write;
use std::time::{Duration, Instant};

use arena::{port_of, Arena, Outbox};
use net_websocket_ev::handshake::{
    accept_key, error_response, parse_request, parse_response, ClientHandshake, HandshakeError,
    Request, ServerHandshake, DEFAULT_MAX_HEADERS, DEFAULT_MAX_HEADER_SIZE,
};
use net_websocket_ev::websocket::upgrade::HandshakeOptions;
use util::{read_to_end, LoopClock};

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

/// A valid upgrade request with `extra` filler header lines besides its five own.
fn request_with_headers(extra: usize) -> Vec<u8> {
    let mut head = b"GET /chat HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\n"
        .to_vec();
    for i in 0..extra {
        head.extend_from_slice(format!("X-{i}: {i}\r\n").as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// Feeds `bytes` to a fresh server handshake, whole and one byte at a time: the
/// same outcome both ways, returned with the bytes fed before it came.
fn server_feed(
    max_headers: Option<usize>,
    bytes: &[u8],
) -> (Result<Option<Request>, HandshakeError>, usize) {
    let fresh = || {
        let hs = ServerHandshake::new(DEFAULT_MAX_HEADER_SIZE);
        match max_headers {
            Some(n) => hs.with_max_headers(n),
            None => hs,
        }
    };
    let whole = fresh().feed(bytes);
    let mut hs = fresh();
    let mut fed = 0;
    let mut one = Ok(None);
    for b in bytes {
        fed += 1;
        one = hs.feed(std::slice::from_ref(b));
        if !matches!(one, Ok(None)) {
            break;
        }
    }
    assert_eq!(
        whole
            .as_ref()
            .map(|r| r.as_ref().map(|r| r.headers.clone())),
        one.as_ref().map(|r| r.as_ref().map(|r| r.headers.clone())),
        "whole and byte by byte"
    );
    (one, fed)
}

#[test]
fn the_header_count_is_capped_at_100_by_default_fed_whole_or_byte_by_byte() {
    assert_eq!(DEFAULT_MAX_HEADERS, 100);
    // 100 header lines: accepted.
    let (outcome, _) = server_feed(None, &request_with_headers(95));
    assert_eq!(outcome.unwrap().expect("complete").headers.len(), 100);
    // 101: refused when the 101st line ends, before the blank line.
    let bytes = request_with_headers(96);
    let (outcome, fed) = server_feed(None, &bytes);
    let err = outcome.unwrap_err();
    assert_eq!(err, HandshakeError::TooManyHeaders { limit: 100 });
    assert_eq!(fed, bytes.len() - 2);
    assert_eq!(err.http_status(), Some(431));
    let answer = String::from_utf8(error_response(&err)).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{answer}"
    );
    assert!(answer.contains("\r\nConnection: close\r\n"));
    // The stateless parser has the same default.
    assert_eq!(
        parse_request(&bytes, DEFAULT_MAX_HEADER_SIZE).unwrap_err(),
        HandshakeError::TooManyHeaders { limit: 100 }
    );
    assert!(
        parse_request(&request_with_headers(95), DEFAULT_MAX_HEADER_SIZE)
            .unwrap()
            .is_some()
    );
}

#[test]
fn the_header_count_is_configurable_on_both_sides() {
    let (outcome, _) = server_feed(Some(5), &request_with_headers(0));
    assert!(outcome.unwrap().is_some());
    let (outcome, _) = server_feed(Some(5), &request_with_headers(1));
    assert_eq!(
        outcome.unwrap_err(),
        HandshakeError::TooManyHeaders { limit: 5 }
    );
    let (outcome, _) = server_feed(Some(500), &request_with_headers(300));
    assert_eq!(outcome.unwrap().expect("complete").headers.len(), 305);
    // The client: an answer with many lines, whole and byte by byte.
    let key = "dGhlIHNhbXBsZSBub25jZQ==";
    let mut answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n",
        accept_key(key.as_bytes())
    )
    .into_bytes();
    for i in 0..98 {
        answer.extend_from_slice(format!("X-{i}: {i}\r\n").as_bytes());
    }
    answer.extend_from_slice(b"\r\n");
    let client = |max: Option<usize>| {
        let hs = ClientHandshake::new(key.into(), Vec::new(), DEFAULT_MAX_HEADER_SIZE);
        match max {
            Some(n) => hs.with_max_headers(n),
            None => hs,
        }
    };
    let too_many = HandshakeError::TooManyHeaders { limit: 100 };
    assert_eq!(client(None).feed(&answer).unwrap_err(), too_many);
    let mut hs = client(None);
    let one = answer
        .iter()
        .map(|b| hs.feed(std::slice::from_ref(b)))
        .find(|r| !matches!(r, Ok(None)));
    assert_eq!(one.map(|r| r.map(|_| ())), Some(Err(too_many)));
    assert!(client(Some(101)).feed(&answer).unwrap().is_some());
    assert_eq!(
        parse_response(&answer, key, &[], DEFAULT_MAX_HEADER_SIZE).unwrap_err(),
        HandshakeError::TooManyHeaders { limit: 100 }
    );
}

#[test]
fn a_request_of_too_many_header_lines_is_answered_431() {
    // The default head limits (8 KiB, 100 lines), and a timeout longer than
    // any wait.
    let options = || HandshakeOptions::default().timeout(2 * util::deadline());
    let arena = Arena::new(options, |p| p);
    let mut good = arena.good_client();
    let mut bad = arena.connect();
    let port = port_of(&bad);
    // 101 short lines: well within the size limit.
    let bytes = request_with_headers(96);
    assert!(bytes.len() < DEFAULT_MAX_HEADER_SIZE / 4);
    let mut out = Outbox::default();
    out.push(&bytes);
    let mut answer = Vec::new();
    arena.run_until("the crowded head refused", Some(&mut good), || {
        out.flush(&mut bad);
        read_to_end(&mut bad, &mut answer)
    });
    assert!(
        answer.starts_with(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    let refused = arena.seen.borrow().refused[&port].clone();
    assert!(refused.contains("TooManyHeaders"), "{refused}");
    // 100 lines are served.
    let mut fine = arena.connect();
    fine.write_all(&request_with_headers(95)).unwrap();
    let mut answer = Vec::new();
    arena.run_until("the 101", Some(&mut good), || {
        read_to_end(&mut fine, &mut answer);
        answer.ends_with(b"\r\n\r\n")
    });
    assert!(answer.starts_with(b"HTTP/1.1 101 "), "{answer:?}");
    arena.assert_serving(&mut good);
}
