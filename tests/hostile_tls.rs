//! Hostile peers of a TLS server (`wss://`), over real loopback sockets: garbage
//! instead of a ClientHello, a stalled or dribbled TLS handshake, and on established
//! connections an oversized record, a corrupted record and a fatal alert. Each is
//! cut off promptly (a TLS failure on an open connection reaches `on_close` as 1015
//! with the cause) while a good TLS client of ours, on the same loop, keeps getting
//! its echoes.
#![cfg(feature = "tls")]

#[path = "util/arena.rs"]
mod arena;
mod util;

use std::cell::{Cell, RefCell};
use std::io::{ErrorKind, Read, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

use arena::{port_of, Arena, REQUEST};
use net_websocket_ev::handshake::{ClientRequest, Response};
use net_websocket_ev::tls::rustls::{self, pki_types::ServerName, ClientConnection};
use net_websocket_ev::websocket::upgrade::{upgrade, HandshakeOptions, UpgradeError, Upgraded};
use net_websocket_ev::{Client, CloseCause, OpCode, WebSocket};
use util::tls::{RawTls, TestPki};
use util::{masked_frame, read_to_end, LoopClock};

/// The handshake timeout of the tests about it (scaled down from seconds).
const SHORT_TIMEOUT: Duration = Duration::from_millis(200);

/// A TLS server whose handshakes time out after `timeout`, except the first one's
/// (the good client's, which must not depend on the machine's speed: under
/// valgrind a TLS handshake can take longer than a short timeout).
fn tls_arena(pki: &TestPki, timeout: Duration) -> Arena {
    let tls = pki.server_tls();
    let first = Cell::new(true);
    Arena::new(
        move || {
            HandshakeOptions::default()
                .server_tls(tls.clone())
                .timeout(if first.replace(false) {
                    2 * util::deadline()
                } else {
                    timeout
                })
        },
        |p| p,
    )
}

/// A TLS server whose handshakes only a failure can end (the timeout is longer than
/// any wait): what ends them early is the check under test.
fn patient_arena(pki: &TestPki) -> Arena {
    tls_arena(pki, 2 * util::deadline())
}

type Outcome = Rc<RefCell<Option<Result<Upgraded<Response>, UpgradeError>>>>;

/// Our own client over `wss://`, on the arena's loop: one text message in flight at
/// a time, each echo checked, the next sent from the echo's callback.
struct Good {
    ws: WebSocket,
    echoed: Rc<Cell<usize>>,
    closed: Rc<Cell<Option<u16>>>,
    port: u16,
}

impl Good {
    fn connect(arena: &Arena, pki: &TestPki) -> Good {
        let sock = arena.connect();
        let port = port_of(&sock);
        let (request, ..) = ClientRequest::from_url("wss://localhost/good").unwrap();
        let outcome: Outcome = Rc::default();
        let o = outcome.clone();
        let options = HandshakeOptions::default().client_tls(pki.client_tls());
        upgrade(&arena.lp, sock, &request, options, move |r| {
            *o.borrow_mut() = Some(r)
        });
        arena.run_until("the good client's handshake", None, || {
            let seen = arena.seen.borrow();
            outcome.borrow().is_some()
                && (seen.conns.contains_key(&port) || seen.refused.contains_key(&port))
        });
        assert_eq!(refusal(arena, port), None, "the good client was refused");
        let upgraded = outcome
            .borrow_mut()
            .take()
            .unwrap()
            .expect("good handshake");
        let echoed = Rc::new(Cell::new(0usize));
        let closed = Rc::new(Cell::new(None));
        let (e, c) = (echoed.clone(), closed.clone());
        let ws = Client::new(
            upgraded
                .into_params()
                .on_msg_recv(move |ws, _, op, msg, _| {
                    assert_eq!(op, OpCode::Text);
                    assert_eq!(msg, format!("good {}", e.get()).as_bytes());
                    e.set(e.get() + 1);
                    ws.queue_text(&format!("good {}", e.get())).unwrap();
                })
                .on_close(move |_, code| c.set(Some(code))),
        )
        .unwrap();
        ws.queue_text("good 0").unwrap();
        Good {
            ws,
            echoed,
            closed,
            port,
        }
    }

    /// Asserts it is still served: a few fresh round trips, its connection open.
    fn assert_served(&self, arena: &Arena) {
        let target = self.echoed.get() + 3;
        arena.run_until("the good client's echoes", None, || {
            self.echoed.get() >= target || self.closed.get().is_some()
        });
        assert_eq!(self.closed.get(), None, "the good client was dropped");
        assert!(!self.ws.is_closed());
        assert_eq!(arena.close_of(self.port), None);
    }
}

/// The server's handshake failure for the client at `port`, once there is one.
fn refusal(arena: &Arena, port: u16) -> Option<String> {
    arena.seen.borrow().refused.get(&port).cloned()
}

#[test]
fn garbage_instead_of_a_client_hello_is_refused_at_once() {
    let pki = TestPki::new();
    let arena = patient_arena(&pki);
    let good = Good::connect(&arena, &pki);
    // A plain ws:// request to the wss:// port, then random bytes.
    for garbage in [REQUEST.to_vec(), arena::garbage(7, 600)] {
        let mut bad = arena.connect();
        let port = port_of(&bad);
        bad.write_all(&garbage).unwrap();
        let mut answer = Vec::new();
        arena.run_until("the garbage refused", None, || {
            refusal(&arena, port).is_some() && read_to_end(&mut bad, &mut answer)
        });
        let why = refusal(&arena, port).unwrap();
        assert!(why.starts_with("Tls("), "{why}");
        // At most an alert: a TLS record of type 21, no HTTP answer.
        assert!(answer.is_empty() || answer[0] == 21, "{answer:?}");
    }
    good.assert_served(&arena);
}

#[test]
fn a_silent_connection_is_cut_at_the_handshake_timeout() {
    let pki = TestPki::new();
    let arena = tls_arena(&pki, SHORT_TIMEOUT);
    let good = Good::connect(&arena, &pki);
    let clock = LoopClock::start(&arena.lp);
    let mut bad = arena.connect();
    let port = port_of(&bad);
    let mut answer = Vec::new();
    arena.run_until("the silent client cut off", None, || {
        refusal(&arena, port).is_some() && read_to_end(&mut bad, &mut answer)
    });
    assert!(
        clock.elapsed() >= SHORT_TIMEOUT,
        "cut after {:?}",
        clock.elapsed()
    );
    assert_eq!(refusal(&arena, port).unwrap(), "Timeout");
    good.assert_served(&arena);
}

/// The first flight of a rustls client: its ClientHello record.
fn client_hello(pki: &TestPki) -> Vec<u8> {
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = ClientConnection::new(pki.client_tls().config().clone(), name).unwrap();
    let mut hello = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut hello).unwrap();
    }
    assert_eq!(hello[0], 22, "a handshake record");
    hello
}

