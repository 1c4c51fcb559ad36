//! The listener (`websocket::listen`): accept and echo, the request hook (refusals,
//! plain GETs, Set-Cookie and subprotocol, header validation), the caps, the
//! handshake timeout, close and abort, keepalive, the fragment cap and the message
//! timeout of the connections, SO_REUSEPORT on two threads, IPv6.
#![cfg(feature = "ev")]

mod util;

use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use net_websocket_ev::ev::{Loop, RunFlags, Timer};
use net_websocket_ev::handshake::{accept_key, HandshakeError};
use net_websocket_ev::proto::Role;
use net_websocket_ev::websocket::listen::{Pause, Request};
use net_websocket_ev::websocket::upgrade::{HandshakeOptions, UpgradeError};
use net_websocket_ev::{websocket, Accepted, Answer, ListenParams, Listener, OpCode, Server};
use util::{deadline, read_to_end, run_until, LoopClock, Peer, Seen};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// An upgrade request for `/chat?room=1` with `extra` header lines (each ending
/// in CRLF).
fn upgrade_request(extra: &str) -> String {
    format!(
        "GET /chat?room=1 HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\
         {extra}\r\n"
    )
}

/// What the listener's callbacks saw.
#[derive(Default)]
struct Calls {
    accepted: Vec<(Request, Option<String>)>,
    errors: Vec<UpgradeError>,
}

type Log = Rc<RefCell<Calls>>;

/// A listener on 127.0.0.1 whose connections echo; `tweak` adds settings.
fn echo_listener(lp: &Loop, tweak: impl FnOnce(ListenParams) -> ListenParams) -> (Listener, Log) {
    echo_listener_on(lp, "127.0.0.1:0", tweak).expect("listen on 127.0.0.1")
}

fn echo_listener_on(
    lp: &Loop,
    addr: &str,
    tweak: impl FnOnce(ListenParams) -> ListenParams,
) -> std::io::Result<(Listener, Log)> {
    let log = Log::default();
    let (l1, l2) = (log.clone(), log.clone());
    let params = ListenParams::new(addr)
        .event_loop(lp)
        .on_connect(move |accepted: Accepted| {
            let request = accepted.request().clone();
            let protocol = accepted.protocol().map(str::to_owned);
            l1.borrow_mut().accepted.push((request, protocol));
            let params = accepted.into_params().on_msg_recv(|ws, _, opcode, msg, _| {
                if matches!(opcode, OpCode::Text | OpCode::Binary) {
                    ws.queue_msg(msg, opcode).unwrap();
                }
            });
            Server::new(params).unwrap();
        })
        .on_error(move |err, peer| {
            assert!(peer.ip().is_loopback());
            l2.borrow_mut().errors.push(clone_error(err));
        });
    Ok((Listener::new(tweak(params))?, log))
}

/// The variants the tests look at (UpgradeError is not Clone).
fn clone_error(err: &UpgradeError) -> UpgradeError {
    match err {
        UpgradeError::Handshake(e) => UpgradeError::Handshake(e.clone()),
        UpgradeError::Answer(e) => UpgradeError::Answer(e.clone()),
        UpgradeError::Timeout => UpgradeError::Timeout,
        UpgradeError::Eof => UpgradeError::Eof,
        UpgradeError::Aborted => UpgradeError::Aborted,
        UpgradeError::Refused { status } => UpgradeError::Refused { status: *status },
        other => UpgradeError::Io(std::io::Error::other(other.to_string())),
    }
}

/// A connected client socket, non-blocking.
fn connect(addr: SocketAddr) -> TcpStream {
    let sock = TcpStream::connect(addr).expect("connect");
    sock.set_nonblocking(true).unwrap();
    sock.set_nodelay(true).unwrap();
    sock
}

/// Everything the server sends until it closes, running the loop.
fn read_to_eof(lp: &Loop, sock: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    run_until(lp, "the server to close", || read_to_end(sock, &mut all));
    all
}

/// Whether the socket is still open (nothing to read, no EOF), after the loop ran
/// every event already due.
fn still_open(lp: &Loop, sock: &mut TcpStream) -> bool {
    util::spin(lp, 3);
    let mut got = Vec::new();
    !read_to_end(sock, &mut got) && got.is_empty()
}

/// Sends `request` and reads the response head (through the blank line).
fn handshake(lp: &Loop, sock: &mut TcpStream, request: &str) -> String {
    sock.write_all(request.as_bytes()).unwrap();
    let mut got = Vec::new();
    run_until(lp, "the response head", || {
        let closed = read_to_end(sock, &mut got);
        assert!(
            !closed || got.windows(4).any(|w| w == b"\r\n\r\n"),
            "closed: {}",
            String::from_utf8_lossy(&got)
        );
        got.windows(4).any(|w| w == b"\r\n\r\n")
    });
    let text = String::from_utf8(got).unwrap();
    assert!(text.ends_with("\r\n\r\n"), "bytes after the head: {text:?}");
    text
}

