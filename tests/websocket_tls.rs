//! wss://: our client against our server over TLS on one loop, both sides driven by
//! the loop-driven handshakes (`upgrade::accept` with `server_tls`, `upgrade::upgrade`
//! with a `wss://` request), with a test CA made at run time: the data path. Echoes
//! of every size, TLS records split byte by byte, messages of several MiB, reading
//! paused with plaintext held inside rustls, frames that came with the handshake,
//! `close_notify`, key updates, and TLS 1.2. Flow control and timeouts over TLS are
//! in `websocket_tls_flow.rs`, the TLS configurations in `websocket_tls_config.rs`.
#![cfg(feature = "tls")]

mod util;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::rc::{Rc, Weak};
use std::time::Duration;

use net_websocket_ev::ev::{Events, Io, Loop};
use net_websocket_ev::handshake::{self, ClientRequest, Response, ServerHandshake};
use net_websocket_ev::tls::{rustls, ClientTls};
use net_websocket_ev::websocket::upgrade::{accept, upgrade, HandshakeOptions};
use net_websocket_ev::{websocket, Client, CloseCause, Fragment, OpCode, Server, WebSocket};
use util::tls::{
    close_both, echo, echo_pair, handshake_on, pattern, tcp, tls_pair, unwrap_both, Outcome,
    RawTls, Seen, TestPki,
};
use util::{masked_frame, run_for, run_until};

/// Text of about `len` bytes whose characters take 1 to 4 bytes each.
fn utf8_text(len: usize) -> String {
    let mut text = String::with_capacity(len + 16);
    let chars = ['a', 'é', '€', '😀', 'z', 'ж', '中', '𝄞'];
    let mut i = 0;
    while text.len() < len {
        text.push(chars[i % chars.len()]);
        i = i.wrapping_mul(31).wrapping_add(7) % 1009;
    }
    text
}

#[test]
fn echo_over_tls() {
    let lp = Loop::new().unwrap();
    let pki = TestPki::new();
    let (served, connected) = tls_pair(&lp, &pki, false);
    assert_eq!(served.head.path, "/t");
    let (_server, client, server_seen, client_seen) =
        echo_pair(&lp, (served, connected), |p| p, |p| p);
    let sizes = [0usize, 1, 125, 126, 65535, 65536, 1 << 20];
    for (seed, &size) in sizes.iter().enumerate() {
        client
            .queue_msg(&pattern(seed, size), OpCode::Binary)
            .unwrap();
    }
    run_until(&lp, "every echo", || client_seen.count() == sizes.len());
    for (seed, ((op, msg), &size)) in client_seen.msgs.borrow().iter().zip(&sizes).enumerate() {
        assert_eq!(*op, OpCode::Binary);
        assert!(
            *msg == pattern(seed, size),
            "echo {seed} of {size} bytes differs"
        );
    }
    close_both(&lp, &client, &server_seen, &client_seen);
}

/// One direction of a [`Relay`]: bytes read from one socket, waiting to be written to
/// the other.
#[derive(Default)]
struct Pipe {
    buf: VecDeque<u8>,
    /// The source ended: once `buf` is empty, the destination's writing is shut down.
    eof: bool,
    shut: bool,
}

/// A TCP relay on the loop that writes one byte per loop iteration and direction, so
/// that every TLS record (handshake and data, both ways) arrives in pieces: the
/// receiver is called for each byte as it comes.
struct Relay {
    socks: [TcpStream; 2],
    /// `pipes[i]`: from `socks[i]` to `socks[1 - i]`.
    pipes: [Pipe; 2],
    watchers: Vec<Io>,
    /// Bytes forwarded, by direction.
    moved: [usize; 2],
}

impl Relay {
    /// Relays between `a` and `b`.
    fn start(lp: &Loop, a: TcpStream, b: TcpStream) -> Rc<RefCell<Relay>> {
        for s in [&a, &b] {
            s.set_nonblocking(true).unwrap();
            s.set_nodelay(true).unwrap();
        }
        let relay = Rc::new(RefCell::new(Relay {
            socks: [a, b],
            pipes: Default::default(),
            watchers: Vec::new(),
            moved: [0; 2],
        }));
        for i in 0..2 {
            let weak: Weak<RefCell<Relay>> = Rc::downgrade(&relay);
            let fd = relay.borrow().socks[i].as_raw_fd();
            let io = Io::new(lp, fd, Events::READ, move |events| {
                if let Some(relay) = weak.upgrade() {
                    relay.borrow_mut().on_event(i, events);
                }
            })
            .unwrap();
            io.start();
            relay.borrow_mut().watchers.push(io);
        }
        relay
    }

