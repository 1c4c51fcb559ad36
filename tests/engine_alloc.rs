//! Performance shape: in steady state, receiving and echoing small messages
//! allocates nothing per message, an idle engine is small, and large messages
//! leave no large buffer behind (in the engine, or beyond a bound in the
//! thread's pool).
mod counting_alloc;
mod engine_util;
use engine_util as util;

use counting_alloc::{allocs, live_bytes};
use net_websocket_ev::proto::{
    Config, Engine, Flow, Handler, OpCode, Receiver, Role, Rsv, SendStatus, Sender,
};
use util::*;

/// Echoes every message into a pending list, queued after the read.
#[derive(Default)]
struct Echo {
    got: Vec<(OpCode, usize)>,
}

impl Handler for Echo {
    fn on_message(&mut self, _: Rsv, opcode: OpCode, data: &[u8], _: u16) -> Flow {
        self.got.push((opcode, data.len()));
        Flow::Continue
    }
}

fn echo_round(server: &mut Engine, client: &mut Engine, wire: &mut Vec<u8>, h: &mut Echo) {
    wire.clear();
    while client.send(wire).unwrap() != SendStatus::Idle {}
    server.feed(wire, h);
    for (op, len) in h.got.drain(..) {
        if !op.is_control() {
            server.queue_msg(op, &[b'e'; 64][..len]).unwrap();
        }
    }
    wire.clear();
    while server.send(wire).unwrap() != SendStatus::Idle {}
    client.feed(wire, h);
    assert_eq!(h.got.len(), 41, "echoes and the pong");
    h.got.clear();
}

#[test]
fn echoing_small_messages_allocates_nothing_per_message() {
    let mut server = Engine::new(Role::Server, Config::default());
    let mut client = Engine::new(Role::Client, Config::default());
    let mut wire = Vec::with_capacity(1 << 16);
    let mut h = Echo {
        got: Vec::with_capacity(64),
    };
    let queue = |client: &mut Engine| {
        for i in 0..20 {
            client.queue_msg(OpCode::Text, &[b'a'; 64][..i]).unwrap();
            client
                .queue_msg(OpCode::Binary, &[7; 64][..i * 3 % 64])
                .unwrap();
        }
        client.queue_msg(OpCode::Ping, b"ping").unwrap();
    };
    // Warm up: pools, queues and buffers reach their steady sizes.
    for _ in 0..3 {
        queue(&mut client);
        echo_round(&mut server, &mut client, &mut wire, &mut h);
    }
    let before = allocs();
    for _ in 0..100 {
        queue(&mut client);
        echo_round(&mut server, &mut client, &mut wire, &mut h);
    }
    assert_eq!(allocs() - before, 0, "allocations in 4100 echoed messages");
}

#[test]
fn idle_engine_is_small_and_holds_no_buffer() {
    let size = std::mem::size_of::<Receiver>() + std::mem::size_of::<Sender>();
    assert!(size <= 640, "Receiver + Sender = {size} bytes");
    let before = allocs();
    let mut e = Engine::new(Role::Server, Config::default());
    assert_eq!(allocs(), before, "a new engine allocates nothing");
    // After traffic, every buffer went back to the pool.
    e.feed(
        &frame_to(Role::Server, true, 1, &[b'x'; 1000]),
        &mut Echo::default(),
    );
    e.queue_msg(OpCode::Binary, &[0; 1000]).unwrap();
    e.send(&mut Vec::new()).unwrap();
    assert_eq!(e.queued_bytes(), 0);
    assert!(!e.receiver().has_pending_input());
}

#[test]
fn a_message_whole_in_one_read_is_a_slice_of_the_read_buffer() {
    struct Addrs(Vec<usize>);
    impl Handler for Addrs {
        fn on_message(&mut self, _: Rsv, _: OpCode, data: &[u8], _: u16) -> Flow {
            self.0.push(data.as_ptr() as usize);
            Flow::Continue
        }
    }
    let first = frame_to(Role::Server, true, 2, &[1; 1000]);
    let second = frame_to(Role::Server, true, 2, &[2; 1000]);
    let mut e = Engine::new(Role::Server, Config::default());
    let mut h = Addrs(Vec::new());
    e.feed(&[first.clone(), second].concat(), &mut h);
    // Copied into one assembly buffer, both would have the same address; read in
    // place, they are exactly one frame apart.
    assert_eq!(h.0[1] - h.0[0], first.len());
}

