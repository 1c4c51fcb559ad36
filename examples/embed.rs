//! A host program that owns its libev loop, the way a C program does, and lets a
//! WebSocket echo server join it.
//!
//! The "host" part below uses only the raw FFI (`libev_sys`), as C code would: it
//! creates the loop, runs its own stats timer and SIGINT watcher, and calls `ev_run`.
//! The WebSocket part adopts the raw loop pointer with `Loop::from_raw` and adds its
//! listener and connections; both keep working side by side.
//!
//! ```text
//! cargo run --example embed -- [--port 8080] [--seconds N]
//! ```
//! `--seconds N` makes the host stop its loop after N seconds (for tests); otherwise
//! Ctrl-C stops it.

#[path = "shared/report.rs"]
mod report;

use std::cell::Cell;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::raw::c_int;
use std::process::ExitCode;
use std::rc::Rc;

use libev_sys as sys;
use net_websocket_ev::ev::{self, Events, Io, Loop};
use net_websocket_ev::websocket::upgrade;
use net_websocket_ev::{OpCode, Params, Server};

/// Counters the host prints; the WebSocket side updates them.
static MESSAGES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static CONNECTIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

// ---- the host: plain libev through the FFI, as a C program would write it ----

struct Host {
    stats: sys::ev_timer,
    stop_after: sys::ev_timer,
    sigint: sys::ev_signal,
    ticks: u64,
}

unsafe extern "C" fn on_stats(_lp: *mut sys::ev_loop, w: *mut sys::ev_timer, _revents: c_int) {
    // SAFETY: `data` points to the Host, which outlives the loop run.
    let host = unsafe { &mut *((*w).data as *mut Host) };
    host.ticks += 1;
    println!(
        "host: tick {} connections={} messages={}",
        host.ticks,
        CONNECTIONS.load(std::sync::atomic::Ordering::Relaxed),
        MESSAGES.load(std::sync::atomic::Ordering::Relaxed)
    );
}

unsafe extern "C" fn on_stop(lp: *mut sys::ev_loop, _w: *mut sys::ev_timer, _revents: c_int) {
    println!("host: time is up, stopping the loop");
    // SAFETY: `lp` is the running loop.
    unsafe { sys::ev_break(lp, sys::EVBREAK_ALL) };
}

unsafe extern "C" fn on_sigint(lp: *mut sys::ev_loop, _w: *mut sys::ev_signal, _revents: c_int) {
    println!("host: SIGINT, stopping the loop");
    // SAFETY: `lp` is the running loop.
    unsafe { sys::ev_break(lp, sys::EVBREAK_ALL) };
}

fn main() -> ExitCode {
    let mut port = 8080u16;
    let mut seconds: Option<f64> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--port", Some(v)) => port = v.parse().unwrap_or(port),
            ("--seconds", Some(v)) => seconds = v.parse().ok(),
            _ => {
                eprintln!("usage: embed [--port N] [--seconds N]");
                return ExitCode::from(2);
            }
        }
    }

    // The host creates and owns the loop.
    // SAFETY: plain libev call; checked for null below.
    let raw = unsafe { sys::ev_default_loop(0) };
    if raw.is_null() {
        eprintln!("embed: libev could not create a loop");
        return ExitCode::FAILURE;
    }
    // SAFETY: zeroed libev watchers are valid before init.
    let mut host: Box<Host> = Box::new(unsafe { std::mem::zeroed() });
    let host_ptr: *mut Host = &mut *host;
    // SAFETY: the watchers live in `host`, which outlives every ev_run below; each is
    // initialised before it is started.
    unsafe {
        sys::ev_timer_init(&mut host.stats, on_stats, 1.0, 1.0);
        host.stats.data = host_ptr.cast();
        sys::ev_timer_start(raw, &mut host.stats);
        sys::ev_signal_init(&mut host.sigint, on_sigint, libc::SIGINT);
        sys::ev_signal_start(raw, &mut host.sigint);
        if let Some(seconds) = seconds {
            sys::ev_timer_init(&mut host.stop_after, on_stop, seconds, 0.0);
            sys::ev_timer_start(raw, &mut host.stop_after);
        }
    }

    // ---- the WebSocket server joins the host's loop ----
    // SAFETY: `raw` stays valid for the whole program and is used on this thread only.
    let lp = match unsafe { Loop::from_raw(raw) } {
        Ok(lp) => lp,
        Err(err) => {
            eprintln!("embed: {err}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match TcpListener::bind(("127.0.0.1", port)) {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("embed: cannot listen on 127.0.0.1:{port}: {err}");
            return ExitCode::FAILURE;
        }
    };
    listener
        .set_nonblocking(true)
        .expect("set_nonblocking on a listener");
    println!("listening on {}", listener.local_addr().expect("bound"));
    let listener = Rc::new(listener);
    let accepting = listener.clone();
    let accept_lp = lp.clone();
    let open = Rc::new(Cell::new(0u64));
    let acceptor = Io::new(&lp, listener.as_raw_fd(), Events::READ, move |_| {
        while let Ok((stream, _)) = accepting.accept() {
            let open = open.clone();
            let lp = accept_lp.clone();
            upgrade::accept(&accept_lp, stream, Default::default(), move |result| {
                let Ok(upgraded) = result else { return };
                open.set(open.get() + 1);
                CONNECTIONS.store(open.get(), std::sync::atomic::Ordering::Relaxed);
                let closed = open.clone();
                let params: Params = upgraded
                    .into_params()
                    .event_loop(&lp)
                    .on_msg_recv(|ws, _rsv, opcode, msg, _| {
                        MESSAGES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if matches!(opcode, OpCode::Text | OpCode::Binary) {
                            ws.queue_msg(msg, opcode).ok();
                        }
                    })
                    .on_close(move |_, _| {
                        closed.set(closed.get() - 1);
                        CONNECTIONS.store(closed.get(), std::sync::atomic::Ordering::Relaxed);
                    });
                if let Err(err) = Server::new(params) {
                    eprintln!("embed: {}", report::Report(&err));
                }
            });
        }
    });
    let acceptor = match acceptor {
        Ok(acceptor) => acceptor,
        Err(err) => {
            eprintln!("embed: {err}");
            return ExitCode::FAILURE;
        }
    };
    acceptor.start();

    // The host runs its loop, as C code would.
    // SAFETY: valid loop; Rust callbacks never unwind into it.
    unsafe { sys::ev_run(raw, 0) };
    if let Some(payload) = ev::take_panic() {
        std::panic::resume_unwind(payload);
    }
    drop(acceptor);
    // SAFETY: stopping the host's own watchers before `host` goes away.
    unsafe {
        sys::ev_timer_stop(raw, &mut host.stats);
        sys::ev_timer_stop(raw, &mut host.stop_after);
        sys::ev_signal_stop(raw, &mut host.sigint);
    }
    println!("host: loop finished after {} ticks", host.ticks);
    ExitCode::SUCCESS
}
