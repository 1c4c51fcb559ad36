//! Shared helpers for the object-level tests (`tests/websocket_*.rs`): a raw peer
//! that speaks WebSocket through the sans-IO engine, and a bounded loop driver.
#![allow(dead_code)]

mod deadline;
pub mod proxy;
#[cfg(feature = "tls")]
pub mod tls;

use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use net_websocket_ev::ev::{Loop, RunFlags, Timer};
use net_websocket_ev::proto::{Config, Engine, Flow, Handler, OpCode, RecvStatus, Role, Rsv};
use net_websocket_ev::{Params, Server, WebSocket};

pub use deadline::deadline;

/// The interval of the ticker that keeps `RunFlags::Once` from blocking for long.
pub const TICK: Duration = Duration::from_millis(5);

/// The fewest loop iterations [`run_for`] runs, however long they take.
pub const MIN_TURNS: usize = 10;

/// The socket buffer size asked for by [`small_buffers`] (Linux doubles it): small
/// enough that a few KiB fill a connection, whatever the kernel's defaults.
pub const SMALL_BUFFER: libc::c_int = 8 * 1024;

/// Runs `lp` one iteration at a time until `done()` holds; panics with `what` after
/// [`deadline()`]. A ticker keeps `RunFlags::Once` from blocking forever.
pub fn run_until(lp: &Loop, what: &str, mut done: impl FnMut() -> bool) {
    let ticker = Timer::new(lp, TICK, TICK, |_| {});
    ticker.start();
    let start = Instant::now();
    while !done() {
        let deadline = deadline();
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for: {what}"
        );
        lp.run_with(RunFlags::Once);
    }
}

/// A stopwatch on the loop's clock ([`Loop::now`], the time the loop's timers and a
/// connection's deadlines count from): a timeout armed after [`LoopClock::start`]
/// cannot fire before [`LoopClock::elapsed`] reaches it, however slow the machine.
/// (Real time read at the same point can be ahead of the loop's time, which is cached
/// at the start of each iteration, by as long as an iteration takes.) Read it after
/// the loop ran the iteration that showed the effect.
pub struct LoopClock {
    lp: Loop,
    start: f64,
}

impl LoopClock {
    pub fn start(lp: &Loop) -> LoopClock {
        LoopClock {
            lp: lp.clone(),
            start: lp.now(),
        }
    }

    pub fn elapsed(&self) -> Duration {
        Duration::from_secs_f64((self.lp.now() - self.start).max(0.0))
    }
}

/// Runs a few non-blocking iterations (lets already-ready events be handled).
pub fn spin(lp: &Loop, turns: usize) {
    for _ in 0..turns {
        lp.run_with(RunFlags::NoWait);
    }
}

/// One thing the peer's engine reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// A complete message.
    Msg(OpCode, Vec<u8>),
    /// A frame began: fin, rsv, opcode, length.
    Start(bool, Rsv, OpCode, u64),
}

#[derive(Default)]
struct Record(Vec<Seen>);

impl Handler for Record {
    fn on_frame_start(&mut self, fin: bool, rsv: Rsv, opcode: OpCode, len: u64) -> Flow {
        self.0.push(Seen::Start(fin, rsv, opcode, len));
        Flow::Continue
    }
    fn on_message(&mut self, _rsv: Rsv, opcode: OpCode, data: &[u8], _status: u16) -> Flow {
        self.0.push(Seen::Msg(opcode, data.to_vec()));
        Flow::Continue
    }
}

/// The other end of the socket, as a test drives it: raw bytes, with an engine of
/// the opposite role as codec.
pub struct Peer<S: Read + Write> {
    pub sock: S,
    pub engine: Engine,
    /// Everything the engine reported, in order (frame starts and messages).
    pub seen: Vec<Seen>,
    /// Every byte read from the socket.
    pub raw: Vec<u8>,
    /// The socket reported EOF (our side closed it).
    pub eof: bool,
    /// The socket reported an error (e.g. reset).
    pub error: Option<std::io::ErrorKind>,
}

impl<S: Read + Write> Peer<S> {
    pub fn new(sock: S, role: Role) -> Self {
        Peer {
            sock,
            engine: Engine::new(role, Config::default()),
            seen: Vec::new(),
            raw: Vec::new(),
            eof: false,
            error: None,
        }
    }

