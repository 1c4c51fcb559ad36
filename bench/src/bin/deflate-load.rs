//! Load generator for echo servers with permessage-deflate (RFC 7692): N connections,
//! each sending one compressed JSON-like message and waiting for its echo, again and
//! again for a fixed time. Prints one JSON line: messages/s, bytes on the wire each
//! way, and (with `--server-pid`) the server's CPU time per message, read from
//! `/proc/PID/stat` before and after the run. Used by `scripts/bench-deflate.sh`.
//!
//! ```text
//! deflate-load --port N [--conns 8] [--size 4096] [--seconds 4] [--warmup 1]
//!              [--takeover] [--level 6] [--no-check] [--server-pid PID] [--label NAME]
//! ```
//! Each connection first runs `--warmup` seconds unmeasured (a JIT, caches, the
//! server's allocations), then all are measured together for `--seconds`.
//! Without `--takeover` it offers `client_no_context_takeover;
//! server_no_context_takeover` and requires the server to accept the latter: every
//! message is then the same compressed bytes, computed once and masked anew per
//! send, and every echo is inflated by a reset stream. With `--takeover` each
//! connection keeps one compressor and one inflater. `--check` (the default)
//! inflates each echo and compares it with what was sent.
//!
//! One thread per connection, blocking sockets, every read bounded by a timeout.

#[path = "../payload.rs"]
mod payload;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use zlib_rs::{Deflate, DeflateFlush, Inflate, InflateFlush, Status};

use payload::{json_like, XorShift};

const USAGE: &str = "usage: deflate-load --port N [--conns 8] [--size 4096] [--seconds 4] \
                     [--warmup 1] [--takeover] [--level 6] [--no-check] [--server-pid PID] [--label NAME]";
/// The tail that a sync flush ends with and that RFC 7692 strips from each message.
const TAIL: [u8; 4] = [0, 0, 0xff, 0xff];
/// Every connect and read gives up after this long: a stuck server fails the run.
const TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let opts = match Options::parse(std::env::args().skip(1)) {
        Ok(opts) => opts,
        Err(msg) => {
            eprintln!("deflate-load: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("deflate-load: {err}");
            ExitCode::FAILURE
        }
    }
}

struct Options {
    port: u16,
    conns: usize,
    size: usize,
    seconds: f64,
    warmup: f64,
    takeover: bool,
    level: i32,
    check: bool,
    server_pid: Option<u32>,
    label: String,
}

impl Options {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
        let mut opts = Options {
            port: 0,
            conns: 8,
            size: 4096,
            seconds: 4.0,
            warmup: 1.0,
            takeover: false,
            level: 6,
            check: true,
            server_pid: None,
            label: String::new(),
        };
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or(format!("{arg} needs a value"));
            match arg.as_str() {
                "--port" => opts.port = number(&arg, &value()?)?,
                "--conns" => opts.conns = number(&arg, &value()?)?,
                "--size" => opts.size = number(&arg, &value()?)?,
                "--seconds" => opts.seconds = number(&arg, &value()?)?,
                "--warmup" => opts.warmup = number(&arg, &value()?)?,
                "--level" => opts.level = number(&arg, &value()?)?,
                "--server-pid" => opts.server_pid = Some(number(&arg, &value()?)?),
                "--label" => opts.label = value()?,
                "--takeover" => opts.takeover = true,
                "--check" => opts.check = true,
                "--no-check" => opts.check = false,
                _ => return Err(format!("unknown argument {arg}")),
            }
        }
        if opts.port == 0 {
            return Err("--port is required".into());
        }
        if opts.conns == 0 || opts.size == 0 || opts.seconds <= 0.0 || opts.warmup < 0.0 {
            return Err(
                "--conns, --size and --seconds must be positive, --warmup not negative".into(),
            );
        }
        if !(0..=9).contains(&opts.level) {
            return Err("--level must be 0 to 9".into());
        }
        Ok(opts)
    }
}

fn number<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{flag}: not a valid number: {text}"))
}

/// What all connections share: the payload, its compressed form when there is no
/// context takeover, and the options.
struct Shared<'a> {
    opts: &'a Options,
    payload: Vec<u8>,
    compressed: Vec<u8>,
}

/// One connection's counts, summed at the end.
#[derive(Default)]
struct Counts {
    messages: u64,
    wire_out: u64,
    wire_in: u64,
}

