//! Performance shape: in steady state, receiving and echoing small messages
//! allocates nothing per message, and an idle engine is small.
mod counting_alloc;
mod engine_util;
use engine_util as util;

use counting_alloc::allocs;
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
