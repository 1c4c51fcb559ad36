//! `cargo bench --bench deflate` (from `bench/`): the deflate implementation for
//! permessage-deflate (RFC 7692), zlib-rs against miniz_oxide, per message.
//!
//! Each message is compressed as permessage-deflate does without context takeover:
//! a reset stream, raw deflate, one sync flush, the `00 00 ff ff` tail stripped; and
//! inflated as a receiver does: a reset stream, the message, then the tail appended
//! (a second call, no copy). Payloads: JSON-like text of 4 KiB and 64 KiB, and
//! 64 KiB of random bytes (the worst case: stored blocks).
//!
//! Prints a table (ns/message, MB/s of uncompressed bytes, compressed size and ratio)
//! and the heap bytes that one compressor and one inflater hold, counted through the
//! global allocator of this binary. `DEFLATE_MS` (default 300) is the time per case.

#[path = "../src/payload.rs"]
mod payload;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use miniz_oxide::deflate::core::{CompressionStrategy, CompressorOxide};
use miniz_oxide::inflate::stream::{InflateState, MinReset};
use miniz_oxide::{DataFormat, MZFlush, MZStatus};
use zlib_rs::{Deflate, DeflateConfig, DeflateFlush, Inflate, InflateFlush, Status};

use payload::{json_like, random_bytes};

/// The tail that a sync flush ends with and that RFC 7692 strips from each message.
const TAIL: [u8; 4] = [0, 0, 0xff, 0xff];

fn main() {
    let time = Duration::from_millis(
        std::env::var("DEFLATE_MS")
            .ok()
            .and_then(|ms| ms.parse().ok())
            .unwrap_or(300),
    );
    let payloads = [
        ("json", json_like(4096)),
        ("json", json_like(65536)),
        ("binary", random_bytes(65536)),
    ];

    println!(
        "{:<7} {:>6} {:<13} {:<8} {:>10} {:>9} {:>8} {:>7}",
        "payload", "size", "impl", "op", "ns/msg", "MB/s", "out B", "ratio"
    );
    for (kind, payload) in &payloads {
        let mut reference = Vec::new();
        for level in [1, 2, 6] {
            for imp in [Impl::ZlibRs, Impl::Miniz] {
                let mut compressor = imp.compressor(level, 15);
                let out = compressor.compress_to_vec(payload);
                assert_eq!(
                    inflate_once(&out, payload.len()),
                    *payload,
                    "{imp:?} level {level}"
                );
                let mut buf = vec![0; bound(payload.len())];
                let ns = time_per_call(time, || {
                    black_box(compressor.compress(black_box(payload), &mut buf));
                });
                row(
                    kind,
                    payload.len(),
                    imp,
                    &format!("deflate{level}"),
                    ns,
                    out.len(),
                );
                if imp == Impl::ZlibRs && level == 6 {
                    reference = out;
                }
            }
        }
        // Both inflate the same stream (zlib-rs, level 6), into a buffer of the
        // payload's size as a receiver with a size limit would.
        for imp in [Impl::ZlibRs, Impl::Miniz] {
            let mut inflater = imp.inflater(15);
            let mut out = vec![0; payload.len()];
            assert_eq!(inflater.inflate(&reference, &mut out), payload.len());
            assert_eq!(out, *payload, "{imp:?} inflate");
            let ns = time_per_call(time, || {
                black_box(inflater.inflate(black_box(&reference), &mut out));
            });
            row(kind, payload.len(), imp, "inflate", ns, reference.len());
        }
    }

    println!();
    small_windows(&payloads[0].1);
    println!();
    memory();
}

/// The two implementations under test.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Impl {
    ZlibRs,
    Miniz,
}

impl Impl {
    fn name(self) -> &'static str {
        match self {
            Impl::ZlibRs => "zlib-rs",
            Impl::Miniz => "miniz_oxide",
        }
    }

    fn compressor(self, level: u8, window_bits: u8) -> Compressor {
        match self {
            Impl::ZlibRs => {
                Compressor::ZlibRs(Box::new(Deflate::new(i32::from(level), false, window_bits)))
            }
            Impl::Miniz => Compressor::Miniz(Box::new(CompressorOxide::with_params(
                DataFormat::Raw,
                level,
                CompressionStrategy::Default,
                window_bits,
            ))),
        }
    }

    fn inflater(self, window_bits: u8) -> Inflater {
        match self {
            Impl::ZlibRs => Inflater::ZlibRs(Box::new(Inflate::new(false, window_bits))),
            Impl::Miniz => Inflater::Miniz(InflateState::new_boxed(DataFormat::Raw)),
        }
    }
}

