//! The WebSocket object over a real socket pair, driven by a script taken from the
//! input: a fresh loop per input, a unix socket pair, a `Server` (or `Client`) on one
//! end with re-entrant callbacks (replies, close, stop/start reading, fragmented
//! producers that pause and are resumed, wait, `wait_blocking`, abort, `abort_all`),
//! and a raw peer on the other end that writes frames and garbage, reads, shuts down,
//! and calls the object's methods.
//!
//! Checked: no panic escapes; the loop is only run a bounded number of non-blocking
//! (or ticker-bounded) iterations; every byte the object writes parses as frames of
//! its role (the crate's own `Receiver` of the other role on the peer side), with
//! nothing after its close frame; illegal calls return errors; `on_close` runs once,
//! last, with `status_code_received()`, from the loop: never inside `abort()` (nor
//! inside a callback that calls `abort_all`), but inside `abort_all` called from
//! outside; after `abort()` every call returns `Error::Closed` at once; a paused
//! producer is not asked again before `resume_fragmented`, and `wait_blocking` says
//! `Stalled` exactly when one is at the head of the queue; a connection that received
//! a close, saw EOF or shut down reading ends; one still open after settling has an
//! empty queue (a resumed message completes); and once the loop has turned after
//! `abort()`, `on_close` has run, the peer reads EOF, and after dropping everything
//! this process holds exactly the fds it held before.
//!
//! Input layout: `[knobs] [timers] [n] [n callback-script bytes] [script...]`.
#![no_main]

mod input;

use std::cell::{Cell, RefCell};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use input::Input;
use libfuzzer_sys::fuzz_target;
use net_websocket_ev::ev::{Idle, Loop, RunFlags, Timer};
use net_websocket_ev::proto::{
    Compression, Config, Flow, Handler, OpCode, Receiver, RecvStatus, Reply, ReplySink, Role, Rsv,
    Window,
};
use net_websocket_ev::{websocket, Client, Error, Fragment, Params, Server, Waited, WebSocket};

/// Actions callbacks may take per input (a wait callback that waits again, or an echo
/// war with ourselves, must end).
const CALLBACK_BUDGET: u32 = 48;
/// The most script steps per input.
const MAX_STEPS: usize = 256;
/// `RunFlags::Once` calls per input that may wait for the 1 ms ticker, with a close
/// or idle timeout or keepalive of a few milliseconds (time must pass for them);
/// later ones, and all without such a timer, are `NoWait`. An input stays within a
/// few milliseconds.
const MAX_BLOCKING_RUNS: u32 = 2;
/// Settling: rounds without progress before we stop, and rounds at most.
const SETTLE_IDLE_ROUNDS: u32 = 8;
const SETTLE_MAX_ROUNDS: u32 = 2000;

/// What std does before every Rust `main` (a libFuzzer binary has none of its own):
/// a write to a vanished peer is then an `EPIPE` error, as in any Rust program.
/// (The object raised SIGPIPE even so once: `tests/fuzz_regressions.rs`, fixed.)
static IGNORE_SIGPIPE: std::sync::Once = std::sync::Once::new();

