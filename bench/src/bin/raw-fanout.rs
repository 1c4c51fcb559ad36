//! The ceiling of the broadcast benchmark (`scripts/bench-fanout.sh`): broadcast over
//! plain TCP, as a well-written single-threaded C or Rust server would do it.
//!
//! ```text
//! raw-fanout PORT [--size S] [--batch]
//! ```
//! Messages are fixed-size chunks of S bytes (32 by default). Each complete chunk read
//! from any connection is written to every connection (the sender included), in order:
//! one `write` per chunk and connection. `--batch`: one `write` per connection for all
//! the complete chunks that one read brought (fewer, larger TCP segments when the
//! publisher has several messages in flight). What a connection's socket does not take
//! is kept in its output buffer and written when it is writable again (later chunks
//! are appended behind it, so each connection gets every chunk, in order). Epoll (mio,
//! edge-triggered), one shared read buffer.
//! Prints `listening on 127.0.0.1:PORT` when ready (PORT 0: a free port).

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const LISTENER: Token = Token(usize::MAX);
/// A connection whose output buffer grows beyond this is dropped (a reader that
/// stopped reading; never reached by the benchmark's load generator).
const MAX_BACKLOG: usize = 64 << 20;

struct Conn {
    sock: TcpStream,
    /// Bytes of an incomplete chunk received from this connection.
    partial: Vec<u8>,
    /// Bytes not yet taken by the socket, from `out_off` on.
    out: Vec<u8>,
    out_off: usize,
}

fn main() {
    let mut argv = std::env::args().skip(1);
    let port: Option<u16> = argv.next().and_then(|p| p.parse().ok());
    let (mut size, mut batch) = (Some(32), false);
    while let Some(arg) = argv.next() {
        match arg.as_str() {
            "--batch" => batch = true,
            "--size" => size = argv.next().and_then(|s| s.parse().ok()).filter(|&s| s > 0),
            _ => size = None,
        }
    }
    let (Some(port), Some(size)) = (port, size) else {
        eprintln!("usage: raw-fanout PORT [--size S] [--batch]");
        std::process::exit(2);
    };
    if let Err(e) = serve(port, size, batch) {
        eprintln!("raw-fanout: {e}");
        std::process::exit(1);
    }
}

struct Server {
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    /// Indices of the connections in use (the broadcast iterates over these).
    live: Vec<usize>,
    size: usize,
    /// One write per read's worth of chunks instead of one per chunk.
    batch: bool,
}

impl Server {
    fn close(&mut self, i: usize) {
        if self.conns[i].take().is_some() {
            self.free.push(i);
            if let Some(at) = self.live.iter().position(|&j| j == i) {
                self.live.swap_remove(at);
            }
        }
    }

    /// Writes `data` (whole chunks) to every connection.
    fn broadcast(&mut self, data: &[u8]) {
        let mut dead = Vec::new();
        for &i in &self.live {
            let Some(c) = self.conns[i].as_mut() else {
                continue;
            };
            if c.out_off < c.out.len() {
                if c.out.len() - c.out_off + data.len() > MAX_BACKLOG {
                    dead.push(i);
                } else {
                    c.out.extend_from_slice(data);
                }
                continue;
            }
            let mut sent = 0;
            while sent < data.len() {
                match c.sock.write(&data[sent..]) {
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => {
                        dead.push(i);
                        break;
                    }
                }
            }
            if sent < data.len() {
                c.out.clear();
                c.out_off = 0;
                c.out.extend_from_slice(&data[sent..]);
            }
        }
        for i in dead {
            self.close(i);
        }
    }

    /// Writes what connection `i` has buffered; false if it failed.
    fn flush(&mut self, i: usize) -> bool {
        let Some(c) = self.conns[i].as_mut() else {
            return true;
        };
        while c.out_off < c.out.len() {
            match c.sock.write(&c.out[c.out_off..]) {
                Ok(n) => c.out_off += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
        }
        c.out.clear();
        c.out_off = 0;
        true
    }

    /// Reads from connection `i` until the socket is drained, broadcasting every
    /// complete chunk; false when the connection ended.
    fn read(&mut self, i: usize, rbuf: &mut [u8]) -> bool {
        let size = self.size;
        loop {
            let Some(c) = self.conns[i].as_mut() else {
                return true;
            };
            let n = match c.sock.read(rbuf) {
                Ok(0) => return false,
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            };
            let mut data = &rbuf[..n];
            // Complete the partial chunk first.
            if !c.partial.is_empty() {
                let take = (size - c.partial.len()).min(data.len());
                c.partial.extend_from_slice(&data[..take]);
                data = &data[take..];
                if c.partial.len() == size {
                    let chunk = std::mem::take(&mut c.partial);
                    self.broadcast(&chunk);
                    if let Some(c) = self.conns[i].as_mut() {
                        c.partial = chunk;
                        c.partial.clear();
                    }
                }
            }
            let whole = data.len() / size * size;
            if self.batch && whole > 0 {
                self.broadcast(&data[..whole]);
            } else {
                for chunk in data[..whole].chunks(size) {
                    self.broadcast(chunk);
                }
            }
            if whole < data.len() {
                if let Some(c) = self.conns[i].as_mut() {
                    c.partial.extend_from_slice(&data[whole..]);
                }
            }
            if n < rbuf.len() {
                return true; // drained: edge-triggered epoll reports new data
            }
        }
    }
}

fn serve(port: u16, size: usize, batch: bool) -> std::io::Result<()> {
    let mut listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    println!("listening on {}", listener.local_addr()?);
    let mut server = Server {
        conns: Vec::new(),
        free: Vec::new(),
        live: Vec::new(),
        size,
        batch,
    };
    let mut rbuf = vec![0u8; 256 * 1024];
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
                            let i = server.free.pop().unwrap_or_else(|| {
                                server.conns.push(None);
                                server.conns.len() - 1
                            });
                            poll.registry().register(
                                &mut sock,
                                Token(i),
                                Interest::READABLE | Interest::WRITABLE,
                            )?;
                            server.conns[i] = Some(Conn {
                                sock,
                                partial: Vec::new(),
                                out: Vec::new(),
                                out_off: 0,
                            });
                            server.live.push(i);
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => {
                            eprintln!("raw-fanout: accept: {e}");
                            break;
                        }
                    }
                }
                continue;
            }
            let i = ev.token().0;
            if server.conns.get(i).is_none_or(Option::is_none) {
                continue;
            }
            let ok = (!ev.is_writable() || server.flush(i)) && server.read(i, &mut rbuf);
            if !ok {
                server.close(i);
            }
        }
    }
}
