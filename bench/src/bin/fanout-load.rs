//! Load generator for broadcast servers (`scripts/bench-fanout.sh`).
//!
//! ```text
//! fanout-load ws|raw --port P [--conns N] [--size S] [--depth D] [--warmup W]
//!     [--duration T] [--server-pid PID] [--label L] [--max-pending K]
//! ```
//!
//! Opens N subscriber connections (`ws`: a real opening handshake, the accept key
//! checked; at most K, 256 by default, being set up at once), then one publisher
//! connection. The protocol every broadcast server under test follows: whatever a
//! connection sends (each complete message; `raw`: each S-byte chunk) the server sends
//! to every connection, the publisher included. The publisher sends messages of S bytes
//! (`ws`: masked binary frames; `raw`: S bytes) and keeps D publications in flight: it
//! sends the next one when the oldest has reached all N subscribers.
//!
//! The first 16 bytes of each payload are its sequence number and its send time
//! (monotonic ns, little-endian); the rest is a fixed pattern. Every delivery is
//! checked: the frame header (ws: binary, FIN, length S, unmasked), the pattern, and the
//! sequence number (each connection must receive every publication, in order, from the
//! first one it saw during the join phase on). Any failure is an error; a connection
//! lost or an error in the measured window ends the run early.
//!
//! Join phase: until every connection (subscribers and publisher) has received a
//! publication, the publisher sends probes, one at a time, at most one per 10 ms (a
//! server adds a connection to its set when it accepts it, or after its handshake, so
//! a probe sent earlier may miss it); then the probes drain and the measured traffic
//! begins. Raw mode: a subscriber without a probe after 2 s is replaced by a new
//! connection (see `reconnect`), counted in `reconnects`.
//!
//! One thread, mio (edge-triggered epoll), one shared 256 KiB read buffer, no
//! allocation per message: a connection's state is a few words (the offset inside the
//! fixed-size unit of header + payload it is receiving, the first 16 payload bytes,
//! the next sequence number expected).
//!
//! Output: one JSON line: deliveries (messages received by any connection, the
//! publisher's own copies included) and publications per second in the measured
//! window, p50/p99 of the delivery latency (send time to receipt), server CPU µs per
//! delivered message (utime+stime from /proc/PID/stat over the window / deliveries in
//! it), errors by kind, and this process's CPU %.

use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

#[path = "../load.rs"]
mod load;
use load::{
    find, num, proc_cpu_us, raise_nofile, response_ok, seed, self_cpu_us, upgrade_requests,
    Histogram, Rng,
};

const USAGE: &str = "usage: fanout-load ws|raw --port P [--conns N] [--size S] [--depth D] \
[--warmup W] [--duration T] [--server-pid PID] [--label L] [--max-pending K]";

/// Connection setup (and the join phase) must be done within this.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Interval of the join probes.
const PROBE_EVERY: Duration = Duration::from_millis(10);
/// No publication completing for this long ends the run (an error).
const STALL: Duration = Duration::from_secs(10);
/// A subscriber open this long in the join phase without a probe is replaced.
const REJOIN_AFTER: Duration = Duration::from_secs(2);
const KEYS: usize = 256;
/// A sequence number that no connection has received yet.
const NOT_JOINED: u64 = u64::MAX;

