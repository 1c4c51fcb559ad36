//! Load generator for wss:// echo servers (TLS 1.3 through rustls with ring), used by
//! `scripts/bench-tls.sh`. Two modes, each printing one JSON line.
//!
//! ```text
//! tls-load --port N --ca FILE [--size 32] [--text] [--conns 8] [--seconds 4]
//!          [--warmup 1] [--check-bytes] [--server-pid PID] [--label NAME]
//! tls-load --port N --ca FILE --idle N [--threads 4] [--server-pid PID] [--label NAME]
//! ```
//! **Echo** (the default): `--conns` connections, each sending one message of `--size`
//! bytes (binary, or text with `--text`) and waiting for its echo, again and again.
//! Each connection first runs `--warmup` seconds unmeasured, then all are measured
//! together for `--seconds`. Every echo's length and opcode are checked, its bytes too
//! with `--check-bytes`. With `--server-pid` the server's utime+stime is read from
//! `/proc/PID/stat` before and after: server CPU per message. Latency is each round
//! trip's (send to whole echo received), p50 and p99 over all connections.
//!
//! **Idle** (`--idle N`): opens N connections from `--threads` threads, each with its
//! TLS handshake, WebSocket upgrade and one 32 B echo, and holds them all open. The
//! server's VmRSS (`/proc/PID/status`) is read after one such connection has come and
//! gone (the server's one-time allocations) and again once all N are open and a
//! second has passed: the difference over N is the server's bytes per idle
//! connection. It also reports the server's CPU per connection set up (handshakes
//! dominate). `--server-pid` is required in this mode.
//!
//! The client trusts only `--ca` (PEM), asks for `--server-name` (default
//! `localhost`), offers TLS 1.3 only and never resumes a session: every connection
//! pays a full handshake, whatever the server's ticket policy. WebSocket framing
//! (masking, a ping's pong) is done here over the plaintext of a rustls
//! `ClientConnection`; the socket is non-blocking and driven by `poll(2)`, so a 1 MiB
//! echo can come back while the message is still being sent. Every wait is bounded.
//! The soft limit on open files is raised to the hard one (with N connections the
//! server needs about N descriptors too).

#[path = "../payload.rs"]
mod payload;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

use payload::{json_like, random_bytes, XorShift};

const USAGE: &str = "usage: tls-load --port N --ca FILE [--server-name localhost] \
                     [--size 32] [--text] [--conns 8] [--seconds 4] [--warmup 1] \
                     [--check-bytes] [--idle N] [--threads 4] [--server-pid PID] [--label NAME]";
/// Every connect, handshake and round trip gives up after this long.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The size of the echo each idle connection makes before it goes quiet.
const IDLE_ECHO: usize = 32;

fn main() -> ExitCode {
    let opts = match Options::parse(std::env::args().skip(1)) {
        Ok(opts) => opts,
        Err(msg) => {
            eprintln!("tls-load: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = client_config(&opts.ca).and_then(|config| {
        let target = Target {
            addr: SocketAddr::from(([127, 0, 0, 1], opts.port)),
            name: ServerName::try_from(opts.server_name.clone())
                .map_err(|e| format!("--server-name: {e}"))?,
            config,
        };
        match opts.idle {
            Some(idle) => run_idle(&opts, &target, idle),
            None => run_echo(&opts, &target),
        }
    });
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("tls-load: {err}");
            ExitCode::FAILURE
        }
    }
}

struct Options {
    port: u16,
    ca: String,
    server_name: String,
    size: usize,
    text: bool,
    conns: usize,
    seconds: f64,
    warmup: f64,
    check_bytes: bool,
    idle: Option<usize>,
    threads: usize,
    server_pid: Option<u32>,
    label: String,
}

