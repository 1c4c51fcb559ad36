//! The Perl SYNOPSIS ported: a WebSocket echo server on 127.0.0.1.
//!
//! ```text
//! cargo run --release --example echo_server -- [--port 8080] [--host 127.0.0.1]
//!     [--buffering 0|1] [--max-recv-size BYTES] [--max-queued-bytes BYTES]
//!     [--frame-callbacks] [--trace] [--commands] [--close-timeout SECS]
//!     [--deflate | --deflate-takeover] [--deflate-level 0-9]
//!     [--tls-cert FILE --tls-key FILE [--tls-port N]] [--safe-defaults]
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
//!
//! `--tls-cert FILE --tls-key FILE` (PEM: the chain, leaf first, and its key; built
//! with `--features tls`) serves `wss://` on `--port`; with `--tls-port N` as well,
//! `ws://` stays on `--port` and `wss://` is on port N, both from the one loop (a
//! second line `listening on HOST:N (wss)`).
//!
//! Connections come from a [`Listener`]. Its caps (connections and handshakes, in
//! total and per client address), keepalive pings and message timeout are lifted
//! here, because the benchmarks open 10,000 connections from one address and send
//! large messages; `--safe-defaults` keeps the library's defaults, as a server on the
//! open internet should. The cap of 131,072 frames per message stays (Autobahn 9.x
//! sends 65,537).

#[path = "shared/deflate_flag.rs"]
mod deflate_flag;
#[path = "shared/report.rs"]
mod report;
#[path = "shared/tls_flag.rs"]
mod tls_flag;

use std::cell::Cell;
use std::io::{self, Write};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use net_websocket_ev::ev::{Loop, Signal, WatcherError};
use net_websocket_ev::websocket::upgrade::HandshakeOptions;
use net_websocket_ev::{Error, ListenParams, Listener, OpCode, Params, Server, WebSocket};
use report::Report;

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
    /// `--tls-cert`, `--tls-key`: serve wss://.
    tls_cert: Option<String>,
    tls_key: Option<String>,
    /// `--tls-port`: wss:// there, ws:// on `port`.
    tls_port: Option<u16>,
    /// `--safe-defaults`: the listener's caps, keepalive and message timeout.
    safe_defaults: bool,
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
        tls_cert: None,
        tls_key: None,
        tls_port: None,
        safe_defaults: false,
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
            "--safe-defaults" => options.safe_defaults = true,
            "--deflate" => options.deflate = Some(false),
            "--deflate-takeover" => options.deflate = Some(true),
            "--deflate-level" => {
                options.deflate_level = value("--deflate-level")?
                    .parse()
                    .ok()
                    .filter(|level| *level <= 9)
                    .ok_or("--deflate-level: 0 to 9")?
            }
            "--tls-cert" => options.tls_cert = Some(value("--tls-cert")?),
            "--tls-key" => options.tls_key = Some(value("--tls-key")?),
            "--tls-port" => {
                options.tls_port = Some(
                    value("--tls-port")?
                        .parse()
                        .map_err(|e| format!("--tls-port: {e}"))?,
                )
            }
            "-h" | "--help" => {
                return Err(
                    "usage: echo_server [--port N] [--host ADDR] [--buffering 0|1] \
                    [--max-recv-size BYTES] [--max-queued-bytes BYTES] [--frame-callbacks] \
                    [--trace] [--commands] [--close-timeout SECS] \
                    [--deflate | --deflate-takeover] [--deflate-level 0-9] \
                    [--tls-cert FILE --tls-key FILE [--tls-port N]] [--safe-defaults]"
                        .into(),
                )
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if options.tls_port.is_some() && options.tls_cert.is_none() {
        return Err("--tls-port needs --tls-cert and --tls-key".into());
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
    let tls = match tls_flag::ServerTlsFlag::load(
        options.tls_cert.as_deref(),
        options.tls_key.as_deref(),
    ) {
        Ok(tls) => tls,
        Err(message) => {
            eprintln!("echo_server: {message}");
            return ExitCode::from(2);
        }
    };
    let lp = match Loop::default_loop() {
        Ok(lp) => lp,
        Err(err) => {
            eprintln!("echo_server: {err}");
            return ExitCode::FAILURE;
        }
    };
    let options = Rc::new(options);
    // ws:// and wss:// on two ports, or one of them on --port.
    let ports = match options.tls_port {
        Some(tls_port) => vec![
            (options.port, tls_flag::ServerTlsFlag::default()),
            (tls_port, tls),
        ],
        None => vec![(options.port, tls)],
    };
    let mut listeners = Vec::new();
    for (port, tls) in ports {
        match serve(&lp, port, tls, &options) {
            Ok(listener) => listeners.push(listener),
            Err(message) => {
                eprintln!("echo_server: {message}");
                return ExitCode::FAILURE;
            }
        }
    }

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
    drop(listeners);
    ExitCode::SUCCESS
}

/// Listens on `port` and runs the opening handshake (TLS first, with a certificate)
/// of every connection accepted there; prints `listening on HOST:PORT`.
fn serve(
    lp: &Loop,
    port: u16,
    tls: tls_flag::ServerTlsFlag,
    options: &Rc<Options>,
) -> Result<Listener, String> {
    let mut handshake = handshake_options(options);
    tls.apply(&mut handshake);
    let (connect_options, trace) = (options.clone(), options.trace);
    let mut params = ListenParams::new((options.host.as_str(), port))
        .event_loop(lp)
        .handshake(handshake)
        .on_connect(move |accepted| {
            if let Err(err) = Server::new(echo_params(accepted.into_params(), &connect_options)) {
                eprintln!("echo_server: {}", Report(&err));
            }
        })
        .on_error(move |err, _peer| {
            trace_line(trace, || {
                format!(
                    r#"{{"event":"handshake_failed","error":{:?}}}"#,
                    Report(err).to_string()
                )
            })
        });
    if !options.safe_defaults {
        // The benchmarks open 10,000 idle connections from one address and send
        // large messages that must not be cut by the message timeout. The
        // fragment cap stays: 131,072 per message lets Autobahn's 9.x (65,537) pass.
        params = params
            .max_connections(None)
            .max_handshakes(None)
            .max_handshakes_per_ip(None)
            .max_connections_per_ip(None)
            .keepalive(None)
            .message_timeout(None);
    }
    let listener = Listener::new(params)
        .map_err(|err| format!("cannot listen on {}:{port}: {err}", options.host))?;
    let wss = if tls.is_on() && options.tls_port.is_some() {
        " (wss)"
    } else {
        ""
    };
    println!("listening on {}{wss}", listener.local_addr());
    let _ = io::stdout().flush();
    Ok(listener)
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
        eprintln!("echo_server: echo failed: {}", Report(&err));
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