/// An upgraded client: handshake, then a Peer to talk frames.
fn client(lp: &Loop, addr: SocketAddr) -> Peer<TcpStream> {
    let mut sock = connect(addr);
    let head = handshake(lp, &mut sock, &upgrade_request(""));
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    Peer::new(sock, Role::Client)
}

fn echo_roundtrip(lp: &Loop, peer: &mut Peer<TcpStream>, text: &[u8]) {
    let before = peer.data_msgs().len();
    peer.send_msg(OpCode::Text, text);
    run_until(lp, "the echo", || {
        peer.pump();
        peer.data_msgs().len() > before
    });
    assert_eq!(peer.data_msgs()[before], (OpCode::Text, text.to_vec()));
}

#[test]
fn accepts_and_echoes_and_counts_the_connection_until_it_closes() {
    let lp = Loop::new().unwrap();
    let (listener, log) = echo_listener(&lp, |p| p);
    let mut peer = client(&lp, listener.local_addr());
    echo_roundtrip(&lp, &mut peer, b"hello");
    let stats = listener.stats();
    assert_eq!((stats.accepted, stats.upgraded, stats.failed), (1, 1, 0));
    assert_eq!(
        (stats.handshakes, stats.connections, stats.addresses),
        (0, 1, 1)
    );
    let (request, protocol) = &log.borrow().accepted[0];
    assert_eq!(request.path_and_query(), ("/chat", Some("room=1")));
    assert_eq!(request.peer, Some(peer.sock.local_addr().unwrap()));
    assert_eq!(*protocol, None);
    // The peer leaves: the connection ends and is no longer counted.
    drop(peer);
    run_until(&lp, "the connection to end", || {
        listener.stats().connections == 0
    });
    assert_eq!(listener.stats().addresses, 0);
    assert!(log.borrow().errors.is_empty());
}

#[test]
fn a_refusal_sends_its_status_headers_and_body_then_closes() {
    let lp = Loop::new().unwrap();
    let (listener, log) = echo_listener(&lp, |p| {
        p.on_request(|req| match req.origin() {
            Some("https://good.example") => Answer::accept(),
            _ => Answer::status(403)
                .header("X-Reason", "origin")
                .body("forbidden\n"),
        })
    });
    let mut sock = connect(listener.local_addr());
    sock.write_all(upgrade_request("Origin: https://evil.example\r\n").as_bytes())
        .unwrap();
    let answer = read_to_eof(&lp, &mut sock);
    assert_eq!(
        String::from_utf8(answer).unwrap(),
        "HTTP/1.1 403 Forbidden\r\nX-Reason: origin\r\n\
         Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\
         Content-Length: 10\r\n\r\nforbidden\n"
    );
    // The good origin is accepted.
    let mut sock = connect(listener.local_addr());
    let head = handshake(
        &lp,
        &mut sock,
        &upgrade_request("Origin: https://good.example\r\n"),
    );
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let stats = listener.stats();
    assert_eq!((stats.upgraded, stats.failed), (1, 1));
    assert_eq!(log.borrow().accepted.len(), 1);
    assert!(log.borrow().errors.is_empty(), "a refusal is not an error");
    websocket::abort_all(&lp);
}

#[test]
fn a_plain_get_reaches_the_hook_and_gets_an_ordinary_response() {
    let lp = Loop::new().unwrap();
    let (listener, log) = echo_listener(&lp, |p| {
        p.on_request(|req| match (req.upgrade, req.path.as_str()) {
            (false, "/health") => Answer::status(200).body("ok\n"),
            (false, _) => Answer::status(404),
            (true, _) => Answer::accept(),
        })
    });
    let addr = listener.local_addr();
    let mut sock = connect(addr);
    sock.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    assert_eq!(
        String::from_utf8(read_to_eof(&lp, &mut sock)).unwrap(),
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Connection: close\r\nContent-Length: 3\r\n\r\nok\n"
    );
    // HEAD: the same head, no body; HTTP/1.0 without Host is fine.
    let mut sock = connect(addr);
    sock.write_all(b"HEAD /health HTTP/1.0\r\n\r\n").unwrap();
    let answer = String::from_utf8(read_to_eof(&lp, &mut sock)).unwrap();
    assert!(answer.ends_with("Content-Length: 3\r\n\r\n"), "{answer}");
    let mut sock = connect(addr);
    sock.write_all(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let answer = String::from_utf8(read_to_eof(&lp, &mut sock)).unwrap();
    assert!(answer.starts_with("HTTP/1.1 404 Not Found\r\n"), "{answer}");
    assert!(answer.ends_with("Content-Length: 0\r\n\r\n"), "{answer}");
    // The same port still upgrades.
    let mut peer = client(&lp, addr);
    echo_roundtrip(&lp, &mut peer, b"still a websocket");
    assert!(log.borrow().errors.is_empty());
    websocket::abort_all(&lp);
}

#[test]
fn without_a_hook_a_plain_get_gets_400() {
    let lp = Loop::new().unwrap();
    let (listener, log) = echo_listener(&lp, |p| p);
    let mut sock = connect(listener.local_addr());
    sock.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let answer = String::from_utf8(read_to_eof(&lp, &mut sock)).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    run_until(&lp, "the error report", || !log.borrow().errors.is_empty());
    assert!(matches!(
        log.borrow().errors[0],
        UpgradeError::Handshake(HandshakeError::MissingUpgrade)
    ));
}

#[test]
fn the_101_carries_the_chosen_subprotocol_and_set_cookie() {
    let lp = Loop::new().unwrap();
    let (listener, log) = echo_listener(&lp, |p| {
        p.on_request(|req| {
            assert_eq!(req.cookie("session"), Some("abc"));
            assert_eq!(req.protocols, ["chat", "superchat"]);
            assert!(req.peer.unwrap().ip().is_loopback());
            Answer::accept()
                .protocol("superchat")
                .header("Set-Cookie", "id=7; HttpOnly")
                .header("Set-Cookie", "theme=dark")
        })
    });
    let mut sock = connect(listener.local_addr());
    let head = handshake(
        &lp,
        &mut sock,
        &upgrade_request(
            "Sec-WebSocket-Protocol: chat, superchat\r\nCookie: theme=light; session=abc\r\n",
        ),
    );
    assert_eq!(
        head,
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Protocol: superchat\r\n\
             Set-Cookie: id=7; HttpOnly\r\nSet-Cookie: theme=dark\r\n\r\n",
            accept_key(KEY.as_bytes())
        )
    );
    run_until(&lp, "on_connect", || !log.borrow().accepted.is_empty());
    assert_eq!(log.borrow().accepted[0].1.as_deref(), Some("superchat"));
    let mut peer = Peer::new(sock, Role::Client);
    echo_roundtrip(&lp, &mut peer, b"hi");
    websocket::abort_all(&lp);
}

