//! A real echo server on loopback for the hostile-peer tests (`tests/hostile_*.rs`):
//! a listening socket on its own loop, the loop-driven handshake, `Server::new` with
//! echo, and a well-behaved client that must keep getting its echoes while a hostile
//! peer does its worst on the same loop.
//!
//! Every socket of the arena has small, fixed buffers ([`util::small_buffers`]): the
//! bytes a stalled connection holds, and so the work before a peer is blocked, are
//! the same on any machine. Waits are bounded by [`util::deadline`]. Dropping the
//! arena ends everything it started, when a test fails too.
//!
//! Used as `#[path = "util/arena.rs"] mod arena;` next to `mod util;`.
#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant};

use net_websocket_ev::ev::{Events, Io, Loop, RunFlags, Timer};
use net_websocket_ev::proto::Role;
use net_websocket_ev::websocket::upgrade::{self, HandshakeOptions, UpgradeError};
use net_websocket_ev::{OpCode, Params, Server, WebSocket};

use super::util::{self, deadline, Peer, Seen as PeerSaw};

/// A request any server accepts (the RFC's sample key).
pub const REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\r\n";

/// What the server saw, by the client's port (each test's peers are told apart by it).
#[derive(Default)]
pub struct Seen {
    /// Handshake failures.
    pub refused: HashMap<u16, String>,
    /// `on_close` codes.
    pub closes: HashMap<u16, u16>,
    /// Messages received (echoed) per connection.
    pub messages: HashMap<u16, usize>,
    /// The server-side handles, for tests that drive the server's sending.
    pub conns: HashMap<u16, WebSocket>,
    /// Handshakes accepted and not finished yet.
    pub handshaking: usize,
}

pub type Shared = Rc<RefCell<Seen>>;

/// The server: how a connection's handshake and parameters are set.
pub struct Arena {
    pub lp: Loop,
    pub addr: SocketAddr,
    pub seen: Shared,
    _listener: TcpListener,
    _accept: Io,
    _ticker: Timer,
}

impl Arena {
    /// A server with `options()` for each handshake and `tweak` applied to each
    /// connection's parameters (after the echo and logging callbacks).
    pub fn new(
        options: impl Fn() -> HandshakeOptions + 'static,
        tweak: impl Fn(Params) -> Params + 'static,
    ) -> Arena {
        let lp = Loop::new().expect("loop");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        // Before any connection: the accepted sockets inherit the listener's buffers.
        util::small_buffers(&listener);
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Shared::default();
        let tweak: Rc<dyn Fn(Params) -> Params> = Rc::new(tweak);
        let accept_from = listener.try_clone().unwrap();
        let (lp2, seen2) = (lp.clone(), seen.clone());
        let accept = Io::new(&lp, listener.as_raw_fd(), Events::READ, move |_| {
            while let Ok((stream, from)) = accept_from.accept() {
                let (lp3, seen3, tweak3) = (lp2.clone(), seen2.clone(), tweak.clone());
                let port = from.port();
                seen2.borrow_mut().handshaking += 1;
                upgrade::accept(&lp2, stream, options(), move |result| {
                    seen3.borrow_mut().handshaking -= 1;
                    on_upgraded(&lp3, &seen3, &*tweak3, port, result)
                });
            }
        })
        .expect("io watcher");
        accept.start();
        // Keeps `RunFlags::Once` from blocking for long.
        let ticker = Timer::new(&lp, util::TICK, util::TICK, |_| {});
        ticker.start();
        Arena {
            lp,
            addr,
            seen,
            _listener: listener,
            _accept: accept,
            _ticker: ticker,
        }
    }

    /// The default handshake and the given parameters.
    pub fn with_params(tweak: impl Fn(Params) -> Params + 'static) -> Arena {
        Arena::new(HandshakeOptions::default, tweak)
    }

