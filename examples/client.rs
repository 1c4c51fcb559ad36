//! A WebSocket client: connects to a `ws://` or `wss://` URL, sends messages, prints
//! the replies, and closes cleanly.
//!
//! ```text
//! cargo run --example client -- ws://127.0.0.1:8080/ [--message TEXT]...
//!     [--binary-size BYTES]... [--expect-echo] [--close-code 1000]
//!     [--close-reason TEXT] [--timeout SECS] [--max-queued-bytes BYTES]
//!     [--deflate | --deflate-takeover] [--ca FILE] [--insecure]
//! cargo run --release --example client -- --autobahn ws://127.0.0.1:9001 [--agent NAME]
//!     [--deflate | --deflate-takeover]
//! ```
//! Without `--message` or `--binary-size` it sends each line of stdin as a text message.
//! Each reply prints one line (`text <len> <text>` or `binary <len>`). With
//! `--expect-echo` every reply must equal what was sent, in order (`echo ok ...`). It
//! closes once every reply is in, and prints `closed <code>`. The exit status is 0 when
//! the server answered our close with the same code and every expectation held.
//!
//! `--autobahn BASE` is the Autobahn|Testsuite's client protocol against its fuzzing
//! server: the case count from `BASE/getCaseCount`, then each case at
//! `BASE/runCase?case=N&agent=NAME` echoing every message (one line per case,
//! `case N/COUNT closed CODE`), then `BASE/updateReports?agent=NAME`. `--timeout` bounds
//! each connection; the first connection that fails or times out ends the run (status 1).
//!
//! `--deflate` offers permessage-deflate (RFC 7692) without context takeover either
//! way; `--deflate-takeover` offers it letting both ends keep their context. Every
//! message is then sent compressed (threshold 0) if the server accepts; the line
//! `extension permessage-deflate` on stderr says it did.
//!
//! `wss://` URLs (built with `--features tls`) check the server's certificate
//! against the built-in Mozilla roots and, with `--ca FILE`, that CA too (PEM).
//! `--insecure` accepts any certificate: for tests only.

#[path = "shared/deflate_flag.rs"]
mod deflate_flag;
#[path = "shared/tls_flag.rs"]
mod tls_flag;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io::{self, Read};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use net_websocket_ev::ev::{Events, Io, Loop, Timer};
use net_websocket_ev::handshake::ClientRequest;
use net_websocket_ev::websocket::upgrade::{self, HandshakeOptions};
use net_websocket_ev::{Client, OpCode, Params, WebSocket};

struct Options {
    url: String,
    messages: Vec<(OpCode, Vec<u8>)>,
    expect_echo: bool,
    close_code: u16,
    close_reason: String,
    timeout: Duration,
    /// `Params::max_queued_bytes`; None: the library's default.
    max_queued_bytes: Option<usize>,
    /// `--autobahn BASE` (then `url` is unused).
    autobahn: Option<String>,
    agent: String,
    /// `--deflate` (Some(false)) or `--deflate-takeover` (Some(true)).
    deflate: Option<bool>,
    /// `--ca` and `--insecure`: whom wss:// trusts.
    tls: tls_flag::ClientTlsFlag,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        url: String::new(),
        messages: Vec::new(),
        expect_echo: false,
        close_code: 1000,
        close_reason: String::new(),
        timeout: Duration::from_secs(30),
        max_queued_bytes: None,
        autobahn: None,
        agent: "net-websocket-ev".into(),
        deflate: None,
        tls: tls_flag::ClientTlsFlag::default(),
    };
    let (mut ca, mut insecure) = (None, false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--message" => options
                .messages
                .push((OpCode::Text, value("--message")?.into_bytes())),
            "--binary-size" => {
                let size: usize = value("--binary-size")?
                    .parse()
                    .map_err(|e| format!("--binary-size: {e}"))?;
                options.messages.push((OpCode::Binary, pattern(size)));
            }
            "--expect-echo" => options.expect_echo = true,
            "--close-code" => {
                options.close_code = value("--close-code")?
                    .parse()
                    .map_err(|e| format!("--close-code: {e}"))?
            }
            "--close-reason" => options.close_reason = value("--close-reason")?,
            "--timeout" => {
                let secs: f64 = value("--timeout")?
                    .parse()
                    .map_err(|e| format!("--timeout: {e}"))?;
                options.timeout =
                    Duration::try_from_secs_f64(secs).map_err(|e| format!("--timeout: {e}"))?
            }
            "--max-queued-bytes" => {
                options.max_queued_bytes = Some(
                    value("--max-queued-bytes")?
                        .parse()
                        .map_err(|e| format!("--max-queued-bytes: {e}"))?,
                )
            }
            "--autobahn" => options.autobahn = Some(value("--autobahn")?),
            "--agent" => options.agent = value("--agent")?,
            "--deflate" => options.deflate = Some(false),
            "--deflate-takeover" => options.deflate = Some(true),
            "--ca" => ca = Some(value("--ca")?),
            "--insecure" => insecure = true,
            "-h" | "--help" => return Err(USAGE.into()),
            url if options.url.is_empty() && !url.starts_with("--") => options.url = url.into(),
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if options.url.is_empty() == options.autobahn.is_none() {
        return Err(USAGE.into());
    }
    options.tls = tls_flag::ClientTlsFlag::load(ca.as_deref(), insecure)?;
    Ok(options)
}