#[test]
fn half_a_client_hello_is_cut_at_the_handshake_timeout() {
    let pki = TestPki::new();
    let arena = tls_arena(&pki, SHORT_TIMEOUT);
    let good = Good::connect(&arena, &pki);
    let hello = client_hello(&pki);
    let clock = LoopClock::start(&arena.lp);
    let mut bad = arena.connect();
    let port = port_of(&bad);
    bad.write_all(&hello[..hello.len() / 2]).unwrap();
    let mut answer = Vec::new();
    arena.run_until("the stalled handshake cut off", None, || {
        refusal(&arena, port).is_some() && read_to_end(&mut bad, &mut answer)
    });
    assert!(
        clock.elapsed() >= SHORT_TIMEOUT,
        "cut after {:?}",
        clock.elapsed()
    );
    assert_eq!(refusal(&arena, port).unwrap(), "Timeout");
    // At most an alert (close_notify), no ServerHello.
    assert!(answer.is_empty() || answer[0] == 21, "{answer:?}");
    good.assert_served(&arena);
}

#[test]
fn a_client_hello_dribbled_byte_by_byte_is_cut_at_the_handshake_timeout() {
    let pki = TestPki::new();
    let arena = tls_arena(&pki, SHORT_TIMEOUT);
    let good = Good::connect(&arena, &pki);
    let hello = client_hello(&pki);
    let clock = LoopClock::start(&arena.lp);
    let mut bad = arena.connect();
    let port = port_of(&bad);
    // One byte every 10 ms: the hello would take seconds; progress of the TLS
    // handshake does not extend the timeout of the whole handshake.
    let start = Instant::now();
    let mut sent = 0;
    let mut answer = Vec::new();
    arena.run_until("the dribbled handshake cut off", None, || {
        let due = (start.elapsed().as_millis() / 10) as usize + 1;
        while sent < due.min(hello.len()) {
            if bad.write(&hello[sent..=sent]).is_err() {
                break;
            }
            sent += 1;
        }
        refusal(&arena, port).is_some() && read_to_end(&mut bad, &mut answer)
    });
    assert!(
        clock.elapsed() >= SHORT_TIMEOUT,
        "cut after {:?}",
        clock.elapsed()
    );
    assert!(
        sent < hello.len(),
        "the whole hello went out ({sent} bytes)"
    );
    assert_eq!(refusal(&arena, port).unwrap(), "Timeout");
    good.assert_served(&arena);
}