struct Args {
    ws: bool,
    port: u16,
    conns: usize,
    size: usize,
    depth: usize,
    warmup: f64,
    duration: f64,
    server_pid: Option<u32>,
    label: String,
    max_pending: usize,
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
        conns: 100,
        size: 32,
        depth: 4,
        warmup: 1.0,
        duration: 4.0,
        server_pid: None,
        label: String::new(),
        max_pending: 256,
    };
    while let Some(flag) = argv.next() {
        let value = argv.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--port" => a.port = num(&flag, &value)?,
            "--conns" => a.conns = num(&flag, &value)?,
            "--size" => a.size = num(&flag, &value)?,
            "--depth" => a.depth = num(&flag, &value)?,
            "--warmup" => a.warmup = num(&flag, &value)?,
            "--duration" => a.duration = num(&flag, &value)?,
            "--server-pid" => a.server_pid = Some(num(&flag, &value)?),
            "--max-pending" => a.max_pending = num(&flag, &value)?,
            "--label" => a.label = value,
            _ => return Err(format!("unknown option {flag:?}\n{USAGE}")),
        }
    }
    if a.port == 0 || a.conns == 0 || a.depth == 0 || a.max_pending == 0 {
        return Err(format!(
            "--port, --conns, --depth and --max-pending must be > 0\n{USAGE}"
        ));
    }
    if a.size < 16 || a.size > 16 << 20 {
        return Err(
            "--size: 16 bytes to 16 MiB (the payload holds a sequence number and a time)".into(),
        );
    }
    if !(a.duration > 0.0 && a.warmup >= 0.0) {
        return Err("--duration must be > 0, --warmup >= 0".into());
    }
    Ok(a)
}

/// Frame header of `len` bytes of payload: unmasked (as the server sends it) or with
/// the mask bit (as the client sends it, the key to follow).
fn frame_header(len: usize, masked: bool) -> Vec<u8> {
    let m = if masked { 0x80 } else { 0 };
    let mut h = vec![0x82];
    if len < 126 {
        h.push(m | len as u8);
    } else if len <= 0xFFFF {
        h.push(m | 126);
        h.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        h.push(m | 127);
        h.extend_from_slice(&(len as u64).to_be_bytes());
    }
    h
}

/// Everything sent and expected, prepared once.
struct Traffic {
    /// (upgrade request, expected Sec-WebSocket-Accept value)
    requests: Vec<(Vec<u8>, String)>,
    /// What every delivery starts with: the server's frame header (ws), or nothing.
    prefix: Vec<u8>,
    /// The payload's fixed part (bytes 16..S).
    pattern: Vec<u8>,
    /// One publication as sent, with a zero sequence number and time: the masked
    /// frame (ws) or the payload (raw).
    publication: Vec<u8>,
    /// Offset of the payload in `publication`.
    payload_at: usize,
    /// The mask key (ws) or zeros.
    mask: [u8; 4],
    /// Bytes per delivery: prefix + S.
    unit: usize,
}

impl Traffic {
    fn new(args: &Args, rng: &mut Rng) -> Traffic {
        let pattern: Vec<u8> = (16..args.size).map(|i| b'a' + (i % 26) as u8).collect();
        let mut payload = vec![0u8; 16];
        payload.extend_from_slice(&pattern);
        let (prefix, publication, payload_at, mask) = if args.ws {
            let m = rng.next().to_le_bytes();
            let mask = [m[0] | 1, m[1], m[2], m[3]];
            let mut frame = frame_header(args.size, true);
            frame.extend_from_slice(&mask);
            let at = frame.len();
            frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
            (frame_header(args.size, false), frame, at, mask)
        } else {
            (Vec::new(), payload, 0, [0; 4])
        };
        let requests = upgrade_requests(args.port, KEYS, rng);
        let unit = prefix.len() + args.size;
        Traffic {
            requests,
            prefix,
            pattern,
            publication,
            payload_at,
            mask,
            unit,
        }
    }
}

// ------------------------------------------------------------------ connections

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Connecting,
    Handshake,
    Open,
    Dead,
}

#[derive(Default)]
struct Errors {
    connect: u64,
    handshake: u64,
    eof: u64,
    io: u64,
    /// A delivery's frame header was not the expected one.
    frame: u64,
    /// A delivery's fixed bytes differed.
    content: u64,
    /// A sequence number out of order (a lost, repeated or reordered delivery).
    order: u64,
    /// A sequence number never published.
    unknown: u64,
    setup_timeout: u64,
    stall: u64,
}

impl Errors {
    fn total(&self) -> u64 {
        self.connect
            + self.handshake
            + self.eof
            + self.io
            + self.frame
            + self.content
            + self.order
            + self.unknown
            + self.setup_timeout
            + self.stall
    }
    fn json(&self) -> String {
        format!(
            "{{\"connect\":{},\"handshake\":{},\"eof\":{},\"io\":{},\"frame\":{},\"content\":{},\
             \"order\":{},\"unknown\":{},\"setup_timeout\":{},\"stall\":{}}}",
            self.connect,
            self.handshake,
            self.eof,
            self.io,
            self.frame,
            self.content,
            self.order,
            self.unknown,
            self.setup_timeout,
            self.stall
        )
    }
}

