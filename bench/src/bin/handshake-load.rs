//! Load generator for connection setup: handshakes per second and server CPU per
//! connection (`scripts/bench-handshake.sh`).
//!
//! ```text
//! handshake-load ws|raw --port P [--conns C] [--warmup W] [--duration T]
//!     [--server-pid PID] [--size 32] [--label L]
//! ```
//!
//! C connections run in parallel, each in a loop. `ws`: connect, send the upgrade
//! request, read the 101 and check its `Sec-WebSocket-Accept`, send one masked text
//! message of `--size` bytes, read its echo (checked byte for byte), send a close frame
//! (1000), read the server's close (1000), wait for EOF, close. `raw`: connect, send
//! `--size` bytes, read their echo (checked), wait for EOF (the server closes after the
//! echo), close. A connection that does not finish within 10 s is an error.
//!
//! One thread, mio (edge-triggered epoll), one shared read buffer; requests, frames
//! and accept keys are prepared before the run (a ring of 256 keys).
//!
//! Ephemeral ports: every connection is closed with SO_LINGER 0 once the exchange has
//! completed (the server's EOF seen), so the client side sends a RST and keeps no
//! TIME_WAIT socket; the server closed first and its FIN_WAIT socket goes away with the
//! RST as well. Thousands of connections per second therefore never exhaust the
//! ephemeral port range.
//!
//! Output: one JSON line on stdout: handshakes (completed connections) per second in
//! the measured window, server CPU µs per connection (utime+stime from /proc/PID/stat
//! over the window, divided by the connections completed in it), p50/p99 of a whole
//! connection's duration (connect to EOF), errors by kind (over the whole run, the
//! warmup included), this process's CPU %.

use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

#[path = "../load.rs"]
mod load;
use load::{
    find, num, proc_cpu_us, raise_nofile, response_ok, seed, self_cpu_us, upgrade_requests,
    Histogram, Rng,
};

const USAGE: &str = "usage: handshake-load ws|raw --port P [--conns C] [--warmup W] \
[--duration T] [--server-pid PID] [--size S] [--label L]";

/// A connection that takes longer than this is an error (and is replaced).
const CONN_TIMEOUT: Duration = Duration::from_secs(10);
/// Prepared upgrade requests (one key each), used in turn.
const KEYS: usize = 256;

struct Args {
    ws: bool,
    port: u16,
    conns: usize,
    warmup: f64,
    duration: f64,
    server_pid: Option<u32>,
    size: usize,
    label: String,
}

fn parse_args() -> Result<Args, String> {
    let mut argv = std::env::args().skip(1);
    let ws = match argv.next().as_deref() {
        Some("ws") => true,
        Some("raw") => false,
        _ => return Err(USAGE.into()),
    };
    let mut a = Args {
        ws,
        port: 0,
        conns: 16,
        warmup: 1.0,
        duration: 4.0,
        server_pid: None,
        size: 32,
        label: String::new(),
    };
    while let Some(flag) = argv.next() {
        let value = argv.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--port" => a.port = num(&flag, &value)?,
            "--conns" => a.conns = num(&flag, &value)?,
            "--warmup" => a.warmup = num(&flag, &value)?,
            "--duration" => a.duration = num(&flag, &value)?,
            "--server-pid" => a.server_pid = Some(num(&flag, &value)?),
            "--size" => a.size = num(&flag, &value)?,
            "--label" => a.label = value,
            _ => return Err(format!("unknown option {flag:?}\n{USAGE}")),
        }
    }
    if a.port == 0 || a.conns == 0 || a.size == 0 || a.size > 125 {
        return Err(format!(
            "--port and --conns must be > 0, --size 1 to 125\n{USAGE}"
        ));
    }
    if !(a.duration > 0.0 && a.warmup >= 0.0) {
        return Err("--duration must be > 0, --warmup >= 0".into());
    }
    Ok(a)
}

/// Everything sent and expected, prepared once.
struct Traffic {
    /// (upgrade request, expected Sec-WebSocket-Accept value)
    requests: Vec<(Vec<u8>, String)>,
    /// The payload each echo must carry.
    payload: Vec<u8>,
    /// What is sent as the message: a masked text frame (ws) or the payload (raw).
    message: Vec<u8>,
    /// Masked close frame, code 1000.
    close: Vec<u8>,
}