fn run(opts: &Options) -> Result<String, String> {
    let payload = json_like(opts.size);
    let compressed = compress(&mut new_deflate(opts.level, 15), &payload);
    let shared = Shared {
        opts,
        payload,
        compressed,
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], opts.port));
    // Handshakes and the warm-up on every connection, then all start together: the
    // server's CPU is read while all of them run.
    let ready = Arc::new(Barrier::new(opts.conns + 1));
    let go = Arc::new(Barrier::new(opts.conns + 1));
    let (counts, cpu, elapsed) = thread::scope(|scope| {
        let workers: Vec<_> = (0..opts.conns)
            .map(|index| {
                let (ready, go, shared) = (ready.clone(), go.clone(), &shared);
                scope.spawn(move || {
                    let warmup = Duration::from_secs_f64(shared.opts.warmup);
                    let conn = Conn::open(addr, shared, index).and_then(|mut conn| {
                        let deadline = Instant::now() + warmup;
                        conn.round_trip()?;
                        while Instant::now() < deadline {
                            conn.round_trip()?;
                        }
                        Ok(conn)
                    });
                    ready.wait();
                    go.wait();
                    let mut conn = conn?;
                    conn.counts = Counts::default();
                    let deadline = Instant::now() + Duration::from_secs_f64(shared.opts.seconds);
                    while Instant::now() < deadline {
                        conn.round_trip()?;
                    }
                    Ok::<Counts, String>(conn.counts)
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
        let cpu = match (before, after) {
            (Ok(Some(b)), Ok(Some(a))) => Ok(Some(a.saturating_sub(b))),
            (Err(e), _) | (_, Err(e)) => Err(e),
            _ => Ok(None),
        };
        (results, cpu, elapsed)
    });
    let mut total = Counts::default();
    for counts in counts {
        let counts = counts?;
        total.messages += counts.messages;
        total.wire_out += counts.wire_out;
        total.wire_in += counts.wire_in;
    }
    let cpu_us = cpu?.map(|ticks| ticks as f64 * 1e6 / clock_ticks_per_second());
    let payload_bytes = total.messages * opts.size as u64;
    Ok(format!(
        "{{\"label\":\"{}\",\"mode\":\"{}\",\"size\":{},\"conns\":{},\"seconds\":{:.3},\
         \"messages\":{},\"msgs_per_s\":{:.1},\"wire_out_bytes\":{},\"wire_in_bytes\":{},\
         \"ratio_out\":{:.3},\"ratio_in\":{:.3},\"server_cpu_us_per_msg\":{},\"checked\":{}}}",
        opts.label.replace(['"', '\\'], "_"),
        if opts.takeover {
            "takeover"
        } else {
            "no-takeover"
        },
        opts.size,
        opts.conns,
        elapsed.as_secs_f64(),
        total.messages,
        total.messages as f64 / elapsed.as_secs_f64(),
        total.wire_out,
        total.wire_in,
        payload_bytes as f64 / total.wire_out as f64,
        payload_bytes as f64 / total.wire_in as f64,
        cpu_us.map_or("null".into(), |us| format!(
            "{:.1}",
            us / total.messages.max(1) as f64
        )),
        opts.check,
    ))
}

/// One client connection after its handshake.
struct Conn<'a> {
    shared: &'a Shared<'a>,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// With context takeover only: the connection's own compressor.
    deflate: Option<Deflate>,
    inflate: Inflate,
    rng: XorShift,
    frame: Vec<u8>,
    message: Vec<u8>,
    inflated: Vec<u8>,
    counts: Counts,
}

impl<'a> Conn<'a> {
    fn open(addr: SocketAddr, shared: &'a Shared<'a>, index: usize) -> Result<Conn<'a>, String> {
        let opts = shared.opts;
        let stream = TcpStream::connect_timeout(&addr, TIMEOUT)
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        let io = |e: io::Error| format!("connection {index}: {e}");
        stream.set_nodelay(true).map_err(io)?;
        stream.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
        stream.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
        let mut writer = stream.try_clone().map_err(io)?;
        let offer = if opts.takeover {
            "permessage-deflate"
        } else {
            "permessage-deflate; client_no_context_takeover; server_no_context_takeover"
        };
        write!(
            writer,
            "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: ZGVmbGF0ZS1sb2FkLWtleQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Extensions: {offer}\r\n\r\n"
        )
        .map_err(io)?;
        let mut reader = BufReader::new(stream);
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            if reader.read_until(b'\n', &mut head).map_err(io)? == 0 || head.len() > 16384 {
                return Err(format!("connection {index}: no complete handshake answer"));
            }
        }
        let head = String::from_utf8_lossy(&head);
        if !head.starts_with("HTTP/1.1 101") {
            let status = head.lines().next().unwrap_or_default();
            return Err(format!("connection {index}: handshake refused: {status}"));
        }
        let params = negotiated(&head).ok_or(format!(
            "connection {index}: the server did not accept permessage-deflate (answer: {head:?})"
        ))?;
        if !opts.takeover
            && !params
                .iter()
                .any(|(k, _)| k == "server_no_context_takeover")
        {
            return Err(format!(
                "connection {index}: the server kept context takeover (answer: {head:?})"
            ));
        }
        // A server may limit our window (only if we offered client_max_window_bits,
        // which we do not; honoured anyway).
        let window = params
            .iter()
            .find(|(k, _)| k == "client_max_window_bits")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(15);
        if !opts.takeover && window != 15 {
            return Err(format!("connection {index}: client_max_window_bits={window} asked without takeover: unsupported"));
        }
        Ok(Conn {
            shared,
            reader,
            writer,
            deflate: opts.takeover.then(|| new_deflate(opts.level, window)),
            inflate: Inflate::new(false, 15),
            rng: XorShift(0x9e37_79b9_7f4a_7c15 ^ index as u64),
            frame: Vec::new(),
            message: Vec::new(),
            inflated: Vec::new(),
            counts: Counts::default(),
        })
    }

    /// Sends the payload compressed, receives the echo, checks it if asked.
    fn round_trip(&mut self) -> Result<(), String> {
        let compressed = match &mut self.deflate {
            Some(deflate) => compress(deflate, &self.shared.payload),
            None => Vec::new(),
        };
        let body = if self.deflate.is_some() {
            &compressed
        } else {
            &self.shared.compressed
        };
        let mask = (self.rng.next() as u32).to_ne_bytes();
        self.frame.clear();
        push_header(&mut self.frame, 0xc1, body.len(), Some(mask));
        let start = self.frame.len();
        self.frame.extend_from_slice(body);
        apply_mask(&mut self.frame[start..], mask);
        self.writer
            .write_all(&self.frame)
            .map_err(|e| format!("send: {e}"))?;
        self.counts.wire_out += self.frame.len() as u64;

        let compressed_echo = self.receive()?;
        if !compressed_echo {
            return Err("the echo came back uncompressed (RSV1 clear)".into());
        }
        if self.shared.opts.check {
            self.inflate_message()?;
            if self.inflated != self.shared.payload {
                return Err("the echo differs from the message sent".into());
            }
        }
        self.counts.messages += 1;
        Ok(())
    }

    /// Reads frames up to the end of one data message into `self.message`;
    /// answers pings. Returns whether the message had RSV1 set.
    fn receive(&mut self) -> Result<bool, String> {
        let io = |e: io::Error| format!("receive: {e}");
        self.message.clear();
        let mut compressed = None;
        loop {
            let mut head = [0; 2];
            self.reader.read_exact(&mut head).map_err(io)?;
            let len = match head[1] & 0x7f {
                126 => {
                    let mut ext = [0; 2];
                    self.reader.read_exact(&mut ext).map_err(io)?;
                    self.counts.wire_in += 2;
                    u64::from(u16::from_be_bytes(ext))
                }
                127 => {
                    let mut ext = [0; 8];
                    self.reader.read_exact(&mut ext).map_err(io)?;
                    self.counts.wire_in += 8;
                    u64::from_be_bytes(ext)
                }
                len => u64::from(len),
            };
            if head[1] & 0x80 != 0 {
                return Err("the server masked a frame".into());
            }
            if len > 64 << 20 {
                return Err(format!("frame of {len} bytes"));
            }
            self.counts.wire_in += 2 + len;
            let (fin, opcode) = (head[0] & 0x80 != 0, head[0] & 0x0f);
            match opcode {
                0x0..=0x2 => {
                    if compressed.is_none() {
                        compressed = Some(head[0] & 0x40 != 0);
                    }
                    let at = self.message.len();
                    self.message.resize(at + len as usize, 0);
                    self.reader
                        .read_exact(&mut self.message[at..])
                        .map_err(io)?;
                    if fin {
                        return Ok(compressed.unwrap_or(false));
                    }
                }
                0x9 => {
                    let mut body = vec![0; len as usize];
                    self.reader.read_exact(&mut body).map_err(io)?;
                    let mask = (self.rng.next() as u32).to_ne_bytes();
                    let mut pong = Vec::new();
                    push_header(&mut pong, 0x8a, body.len(), Some(mask));
                    apply_mask(&mut body, mask);
                    pong.extend_from_slice(&body);
                    self.writer.write_all(&pong).map_err(io)?;
                    self.counts.wire_out += pong.len() as u64;
                }
                0xa => {
                    io::copy(&mut (&mut self.reader).take(len), &mut io::sink()).map_err(io)?;
                }
                0x8 => return Err("the server closed the connection".into()),
                _ => return Err(format!("unexpected opcode {opcode:#x}")),
            }
        }
    }

    /// Inflates `self.message` (tail stripped) into `self.inflated`.
    fn inflate_message(&mut self) -> Result<(), String> {
        if self.deflate.is_none() {
            self.inflate.reset(false);
        }
        self.inflated.clear();
        let expected = self.shared.payload.len();
        for part in [&self.message[..], &TAIL] {
            let mut read = 0;
            while read < part.len() {
                // Room for the whole payload and then some: a longer echo is a
                // mismatch, found by the comparison.
                let done = self.inflated.len();
                self.inflated.resize(done.max(expected) + 4096, 0);
                let (in0, out0) = (self.inflate.total_in(), self.inflate.total_out());
                let status = self.inflate.decompress(
                    &part[read..],
                    &mut self.inflated[done..],
                    InflateFlush::SyncFlush,
                );
                let read_now = (self.inflate.total_in() - in0) as usize;
                let wrote = (self.inflate.total_out() - out0) as usize;
                self.inflated.truncate(done + wrote);
                read += read_now;
                match status {
                    Ok(Status::Ok | Status::BufError) if read_now + wrote > 0 => {}
                    Ok(Status::Ok | Status::BufError) if read == part.len() => {}
                    other => return Err(format!("inflate: {other:?}")),
                }
            }
        }
        Ok(())
    }
}