fuzz_target!(|data: &[u8]| {
    IGNORE_SIGPIPE.call_once(|| {
        // SAFETY: setting a signal's disposition to SIG_IGN has no precondition.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    });
    let fds_before = open_fds();
    run_script(data);
    assert_eq!(
        open_fds(),
        fds_before,
        "an fd (socket, or the loop's backend) outlived the input"
    );
});

fn run_script(data: &[u8]) {
    let mut input = Input(data);
    let knobs = input.byte();
    let timers = input.byte();
    let cb_len = usize::from(input.byte() % 64);
    let cb_script = input.bytes(cb_len).to_vec();

    let role = if knobs & 1 != 0 {
        Role::Client
    } else {
        Role::Server
    };
    let buffering = knobs & 2 == 0;
    let max_recv_size: u64 = if knobs & 4 != 0 { 64 } else { 1 << 20 };
    let small_socket_buffer = knobs & 8 != 0;
    let allowed_rsv = if timers & 0x10 != 0 {
        Rsv::RSV1
    } else {
        Rsv::empty()
    };
    // permessage-deflate, with context takeover by the next bit: our frames
    // must inflate at the peer; the peer's RSV1 frames (raw bytes) mostly fail.
    let compression = (timers & 0x20 != 0).then(|| {
        let window = Window::DEFAULT.no_context_takeover(timers & 0x40 == 0);
        Compression::default()
            .send(window)
            .recv(window)
            .level(1)
            .threshold(16)
    });

    let lp = Loop::new().expect("a new loop");
    let (ours, theirs) = UnixStream::pair().expect("socketpair");
    theirs.set_nonblocking(true).expect("non-blocking peer");
    if small_socket_buffer {
        // A small send buffer makes the object's writes partial and WouldBlock common.
        shrink_send_buffer(&ours);
    }
    let shared = Rc::new(RefCell::new(Shared {
        script: cb_script,
        budget: CALLBACK_BUDGET,
        buffering,
        max_recv_size,
        allowed_rsv,
        ..Shared::default()
    }));

    let mut params = Params::new(ours)
        .event_loop(&lp)
        .buffering(buffering)
        .max_recv_size(max_recv_size)
        .allowed_rsv(allowed_rsv)
        .close_timeout(match timers & 3 {
            0 => Some(Duration::from_secs(10)),
            1 => Some(Duration::ZERO),
            2 => Some(Duration::from_millis(2)),
            _ => None,
        })
        .idle_timeout((timers & 4 != 0).then_some(Duration::from_millis(2)))
        .keepalive((timers & 8 != 0).then_some(Duration::from_millis(1)));
    if knobs & 0x10 != 0 {
        params = params.fragment_size(5);
    }
    if knobs & 0x20 != 0 {
        params = params.max_queued_bytes(512);
    }
    if knobs & 0x80 != 0 {
        let mut n = 0u8;
        params = params.genmask(move |mask| {
            n = n.wrapping_add(1);
            *mask = [0, n, 0, n]; // zero bytes too: masking must not depend on the key
        });
    }
    if timers & 0x20 != 0 {
        let n = usize::from(input.byte() % 64);
        params = params.initial_data(input.bytes(n).to_vec());
    }
    if let Some(c) = compression {
        params = params.compression(c);
    }
    params = with_callbacks(params, &shared, knobs & 0x40 != 0);
    let ws = match role {
        Role::Server => Server::new(params),
        Role::Client => Client::new(params),
    }
    .expect("wrapping a fresh socket pair");

    let peer = Rc::new(RefCell::new(Peer::new(theirs, role, compression)));
    shared.borrow_mut().peer = Rc::downgrade(&peer);
    // Keeps `RunFlags::Once` from blocking longer than a millisecond.
    let tick = Duration::from_millis(1);
    let ticker = Timer::new(&lp, tick, tick, |_| {});
    ticker.start();

    // Waiting only helps when a timer is due within milliseconds.
    let short_timers = timers & 3 == 2 || timers & 0x0c != 0;
    let mut blocking_runs = if short_timers { MAX_BLOCKING_RUNS } else { 0 };
    for _ in 0..MAX_STEPS {
        if input.is_empty() {
            break;
        }
        step(&mut input, &lp, &ws, &peer, &shared, &mut blocking_runs);
        check_on_close(&ws, &shared);
    }

    settle(&lp, &ws, &peer, &shared);

    // The end: abort (an error when already over or ending), which decides the end
    // at once and carries it out from the loop: `on_close` after the loop turned,
    // never inside the call. Then drop everything: the peer must see the socket
    // closed.
    let calls_before = shared.borrow().on_close_calls;
    match ws.abort() {
        Ok(()) => assert_eq!(
            shared.borrow().on_close_calls,
            calls_before,
            "on_close ran inside abort()"
        ),
        Err(Error::Closed) => {}
        Err(e) => panic!("abort failed: {e}"),
    }
    assert!(ws.is_closed(), "abort did not end the connection");
    assert_every_method_is_closed(&ws);
    lp.run_with(RunFlags::NoWait);
    assert!(
        ws.as_raw_fd().is_none(),
        "the fd is still open after abort and a loop turn"
    );
    check_on_close(&ws, &shared);
    assert_eq!(shared.borrow().on_close_calls, 1);
    drop(ticker);
    drop(ws);
    drop(lp);
    let mut peer = peer.borrow_mut();
    peer.pump();
    assert!(
        peer.eof || peer.error.is_some() || peer.read_shut,
        "the peer's read would block after abort: our socket is still open"
    );
}

/// What the callbacks share with the script.
#[derive(Default)]
struct Shared {
    /// The callback script: one action per byte, taken in turn.
    script: Vec<u8>,
    cursor: usize,
    budget: u32,
    /// While settling or inside `wait_blocking`: callbacks neither stop nor shut down
    /// anything (a paused writer would make `wait_blocking` wait forever, by design).
    calm: bool,
    buffering: bool,
    max_recv_size: u64,
    allowed_rsv: Rsv,
    on_close_calls: u32,
    close_code: u16,
    /// `shutdown_read()` succeeded: the connection must end once its queue drains.
    read_shut: bool,
    /// `close()` succeeded: nothing more may be queued.
    close_queued: bool,
    /// The peer, for a `wait_blocking` from a callback (which must let it read).
    peer: std::rc::Weak<RefCell<Peer>>,
    /// Paused producers and resumes, shared with the producers.
    pause: Rc<PauseTrack>,
}

/// Kept outside the `RefCell` of `Shared`: producers are dropped by the object at
/// any time.
#[derive(Default)]
struct PauseTrack {
    /// Producers that returned `Pause` and have not been asked since (at most one:
    /// only the head of the queue is asked).
    paused: Cell<u32>,
    /// `resume_fragmented()` calls so far (counted before the call).
    resumes: Cell<u64>,
}

impl Shared {
    /// The next callback action and its argument, while the budget lasts.
    fn next_action(&mut self) -> Option<(u8, u8)> {
        if self.budget == 0 || self.script.is_empty() {
            return None;
        }
        self.budget -= 1;
        let at = self.cursor % self.script.len();
        self.cursor += 2;
        let arg = self.script[(at + 1) % self.script.len()];
        Some((self.script[at], arg))
    }
}

/// Where a call comes from: inside the io callback (a receive callback or a
/// producer), from a timer (a `wait` callback), or from the script itself.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Site {
    Io,
    Waiter,
    Script,
}

fn with_callbacks(params: Params, shared: &Rc<RefCell<Shared>>, frame_callbacks: bool) -> Params {
    let on_msg = shared.clone();
    let on_close = shared.clone();
    let params = params
        .on_msg_recv(move |ws, rsv, opcode, msg, status| {
            assert_eq!(status, 0, "on_msg_recv status is always 0");
            assert!(
                matches!(
                    opcode,
                    OpCode::Text | OpCode::Binary | OpCode::Ping | OpCode::Pong
                ),
                "on_msg_recv with {opcode:?}"
            );
            {
                let s = on_msg.borrow();
                assert_eq!(s.on_close_calls, 0, "on_msg_recv after on_close");
                if opcode.is_control() {
                    assert!(msg.len() <= 125);
                } else if !s.buffering {
                    assert!(msg.is_empty(), "data in on_msg_recv without buffering");
                } else {
                    assert!(
                        msg.len() as u64 <= s.max_recv_size,
                        "message over the limit"
                    );
                    if opcode == OpCode::Text && !rsv.contains(Rsv::RSV1) {
                        assert!(std::str::from_utf8(msg).is_ok(), "invalid UTF-8 delivered");
                    }
                }
                assert!(s.allowed_rsv.contains(rsv), "rsv {rsv:?} delivered");
            }
            react(ws, &on_msg, Site::Io, opcode, msg);
        })
        .on_close(move |ws, code| {
            {
                let mut s = on_close.borrow_mut();
                s.on_close_calls += 1;
                s.close_code = code;
                assert_eq!(s.on_close_calls, 1, "on_close ran twice");
            }
            assert!(ws.is_closed(), "on_close before the end");
            assert_eq!(code, ws.status_code_received());
            assert!(
                code == 1005 || code == 1006 || net_websocket_ev::proto::is_valid_close_code(code),
                "on_close({code})"
            );
            assert_every_method_is_closed(ws);
        });
    if !frame_callbacks {
        return params;
    }
    let start = shared.clone();
    let chunk = shared.clone();
    let end = shared.clone();
    params
        .on_frame_recv_start(move |ws, _fin, _rsv, opcode, _len| {
            assert_eq!(
                start.borrow().on_close_calls,
                0,
                "frame start after on_close"
            );
            react(ws, &start, Site::Io, opcode, b"");
        })
        .on_frame_recv_chunk(move |ws, data| {
            assert_eq!(chunk.borrow().on_close_calls, 0, "chunk after on_close");
            react(ws, &chunk, Site::Io, OpCode::Binary, data);
        })
        .on_frame_recv_end(move |ws| {
            assert_eq!(end.borrow().on_close_calls, 0, "frame end after on_close");
            react(ws, &end, Site::Io, OpCode::Binary, b"");
        })
}

/// A callback's action, from the callback script.
fn react(ws: &WebSocket, shared: &Rc<RefCell<Shared>>, site: Site, opcode: OpCode, msg: &[u8]) {
    let Some((action, arg)) = shared.borrow_mut().next_action() else {
        return;
    };
    if action & 0x80 != 0 && matches!(opcode, OpCode::Text | OpCode::Binary) {
        // Echo, the most common thing a callback does.
        let _ = ws.queue_msg(msg, opcode);
        return;
    }
    call_method(ws, shared, site, action, arg);
}

/// Calls one method of the object, chosen by `selector`, and checks what it returned.
fn call_method(ws: &WebSocket, shared: &Rc<RefCell<Shared>>, site: Site, selector: u8, arg: u8) {
    let calm = shared.borrow().calm;
    let was_closed = ws.is_closed();
    let result = match selector % 22 {
        0 => ws.queue_text("reply"),
        1 => {
            let text = [b'a', arg, 0xa9, b'z'];
            let result = ws.queue_msg(&text, OpCode::Text);
            if std::str::from_utf8(&text).is_err() {
                assert!(result.is_err(), "invalid UTF-8 text queued");
            }
            result
        }
        2 => ws.queue_binary(&vec![arg; usize::from(arg) * 40]),
        3 => {
            let len = usize::from(arg);
            let result = ws.queue_msg(&vec![arg; len], OpCode::Ping);
            if len > 125 {
                assert!(result.is_err(), "a {len}-byte ping queued");
            }
            result
        }
        4 => ws.queue_msg(&[arg], OpCode::Pong),
        5 => {
            let code = close_code(arg);
            let result = ws.close(code, "bye");
            if !code.is_some_and(net_websocket_ev::proto::is_valid_close_code) {
                assert!(result.is_err(), "close({code:?}, reason) accepted");
            }
            if result.is_ok() {
                shared.borrow_mut().close_queued = true;
            }
            result
        }
        6 => {
            let result = ws.close(None, "");
            if result.is_ok() {
                shared.borrow_mut().close_queued = true;
            }
            result
        }
        7 if !calm => {
            // Pause reading until the queue drains (a typical flow-control pattern).
            let result = ws.stop_read();
            if result.is_ok() && arg & 1 != 0 {
                let _ = ws.wait(|ws, _| {
                    let _ = ws.start_read();
                });
            }
            result
        }
        8 => ws.start_read(),
        9 if !calm => ws.stop_write(),
        10 => ws.start_write(),
        11 => ws.queue_fragmented(
            producer(shared.clone(), arg, false),
            if arg & 0x20 != 0 {
                OpCode::Text
            } else {
                OpCode::Binary
            },
        ),
        12 => {
            let waiter = shared.clone();
            ws.wait(move |ws, _| {
                assert_eq!(
                    waiter.borrow().on_close_calls,
                    0,
                    "wait callback after on_close"
                );
                react(ws, &waiter, Site::Waiter, OpCode::Binary, b"");
            })
        }
        13 if arg & 3 == 0 => {
            let calls_before = shared.borrow().on_close_calls;
            let result = ws.abort();
            if result.is_ok() {
                assert_eq!(
                    shared.borrow().on_close_calls,
                    calls_before,
                    "on_close ran inside abort()"
                );
                assert!(ws.is_closed(), "is_closed() false after abort()");
                assert_every_method_is_closed(ws);
            }
            result
        }
        14 => pumped_wait_blocking(ws, shared, site, arg & 1 == 0),
        15 if !calm => {
            let result = ws.shutdown_read();
            if result.is_ok() {
                shared.borrow_mut().read_shut = true;
            }
            result
        }
        16 if !calm && arg & 1 == 0 => ws.shutdown_write(),
        17 => ws.queued_count().map(drop),
        18 => ws.queued_bytes().map(drop),
        19 if !calm => ws.stop(),
        20 if arg & 1 == 0 => ws.queue_fragmented(
            producer(shared.clone(), arg, true),
            if arg & 0x20 != 0 {
                OpCode::Text
            } else {
                OpCode::Binary
            },
        ),
        20 => {
            let pause = shared.borrow().pause.clone();
            pause.resumes.set(pause.resumes.get() + 1);
            ws.resume_fragmented()
        }
        21 if arg & 3 == 0 => {
            let calls_before = shared.borrow().on_close_calls;
            let ended = websocket::abort_all(ws.event_loop());
            let calls = shared.borrow().on_close_calls;
            assert!(ws.is_closed(), "abort_all left the connection open");
            assert_eq!(ended, usize::from(!was_closed), "abort_all's count");
            if site == Site::Script {
                assert_eq!(calls, 1, "on_close did not run inside abort_all");
                assert!(ws.as_raw_fd().is_none(), "abort_all left the fd open");
            } else {
                assert_eq!(
                    calls, calls_before,
                    "abort_all from a callback ran on_close inside it"
                );
            }
            Ok(())
        }
        _ => ws.start(),
    };
    let abort_all = selector % 22 == 21 && arg & 3 == 0; // not a method of `ws`
    if was_closed && !abort_all {
        assert!(
            matches!(result, Err(Error::Closed)),
            "a method after the end returned {result:?}"
        );
    }
    if shared.borrow().close_queued && !ws.is_closed() {
        assert!(ws.queue_text("late").is_err(), "queued after close()");
    }
}

fn close_code(arg: u8) -> Option<u16> {
    match arg % 8 {
        0 => Some(1000),
        1 => Some(1001),
        2 => Some(4000 + u16::from(arg)),
        3 => Some(1005), // not allowed on the wire
        4 => Some(999),
        5 => Some(1012),
        6 => Some(3000 + u16::from(arg) * 8),
        _ => None, // with a reason: refused
    }
}

/// Counts a paused producer out when it is dropped while paused (its message was
/// dropped: a close, an abort, a failure).
struct PauseGuard {
    pause: Rc<PauseTrack>,
    /// `resumes` when this producer returned `Pause`; `None` when not paused.
    paused_at: Option<u64>,
}

impl PauseGuard {
    /// The producer is asked: it must have been resumed since it paused.
    fn asked(&mut self) {
        if let Some(at) = self.paused_at.take() {
            assert!(
                self.pause.resumes.get() > at,
                "a paused producer was asked again before resume_fragmented"
            );
            self.pause.paused.set(self.pause.paused.get() - 1);
        }
    }

    fn pausing(&mut self) -> Fragment {
        assert_eq!(self.pause.paused.get(), 0, "two producers paused at once");
        self.pause.paused.set(1);
        self.paused_at = Some(self.pause.resumes.get());
        Fragment::Pause
    }
}

impl Drop for PauseGuard {
    fn drop(&mut self) {
        if self.paused_at.is_some() {
            self.pause.paused.set(self.pause.paused.get() - 1);
        }
    }
}

/// A fragmented-message producer of a few pieces, from one spec byte: how many pieces,
/// which bytes (ASCII, a two-byte character that pieces may split, or invalid UTF-8),
/// how it ends (EOF with data, empty EOF, ERROR, or claiming more than the buffer),
/// whether it stalls once with `Data(0)` (or, with `pausing`, pauses once: at its
/// first call or after its first piece), and whether it calls the object itself.
fn producer(
    shared: Rc<RefCell<Shared>>,
    spec: u8,
    pausing: bool,
) -> impl FnMut(&WebSocket, &mut [u8]) -> Fragment + 'static {
    let pieces = 1 + usize::from(spec & 3);
    let alphabet: &'static [u8] = match (spec >> 2) & 3 {
        0 => b"abc",
        1 => "\u{e9}".as_bytes(),
        2 => b"ok\xff",
        _ => b"0123456789",
    };
    let ending = (spec >> 4) & 3;
    let stall = spec & 0x40 != 0 && !pausing;
    let pause_at = match (pausing, spec & 0x40 != 0) {
        (false, _) => 0,
        (true, true) => 1,
        (true, false) => 2,
    };
    let reentrant = spec & 0x80 != 0;
    let mut calls = 0usize;
    let mut produced = 0usize;
    let mut offset = 0usize;
    let mut guard = PauseGuard {
        pause: shared.borrow().pause.clone(),
        paused_at: None,
    };
    move |ws, buf| {
        assert_eq!(shared.borrow().on_close_calls, 0, "producer after on_close");
        assert!(!buf.is_empty());
        guard.asked();
        calls += 1;
        if reentrant {
            react(ws, &shared, Site::Io, OpCode::Binary, b"");
        }
        if stall && calls == 1 {
            return Fragment::Data(0);
        }
        if calls == pause_at {
            return guard.pausing();
        }
        let n = buf.len().min(1 + 3 * calls);
        for b in &mut buf[..n] {
            *b = alphabet[offset % alphabet.len()];
            offset += 1;
        }
        produced += 1;
        if produced < pieces {
            return Fragment::Data(n);
        }
        match ending {
            0 => Fragment::Eof(n),
            1 => Fragment::Eof(0),
            2 => Fragment::Error,
            _ => Fragment::Data(buf.len() + 1),
        }
    }
}