#[test]
fn an_answer_that_would_inject_a_header_sends_500_instead() {
    let bad_answers: [fn() -> Answer; 4] = [
        || Answer::accept().header("X-A", "1\r\nX-Injected: yes"),
        || Answer::accept().header("X-A\r\nX-Injected", "yes"),
        || Answer::status(403).header("Content-Length", "0"),
        || Answer::accept().protocol("not-offered"),
    ];
    for make in bad_answers {
        let lp = Loop::new().unwrap();
        let (listener, log) = echo_listener(&lp, |p| p.on_request(move |_| make()));
        let mut sock = connect(listener.local_addr());
        sock.write_all(upgrade_request("").as_bytes()).unwrap();
        let answer = String::from_utf8(read_to_eof(&lp, &mut sock)).unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 500 Internal Server Error\r\n"),
            "{answer}"
        );
        assert!(!answer.contains("Injected"), "{answer}");
        run_until(&lp, "the error report", || !log.borrow().errors.is_empty());
        let errors = &log.borrow().errors;
        assert!(
            matches!(
                errors[0],
                UpgradeError::Answer(HandshakeError::Malformed(_))
            ),
            "{:?}",
            errors[0]
        );
        assert!(log.borrow().accepted.is_empty());
    }
}

#[test]
fn the_handshake_beyond_the_per_address_cap_is_closed_at_once() {
    let lp = Loop::new().unwrap();
    let (listener, _log) = echo_listener(&lp, |p| p.max_handshakes_per_ip(Some(2)));
    let addr = listener.local_addr();
    let mut silent: Vec<TcpStream> = (0..3).map(|_| connect(addr)).collect();
    run_until(&lp, "three accepts", || {
        let stats = listener.stats();
        stats.accepted + stats.refused == 3
    });
    let stats = listener.stats();
    assert_eq!((stats.accepted, stats.refused, stats.handshakes), (2, 1, 2));
    // The backlog is first in, first out: the third is the one closed.
    let mut got = Vec::new();
    run_until(&lp, "the third to be closed", || {
        read_to_end(&mut silent[2], &mut got)
    });
    assert!(got.is_empty(), "closed without a byte");
    assert!(still_open(&lp, &mut silent[0]));
    assert!(still_open(&lp, &mut silent[1]));
    // The first completes its handshake: there is room for another.
    let head = handshake(&lp, &mut silent[0], &upgrade_request(""));
    assert!(head.starts_with("HTTP/1.1 101 "));
    let mut fourth = connect(addr);
    run_until(&lp, "the fourth to be accepted", || {
        listener.stats().accepted == 3
    });
    assert!(still_open(&lp, &mut fourth));
    websocket::abort_all(&lp);
}

#[test]
fn the_connection_beyond_the_per_address_cap_is_closed_until_one_leaves() {
    let lp = Loop::new().unwrap();
    let (listener, _log) = echo_listener(&lp, |p| p.max_connections_per_ip(Some(1)));
    let addr = listener.local_addr();
    let first = client(&lp, addr);
    let mut second = connect(addr);
    let mut got = Vec::new();
    run_until(&lp, "the second to be closed", || {
        read_to_end(&mut second, &mut got)
    });
    assert_eq!(listener.stats().refused, 1);
    drop(first);
    run_until(&lp, "the first to be gone", || {
        listener.stats().connections == 0
    });
    let mut third = client(&lp, addr);
    echo_roundtrip(&lp, &mut third, b"room again");
    websocket::abort_all(&lp);
}