/// Hands out a slice in reads of at most `chunk` bytes, then would block;
/// allocates nothing.
struct Reads<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl std::io::Read for Reads<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.data.is_empty() {
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        let n = self.data.len().min(buf.len()).min(self.chunk);
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Counts data messages and their bytes; allocates nothing.
#[derive(Default)]
struct Sizes {
    messages: usize,
    bytes: usize,
}

impl Handler for Sizes {
    fn on_message(&mut self, _: Rsv, opcode: OpCode, data: &[u8], _: u16) -> Flow {
        if !opcode.is_control() {
            self.messages += 1;
            self.bytes += data.len();
        }
        Flow::Continue
    }
}

/// The most a thread's buffer pool keeps (`pool.rs`): 8 MiB of general
/// buffers, 16 read buffers of 64 KiB, and spare decoder and encoder states
/// (64 each, a few KiB at most each).
const POOL_BOUND: isize = (8 << 20) + (1 << 20) + (1 << 20);

/// An 8 MiB binary message from a client, in frames of many sizes, with pings
/// between the fragments.
fn large_fragmented_message() -> Vec<u8> {
    let total = 8 << 20;
    let sizes = [1, 4096, 70_000, 300_000, 1 << 20, 5, 125, 126];
    let mut wire = Vec::new();
    let mut sent = 0;
    for (i, size) in sizes.iter().cycle().enumerate() {
        let len = (*size).min(total - sent);
        let last = sent + len == total;
        let op = if i == 0 { 2 } else { 0 };
        wire.extend(frame_to(Role::Server, last, op, &vec![i as u8; len]));
        if i % 5 == 0 {
            wire.extend(frame_to(Role::Server, true, 9, b"ping"));
        }
        sent += len;
        if last {
            return wire;
        }
    }
    unreachable!()
}

#[test]
fn a_large_message_leaves_no_large_buffer_behind() {
    let wire = large_fragmented_message();
    // Fed in small pieces, read in small reads, and read in large reads (the
    // rest of a large frame then goes straight into the message buffer).
    for (feed, read) in [(Some(1000), 0), (None, 1500), (None, 300_000)] {
        let before = live_bytes();
        let mut e = Engine::new(Role::Server, Config::default());
        let mut h = Sizes::default();
        match feed {
            Some(n) => {
                for piece in wire.chunks(n) {
                    e.feed(piece, &mut h);
                }
            }
            None => {
                let mut r = Reads {
                    data: &wire,
                    chunk: read,
                };
                e.recv(&mut r, &mut h).unwrap();
            }
        }
        assert_eq!((h.messages, h.bytes), (1, 8 << 20));
        while e.send(&mut std::io::sink()).unwrap() != SendStatus::Idle {}
        // Whatever it received, an idle engine holds no heap memory...
        let held = live_bytes();
        drop(e);
        assert_eq!(live_bytes(), held, "the idle engine held a buffer");
        // ...and the 8 MiB assembly buffer was freed, not kept in the pool.
        let retained = held - before;
        assert!(
            retained < 1 << 20,
            "{retained} bytes kept ({feed:?}, {read})"
        );
    }
}

#[test]
fn the_thread_pool_keeps_a_bounded_total() {
    // Many connections, each in the middle of a 3 MiB message at once (buffers
    // the pool would keep), then each finishing it and its reply.
    let mut engines: Vec<Engine> = (0..12)
        .map(|_| Engine::new(Role::Server, Config::default()))
        .collect();
    let half = frame_to(Role::Server, false, 2, &vec![1; 3 << 19]);
    let rest = frame_to(Role::Server, true, 0, &vec![2; 3 << 19]);
    let reply = vec![3; 3 << 20];
    let before = live_bytes();
    let mut h = Sizes::default();
    for e in &mut engines {
        e.feed(&half, &mut h);
        e.queue_msg(OpCode::Binary, &reply).unwrap();
    }
    for e in &mut engines {
        e.feed(&rest, &mut h);
        while e.send(&mut std::io::sink()).unwrap() != SendStatus::Idle {}
    }
    assert_eq!(h.messages, engines.len());
    let held = live_bytes();
    engines.clear(); // the engines, not the Vec's own allocation
    assert_eq!(live_bytes(), held, "idle engines held buffers");
    let retained = held - before;
    assert!(retained <= POOL_BOUND, "the pool kept {retained} bytes");
}

#[test]
fn a_burst_of_queued_frames_leaves_no_large_queue_in_the_pool() {
    let before = live_bytes();
    let mut e = Engine::new(Role::Client, Config::default());
    for i in 0..100_000 {
        e.queue_msg(OpCode::Binary, b"").unwrap();
        if i % 10 == 0 {
            e.queue_msg(OpCode::Ping, b"p").unwrap();
        }
    }
    while e.send(&mut std::io::sink()).unwrap() != SendStatus::Idle {}
    let held = live_bytes();
    drop(e);
    assert_eq!(live_bytes(), held, "the idle engine held its queues");
    // What stays is the payload buffer (1 MiB), which the pool keeps for reuse,
    // and a spare encoder whose queues are trimmed to a few KiB each (untrimmed,
    // they kept 7 MiB of capacity).
    let retained = held - before;
    assert!(retained < 2 << 20, "{retained} bytes kept after the burst");
}