    /// A raw connection to the server (non-blocking, small buffers, no handshake yet).
    pub fn connect(&self) -> TcpStream {
        let sock = util::connect_with_small_buffers(self.addr);
        sock.set_nonblocking(true).unwrap();
        sock.set_nodelay(true).unwrap();
        sock
    }

    /// A connection whose handshake is done (the loop runs meanwhile), as a peer.
    pub fn upgraded(&self) -> Peer<TcpStream> {
        let mut sock = self.connect();
        sock.write_all(REQUEST).expect("send request");
        let mut head = Vec::new();
        let start = Instant::now();
        // The server sends nothing after its 101 before we do: read whole chunks.
        while !head.ends_with(b"\r\n\r\n") {
            assert!(start.elapsed() < deadline(), "no handshake answer");
            self.lp.run_with(RunFlags::Once);
            let mut buf = [0u8; 1024];
            match sock.read(&mut buf) {
                Ok(0) => panic!("server closed during the handshake"),
                Ok(n) => head.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("handshake read: {e}"),
            }
        }
        assert!(
            head.starts_with(b"HTTP/1.1 101"),
            "{:?}",
            String::from_utf8_lossy(&head)
        );
        let port = sock.local_addr().unwrap().port();
        // The server side exists once its handshake driver has finished.
        self.run_until("server connection", None, || {
            self.seen.borrow().conns.contains_key(&port)
        });
        Peer::new(sock, Role::Client)
    }

    /// A well-behaved client, its handshake done.
    pub fn good_client(&self) -> Good {
        Good {
            peer: self.upgraded(),
            sent: 0,
            echoed: 0,
        }
    }

    /// Runs the loop until `done` holds, keeping `good` (if any) busy with echo round
    /// trips meanwhile; panics after [`deadline()`].
    pub fn run_until(
        &self,
        what: &str,
        mut good: Option<&mut Good>,
        mut done: impl FnMut() -> bool,
    ) {
        let start = Instant::now();
        loop {
            if let Some(good) = good.as_deref_mut() {
                good.step();
            }
            if done() {
                return;
            }
            let deadline = deadline();
            assert!(
                start.elapsed() < deadline,
                "timed out after {deadline:?} waiting for: {what}"
            );
            self.lp.run_with(RunFlags::Once);
        }
    }

    /// Runs the loop for at least `time` and at least [`util::MIN_TURNS`] iterations,
    /// keeping `good` busy (to show that something does NOT happen meanwhile).
    pub fn run_for(&self, time: Duration, good: Option<&mut Good>) {
        let start = Instant::now();
        let mut turns = 0;
        self.run_until("time to pass", good, || {
            turns += 1;
            turns > util::MIN_TURNS && start.elapsed() >= time
        });
    }

    /// The server's `on_close` code for the client at `port`, if it ran.
    pub fn close_of(&self, port: u16) -> Option<u16> {
        self.seen.borrow().closes.get(&port).copied()
    }

    /// The server-side handle of the client at `port`.
    pub fn conn(&self, port: u16) -> WebSocket {
        self.seen.borrow().conns[&port].clone()
    }

    /// Asserts `good` is still served: a few fresh round trips, and its connection open.
    pub fn assert_serving(&self, good: &mut Good) {
        let target = good.echoed + 3;
        let start = Instant::now();
        while good.echoed < target {
            assert!(start.elapsed() < deadline(), "the good client starved");
            good.step();
            self.lp.run_with(RunFlags::Once);
        }
        assert!(
            !good.peer.eof && good.peer.error.is_none(),
            "the good client was dropped"
        );
        assert_eq!(
            self.close_of(good.port()),
            None,
            "the good client's connection ended"
        );
    }
}

