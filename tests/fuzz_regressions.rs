//! What the fuzz targets (`fuzz/fuzz_targets/`) found, reduced to the smallest
//! reproduction, kept as regression tests (each failed before its fix).
#![cfg(feature = "ev")]

mod util;

use std::cell::Cell;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};

use net_websocket_ev::ev::{Loop, RunFlags};
use net_websocket_ev::{OpCode, Params, Server, Waited};

static SIGPIPES: AtomicUsize = AtomicUsize::new(0);

/// Held while a test forks a child process, and by the tests whose peers must vanish
/// when they drop them: a child forked meanwhile holds a copy of every fd until it
/// execs, so a dropped peer would stay open for a moment.
static FORKING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn no_fork_meanwhile() -> std::sync::MutexGuard<'static, ()> {
    FORKING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

extern "C" fn count_sigpipe(_signum: libc::c_int) {
    SIGPIPES.fetch_add(1, Ordering::SeqCst);
}

/// Found as an 11-byte input: a connection with a ping queued ahead of a 7,960-byte
/// binary message, the peer's reading end shut down. Every Rust `main` ignores
/// SIGPIPE, so Rust programs only see the `EPIPE` (handled: the connection ends);
/// a process that keeps SIGPIPE's default (a C or Perl host running the loop, or a
/// Rust binary built to die on broken pipes) is killed.
///
/// Single writes go through `send(MSG_NOSIGNAL)` (std's `TcpStream::write`), but a
/// control frame in the send buffer followed by a message of at least 4 KiB taken
/// without copying is written with `write_vectored`, which std implements as plain
/// `writev`: no `MSG_NOSIGNAL`, so the kernel raises SIGPIPE.
/// Fixed: the encoder never writes vectored; small direct bytes are copied behind
/// the control frame, large ones written by a second `send` (both sizes below).
#[test]
fn writing_to_a_vanished_peer_raises_no_sigpipe() {
    let _no_fork = no_fork_meanwhile();
    // A counting handler rather than the default action, so that the test binary
    // survives to report. Process-wide, but nothing else in this binary writes.
    let handler = count_sigpipe as extern "C" fn(libc::c_int);
    // SAFETY: the handler only touches an atomic (async-signal-safe).
    let previous = unsafe { libc::signal(libc::SIGPIPE, handler as libc::sighandler_t) };
    assert_ne!(previous, libc::SIG_ERR);

    for size in [100, 8192] {
        let lp = Loop::new().unwrap();
        let (ours, peer) = UnixStream::pair().unwrap();
        let ws = Server::new(Params::new(ours).event_loop(&lp)).unwrap();
        ws.queue_msg(b"p", OpCode::Ping).unwrap();
        ws.queue_binary(&vec![0x42; size]).unwrap();
        drop(peer);
        for _ in 0..4 {
            lp.run_with(RunFlags::NoWait);
        }
        assert!(
            ws.is_closed(),
            "the write error ends the connection ({size} B)"
        );
    }

    // SAFETY: restores the disposition saved above.
    unsafe { libc::signal(libc::SIGPIPE, previous) };
    assert_eq!(
        SIGPIPES.load(Ordering::SeqCst),
        0,
        "writing to a vanished peer raised SIGPIPE (a default-disposition process dies here)"
    );
}