/// One permessage-deflate compressor, reset before every message.
enum Compressor {
    ZlibRs(Box<Deflate>),
    Miniz(Box<CompressorOxide>),
}

impl Compressor {
    /// One message into `out` (at least `bound` bytes): a fresh stream, sync flush;
    /// returns its length without the tail.
    fn compress(&mut self, input: &[u8], out: &mut [u8]) -> usize {
        let len = match self {
            Compressor::ZlibRs(deflate) => {
                deflate.reset();
                let status = deflate.compress(input, out, DeflateFlush::SyncFlush);
                assert_eq!(status, Ok(Status::Ok));
                assert_eq!(deflate.total_in(), input.len() as u64);
                deflate.total_out() as usize
            }
            Compressor::Miniz(deflate) => {
                deflate.reset();
                let result =
                    miniz_oxide::deflate::stream::deflate(deflate, input, out, MZFlush::Sync);
                assert_eq!(result.status, Ok(MZStatus::Ok));
                assert_eq!(result.bytes_consumed, input.len());
                result.bytes_written
            }
        };
        assert_eq!(
            out[len - 4..len],
            TAIL,
            "{} of {} bytes, {}",
            len,
            out.len(),
            input.len()
        );
        len - 4
    }

    fn compress_to_vec(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = vec![0; bound(input.len())];
        let len = self.compress(input, &mut out);
        out.truncate(len);
        out
    }
}

/// Room for one compressed message. Not just stored blocks' 5 bytes per 16 KiB:
/// zlib-rs's level 1 (zlib-ng's deflate_quick) uses fixed Huffman codes only and
/// never falls back to stored blocks, up to 9 bits per incompressible byte.
fn bound(len: usize) -> usize {
    len + len / 8 + 256
}

/// One permessage-deflate inflater, reset before every message.
enum Inflater {
    ZlibRs(Box<Inflate>),
    Miniz(Box<InflateState>),
}

impl Inflater {
    /// One message (tail stripped) into `out`; returns the bytes written.
    fn inflate(&mut self, message: &[u8], out: &mut [u8]) -> usize {
        match self {
            Inflater::ZlibRs(inflate) => {
                inflate.reset(false);
                for part in [message, &TAIL] {
                    let done = inflate.total_out() as usize;
                    let status =
                        inflate.decompress(part, &mut out[done..], InflateFlush::SyncFlush);
                    assert!(
                        matches!(status, Ok(Status::Ok | Status::BufError)),
                        "{status:?}"
                    );
                }
                inflate.total_out() as usize
            }
            Inflater::Miniz(state) => {
                // No zeroing of the 32 KiB window: the cheapest reset it has.
                state.reset_as(MinReset);
                let mut done = 0;
                for part in [message, &TAIL] {
                    let result = miniz_oxide::inflate::stream::inflate(
                        state,
                        part,
                        &mut out[done..],
                        MZFlush::Sync,
                    );
                    assert!(result.status.is_ok(), "{:?}", result.status);
                    done += result.bytes_written;
                }
                done
            }
        }
    }
}

/// Inflates one message with a fresh zlib-rs stream: the check of every output.
fn inflate_once(message: &[u8], len: usize) -> Vec<u8> {
    let mut out = vec![0; len];
    let written = Impl::ZlibRs.inflater(15).inflate(message, &mut out);
    out.truncate(written);
    out
}

/// Runs `f` for about `time` (after a tenth of it as warm-up); mean ns per call.
fn time_per_call(time: Duration, mut f: impl FnMut()) -> f64 {
    let warm = Instant::now();
    while warm.elapsed() < time / 10 {
        f();
    }
    let start = Instant::now();
    let mut calls = 0u64;
    loop {
        for _ in 0..8 {
            f();
        }
        calls += 8;
        let elapsed = start.elapsed();
        if elapsed >= time {
            return elapsed.as_nanos() as f64 / calls as f64;
        }
    }
}

fn row(kind: &str, size: usize, imp: Impl, op: &str, ns: f64, compressed: usize) {
    println!(
        "{:<7} {:>6} {:<13} {:<8} {:>10.0} {:>9.1} {:>8} {:>6.2}x",
        kind,
        size,
        imp.name(),
        op,
        ns,
        size as f64 / ns * 1e3,
        compressed,
        size as f64 / compressed as f64,
    );
}