impl Drop for Arena {
    /// Ends everything the arena started, also when a test failed (a panic unwinds
    /// through here), so that nothing still holds the loop: valgrind-clean either way.
    /// Every open connection is aborted; the handshakes still running are run to their
    /// end (the tests' peers are gone by now: made after the arena, they were dropped
    /// first, so each handshake sees its EOF, or else its timeout).
    fn drop(&mut self) {
        // Never a second panic while unwinding: an `on_close` panic is dropped.
        let _ = catch_unwind(AssertUnwindSafe(|| {
            net_websocket_ev::websocket::abort_all(&self.lp)
        }));
        let start = Instant::now();
        while self.seen.borrow().handshaking > 0 && start.elapsed() < deadline() {
            // Never a second panic while unwinding: a callback's panic is dropped.
            let _ = catch_unwind(AssertUnwindSafe(|| self.lp.run_with(RunFlags::Once)));
        }
        // The handles are held by a map the connections' callbacks hold: a cycle.
        self.seen.borrow_mut().conns.clear();
    }
}

fn on_upgraded(
    lp: &Loop,
    seen: &Shared,
    tweak: &dyn Fn(Params) -> Params,
    port: u16,
    result: Result<upgrade::Upgraded<net_websocket_ev::handshake::Request>, UpgradeError>,
) {
    let upgraded = match result {
        Ok(upgraded) => upgraded,
        Err(err) => {
            seen.borrow_mut().refused.insert(port, format!("{err:?}"));
            return;
        }
    };
    let (s1, s2) = (seen.clone(), seen.clone());
    let params = upgraded
        .into_params()
        .event_loop(lp)
        .max_recv_size(1 << 20)
        .on_msg_recv(move |ws, _rsv, opcode, msg, _status| {
            *s1.borrow_mut().messages.entry(port).or_default() += 1;
            if matches!(opcode, OpCode::Text | OpCode::Binary) {
                ws.queue_msg(msg, opcode).ok();
            }
        })
        .on_close(move |_ws, code| {
            s2.borrow_mut().closes.insert(port, code);
        });
    let ws = Server::new(tweak(params)).expect("Server::new");
    seen.borrow_mut().conns.insert(port, ws);
}

/// A well-behaved client: one text message in flight at a time, each echo checked.
pub struct Good {
    pub peer: Peer<TcpStream>,
    pub sent: usize,
    pub echoed: usize,
}

impl Good {
    /// Reads what came, checks the echoes, and sends the next message when the last
    /// one came back.
    pub fn step(&mut self) {
        self.peer.pump();
        for seen in std::mem::take(&mut self.peer.seen) {
            if let PeerSaw::Msg(OpCode::Text, data) = seen {
                let expected = format!("good {}", self.echoed);
                assert_eq!(String::from_utf8_lossy(&data), expected);
                self.echoed += 1;
            }
        }
        if self.sent == self.echoed && !self.peer.eof {
            let msg = format!("good {}", self.sent);
            self.peer.send_msg(OpCode::Text, msg.as_bytes());
            self.sent += 1;
        }
    }

    pub fn port(&self) -> u16 {
        self.peer.sock.local_addr().unwrap().port()
    }
}

/// Bytes waiting to be written to a non-blocking socket, written as the loop turns
/// (a single thread cannot block in a write while the server it writes to waits).
#[derive(Default)]
pub struct Outbox {
    buf: Vec<u8>,
    off: usize,
    /// The socket refused more (reset or closed by the server).
    pub broken: bool,
}

impl Outbox {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Writes what the socket takes now; true once everything is written.
    pub fn flush(&mut self, sock: &mut TcpStream) -> bool {
        while self.off < self.buf.len() && !self.broken {
            match sock.write(&self.buf[self.off..]) {
                Ok(n) => self.off += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => self.broken = true,
            }
        }
        if self.off == self.buf.len() {
            self.buf.clear();
            self.off = 0;
        }
        self.buf.is_empty()
    }

    pub fn pending(&self) -> usize {
        self.buf.len() - self.off
    }
}

/// Deterministic pseudo-random bytes (xorshift64*), for garbage.
pub fn garbage(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// The client's port of a peer's socket (how the arena names connections).
pub fn port_of(sock: &TcpStream) -> u16 {
    sock.local_addr().unwrap().port()
}