#[test]
fn a_tls_handshake_without_a_request_is_cut_at_the_handshake_timeout() {
    let pki = TestPki::new();
    let arena = tls_arena(&pki, SHORT_TIMEOUT);
    let good = Good::connect(&arena, &pki);
    let clock = LoopClock::start(&arena.lp);
    let sock = arena.connect();
    let port = port_of(&sock);
    let mut raw = RawTls::new(sock, pki.client_tls().config().clone(), "localhost");
    // TLS completes; the WebSocket request never comes.
    arena.run_until("the TLS handshake", None, || {
        raw.pump();
        raw.connected() || raw.end.is_some()
    });
    assert!(raw.connected(), "{:?} {:?}", raw.end, raw.tls_error);
    arena.run_until("the raw client cut off", None, || {
        raw.pump();
        refusal(&arena, port).is_some() && raw.end.is_some()
    });
    assert!(
        clock.elapsed() >= SHORT_TIMEOUT,
        "cut after {:?}",
        clock.elapsed()
    );
    assert_eq!(refusal(&arena, port).unwrap(), "Timeout");
    assert!(raw.plain.is_empty(), "no answer to no request");
    assert_eq!(raw.end, Some(Ok(())), "the server sent close_notify");
    good.assert_served(&arena);
}

/// A raw rustls client whose TLS and WebSocket handshakes are done, and its port.
fn established(arena: &Arena, pki: &TestPki) -> (RawTls, u16) {
    let sock = arena.connect();
    let port = port_of(&sock);
    let mut raw = RawTls::new(sock, pki.client_tls().config().clone(), "localhost");
    raw.send(REQUEST);
    arena.run_until("the raw client's 101", None, || {
        raw.pump();
        assert!(raw.end.is_none(), "the server ended: {:?}", raw.tls_error);
        raw.plain.windows(4).any(|w| w == b"\r\n\r\n")
    });
    assert!(raw.plain.starts_with(b"HTTP/1.1 101"));
    raw.plain.clear();
    arena.run_until("the server's connection", None, || {
        arena.seen.borrow().conns.contains_key(&port)
    });
    (raw, port)
}

/// Runs until the server ended the connection at `port` and the raw client's reading
/// ended (the socket was closed); checks 1015 and a TLS cause, and returns it.
fn assert_ended_by_tls(arena: &Arena, raw: &mut RawTls, port: u16) -> rustls::Error {
    arena.run_until("the server's end", None, || {
        raw.pump();
        arena.close_of(port).is_some() && raw.end.is_some()
    });
    assert_eq!(arena.close_of(port), Some(1015));
    let ws = arena.conn(port);
    assert_eq!(ws.as_raw_fd(), None, "the fd is closed");
    let mut rest = Vec::new();
    arena.run_until("the socket's end", None, || {
        read_to_end(&mut raw.sock, &mut rest)
    });
    match ws.close_cause() {
        Some(CloseCause::Tls(err)) => *err,
        other => panic!("expected a TLS cause, got {other:?}"),
    }
}

