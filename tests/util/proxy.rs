//! A small HTTP `CONNECT` proxy on a thread, for the client connect tests: it serves
//! a fixed number of connections, records each request head, and either refuses
//! with a status or opens the tunnel and relays both ways until either side closes.
//! It resolves the names under `.test` to 127.0.0.1 (the client's resolver is not
//! asked for a target behind a proxy).
//! Every blocking call is bounded by the tests' deadline.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use super::deadline;

/// What the proxy does with a `CONNECT`.
#[derive(Clone, Copy, Debug)]
pub enum Answer {
    /// 200, then relays.
    Tunnel,
    /// This status (403, 407, ...) with a short body, then closes.
    Refuse(u16),
}

/// A running proxy; [`ConnectProxy::finish`] waits for its thread.
pub struct ConnectProxy {
    pub addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl ConnectProxy {
    /// A proxy on 127.0.0.1 serving `connections` connections, then exiting.
    pub fn start(answer: Answer, connections: usize) -> ConnectProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let record = heads.clone();
        let thread = thread::spawn(move || {
            let mut relays = Vec::new();
            for _ in 0..connections {
                let client = accept(&listener);
                let head = read_head(&client);
                record.lock().unwrap().push(head.clone());
                if let Some(relay) = serve(client, &head, answer) {
                    relays.extend(relay);
                }
            }
            for relay in relays {
                relay.join().expect("relay thread");
            }
        });
        ConnectProxy {
            addr,
            heads,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The request heads received so far.
    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }

    /// Waits until the proxy has served all its connections and their relays ended.
    pub fn finish(mut self) -> Vec<String> {
        if let Some(thread) = self.thread.take() {
            thread.join().expect("proxy thread");
        }
        self.heads()
    }
}

fn accept(listener: &TcpListener) -> TcpStream {
    let start = Instant::now();
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                stream.set_read_timeout(Some(deadline())).unwrap();
                stream.set_write_timeout(Some(deadline())).unwrap();
                return stream;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                assert!(start.elapsed() < deadline(), "proxy: no client came");
                thread::sleep(std::time::Duration::from_millis(2));
            }
            Err(e) => panic!("proxy accept: {e}"),
        }
    }
}

/// Reads up to the blank line, one byte at a time (nothing past the head).
fn read_head(mut client: &TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            Ok(_) => break,
            Err(e) => panic!("proxy read: {e}"),
        }
        assert!(head.len() < 16 * 1024, "proxy: head too long");
    }
    String::from_utf8(head).expect("proxy: head is text")
}

/// Answers one client; the relay threads when tunnelling.
fn serve(mut client: TcpStream, head: &str, answer: Answer) -> Option<[JoinHandle<()>; 2]> {
    let target = head
        .strip_prefix("CONNECT ")
        .and_then(|rest| rest.split(' ').next())
        .expect("proxy: not a CONNECT request");
    match answer {
        Answer::Refuse(status) => {
            let body = "no tunnel for you";
            let reply = format!(
                "HTTP/1.1 {status} Refused\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            client.write_all(reply.as_bytes()).unwrap();
            let _ = client.shutdown(Shutdown::Write);
            None
        }
        Answer::Tunnel => {
            // Names under `.test` (RFC 2606) stand for 127.0.0.1.
            let target = match target.rsplit_once(':') {
                Some((host, port)) if host.ends_with(".test") => format!("127.0.0.1:{port}"),
                _ => target.to_owned(),
            };
            let server = TcpStream::connect(target).expect("proxy: connect to target");
            server.set_read_timeout(Some(deadline())).unwrap();
            client
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .unwrap();
            let up = relay(client.try_clone().unwrap(), server.try_clone().unwrap());
            let down = relay(server, client);
            Some([up, down])
        }
    }
}

/// Copies `from` to `to` until EOF or an error, then ends `to`'s writing side.
fn relay(mut from: TcpStream, mut to: TcpStream) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    })
}
