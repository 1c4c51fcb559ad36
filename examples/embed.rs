//! A host that owns its libev loop, as a C program does (raw `ev::sys` calls: it creates
//! the loop, runs its own timers and calls `ev_run`), and a WebSocket echo server that
//! joins that loop through `Loop::from_raw`.
//!
//! `cargo run --example embed -- [--port 8080] [--seconds N]` (the host stops after N s).

use std::net::TcpListener;
use std::os::{fd::AsRawFd, raw::c_int};

use net_websocket_ev::ev::{self, sys, Events, Io, Loop};
use net_websocket_ev::{websocket::upgrade, Server};

// ---- the host's callbacks, as C code would write them ----
unsafe extern "C" fn on_stats(lp: *mut sys::ev_loop, _: *mut sys::ev_timer, _: c_int) {
    // SAFETY: `lp` is the loop calling us.
    println!("host: loop iteration {}", unsafe { sys::ev_iteration(lp) });
}

unsafe extern "C" fn on_stop(lp: *mut sys::ev_loop, _: *mut sys::ev_timer, _: c_int) {
    // SAFETY: `lp` is the loop calling us.
    unsafe { sys::ev_break(lp, sys::EVBREAK_ALL) };
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().skip_while(|a| *a != name).nth(1);
    let port: u16 = arg("--port").map_or(Ok(8080), |v| v.parse())?;
    let seconds: f64 = arg("--seconds").map_or(Ok(0.0), |v| v.parse())?;

    // ---- the host creates its loop ----
    // SAFETY: a plain libev call; a null loop is refused by `from_raw` below.
    let raw = unsafe { sys::ev_default_loop(0) };

    // ---- the WebSocket server joins it ----
    // SAFETY: `raw` stays valid for the whole program and is used on this thread only.
    let lp = unsafe { Loop::from_raw(raw) }?;
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    listener.set_nonblocking(true)?;
    println!("listening on {}", listener.local_addr()?);
    let handshakes = lp.clone();
    let acceptor = Io::new(&lp, listener.as_raw_fd(), Events::READ, move |_| {
        while let Ok((stream, _peer)) = listener.accept() {
            upgrade::accept(&handshakes, stream, Default::default(), |result| {
                let Ok(upgraded) = result else { return };
                let echo = upgraded
                    .into_params()
                    .on_msg_recv(|ws, _rsv, opcode, msg, _| {
                        if !opcode.is_control() {
                            ws.queue_msg(msg, opcode).ok();
                        }
                    });
                Server::new(echo).ok(); // it lives on the loop while open
            });
        }
    })?;
    acceptor.start();

    // ---- the host adds its own timers and runs its loop, as C code would ----
    // SAFETY: libev calls on a valid loop of this thread; zeroed watchers are valid
    // before their init and stay in place (here) until stopped.
    let (mut stats, mut stop) = unsafe { std::mem::zeroed() };
    unsafe {
        sys::ev_timer_init(&mut stats, on_stats, 1.0, 1.0);
        sys::ev_timer_init(&mut stop, on_stop, seconds, 0.0);
        sys::ev_timer_start(raw, &mut stats);
        if seconds > 0.0 {
            sys::ev_timer_start(raw, &mut stop);
        }
        sys::ev_run(raw, 0);
        sys::ev_timer_stop(raw, &mut stats);
        sys::ev_timer_stop(raw, &mut stop);
    }
    // A panic in a Rust callback broke the loop and waits here.
    if let Some(panic) = ev::take_panic() {
        std::panic::resume_unwind(panic);
    }
    Ok(())
}