struct Conn {
    sock: TcpStream,
    phase: Phase,
    /// Offset inside the delivery being received (0..unit).
    off: usize,
    /// The first 16 payload bytes of the delivery being received.
    head: [u8; 16],
    /// The sequence number expected next (NOT_JOINED before the first delivery).
    next: u64,
    /// Handshake: request bytes sent; response bytes received (freed once open).
    hs_sent: usize,
    hs: Vec<u8>,
    key: usize,
}

/// The publisher's side: what is in flight and what is still to be written.
struct Publisher {
    /// Next sequence number to publish.
    next_seq: u64,
    /// Oldest publication not yet received by every subscriber.
    oldest: u64,
    /// Subscribers that received publication `seq`, at `seq % counts.len()`.
    counts: Vec<u32>,
    /// Bytes to write (whole publications), from `out_off` on.
    out: Vec<u8>,
    out_off: usize,
}

struct Ctx<'a> {
    args: &'a Args,
    traffic: &'a Traffic,
    base: Instant,
    errors: Errors,
    hist: Histogram,
    measuring: bool,
    /// True once the join phase is over: publications are counted for completion.
    counting: bool,
    deliveries: u64,
    publications: u64,
    open: usize,
    pending: usize,
    joined: usize,
    /// Index of the publisher in the connection table.
    publisher: usize,
    publ: Publisher,
    last_progress: Instant,
    /// Subscribers replaced in the join phase (see `reconnect`).
    reconnects: u64,
}

impl Ctx<'_> {
    fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }
}

fn kill(c: &mut Conn, ctx: &mut Ctx, count: impl FnOnce(&mut Errors)) {
    match c.phase {
        Phase::Dead => return,
        Phase::Open => ctx.open -= 1,
        _ => ctx.pending -= 1,
    }
    count(&mut ctx.errors);
    c.phase = Phase::Dead;
    c.hs = Vec::new();
    let _ = c.sock.shutdown(std::net::Shutdown::Both);
}

/// Queues publications until `depth` are in flight (once counting; one probe
/// otherwise, see `run`).
fn publish(ctx: &mut Ctx, n: u64) {
    let t = ctx.traffic;
    let now = ctx.now_ns();
    for _ in 0..n {
        let seq = ctx.publ.next_seq;
        ctx.publ.next_seq += 1;
        let at = ctx.publ.out.len() + t.payload_at;
        ctx.publ.out.extend_from_slice(&t.publication);
        let mut head = [0u8; 16];
        head[..8].copy_from_slice(&seq.to_le_bytes());
        head[8..].copy_from_slice(&now.to_le_bytes());
        for (i, b) in head.iter().enumerate() {
            ctx.publ.out[at + i] = b ^ t.mask[i & 3];
        }
        if ctx.counting {
            ctx.publications += u64::from(ctx.measuring);
        }
    }
}

fn top_up(ctx: &mut Ctx) {
    if !ctx.counting {
        return;
    }
    let in_flight = ctx.publ.next_seq - ctx.publ.oldest;
    let want = ctx.args.depth as u64;
    if in_flight < want {
        publish(ctx, want - in_flight);
    }
}

/// Writes what the publisher has queued.
fn flush(c: &mut Conn, ctx: &mut Ctx) {
    while ctx.publ.out_off < ctx.publ.out.len() {
        match c.sock.write(&ctx.publ.out[ctx.publ.out_off..]) {
            Ok(n) => ctx.publ.out_off += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => {
                kill(c, ctx, |e| e.io += 1);
                return;
            }
        }
    }
    ctx.publ.out.clear();
    ctx.publ.out_off = 0;
}