/// Compression at the window sizes a client may ask for (`server_max_window_bits`):
/// zlib-rs has a real smaller window; miniz_oxide has only its 32 KiB one and
/// emulates a smaller limit by lowering the level (fast matching, meant to stay
/// within 4 KiB, below 15; run-length matching below 12, a flag that its level-1
/// path ignores: see DEFLATE.md). Neither inflater enforces a window, so whether a
/// stream keeps to it is not checked here.
fn small_windows(payload: &[u8]) {
    println!("4 KiB JSON, level 6, by window bits: compressed bytes (ratio)");
    println!("{:<13} {:>14} {:>14} {:>14}", "impl", "15", "12", "10");
    for imp in [Impl::ZlibRs, Impl::Miniz] {
        let cells: Vec<String> = [15, 12, 10]
            .iter()
            .map(|&bits| {
                let out = imp.compressor(6, bits).compress_to_vec(payload);
                assert_eq!(inflate_once(&out, payload.len()), payload);
                format!(
                    "{} ({:.2}x)",
                    out.len(),
                    payload.len() as f64 / out.len() as f64
                )
            })
            .collect();
        println!(
            "{:<13} {:>14} {:>14} {:>14}",
            imp.name(),
            cells[0],
            cells[1],
            cells[2]
        );
    }
}

/// Heap bytes held by one compressor and one inflater, after creation and at the
/// peak of one 64 KiB JSON message (a stream may allocate lazily); the input and
/// output buffers are not counted.
fn memory() {
    let payload = json_like(65536);
    let mut out = vec![0; bound(payload.len())];
    println!("memory of one stream, bytes: held after new, peak over new + one 64 KiB message");
    for (window_bits, mem_level) in [(15, 8), (15, 5), (10, 8), (10, 1)] {
        let config = DeflateConfig {
            window_bits: -window_bits,
            mem_level,
            ..DeflateConfig::new(6)
        };
        measure(
            &format!("zlib-rs deflate level 6, window {window_bits}, mem_level {mem_level}"),
            || Compressor::ZlibRs(Box::new(Deflate::new_with_config(config))),
            |deflate| {
                deflate.compress(&payload, &mut out);
            },
        );
    }
    measure(
        "miniz_oxide deflate level 6 (window 15 only)",
        || Impl::Miniz.compressor(6, 15),
        |deflate| {
            deflate.compress(&payload, &mut out);
        },
    );
    for window_bits in [15, 9] {
        let message = Impl::ZlibRs
            .compressor(6, window_bits)
            .compress_to_vec(&payload);
        measure(
            &format!("zlib-rs inflate, window {window_bits}"),
            || Impl::ZlibRs.inflater(window_bits),
            |inflater| assert_eq!(inflater.inflate(&message, &mut out), payload.len()),
        );
    }
    let message = Impl::ZlibRs.compressor(6, 15).compress_to_vec(&payload);
    measure(
        "miniz_oxide inflate (window 15 only)",
        || Impl::Miniz.inflater(15),
        |inflater| assert_eq!(inflater.inflate(&message, &mut out), payload.len()),
    );
}

fn measure<T>(what: &str, build: impl FnOnce() -> T, run: impl FnOnce(&mut T)) {
    let before = ALLOCATED.load(Relaxed);
    PEAK.store(before, Relaxed);
    let mut stream = build();
    let held = ALLOCATED.load(Relaxed) - before;
    run(&mut stream);
    let peak = PEAK.load(Relaxed) - before;
    drop(stream);
    println!("{what:<52} {held:>8} {peak:>8}");
}

/// Bytes currently allocated and the peak since last reset, for `memory`.
static ALLOCATED: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

struct Counting;

// SAFETY: every call is forwarded unchanged to the system allocator; the counters
// only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = ALLOCATED.fetch_add(layout.size(), Relaxed) + layout.size();
        PEAK.fetch_max(now, Relaxed);
        // SAFETY: the caller's layout, as GlobalAlloc::alloc requires.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let now = ALLOCATED.fetch_add(layout.size(), Relaxed) + layout.size();
        PEAK.fetch_max(now, Relaxed);
        // SAFETY: as alloc.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ALLOCATED.fetch_sub(layout.size(), Relaxed);
        // SAFETY: ptr came from this allocator (System) with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size >= layout.size() {
            let now =
                ALLOCATED.fetch_add(new_size - layout.size(), Relaxed) + new_size - layout.size();
            PEAK.fetch_max(now, Relaxed);
        } else {
            ALLOCATED.fetch_sub(layout.size() - new_size, Relaxed);
        }
        // SAFETY: as GlobalAlloc::realloc requires, forwarded.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;
