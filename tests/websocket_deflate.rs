//! permessage-deflate on real sockets and a real loop: both loop-driven
//! handshakes negotiate it and both ends compress (whole and fragmented
//! messages, both directions); an idle connection costs the same heap with
//! compression on (no context takeover) as without; with context takeover the
//! per-connection cost is measured.
#![cfg(all(feature = "ev", feature = "deflate"))]

mod counting_alloc;
mod util;

use std::cell::RefCell;
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use counting_alloc::{allocs, live_bytes, peak_bytes, reset_peak};
use net_websocket_ev::ev::{Loop, RunFlags};
use net_websocket_ev::handshake::deflate::PerMessageDeflate;
use net_websocket_ev::handshake::{ClientRequest, Request, Response};
use net_websocket_ev::proto::{Compression, Config, Engine, Role, Window};
use net_websocket_ev::websocket::upgrade::{accept, upgrade, HandshakeOptions, Upgraded};
use net_websocket_ev::{websocket, Client, Fragment, OpCode, Params, Rsv, Server, WebSocket};
use util::{echo_round, run_until, tcp_pair, Peer, Seen};

fn settings(takeover: bool) -> PerMessageDeflate {
    PerMessageDeflate::default()
        .server_no_context_takeover(!takeover)
        .client_no_context_takeover(!takeover)
        .threshold(0)
}

fn options(takeover: bool) -> HandshakeOptions {
    HandshakeOptions::default().deflate(Some(settings(takeover)))
}

/// JSON-like text of `len` bytes.
fn json_like(len: usize) -> Vec<u8> {
    let mut out = String::new();
    let mut i = 0u64;
    while out.len() < len {
        out.push_str(&format!("{{\"id\":{i},\"v\":{}}},", i * 7919 % 10007));
        i += 1;
    }
    out.truncate(len);
    out.into_bytes()
}

type Slot<H> = Rc<RefCell<Option<Upgraded<H>>>>;

/// What the client saw: the first frame of each message (rsv) and the messages.
#[derive(Default)]
struct Seen2 {
    first_rsv: Vec<Rsv>,
    in_message: bool,
    msgs: Vec<(OpCode, Vec<u8>)>,
}

/// The heap is counted for the whole process: the tests here take turns.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn both_handshakes_negotiate_and_both_ends_compress() {
    let _turn = one_at_a_time();
    for takeover in [false, true] {
        let lp = Loop::new().unwrap();
        let (ours, theirs) = tcp_pair();
        theirs.set_nonblocking(false).unwrap();
        let server: Slot<Request> = Rc::default();
        let client: Slot<Response> = Rc::default();
        let s = server.clone();
        accept(&lp, ours, options(takeover), move |r| {
            *s.borrow_mut() = Some(r.expect("server handshake"))
        });
        let (request, _, _) = ClientRequest::from_url("ws://127.0.0.1/deflate").unwrap();
        let c = client.clone();
        upgrade(&lp, theirs, &request, options(takeover), move |r| {
            *c.borrow_mut() = Some(r.expect("client handshake"))
        });
        run_until(&lp, "both handshakes", || {
            server.borrow().is_some() && client.borrow().is_some()
        });
        let server = server.borrow_mut().take().unwrap();
        let client = client.borrow_mut().take().unwrap();
        let agreed = server.compression.expect("server agreed");
        assert_eq!(client.compression.expect("client agreed").send, agreed.recv);
        assert_eq!(agreed.send.no_context_takeover, !takeover);
        let answer = client.head.header("Sec-WebSocket-Extensions").unwrap();
        assert!(answer.starts_with("permessage-deflate"), "{answer}");

        // The server echoes; the client sends a text, a binary and a fragmented
        // message, and records what comes back.
        let _server = Server::new(server.into_params().on_msg_recv(|ws, _rsv, op, msg, _| {
            ws.queue_msg(msg, op).unwrap();
        }))
        .unwrap();
        let seen = Rc::new(RefCell::new(Seen2::default()));
        let (s1, s2) = (seen.clone(), seen.clone());
        let ws = Client::new(
            client
                .into_params()
                .on_frame_recv_start(move |_ws, _fin, rsv, op, _len| {
                    let mut s = s1.borrow_mut();
                    if !op.is_control() && !s.in_message {
                        s.first_rsv.push(rsv);
                    }
                    s.in_message = !op.is_control() && !_fin || s.in_message && op.is_control();
                })
                .on_msg_recv(move |_ws, rsv, op, msg, _| {
                    assert!(!rsv.contains(Rsv::RSV1), "delivered inflated");
                    s2.borrow_mut().msgs.push((op, msg.to_vec()));
                }),
        )
        .unwrap();
        let text = json_like(100_000);
        let binary = json_like(300_000);
        let fragmented = json_like(200_000);
        ws.queue_msg(&text, OpCode::Text).unwrap();
        ws.queue_msg(&binary, OpCode::Binary).unwrap();
        let mut rest = fragmented.clone();
        rest.reverse();
        ws.queue_fragmented(
            move |_ws: &WebSocket, buf: &mut [u8]| {
                let n = buf.len().min(rest.len());
                for b in &mut buf[..n] {
                    *b = rest.pop().unwrap();
                }
                if rest.is_empty() {
                    Fragment::Eof(n)
                } else {
                    Fragment::Data(n)
                }
            },
            OpCode::Text,
        )
        .unwrap();
        run_until(&lp, "three echoes", || seen.borrow().msgs.len() == 3);
        let seen = seen.borrow();
        assert_eq!(
            seen.msgs,
            [
                (OpCode::Text, text),
                (OpCode::Binary, binary),
                (OpCode::Text, fragmented)
            ]
        );
        assert_eq!(seen.first_rsv, [Rsv::RSV1; 3], "takeover {takeover}");
        websocket::abort_all(&lp);
    }
}

