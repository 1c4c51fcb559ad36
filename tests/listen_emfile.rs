//! Out of file descriptors, the listener pauses instead of spinning on a readable
//! listening socket, and serves a newcomer once a peer leaves. Its own test binary:
//! it lowers this process's `RLIMIT_NOFILE`.
#![cfg(feature = "ev")]

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};

use net_websocket_ev::ev::Loop;
use net_websocket_ev::proto::Role;
use net_websocket_ev::websocket::listen::Pause;
use net_websocket_ev::{websocket, ListenParams, Listener, OpCode, Server};
use util::{deadline, run_until, spin, Peer};

const REQUEST: &str = "GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\r\n";

/// Lowers the soft `RLIMIT_NOFILE` so that exactly `room` more fds can be opened;
/// returns the old limit.
fn leave_room_for(room: usize) -> libc::rlimit {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `old` is a valid rlimit to fill.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut old) }, 0);
    let mut free = 0;
    let mut limit = 0;
    while free < room {
        // SAFETY: F_GETFD only asks whether `limit` is an open fd; it opens nothing.
        if unsafe { libc::fcntl(limit, libc::F_GETFD) } == -1 {
            free += 1;
        }
        limit += 1;
    }
    let new = libc::rlimit {
        rlim_cur: limit as libc::rlim_t,
        rlim_max: old.rlim_max,
    };
    // SAFETY: a valid rlimit; lowering the soft limit is always allowed.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) }, 0);
    old
}

fn restore(limit: libc::rlimit) {
    // SAFETY: the limit read before, with the same hard limit.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
}

fn connect(addr: SocketAddr) -> TcpStream {
    let sock = TcpStream::connect(addr).expect("connect");
    sock.set_nonblocking(true).unwrap();
    sock
}

/// Sends the upgrade request and reads the 101 head.
fn upgrade(lp: &Loop, sock: &mut TcpStream) {
    sock.write_all(REQUEST.as_bytes()).unwrap();
    let mut got = Vec::new();
    run_until(lp, "the 101", || {
        let mut buf = [0u8; 1024];
        match sock.read(&mut buf) {
            Ok(0) => panic!("closed: {}", String::from_utf8_lossy(&got)),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => panic!("read: {e}"),
        }
        got.ends_with(b"\r\n\r\n")
    });
    assert!(got.starts_with(b"HTTP/1.1 101 "));
}

#[test]
fn out_of_fds_pauses_accepting_and_a_newcomer_is_served_once_a_peer_leaves() {
    let lp = Loop::new().unwrap();
    let listener = Listener::new(
        ListenParams::new("127.0.0.1:0")
            .event_loop(&lp)
            // Only a peer leaving resumes accepting within this test.
            .accept_retry(2 * deadline())
            .on_connect(|accepted| {
                let params = accepted.into_params().on_msg_recv(|ws, _, op, msg, _| {
                    if op == OpCode::Text {
                        ws.queue_msg(msg, op).unwrap();
                    }
                });
                Server::new(params).unwrap();
            }),
    )
    .unwrap();
    let addr = listener.local_addr();
    // Four clients, connected (in the backlog) before the table fills: the
    // server can take two of them.
    let mut clients: Vec<Option<TcpStream>> = (0..4).map(|_| Some(connect(addr))).collect();
    let old_limit = leave_room_for(2);

    run_until(&lp, "the pause", || listener.paused().is_some());
    assert_eq!(listener.paused(), Some(Pause::Descriptors));
    let stats = listener.stats();
    assert_eq!(
        (stats.accepted, stats.accept_errors, stats.handshakes),
        (2, 1, 2)
    );
    // The listening socket is still readable (two clients wait): a listener that
    // kept its watcher would call accept at every iteration.
    let calls = stats.accept_calls;
    spin(&lp, 50);
    assert_eq!(
        listener.stats().accept_calls,
        calls,
        "no accept while paused"
    );
    assert_eq!(listener.paused(), Some(Pause::Descriptors));

    // The first client upgrades (no fd freed: at most one more accept attempt),
    // then leaves (its socket kept open here: the test shares the fd table): the
    // server's fd is freed and the third client is accepted and served.
    let mut first = clients[0].take().unwrap();
    upgrade(&lp, &mut first);
    first.shutdown(Shutdown::Both).unwrap();
    run_until(&lp, "the third client's accept", || {
        listener.stats().accepted == 3
    });
    let mut third = clients[2].take().unwrap();
    upgrade(&lp, &mut third);
    let mut peer = Peer::new(third, Role::Client);
    peer.send_msg(OpCode::Text, b"served");
    run_until(&lp, "the echo", || {
        peer.pump();
        !peer.data_msgs().is_empty()
    });
    assert_eq!(peer.data_msgs(), [(OpCode::Text, b"served".to_vec())]);
    // Still out of room for the fourth: paused again, not spinning.
    assert_eq!(listener.paused(), Some(Pause::Descriptors));
    let stats = listener.stats();
    assert!(stats.accept_calls <= 7, "{stats:?}");
    assert_eq!(stats.accepted, 3);

    restore(old_limit);
    drop((first, peer));
    drop(clients);
    websocket::abort_all(&lp);
}
