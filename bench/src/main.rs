//! In-process engine benchmarks: the same byte streams through net-websocket-ev's
//! engine, C wslay (its event and frame APIs) and tungstenite.
//!
//! ```text
//! nwe-bench [--time-ms MS] [--filter TEXT] [--json FILE] [--iters N]
//! ```
//! A small harness of our own rather than criterion: it builds in seconds on a
//! shared 2-core machine, prints bytes/s and messages/s side by side with ratios,
//! writes JSON lines for `scripts/bench.sh`, and `--iters N` runs each case an exact
//! number of times so that callgrind's instruction counts can be divided per message.
//!
//! Each timed case is calibrated to about MS/5 per sample (default 300 ms in all),
//! 5 samples, median kept.

use std::hint::black_box;
use std::io::{self, Read, Write};
use std::time::Instant;

use net_websocket_ev::proto::{
    apply_mask, Config, Flow, Handler, OpCode, Receiver, Reply, ReplySink, Role, Rsv, Sender,
    Utf8Validator,
};

mod wslay {
    use std::os::raw::{c_int, c_void};
    extern "C" {
        pub fn wslay_bench_new(server: c_int) -> *mut c_void;
        pub fn wslay_bench_free(ctx: *mut c_void);
        pub fn wslay_bench_recv(
            ctx: *mut c_void,
            data: *const u8,
            len: usize,
            bytes: *mut u64,
        ) -> u64;
        pub fn wslay_bench_send(
            ctx: *mut c_void,
            payload: *const u8,
            len: usize,
            count: usize,
        ) -> u64;
        pub fn wslay_bench_unmask(data: *const u8, len: usize) -> u64;
    }
}

const MASK: [u8; 4] = [0x12, 0x34, 0x56, 0x78];
/// Each parse/serialise case moves about this many payload bytes per iteration.
const STREAM_BYTES: usize = 1 << 20;
const SIZES: [usize; 4] = [32, 1024, 64 << 10, 1 << 20];

struct Options {
    time_ms: u64,
    filter: Vec<String>,
    json: Option<std::fs::File>,
    iters: Option<u64>,
}

/// One measured case: `run` does one iteration of `msgs` messages, `bytes` payload.
struct Case<'a> {
    group: &'static str,
    role: &'static str,
    size: usize,
    imp: &'static str,
    msgs: u64,
    bytes: u64,
    run: Box<dyn FnMut() + 'a>,
}

impl Case<'_> {
    fn name(&self) -> String {
        format!("{}/{}/{}/{}", self.group, self.role, self.size, self.imp)
    }
}

fn main() {
    let mut opts = match parse_args() {
        Ok(opts) => opts,
        Err(msg) => {
            eprintln!("nwe-bench: {msg}");
            std::process::exit(2);
        }
    };
    let mut last_group = String::new();
    let mut nwe_ns = 0.0;
    for role in [Role::Server, Role::Client] {
        for size in SIZES {
            run_group(
                &mut opts,
                parse_cases(role, size),
                &mut last_group,
                &mut nwe_ns,
            );
            run_group(
                &mut opts,
                serialise_cases(role, size),
                &mut last_group,
                &mut nwe_ns,
            );
        }
    }
    for size in [32, 1024] {
        let cases = parse_cases_of(Role::Server, size, true);
        run_group(&mut opts, cases, &mut last_group, &mut nwe_ns);
    }
    run_group(&mut opts, mask_cases(), &mut last_group, &mut nwe_ns);
    run_group(&mut opts, utf8_cases(), &mut last_group, &mut nwe_ns);
}

