//! Uploads one large binary message made piece by piece by a producer that pauses
//! between pieces (as one reading a slow source would), then checks the echo.
//! `cargo run --example upload -- ws://127.0.0.1:8080/ [--size BYTES]` (50 MiB by
//! default; `examples/echo_server` accepts 16 MiB unless given `--max-recv-size`).
//!
//! Each piece fills the buffer `queue_fragmented` offers (64 KiB); the producer then
//! returns `Fragment::Pause`, and a timer resumes it a millisecond later. Prints
//! `sent BYTES in PIECES pieces`, `echo BYTES bytes ok` (or `MISMATCH`) and
//! `closed CODE`; exits 0 when the echo matched and the close was 1000.

#[path = "shared/report.rs"]
mod report;

use std::{cell::Cell, process::ExitCode, rc::Rc, time::Duration};

use net_websocket_ev::ev::{Loop, Timer};
use net_websocket_ev::websocket::{self, ConnectOptions};
use net_websocket_ev::{Client, Fragment, OpCode};
use report::Report;

fn byte_at(i: usize) -> u8 {
    (i * 31 + i / 251) as u8
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (url, size) = match args.as_slice() {
        [url] => (url.clone(), 50 << 20),
        [url, flag, size] if flag == "--size" && size.parse::<usize>().is_ok() => {
            (url.clone(), size.parse().unwrap_or_default())
        }
        _ => {
            eprintln!("usage: upload ws[s]://HOST:PORT/PATH [--size BYTES]");
            return ExitCode::from(2);
        }
    };
    let lp = Loop::default_loop().expect("the default loop");
    let (passed, lp2) = (Rc::new(Cell::new(false)), lp.clone());
    let (echo_ok, closed_ok) = (passed.clone(), passed.clone());
    let started = websocket::connect(&lp, &url, ConnectOptions::new(), move |result| {
        let connected = match result {
            Ok(connected) => connected,
            Err(err) => return eprintln!("upload: {}", Report(&err)),
        };
        let params = connected.into_params().fragment_size(64 << 10);
        let ws = Client::new(
            params
                .max_recv_size(size.max(125) as u64) // the echo, or a close when empty
                .on_msg_recv(move |ws, _, _, msg, _| {
                    let same = msg.len() == size && (0..size).all(|i| msg[i] == byte_at(i));
                    let verdict = if same { "ok" } else { "MISMATCH" };
                    println!("echo {} bytes {verdict}", msg.len());
                    echo_ok.set(same);
                    ws.close(Some(1000), "").ok();
                })
                .on_close(move |_, code| {
                    println!("closed {code}");
                    closed_ok.set(closed_ok.get() && code == 1000);
                }),
        )
        .expect("a client on the connected socket");
        let resume = ws.clone();
        let timer = Timer::new(&lp2, Duration::from_millis(1), Duration::ZERO, move |_| {
            resume.resume_fragmented().ok();
        });
        let (mut sent, mut pieces, mut just_sent) = (0, 0, false);
        let producer = move |_: &_, buf: &mut [u8]| {
            just_sent = !just_sent;
            if !just_sent {
                timer.start(); // nothing "ready" yet: asked again in a millisecond
                return Fragment::Pause;
            }
            let n = buf.len().min(size - sent);
            for (i, b) in buf[..n].iter_mut().enumerate() {
                *b = byte_at(sent + i);
            }
            (sent, pieces) = (sent + n, pieces + 1);
            if sent < size {
                return Fragment::Data(n);
            }
            println!("sent {sent} bytes in {pieces} pieces");
            Fragment::Eof(n)
        };
        ws.queue_fragmented(producer, OpCode::Binary)
            .expect("queued");
    });
    if let Err(err) = started {
        eprintln!("upload: {}", Report(&err));
        return ExitCode::FAILURE;
    }
    lp.run();
    ExitCode::from(u8::from(!passed.get()))
}
