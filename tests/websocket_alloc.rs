//! Performance shape of the whole object: echoing small messages over a real
//! loopback socket on a real loop allocates nothing per message in steady state
//! (a count from a counting global allocator, not a time).
#![cfg(feature = "ev")]
mod counting_alloc;
mod util;

use counting_alloc::allocs;
use net_websocket_ev::ev::{Loop, RunFlags};
use net_websocket_ev::{Params, Server};
use util::{echo_round, masked_frame, tcp_pair};

/// Messages per round, sent in one write (pipelined, as the load generator does).
const IN_FLIGHT: usize = 16;

#[test]
fn echoing_small_messages_over_a_socket_allocates_nothing_per_message() {
    let lp = Loop::new().expect("loop");
    let (ours, mut peer) = tcp_pair();
    let ws = Server::new(Params::new(ours).event_loop(&lp).on_msg_recv(
        |ws, _rsv, op, msg, _status| {
            ws.queue_msg(msg, op).expect("echo");
        },
    ))
    .expect("Server::new");

    // 16 masked 32-byte text messages; each echo is a 34-byte unmasked frame.
    let batch: Vec<u8> = (0..IN_FLIGHT)
        .flat_map(|i| masked_frame(true, 1, &[b'a' + i as u8; 32]))
        .collect();
    let echo_len = IN_FLIGHT * 34;
    // An unmasked text frame comes back.
    let round = |lp: &Loop, peer: &mut std::net::TcpStream| {
        echo_round(lp, peer, &batch, echo_len, &[0x81, 32])
    };
    // Warm up: pools, queues and libev's arrays reach their steady sizes.
    for _ in 0..50 {
        round(&lp, &mut peer);
    }
    let before = allocs();
    let rounds = 200;
    for _ in 0..rounds {
        round(&lp, &mut peer);
    }
    let counted = allocs() - before;
    assert_eq!(
        counted,
        0,
        "{counted} allocations while echoing {} messages",
        rounds * IN_FLIGHT
    );
    // An open connection keeps its loop alive: end it (the peer goes away).
    drop(peer);
    let mut turns = 0;
    while !ws.is_closed() {
        lp.run_with(RunFlags::NoWait);
        turns += 1;
        assert!(turns < 1_000_000, "the connection did not end");
    }
}
