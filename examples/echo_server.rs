//! The Perl SYNOPSIS ported: a WebSocket echo server on 127.0.0.1.
//!
//! ```text
//! cargo run --release --example echo_server -- [--port 8080] [--host 127.0.0.1]
//!     [--buffering 0|1] [--max-recv-size BYTES] [--max-queued-bytes BYTES]
//!     [--frame-callbacks] [--trace] [--commands] [--close-timeout SECS]
//!     [--deflate | --deflate-takeover] [--deflate-level 0-9]
//! ```
//! Every message is echoed with its opcode (pings are answered by the library; their
//! echo is a pong). `--trace` prints one JSON object per line on stderr for every
//! callback, with all its arguments; `--commands` makes a text message
//! `!close CODE REASON` close the connection from the server. Port 0 picks a free
//! port; the line `listening on HOST:PORT` on stdout says which. The send queue's limit
//! (`--max-queued-bytes`) defaults to twice `--max-recv-size`, so the echo of the
//! largest message accepted fits behind one still leaving.
//!
//! `--deflate` accepts permessage-deflate (RFC 7692) without context takeover in
//! either direction (nothing is kept between messages); `--deflate-takeover`
//! accepts it with context takeover both ways (better ratios, about 300 KiB per
//! connection). Either way every echoed message is compressed (threshold 0), at
//! level 1 unless `--deflate-level` says otherwise.
//! Without them compression is declined, as by default.

#[path = "shared/deflate_flag.rs"]
mod deflate_flag;

use std::cell::Cell;
use std::io::{self, Write};
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use net_websocket_ev::ev::{Events, Io, Loop, Signal, WatcherError};
use net_websocket_ev::websocket::upgrade::{self, HandshakeOptions};
use net_websocket_ev::{Error, OpCode, Params, Server, WebSocket};

#[derive(Debug, Clone)]
struct Options {
    host: String,
    port: u16,
    buffering: bool,
    max_recv_size: u64,
    /// None: twice `max_recv_size`.
    max_queued_bytes: Option<usize>,
    frame_callbacks: bool,
    trace: bool,
    commands: bool,
    close_timeout: Duration,
    /// `--deflate` (Some(false)) or `--deflate-takeover` (Some(true)).
    deflate: Option<bool>,
    /// `--deflate-level`.
    deflate_level: u8,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        host: "127.0.0.1".into(),
        port: 8080,
        buffering: true,
        max_recv_size: 16 << 20,
        max_queued_bytes: None,
        frame_callbacks: false,
        trace: false,
        commands: false,
        close_timeout: Duration::from_secs(10),
        deflate: None,
        deflate_level: 1,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--host" => options.host = value("--host")?,
            "--port" => {
                options.port = value("--port")?
                    .parse()
                    .map_err(|e| format!("--port: {e}"))?
            }
            "--buffering" => {
                options.buffering = match value("--buffering")?.as_str() {
                    "0" => false,
                    "1" => true,
                    other => return Err(format!("--buffering takes 0 or 1, not {other:?}")),
                }
            }
            "--max-recv-size" => {
                options.max_recv_size = value("--max-recv-size")?
                    .parse()
                    .map_err(|e| format!("--max-recv-size: {e}"))?
            }
            "--max-queued-bytes" => {
                options.max_queued_bytes = Some(
                    value("--max-queued-bytes")?
                        .parse()
                        .map_err(|e| format!("--max-queued-bytes: {e}"))?,
                )
            }
            "--close-timeout" => {
                let secs: f64 = value("--close-timeout")?
                    .parse()
                    .map_err(|e| format!("--close-timeout: {e}"))?;
                options.close_timeout = Duration::try_from_secs_f64(secs)
                    .map_err(|e| format!("--close-timeout: {e}"))?
            }
            "--frame-callbacks" => options.frame_callbacks = true,
            "--trace" => options.trace = true,
            "--commands" => options.commands = true,
            "--deflate" => options.deflate = Some(false),
            "--deflate-takeover" => options.deflate = Some(true),
            "--deflate-level" => {
                options.deflate_level = value("--deflate-level")?
                    .parse()
                    .ok()
                    .filter(|level| *level <= 9)
                    .ok_or("--deflate-level: 0 to 9")?
            }
            "-h" | "--help" => {
                return Err(
                    "usage: echo_server [--port N] [--host ADDR] [--buffering 0|1] \
                    [--max-recv-size BYTES] [--max-queued-bytes BYTES] [--frame-callbacks] \
                    [--trace] [--commands] [--close-timeout SECS] \
                    [--deflate | --deflate-takeover] [--deflate-level 0-9]"
                        .into(),
                )
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(options)
}

/// The handshake's settings: compression as the options say.
fn handshake_options(options: &Options) -> HandshakeOptions {
    deflate_flag::handshake_options(options.deflate, options.deflate_level, "echo_server")
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("echo_server: {message}");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind((options.host.as_str(), options.port)) {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!(
                "echo_server: cannot listen on {}:{}: {err}",
                options.host, options.port
            );
            return ExitCode::FAILURE;
        }
    };
    if let Err(err) = listener.set_nonblocking(true) {
        eprintln!("echo_server: {err}");
        return ExitCode::FAILURE;
    }
    let lp = match Loop::default_loop() {
        Ok(lp) => lp,
        Err(err) => {
            eprintln!("echo_server: {err}");
            return ExitCode::FAILURE;
        }
    };
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    println!("listening on {addr}");
    let _ = io::stdout().flush();