fn parse_args() -> Result<Options, String> {
    let mut opts = Options {
        time_ms: 300,
        filter: Vec::new(),
        json: None,
        iters: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--time-ms" => opts.time_ms = value()?.parse().map_err(|e| format!("{e}"))?,
            "--filter" => opts.filter.push(value()?),
            "--iters" => opts.iters = Some(value()?.parse().map_err(|e| format!("{e}"))?),
            "--json" => {
                let path = value()?;
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|e| format!("{path}: {e}"))?;
                opts.json = Some(file);
            }
            "-h" | "--help" => {
                return Err("usage: nwe-bench [--time-ms MS] [--filter TEXT]... \
                            [--json FILE] [--iters N]"
                    .into())
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(opts)
}

/// Runs the cases of one group (the first is ours) and prints each with its
/// ratio to ours.
fn run_group(opts: &mut Options, cases: Vec<Case<'_>>, last: &mut String, nwe_ns: &mut f64) {
    for mut case in cases {
        let name = case.name();
        if !opts.filter.is_empty() && !opts.filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        if let Some(iters) = opts.iters {
            for _ in 0..iters {
                (case.run)();
            }
            println!("{name}: {iters} iterations");
            continue;
        }
        let group = format!("{}/{}/{}", case.group, case.role, case.size);
        if *last != group {
            println!(
                "\n{:<34} {:>12} {:>10} {:>12} {:>9}",
                group, "ns/msg", "MB/s", "msgs/s", "vs nwe"
            );
            *last = group;
        }
        let ns = measure(&mut case.run, opts.time_ms);
        if case.imp == "nwe" {
            *nwe_ns = ns;
        }
        let per_s = 1e9 / ns;
        let msgs_s = case.msgs as f64 * per_s;
        let bytes_s = case.bytes as f64 * per_s;
        let ratio = ns / *nwe_ns; // >1: the other one takes longer than ours
        println!(
            "  {:<32} {:>12.1} {:>10.1} {:>12.0} {:>8.2}x",
            case.imp,
            ns / case.msgs as f64,
            bytes_s / 1e6,
            msgs_s,
            ratio
        );
        if let Some(json) = opts.json.as_mut() {
            let _ = writeln!(
                json,
                "{{\"kind\":\"engine\",\"group\":\"{}\",\"role\":\"{}\",\"size\":{},\"impl\":\"{}\",\
                 \"ns_per_iter\":{:.1},\"msgs_per_iter\":{},\"bytes_per_iter\":{},\
                 \"ns_per_msg\":{:.3},\"msgs_per_s\":{:.0},\"bytes_per_s\":{:.0}}}",
                case.group,
                case.role,
                case.size,
                case.imp,
                ns,
                case.msgs,
                case.bytes,
                ns / case.msgs as f64,
                msgs_s,
                bytes_s
            );
        }
    }
}

/// Median nanoseconds per iteration over 5 samples of about `time_ms / 5` each.
fn measure(run: &mut dyn FnMut(), time_ms: u64) -> f64 {
    let sample_ns = (time_ms as f64 * 1e6 / 5.0).max(1e6);
    run(); // warm up, and check the case works
    let start = Instant::now();
    run();
    let one = start.elapsed().as_nanos().max(1) as f64;
    let iters = ((sample_ns / one) as u64).max(1);
    let mut samples: Vec<f64> = (0..5)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iters {
                run();
            }
            start.elapsed().as_nanos() as f64 / iters as f64
        })
        .collect();
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[2]
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Server => "server",
        Role::Client => "client",
    }
}

/// `count` binary frames of `size` bytes as the peer of `receiver` sends them
/// (masked when the receiver is a server).
fn stream(receiver: Role, size: usize, count: usize) -> Vec<u8> {
    stream_of(receiver, size, count, false)
}

/// [`stream`] of binary frames, or of ASCII text frames (`text`).
fn stream_of(receiver: Role, size: usize, count: usize, text: bool) -> Vec<u8> {
    let payload: Vec<u8> = if text {
        (0..size).map(|i| b'a' + (i % 26) as u8).collect()
    } else {
        (0..size).map(|i| (i * 7 + 3) as u8).collect()
    };
    let mut out = Vec::with_capacity(count * (size + 14));
    for _ in 0..count {
        out.push(if text { 0x81 } else { 0x82 });
        let mask_bit = if receiver == Role::Server { 0x80 } else { 0 };
        if size < 126 {
            out.push(mask_bit | size as u8);
        } else if size <= 0xffff {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(size as u16).to_be_bytes());
        } else {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(size as u64).to_be_bytes());
        }
        let body = out.len() + if receiver == Role::Server { 4 } else { 0 };
        if receiver == Role::Server {
            out.extend_from_slice(&MASK);
        }
        out.extend_from_slice(&payload);
        if receiver == Role::Server {
            apply_mask(&mut out[body..], MASK, 0);
        }
    }
    out
}

fn count_for(size: usize) -> usize {
    (STREAM_BYTES / size).max(1)
}

#[derive(Default)]
struct Count {
    msgs: u64,
    bytes: u64,
}

impl Handler for Count {
    fn on_message(&mut self, _: Rsv, _: OpCode, data: &[u8], _: u16) -> Flow {
        self.msgs += 1;
        self.bytes += data.len() as u64;
        black_box(data);
        Flow::Continue
    }
}

struct NoReplies;

