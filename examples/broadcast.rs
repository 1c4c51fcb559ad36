//! A stats broadcaster, Perl's `%clients` pattern: every client of the listener is
//! kept in a map, an ev timer sends all of them a JSON line every `--interval`
//! milliseconds, and SIGTERM or SIGQUIT closes them all (1001) and ends the program.
//!
//! ```text
//! cargo run --example broadcast -- [--port 8080] [--interval 1000]
//! ```
//! Port 0 picks a free port; the line `listening on HOST:PORT` says which.

use std::{cell::RefCell, collections::HashMap, error::Error, rc::Rc, time::Duration};

use net_websocket_ev::ev::{Loop, RunFlags, Signal, Timer};
use net_websocket_ev::{ListenParams, Listener, Server, WebSocket};

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
    let clients: Rc<RefCell<HashMap<u64, WebSocket>>> = Rc::default(); // %clients
    let (map, mut next_id) = (clients.clone(), 0u64);
    let listener = Listener::new(
        ListenParams::new(("127.0.0.1", port))
            .event_loop(&lp)
            .on_connect(move |accepted| {
                let (id, gone) = (next_id, map.clone());
                next_id += 1;
                let params = accepted.into_params().on_close(move |_, _| {
                    gone.borrow_mut().remove(&id); // delete $clients{$id}
                });
                match Server::new(params) {
                    Ok(ws) => drop(map.borrow_mut().insert(id, ws)),
                    Err(err) => eprintln!("broadcast: {err}"),
                }
            }),
    )?;
    println!("listening on {}", listener.local_addr());

    let (map, mut ticks) = (clients.clone(), 0u64);
    let every = Duration::from_millis(interval.max(1));
    let timer = Timer::new(&lp, every, every, move |_| {
        ticks += 1;
        let all: Vec<WebSocket> = map.borrow().values().cloned().collect();
        let line = format!(r#"{{"tick":{ticks},"clients":{}}}"#, all.len());
        for ws in all {
            ws.queue_text(&line).ok(); // a client closing meanwhile is skipped
        }
    });
    timer.start();
    let mut signals = Vec::new();
    for signum in [libc::SIGTERM, libc::SIGQUIT] {
        let (map, stop) = (clients.clone(), lp.clone());
        let signal = Signal::new(&lp, signum, move |_| {
            let all: Vec<WebSocket> = map.borrow().values().cloned().collect();
            for ws in all {
                ws.close(Some(1001), "going away").ok();
            }
            stop.break_loop();
        })?;
        signal.start();
        signals.push(signal);
    }
    lp.run();
    // No new clients, no more ticks; the closing handshakes finish (each within
    // the close timeout) and every on_close empties the map.
    drop((listener, timer));
    while !clients.borrow().is_empty() {
        lp.run_with(RunFlags::Once);
    }
    Ok(())
}