impl Traffic {
    fn new(args: &Args, rng: &mut Rng) -> Traffic {
        let payload: Vec<u8> = (0..args.size).map(|i| b'a' + (i % 26) as u8).collect();
        let mut mask = || {
            let m = rng.next().to_le_bytes();
            [m[0] | 1, m[1], m[2], m[3]]
        };
        let masked = |opcode: u8, body: &[u8], m: [u8; 4]| {
            let mut f = vec![0x80 | opcode, 0x80 | body.len() as u8];
            f.extend_from_slice(&m);
            f.extend(body.iter().enumerate().map(|(i, b)| b ^ m[i & 3]));
            f
        };
        let message = if args.ws {
            masked(1, &payload, mask())
        } else {
            payload.clone()
        };
        let close = masked(8, &1000u16.to_be_bytes(), mask());
        let requests = upgrade_requests(args.port, KEYS, rng);
        Traffic {
            requests,
            payload,
            message,
            close,
        }
    }
}

// ------------------------------------------------------------------ connections

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Connecting,
    SendRequest,
    ReadResponse,
    SendMessage,
    ReadEcho,
    SendClose,
    ReadClose,
    ReadEof,
}

#[derive(Default)]
struct Errors {
    connect: u64,
    handshake: u64,
    echo: u64,
    close: u64,
    eof: u64,
    io: u64,
    timeout: u64,
}

impl Errors {
    fn total(&self) -> u64 {
        self.connect + self.handshake + self.echo + self.close + self.eof + self.io + self.timeout
    }
}

enum Fail {
    Connect,
    Handshake,
    Echo,
    Close,
    Eof,
    Io,
    Timeout,
}

struct Slot {
    sock: Option<TcpStream>,
    /// Incremented per connection: events of a slot's previous socket are ignored.
    generation: u32,
    phase: Phase,
    /// Bytes of the current send phase already written.
    sent: usize,
    /// Received bytes of the current read phase (reused, never shrunk).
    buf: Vec<u8>,
    started: Instant,
    key: usize,
}

struct Ctx<'a> {
    args: &'a Args,
    traffic: &'a Traffic,
    addr: SocketAddr,
    rbuf: Vec<u8>,
    next_key: usize,
    measuring: bool,
    done: u64,
    hist: Histogram,
    errors: Errors,
}

fn token(slot: usize, generation: u32) -> Token {
    Token(slot | (generation as usize) << 32)
}

/// Closes with SO_LINGER 0: a RST, no TIME_WAIT (see the module comment).
fn close_abortive(sock: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the fd is the open socket `sock` owns; `linger` is a valid linger struct
    // of the size given.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(sock);
}

