//! The ceiling of the handshake benchmark (`scripts/bench-handshake.sh`): a
//! single-threaded epoll (mio, edge-triggered) server that accepts a TCP connection,
//! reads `--size` bytes (32 by default), writes them back and closes. No WebSocket, no
//! HTTP: what accepting, one echo and a close cost the kernel and a minimal server.
//!
//! ```text
//! raw-accept PORT [--size 32]
//! ```
//! Prints `listening on 127.0.0.1:PORT` when ready (PORT 0: a free port).

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const LISTENER: Token = Token(usize::MAX);

struct Conn {
    sock: TcpStream,
    /// Bytes received so far (at most `size`), then echoed from here.
    buf: Vec<u8>,
    /// Bytes of the echo written.
    written: usize,
}

fn main() {
    let mut argv = std::env::args().skip(1);
    let port: Option<u16> = argv.next().and_then(|p| p.parse().ok());
    let size: Option<usize> = match (argv.next().as_deref(), argv.next()) {
        (None, _) => Some(32),
        (Some("--size"), Some(s)) => s.parse().ok().filter(|&s| s > 0),
        _ => None,
    };
    let (Some(port), Some(size)) = (port, size) else {
        eprintln!("usage: raw-accept PORT [--size S]");
        std::process::exit(2);
    };
    if let Err(e) = serve(port, size) {
        eprintln!("raw-accept: {e}");
        std::process::exit(1);
    }
}

fn serve(port: u16, size: usize) -> std::io::Result<()> {
    let mut listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    println!("listening on {}", listener.local_addr()?);
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut rbuf = vec![0u8; 64 * 1024];
    let mut events = Events::with_capacity(1024);
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in events.iter() {
            if ev.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut sock, _)) => {
                            let _ = sock.set_nodelay(true);
                            let i = free.pop().unwrap_or_else(|| {
                                conns.push(None);
                                conns.len() - 1
                            });
                            poll.registry().register(
                                &mut sock,
                                Token(i),
                                Interest::READABLE | Interest::WRITABLE,
                            )?;
                            conns[i] = Some(Conn {
                                sock,
                                buf: Vec::with_capacity(size),
                                written: 0,
                            });
                            // The data may already be there.
                            if step(conns[i].as_mut().expect("just set"), &mut rbuf, size) {
                                conns[i] = None;
                                free.push(i);
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        // Out of descriptors and the like: try again on the next event.
                        Err(e) => {
                            eprintln!("raw-accept: accept: {e}");
                            break;
                        }
                    }
                }
                continue;
            }
            let i = ev.token().0;
            let Some(conn) = conns.get_mut(i).and_then(Option::as_mut) else {
                continue;
            };
            if step(conn, &mut rbuf, size) {
                conns[i] = None; // drop: close
                free.push(i);
            }
        }
    }
}

/// Reads until `size` bytes are in, writes them back; true when the connection is
/// done (echoed, or failed) and must be closed.
fn step(c: &mut Conn, rbuf: &mut [u8], size: usize) -> bool {
    while c.buf.len() < size {
        match c.sock.read(rbuf) {
            Ok(0) => return true,
            Ok(n) => {
                // Extra bytes beyond `size` are not the protocol: ignored.
                let take = n.min(size - c.buf.len());
                c.buf.extend_from_slice(&rbuf[..take]);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
    while c.written < size {
        match c.sock.write(&c.buf[c.written..]) {
            Ok(n) => c.written += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
    true
}
