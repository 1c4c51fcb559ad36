//! Memory after a large message, in process (a count from a counting global
//! allocator, in a binary of its own so that no other test allocates meanwhile).
#![cfg(feature = "ev")]
mod counting_alloc;
mod util;

use std::io::{ErrorKind, Write};

use counting_alloc::live_bytes;
use net_websocket_ev::ev::{Loop, RunFlags};
use net_websocket_ev::{Params, Server};
use util::{masked_frame, tcp_pair};

/// After one large message the connection gives its large buffers back: an idle
/// connection holds what an idle one needs, whatever it received before.
#[test]
fn a_large_message_leaves_no_large_buffer_with_the_idle_connection() {
    const SIZE: usize = 8 << 20;
    const PIECE: usize = 64 * 1024;
    let lp = Loop::new().expect("loop");
    let (ours, mut peer) = tcp_pair();
    let got = std::rc::Rc::new(std::cell::Cell::new(0));
    let g = got.clone();
    let ws = Server::new(
        Params::new(ours)
            .event_loop(&lp)
            .on_msg_recv(move |_, _, _, msg, _| g.set(msg.len())),
    )
    .expect("Server::new");
    let before = live_bytes();
    // 8 MiB in 128 fragments, written as the socket takes them.
    let mut wire = Vec::with_capacity(SIZE + 2048);
    for i in 0..SIZE / PIECE {
        let (fin, op) = (i + 1 == SIZE / PIECE, if i == 0 { 2 } else { 0 });
        wire.extend(masked_frame(fin, op, &vec![i as u8; PIECE]));
    }
    let mut off = 0;
    let mut turns = 0;
    while got.get() == 0 {
        if off < wire.len() {
            match peer.write(&wire[off..]) {
                Ok(n) => off += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("peer write: {e}"),
            }
        }
        lp.run_with(RunFlags::NoWait);
        turns += 1;
        assert!(turns < 10_000_000, "the message did not arrive");
    }
    assert_eq!(got.get(), SIZE);
    drop(wire);
    let held = live_bytes() - before;
    assert!(
        held < 1 << 20,
        "{held} bytes still held after an {SIZE}-byte message"
    );
    net_websocket_ev::websocket::abort_all(ws.event_loop());
}
