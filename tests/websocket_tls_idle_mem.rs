//! Idle memory per TLS connection, in process: opens server connections over real
//! TCP on one loop, each through `upgrade::accept` with `server_tls` (the TLS and
//! WebSocket handshakes, then one echoed message), and asserts the heap bytes each
//! idle one holds, counted by a global allocator that counts per thread. The clients
//! run on another thread (blocking rustls streams), so only the server side is
//! counted. Print the figure with `cargo test --all-features --test
//! websocket_tls_idle_mem -- --nocapture`; the process-wide figure against other
//! servers is in `BENCHMARKS.md`. The plaintext counterpart is
//! `websocket_idle_mem.rs`.
#![cfg(feature = "tls")]

mod counting_alloc;
mod util;

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;

use counting_alloc::live_bytes;
use net_websocket_ev::ev::Loop;
use net_websocket_ev::tls::rustls::client::Resumption;
use net_websocket_ev::tls::rustls::pki_types::ServerName;
use net_websocket_ev::tls::rustls::{ClientConfig, ClientConnection, StreamOwned};
use net_websocket_ev::tls::ServerTls;
use net_websocket_ev::websocket::upgrade::{accept, HandshakeOptions};
use net_websocket_ev::{websocket, OpCode, Server, WebSocket};
use util::tls::TestPki;
use util::{deadline, masked_frame, run_until, spin};

/// The most heap bytes an idle server connection over TLS may hold (8,012 measured
/// with rustls 0.23 on x86-64). rustls's part, once the handshake is over: the
/// `ServerConnection` itself (1,168 bytes, inside our session), the buffer it reads
/// records into (4 KiB once a record has come, kept for the next ones), and what it
/// boxes: the ChaCha20-Poly1305 keys of both directions, the traffic secrets that
/// TLS 1.3 key updates derive new keys from, the state of an open connection, the
/// queues of its (empty) plaintext and record buffers. Our connection adds its ~500
/// bytes (see `websocket_idle_mem.rs`). The 2 KiB of room are for a rustls
/// upgrade's small changes; a buffer kept from the handshake (4 KiB) does not fit.
const MAX_HEAP_PER_IDLE_TLS_CONN: isize = 10 * 1024;

/// Entries in rustls's server session cache (`ServerSessionMemoryCache`, the
/// default `ServerConfig::session_storage`): one per session ticket sent, kept after
/// the connection ends. Until it is full every connection adds its tickets' entries
/// (about 160 bytes each); once full, a new entry replaces the oldest. The test
/// therefore makes enough connections to fill it before it counts (see
/// [`warm_up`]): the cache is then a fixed cost of the process, not of the
/// connections counted.
const SESSION_CACHE_ENTRIES: usize = 256;

/// Connections counted, all open and idle at once. With the warm-up's, the test
/// takes about 1.5 s, and 40 s under valgrind (the handshakes' public-key crypto).
const CONNS: usize = 200;

/// A plain HTTP upgrade request (the RFC's sample key).
const REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\r\n";

/// The message each client sends, and the echo it waits for.
const HELLO: &[u8] = b"idle?";