const USAGE: &str =
    "usage: client ws[s]://HOST:PORT/PATH [--message TEXT]... [--binary-size BYTES]... \
    [--expect-echo] [--close-code CODE] [--close-reason TEXT] [--timeout SECS] \
    [--max-queued-bytes BYTES] [--deflate | --deflate-takeover] [--ca FILE] [--insecure]\n       \
    client --autobahn ws://HOST:PORT [--agent NAME] [--timeout SECS] [--max-queued-bytes BYTES] \
    [--deflate | --deflate-takeover]";

/// Deterministic, position-dependent bytes, so a reordered or shifted echo shows.
fn pattern(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i * 31 + i / 251) as u8).collect()
}

/// What the session has seen so far.
#[derive(Default)]
struct Session {
    sent: VecDeque<(OpCode, Vec<u8>)>,
    replies: usize,
    input_done: bool,
    closing: bool,
    failures: u32,
    close_code: Option<u16>,
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("client: {message}");
            return ExitCode::from(2);
        }
    };
    let result = match options.autobahn.clone() {
        Some(base) => run_autobahn(&base, &options),
        None => run(options),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("client: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(options: Options) -> Result<ExitCode, String> {
    let lp = Loop::default_loop().map_err(|e| e.to_string())?;
    let options = Rc::new(options);
    let session = Rc::new(RefCell::new(Session::default()));
    let stdin_watcher: Rc<RefCell<Option<Io>>> = Rc::new(RefCell::new(None));
    let result = run_connection(
        &lp,
        &options.url,
        &options,
        {
            let (options, session) = (options.clone(), session.clone());
            move |params| client_params(params, &options, &session)
        },
        {
            let (lp, options, session, stdin_watcher) = (
                lp.clone(),
                options.clone(),
                session.clone(),
                stdin_watcher.clone(),
            );
            move |ws| start_sending(&lp, ws, &options, &session, &stdin_watcher)
        },
    );
    stdin_watcher.borrow_mut().take();
    result?;
    let session = session.borrow();
    let clean = session.close_code == Some(options.close_code);
    if !clean {
        eprintln!(
            "client: expected the server to answer close {} but got {:?}",
            options.close_code, session.close_code
        );
    }
    Ok(
        if clean && session.failures == 0 && session.sent.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        },
    )
}