    /// Writes raw bytes (small amounts: the socket buffer takes them at once).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        let mut off = 0;
        let start = Instant::now();
        while off < bytes.len() {
            match self.sock.write(&bytes[off..]) {
                Ok(n) => off += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    assert!(start.elapsed() < deadline(), "peer write blocked");
                    std::thread::yield_now();
                }
                Err(e) => panic!("peer write failed: {e}"),
            }
        }
    }

    /// Frames a message with the peer's engine and writes it.
    pub fn send_msg(&mut self, opcode: OpCode, data: &[u8]) {
        self.engine.queue_msg(opcode, data).expect("peer queue_msg");
        self.flush();
    }

    /// The bytes of one framed message, without writing them.
    pub fn frame(&mut self, opcode: OpCode, data: &[u8]) -> Vec<u8> {
        self.engine.queue_msg(opcode, data).expect("peer queue_msg");
        let mut wire = Vec::new();
        self.engine.send(&mut wire).expect("peer frame");
        wire
    }

    /// Writes what the peer's engine has queued (its pongs and close replies too).
    pub fn flush(&mut self) {
        let mut wire = Vec::new();
        self.engine.send(&mut wire).expect("peer send");
        self.send_raw(&wire);
    }

    /// Starts the peer's closing handshake.
    pub fn close(&mut self, code: Option<u16>, reason: &str) {
        self.engine
            .queue_close(code, reason.as_bytes())
            .expect("peer close");
        self.flush();
    }

    /// Reads what is available now and feeds it to the engine. Returns whether
    /// anything (bytes or EOF) came. The socket must be non-blocking.
    pub fn pump(&mut self) -> bool {
        let mut got = false;
        let mut buf = [0u8; 65536];
        loop {
            if self.eof || self.error.is_some() {
                return got;
            }
            match self.sock.read(&mut buf) {
                Ok(0) => {
                    self.eof = true;
                    return true;
                }
                Ok(n) => {
                    got = true;
                    self.raw.extend_from_slice(&buf[..n]);
                    let mut rec = Record::default();
                    let status = self.engine.feed(&buf[..n], &mut rec);
                    assert_ne!(status, RecvStatus::Paused);
                    self.seen.extend(rec.0);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return got,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    self.error = Some(e.kind());
                    return true;
                }
            }
        }
    }

    /// The complete messages seen so far.
    pub fn msgs(&self) -> Vec<(OpCode, Vec<u8>)> {
        self.seen
            .iter()
            .filter_map(|s| match s {
                Seen::Msg(op, data) => Some((*op, data.clone())),
                _ => None,
            })
            .collect()
    }

    /// The data messages (text/binary) seen so far.
    pub fn data_msgs(&self) -> Vec<(OpCode, Vec<u8>)> {
        self.msgs()
            .into_iter()
            .filter(|(op, _)| matches!(op, OpCode::Text | OpCode::Binary))
            .collect()
    }

    /// Whether the peer's engine got a close frame.
    pub fn close_received(&self) -> bool {
        self.engine.close_received()
    }

    /// The code of the close frame we sent the peer (1006 before one came).
    pub fn close_code(&self) -> u16 {
        self.engine.status_code_received()
    }
}

/// A unix socket pair: `(ours, peer)`, the peer non-blocking.
pub fn unix_pair() -> (UnixStream, UnixStream) {
    let (ours, peer) = UnixStream::pair().expect("socketpair");
    peer.set_nonblocking(true).unwrap();
    (ours, peer)
}

/// A [`unix_pair`] with [`small_buffers`] on both ends.
pub fn small_unix_pair() -> (UnixStream, UnixStream) {
    let (ours, peer) = unix_pair();
    small_buffers(&ours);
    small_buffers(&peer);
    (ours, peer)
}

/// Sets small send and receive buffers ([`SMALL_BUFFER`]) on a socket, so that the
/// data a full connection holds is small and the same on any machine. On TCP, do it
/// before the connection is made (see [`connect_with_small_buffers`]; an accepted
/// socket inherits its listener's).
pub fn small_buffers(sock: &impl AsRawFd) {
    for option in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
        // SAFETY: a valid descriptor and a c_int option value of the right size.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&SMALL_BUFFER as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "setsockopt: {}", std::io::Error::last_os_error());
    }
}