/// Every method of an ended connection returns `Error::Closed`.
fn assert_every_method_is_closed(ws: &WebSocket) {
    let closed = |r: Result<(), Error>| matches!(r, Err(Error::Closed));
    assert!(closed(ws.queue_text("x")));
    assert!(closed(ws.queue_msg(b"x", OpCode::Ping)));
    assert!(closed(
        ws.queue_fragmented(|_, _| Fragment::Eof(0), OpCode::Binary)
    ));
    assert!(closed(ws.close(Some(1000), "")));
    assert!(closed(ws.wait(|_, _| {})));
    assert!(matches!(ws.wait_blocking(), Err(Error::Closed)));
    assert!(closed(ws.start_read()));
    assert!(closed(ws.stop_write()));
    assert!(closed(ws.shutdown_read()));
    assert!(closed(ws.shutdown_write()));
    assert!(closed(ws.abort()));
    assert!(matches!(ws.queued_count(), Err(Error::Closed)));
}

/// `on_close` has run exactly when the connection is over (its socket closed), with
/// its code. `is_closed()` turns true earlier, when the end is decided (`abort()`, say:
/// the loop carries it out a moment later).
fn check_on_close(ws: &WebSocket, shared: &Rc<RefCell<Shared>>) {
    let s = shared.borrow();
    let over = ws.as_raw_fd().is_none();
    assert_eq!(
        s.on_close_calls,
        u32::from(over),
        "on_close calls vs the socket closed"
    );
    assert!(
        ws.is_closed() || !over,
        "the socket closed but is_closed() is false"
    );
    if over {
        assert_eq!(s.close_code, ws.status_code_received());
    }
}