/// Runs `scenario` in a child process (this test binary, re-run for this one test):
/// what it guards against aborts the process (a libev assertion), which must fail
/// the test rather than the whole test binary.
fn in_child_process(test_name: &str, scenario: fn()) {
    const CHILD: &str = "NWE_FUZZ_REGRESSION_CHILD";
    if std::env::var_os(CHILD).is_some() {
        scenario();
        return;
    }
    let _forking = no_fork_meanwhile();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{test_name} died in its child process ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Found by the `object` target as a 19-byte input: a producer failed (close 1011
/// queued) while bytes that came with the handshake were still unread, then
/// `wait_blocking()`. `wait_blocking` starts a temporary WRITE watcher on the
/// connection's fd and runs the loop once; libev's `ev_run` first invokes the
/// events already pending (here the READ fed for the handshake's bytes), that
/// callback ends the connection and closes the fd, and then `ev_run` registers the
/// temporary watcher on the closed fd: `epoll_ctl` fails with EBADF and libev
/// aborts the process ("I/O watcher with invalid fd found in epoll_ctl"; a libev
/// built without assertions kills the watcher instead). Reduced here: an `abort()`
/// in `on_msg_recv` for a message that came with the handshake, while
/// `wait_blocking` waits for a large message the peer does not read yet.
#[test]
fn wait_blocking_survives_the_connection_ending_before_the_loop_polls() {
    in_child_process(
        "wait_blocking_survives_the_connection_ending_before_the_loop_polls",
        || {
            let lp = Loop::new().unwrap();
            let (ours, peer) = UnixStream::pair().unwrap();
            util::small_buffers(&ours);
            // A masked text frame "hi" (key 0), as a client sends it.
            let initial = vec![0x81, 0x82, 0, 0, 0, 0, b'h', b'i'];
            let closed = Rc::new(Cell::new(0));
            let on_close = closed.clone();
            let ws = Server::new(
                Params::new(ours)
                    .event_loop(&lp)
                    .initial_data(initial)
                    .on_msg_recv(|ws, _, _, _, _| {
                        let _ = ws.abort();
                    })
                    .on_close(move |_, _| on_close.set(on_close.get() + 1)),
            )
            .unwrap();
            ws.queue_binary(&vec![0x42; 256 * 1024]).unwrap();
            let result = ws.wait_blocking();
            assert!(
                matches!(result, Ok(Waited::Closed { .. })),
                "wait_blocking: {result:?}"
            );
            assert!(ws.is_closed());
            lp.run_with(RunFlags::NoWait);
            assert_eq!(closed.get(), 1);
            assert_eq!(ws.as_raw_fd(), None);
            drop(peer);
        },
    );
}

/// A producer that calls `wait_blocking()` (documented to work from anywhere, this
/// connection's own callbacks included). The nested write asks for the next piece
/// of the message whose producer is running, but that producer is out of the
/// queue while it runs: the next message's producer is popped in its place, so its
/// bytes go out inside the first message (or, with no other producer, the message
/// is abandoned with close 1011).
#[test]
fn wait_blocking_inside_a_producer_keeps_messages_apart() {
    use net_websocket_ev::proto::{Config, Flow, Handler, Receiver, Reply, ReplySink, Role, Rsv};
    use net_websocket_ev::Fragment;
    use std::io::Read;

    let lp = Loop::new().unwrap();
    let (ours, mut peer) = UnixStream::pair().unwrap();
    let ws = Server::new(Params::new(ours).event_loop(&lp)).unwrap();
    let mut first_calls = 0;
    ws.queue_fragmented(
        move |ws, buf| {
            first_calls += 1;
            if first_calls == 1 {
                buf[0] = b'a';
                let _ = ws.wait_blocking();
                return Fragment::Data(1);
            }
            buf[0] = b'b';
            Fragment::Eof(1)
        },
        OpCode::Binary,
    )
    .unwrap();
    ws.queue_fragmented(
        |_, buf| {
            buf[..2].copy_from_slice(b"XY");
            Fragment::Eof(2)
        },
        OpCode::Binary,
    )
    .unwrap();
    for _ in 0..8 {
        lp.run_with(RunFlags::NoWait);
    }

    struct Messages(Vec<Vec<u8>>);
    impl Handler for Messages {
        fn on_message(&mut self, _: Rsv, _: OpCode, data: &[u8], _: u16) -> Flow {
            self.0.push(data.to_vec());
            Flow::Continue
        }
    }
    struct Closes(Option<Option<u16>>);
    impl ReplySink for Closes {
        fn reply(&mut self, reply: Reply<'_>) {
            if let Reply::Close { code, .. } = reply {
                self.0 = Some(code);
            }
        }
    }
    peer.set_nonblocking(true).unwrap();
    let mut wire = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = peer.read(&mut buf) {
        if n == 0 {
            break;
        }
        wire.extend_from_slice(&buf[..n]);
    }
    let mut receiver = Receiver::new(Role::Client, &Config::default());
    let mut messages = Messages(Vec::new());
    let mut closes = Closes(None);
    receiver.feed(&wire, &mut messages, &mut closes);
    let got: Vec<String> = messages
        .0
        .iter()
        .map(|m| String::from_utf8_lossy(m).into())
        .collect();
    assert_eq!(
        (closes.0, got),
        (None, vec!["ab".to_string(), "XY".to_string()]),
        "(our close, the messages the peer got)"
    );
}

/// Found by the `object` target (4 inputs): `websocket::abort_all` called from a
/// `wait` callback runs `on_close` inside that callback, although "a connection
/// whose callback is running (when called from inside it) ends when that callback
/// returns". `abort_all` defers the end only while the io callback runs
/// (`in_io`); a `wait` callback runs from the connection's timer, where `in_io` is
/// false, so `finish()` (socket closed, `on_close`) runs before the wait callback
/// has returned.
#[test]
fn abort_all_from_a_wait_callback_ends_the_connection_after_it_returns() {
    let lp = Loop::new().unwrap();
    let (ours, _peer) = UnixStream::pair().unwrap();
    let closed = Rc::new(Cell::new(0));
    let on_close = closed.clone();
    let ws = Server::new(
        Params::new(ours)
            .event_loop(&lp)
            .on_close(move |_, _| on_close.set(on_close.get() + 1)),
    )
    .unwrap();
    let seen = Rc::new(Cell::new(None));
    let (seen_in_cb, closed_in_cb) = (seen.clone(), closed.clone());
    ws.wait(move |ws, _| {
        let ended = net_websocket_ev::websocket::abort_all(ws.event_loop());
        seen_in_cb.set(Some((ended, closed_in_cb.get())));
    })
    .unwrap();
    for _ in 0..4 {
        lp.run_with(RunFlags::NoWait);
    }
    assert_eq!(
        seen.get(),
        Some((1, 0)),
        "(abort_all's count, on_close calls) inside the wait callback"
    );
    assert_eq!(closed.get(), 1, "on_close once the callback returned");
    assert_eq!(ws.as_raw_fd(), None);
}