#[test]
fn at_the_handshake_cap_accepting_pauses_until_one_ends() {
    let lp = Loop::new().unwrap();
    let (listener, _log) = echo_listener(&lp, |p| p.max_handshakes(Some(1)));
    let addr = listener.local_addr();
    let mut first = connect(addr);
    run_until(&lp, "the first accept", || listener.stats().accepted == 1);
    let mut second = connect(addr);
    run_until(&lp, "the pause", || listener.paused().is_some());
    assert_eq!(listener.paused(), Some(Pause::Handshakes));
    let calls = listener.stats().accept_calls;
    util::spin(&lp, 20);
    assert_eq!(listener.stats().accept_calls, calls, "paused: no accept");
    assert_eq!(listener.stats().accepted, 1);
    let head = handshake(&lp, &mut first, &upgrade_request(""));
    assert!(head.starts_with("HTTP/1.1 101 "));
    run_until(&lp, "the second accept", || listener.stats().accepted == 2);
    assert_eq!(listener.paused(), Some(Pause::Handshakes)); // the second holds it
    let head = handshake(&lp, &mut second, &upgrade_request(""));
    assert!(head.starts_with("HTTP/1.1 101 "));
    run_until(&lp, "the resume", || listener.paused().is_none());
    websocket::abort_all(&lp);
}

#[test]
fn at_the_connection_cap_accepting_pauses_until_one_closes() {
    let lp = Loop::new().unwrap();
    let (listener, _log) = echo_listener(&lp, |p| p.max_connections(Some(1)));
    let addr = listener.local_addr();
    let first = client(&lp, addr);
    let mut second = connect(addr);
    run_until(&lp, "the pause", || listener.paused().is_some());
    assert_eq!(listener.paused(), Some(Pause::Connections));
    second.write_all(upgrade_request("").as_bytes()).unwrap();
    assert!(still_open(&lp, &mut second), "waits in the backlog");
    drop(first);
    let mut got = Vec::new();
    run_until(&lp, "the second's 101", || {
        read_to_end(&mut second, &mut got);
        got.ends_with(b"\r\n\r\n")
    });
    assert!(got.starts_with(b"HTTP/1.1 101 "));
    websocket::abort_all(&lp);
}

#[test]
fn the_handshake_timeout_applies_through_the_listener() {
    let lp = Loop::new().unwrap();
    let timeout = Duration::from_millis(50);
    let (listener, log) = echo_listener(&lp, |p| {
        p.handshake(HandshakeOptions::default().timeout(timeout))
    });
    let mut sock = connect(listener.local_addr());
    run_until(&lp, "the accept", || listener.stats().handshakes == 1);
    let clock = LoopClock::start(&lp);
    sock.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    let answer = read_to_eof(&lp, &mut sock);
    assert!(answer.is_empty(), "a timeout closes without an answer");
    assert!(clock.elapsed() >= timeout - Duration::from_millis(1));
    run_until(&lp, "the error report", || !log.borrow().errors.is_empty());
    assert!(matches!(log.borrow().errors[0], UpgradeError::Timeout));
    assert_eq!(listener.stats().handshakes, 0);
}

#[test]
fn close_stops_accepting_and_lets_handshakes_in_progress_finish() {
    let lp = Loop::new().unwrap();
    let (listener, log) = echo_listener(&lp, |p| p);
    let addr = listener.local_addr();
    let mut sock = connect(addr);
    run_until(&lp, "the accept", || listener.stats().handshakes == 1);
    drop(listener); // closes the listening socket
    assert_eq!(
        TcpStream::connect(addr).unwrap_err().kind(),
        ErrorKind::ConnectionRefused
    );
    let head = handshake(&lp, &mut sock, &upgrade_request(""));
    assert!(head.starts_with("HTTP/1.1 101 "));
    assert_eq!(log.borrow().accepted.len(), 1);
    let mut peer = Peer::new(sock, Role::Client);
    echo_roundtrip(&lp, &mut peer, b"after the close");
    websocket::abort_all(&lp);
}

#[test]
fn abort_ends_handshakes_in_progress() {
    let lp = Loop::new().unwrap();
    let (listener, log) = echo_listener(&lp, |p| p);
    let mut sock = connect(listener.local_addr());
    run_until(&lp, "the accept", || listener.stats().handshakes == 1);
    sock.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    listener.abort();
    assert!(listener.is_closed());
    assert_eq!(listener.stats().handshakes, 0);
    assert!(matches!(log.borrow().errors[..], [UpgradeError::Aborted]));
    assert!(read_to_eof(&lp, &mut sock).is_empty());
}