    let listener = Rc::new(listener);
    let options = Rc::new(options);
    let accepting = listener.clone();
    let accept_lp = lp.clone();
    let acceptor = Io::new(&lp, listener.as_raw_fd(), Events::READ, move |_| {
        while let Ok((stream, _peer)) = accepting.accept() {
            let _ = stream.set_nodelay(true);
            let options = options.clone();
            upgrade::accept(
                &accept_lp,
                stream,
                handshake_options(&options),
                move |result| match result {
                    Ok(upgraded) => {
                        if let Err(err) = Server::new(echo_params(upgraded.into_params(), &options))
                        {
                            eprintln!("echo_server: {err}");
                        }
                    }
                    Err(err) => trace_line(options.trace, || {
                        format!(
                            r#"{{"event":"handshake_failed","error":{:?}}}"#,
                            err.to_string()
                        )
                    }),
                },
            );
        }
    });
    let acceptor = match acceptor {
        Ok(acceptor) => acceptor,
        Err(err) => {
            eprintln!("echo_server: {err}");
            return ExitCode::FAILURE;
        }
    };
    acceptor.start();

    let stop = Rc::new(Cell::new(false));
    let signals: Result<Vec<Signal>, WatcherError> = [libc::SIGINT, libc::SIGTERM]
        .into_iter()
        .map(|signum| {
            let (lp, stop) = (lp.clone(), stop.clone());
            let signal = Signal::new(&lp.clone(), signum, move |_| {
                stop.set(true);
                lp.break_all();
            })?;
            signal.start();
            Ok(signal)
        })
        .collect();
    let signals = match signals {
        Ok(signals) => signals,
        Err(err) => {
            eprintln!("echo_server: {err}");
            return ExitCode::FAILURE;
        }
    };
    lp.run();
    drop(signals);
    ExitCode::SUCCESS
}

/// The echo connection's parameters, mirroring the command line.
fn echo_params(params: Params, options: &Rc<Options>) -> Params {
    let trace = options.trace;
    let commands = options.commands;
    let mut params = params
        .buffering(options.buffering)
        .max_recv_size(options.max_recv_size)
        .max_queued_bytes(options.max_queued_bytes.unwrap_or_else(|| {
            usize::try_from(options.max_recv_size.saturating_mul(2)).unwrap_or(usize::MAX)
        }))
        .close_timeout(Some(options.close_timeout))
        .on_msg_recv(move |ws, rsv, opcode, msg, status| {
            trace_line(trace, || {
                format!(
                    r#"{{"event":"msg_recv","rsv":{},"opcode":{},"len":{},"head":"{}","status":{}}}"#,
                    rsv.bits(),
                    opcode.as_u8(),
                    msg.len(),
                    hex_head(msg),
                    status
                )
            });
            echo(ws, opcode, msg, commands);
        })
        .on_close(move |_ws, code| {
            trace_line(trace, || format!(r#"{{"event":"close","code":{code}}}"#));
        });
    if options.frame_callbacks {
        params = params
            .on_frame_recv_start(move |_ws, fin, rsv, opcode, len| {
                trace_line(trace, || format!(
                        r#"{{"event":"frame_recv_start","fin":{},"rsv":{},"opcode":{},"len":{len}}}"#,
                        u8::from(fin),
                        rsv.bits(),
                        opcode.as_u8()
                    ),
                );
            })
            .on_frame_recv_chunk(move |_ws, data| {
                trace_line(trace, || format!(
                        r#"{{"event":"frame_recv_chunk","len":{},"head":"{}"}}"#,
                        data.len(),
                        hex_head(data)
                    ),
                );
            })
            .on_frame_recv_end(move |_ws| trace_line(trace, || r#"{"event":"frame_recv_end"}"#.to_owned()));
    }
    params
}

#[inline]
fn echo(ws: &WebSocket, opcode: OpCode, msg: &[u8], commands: bool) {
    let result = match opcode {
        OpCode::Text if commands && msg.starts_with(b"!close") => close_command(ws, msg),
        OpCode::Text | OpCode::Binary => ws.queue_msg(msg, opcode),
        // The library answered the ping already; a pong needs no answer.
        _ => Ok(()),
    };
    if let Err(err) = result {
        eprintln!("echo_server: echo failed: {err}");
    }
}

/// `!close CODE REASON`: the server closes with that code and reason.
#[cold]
fn close_command(ws: &WebSocket, msg: &[u8]) -> Result<(), Error> {
    let text = String::from_utf8_lossy(msg);
    let mut words = text.splitn(3, ' ').skip(1);
    let code = words.next().and_then(|c| c.parse().ok()).unwrap_or(1000);
    ws.close(Some(code), words.next().unwrap_or(""))
}

/// Prints one trace line; `line` is only formatted when tracing is on (the echo path
/// must not pay for it).
#[inline]
fn trace_line(enabled: bool, line: impl FnOnce() -> String) {
    if enabled {
        eprintln!("{}", line());
    }
}

fn hex_head(data: &[u8]) -> String {
    data.iter().take(16).map(|b| format!("{b:02x}")).collect()
}
