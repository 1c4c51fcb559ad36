//! What the `object` fuzz target (`fuzz/fuzz_targets/object.rs`) found, reduced to
//! the smallest reproduction, kept as regression tests once fixed.

use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};

use net_websocket_ev::ev::{Loop, RunFlags};
use net_websocket_ev::{OpCode, Params, Server};

static SIGPIPES: AtomicUsize = AtomicUsize::new(0);

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