/// Starts a new connection in slot `i`.
fn open(poll: &Poll, slots: &mut [Slot], i: usize, ctx: &mut Ctx) {
    let slot = &mut slots[i];
    slot.generation = slot.generation.wrapping_add(1);
    slot.phase = Phase::Connecting;
    slot.sent = 0;
    slot.buf.clear();
    slot.started = Instant::now();
    slot.key = ctx.next_key;
    ctx.next_key = (ctx.next_key + 1) % KEYS;
    match TcpStream::connect(ctx.addr) {
        Ok(mut sock) => {
            if poll
                .registry()
                .register(
                    &mut sock,
                    token(i, slot.generation),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .is_err()
            {
                ctx.errors.connect += 1;
                slot.sock = None;
                return;
            }
            slot.sock = Some(sock);
        }
        Err(e) => {
            if ctx.errors.connect == 0 {
                eprintln!("handshake-load: connect: {e}");
            }
            ctx.errors.connect += 1;
            slot.sock = None;
        }
    }
}

fn fail(slot: &mut Slot, ctx: &mut Ctx, why: Fail) {
    let e = &mut ctx.errors;
    match why {
        Fail::Connect => e.connect += 1,
        Fail::Handshake => e.handshake += 1,
        Fail::Echo => e.echo += 1,
        Fail::Close => e.close += 1,
        Fail::Eof => e.eof += 1,
        Fail::Io => e.io += 1,
        Fail::Timeout => e.timeout += 1,
    }
    if let Some(sock) = slot.sock.take() {
        close_abortive(sock);
    }
}

/// What the received bytes of a read phase amount to.
enum Got {
    More,
    Complete,
    Bad(Fail),
}

/// Judges `buf` in a read phase (ws or raw).
fn judge(phase: Phase, buf: &[u8], ctx: &Ctx, key: usize) -> Got {
    let t = ctx.traffic;
    match phase {
        Phase::ReadResponse => match find(buf, b"\r\n\r\n") {
            None if buf.len() > 8192 => Got::Bad(Fail::Handshake),
            None => Got::More,
            // Nothing may follow the head: the server has nothing to say yet.
            Some(end) if end + 4 != buf.len() => Got::Bad(Fail::Handshake),
            Some(end) if response_ok(&buf[..end], &t.requests[key].1) => Got::Complete,
            Some(_) => Got::Bad(Fail::Handshake),
        },
        Phase::ReadEcho if !ctx.args.ws => {
            let n = t.payload.len();
            if buf.len() > n || buf != &t.payload[..buf.len()] {
                Got::Bad(Fail::Echo)
            } else if buf.len() == n {
                Got::Complete
            } else {
                Got::More
            }
        }
        Phase::ReadEcho => {
            let n = t.payload.len();
            if buf.len() >= 2 && (buf[0] != 0x81 || buf[1] as usize != n) {
                return Got::Bad(Fail::Echo);
            }
            if buf.len() > 2 + n || (buf.len() > 2 && buf[2..] != t.payload[..buf.len() - 2]) {
                Got::Bad(Fail::Echo)
            } else if buf.len() == 2 + n {
                Got::Complete
            } else {
                Got::More
            }
        }
        Phase::ReadClose => {
            if buf.len() < 2 {
                return Got::More;
            }
            let len = buf[1] as usize;
            if buf[0] != 0x88 || !(2..=125).contains(&len) {
                return Got::Bad(Fail::Close);
            }
            if buf.len() < 2 + len {
                Got::More
            } else if buf.len() > 2 + len || buf[2..4] != 1000u16.to_be_bytes() {
                Got::Bad(Fail::Close)
            } else {
                Got::Complete
            }
        }
        // Anything after the close (or after a raw echo) is an error.
        _ => Got::Bad(Fail::Eof),
    }
}

/// Advances slot `i` as far as its socket allows. Returns true when the connection
/// completed (or failed) and the slot needs a new one.
fn drive(slot: &mut Slot, ctx: &mut Ctx) -> bool {
    let ws = ctx.args.ws;
    let t = ctx.traffic;
    loop {
        let Some(sock) = slot.sock.as_mut() else {
            return true;
        };
        let out: &[u8] = match slot.phase {
            Phase::Connecting => {
                if let Ok(Some(_)) | Err(_) = sock.take_error() {
                    fail(slot, ctx, Fail::Connect);
                    return true;
                }
                match sock.peer_addr() {
                    Ok(_) => {
                        slot.phase = if ws {
                            Phase::SendRequest
                        } else {
                            Phase::SendMessage
                        };
                        continue;
                    }
                    Err(e) if e.kind() == ErrorKind::NotConnected => return false,
                    Err(_) => {
                        fail(slot, ctx, Fail::Connect);
                        return true;
                    }
                }
            }
            Phase::SendRequest => &t.requests[slot.key].0,
            Phase::SendMessage => &t.message,
            Phase::SendClose => &t.close,
            _ => &[],
        };
        if !out.is_empty() {
            match sock.write(&out[slot.sent..]) {
                Ok(n) => {
                    slot.sent += n;
                    if slot.sent == out.len() {
                        slot.sent = 0;
                        slot.buf.clear();
                        slot.phase = match slot.phase {
                            Phase::SendRequest => Phase::ReadResponse,
                            Phase::SendMessage => Phase::ReadEcho,
                            _ => Phase::ReadClose,
                        };
                    }
                    continue;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    fail(slot, ctx, Fail::Io);
                    return true;
                }
            }
        }
        match sock.read(&mut ctx.rbuf) {
            Ok(0) if slot.phase == Phase::ReadEof => {
                let sock = slot.sock.take().expect("checked above");
                close_abortive(sock);
                if ctx.measuring {
                    ctx.done += 1;
                    ctx.hist.record(slot.started.elapsed().as_nanos() as u64);
                }
                return true;
            }
            Ok(0) => {
                fail(slot, ctx, Fail::Eof);
                return true;
            }
            Ok(n) => {
                slot.buf.extend_from_slice(&ctx.rbuf[..n]);
                match judge(slot.phase, &slot.buf, ctx, slot.key) {
                    Got::More => {}
                    Got::Bad(why) => {
                        fail(slot, ctx, why);
                        return true;
                    }
                    Got::Complete => {
                        slot.buf.clear();
                        slot.phase = match slot.phase {
                            Phase::ReadResponse => Phase::SendMessage,
                            Phase::ReadEcho if ws => Phase::SendClose,
                            _ => Phase::ReadEof,
                        };
                    }
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => {
                fail(slot, ctx, Fail::Io);
                return true;
            }
        }
    }
}

fn run(args: &Args) -> io::Result<String> {
    raise_nofile(args.conns as u64 + 256);
    let mut rng = Rng(seed());
    let traffic = Traffic::new(args, &mut rng);
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    let mut ctx = Ctx {
        args,
        traffic: &traffic,
        addr: SocketAddr::from(([127, 0, 0, 1], args.port)),
        rbuf: vec![0; 64 * 1024],
        next_key: 0,
        measuring: false,
        done: 0,
        hist: Histogram::new(),
        errors: Errors::default(),
    };
    let mut slots: Vec<Slot> = (0..args.conns)
        .map(|_| Slot {
            sock: None,
            generation: 0,
            phase: Phase::Connecting,
            sent: 0,
            buf: Vec::with_capacity(1024),
            started: Instant::now(),
            key: 0,
        })
        .collect();
    for i in 0..slots.len() {
        open(&poll, &mut slots, i, &mut ctx);
    }
    let start = Instant::now();
    let warm_end = start + Duration::from_secs_f64(args.warmup);
    let mut end = warm_end + Duration::from_secs_f64(args.duration);
    let mut window: Option<(Instant, u64, Option<u64>)> = None;
    let mut last_scan = Instant::now();
    loop {
        let now = Instant::now();
        if window.is_none() && now >= warm_end {
            ctx.measuring = true;
            ctx.hist = Histogram::new();
            ctx.done = 0;
            window = Some((now, self_cpu_us(), args.server_pid.and_then(proc_cpu_us)));
            end = now + Duration::from_secs_f64(args.duration);
        }
        if now >= end {
            break;
        }
        let deadline = if window.is_none() { warm_end } else { end };
        let wait = deadline
            .saturating_duration_since(now)
            .min(Duration::from_millis(100));
        poll.poll(&mut events, Some(wait))?;
        for ev in events.iter() {
            let i = ev.token().0 & 0xFFFF_FFFF;
            let generation = (ev.token().0 >> 32) as u32;
            if slots[i].generation != generation {
                continue;
            }
            if drive(&mut slots[i], &mut ctx) {
                open(&poll, &mut slots, i, &mut ctx);
            }
        }
        // Connections that failed to open, and those that take too long.
        if last_scan.elapsed() >= Duration::from_millis(100) {
            last_scan = Instant::now();
            for i in 0..slots.len() {
                if slots[i].sock.is_some() && slots[i].started.elapsed() > CONN_TIMEOUT {
                    fail(&mut slots[i], &mut ctx, Fail::Timeout);
                }
                if slots[i].sock.is_none() {
                    open(&poll, &mut slots, i, &mut ctx);
                }
            }
        }
    }
    let t_end = Instant::now();
    let cpu_end = self_cpu_us();
    let srv_end = args.server_pid.and_then(proc_cpu_us);
    let (t0, cpu0, srv0) = window.unwrap_or((t_end, cpu_end, srv_end));
    let secs = (t_end - t0).as_secs_f64().max(1e-9);
    let n = ctx.done;
    let e = &ctx.errors;
    let mut out = format!(
        "{{\"mode\":\"{}\",\"label\":\"{}\",\"port\":{},\"conns\":{},\"size\":{},\
         \"duration_s\":{secs:.3},\"handshakes\":{n},\"handshakes_per_s\":{:.1},\
         \"p50_us\":{:.1},\"p99_us\":{:.1},\"errors\":{},\"error_detail\":{{\"connect\":{},\
         \"handshake\":{},\"echo\":{},\"close\":{},\"eof\":{},\"io\":{},\"timeout\":{}}},\
         \"client_cpu_pct\":{:.1}",
        if args.ws { "ws" } else { "raw" },
        args.label.replace(['"', '\\'], "_"),
        args.port,
        args.conns,
        args.size,
        n as f64 / secs,
        ctx.hist.quantile_us(0.50),
        ctx.hist.quantile_us(0.99),
        e.total(),
        e.connect,
        e.handshake,
        e.echo,
        e.close,
        e.eof,
        e.io,
        e.timeout,
        cpu_end.saturating_sub(cpu0) as f64 / 1e4 / secs,
    );
    if let (Some(a), Some(b)) = (srv0, srv_end) {
        let d = b.saturating_sub(a) as f64;
        out.push_str(&format!(
            ",\"server_cpu_pct\":{:.1},\"server_cpu_us_per_conn\":{:.3}",
            d / 1e4 / secs,
            if n > 0 { d / n as f64 } else { 0.0 }
        ));
    }
    out.push('}');
    Ok(out)
}

fn main() {
    let args = parse_args().unwrap_or_else(|e| {
        eprintln!("handshake-load: {e}");
        std::process::exit(2);
    });
    match run(&args) {
        Ok(line) => println!("{line}"),
        Err(e) => {
            eprintln!("handshake-load: {e}");
            std::process::exit(1);
        }
    }
}