#[test]
fn idle_tls_connections_hold_rustls_state_and_little_more() {
    let lp = Loop::new().unwrap();
    let pki = TestPki::new();
    // One config for every connection, as a server has (one each would be counted).
    let server_tls = pki.server_tls();
    let warm_up = warm_up(&server_tls);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let echoed = Arc::new(AtomicUsize::new(0));
    let (drop_them, told) = mpsc::channel::<()>();
    let clients = {
        // Full handshakes only: a resumed session takes its entry out of the server's
        // cache, which would keep it from filling.
        let mut config = (**pki.client_tls().config()).clone();
        config.resumption = Resumption::disabled();
        let (config, addr, echoed) = (
            Arc::new(config),
            listener.local_addr().unwrap(),
            echoed.clone(),
        );
        thread::spawn(move || run_clients(config, addr, &echoed, warm_up, told))
    };

    // Full handshakes closed one by one (few descriptors); the cache keeps their
    // entries. The first also makes the one-time allocations (the loop's arrays,
    // the crypto provider's statics).
    for i in 0..warm_up {
        serve_one(&lp, &listener, &server_tls, &echoed, i);
        websocket::abort_all(&lp);
        spin(&lp, 1);
    }
    let mut conns: Vec<WebSocket> = Vec::with_capacity(CONNS);
    let heap_before = live_bytes();
    for i in warm_up..warm_up + CONNS {
        conns.push(serve_one(&lp, &listener, &server_tls, &echoed, i));
    }
    spin(&lp, 10);
    let per_conn = (live_bytes() - heap_before) / CONNS as isize;
    println!("idle heap: {per_conn} B per TLS connection ({CONNS} connections)");

    assert!(
        conns.iter().all(|ws| !ws.is_closed()),
        "all idle, none closed"
    );
    drop_them.send(()).unwrap();
    clients.join().unwrap();
    websocket::abort_all(&lp);
    spin(&lp, 1);
    assert!(conns.iter().all(|ws| ws.is_closed()));
    assert!(
        per_conn <= MAX_HEAP_PER_IDLE_TLS_CONN,
        "an idle TLS connection holds {per_conn} heap bytes (at most \
         {MAX_HEAP_PER_IDLE_TLS_CONN})"
    );
}

/// How many connections fill rustls's session cache: TLS 1.3 sends
/// `send_tls13_tickets` tickets (2 by default) per full handshake; a few more for
/// good measure.
fn warm_up(tls: &ServerTls) -> usize {
    let tickets = tls.config().send_tls13_tickets.max(1);
    SESSION_CACHE_ENTRIES.div_ceil(tickets) + 4
}

/// Accepts the next TCP connection on `listener` and serves it over TLS with an echo
/// server, until client `i` has read its echo; returns the server connection, idle.
fn serve_one(
    lp: &Loop,
    listener: &TcpListener,
    tls: &ServerTls,
    echoed: &AtomicUsize,
    i: usize,
) -> WebSocket {
    let (stream, _) = listener.accept().unwrap();
    let server = Rc::new(RefCell::new(None));
    let (s, lp2) = (server.clone(), lp.clone());
    let options = HandshakeOptions::default().server_tls(tls.clone());
    accept(lp, stream, options, move |r| {
        let params = r.unwrap().into_params().event_loop(&lp2);
        let echo = params.on_msg_recv(|ws, _, op, msg, _| {
            if matches!(op, OpCode::Text | OpCode::Binary) {
                ws.queue_msg(msg, op).unwrap();
            }
        });
        *s.borrow_mut() = Some(Server::new(echo).unwrap());
    });
    run_until(lp, "a client's echo", || echoed.load(Ordering::SeqCst) > i);
    let ws = server.borrow_mut().take().expect("the server connection");
    ws
}

/// The clients, one after another (the server serves them in that order): each
/// connects to `addr`, upgrades over TLS, sends [`HELLO`] and reads its echo, then
/// counts itself in `echoed`. The first `warm_up` are dropped at once; the others
/// stay open until `told`.
fn run_clients(
    config: Arc<ClientConfig>,
    addr: SocketAddr,
    echoed: &AtomicUsize,
    warm_up: usize,
    told: mpsc::Receiver<()>,
) {
    let mut open = Vec::with_capacity(CONNS);
    for i in 0..warm_up + CONNS {
        let sock = TcpStream::connect(addr).unwrap();
        sock.set_read_timeout(Some(deadline())).unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let conn = ClientConnection::new(config.clone(), name).unwrap();
        let mut tls = StreamOwned::new(conn, sock);
        tls.write_all(REQUEST).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            tls.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        assert!(head.starts_with(b"HTTP/1.1 101"), "client {i}: {head:?}");
        tls.write_all(&masked_frame(true, 2, HELLO)).unwrap();
        let mut echo = [0u8; 2 + HELLO.len()];
        tls.read_exact(&mut echo).unwrap();
        assert_eq!(echo[..2], [0x82, HELLO.len() as u8]);
        assert_eq!(&echo[2..], HELLO);
        echoed.fetch_add(1, Ordering::SeqCst);
        if i >= warm_up {
            open.push(tls);
        }
    }
    told.recv().unwrap();
}