impl ReplySink for NoReplies {
    fn reply(&mut self, reply: Reply<'_>) {
        panic!("unexpected reply {reply:?}");
    }
}

fn big_config() -> Config {
    Config::default()
        .max_recv_size(1 << 30)
        .max_queued_bytes(1 << 30)
}

fn tungstenite_config() -> tungstenite::protocol::WebSocketConfig {
    tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(1 << 30))
        .max_frame_size(Some(1 << 30))
}

fn tungstenite_role(role: Role) -> tungstenite::protocol::Role {
    match role {
        Role::Server => tungstenite::protocol::Role::Server,
        Role::Client => tungstenite::protocol::Role::Client,
    }
}

/// An in-memory stream for tungstenite: reads `data` from `pos`, then would
/// block; writes are counted and dropped.
struct MemStream {
    data: Vec<u8>,
    pos: usize,
    written: u64,
}

/// A tungstenite WebSocket of `role` reading `data` from memory (writes are counted).
fn tungstenite_over(data: Vec<u8>, role: Role) -> tungstenite::WebSocket<MemStream> {
    let stream = MemStream {
        data,
        pos: 0,
        written: 0,
    };
    tungstenite::WebSocket::from_raw_socket(
        stream,
        tungstenite_role(role),
        Some(tungstenite_config()),
    )
}

impl Read for MemStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let rest = &self.data[self.pos..];
        if rest.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for MemStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written += buf.len() as u64;
        black_box(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Parse and deliver: `receiver` gets a stream of whole binary messages.
fn parse_cases(role: Role, size: usize) -> Vec<Case<'static>> {
    parse_cases_of(role, size, false)
}

/// Parse and deliver whole binary messages, or ASCII text ones (`text`: the
/// UTF-8 check included; wslay does none).
fn parse_cases_of(role: Role, size: usize, text: bool) -> Vec<Case<'static>> {
    let group = if text { "parse-text" } else { "parse" };
    let count = count_for(size);
    let data = stream_of(role, size, count, text);
    let (msgs, bytes) = (count as u64, (count * size) as u64);
    let mut cases = Vec::new();

    let ours = data.clone();
    let mut rx = Receiver::new(role, &big_config());
    cases.push(Case {
        group,
        role: role_name(role),
        size,
        imp: "nwe",
        msgs,
        bytes,
        run: Box::new(move || {
            let mut h = Count::default();
            let mut input = &ours[..];
            rx.recv(&mut input, &mut h, &mut NoReplies).expect("recv");
            assert_eq!((h.msgs, h.bytes), (msgs, bytes));
        }),
    });

    let theirs = data.clone();
    let ctx = unsafe { wslay::wslay_bench_new(i32::from(role == Role::Server)) };
    assert!(!ctx.is_null());
    let guard = WslayCtx(ctx);
    cases.push(Case {
        group,
        role: role_name(role),
        size,
        imp: "wslay",
        msgs,
        bytes,
        run: Box::new(move || {
            let mut got = 0u64;
            // SAFETY: the context lives in `guard`; the data outlives the call.
            let n = unsafe {
                wslay::wslay_bench_recv(guard.ptr(), theirs.as_ptr(), theirs.len(), &mut got)
            };
            assert_eq!((n, got), (msgs, bytes));
        }),
    });

    let mut ws = tungstenite_over(data, role);
    cases.push(Case {
        group,
        role: role_name(role),
        size,
        imp: "tungstenite",
        msgs,
        bytes,
        run: Box::new(move || {
            ws.get_mut().pos = 0;
            let (mut n, mut got) = (0u64, 0u64);
            loop {
                match ws.read() {
                    Ok(msg) => {
                        n += 1;
                        got += msg.len() as u64;
                        black_box(&msg);
                    }
                    Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                        break
                    }
                    Err(e) => panic!("tungstenite: {e}"),
                }
            }
            assert_eq!((n, got), (msgs, bytes));
        }),
    });
    cases
}

/// Owns a wslay context. Closures call `ptr()` so that they capture the whole
/// guard (capturing the field alone would free the context too early).
struct WslayCtx(*mut std::os::raw::c_void);

impl WslayCtx {
    fn ptr(&self) -> *mut std::os::raw::c_void {
        self.0
    }
}

impl Drop for WslayCtx {
    fn drop(&mut self) {
        // SAFETY: created by wslay_bench_new, freed once.
        unsafe { wslay::wslay_bench_free(self.0) }
    }
}

