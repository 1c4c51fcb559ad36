//! The reference for `scripts/bench-tls.sh`: a wss:// echo server built the usual
//! way in Rust, tokio-tungstenite over tokio-rustls (rustls with the ring provider,
//! TLS 1.3 only), echoing every text and binary message with its opcode.
//!
//! ```text
//! tls-ref --cert FILE --key FILE [--port 8443]
//! ```
//! `--cert` is a PEM chain (the server's certificate first), `--key` its PEM private
//! key (PKCS#8, SEC1 or PKCS#1). Port 0 picks a free port; the line
//! `listening on 127.0.0.1:PORT` on stdout (flushed) says which.
//!
//! It runs on tokio's current_thread runtime: one thread for every connection, as
//! our server runs every connection on one libev loop, so that server CPU per
//! message compares like with like. One task per connection; pings are answered by
//! tungstenite, a close is answered and ends the task.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::Message;

const USAGE: &str = "usage: tls-ref --cert FILE --key FILE [--port 8443]";

fn main() -> ExitCode {
    let (port, cert, key) = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(msg) => {
            eprintln!("tls-ref: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let config = match server_config(&cert, &key) {
        Ok(config) => config,
        Err(msg) => {
            eprintln!("tls-ref: {msg}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("tls-ref: tokio runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(port, TlsAcceptor::from(Arc::new(config)))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tls-ref: {err}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<(u16, String, String), String> {
    let (mut port, mut cert, mut key) = (8443, None, None);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or(format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--port" => port = value.parse().map_err(|_| format!("--port: {value}"))?,
            "--cert" => cert = Some(value),
            "--key" => key = Some(value),
            _ => return Err(format!("unknown argument {arg}")),
        }
    }
    match (cert, key) {
        (Some(cert), Some(key)) => Ok((port, cert, key)),
        _ => Err("--cert and --key are required".into()),
    }
}

/// TLS 1.3 only, ring, no client authentication.
fn server_config(cert: &str, key: &str) -> Result<ServerConfig, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{cert}: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{key}: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| format!("TLS 1.3: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("certificate and key: {e}"))
}

async fn serve(port: u16, acceptor: TlsAcceptor) -> std::io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {addr}")?;
    stdout.flush()?;
    drop(stdout);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of descriptors and the like: drop this one, keep serving.
            Err(err) => {
                eprintln!("tls-ref: accept: {err}");
                continue;
            }
        };
        tokio::spawn(echo(stream, peer, acceptor.clone()));
    }
}

/// One connection: TLS handshake, WebSocket upgrade, then every data message back.
/// Errors end the connection only (they are the peer's doing).
async fn echo(stream: TcpStream, peer: SocketAddr, acceptor: TlsAcceptor) {
    let _ = stream.set_nodelay(true);
    let tls = match acceptor.accept(stream).await {
        Ok(tls) => tls,
        Err(err) => {
            eprintln!("tls-ref: {peer}: TLS handshake: {err}");
            return;
        }
    };
    let mut ws = match tokio_tungstenite::accept_async(tls).await {
        Ok(ws) => ws,
        Err(err) => {
            eprintln!("tls-ref: {peer}: WebSocket handshake: {err}");
            return;
        }
    };
    while let Some(message) = ws.next().await {
        let message = match message {
            Ok(message) => message,
            Err(_) => return,
        };
        if matches!(message, Message::Text(_) | Message::Binary(_))
            && ws.send(message).await.is_err()
        {
            return;
        }
    }
}