/// One script step.
fn step(
    input: &mut Input<'_>,
    lp: &Loop,
    ws: &WebSocket,
    peer: &Rc<RefCell<Peer>>,
    shared: &Rc<RefCell<Shared>>,
    blocking_runs: &mut u32,
) {
    let op = input.byte();
    match op % 12 {
        0 => {
            let n = usize::from(input.byte() % 48);
            peer.borrow_mut().send(input.bytes(n));
        }
        1 => {
            let (head, len) = (input.byte(), input.byte());
            let mut p = peer.borrow_mut();
            let frame = p.frame(head, len, input);
            p.send(&frame);
        }
        2 => {
            let kind = input.byte();
            let reason = input.bytes(usize::from(kind >> 4));
            peer.borrow_mut().send_close(kind, reason);
        }
        3 => {
            for _ in 0..=input.byte() % 4 {
                lp.run_with(RunFlags::NoWait);
            }
        }
        4 => {
            let flags = if *blocking_runs > 0 {
                *blocking_runs -= 1;
                RunFlags::Once
            } else {
                RunFlags::NoWait
            };
            lp.run_with(flags);
        }
        5 => {
            let mut p = peer.borrow_mut();
            p.flush();
            p.pump();
        }
        6 => peer.borrow_mut().shutdown_write(),
        7 => {
            let (selector, arg) = (input.byte(), input.byte());
            call_method(ws, shared, Site::Script, selector, arg);
        }
        8 => {
            if input.byte() & 7 == 0 {
                peer.borrow_mut().shutdown_read();
            }
        }
        9 => {
            let _ = pumped_wait_blocking(ws, shared, Site::Script, true);
        }
        _ => {
            // The common case: the peer flushes and reads, the loop turns once.
            {
                let mut p = peer.borrow_mut();
                p.flush();
                p.pump();
            }
            lp.run_with(RunFlags::NoWait);
        }
    }
}

