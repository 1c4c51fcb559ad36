//! Idle memory per connection, in process: opens 2,000 server connections over
//! socketpairs on one loop. Asserts the heap bytes each idle connection holds (a
//! count from a counting global allocator: steady, unlike RSS) and reports the
//! resident-set growth per connection (`cargo test --release --test
//! websocket_idle_mem -- --nocapture`). The process-wide figure the 1 KiB
//! target is about comes from `examples/echo_server` under the load generator's
//! idle mode (see `BENCHMARKS.md`): it adds malloc's overhead and libev's per-fd
//! entry to what is counted here.
#![cfg(feature = "ev")]
mod counting_alloc;

use std::os::unix::net::UnixStream;

use counting_alloc::live_bytes;
use net_websocket_ev::ev::{Loop, RunFlags};
use net_websocket_ev::{Params, Server, WebSocket};

/// The most heap bytes an idle server connection may hold: the connection (~300
/// bytes), its io watcher (~110 with its callback), its transport, and its entry in
/// the thread's table of open connections (for `websocket::abort_all`); nothing
/// else. The target for the whole process is 1 KiB per idle connection. With the
/// `tls` feature a plain connection is 16 bytes bigger: its close cause can hold a
/// (boxed) rustls error.
const MAX_HEAP_PER_IDLE_CONN: isize = if cfg!(feature = "tls") { 528 } else { 512 };

const CONNS: usize = 2_000;

fn vm_rss_kib() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn idle_connections_hold_one_small_allocation_each() {
    let lp = Loop::new().unwrap();
    // Warm up: the loop's arrays and the allocator's first arenas.
    let (warm, _warm_peer) = UnixStream::pair().unwrap();
    let warm = Server::new(Params::new(warm).event_loop(&lp)).unwrap();
    lp.run_with(RunFlags::NoWait);

    let mut conns: Vec<(WebSocket, UnixStream)> = Vec::with_capacity(CONNS);
    let before = vm_rss_kib();
    let heap_before = live_bytes();
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
    let heap = live_bytes() - heap_before;
    let after = vm_rss_kib();
    let opened = conns.len();
    assert!(opened > 0);
    let per_conn = heap / opened as isize;
    println!("idle heap: {per_conn} B per connection ({opened} connections)");
    assert!(
        per_conn <= MAX_HEAP_PER_IDLE_CONN,
        "an idle connection holds {per_conn} heap bytes (at most {MAX_HEAP_PER_IDLE_CONN})"
    );
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