/// Connects to `url`, runs the opening handshake on `lp`, starts a client with the
/// parameters `setup` completes, hands it to `opened`, and runs `lp` until the
/// connection is over. Err: the connection, the handshake or the client could not
/// start, or the options' timeout passed first.
fn run_connection(
    lp: &Loop,
    url: &str,
    options: &Options,
    setup: impl FnOnce(Params) -> Params + 'static,
    opened: impl FnOnce(&WebSocket) + 'static,
) -> Result<(), String> {
    let (request, host, port) = ClientRequest::from_url(url).map_err(|e| e.to_string())?;
    let stream = TcpStream::connect((host.as_str(), port))
        .map_err(|e| format!("connect {host}:{port}: {e}"))?;
    let _ = stream.set_nodelay(true);

    let timed_out = Rc::new(Cell::new(false));
    let deadline = Timer::new(lp, options.timeout, Duration::ZERO, {
        let (lp, timed_out) = (lp.clone(), timed_out.clone());
        move |_| {
            timed_out.set(true);
            lp.break_all();
        }
    });
    deadline.start();
    lp.unref(); // the deadline alone must not keep the loop running

    let failed = Rc::new(RefCell::new(None));
    {
        let (lp2, failed) = (lp.clone(), failed.clone());
        upgrade::upgrade(
            lp,
            stream,
            &request,
            handshake_options(options),
            move |result| {
                // UpgradeError's Display leaves the cause to source().
                let started = result
                    .map_err(|e| match std::error::Error::source(&e) {
                        Some(cause) => format!("{e}: {cause}"),
                        None => e.to_string(),
                    })
                    .and_then(|upgraded| {
                        #[cfg(feature = "deflate")]
                        if upgraded.compression.is_some() {
                            eprintln!("extension permessage-deflate");
                        }
                        Client::new(setup(upgraded.into_params().event_loop(&lp2)))
                            .map_err(|e| e.to_string())
                    });
                match started {
                    Ok(ws) => opened(&ws),
                    Err(err) => *failed.borrow_mut() = Some(err),
                }
            },
        );
    }
    lp.run();
    lp.add_ref();
    drop(deadline);
    if let Some(err) = failed.borrow_mut().take() {
        return Err(err);
    }
    if timed_out.get() {
        return Err("timed out".into());
    }
    Ok(())
}

/// `--autobahn BASE`: every case of the fuzzing server at `BASE`, one connection each,
/// echoing every text and binary message, then the report update.
fn run_autobahn(base: &str, options: &Options) -> Result<ExitCode, String> {
    let lp = Loop::default_loop().map_err(|e| e.to_string())?;
    let base = base.trim_end_matches('/');
    let max_queued = options.max_queued_bytes;

    let count = Rc::new(Cell::new(None));
    run_connection(
        &lp,
        &format!("{base}/getCaseCount"),
        options,
        {
            let count = count.clone();
            move |params| {
                params.on_msg_recv(move |_ws, _rsv, opcode, msg, _status| {
                    if opcode == OpCode::Text {
                        count.set(std::str::from_utf8(msg).ok().and_then(|n| n.parse().ok()));
                    }
                })
            }
        },
        |_ws| {},
    )
    .map_err(|e| format!("getCaseCount: {e}"))?;
    let count: u32 = count.get().ok_or("getCaseCount: no case count received")?;

    for case in 1..=count {
        let closed = Rc::new(Cell::new(None));
        run_connection(
            &lp,
            &format!("{base}/runCase?case={case}&agent={}", options.agent),
            options,
            {
                let closed = closed.clone();
                move |params| {
                    queue_limit(params, max_queued)
                        .on_msg_recv(|ws, _rsv, opcode, msg, _status| {
                            if matches!(opcode, OpCode::Text | OpCode::Binary) {
                                if let Err(err) = ws.queue_msg(msg, opcode) {
                                    eprintln!("client: echo failed: {err}");
                                }
                            }
                        })
                        .on_close(move |_ws, code| closed.set(Some(code)))
                }
            },
            |_ws| {},
        )
        .map_err(|e| format!("case {case}: {e}"))?;
        match closed.get() {
            Some(code) => println!("case {case}/{count} closed {code}"),
            None => return Err(format!("case {case}: the loop ended before on_close")),
        }
    }

    run_connection(
        &lp,
        &format!("{base}/updateReports?agent={}", options.agent),
        options,
        |params| params,
        |_ws| {},
    )
    .map_err(|e| format!("updateReports: {e}"))?;
    println!("{count} cases run, reports updated");
    Ok(ExitCode::SUCCESS)
}

/// The handshake's settings: compression as the options say.
fn handshake_options(options: &Options) -> HandshakeOptions {
    let mut handshake = deflate_flag::handshake_options(options.deflate, 1, "client");
    options.tls.apply(&mut handshake);
    handshake
}

