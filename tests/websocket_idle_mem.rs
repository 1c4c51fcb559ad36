//! Idle memory per connection, in process: opens up to 2,000 server connections
//! over socketpairs on one loop and reports the resident-set growth per
//! connection (`cargo test --release --test websocket_idle_mem -- --nocapture`).
//! A report, not a tight assertion: RSS depends on the allocator and the machine.
//! The real figure comes from `examples/echo_server` under the load generator's
//! idle mode (see `BENCHMARKS.md`).
use std::os::unix::net::UnixStream;

use net_websocket_ev::ev::{Loop, RunFlags};
use net_websocket_ev::{Params, Server, WebSocket};

const CONNS: usize = 2_000;

fn vm_rss_kib() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn idle_connections_report_their_memory() {
    let lp = Loop::new().unwrap();
    // Warm up: the loop's arrays and the allocator's first arenas.
    let (warm, _warm_peer) = UnixStream::pair().unwrap();
    let warm = Server::new(Params::new(warm).event_loop(&lp)).unwrap();
    lp.run_with(RunFlags::NoWait);

    let before = vm_rss_kib();
    let mut conns: Vec<(WebSocket, UnixStream)> = Vec::with_capacity(CONNS);
    for _ in 0..CONNS {
        let Ok((ours, peer)) = UnixStream::pair() else {
            break; // out of fds: report what we have
        };
        let ws = Server::new(
            Params::new(ours)
                .event_loop(&lp)
                .on_msg_recv(|_, _, _, _, _| {}),
        )
        .unwrap();
        conns.push((ws, peer));
    }
    lp.run_with(RunFlags::NoWait);
    let after = vm_rss_kib();
    let opened = conns.len();
    assert!(opened > 0);
    // The handles and peers kept here (Vec of 16-byte pairs) are counted too.
    if let (Some(before), Some(after)) = (before, after) {
        println!(
            "idle memory: {} B per connection ({} connections, VmRSS {} -> {} KiB)",
            after.saturating_sub(before) * 1024 / opened,
            opened,
            before,
            after
        );
    }
    for (ws, _peer) in &conns {
        assert!(!ws.is_closed());
        ws.abort().unwrap();
    }
    warm.abort().unwrap();
    lp.run_with(RunFlags::NoWait);
    assert!(conns.iter().all(|(ws, _)| ws.is_closed()));
}