/// The heap bytes per connection that `n` server connections hold after each
/// echoed one compressed message (or a plain one when `compression` is
/// `None`) and went idle again: what the exchange left behind.
fn heap_per_conn_after_one_message(compression: Option<Compression>, n: usize) -> isize {
    let lp = Loop::new().unwrap();
    let message = json_like(20_000);
    let open = |lp: &Loop| {
        let (ours, theirs) = UnixStream::pair().unwrap();
        theirs.set_nonblocking(true).unwrap();
        let mut params = Params::new(ours)
            .event_loop(lp)
            .on_msg_recv(|ws, _, op, msg, _| ws.queue_msg(msg, op).unwrap());
        if let Some(c) = compression {
            params = params.compression(c);
        }
        let ws = Server::new(params).unwrap();
        let mut peer = Peer::new(theirs, Role::Client);
        // The peer sees our `send` as its `recv` and the other way round.
        let peer_config = Config::default()
            .compression(compression.map(|ours| ours.send(ours.recv).recv(ours.send)));
        peer.engine = Engine::new(Role::Client, peer_config);
        (ws, peer)
    };
    let exchange = |lp: &Loop, peer: &mut Peer<UnixStream>| {
        peer.send_msg(OpCode::Text, &message);
        run_until(lp, "the echo", || {
            peer.pump();
            !peer.data_msgs().is_empty()
        });
        assert_eq!(peer.data_msgs(), [(OpCode::Text, message.clone())]);
        let first = peer.seen.iter().find_map(|s| match s {
            Seen::Start(_, rsv, _, _) => Some(*rsv),
            _ => None,
        });
        assert_eq!(first, Some(compression.map_or(Rsv::empty(), |_| Rsv::RSV1)));
        peer.seen.clear();
        peer.raw = Vec::new();
        // What the peer's engine keeps is not the server's cost.
        peer.engine = Engine::new(Role::Client, Config::default());
    };
    // Warm up: the loop, the thread's pools of buffers and codec state.
    let mut warm = Vec::new();
    for _ in 0..4 {
        let (ws, mut peer) = open(&lp);
        exchange(&lp, &mut peer);
        warm.push((ws, peer));
    }
    let mut conns = Vec::with_capacity(n);
    let mut peers = Vec::with_capacity(n);
    for _ in 0..n {
        let (ws, peer) = open(&lp);
        conns.push(ws);
        peers.push(peer);
    }
    lp.run_with(RunFlags::NoWait);
    // Only the servers' side is measured: what the exchange leaves behind.
    let before = live_bytes();
    for peer in &mut peers {
        exchange(&lp, peer);
    }
    lp.run_with(RunFlags::NoWait);
    let per_conn = (live_bytes() - before) / n as isize;
    websocket::abort_all(&lp);
    lp.run_with(RunFlags::NoWait);
    drop((conns, peers, warm));
    per_conn
}

fn compression(takeover: bool) -> Compression {
    compression_with(takeover, 15)
}

fn compression_with(takeover: bool, max_window_bits: u8) -> Compression {
    let w = Window::DEFAULT
        .max_window_bits(max_window_bits)
        .no_context_takeover(!takeover);
    Compression::default().send(w).recv(w).level(1).threshold(0)
}

#[test]
fn idle_memory_is_the_same_with_compression_and_no_context_takeover() {
    const N: usize = 200;
    let _turn = one_at_a_time();
    let plain = heap_per_conn_after_one_message(None, N);
    let deflate = heap_per_conn_after_one_message(Some(compression(false)), N);
    println!("heap per idle connection: plain {plain} B, deflate {deflate} B");
    assert_eq!(deflate, plain);
}