impl Options {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
        let mut opts = Options {
            port: 0,
            ca: String::new(),
            server_name: "localhost".into(),
            size: 32,
            text: false,
            conns: 8,
            seconds: 4.0,
            warmup: 1.0,
            check_bytes: false,
            idle: None,
            threads: 4,
            server_pid: None,
            label: String::new(),
        };
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or(format!("{arg} needs a value"));
            match arg.as_str() {
                "--port" => opts.port = number(&arg, &value()?)?,
                "--ca" => opts.ca = value()?,
                "--server-name" => opts.server_name = value()?,
                "--size" => opts.size = number(&arg, &value()?)?,
                "--conns" => opts.conns = number(&arg, &value()?)?,
                "--seconds" => opts.seconds = number(&arg, &value()?)?,
                "--warmup" => opts.warmup = number(&arg, &value()?)?,
                "--idle" => opts.idle = Some(number(&arg, &value()?)?),
                "--threads" => opts.threads = number(&arg, &value()?)?,
                "--server-pid" => opts.server_pid = Some(number(&arg, &value()?)?),
                "--label" => opts.label = value()?,
                "--text" => opts.text = true,
                "--check-bytes" => opts.check_bytes = true,
                _ => return Err(format!("unknown argument {arg}")),
            }
        }
        if opts.port == 0 || opts.ca.is_empty() {
            return Err("--port and --ca are required".into());
        }
        if opts.conns == 0 || opts.size == 0 || opts.seconds <= 0.0 || opts.warmup < 0.0 {
            return Err(
                "--conns, --size and --seconds must be positive, --warmup not negative".into(),
            );
        }
        if opts.idle == Some(0) || opts.threads == 0 {
            return Err("--idle and --threads must be positive".into());
        }
        if opts.idle.is_some() && opts.server_pid.is_none() {
            return Err("--idle needs --server-pid".into());
        }
        Ok(opts)
    }
}

fn number<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{flag}: not a valid number: {text}"))
}

/// Where and how to connect: shared by every connection.
struct Target {
    addr: SocketAddr,
    name: ServerName<'static>,
    config: Arc<ClientConfig>,
}

