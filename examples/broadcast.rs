//! A stats broadcaster: every client of the listener joins a `Group` (Perl's
//! `%clients` hash), an ev timer publishes a JSON line to all of them every
//! `--interval` milliseconds (framed once, each socket written at once; a client
//! too slow to keep up misses ticks), and SIGTERM or SIGQUIT closes them all (1001)
//! and ends the program.
//!
//! ```text
//! cargo run --example broadcast -- [--port 8080] [--interval 1000]
//! ```
//! Port 0 picks a free port; the line `listening on HOST:PORT` says which.

use std::{error::Error, rc::Rc, time::Duration};

use net_websocket_ev::ev::{Loop, RunFlags, Signal, Timer};
use net_websocket_ev::{Group, ListenParams, Listener, PreparedMessage, Server};

fn main() -> Result<(), Box<dyn Error>> {
    let (mut port, mut interval) = (8080u16, 1000u64);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--port" => port = value.parse()?,
            "--interval" => interval = value.parse()?,
            _ => Err(format!(
                "unknown {flag:?}: broadcast [--port N] [--interval MS]"
            ))?,
        }
    }
    let lp = Loop::default_loop()?;
    let clients = Rc::new(Group::new()); // %clients
    let room = clients.clone();
    let listener = Listener::new(
        ListenParams::new(("127.0.0.1", port))
            .event_loop(&lp)
            .on_connect(move |accepted| {
                let gone = room.clone();
                let params = accepted.into_params().on_close(move |ws, _| {
                    gone.remove(ws); // delete $clients{$id}
                });
                match Server::new(params) {
                    Ok(ws) => drop(room.insert(&ws)),
                    Err(err) => eprintln!("broadcast: {err}"),
                }
            }),
    )?;
    println!("listening on {}", listener.local_addr());

    let (room, mut ticks) = (clients.clone(), 0u64);
    let every = Duration::from_millis(interval.max(1));
    let timer = Timer::new(&lp, every, every, move |_| {
        ticks += 1;
        let line = format!(r#"{{"tick":{ticks},"clients":{}}}"#, room.len());
        room.publish(&PreparedMessage::text(&line));
    });
    timer.start();
    let mut signals = Vec::new();
    for signum in [libc::SIGTERM, libc::SIGQUIT] {
        let (room, stop) = (clients.clone(), lp.clone());
        let signal = Signal::new(&lp, signum, move |_| {
            for ws in room.members() {
                ws.close(Some(1001), "going away").ok();
            }
            stop.break_loop();
        })?;
        signal.start();
        signals.push(signal);
    }
    lp.run();
    // No new clients, no more ticks; the closing handshakes finish (each within
    // the close timeout) and every on_close empties the group.
    drop((listener, timer));
    while !clients.is_empty() {
        lp.run_with(RunFlags::Once);
    }
    Ok(())
}
