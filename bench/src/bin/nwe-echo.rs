//! The leanest echo server on net-websocket-ev, for the end-to-end benchmark next to
//! `examples/echo_server`: the same accept, upgrade and echo, without the example's
//! tracing and commands, so that the library's own cost can be told from the
//! example's.
//!
//! ```text
//! nwe-echo PORT
//! ```

use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::rc::Rc;

use net_websocket_ev::ev::{Events, Io, Loop, Signal};
use net_websocket_ev::websocket::upgrade::{self, HandshakeOptions};
use net_websocket_ev::{OpCode, Server};

fn main() {
    let port: u16 = match std::env::args().nth(1).map(|p| p.parse()) {
        Some(Ok(port)) => port,
        _ => {
            eprintln!("usage: nwe-echo PORT");
            std::process::exit(2);
        }
    };
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("listen");
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    let lp = Loop::default_loop().expect("libev default loop");
    let listener = Rc::new(listener);
    let accepting = listener.clone();
    let accept_lp = lp.clone();
    let acceptor = Io::new(&lp, listener.as_raw_fd(), Events::READ, move |_| {
        while let Ok((stream, _)) = accepting.accept() {
            let _ = stream.set_nodelay(true);
            upgrade::accept(&accept_lp, stream, HandshakeOptions::default(), |result| {
                let Ok(upgraded) = result else { return };
                let params = upgraded.into_params().max_recv_size(16 << 20).on_msg_recv(
                    |ws, _rsv, opcode, msg, _status| {
                        if matches!(opcode, OpCode::Text | OpCode::Binary) {
                            let _ = ws.queue_msg(msg, opcode);
                        }
                    },
                );
                if let Err(err) = Server::new(params) {
                    eprintln!("nwe-echo: {err}");
                }
            });
        }
    })
    .expect("accept watcher");
    acceptor.start();
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
    println!("listening on 127.0.0.1:{port}");
    lp.run();
    drop(signals);
}