/// TLS 1.3 with ring, trusting the certificates in `ca` only, no resumption.
fn client_config(ca: &str) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| format!("{ca}: {e}"))? {
        let cert = cert.map_err(|e| format!("{ca}: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("{ca}: not a usable CA certificate: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| format!("TLS 1.3: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

// ------------------------------------------------------------------ echo mode

/// One connection's counts and round-trip times (µs), merged at the end.
#[derive(Default)]
struct Counts {
    suite: String,
    messages: u64,
    latencies_us: Vec<u32>,
}

fn run_echo(opts: &Options, target: &Target) -> Result<String, String> {
    let payload = if opts.text {
        json_like(opts.size)
    } else {
        random_bytes(opts.size)
    };
    let opcode = if opts.text { 0x1 } else { 0x2 };
    // Handshakes and the warm-up on every connection, then all start together: the
    // server's CPU is read while all of them run.
    let ready = Arc::new(Barrier::new(opts.conns + 1));
    let go = Arc::new(Barrier::new(opts.conns + 1));
    let (results, cpu, elapsed) = thread::scope(|scope| {
        let workers: Vec<_> = (0..opts.conns)
            .map(|index| {
                let (ready, go, payload) = (ready.clone(), go.clone(), &payload);
                scope.spawn(move || {
                    let warmup = Duration::from_secs_f64(opts.warmup);
                    let conn = Conn::open(target, index).and_then(|mut conn| {
                        let deadline = Instant::now() + warmup;
                        conn.round_trip(opcode, payload, opts.check_bytes)?;
                        while Instant::now() < deadline {
                            conn.round_trip(opcode, payload, opts.check_bytes)?;
                        }
                        Ok(conn)
                    });
                    ready.wait();
                    go.wait();
                    let mut conn = conn?;
                    let mut counts = Counts {
                        suite: conn.suite(),
                        ..Counts::default()
                    };
                    let deadline = Instant::now() + Duration::from_secs_f64(opts.seconds);
                    loop {
                        let start = Instant::now();
                        if start >= deadline {
                            break;
                        }
                        conn.round_trip(opcode, payload, opts.check_bytes)?;
                        let us = start.elapsed().as_micros();
                        counts.latencies_us.push(us.min(u32::MAX as u128) as u32);
                        counts.messages += 1;
                    }
                    Ok::<Counts, String>(counts)
                })
            })
            .collect();
        ready.wait();
        let before = opts.server_pid.map(cpu_ticks).transpose();
        let start = Instant::now();
        go.wait();
        let results: Vec<_> = workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err("a connection panicked".into()))
            })
            .collect();
        let elapsed = start.elapsed();
        let after = opts.server_pid.map(cpu_ticks).transpose();
        (results, difference(before, after), elapsed)
    });
    let mut total = Counts::default();
    for counts in results {
        let mut counts = counts?;
        total.suite = counts.suite;
        total.messages += counts.messages;
        total.latencies_us.append(&mut counts.latencies_us);
    }
    total.latencies_us.sort_unstable();
    let percentile = |p: f64| {
        let lat = &total.latencies_us;
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let cpu_us = cpu?.map(|ticks| ticks as f64 * 1e6 / clock_ticks_per_second());
    Ok(format!(
        "{{\"label\":\"{}\",\"mode\":\"echo\",\"size\":{},\"opcode\":\"{}\",\"conns\":{},\
         \"seconds\":{:.3},\"messages\":{},\"msgs_per_s\":{:.1},\"server_cpu_us_per_msg\":{},\
         \"p50_us\":{},\"p99_us\":{},\"checked_bytes\":{},\"suite\":\"{}\"}}",
        json_safe(&opts.label),
        opts.size,
        if opts.text { "text" } else { "binary" },
        opts.conns,
        elapsed.as_secs_f64(),
        total.messages,
        total.messages as f64 / elapsed.as_secs_f64(),
        cpu_us.map_or("null".into(), |us| format!(
            "{:.3}",
            us / total.messages.max(1) as f64
        )),
        percentile(0.50),
        percentile(0.99),
        opts.check_bytes,
        total.suite,
    ))
}

// ------------------------------------------------------------------ idle mode

fn run_idle(opts: &Options, target: &Target, idle: usize) -> Result<String, String> {
    let pid = opts.server_pid.ok_or("--idle needs --server-pid")?;
    let limit = raise_nofile_limit()?;
    // Our descriptors: the N sockets and a few more.
    if (idle as u64) + 64 > limit {
        return Err(format!(
            "{idle} connections need more open files than the limit of {limit}"
        ));
    }
    let payload = random_bytes(IDLE_ECHO);
    // One connection that comes and goes: the server's one-time allocations (its
    // TLS config's caches, buffers kept for reuse) land before the first reading.
    let suite = {
        let mut conn = Conn::open(target, usize::MAX)?;
        conn.round_trip(0x2, &payload, true)?;
        conn.suite()
    };
    thread::sleep(Duration::from_millis(500));
    let rss_before = rss_bytes(pid)?;
    let cpu_before = cpu_ticks(pid)?;
    let start = Instant::now();
    let next = AtomicUsize::new(0);
    let threads = opts.threads.min(idle);
    let held = thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (next, payload) = (&next, &payload);
                scope.spawn(move || {
                    let mut held = Vec::new();
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        if index >= idle {
                            return Ok::<_, String>(held);
                        }
                        let mut conn = Conn::open(target, index)?;
                        conn.round_trip(0x2, payload, true)?;
                        held.push(conn);
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err("a connection panicked".into()))
            })
            .collect::<Result<Vec<_>, _>>()
    })?;
    let setup = start.elapsed();
    let cpu_after = cpu_ticks(pid)?;
    thread::sleep(Duration::from_secs(1));
    let rss_after = rss_bytes(pid)?;
    let open: usize = held.iter().map(Vec::len).sum();
    let cpu_us = cpu_after.saturating_sub(cpu_before) as f64 * 1e6 / clock_ticks_per_second();
    Ok(format!(
        "{{\"label\":\"{}\",\"mode\":\"idle\",\"conns\":{open},\"rss_before\":{rss_before},\
         \"rss_after\":{rss_after},\"bytes_per_conn\":{:.0},\"setup_seconds\":{:.3},\
         \"server_cpu_us_per_conn\":{:.1},\"suite\":\"{suite}\"}}",
        json_safe(&opts.label),
        (rss_after as f64 - rss_before as f64) / open as f64,
        setup.as_secs_f64(),
        cpu_us / open as f64,
    ))
}