/// The parameters of the permessage-deflate extension in a handshake answer.
fn negotiated(head: &str) -> Option<Vec<(String, String)>> {
    head.lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(name, _)| name.trim().eq_ignore_ascii_case("sec-websocket-extensions"))
        .flat_map(|(_, value)| value.split(','))
        .map(|ext| {
            ext.split(';')
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (
                        k.trim().to_ascii_lowercase(),
                        v.trim().trim_matches('"').to_string(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .find(|params| {
            params
                .first()
                .is_some_and(|(k, _)| k == "permessage-deflate")
        })
        .map(|mut params| params.split_off(1))
}

fn new_deflate(level: i32, window_bits: u8) -> Deflate {
    Deflate::new(level, false, window_bits)
}

/// One message: sync flush, tail stripped. Resets nothing: the caller decides
/// whether the stream's context carries over.
fn compress(deflate: &mut Deflate, input: &[u8]) -> Vec<u8> {
    // Room for incompressible input (zlib-rs's level 1 uses fixed codes: up to 9
    // bits a byte).
    let mut out = vec![0; input.len() + input.len() / 8 + 256];
    let out0 = deflate.total_out();
    let status = deflate.compress(input, &mut out, DeflateFlush::SyncFlush);
    let len = (deflate.total_out() - out0) as usize;
    // Cannot fail on a valid stream with room for the whole output.
    assert!(
        status == Ok(Status::Ok) && out[..len].ends_with(&TAIL),
        "deflate: {status:?}"
    );
    out.truncate(len - TAIL.len());
    out
}

fn push_header(frame: &mut Vec<u8>, first: u8, len: usize, mask: Option<[u8; 4]>) {
    let masked = if mask.is_some() { 0x80 } else { 0 };
    frame.push(first);
    match len {
        0..=125 => frame.push(masked | len as u8),
        126..=0xffff => {
            frame.push(masked | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            frame.push(masked | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    if let Some(mask) = mask {
        frame.extend_from_slice(&mask);
    }
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