/// `wait_blocking` (from the script or a callback), with the peer reading meanwhile
/// (from the same loop) as a live peer would: the queue can always drain, unless
/// writing is stopped or a paused producer heads the queue (`Stalled`).
fn pumped_wait_blocking(
    ws: &WebSocket,
    shared: &Rc<RefCell<Shared>>,
    site: Site,
    start_writing: bool,
) -> Result<(), Error> {
    if start_writing {
        let _ = ws.start_write();
    }
    let was_closed = ws.is_closed();
    let (reader, pause, was_calm) = {
        let s = shared.borrow();
        (s.peer.clone(), s.pause.clone(), s.calm)
    };
    // An idle watcher: the peer reads whenever the loop has nothing else to do, and
    // the loop never sleeps meanwhile (a queue that never drains spins until
    // libFuzzer's timeout reports the hang).
    let pump = Idle::new(ws.event_loop(), move |_| {
        if let Some(peer) = reader.upgrade() {
            if let Ok(mut p) = peer.try_borrow_mut() {
                p.flush();
                p.pump();
            }
        }
    });
    pump.start();
    shared.borrow_mut().calm = true;
    let result = ws.wait_blocking();
    shared.borrow_mut().calm = was_calm;
    drop(pump);
    let paused = pause.paused.get() > 0;
    match result {
        Ok(Waited::Drained) => {
            assert!(!was_closed, "wait_blocking after the end succeeded");
            if !ws.is_closed() {
                assert_eq!(ws.queued_count().ok(), Some(0), "Drained with a queue");
            }
        }
        Ok(Waited::Closed { unsent }) => {
            assert!(!was_closed, "wait_blocking after the end succeeded");
            assert!(unsent > 0, "Closed with nothing unsent");
            assert!(
                ws.is_closed(),
                "wait_blocking: Closed but the connection is open"
            );
        }
        Err(Error::Closed) => assert!(was_closed, "wait_blocking: Closed while open"),
        Err(Error::Stalled) => assert!(
            paused || !start_writing || site != Site::Script,
            "wait_blocking stalled with no paused producer and writing started"
        ),
        Err(e) => panic!("wait_blocking: {e}"),
    }
    if site == Site::Script && paused && !ws.is_closed() {
        assert!(
            matches!(result, Err(Error::Stalled)),
            "a paused producer heads the queue but wait_blocking returned {result:?}"
        );
    }
    result.map(drop)
}