/// Raises the soft limit on open files to the hard one; returns the new soft limit.
fn raise_nofile_limit() -> Result<u64, String> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit for getrlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(format!("getrlimit: {}", io::Error::last_os_error()));
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: `limit` is a valid rlimit read just above; only the soft limit changed.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(format!("setrlimit: {}", io::Error::last_os_error()));
    }
    Ok(limit.rlim_cur)
}

// ------------------------------------------------------------------ one connection

/// A client connection after its TLS and WebSocket handshakes: a non-blocking socket,
/// the rustls session on it, the plaintext still to send and received but not parsed.
struct Conn {
    index: usize,
    sock: TcpStream,
    tls: ClientConnection,
    /// Plaintext for `tls.writer()`, from `sent` on.
    out: Vec<u8>,
    sent: usize,
    /// Plaintext from `tls.reader()`, parsed from `parsed` on.
    input: Vec<u8>,
    parsed: usize,
    rng: XorShift,
}

impl Conn {
    /// Connects, completes the TLS handshake and the WebSocket upgrade.
    fn open(target: &Target, index: usize) -> Result<Conn, String> {
        let sock = TcpStream::connect_timeout(&target.addr, TIMEOUT)
            .map_err(|e| format!("connection {index}: connect to {}: {e}", target.addr))?;
        let io = |e: io::Error| format!("connection {index}: {e}");
        sock.set_nodelay(true).map_err(io)?;
        sock.set_nonblocking(true).map_err(io)?;
        let tls = ClientConnection::new(target.config.clone(), target.name.clone())
            .map_err(|e| format!("connection {index}: {e}"))?;
        let mut conn = Conn {
            index,
            sock,
            tls,
            out: Vec::new(),
            sent: 0,
            input: Vec::new(),
            parsed: 0,
            rng: XorShift(0x9e37_79b9_7f4a_7c15 ^ index as u64),
        };
        // Sent as soon as the TLS handshake is done (rustls holds it until then).
        write!(
            conn.out,
            "GET / HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGxzLWxvYWQta2V5LTAwMA==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            target.addr
        )
        .map_err(io)?;
        let deadline = Instant::now() + TIMEOUT;
        let end = loop {
            if let Some(at) = conn.input.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if conn.input.len() > 16384 {
                return Err(format!("connection {index}: no complete handshake answer"));
            }
            conn.pump(deadline)?;
        };
        if !conn.input.starts_with(b"HTTP/1.1 101") {
            let head = String::from_utf8_lossy(&conn.input[..end]);
            let status = head.lines().next().unwrap_or_default().to_string();
            return Err(format!("connection {index}: handshake refused: {status}"));
        }
        conn.parsed = end;
        Ok(conn)
    }

    /// The cipher suite the handshake settled on, for the report.
    fn suite(&self) -> String {
        self.tls
            .negotiated_cipher_suite()
            .map_or("none".into(), |suite| format!("{:?}", suite.suite()))
    }