#[test]
fn an_oversized_record_ends_the_connection_with_1015() {
    let pki = TestPki::new();
    let arena = patient_arena(&pki);
    let good = Good::connect(&arena, &pki);
    let (mut raw, port) = established(&arena, &pki);
    // An application-data record header claiming 65535 bytes: more than TLS allows
    // (16 KiB + 2048); the server must not wait for the rest.
    let mut record = vec![0x17, 0x03, 0x03, 0xff, 0xff];
    record.extend(arena::garbage(3, 100));
    raw.send_raw(&record).unwrap();
    let err = assert_ended_by_tls(&arena, &mut raw, port);
    assert!(matches!(err, rustls::Error::InvalidMessage(_)), "{err:?}");
    good.assert_served(&arena);
}

#[test]
fn a_second_client_hello_ends_the_connection_with_1015() {
    let pki = TestPki::new();
    let arena = patient_arena(&pki);
    let good = Good::connect(&arena, &pki);
    let (mut raw, port) = established(&arena, &pki);
    // A plaintext handshake record on an encrypted connection (a renegotiation,
    // which TLS 1.3 does not have).
    raw.send_raw(&client_hello(&pki)).unwrap();
    assert_ended_by_tls(&arena, &mut raw, port);
    good.assert_served(&arena);
}

/// The TLS records rustls makes of `plain`.
fn records_of(raw: &mut RawTls, plain: &[u8]) -> Vec<u8> {
    raw.send(plain);
    let mut wire = Vec::new();
    while raw.conn.wants_write() {
        raw.conn.write_tls(&mut wire).unwrap();
    }
    wire
}

#[test]
fn a_corrupted_record_ends_the_connection_with_1015() {
    let pki = TestPki::new();
    let arena = patient_arena(&pki);
    let good = Good::connect(&arena, &pki);
    let (mut raw, port) = established(&arena, &pki);
    // A message the server would echo, in a record with one bit flipped.
    let mut wire = records_of(&mut raw, &masked_frame(true, 1, b"never delivered"));
    let at = wire.len() / 2;
    wire[at] ^= 0x01;
    raw.send_raw(&wire).unwrap();
    let err = assert_ended_by_tls(&arena, &mut raw, port);
    assert_eq!(err, rustls::Error::DecryptError);
    assert_eq!(
        arena.seen.borrow().messages.get(&port),
        None,
        "nothing delivered"
    );
    good.assert_served(&arena);
}

#[test]
fn a_fatal_alert_from_the_peer_ends_the_connection_with_1015() {
    let pki = TestPki::new();
    let arena = patient_arena(&pki);
    let good = Good::connect(&arena, &pki);
    let (mut raw, port) = established(&arena, &pki);
    // The server answers a ping; its pong, corrupted on the way, makes the raw
    // client's rustls fail and send the server a fatal alert (bad_record_mac).
    raw.send(&masked_frame(true, 9, b"ping"));
    while raw.conn.wants_write() {
        raw.conn.write_tls(&mut raw.sock).unwrap();
    }
    let mut wire = Vec::new();
    arena.run_until("the pong's record", None, || {
        let mut buf = [0u8; 4096];
        match raw.sock.read(&mut buf) {
            Ok(0) => panic!("the server closed"),
            Ok(n) => wire.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => panic!("{e}"),
        }
        wire.len() >= 5 && wire.len() >= 5 + u16::from_be_bytes([wire[3], wire[4]]) as usize
    });
    let last = wire.len() - 1;
    wire[last] ^= 0x80;
    raw.conn.read_tls(&mut &wire[..]).unwrap();
    assert_eq!(
        raw.conn.process_new_packets().unwrap_err(),
        rustls::Error::DecryptError
    );
    assert!(raw.conn.wants_write(), "rustls has an alert to send");
    while raw.conn.wants_write() {
        raw.conn.write_tls(&mut raw.sock).unwrap();
    }
    let mut rest = Vec::new();
    arena.run_until("the server's end", None, || {
        arena.close_of(port).is_some() && read_to_end(&mut raw.sock, &mut rest)
    });
    assert_eq!(arena.close_of(port), Some(1015));
    let ws = arena.conn(port);
    assert_eq!(ws.as_raw_fd(), None);
    match ws.close_cause() {
        Some(CloseCause::Tls(err)) if matches!(*err, rustls::Error::AlertReceived(_)) => {
            assert_eq!(
                *err,
                rustls::Error::AlertReceived(rustls::AlertDescription::BadRecordMac)
            )
        }
        other => panic!("expected the alert as the cause, got {other:?}"),
    }
    good.assert_served(&arena);
}