/// After the script: reading and writing resumed, the peer reads everything (and
/// answers our close, as a well-behaved peer), the loop turns until nothing moves.
/// Then a connection that received a close, saw EOF, or shut down reading is over.
fn settle(lp: &Loop, ws: &WebSocket, peer: &Rc<RefCell<Peer>>, shared: &Rc<RefCell<Shared>>) {
    shared.borrow_mut().calm = true;
    let _ = ws.start();
    let pause = shared.borrow().pause.clone();
    let mut idle = 0;
    let mut quiet = false;
    for _ in 0..SETTLE_MAX_ROUNDS {
        if pause.paused.get() > 0 {
            pause.resumes.set(pause.resumes.get() + 1);
            let _ = ws.resume_fragmented();
        }
        let moved = {
            let mut p = peer.borrow_mut();
            if p.close_from_object.is_some() && !p.close_sent && !p.write_shut {
                p.send_close(0, b"");
            }
            let flushed = p.flush();
            p.pump() || flushed
        };
        // The count too: an empty keepalive ping queued by this turn adds no bytes.
        let state = || {
            (
                ws.is_closed(),
                ws.queued_bytes().ok(),
                ws.queued_count().ok(),
            )
        };
        let before = state();
        lp.run_with(RunFlags::NoWait);
        let moved = moved || before != state();
        let p = peer.borrow();
        if ws.is_closed() && (p.eof || p.error.is_some() || p.read_shut) {
            break;
        }
        idle = if moved { 0 } else { idle + 1 };
        if idle > SETTLE_IDLE_ROUNDS {
            quiet = true;
            break;
        }
    }
    check_on_close(ws, shared);
    let p = peer.borrow();
    let received = ws.status_code_received() != 1006;
    assert!(
        ws.is_closed() || !received,
        "a close was received ({}) but the connection did not end",
        ws.status_code_received()
    );
    assert!(
        ws.is_closed() || !p.write_shut,
        "the peer's EOF did not end the connection"
    );
    assert!(
        ws.is_closed() || !shared.borrow().read_shut,
        "shutdown_read with a drained queue did not end the connection"
    );
    if ws.is_closed() {
        assert!(
            p.eof || p.error.is_some() || p.read_shut,
            "the connection ended but its socket is still open"
        );
    } else if quiet {
        // Writing started, paused producers resumed, the peer reading: whatever
        // was queued (a resumed message included) went out.
        assert_eq!(
            pause.paused.get(),
            0,
            "a producer still paused after resume"
        );
        assert_eq!(
            ws.queued_count().ok(),
            Some(0),
            "the queue did not drain while the connection stayed open"
        );
    }
}