#[test]
fn accepted_connections_ping_and_close_a_silent_peer() {
    let lp = Loop::new().unwrap();
    let (listener, _log) = echo_listener(&lp, |p| {
        p.keepalive(Some(Duration::from_millis(30)))
            .pong_timeout(Duration::from_millis(30))
    });
    let mut peer = client(&lp, listener.local_addr());
    // The peer reads but never answers (Peer::pump does not send pongs).
    run_until(&lp, "a ping", || {
        peer.pump();
        peer.msgs().iter().any(|(op, _)| *op == OpCode::Ping)
    });
    run_until(&lp, "the close", || {
        peer.pump();
        peer.close_received()
    });
    assert_eq!(peer.close_code(), 1001);
    let pings_first = peer
        .seen
        .iter()
        .position(|s| *s == Seen::Msg(OpCode::Ping, vec![]));
    assert!(pings_first.is_some());
    websocket::abort_all(&lp);
}

#[test]
fn reuse_port_spreads_connections_over_two_loops_on_two_threads() {
    const MAX_CLIENTS: usize = 200;
    let stop = Arc::new(AtomicBool::new(false));
    let port = Arc::new(Mutex::new(None::<u16>));
    let ready = Arc::new(std::sync::Barrier::new(3));
    let mut threads = Vec::new();
    for name in ["A", "B"] {
        let (stop, port, ready) = (stop.clone(), port.clone(), ready.clone());
        threads.push(std::thread::spawn(move || {
            let lp = Loop::new().unwrap();
            // The first thread picks the port, the second shares it.
            let listener = {
                let mut port = port.lock().unwrap();
                let addr = format!("127.0.0.1:{}", port.unwrap_or(0));
                let listener = Listener::new(
                    ListenParams::new(addr.as_str())
                        .event_loop(&lp)
                        .reuse_port(true)
                        .on_connect(move |accepted| {
                            let ws = Server::new(accepted.into_params()).unwrap();
                            ws.queue_text(name).unwrap(); // says which loop served it
                        }),
                )
                .unwrap();
                port.get_or_insert(listener.local_addr().port());
                listener
            };
            ready.wait();
            let ticker = Timer::new(&lp, util::TICK, util::TICK, |_| {});
            ticker.start();
            let start = Instant::now();
            while !stop.load(Ordering::SeqCst) && start.elapsed() < deadline() {
                lp.run_with(RunFlags::Once);
            }
            drop(listener);
            websocket::abort_all(&lp);
        }));
    }
    ready.wait();
    let addr = SocketAddr::from(([127, 0, 0, 1], port.lock().unwrap().unwrap()));
    let mut served = std::collections::BTreeSet::new();
    let mut clients = 0;
    while served.len() < 2 && clients < MAX_CLIENTS {
        clients += 1;
        // A blocking client: the loops run on their own threads.
        let mut sock = TcpStream::connect(addr).unwrap();
        sock.set_read_timeout(Some(deadline())).unwrap();
        sock.write_all(upgrade_request("").as_bytes()).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        // The head, then the 3-byte text frame naming the loop.
        while !got.windows(4).any(|w| w == b"\r\n\r\n")
            || !got.ends_with(b"A") && !got.ends_with(b"B")
        {
            let n = sock.read(&mut buf).expect("read within the deadline");
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        served.insert(*got.last().unwrap());
    }
    stop.store(true, Ordering::SeqCst);
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(
        served.len(),
        2,
        "both loops served within {clients} clients"
    );
}

#[test]
fn listens_on_ipv6_loopback() {
    let lp = Loop::new().unwrap();
    let (listener, log) = match echo_listener_on(&lp, "[::1]:0", |p| p) {
        Ok(pair) => pair,
        Err(err) => {
            eprintln!("skipped: ::1 is not available here ({err})");
            return;
        }
    };
    let addr = listener.local_addr();
    assert!(addr.is_ipv6());
    let mut peer = client(&lp, addr);
    echo_roundtrip(&lp, &mut peer, b"over IPv6");
    assert!(log.borrow().accepted[0].0.peer.unwrap().is_ipv6());
    assert_eq!(listener.stats().addresses, 1);
    websocket::abort_all(&lp);
}

#[test]
fn a_listener_needs_on_connect_and_a_free_address() {
    let lp = Loop::new().unwrap();
    let err = Listener::new(ListenParams::new("127.0.0.1:0").event_loop(&lp)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let (listener, _log) = echo_listener(&lp, |p| p);
    let taken = listener.local_addr().to_string();
    match echo_listener_on(&lp, &taken, |p| p) {
        Err(err) => assert_eq!(err.kind(), ErrorKind::AddrInUse),
        Ok(_) => panic!("two listeners on {taken} without reuse_port"),
    }
}

#[cfg(feature = "tls")]
#[test]
fn serves_wss_with_server_tls_and_deflate() {
    use net_websocket_ev::handshake::deflate::PerMessageDeflate;
    use net_websocket_ev::handshake::ClientRequest;
    use net_websocket_ev::websocket::upgrade::upgrade;
    use net_websocket_ev::Client;

    let lp = Loop::new().unwrap();
    let pki = util::tls::TestPki::new();
    let (listener, log) = echo_listener(&lp, |p| {
        p.handshake(
            HandshakeOptions::default()
                .server_tls(pki.server_tls())
                .deflate(Some(PerMessageDeflate::default())),
        )
    });
    let stream = TcpStream::connect(listener.local_addr()).unwrap();
    let (request, ..) = ClientRequest::from_url("wss://localhost/t").unwrap();
    let options = HandshakeOptions::default()
        .client_tls(pki.client_tls())
        .deflate(Some(PerMessageDeflate::default()));
    let out = Rc::new(RefCell::new(None));
    let o = out.clone();
    upgrade(&lp, stream, &request, options, move |r| {
        *o.borrow_mut() = Some(r)
    });
    run_until(&lp, "the wss handshake", || out.borrow().is_some());
    let upgraded = out.borrow_mut().take().unwrap().expect("wss handshake");
    assert!(upgraded.tls.is_some() && upgraded.compression.is_some());
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    let ws = Client::new(
        upgraded
            .into_params()
            .on_msg_recv(move |_, _, _, msg, _| g.borrow_mut().push(msg.to_vec())),
    )
    .unwrap();
    ws.queue_text("secure and small").unwrap();
    run_until(&lp, "the echo", || !got.borrow().is_empty());
    assert_eq!(got.borrow()[0], b"secure and small");
    assert_eq!(log.borrow().accepted[0].0.path, "/t");
    websocket::abort_all(&lp);
}

/// Runs the loop until a callback's panic comes out of it; its message.
fn until_panic(lp: &Loop) -> String {
    let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_until(lp, "a panic", || false);
    }))
    .expect_err("a callback panicked");
    payload.downcast_ref::<&str>().unwrap().to_string()
}