    /// Sends one message of `opcode` with `payload`, masked, and waits for its echo:
    /// one data message of the same opcode and length (and bytes, if `check_bytes`),
    /// however the server fragments it. Answers pings on the way.
    fn round_trip(&mut self, opcode: u8, payload: &[u8], check_bytes: bool) -> Result<(), String> {
        let mask = (self.rng.next() as u32).to_ne_bytes();
        push_header(&mut self.out, 0x80 | opcode, payload.len(), mask);
        let start = self.out.len();
        self.out.extend_from_slice(payload);
        apply_mask(&mut self.out[start..], mask);

        let deadline = Instant::now() + TIMEOUT;
        // Bytes of the echo seen so far, and its opcode (from its first frame).
        let mut received = 0;
        let mut echo_opcode = None;
        loop {
            while let Some((first, len, header)) = self.next_frame()? {
                let body = self.parsed + header..self.parsed + header + len;
                let (fin, op) = (first & 0x80 != 0, first & 0x0f);
                match op {
                    0x0..=0x2 => {
                        let op = *echo_opcode.get_or_insert(op);
                        if op != opcode {
                            return Err(format!(
                                "connection {}: echo with opcode {op:#x}, sent {opcode:#x}",
                                self.index
                            ));
                        }
                        if received + len > payload.len()
                            || check_bytes
                                && self.input[body.clone()] != payload[received..received + len]
                        {
                            return Err(format!(
                                "connection {}: the echo differs from the message sent",
                                self.index
                            ));
                        }
                        received += len;
                    }
                    0x9 => {
                        let mut pong = self.input[body.clone()].to_vec();
                        let mask = (self.rng.next() as u32).to_ne_bytes();
                        push_header(&mut self.out, 0x8a, pong.len(), mask);
                        apply_mask(&mut pong, mask);
                        self.out.extend_from_slice(&pong);
                    }
                    0xa => {}
                    0x8 => {
                        return Err(format!(
                            "connection {}: the server closed the connection",
                            self.index
                        ))
                    }
                    _ => {
                        return Err(format!(
                            "connection {}: unexpected opcode {op:#x}",
                            self.index
                        ))
                    }
                }
                self.parsed = body.end;
                if fin && op <= 0x2 {
                    if received != payload.len() {
                        return Err(format!(
                            "connection {}: echo of {received} bytes, sent {}",
                            self.index,
                            payload.len()
                        ));
                    }
                    // Done when the message has left too (a server may echo a
                    // 1 MiB message as it arrives).
                    while self.sent < self.out.len() || self.tls.wants_write() {
                        self.pump(deadline)?;
                    }
                    return Ok(());
                }
            }
            self.pump(deadline)?;
        }
    }