/// The raw peer: writes what the script says, reads and parses what the object wrote.
struct Peer {
    /// The peer's end of the unix socket pair, as a `TcpStream` (which works on any
    /// stream socket) because its writes never raise SIGPIPE (`MSG_NOSIGNAL`).
    sock: TcpStream,
    /// The object's role: the peer's frames are masked for a server.
    object_role: Role,
    receiver: Receiver,
    /// Bytes the script wrote that the socket has not taken yet.
    out: Vec<u8>,
    /// Bytes read from the object, and bytes of whole frames parsed so far.
    read_total: usize,
    parsed: Rc<Cell<usize>>,
    /// The code of the object's close frame, and how many bytes preceded its end.
    close_from_object: Option<(Option<u16>, usize)>,
    close_sent: bool,
    eof: bool,
    error: Option<ErrorKind>,
    write_shut: bool,
    read_shut: bool,
    mask_seed: u8,
}

impl Peer {
    fn new(sock: UnixStream, object_role: Role, compression: Option<Compression>) -> Peer {
        let peer_role = match object_role {
            Role::Server => Role::Client,
            Role::Client => Role::Server,
        };
        Peer {
            sock: TcpStream::from(std::os::fd::OwnedFd::from(sock)),
            object_role,
            receiver: Receiver::new(peer_role, &Config::default().compression(compression)),
            out: Vec::new(),
            read_total: 0,
            parsed: Rc::new(Cell::new(0)),
            close_from_object: None,
            close_sent: false,
            eof: false,
            error: None,
            write_shut: false,
            read_shut: false,
            mask_seed: 0,
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        if !self.write_shut {
            self.out.extend_from_slice(bytes);
            self.flush();
        }
    }

    /// Writes what the socket takes now; true if anything went.
    fn flush(&mut self) -> bool {
        let mut wrote = false;
        while !self.out.is_empty() && !self.write_shut {
            match self.sock.write(&self.out) {
                Ok(n) => {
                    self.out.drain(..n);
                    wrote = true;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // WouldBlock, or the object is gone (EPIPE): keep or drop, both fine.
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.out.clear();
                    break;
                }
            }
        }
        wrote
    }

    /// Reads what is there and parses it; true if anything (bytes, EOF) came.
    fn pump(&mut self) -> bool {
        let mut got = false;
        let mut buf = [0u8; 16 * 1024];
        while !self.eof && self.error.is_none() {
            match self.sock.read(&mut buf) {
                Ok(0) => {
                    self.eof = true;
                    got = true;
                }
                Ok(n) => {
                    got = true;
                    self.parse(&buf[..n]);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => {
                    self.error = Some(e.kind());
                    got = true;
                }
            }
        }
        got
    }

    /// Parses the object's bytes: every frame must be valid for its role, and
    /// nothing may follow its close frame.
    fn parse(&mut self, bytes: &[u8]) {
        self.read_total += bytes.len();
        if let Some((code, end)) = self.close_from_object {
            panic!(
                "{} bytes after the object's close frame ({code:?}, ended at byte {end})",
                self.read_total - end
            );
        }
        let mut check = Check {
            masked: self.object_role == Role::Client,
            parsed: &self.parsed,
        };
        let mut sink = CheckReplies { close: None };
        let status = self.receiver.feed(bytes, &mut check, &mut sink);
        assert_ne!(status, RecvStatus::Paused);
        if let Some(code) = sink.close {
            let end = self.parsed.get();
            self.close_from_object = Some((code, end));
            assert_eq!(
                self.read_total, end,
                "bytes after the object's close frame ({code:?})"
            );
        }
    }

    /// A frame built from the script: opcode (reserved ones too), FIN, RSV1, the
    /// right mask or the wrong one, and a length that is exact, large, or a lie.
    fn frame(&mut self, head: u8, len_byte: u8, input: &mut Input<'_>) -> Vec<u8> {
        let opcode = [0u8, 1, 2, 8, 9, 10, 3, 11][usize::from(head & 7)];
        let fin = head & 8 == 0;
        let rsv1 = head & 0x10 != 0;
        let wrong_mask = head & 0x20 != 0 && len_byte & 1 != 0;
        let (declared, payload): (u64, Vec<u8>) = match head >> 6 {
            0 => {
                let p = input.bytes(usize::from(len_byte % 126)).to_vec();
                (p.len() as u64, p)
            }
            1 => {
                let p = input.bytes(usize::from(len_byte)).to_vec();
                (p.len() as u64, p)
            }
            2 => {
                let fill = input.byte();
                let p = vec![fill & 0x7f; usize::from(len_byte) * 40];
                (p.len() as u64, p)
            }
            _ => {
                // Claims more than comes (the object waits mid-frame), or far more
                // than any limit.
                let p = input.bytes(usize::from(len_byte % 16)).to_vec();
                (u64::from(len_byte) << (len_byte % 40), p)
            }
        };
        let masked = (self.object_role == Role::Server) != wrong_mask;
        let mut out = vec![(u8::from(fin) << 7) | (u8::from(rsv1) << 6) | opcode];
        let mask_bit = if masked { 0x80 } else { 0 };
        if declared < 126 {
            out.push(mask_bit | declared as u8);
        } else if declared < 65536 {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(declared as u16).to_be_bytes());
        } else {
            out.push(mask_bit | 127);
            out.extend_from_slice(&declared.to_be_bytes());
        }
        let start = out.len();
        out.extend_from_slice(&payload);
        if masked {
            self.mask_seed = self.mask_seed.wrapping_add(0x35);
            let key = [self.mask_seed, 0x5a, !self.mask_seed, 0];
            out.splice(start..start, key);
            for (i, b) in out[start + 4..].iter_mut().enumerate() {
                *b ^= key[i % 4];
            }
        }
        out
    }

    /// A close frame: a valid code (with a reason from the input), none, or a broken
    /// one (a 1-byte payload, a code not allowed on the wire).
    fn send_close(&mut self, kind: u8, reason: &[u8]) {
        let payload: Vec<u8> = match kind % 8 {
            0 => 1000u16.to_be_bytes().to_vec(),
            1 => [&4001u16.to_be_bytes()[..], reason].concat(),
            2 => Vec::new(),
            3 => vec![0x03],
            4 => 1005u16.to_be_bytes().to_vec(),
            5 => [&1001u16.to_be_bytes()[..], b"going \xff"].concat(),
            6 => [&3000u16.to_be_bytes()[..], reason].concat(),
            _ => 1011u16.to_be_bytes().to_vec(),
        };
        let payload = &payload[..payload.len().min(125)];
        let mut input = Input(payload);
        let frame = self.frame(3, payload.len() as u8, &mut input);
        self.close_sent = true;
        self.send(&frame);
    }

    fn shutdown_write(&mut self) {
        self.flush();
        self.out.clear();
        self.write_shut = true;
        let _ = self.sock.shutdown(Shutdown::Write);
    }

    fn shutdown_read(&mut self) {
        self.pump();
        self.read_shut = true;
        let _ = self.sock.shutdown(Shutdown::Read);
    }
}

/// Counts the bytes of each whole frame the object wrote (minimal header, as the
/// receiver insists on).
struct Check<'a> {
    masked: bool,
    parsed: &'a Cell<usize>,
}