#[test]
fn a_panicking_hook_closes_its_socket_and_the_listener_goes_on() {
    let lp = Loop::new().unwrap();
    let (listener, log) = echo_listener(&lp, |p| {
        p.on_request(|req| {
            if req.path == "/boom" {
                panic!("hook boom");
            }
            Answer::accept()
        })
    });
    let mut sock = connect(listener.local_addr());
    sock.write_all(
        upgrade_request("")
            .replace("/chat?room=1", "/boom")
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(until_panic(&lp), "hook boom");
    assert!(read_to_eof(&lp, &mut sock).is_empty());
    assert!(matches!(log.borrow().errors[..], [UpgradeError::Io(_)]));
    assert_eq!(listener.stats().handshakes, 0);
    let mut peer = client(&lp, listener.local_addr());
    echo_roundtrip(&lp, &mut peer, b"still serving");
    websocket::abort_all(&lp);
}

#[test]
fn a_panicking_on_connect_is_called_again_for_the_next_connection() {
    let lp = Loop::new().unwrap();
    let calls = Rc::new(RefCell::new(0));
    let c = calls.clone();
    let listener = Listener::new(ListenParams::new("127.0.0.1:0").event_loop(&lp).on_connect(
        move |accepted| {
            *c.borrow_mut() += 1;
            if *c.borrow() == 1 {
                panic!("connect boom");
            }
            Server::new(accepted.into_params()).unwrap();
        },
    ))
    .unwrap();
    let mut first = connect(listener.local_addr());
    first.write_all(upgrade_request("").as_bytes()).unwrap();
    assert_eq!(until_panic(&lp), "connect boom");
    // The Accepted it dropped closed its socket (after the 101) and its slot.
    let answer = read_to_eof(&lp, &mut first);
    assert!(answer.starts_with(b"HTTP/1.1 101 "));
    assert_eq!(listener.stats().connections, 0);
    let _second = client(&lp, listener.local_addr());
    run_until(&lp, "the second on_connect", || *calls.borrow() == 2);
    assert_eq!(listener.stats().connections, 1);
    websocket::abort_all(&lp);
}

#[test]
fn accepts_per_wakeup_bounds_each_loop_iteration() {
    let lp = Loop::new().unwrap();
    let (listener, _log) = echo_listener(&lp, |p| p.accepts_per_wakeup(2));
    let _clients: Vec<TcpStream> = (0..5).map(|_| connect(listener.local_addr())).collect();
    let mut seen = Vec::new();
    run_until(&lp, "five accepts", || {
        seen.push(listener.stats().accepted);
        listener.stats().accepted == 5
    });
    // One iteration at a time: never more than two more than the one before.
    assert!(seen.windows(2).all(|w| w[1] - w[0] <= 2), "{seen:?}");
    assert!(seen.contains(&2) || seen.contains(&1), "{seen:?}");
    websocket::abort_all(&lp);
}

/// A masked binary message of `count` one-byte fragments: the wire bytes and the
/// message.
fn fragmented(count: usize) -> (Vec<u8>, Vec<u8>) {
    let msg: Vec<u8> = (0..count).map(|i| (i % 251) as u8).collect();
    let mut wire = Vec::with_capacity(count * 7);
    for (i, byte) in msg.iter().enumerate() {
        let opcode = if i == 0 { 2 } else { 0 };
        wire.extend(util::masked_frame(i + 1 == count, opcode, &[*byte]));
    }
    (wire, msg)
}

/// Writes `bytes` to the peer's socket while the loop runs (the server reads
/// them meanwhile), reading what comes back.
fn send_while_running(lp: &Loop, peer: &mut Peer<TcpStream>, bytes: &[u8]) {
    let mut off = 0;
    run_until(lp, "the peer's bytes to be written", || {
        while off < bytes.len() {
            match peer.sock.write(&bytes[off..]) {
                Ok(n) => off += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("peer write failed: {e}"),
            }
        }
        peer.pump();
        off == bytes.len()
    });
}

/// Sends a message of `count` fragments and runs the loop until it is echoed or
/// the server sends a close frame: Ok(()) for the echo, Err(close code).
fn send_fragments(lp: &Loop, peer: &mut Peer<TcpStream>, count: usize) -> Result<(), u16> {
    let (wire, msg) = fragmented(count);
    let before = peer.data_msgs().len();
    send_while_running(lp, peer, &wire);
    run_until(lp, "the echo or a close", || {
        peer.pump();
        peer.data_msgs().len() > before || peer.close_received()
    });
    if peer.close_received() {
        return Err(peer.close_code());
    }
    assert_eq!(peer.data_msgs()[before], (OpCode::Binary, msg));
    Ok(())
}

#[test]
fn the_default_fragment_cap_passes_its_count_of_fragments_and_refuses_one_more() {
    let lp = Loop::new().unwrap();
    let (listener, _log) = echo_listener(&lp, |p| p);
    let mut peer = client(&lp, listener.local_addr());
    // Autobahn 9.3.1 and 9.4.1 send 4 MiB in 64-byte fragments and an empty last
    // one: 65,537 frames, which the default must take.
    let cap = net_websocket_ev::websocket::listen::DEFAULT_MAX_FRAGMENTS as usize;
    assert!(cap > 65_537, "{cap}");
    assert_eq!(send_fragments(&lp, &mut peer, cap), Ok(()));
    assert_eq!(send_fragments(&lp, &mut peer, cap + 1), Err(1009));
    websocket::abort_all(&lp);
}

#[test]
fn max_fragments_closes_a_message_past_it_with_1009() {
    let lp = Loop::new().unwrap();
    let (listener, _log) = echo_listener(&lp, |p| p.max_fragments(Some(3)));
    let mut peer = client(&lp, listener.local_addr());
    assert_eq!(send_fragments(&lp, &mut peer, 3), Ok(()));
    assert_eq!(send_fragments(&lp, &mut peer, 1), Ok(()));
    assert_eq!(send_fragments(&lp, &mut peer, 4), Err(1009));
    websocket::abort_all(&lp);
}

#[test]
fn max_fragments_none_lifts_the_cap() {
    let lp = Loop::new().unwrap();
    let (listener, _log) = echo_listener(&lp, |p| p.max_fragments(Some(3)).max_fragments(None));
    let mut peer = client(&lp, listener.local_addr());
    assert_eq!(send_fragments(&lp, &mut peer, 4), Ok(()));
    assert_eq!(send_fragments(&lp, &mut peer, 65_537), Ok(()));
    websocket::abort_all(&lp);
}

/// The start of a masked binary frame declaring 1 MiB, with its first bytes.
fn trickle_start() -> Vec<u8> {
    let mut wire = vec![0x82, 0x80 | 127];
    wire.extend_from_slice(&(1u64 << 20).to_be_bytes());
    wire.extend_from_slice(&[0x11, 0x22, 0x33, 0x44]); // mask key
    wire.extend_from_slice(&[0x11 ^ b'a', 0x22 ^ b'b', 0x33 ^ b'c']);
    wire
}

#[test]
fn message_timeout_closes_a_trickling_message_with_1008() {
    const TIMEOUT: Duration = Duration::from_millis(200);
    let lp = Loop::new().unwrap();
    let (listener, _log) = echo_listener(&lp, |p| p.message_timeout(Some(TIMEOUT)));
    let mut peer = client(&lp, listener.local_addr());
    let clock = LoopClock::start(&lp);
    peer.send_raw(&trickle_start());
    run_until(&lp, "the close for the trickling message", || {
        peer.pump();
        peer.close_received()
    });
    assert_eq!(peer.close_code(), 1008);
    assert!(
        clock.elapsed() >= TIMEOUT,
        "closed after {:?}",
        clock.elapsed()
    );
    assert!(peer.data_msgs().is_empty());
    websocket::abort_all(&lp);
}

#[test]
fn message_timeout_none_lifts_the_deadline() {
    const TIMEOUT: Duration = Duration::from_millis(200);
    let lp = Loop::new().unwrap();
    // Beside it, a listener that keeps the deadline: once it has cut its
    // trickle, the lifted one's has outlived the same deadline.
    let (timed, _log1) = echo_listener(&lp, |p| p.message_timeout(Some(TIMEOUT)));
    let (lifted, _log2) = echo_listener(&lp, |p| {
        p.message_timeout(Some(TIMEOUT)).message_timeout(None)
    });
    let mut cut = client(&lp, timed.local_addr());
    let mut kept = client(&lp, lifted.local_addr());
    kept.send_raw(&trickle_start());
    cut.send_raw(&trickle_start());
    run_until(&lp, "the close for the timed listener's trickle", || {
        cut.pump();
        kept.pump();
        cut.close_received()
    });
    assert_eq!(cut.close_code(), 1008);
    // Whatever the loop had due has run.
    util::spin(&lp, 3);
    kept.pump();
    assert!(!kept.close_received() && !kept.eof && kept.error.is_none());
    websocket::abort_all(&lp);
}

#[test]
fn a_head_request_gets_no_body_also_when_the_server_answers_for_the_hook() {
    // The hook accepts a plain HEAD (answered as without a hook: 400) or gives an
    // invalid answer (500): neither writes its body to a HEAD.
    let lp = Loop::new().unwrap();
    let (listener, _log) = echo_listener(&lp, |p| {
        p.on_request(|req| match req.path.as_str() {
            "/bad" => Answer::status(200).header("Content-Length", "0"),
            _ => Answer::accept(),
        })
    });
    for (path, status) in [("/", "400"), ("/bad", "500")] {
        let mut sock = connect(listener.local_addr());
        sock.write_all(format!("HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        let answer = String::from_utf8(read_to_eof(&lp, &mut sock)).unwrap();
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{answer}"
        );
        assert!(answer.contains("\r\nContent-Length: "), "{answer}");
        assert!(
            answer.ends_with("\r\n\r\n"),
            "a body after the head: {answer:?}"
        );
    }
}

#[test]
fn a_bad_head_request_gets_its_refusal_without_a_body() {
    // Refused while parsing (no Request yet): without a hook a plain HEAD, with
    // one a HEAD that asks for an upgrade.
    let lp = Loop::new().unwrap();
    let (plain, _log) = echo_listener(&lp, |p| p);
    let (hooked, _log) = echo_listener(&lp, |p| p.on_request(|_| Answer::accept()));
    let requests = [
        (
            plain.local_addr(),
            "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n".to_owned(),
        ),
        (
            hooked.local_addr(),
            upgrade_request("").replacen("GET", "HEAD", 1),
        ),
    ];
    for (addr, request) in requests {
        let mut sock = connect(addr);
        sock.write_all(request.as_bytes()).unwrap();
        let answer = String::from_utf8(read_to_eof(&lp, &mut sock)).unwrap();
        assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
        assert!(answer.contains("\r\nContent-Length: "), "{answer}");
        assert!(
            answer.ends_with("\r\n\r\n"),
            "a body after the head: {answer:?}"
        );
    }
}

#[test]
fn abort_all_ends_the_handshakes_of_a_dropped_listener() {
    // The teardown of a loop: the listener is gone (dropped: its handshakes were
    // to finish on the loop), abort_all must not leave their sockets open.
    let lp = Loop::new().unwrap();
    let (listener, log) = echo_listener(&lp, |p| p);
    let mut sock = connect(listener.local_addr());
    run_until(&lp, "the accept", || listener.stats().handshakes == 1);
    sock.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    drop(listener);
    websocket::abort_all(&lp);
    assert!(matches!(log.borrow().errors[..], [UpgradeError::Aborted]));
    drop(lp); // not run again: the socket is closed already
    sock.set_nonblocking(false).unwrap();
    sock.set_read_timeout(Some(deadline())).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(sock.read(&mut buf).unwrap(), 0, "EOF without an answer");
}

#[test]
fn abort_from_inside_on_error_still_reports_each_aborted_handshake() {
    let lp = Loop::new().unwrap();
    let handle: Rc<RefCell<Option<Listener>>> = Rc::default();
    let errors: Rc<RefCell<Vec<UpgradeError>>> = Rc::default();
    let (h, e) = (handle.clone(), errors.clone());
    let listener = Listener::new(
        ListenParams::new("127.0.0.1:0")
            .event_loop(&lp)
            .on_connect(drop)
            .on_error(move |err, _peer| {
                e.borrow_mut().push(clone_error(err));
                if let Some(listener) = h.borrow().as_ref() {
                    listener.abort(); // from inside on_error
                }
            }),
    )
    .unwrap();
    let addr = listener.local_addr();
    *handle.borrow_mut() = Some(listener);
    let mut socks: Vec<TcpStream> = (0..3).map(|_| connect(addr)).collect();
    run_until(&lp, "three accepts", || {
        handle.borrow().as_ref().unwrap().stats().handshakes == 3
    });
    socks[0].write_all(b"BAD\r\n\r\n").unwrap();
    run_until(&lp, "the first error", || !errors.borrow().is_empty());
    let errors = errors.borrow();
    assert!(
        matches!(
            errors[..],
            [
                UpgradeError::Handshake(_),
                UpgradeError::Aborted,
                UpgradeError::Aborted
            ]
        ),
        "{errors:?}"
    );
    assert_eq!(handle.borrow().as_ref().unwrap().stats().handshakes, 0);
    // The listener holds on_error, which holds the handle to the listener: break the
    // cycle, as a Perl program undefs its circular reference.
    handle.borrow_mut().take();
}
