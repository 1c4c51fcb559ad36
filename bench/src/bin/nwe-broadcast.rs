//! Our broadcast server for `scripts/bench-fanout.sh`: every message a client sends
//! is sent to every client (the sender included), as the load generator
//! `fanout-load` expects.
//!
//! ```text
//! nwe-broadcast PORT [--loop]
//! ```
//! Clients come from a [`Listener`] with its caps, keepalive and message timeout
//! lifted (the benchmark opens 10,000 connections from one address), and are kept in a
//! map, Perl's `%clients` pattern. `--loop`: a loop of `queue_msg` over the map, what
//! a Perl user writes. Without it, the clients are also members of a `Group`, and
//! each message goes out with `Group::publish` (framed once, the bytes shared).
//! Prints `listening on 127.0.0.1:PORT` when ready (PORT 0: a free port).

use std::{cell::RefCell, collections::HashMap, rc::Rc};

use net_websocket_ev::ev::{Loop, Signal};
use net_websocket_ev::{Group, ListenParams, Listener, OpCode, PreparedMessage, Server, WebSocket};

/// Per connection: ample for the benchmark's messages (up to a few KiB).
const MAX_RECV_SIZE: u64 = 1 << 20;
/// Per connection: generous, so that the benchmark never reaches it.
const MAX_QUEUED_BYTES: usize = 64 << 20;

/// How a received message reaches every client.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// `queue_msg` on each client in turn (frames the message once per client).
    Loop,
    /// The default mode: `Group::publish` (frame once, share the bytes).
    Shared,
}

type Clients = Rc<RefCell<HashMap<u64, WebSocket>>>;

fn broadcast(mode: Mode, clients: &Clients, group: &Group, msg: &[u8], opcode: OpCode) {
    match mode {
        // queue_msg from inside a receive callback only queues: no other client's
        // callback runs meanwhile (a failing client ends later, from the loop), so the
        // map stays borrowed for the whole loop.
        Mode::Loop => {
            for ws in clients.borrow().values() {
                let _ = ws.queue_msg(msg, opcode); // a client closing meanwhile is skipped
            }
        }
        Mode::Shared => {
            if let Ok(msg) = PreparedMessage::new(msg, opcode) {
                group.publish(&msg);
            }
        }
    }
}

fn main() {
    let mut port = None;
    let mut mode = Mode::Shared;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--loop" => mode = Mode::Loop,
            p if port.is_none() => port = p.parse::<u16>().ok(),
            _ => port = None,
        }
    }
    let Some(port) = port else {
        eprintln!("usage: nwe-broadcast PORT [--loop]");
        std::process::exit(2);
    };
    let lp = Loop::default_loop().expect("libev default loop");
    let clients: Clients = Rc::default();
    let group = Rc::new(Group::new());
    let (map, room, mut next_id) = (clients.clone(), group.clone(), 0u64);
    let listener = Listener::new(
        ListenParams::new(("127.0.0.1", port))
            .event_loop(&lp)
            .backlog(1024)
            .max_connections(None)
            .max_handshakes(None)
            .max_handshakes_per_ip(None)
            .max_connections_per_ip(None)
            .keepalive(None)
            .message_timeout(None)
            .on_connect(move |accepted| {
                let (id, gone, all) = (next_id, map.clone(), map.clone());
                let (left, everyone) = (room.clone(), room.clone());
                next_id += 1;
                let params = accepted
                    .into_params()
                    .max_recv_size(MAX_RECV_SIZE)
                    .max_queued_bytes(MAX_QUEUED_BYTES)
                    .on_msg_recv(move |_ws, _rsv, opcode, msg, _status| {
                        if matches!(opcode, OpCode::Text | OpCode::Binary) {
                            broadcast(mode, &all, &everyone, msg, opcode);
                        }
                    })
                    .on_close(move |ws, _| {
                        gone.borrow_mut().remove(&id); // delete $clients{$id}
                        left.remove(ws);
                    });
                match Server::new(params) {
                    Ok(ws) => {
                        if mode == Mode::Shared {
                            room.insert(&ws);
                        }
                        map.borrow_mut().insert(id, ws);
                    }
                    Err(err) => eprintln!("nwe-broadcast: {err}"),
                }
            }),
    )
    .unwrap_or_else(|err| {
        eprintln!("nwe-broadcast: cannot listen on 127.0.0.1:{port}: {err}");
        std::process::exit(1);
    });
    let signals: Vec<Signal> = [libc::SIGINT, libc::SIGTERM]
        .into_iter()
        .map(|signum| {
            let stop = lp.clone();
            let signal =
                Signal::new(&lp, signum, move |_| stop.break_all()).expect("signal watcher");
            signal.start();
            signal
        })
        .collect();
    println!("listening on {}", listener.local_addr());
    lp.run();
    drop((signals, listener));
}