/// `--max-queued-bytes`, when given.
fn queue_limit(params: Params, max_queued_bytes: Option<usize>) -> Params {
    match max_queued_bytes {
        Some(bytes) => params.max_queued_bytes(bytes),
        None => params,
    }
}

fn client_params(params: Params, options: &Rc<Options>, session: &Rc<RefCell<Session>>) -> Params {
    let (on_msg, on_close) = (session.clone(), session.clone());
    let options = options.clone();
    queue_limit(params, options.max_queued_bytes)
        .on_msg_recv(move |ws, _rsv, opcode, msg, _status| {
            if !matches!(opcode, OpCode::Text | OpCode::Binary) {
                return;
            }
            match opcode {
                OpCode::Text => println!("text {} {}", msg.len(), String::from_utf8_lossy(msg)),
                _ => println!("binary {}", msg.len()),
            }
            let mut s = on_msg.borrow_mut();
            s.replies += 1;
            if options.expect_echo {
                match s.sent.pop_front() {
                    Some((sent_op, sent)) if sent_op == opcode && sent == msg => {
                        println!(
                            "echo ok {} {}",
                            if opcode == OpCode::Text {
                                "text"
                            } else {
                                "binary"
                            },
                            msg.len()
                        )
                    }
                    other => {
                        s.failures += 1;
                        println!(
                            "echo MISMATCH: got {opcode:?} of {} bytes, expected {:?}",
                            msg.len(),
                            other.map(|(op, data)| (op, data.len()))
                        );
                    }
                }
            } else {
                s.sent.pop_front();
            }
            drop(s);
            maybe_close(ws, &options, &on_msg);
        })
        .on_close(move |_ws, code| {
            println!("closed {code}");
            on_close.borrow_mut().close_code = Some(code);
        })
}

fn start_sending(
    lp: &Loop,
    ws: &WebSocket,
    options: &Rc<Options>,
    session: &Rc<RefCell<Session>>,
    stdin_watcher: &Rc<RefCell<Option<Io>>>,
) {
    if !options.messages.is_empty() {
        for (opcode, data) in &options.messages {
            send(ws, session, *opcode, data.clone());
        }
        session.borrow_mut().input_done = true;
        maybe_close(ws, options, session);
        return;
    }
    // Lines of stdin, as they come.
    let (ws, options, session) = (ws.clone(), options.clone(), session.clone());
    let mut pending = Vec::new();
    let slot = stdin_watcher.clone();
    let watcher = Io::new(lp, io::stdin().as_raw_fd(), Events::READ, move |_| {
        let mut buf = [0u8; 4096];
        let n = io::stdin().lock().read(&mut buf).unwrap_or(0);
        pending.extend_from_slice(&buf[..n]);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            send(&ws, &session, OpCode::Text, line[..line.len() - 1].to_vec());
        }
        if n == 0 {
            if !pending.is_empty() {
                send(&ws, &session, OpCode::Text, std::mem::take(&mut pending));
            }
            session.borrow_mut().input_done = true;
            if let Some(io) = slot.borrow().as_ref() {
                io.stop();
            }
            maybe_close(&ws, &options, &session);
        }
    });
    let watcher = match watcher {
        Ok(watcher) => watcher,
        Err(err) => {
            eprintln!("client: cannot watch stdin: {err}");
            return;
        }
    };
    watcher.start();
    *stdin_watcher.borrow_mut() = Some(watcher);
}

fn send(ws: &WebSocket, session: &Rc<RefCell<Session>>, opcode: OpCode, data: Vec<u8>) {
    match ws.queue_msg(&data, opcode) {
        Ok(()) => session.borrow_mut().sent.push_back((opcode, data)),
        Err(err) => {
            eprintln!("client: cannot send: {err}");
            session.borrow_mut().failures += 1;
        }
    }
}

/// Closes once the input is over and every message has its reply.
fn maybe_close(ws: &WebSocket, options: &Options, session: &Rc<RefCell<Session>>) {
    let mut s = session.borrow_mut();
    if s.input_done && s.sent.is_empty() && !s.closing {
        s.closing = true;
        drop(s);
        if let Err(err) = ws.close(Some(options.close_code), &options.close_reason) {
            eprintln!("client: close failed: {err}");
        }
    }
}
