//! The soak test's client (see `scripts/soak.sh`): opens many WebSocket connections to
//! an echo server from one libev loop and, once all are open, keeps `--window`
//! numbered messages in flight on each for `--seconds`; checks every echo came back whole and in order, then closes
//! every connection with 1000 and waits for the server's close.
//!
//! ```text
//! cargo run --release --example soak_client -- --port 8080 [--host 127.0.0.1]
//!     [--connections 10000] [--seconds 30] [--size 64] [--window 1] [--batch 200]
//! ```
//! Prints a summary line; exits 0 only if every connection was established, every
//! message came back in order, and every connection ended with code 1000.

#[path = "shared/report.rs"]
mod report;

use std::cell::{Cell, RefCell};
use std::net::TcpStream;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use net_websocket_ev::ev::{Loop, Timer};
use net_websocket_ev::handshake::ClientRequest;
use net_websocket_ev::websocket::upgrade::{self, HandshakeOptions};
use net_websocket_ev::{Client, OpCode, Params, WebSocket};

struct Options {
    host: String,
    port: u16,
    connections: usize,
    seconds: Duration,
    size: usize,
    window: u64,
    batch: usize,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        host: "127.0.0.1".into(),
        port: 8080,
        connections: 10_000,
        seconds: Duration::from_secs(30),
        size: 64,
        window: 1,
        batch: 200,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or(format!("{arg} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{arg}: {e}");
        match arg.as_str() {
            "--host" => o.host = value,
            "--port" => o.port = value.parse().map_err(|e| bad(&e))?,
            "--connections" => o.connections = value.parse().map_err(|e| bad(&e))?,
            "--seconds" => {
                let secs: f64 = value.parse().map_err(|e| bad(&e))?;
                o.seconds = Duration::try_from_secs_f64(secs).map_err(|e| bad(&e))?
            }
            "--size" => o.size = value.parse::<usize>().map_err(|e| bad(&e))?.max(16),
            "--window" => o.window = value.parse::<u64>().map_err(|e| bad(&e))?.max(1),
            "--batch" => o.batch = value.parse::<usize>().map_err(|e| bad(&e))?.max(1),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(o)
}

#[derive(Default)]
struct Totals {
    connecting: usize,
    established: usize,
    failed: usize,
    closed_ok: usize,
    closed_bad: usize,
    echoed: u64,
    out_of_order: u64,
}

/// One connection's sequence: message `n` carries `n` and the connection's id.
struct Conn {
    id: u64,
    sent: Cell<u64>,
    received: Cell<u64>,
}

/// Every established connection, for the end of the sending phase.
type Open = Rc<RefCell<Vec<(WebSocket, Rc<Conn>)>>>;

fn message(id: u64, seq: u64, size: usize) -> Vec<u8> {
    let mut msg = Vec::with_capacity(size);
    msg.extend_from_slice(&seq.to_be_bytes());
    msg.extend_from_slice(&id.to_be_bytes());
    msg.extend((16..size).map(|i| (seq as usize + i) as u8));
    msg
}

fn main() -> ExitCode {
    let o = match parse_args() {
        Ok(o) => Rc::new(o),
        Err(e) => {
            eprintln!("soak_client: {e}");
            return ExitCode::from(2);
        }
    };
    let lp = Loop::default_loop().expect("libev default loop");
    let totals = Rc::new(RefCell::new(Totals::default()));
    let sending = Rc::new(Cell::new(false));
    let open: Open = Rc::default();
    let next_id = Rc::new(Cell::new(0usize));
    let started_at = Instant::now();

    // Connects in batches, a few handshakes in flight at a time (no listen-queue overflow).
    let connector = {
        let (lp2, o, totals, open, next_id, sending) = (
            lp.clone(),
            o.clone(),
            totals.clone(),
            open.clone(),
            next_id.clone(),
            sending.clone(),
        );
        Timer::new(&lp, Duration::ZERO, Duration::from_millis(5), move |_| {
            let mut batch = 0;
            while next_id.get() < o.connections
                && totals.borrow().connecting < o.batch
                && batch < o.batch
            {
                batch += 1;
                let id = next_id.get() as u64;
                next_id.set(next_id.get() + 1);
                connect(&lp2, &o, id, &totals, &open, &sending);
            }
        })
    };
    connector.start();

    // Once every connection is open (or failed), the echo phase starts on all of
    // them; after `--seconds` each closes once its echoes are in.
    let phase = {
        let (lp2, o, totals, open, sending) = (
            lp.clone(),
            o.clone(),
            totals.clone(),
            open.clone(),
            sending.clone(),
        );
        let started = Cell::new(false);
        let stopper: RefCell<Option<Timer>> = RefCell::new(None);
        let every = Duration::from_millis(10);
        Timer::new(&lp, every, every, move |_| {
            let t = totals.borrow();
            if started.get() || t.established + t.failed < o.connections {
                return;
            }
            drop(t);
            started.set(true);
            eprintln!(
                "soak_client: {:.1}s all {} open: echoing for {}s",
                started_at.elapsed().as_secs_f64(),
                o.connections,
                o.seconds.as_secs_f64()
            );
            sending.set(true);
            for (ws, conn) in open.borrow().iter() {
                for _ in 0..o.window {
                    let seq = conn.sent.get();
                    ws.queue_binary(&message(conn.id, seq, o.size)).ok();
                    conn.sent.set(seq + 1);
                }
            }
            let (open, sending) = (open.clone(), sending.clone());
            let timer = Timer::new(&lp2, o.seconds, Duration::ZERO, move |_| {
                sending.set(false);
                for (ws, conn) in open.borrow().iter() {
                    if conn.received.get() == conn.sent.get() {
                        ws.close(Some(1000), "").ok();
                    }
                }
            });
            timer.start();
            *stopper.borrow_mut() = Some(timer);
        })
    };
    phase.start();
    // A progress line every 5 s, and the exit once every connection is over.
    let ticker = {
        let (lp2, totals, o) = (lp.clone(), totals.clone(), o.clone());
        let every = Duration::from_secs(5);
        Timer::new(&lp, every, every, move |_| {
            let t = totals.borrow();
            eprintln!(
                "soak_client: {:.0}s established {} echoed {} closed {}",
                started_at.elapsed().as_secs_f64(),
                t.established,
                t.echoed,
                t.closed_ok + t.closed_bad
            );
            if t.closed_ok + t.closed_bad + t.failed >= o.connections {
                lp2.break_all();
            }
        })
    };
    ticker.start();
    let watchdog = {
        let lp2 = lp.clone();
        let grace = Duration::from_secs(120);
        Timer::new(
            &lp,
            o.seconds.saturating_add(grace),
            Duration::ZERO,
            move |_| {
                eprintln!("soak_client: watchdog: giving up");
                lp2.break_all();
            },
        )
    };
    watchdog.start();
    let finisher = {
        let (lp2, totals, o) = (lp.clone(), totals.clone(), o.clone());
        let every = Duration::from_millis(100);
        Timer::new(&lp, every, every, move |_| {
            let t = totals.borrow();
            if t.closed_ok + t.closed_bad + t.failed >= o.connections {
                lp2.break_all();
            }
        })
    };
    finisher.start();
    lp.run();
    drop((connector, phase, ticker, watchdog, finisher));

    let t = totals.borrow();
    let secs = started_at.elapsed().as_secs_f64();
    println!(
        "connections {} established {} failed {} closed_1000 {} closed_other {} echoed {} ({:.0}/s over {:.1}s) out_of_order {}",
        o.connections,
        t.established,
        t.failed,
        t.closed_ok,
        t.closed_bad,
        t.echoed,
        t.echoed as f64 / secs,
        secs,
        t.out_of_order
    );
    let ok = t.established == o.connections
        && t.failed == 0
        && t.closed_ok == o.connections
        && t.out_of_order == 0
        && t.echoed > 0;
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn connect(
    lp: &Loop,
    o: &Rc<Options>,
    id: u64,
    totals: &Rc<RefCell<Totals>>,
    open: &Open,
    sending: &Rc<Cell<bool>>,
) {
    let stream = match TcpStream::connect((o.host.as_str(), o.port)) {
        Ok(stream) => stream,
        Err(err) => {
            eprintln!("soak_client: connect {id}: {err}");
            totals.borrow_mut().failed += 1;
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    totals.borrow_mut().connecting += 1;
    let request = ClientRequest::new(format!("{}:{}", o.host, o.port), "/");
    let (lp2, o2, totals2, open2, sending2) = (
        lp.clone(),
        o.clone(),
        totals.clone(),
        open.clone(),
        sending.clone(),
    );
    let options = HandshakeOptions::default().timeout(Duration::from_secs(30));
    upgrade::upgrade(lp, stream, &request, options, move |result| {
        totals2.borrow_mut().connecting -= 1;
        let upgraded = match result {
            Ok(upgraded) => upgraded,
            Err(err) => {
                let cause = std::error::Error::source(&err).map(|c| format!(": {c}"));
                eprintln!(
                    "soak_client: handshake {id}: {err}{}",
                    cause.unwrap_or_default()
                );
                totals2.borrow_mut().failed += 1;
                return;
            }
        };
        let conn = Rc::new(Conn {
            id,
            sent: Cell::new(0),
            received: Cell::new(0),
        });
        let size = o2.size;
        let (c1, t1, s1) = (conn.clone(), totals2.clone(), sending2.clone());
        let t2 = totals2.clone();
        let params: Params = upgraded
            .into_params()
            .event_loop(&lp2)
            .on_msg_recv(move |ws, _rsv, opcode, msg, _| {
                if opcode != OpCode::Binary {
                    return;
                }
                let expected = message(c1.id, c1.received.get(), size);
                let mut t = t1.borrow_mut();
                if msg != expected.as_slice() {
                    t.out_of_order += 1;
                }
                t.echoed += 1;
                drop(t);
                c1.received.set(c1.received.get() + 1);
                if s1.get() {
                    let seq = c1.sent.get();
                    ws.queue_binary(&message(c1.id, seq, size)).ok();
                    c1.sent.set(seq + 1);
                } else if c1.received.get() == c1.sent.get() {
                    ws.close(Some(1000), "").ok();
                }
            })
            .on_close(move |_ws, code| {
                let mut t = t2.borrow_mut();
                if code == 1000 {
                    t.closed_ok += 1;
                } else {
                    t.closed_bad += 1;
                }
            });
        let ws = match Client::new(params) {
            Ok(ws) => ws,
            Err(err) => {
                eprintln!("soak_client: {}", report::Report(&err));
                totals2.borrow_mut().failed += 1;
                return;
            }
        };
        totals2.borrow_mut().established += 1;
        open2.borrow_mut().push((ws, conn));
    });
}