    fn on_event(&mut self, i: usize, events: Events) {
        if events.contains(Events::READ) {
            let mut buf = [0u8; 4096];
            match (&self.socks[i]).read(&mut buf) {
                Ok(0) => self.pipes[i].eof = true,
                Ok(n) => self.pipes[i].buf.extend(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => self.pipes[i].eof = true,
            }
        }
        // `socks[i]` is the destination of `pipes[1 - i]`.
        let into = &mut self.pipes[1 - i];
        if events.contains(Events::WRITE) {
            if let Some(&byte) = into.buf.front() {
                match (&self.socks[i]).write(&[byte]) {
                    Ok(1) => {
                        into.buf.pop_front();
                        self.moved[1 - i] += 1;
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => into.buf.clear(), // the destination is gone
                }
            }
        }
        for j in 0..2 {
            let pipe = &mut self.pipes[j];
            if pipe.eof && pipe.buf.is_empty() && !pipe.shut {
                pipe.shut = true;
                let _ = self.socks[1 - j].shutdown(Shutdown::Write);
            }
        }
        self.arm();
    }

    /// Each socket: READ while its pipe is open and not too full, WRITE while the
    /// other pipe has bytes for it.
    fn arm(&self) {
        for (i, io) in self.watchers.iter().enumerate() {
            let mut events = Events::empty();
            if !self.pipes[i].eof && self.pipes[i].buf.len() < 64 * 1024 {
                events |= Events::READ;
            }
            if !self.pipes[1 - i].buf.is_empty() {
                events |= Events::WRITE;
            }
            io.set_events(events);
        }
    }
}

#[test]
fn records_arriving_byte_by_byte() {
    let lp = Loop::new().unwrap();
    let pki = TestPki::new();
    // client <-> relay (a) ... relay (b) <-> server
    let (client_stream, a) = tcp(false);
    let (b, server_stream) = tcp(false);
    let relay = Relay::start(&lp, a, b);
    let ends = unwrap_both(handshake_on(
        &lp,
        (client_stream, server_stream),
        pki.server_tls(),
        pki.client_tls(),
        "localhost",
    ));
    let (_server, client, server_seen, client_seen) = echo_pair(&lp, ends, |p| p, |p| p);
    // Frame headers of each length, and a message across TLS's 16 KiB records.
    let sizes = [0usize, 1, 2, 125, 126, 127, 1000, 16_385];
    for (seed, &size) in sizes.iter().enumerate() {
        client
            .queue_msg(&pattern(seed, size), OpCode::Binary)
            .unwrap();
    }
    let text = utf8_text(1500);
    client.queue_text(&text).unwrap();
    client.queue_msg(b"ping!", OpCode::Ping).unwrap();
    run_until(&lp, "every echo and the pong", || {
        client_seen.count() == sizes.len() + 2
    });
    // The pong goes out at once, before echoes still queued: data in order apart.
    let (data, pongs): (Vec<_>, Vec<_>) = client_seen
        .msgs
        .borrow()
        .iter()
        .cloned()
        .partition(|(op, _)| *op != OpCode::Pong);
    assert_eq!(pongs, [(OpCode::Pong, b"ping!".to_vec())]);
    for (seed, &size) in sizes.iter().enumerate() {
        assert_eq!(data[seed].0, OpCode::Binary);
        assert!(
            data[seed].1 == pattern(seed, size),
            "echo {seed} of {size} bytes differs"
        );
    }
    assert_eq!(data[sizes.len()], (OpCode::Text, text.into_bytes()));
    let moved = relay.borrow().moved;
    // Everything went through the relay (payloads, headers, TLS overhead).
    assert!(moved[0] > 19_000 && moved[1] > 19_000, "relayed {moved:?}");
    close_both(&lp, &client, &server_seen, &client_seen);
}

/// A producer sending `data` in pieces of what it is offered.
fn producer(data: Vec<u8>) -> impl FnMut(&WebSocket, &mut [u8]) -> Fragment {
    let mut off = 0;
    move |_, buf| {
        let n = buf.len().min(data.len() - off);
        buf[..n].copy_from_slice(&data[off..off + n]);
        off += n;
        if off == data.len() {
            Fragment::Eof(n)
        } else {
            Fragment::Data(n)
        }
    }
}

#[test]
fn messages_of_several_mib_fragmented_and_whole() {
    let lp = Loop::new().unwrap();
    let pki = TestPki::new();
    let ends = tls_pair(&lp, &pki, false);
    // Pieces of an odd size: characters are cut between frames, and (16 KiB records)
    // between TLS records.
    let (_server, client, server_seen, client_seen) =
        echo_pair(&lp, ends, |p| p, |p| p.fragment_size(100_003));
    let text = utf8_text(3 << 20);
    let binary = pattern(5, 4 << 20);
    client
        .queue_fragmented(producer(text.clone().into_bytes()), OpCode::Text)
        .unwrap();
    client
        .queue_fragmented(producer(binary.clone()), OpCode::Binary)
        .unwrap();
    client
        .queue_msg(&binary[..1 << 20], OpCode::Binary)
        .unwrap();
    run_until(&lp, "three large echoes", || client_seen.count() == 3);
    let msgs = client_seen.msgs.borrow();
    assert_eq!(msgs[0].0, OpCode::Text);
    assert!(msgs[0].1 == text.as_bytes(), "the text differs");
    assert_eq!(msgs[1].0, OpCode::Binary);
    assert!(msgs[1].1 == binary, "the fragmented binary differs");
    assert!(msgs[2].1 == binary[..1 << 20], "the whole binary differs");
    drop(msgs);
    close_both(&lp, &client, &server_seen, &client_seen);
}

#[test]
fn stop_read_with_plaintext_held_by_tls_then_start_read() {
    let lp = Loop::new().unwrap();
    let pki = TestPki::new();
    let (served, connected) = tls_pair(&lp, &pki, false);
    let got = Rc::new(Seen::default());
    let g = got.clone();
    let server = Server::new(served.into_params().event_loop(&lp).on_msg_recv(
        move |ws, _, op, msg, _| {
            if g.count() == 0 {
                ws.stop_read().unwrap();
            }
            g.msgs.borrow_mut().push((op, msg.to_vec()));
        },
    ))
    .unwrap();
    let client = Client::new(connected.into_params().event_loop(&lp)).unwrap();
    // One write: the large message's payload is read straight into the message (as
    // much as it needs), so the small ones in its last record stay decrypted inside
    // rustls when the first callback stops reading.
    client
        .queue_msg(&pattern(0, 40_000), OpCode::Binary)
        .unwrap();
    for i in 1..=5u8 {
        client.queue_msg(&[i; 10], OpCode::Binary).unwrap();
    }
    run_until(&lp, "the first message", || got.count() == 1);
    run_for(&lp, Duration::from_millis(100));
    assert_eq!(got.count(), 1, "a stopped reader got more");
    assert_eq!(
        client.queued_count().unwrap(),
        0,
        "the client sent everything"
    );
    // Nothing more comes from the socket: only what is buffered can be delivered.
    server.start_read().unwrap();
    run_until(&lp, "the rest", || got.count() == 6);
    let msgs = got.msgs.borrow();
    assert!(msgs[0].1 == pattern(0, 40_000));
    for i in 1..=5u8 {
        assert_eq!(msgs[i as usize].1, [i; 10]);
    }
    drop(msgs);
    websocket::abort_all(&lp);
}

/// A plain HTTP upgrade request (the RFC's sample key).
const REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\r\n";

#[test]
fn a_clean_close_ends_with_close_notify() {
    let lp = Loop::new().unwrap();
    let pki = TestPki::new();
    let (mut raw, seen, server) = raw_to_echo_server(&lp, &pki, &pki.client_tls());
    raw_echo(&lp, &mut raw, b"hello");
    raw.plain.clear();
    raw.send(&masked_frame(true, 8, &1000u16.to_be_bytes()));
    run_until(&lp, "the server's end", || {
        raw.pump();
        raw.end.is_some() && seen.close.get().is_some()
    });
    assert_eq!(seen.close.get(), Some(1000));
    assert_eq!(
        raw.end,
        Some(Ok(())),
        "the server's TLS ended without close_notify ({:?})",
        raw.tls_error
    );
    assert_eq!(raw.plain, [0x88, 2, 0x03, 0xe8], "the close echoing ours");
    assert_eq!(
        server.borrow().as_ref().unwrap().close_cause(),
        Some(CloseCause::PeerClose)
    );
}

#[test]
fn frames_sent_with_the_request_are_all_delivered() {
    let lp = Loop::new().unwrap();
    let pki = TestPki::new();
    let (client_stream, server_stream) = tcp(false);
    let seen = Rc::new(Seen::default());
    let (s, lp2) = (seen.clone(), lp.clone());
    let options = HandshakeOptions::default().server_tls(pki.server_tls());
    accept(&lp, server_stream, options, move |r| {
        Server::new(echo(r.unwrap().into_params().event_loop(&lp2), &s)).unwrap();
    });
    // The request and ten frames in one record. The handshake reads the plaintext
    // 4 KiB at a time and the head is exactly 4 KiB long: nothing is left over from
    // the handshake, the frames wait decrypted inside rustls, and nothing more will
    // come from the socket.
    let mut raw = RawTls::new(
        client_stream,
        pki.client_tls().config().clone(),
        "localhost",
    );
    let mut first_flight = REQUEST[..REQUEST.len() - 2].to_vec();
    let pad = 4096 - first_flight.len() - b"X-Pad: \r\n\r\n".len();
    first_flight.extend_from_slice(b"X-Pad: ");
    first_flight.extend(std::iter::repeat(b'p').take(pad));
    first_flight.extend_from_slice(b"\r\n\r\n");
    assert_eq!(first_flight.len(), 4096);
    for i in 0..10u8 {
        first_flight.extend(masked_frame(true, 2, &[i; 1000]));
    }
    raw.send(&first_flight);
    let echoes: Vec<u8> = (0..10u8)
        .flat_map(|i| [&[0x82, 126, 0x03, 0xe8][..], &[i; 1000]].concat())
        .collect();
    run_until(&lp, "ten echoes", || {
        raw.pump();
        raw.plain.ends_with(&echoes) || raw.end.is_some()
    });
    assert!(raw.plain.starts_with(b"HTTP/1.1 101"));
    assert!(raw.plain.ends_with(&echoes));
    websocket::abort_all(&lp);
}

#[test]
fn frames_sent_with_the_101_are_all_delivered() {
    let lp = Loop::new().unwrap();
    let pki = TestPki::new();
    let (client_stream, server_stream) = tcp(false);
    let mut raw = RawTls::server(server_stream, pki.server_tls().config().clone());
    let (request, ..) = ClientRequest::from_url("wss://localhost/t").unwrap();
    let connected: Outcome<Response> = Rc::default();
    let c = connected.clone();
    let options = HandshakeOptions::default().client_tls(pki.client_tls());
    upgrade(&lp, client_stream, &request, options, move |r| {
        *c.borrow_mut() = Some(r)
    });
    let mut parser = ServerHandshake::new(8192);
    let mut head = None;
    run_until(&lp, "the request", || {
        raw.pump();
        if !raw.plain.is_empty() {
            head = parser.feed(&std::mem::take(&mut raw.plain)).unwrap();
        }
        head.is_some()
    });
    // The 101 padded to exactly the 4 KiB the handshake reads at a time, and ten
    // frames, in one record: nothing is left over from the handshake, the frames
    // wait decrypted inside rustls, and nothing more will come from the socket.
    let answer = handshake::response(&head.unwrap(), None);
    let mut flight = answer[..answer.len() - 2].to_vec();
    let pad = 4096 - flight.len() - b"X-Pad: \r\n\r\n".len();
    flight.extend_from_slice(b"X-Pad: ");
    flight.extend(std::iter::repeat(b'p').take(pad));
    flight.extend_from_slice(b"\r\n\r\n");
    assert_eq!(flight.len(), 4096);
    for i in 0..10u8 {
        flight.extend_from_slice(&[0x82, 126, 0x03, 0xe8]); // unmasked, 1000 bytes
        flight.extend_from_slice(&[i; 1000]);
    }
    raw.send(&flight);
    run_until(&lp, "the client's handshake", || {
        raw.pump();
        connected.borrow().is_some()
    });
    let connected = connected.borrow_mut().take().unwrap().unwrap();
    assert!(
        connected.leftover.is_empty(),
        "the head ends the handshake's read"
    );
    let seen = Rc::new(Seen::default());
    let _client = Client::new(seen.record(connected.into_params().event_loop(&lp))).unwrap();
    run_until(&lp, "ten messages", || {
        raw.pump();
        seen.count() == 10
    });
    for (i, (op, msg)) in seen.msgs.borrow().iter().enumerate() {
        assert_eq!(
            (*op, msg.as_slice()),
            (OpCode::Binary, &[i as u8; 1000][..])
        );
    }
    websocket::abort_all(&lp);
}

/// A raw TLS client (rustls) to an echo server of ours: the raw client with its
/// WebSocket handshake done, the server's record of its close, and the server.
fn raw_to_echo_server(
    lp: &Loop,
    pki: &TestPki,
    client: &ClientTls,
) -> (RawTls, Rc<Seen>, Rc<RefCell<Option<WebSocket>>>) {
    let (client_stream, server_stream) = tcp(false);
    let seen = Rc::new(Seen::default());
    let (s, lp2) = (seen.clone(), lp.clone());
    let server = Rc::new(RefCell::new(None));
    let sv = server.clone();
    let options = HandshakeOptions::default().server_tls(pki.server_tls());
    accept(lp, server_stream, options, move |r| {
        let params = echo(r.unwrap().into_params().event_loop(&lp2), &s);
        *sv.borrow_mut() = Some(Server::new(params).unwrap());
    });
    let mut raw = RawTls::new(client_stream, client.config().clone(), "localhost");
    raw.send(REQUEST);
    run_until(lp, "the 101", || {
        raw.pump();
        raw.plain.windows(4).any(|w| w == b"\r\n\r\n")
    });
    assert!(raw.plain.starts_with(b"HTTP/1.1 101"));
    raw.plain.clear();
    run_until(lp, "the server connection", || server.borrow().is_some());
    (raw, seen, server)
}

/// Sends `msg` (binary, under 126 bytes) and waits for its echo.
fn raw_echo(lp: &Loop, raw: &mut RawTls, msg: &[u8]) {
    raw.plain.clear();
    raw.send(&masked_frame(true, 2, msg));
    let echo = [&[0x82, msg.len() as u8][..], msg].concat();
    run_until(lp, "the echo", || {
        raw.pump();
        assert_eq!(raw.end, None, "{:?}", raw.tls_error);
        raw.plain.len() >= echo.len()
    });
    assert_eq!(raw.plain, echo);
}

#[test]
fn key_updates_from_the_peer_are_answered() {
    let lp = Loop::new().unwrap();
    let pki = TestPki::new();
    let (mut raw, seen, _server) = raw_to_echo_server(&lp, &pki, &pki.client_tls());
    raw_echo(&lp, &mut raw, b"before");
    for round in 0..3u8 {
        // TLS 1.3 KeyUpdate asking for the server's: both directions change keys.
        raw.conn.refresh_traffic_keys().unwrap();
        raw_echo(&lp, &mut raw, &[round; 100]);
    }
    assert_eq!(seen.close.get(), None);
    websocket::abort_all(&lp);
}

#[test]
fn a_peers_close_notify_is_the_end_of_its_data() {
    let lp = Loop::new().unwrap();
    let pki = TestPki::new();
    let (mut raw, seen, server) = raw_to_echo_server(&lp, &pki, &pki.client_tls());
    raw_echo(&lp, &mut raw, b"hello");
    // close_notify without a close frame: like TCP's end without one.
    raw.conn.send_close_notify();
    run_until(&lp, "the server's end", || {
        raw.pump();
        seen.close.get().is_some()
    });
    assert_eq!(seen.close.get(), Some(1006));
    let ws = server.borrow().clone().unwrap();
    assert_eq!(ws.close_cause(), Some(CloseCause::Eof));
    run_until(&lp, "our close_notify", || {
        raw.pump();
        raw.end.is_some()
    });
    assert_eq!(raw.end, Some(Ok(())), "{:?}", raw.tls_error);
}

#[test]
fn echo_over_tls12() {
    let lp = Loop::new().unwrap();
    let pki = TestPki::new();
    let ends = unwrap_both(handshake_on(
        &lp,
        tcp(false),
        pki.server_tls(),
        pki.client_tls12(),
        "localhost",
    ));
    assert_eq!(
        ends.0.tls.as_ref().unwrap().rustls().protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    let (_server, client, server_seen, client_seen) = echo_pair(&lp, ends, |p| p, |p| p);
    let sizes = [0usize, 125, 16_385, 1 << 20];
    for (seed, &size) in sizes.iter().enumerate() {
        client
            .queue_msg(&pattern(seed, size), OpCode::Binary)
            .unwrap();
    }
    run_until(&lp, "every echo", || client_seen.count() == sizes.len());
    for (seed, ((_, msg), &size)) in client_seen.msgs.borrow().iter().zip(&sizes).enumerate() {
        assert!(
            *msg == pattern(seed, size),
            "echo {seed} of {size} bytes differs"
        );
    }
    close_both(&lp, &client, &server_seen, &client_seen);
}