/// One complete delivery on connection `i` (its first 16 payload bytes in c.head).
fn delivered(c: &mut Conn, i: usize, ctx: &mut Ctx) -> bool {
    let seq = u64::from_le_bytes(c.head[..8].try_into().expect("8 bytes"));
    let sent = u64::from_le_bytes(c.head[8..].try_into().expect("8 bytes"));
    if seq >= ctx.publ.next_seq {
        kill(c, ctx, |e| e.unknown += 1);
        return false;
    }
    if c.next == NOT_JOINED {
        ctx.joined += 1;
    } else if seq != c.next {
        kill(c, ctx, |e| e.order += 1);
        return false;
    }
    c.next = seq + 1;
    if ctx.measuring {
        ctx.deliveries += 1;
        ctx.hist.record(ctx.now_ns().saturating_sub(sent));
    }
    if ctx.counting && i != ctx.publisher {
        if seq < ctx.publ.oldest {
            // Joined with a probe and still catching up: the probes are not counted.
            return true;
        }
        let len = ctx.publ.counts.len();
        ctx.publ.counts[seq as usize % len] += 1;
        let subscribers = ctx.args.conns as u32;
        while ctx.publ.oldest < ctx.publ.next_seq
            && ctx.publ.counts[ctx.publ.oldest as usize % len] == subscribers
        {
            ctx.publ.counts[ctx.publ.oldest as usize % len] = 0;
            ctx.publ.oldest += 1;
            ctx.last_progress = Instant::now();
        }
    }
    true
}

/// Parses received bytes of an open connection: fixed-size deliveries.
fn feed(c: &mut Conn, i: usize, ctx: &mut Ctx, mut data: &[u8]) {
    let t = ctx.traffic;
    let plen = t.prefix.len();
    while !data.is_empty() {
        if c.off < plen {
            let n = (plen - c.off).min(data.len());
            if data[..n] != t.prefix[c.off..c.off + n] {
                kill(c, ctx, |e| e.frame += 1);
                return;
            }
            c.off += n;
            data = &data[n..];
            continue;
        }
        let p = c.off - plen;
        if p < 16 {
            let n = (16 - p).min(data.len());
            c.head[p..p + n].copy_from_slice(&data[..n]);
            c.off += n;
            data = &data[n..];
        } else {
            let n = (t.unit - c.off).min(data.len());
            if data[..n] != t.pattern[p - 16..p - 16 + n] {
                kill(c, ctx, |e| e.content += 1);
                return;
            }
            c.off += n;
            data = &data[n..];
        }
        if c.off == t.unit {
            c.off = 0;
            if !delivered(c, i, ctx) {
                return;
            }
        }
    }
}

fn on_event(c: &mut Conn, i: usize, ctx: &mut Ctx, rbuf: &mut [u8]) {
    if c.phase == Phase::Connecting {
        match (c.sock.take_error(), c.sock.peer_addr()) {
            (Ok(None), Ok(_)) => {
                if ctx.args.ws {
                    c.phase = Phase::Handshake;
                } else {
                    c.phase = Phase::Open;
                    ctx.pending -= 1;
                    ctx.open += 1;
                }
            }
            (Ok(None), Err(e)) if e.kind() == ErrorKind::NotConnected => return,
            _ => {
                kill(c, ctx, |e| e.connect += 1);
                return;
            }
        }
    }
    if c.phase == Phase::Handshake {
        let request = &ctx.traffic.requests[c.key].0;
        while c.hs_sent < request.len() {
            match c.sock.write(&request[c.hs_sent..]) {
                Ok(n) => c.hs_sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    kill(c, ctx, |e| e.connect += 1);
                    return;
                }
            }
        }
    }
    if i == ctx.publisher && c.phase == Phase::Open {
        flush(c, ctx);
    }
    while c.phase == Phase::Handshake || c.phase == Phase::Open {
        let n = match c.sock.read(rbuf) {
            Ok(0) => {
                kill(c, ctx, |e| e.eof += 1);
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => {
                kill(c, ctx, |e| e.io += 1);
                return;
            }
        };
        if c.phase == Phase::Handshake {
            c.hs.extend_from_slice(&rbuf[..n]);
            let Some(end) = find(&c.hs, b"\r\n\r\n") else {
                if c.hs.len() > 16384 {
                    kill(c, ctx, |e| e.handshake += 1);
                    return;
                }
                continue;
            };
            if !response_ok(&c.hs[..end], &ctx.traffic.requests[c.key].1) {
                eprintln!(
                    "fanout-load: bad handshake response: {:?}",
                    String::from_utf8_lossy(&c.hs[..end]).lines().next()
                );
                kill(c, ctx, |e| e.handshake += 1);
                return;
            }
            let rest = c.hs.split_off(end + 4);
            c.hs = Vec::new();
            c.phase = Phase::Open;
            ctx.pending -= 1;
            ctx.open += 1;
            feed(c, i, ctx, &rest);
            if i == ctx.publisher {
                flush(c, ctx);
            }
        } else {
            feed(c, i, ctx, &rbuf[..n]);
        }
        // A short read drained the socket: edge-triggered epoll reports new data.
        if n < rbuf.len() {
            return;
        }
    }
}