/// A (blocking) TCP connection to the IPv4 `addr` whose socket got [`small_buffers`]
/// before it connected.
pub fn connect_with_small_buffers(addr: SocketAddr) -> TcpStream {
    let SocketAddr::V4(v4) = addr else {
        panic!("IPv4 only: {addr}")
    };
    // SAFETY: a plain socket(2) call; the descriptor is owned right below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    small_buffers(&sock);
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*v4.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: `sin` is a valid sockaddr_in of the size given.
    let rc = unsafe {
        libc::connect(
            sock.as_raw_fd(),
            (&sin as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "connect {addr}: {}", std::io::Error::last_os_error());
    TcpStream::from(sock)
}

/// A loopback TCP pair: `(ours, peer)`, the peer non-blocking.
pub fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let peer = TcpStream::connect(listener.local_addr().unwrap()).expect("connect");
    let (ours, _) = listener.accept().expect("accept");
    peer.set_nonblocking(true).unwrap();
    peer.set_nodelay(true).unwrap();
    (ours, peer)
}

/// What the server-side callbacks recorded.
#[derive(Default, Debug)]
pub struct Log {
    pub msgs: Vec<(Rsv, OpCode, Vec<u8>, u16)>,
    pub frames: Vec<String>,
    pub closes: Vec<u16>,
}

pub type SharedLog = Rc<RefCell<Log>>;

/// Params recording every message and close into a log (frame callbacks not set).
pub fn logged(params: Params, log: &SharedLog) -> Params {
    let l1 = log.clone();
    let l2 = log.clone();
    params
        .on_msg_recv(move |_ws, rsv, op, msg, status| {
            l1.borrow_mut().msgs.push((rsv, op, msg.to_vec(), status))
        })
        .on_close(move |_ws, code| l2.borrow_mut().closes.push(code))
}

/// A fresh loop, a server connection on a unix pair, a peer (client role), a log.
pub struct Setup {
    pub lp: Loop,
    pub ws: WebSocket,
    pub peer: Peer<UnixStream>,
    pub log: SharedLog,
}

/// Builds a [`Setup`]; `tweak` adds parameters after the logging callbacks.
pub fn server(tweak: impl FnOnce(Params) -> Params) -> Setup {
    server_on(unix_pair(), tweak)
}

/// A [`server`] on the given `(ours, peer)` pair (the peer non-blocking).
pub fn server_on(
    (ours, peer): (UnixStream, UnixStream),
    tweak: impl FnOnce(Params) -> Params,
) -> Setup {
    let lp = Loop::new().expect("loop");
    let log = SharedLog::default();
    let params = tweak(logged(Params::new(ours).event_loop(&lp), &log));
    let ws = Server::new(params).expect("Server::new");
    Setup {
        lp,
        ws,
        peer: Peer::new(peer, Role::Client),
        log,
    }
}

/// A test ends its connection if it is still open: an open connection keeps itself
/// alive on its loop (by design), which would otherwise outlive the test.
impl Drop for Setup {
    fn drop(&mut self) {
        net_websocket_ev::websocket::abort_all(&self.lp);
    }
}

impl Setup {
    /// Runs the loop (pumping the peer) until `done` holds.
    pub fn until(&mut self, what: &str, mut done: impl FnMut(&mut Peer<UnixStream>, &Log) -> bool) {
        let lp = self.lp.clone();
        let peer = &mut self.peer;
        let log = &self.log;
        run_until(&lp, what, || {
            peer.pump();
            done(peer, &log.borrow())
        });
    }
}

/// A masked client frame built by hand: `fin`, `opcode` (4 bits), payload, key.
pub fn masked_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0x11, 0x22, 0x33, 0x44];
    let mut out = vec![(u8::from(fin) << 7) | opcode];
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len < 65536 {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

/// Runs `lp` for at least `time` and at least [`MIN_TURNS`] iterations (to show that
/// something does NOT happen meanwhile: on a slow machine too, whatever was ready
/// has had its turns).
pub fn run_for(lp: &Loop, time: Duration) {
    let ticker = Timer::new(lp, TICK, TICK, |_| {});
    ticker.start();
    let start = Instant::now();
    let mut turns = 0;
    while turns < MIN_TURNS || start.elapsed() < time {
        lp.run_with(RunFlags::Once);
        turns += 1;
    }
}

/// Writes `batch` (pipelined messages) to `peer` and runs `lp` until `echo_len`
/// bytes have come back; the echo must begin with `first`. For the tests that
/// count allocations per echoed message. Panics if the server closes or no
/// echo comes within a million loop turns.
pub fn echo_round(lp: &Loop, peer: &mut TcpStream, batch: &[u8], echo_len: usize, first: &[u8]) {
    peer.write_all(batch).expect("peer write");
    let mut buf = [0u8; 64 * 1024];
    let mut got = 0;
    let mut turns = 0;
    while got < echo_len {
        lp.run_with(RunFlags::NoWait);
        match peer.read(&mut buf) {
            Ok(0) => panic!("server closed"),
            Ok(n) => {
                if got == 0 {
                    assert_eq!(&buf[..first.len().min(n)], &first[..first.len().min(n)]);
                }
                got += n;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => panic!("peer read: {e}"),
        }
        turns += 1;
        assert!(turns < 1_000_000, "no echo");
    }
    assert_eq!(got, echo_len);
}

/// Reads what a non-blocking socket holds: true once the peer closed (EOF or a
/// reset), false while it is still open; the bytes read go to `into`.
pub fn read_to_end(sock: &mut impl Read, into: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match sock.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => into.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return true, // a reset: closed as well
        }
    }
}