#[test]
fn context_takeover_costs_its_codec_state_per_connection() {
    const N: usize = 20;
    let _turn = one_at_a_time();
    let plain = heap_per_conn_after_one_message(None, N);
    let takeover = heap_per_conn_after_one_message(Some(compression(true)), N);
    let one_end = takeover - plain;
    println!("context takeover: {one_end} B per connection (compressor and inflater)");
    assert!(one_end > 32 * 1024, "{one_end}");
    assert!(one_end < 1024 * 1024, "{one_end}");
    // A smaller window costs less.
    let small = heap_per_conn_after_one_message(Some(compression_with(true, 10)), N) - plain;
    println!("context takeover, window 10: {small} B per connection");
    assert!(small < one_end * 3 / 4, "{small} against {one_end}");
}

#[test]
fn echoing_compressed_messages_allocates_nothing_per_message() {
    let _turn = one_at_a_time();
    let lp = Loop::new().unwrap();
    let (ours, mut peer) = tcp_pair();
    let agreed = compression(false);
    let ws = Server::new(
        Params::new(ours)
            .event_loop(&lp)
            .compression(agreed)
            .on_msg_recv(|ws, _rsv, op, msg, _| ws.queue_msg(msg, op).unwrap()),
    )
    .unwrap();
    // Without context takeover every copy of a message compresses the same:
    // one client frame, written again and again; the echo has a fixed length.
    let message = json_like(4096);
    let mut client = Engine::new(Role::Client, Config::default().compression(Some(agreed)));
    client.queue_msg(OpCode::Text, &message).unwrap();
    let mut frame = Vec::new();
    client.send(&mut frame).unwrap();
    let mut server_side = Engine::new(Role::Server, Config::default().compression(Some(agreed)));
    server_side.queue_msg(OpCode::Text, &message).unwrap();
    let mut echo = Vec::new();
    server_side.send(&mut echo).unwrap();
    assert_eq!(echo[0], 0xc1, "the echo is compressed");
    let batch: Vec<u8> = frame.repeat(8);
    let echo_len = echo.len() * 8;
    let round = |lp: &Loop, peer: &mut std::net::TcpStream| {
        echo_round(lp, peer, &batch, echo_len, &echo[..2])
    };
    for _ in 0..50 {
        round(&lp, &mut peer);
    }
    let before = allocs();
    let rounds = 100;
    for _ in 0..rounds {
        round(&lp, &mut peer);
    }
    let counted = allocs() - before;
    assert_eq!(
        counted,
        0,
        "{counted} allocations for {} compressed echoes",
        rounds * 8
    );
    drop(peer);
    run_until(&lp, "the connection to end", || ws.is_closed());
}

#[test]
fn a_kilobyte_that_inflates_to_a_megabyte_is_closed_with_1009_in_bounded_memory() {
    let _turn = one_at_a_time();
    const LIMIT: u64 = 256 << 10;
    let agreed = compression(false);
    // The bomb: 4 MiB of zeros compressed at level 9 by an engine of our own,
    // cut to its first KiB: a frame of 1 KiB that inflates to about 1 MiB
    // (deflate's best is about 1000 to 1), four times the limit.
    let mut zipper = Engine::new(
        Role::Server,
        Config::default()
            .compression(Some(agreed.level(9)))
            .max_queued_bytes(usize::MAX),
    );
    zipper.queue_msg(OpCode::Binary, &vec![0; 4 << 20]).unwrap();
    let mut wire = Vec::new();
    zipper.send(&mut wire).unwrap();
    // A server's frame: unmasked, a 4-byte header for a payload of a few KiB.
    assert_eq!((wire[0], wire[1]), (0xc2, 126));
    let kib = &wire[4..4 + 1024];
    let mut frame = util::masked_frame(true, 2, kib);
    frame[0] |= 0x40; // RSV1: compressed

    let lp = Loop::new().unwrap();
    let (ours, theirs) = UnixStream::pair().unwrap();
    theirs.set_nonblocking(true).unwrap();
    let closed = Rc::new(RefCell::new(None));
    let c = closed.clone();
    let delivered = Rc::new(RefCell::new(0usize));
    let d = delivered.clone();
    let _ws = Server::new(
        Params::new(ours)
            .event_loop(&lp)
            .compression(agreed)
            .max_recv_size(LIMIT)
            .on_msg_recv(move |_, _, _, msg, _| *d.borrow_mut() += msg.len())
            .on_close(move |ws, code| *c.borrow_mut() = Some((code, ws.status_code_sent()))),
    )
    .unwrap();
    let mut peer = Peer::new(theirs, Role::Client);
    lp.run_with(RunFlags::NoWait);
    let before = live_bytes();
    reset_peak();
    peer.send_raw(&frame);
    run_until(&lp, "the close", || {
        peer.pump();
        closed.borrow().is_some()
    });
    let peak = peak_bytes() - before;
    assert_eq!(closed.borrow().unwrap().1, Some(1009));
    assert_eq!(*delivered.borrow(), 0);
    // The limit, one inflate step, the read buffer and the inflater's state.
    assert!(
        peak < LIMIT as isize + 512 * 1024,
        "{peak} bytes at the peak for a {LIMIT}-byte limit"
    );
    println!("1 KiB bomb: peak {peak} B with max_recv_size {LIMIT}");
}