fn connect(poll: &Poll, conns: &mut Vec<Conn>, ctx: &mut Ctx, addr: SocketAddr) -> io::Result<()> {
    let i = conns.len();
    let mut sock = TcpStream::connect(addr)?;
    poll.registry()
        .register(&mut sock, Token(i), Interest::READABLE | Interest::WRITABLE)?;
    conns.push(Conn {
        sock,
        phase: Phase::Connecting,
        off: 0,
        head: [0; 16],
        next: NOT_JOINED,
        hs_sent: 0,
        hs: Vec::new(),
        key: i % KEYS,
    });
    ctx.pending += 1;
    Ok(())
}

/// Replaces connection `i` by a new one. For subscribers that got no probe in the
/// join phase: with SYN cookies, a connection whose final ACK found the server's accept
/// queue full exists on the client only, and a subscriber never sends to learn it.
fn reconnect(
    poll: &Poll,
    conns: &mut [Conn],
    i: usize,
    ctx: &mut Ctx,
    addr: SocketAddr,
) -> io::Result<()> {
    let c = &mut conns[i];
    poll.registry().deregister(&mut c.sock)?;
    let mut sock = TcpStream::connect(addr)?;
    poll.registry()
        .register(&mut sock, Token(i), Interest::READABLE | Interest::WRITABLE)?;
    match c.phase {
        Phase::Open => ctx.open -= 1,
        Phase::Dead => {}
        _ => ctx.pending -= 1,
    }
    *c = Conn {
        sock,
        phase: Phase::Connecting,
        off: 0,
        head: [0; 16],
        next: NOT_JOINED,
        hs_sent: 0,
        hs: Vec::new(),
        key: c.key,
    };
    ctx.pending += 1;
    ctx.reconnects += 1;
    Ok(())
}

fn dispatch(events: &Events, conns: &mut [Conn], ctx: &mut Ctx, rbuf: &mut [u8]) {
    for ev in events.iter() {
        let i = ev.token().0;
        on_event(&mut conns[i], i, ctx, rbuf);
    }
    // Publications made complete by these events: the next ones, in one write.
    if ctx.counting {
        top_up(ctx);
    }
    let p = ctx.publisher;
    if p < conns.len() && conns[p].phase == Phase::Open && !ctx.publ.out.is_empty() {
        flush(&mut conns[p], ctx);
    }
}