/// A writer that counts bytes and drops them.
struct Sink(u64);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        black_box(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Serialise: `role` queues and writes binary messages (a client masks them).
fn serialise_cases(role: Role, size: usize) -> Vec<Case<'static>> {
    let count = count_for(size);
    let payload: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
    let (msgs, bytes) = (count as u64, (count * size) as u64);
    let mut cases = Vec::new();

    let ours = payload.clone();
    let mut tx = Sender::new(role, &big_config());
    cases.push(Case {
        group: "serialise",
        role: role_name(role),
        size,
        imp: "nwe",
        msgs,
        bytes,
        run: Box::new(move || {
            for _ in 0..count {
                tx.queue_msg(OpCode::Binary, &ours).expect("queue");
            }
            let mut sink = Sink(0);
            tx.send(&mut sink).expect("send");
            assert!(sink.0 >= bytes);
        }),
    });

    let theirs = payload.clone();
    let ctx = unsafe { wslay::wslay_bench_new(i32::from(role == Role::Server)) };
    assert!(!ctx.is_null());
    let guard = WslayCtx(ctx);
    cases.push(Case {
        group: "serialise",
        role: role_name(role),
        size,
        imp: "wslay",
        msgs,
        bytes,
        run: Box::new(move || {
            // SAFETY: the context lives in `guard`; the payload outlives the call.
            let n = unsafe {
                wslay::wslay_bench_send(guard.ptr(), theirs.as_ptr(), theirs.len(), count)
            };
            assert!(n >= bytes && n != u64::MAX);
        }),
    });

    let mut ws = tungstenite_over(Vec::new(), role);
    let shared = tungstenite::Bytes::from(payload);
    cases.push(Case {
        group: "serialise",
        role: role_name(role),
        size,
        imp: "tungstenite",
        msgs,
        bytes,
        run: Box::new(move || {
            ws.get_mut().written = 0;
            for _ in 0..count {
                ws.write(tungstenite::Message::Binary(shared.clone()))
                    .expect("write");
            }
            ws.flush().expect("flush");
            assert!(ws.get_ref().written >= bytes);
        }),
    });
    cases
}

/// Masking 1 MiB: our kernel alone, and wslay's frame API reading one masked
/// 1 MiB frame (its unmasking loop runs as it copies the payload out).
fn mask_cases() -> Vec<Case<'static>> {
    let size = 1 << 20;
    let mut buf: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
    let frame = stream(Role::Server, size, 1);
    vec![
        Case {
            group: "mask",
            role: "-",
            size,
            imp: "nwe",
            msgs: 1,
            bytes: size as u64,
            run: Box::new(move || {
                apply_mask(black_box(&mut buf), MASK, 0);
            }),
        },
        Case {
            group: "mask",
            role: "-",
            size,
            imp: "wslay",
            msgs: 1,
            bytes: size as u64,
            run: Box::new(move || {
                // SAFETY: the frame outlives the call.
                let n = unsafe { wslay::wslay_bench_unmask(frame.as_ptr(), frame.len()) };
                assert_eq!(n, size as u64);
            }),
        },
    ]
}

/// UTF-8 validation of 1 MiB (ASCII, then mixed scripts), ours against std's
/// `str::from_utf8` (what tungstenite uses). wslay does not validate UTF-8.
fn utf8_cases() -> Vec<Case<'static>> {
    let size = 1 << 20;
    let ascii: Vec<u8> = (0..size).map(|i| b' ' + (i % 90) as u8).collect();
    let sample = "WebSocket — Вебсокет ウェブソケット 🔌 ".as_bytes();
    let mixed: Vec<u8> = sample.iter().copied().cycle().take(size).collect();
    let valid_end = std::str::from_utf8(&mixed)
        .err()
        .map_or(size, |e| e.valid_up_to());
    let mixed = mixed[..valid_end].to_vec();
    let mut cases = Vec::new();
    for (role, data) in [("ascii", ascii), ("mixed", mixed)] {
        let len = data.len();
        let ours = data.clone();
        cases.push(Case {
            group: "utf8",
            role,
            size,
            imp: "nwe",
            msgs: 1,
            bytes: len as u64,
            run: Box::new(move || {
                let mut v = Utf8Validator::default();
                assert!(v.feed(black_box(&ours)) && v.is_complete());
            }),
        });
        cases.push(Case {
            group: "utf8",
            role,
            size,
            imp: "std(tungstenite)",
            msgs: 1,
            bytes: len as u64,
            run: Box::new(move || {
                assert!(std::str::from_utf8(black_box(&data)).is_ok());
            }),
        });
    }
    cases
}