impl Handler for Check<'_> {
    fn on_frame_start(&mut self, _fin: bool, rsv: Rsv, _opcode: OpCode, len: u64) -> Flow {
        // RSV1: a compressed message's first frame (only with compression,
        // which the peer's receiver checks).
        assert!(Rsv::RSV1.contains(rsv), "the object set {rsv:?}");
        let ext = match len {
            0..=125 => 0,
            126..=65535 => 2,
            _ => 8,
        };
        let header = 2 + ext + if self.masked { 4 } else { 0 };
        self.parsed
            .set(self.parsed.get() + header + usize::try_from(len).expect("frame length"));
        Flow::Continue
    }
}

struct CheckReplies {
    close: Option<Option<u16>>,
}

impl ReplySink for CheckReplies {
    fn reply(&mut self, reply: Reply<'_>) {
        match reply {
            Reply::Pong(_) => {}
            Reply::Close { code, .. } => self.close = Some(code),
            Reply::Fail(err) => panic!("the object wrote an invalid frame: {err}"),
        }
    }
}

/// The number of fds this process has open.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|dir| dir.count())
        .unwrap_or(0)
}

fn shrink_send_buffer(sock: &UnixStream) {
    let size: libc::c_int = 4096;
    // SAFETY: a valid fd, a c_int option value and its exact size.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt(SO_SNDBUF)");
}