fn run(args: &Args) -> io::Result<String> {
    raise_nofile(args.conns as u64 + 256);
    let mut rng = Rng(seed());
    let traffic = Traffic::new(args, &mut rng);
    let addr = SocketAddr::from(([127, 0, 0, 1], args.port));
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(4096);
    let mut rbuf = vec![0u8; 256 * 1024];
    let mut conns: Vec<Conn> = Vec::with_capacity(args.conns + 1);
    let mut ctx = Ctx {
        args,
        traffic: &traffic,
        base: Instant::now(),
        errors: Errors::default(),
        hist: Histogram::new(),
        measuring: false,
        counting: false,
        deliveries: 0,
        publications: 0,
        open: 0,
        pending: 0,
        joined: 0,
        publisher: usize::MAX,
        publ: Publisher {
            next_seq: 0,
            oldest: 0,
            counts: vec![0; args.depth.next_power_of_two()],
            out: Vec::with_capacity(traffic.publication.len() * (args.depth + 1)),
            out_off: 0,
        },
        last_progress: Instant::now(),
        reconnects: 0,
    };

    // Phase 1: N subscribers, then the publisher, at most max_pending at a time.
    let setup_start = Instant::now();
    let deadline = setup_start + SETUP_TIMEOUT;
    let all = args.conns + 1;
    while conns.len() < all || ctx.pending > 0 {
        while conns.len() < all && ctx.pending < args.max_pending {
            if conns.len() == args.conns {
                if ctx.pending > 0 {
                    break; // the publisher comes last, once every subscriber is open
                }
                ctx.publisher = conns.len();
            }
            if let Err(e) = connect(&poll, &mut conns, &mut ctx, addr) {
                eprintln!("fanout-load: connect: {e}");
                ctx.errors.connect += 1;
                return Ok(report(&ctx, &conns, None, setup_start.elapsed()));
            }
        }
        if Instant::now() >= deadline || ctx.errors.total() > 0 {
            ctx.errors.setup_timeout += u64::from(ctx.errors.total() == 0);
            return Ok(report(&ctx, &conns, None, setup_start.elapsed()));
        }
        poll.poll(&mut events, Some(Duration::from_millis(50)))?;
        dispatch(&events, &mut conns, &mut ctx, &mut rbuf);
    }
    let setup = setup_start.elapsed();
    eprintln!(
        "fanout-load: {} connections open in {:.2} s",
        ctx.open,
        setup.as_secs_f64()
    );

    // Phase 2: join probes until every connection has received one, then drain.
    let mut last_probe = Instant::now() - PROBE_EVERY;
    let mut last_rejoin = Instant::now();
    while ctx.joined < all {
        // Raw only: a WebSocket subscriber's handshake proved that the server has it.
        if !args.ws && last_rejoin.elapsed() >= REJOIN_AFTER {
            last_rejoin = Instant::now();
            for i in 0..args.conns {
                if conns[i].phase == Phase::Open && conns[i].next == NOT_JOINED {
                    reconnect(&poll, &mut conns, i, &mut ctx, addr)?;
                }
            }
        }
        // One probe at a time: the next when the publisher got its own copy of the
        // last one back (so the server has sent it to everyone it had).
        let p = ctx.publisher;
        let back = ctx.publ.next_seq == 0
            || (conns[p].next != NOT_JOINED && conns[p].next == ctx.publ.next_seq);
        if back && last_probe.elapsed() >= PROBE_EVERY {
            publish(&mut ctx, 1);
            last_probe = Instant::now();
            let p = ctx.publisher;
            flush(&mut conns[p], &mut ctx);
        }
        if Instant::now() >= deadline || ctx.errors.total() > 0 {
            ctx.errors.setup_timeout += u64::from(ctx.errors.total() == 0);
            return Ok(report(&ctx, &conns, None, setup));
        }
        poll.poll(&mut events, Some(PROBE_EVERY))?;
        dispatch(&events, &mut conns, &mut ctx, &mut rbuf);
    }
    while conns.iter().any(|c| c.next != ctx.publ.next_seq) {
        if Instant::now() >= deadline || ctx.errors.total() > 0 {
            ctx.errors.setup_timeout += u64::from(ctx.errors.total() == 0);
            return Ok(report(&ctx, &conns, None, setup));
        }
        poll.poll(&mut events, Some(Duration::from_millis(50)))?;
        dispatch(&events, &mut conns, &mut ctx, &mut rbuf);
    }

    // Phase 3: D publications in flight; warmup, then the measured window.
    ctx.counting = true;
    ctx.publ.oldest = ctx.publ.next_seq;
    ctx.last_progress = Instant::now();
    top_up(&mut ctx);
    let p = ctx.publisher;
    flush(&mut conns[p], &mut ctx);
    let warm_end = Instant::now() + Duration::from_secs_f64(args.warmup);
    let mut end = warm_end + Duration::from_secs_f64(args.duration);
    let mut window: Option<(Instant, u64, Option<u64>)> = None;
    loop {
        let now = Instant::now();
        if window.is_none() && now >= warm_end {
            ctx.measuring = true;
            window = Some((now, self_cpu_us(), args.server_pid.and_then(proc_cpu_us)));
            end = now + Duration::from_secs_f64(args.duration);
        }
        if now >= end || ctx.errors.total() > 0 {
            break;
        }
        if now - ctx.last_progress > STALL {
            ctx.errors.stall += 1;
            eprintln!(
                "fanout-load: no publication completed in {} s (oldest {} received by {} of {})",
                STALL.as_secs(),
                ctx.publ.oldest,
                ctx.publ.counts[ctx.publ.oldest as usize % ctx.publ.counts.len()],
                args.conns
            );
            break;
        }
        let deadline = if window.is_none() { warm_end } else { end };
        let wait = deadline
            .saturating_duration_since(now)
            .min(Duration::from_millis(500));
        poll.poll(&mut events, Some(wait))?;
        dispatch(&events, &mut conns, &mut ctx, &mut rbuf);
    }
    let t_end = Instant::now();
    let cpu_end = self_cpu_us();
    let srv_end = args.server_pid.and_then(proc_cpu_us);
    let measured = window.map(|(t0, cpu0, srv0)| {
        let secs = (t_end - t0).as_secs_f64().max(1e-9);
        let srv = match (srv0, srv_end) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        };
        (secs, cpu_end.saturating_sub(cpu0), srv)
    });
    Ok(report(&ctx, &conns, measured, setup))
}