    /// The next whole frame at `parsed`: (first byte, payload length, header length).
    /// Drops what was parsed before it when that is most of the buffer.
    fn next_frame(&mut self) -> Result<Option<(u8, usize, usize)>, String> {
        if self.parsed > 0 && self.parsed * 2 >= self.input.len() {
            self.input.drain(..self.parsed);
            self.parsed = 0;
        }
        let buf = &self.input[self.parsed..];
        if buf.len() < 2 {
            return Ok(None);
        }
        if buf[1] & 0x80 != 0 {
            return Err(format!(
                "connection {}: the server masked a frame",
                self.index
            ));
        }
        let (len, header) = match buf[1] & 0x7f {
            126 if buf.len() >= 4 => (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
            127 if buf.len() >= 10 => {
                let mut ext = [0; 8];
                ext.copy_from_slice(&buf[2..10]);
                (u64::from_be_bytes(ext), 10)
            }
            126 | 127 => return Ok(None),
            len => (u64::from(len), 2),
        };
        if len > 64 << 20 {
            return Err(format!("connection {}: frame of {len} bytes", self.index));
        }
        let len = len as usize;
        Ok((buf.len() >= header + len).then_some((buf[0], len, header)))
    }

    /// One step of I/O: hands rustls what plaintext it takes, waits (until
    /// `deadline`) for the socket to be readable, or writable when rustls has
    /// records to send, moves records both ways and takes the plaintext that came.
    fn pump(&mut self, deadline: Instant) -> Result<(), String> {
        let index = self.index;
        let io = |e: io::Error| format!("connection {index}: {e}");
        if self.sent < self.out.len() {
            self.sent += self
                .tls
                .writer()
                .write(&self.out[self.sent..])
                .map_err(io)?;
            if self.sent == self.out.len() {
                self.out.clear();
                self.sent = 0;
            }
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(format!("connection {index}: no progress for {TIMEOUT:?}"));
        }
        let mut events = libc::POLLIN;
        if self.tls.wants_write() {
            events |= libc::POLLOUT;
        }
        let mut fd = libc::pollfd {
            fd: self.sock.as_raw_fd(),
            events,
            revents: 0,
        };
        let wait = (deadline - now).as_millis().min(i32::MAX as u128) as i32 + 1;
        // SAFETY: `fd` is one valid pollfd, for an open socket we own.
        let ready = unsafe { libc::poll(&mut fd, 1, wait) };
        if ready < 0 {
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::Interrupted => Ok(()),
                _ => Err(io(err)),
            };
        }
        if fd.revents & libc::POLLOUT != 0 {
            while self.tls.wants_write() {
                match self.tls.write_tls(&mut self.sock) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(io(e)),
                }
            }
        }
        if fd.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
            // rustls holds at most 16 KiB of received plaintext: take it after every
            // read of records.
            loop {
                match self.tls.read_tls(&mut self.sock) {
                    Ok(0) => return Err(format!("connection {index}: the server hung up")),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(io(e)),
                }
                self.tls
                    .process_new_packets()
                    .map_err(|e| format!("connection {index}: TLS: {e}"))?;
                self.take_plaintext()?;
                if self.tls.wants_write() {
                    // Handshake records (or alerts) to answer before reading on.
                    break;
                }
            }
        }
        Ok(())
    }

    /// Appends the plaintext rustls has decrypted to `input`.
    fn take_plaintext(&mut self) -> Result<(), String> {
        loop {
            let at = self.input.len();
            self.input.resize(at + 16384, 0);
            let read = self.tls.reader().read(&mut self.input[at..]);
            match read {
                Ok(0) => {
                    self.input.truncate(at);
                    return Err(format!("connection {}: the server closed TLS", self.index));
                }
                Ok(n) => self.input.truncate(at + n),
                Err(e) => {
                    self.input.truncate(at);
                    if e.kind() == io::ErrorKind::WouldBlock {
                        return Ok(());
                    }
                    return Err(format!("connection {}: {e}", self.index));
                }
            }
        }
    }
}

// ------------------------------------------------------------------ helpers

fn push_header(frame: &mut Vec<u8>, first: u8, len: usize, mask: [u8; 4]) {
    frame.push(first);
    match len {
        0..=125 => frame.push(0x80 | len as u8),
        126..=0xffff => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
}

fn apply_mask(data: &mut [u8], mask: [u8; 4]) {
    let word = u32::from_ne_bytes(mask);
    let mut chunks = data.chunks_exact_mut(4);
    for chunk in &mut chunks {
        let masked = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) ^ word;
        chunk.copy_from_slice(&masked.to_ne_bytes());
    }
    for (byte, m) in chunks.into_remainder().iter_mut().zip(mask) {
        *byte ^= m;
    }
}

fn json_safe(label: &str) -> String {
    label.replace(['"', '\\'], "_")
}

fn difference(
    before: Result<Option<u64>, String>,
    after: Result<Option<u64>, String>,
) -> Result<Option<u64>, String> {
    match (before, after) {
        (Ok(Some(b)), Ok(Some(a))) => Ok(Some(a.saturating_sub(b))),
        (Err(e), _) | (_, Err(e)) => Err(e),
        _ => Ok(None),
    }
}

/// utime + stime of a process (all its threads), in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("server pid {pid}: {e}"))?;
    // Fields after the command name, which is in parentheses and may hold spaces;
    // utime and stime are fields 14 and 15 of the whole line.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    match (field(11), field(12)) {
        (Some(utime), Some(stime)) => Ok(utime + stime),
        _ => Err(format!("server pid {pid}: cannot read /proc/{pid}/stat")),
    }
}

/// A process's resident set (`VmRSS` in `/proc/PID/status`), in bytes.
fn rss_bytes(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("server pid {pid}: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or(format!("server pid {pid}: no VmRSS in /proc/{pid}/status"))
}

/// `getconf CLK_TCK` (100 on Linux in practice).
fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}