/// The JSON line; `measured`: (seconds, own CPU µs, server CPU µs) of the window.
fn report(
    ctx: &Ctx,
    conns: &[Conn],
    measured: Option<(f64, u64, Option<u64>)>,
    setup: Duration,
) -> String {
    let a = ctx.args;
    let (secs, own, srv) = measured.unwrap_or((0.0, 0, None));
    let per_s = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    let mut out = format!(
        "{{\"mode\":\"{}\",\"label\":\"{}\",\"port\":{},\"conns\":{},\"conns_ok\":{},\"size\":{},\
         \"depth\":{},\"setup_s\":{:.3},\"reconnects\":{},\"duration_s\":{secs:.3},\"deliveries\":{},\
         \"deliveries_per_s\":{:.1},\"publications\":{},\"publications_per_s\":{:.1},\
         \"p50_us\":{:.1},\"p99_us\":{:.1},\"errors\":{},\"error_detail\":{},\
         \"client_cpu_pct\":{:.1}",
        if a.ws { "ws" } else { "raw" },
        a.label.replace(['"', '\\'], "_"),
        a.port,
        a.conns,
        conns
            .iter()
            .enumerate()
            .filter(|(i, c)| *i != ctx.publisher && c.phase == Phase::Open)
            .count(),
        a.size,
        a.depth,
        setup.as_secs_f64(),
        ctx.reconnects,
        ctx.deliveries,
        per_s(ctx.deliveries),
        ctx.publications,
        per_s(ctx.publications),
        ctx.hist.quantile_us(0.50),
        ctx.hist.quantile_us(0.99),
        ctx.errors.total(),
        ctx.errors.json(),
        if secs > 0.0 { own as f64 / 1e4 / secs } else { 0.0 },
    );
    if let Some(d) = srv {
        let d = d as f64;
        out.push_str(&format!(
            ",\"server_cpu_pct\":{:.1},\"server_cpu_us_per_delivery\":{:.4}",
            d / 1e4 / secs,
            if ctx.deliveries > 0 {
                d / ctx.deliveries as f64
            } else {
                0.0
            }
        ));
    }
    out.push('}');
    out
}

fn main() {
    let args = parse_args().unwrap_or_else(|e| {
        eprintln!("fanout-load: {e}");
        std::process::exit(2);
    });
    match run(&args) {
        Ok(line) => {
            println!("{line}");
            if line.contains("\"errors\":0,") {
                return;
            }
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("fanout-load: {e}");
            std::process::exit(1);
        }
    }
}
