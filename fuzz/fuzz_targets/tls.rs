//! A `wss://` server over a real socket pair, fed by a rustls client whose records the
//! input splits, delays, corrupts and interleaves with calls on the server: a fresh
//! loop per input, `upgrade::accept` with TLS, then an echo `Server` whose first
//! message may stop reading (so plaintext waits inside rustls), while the client
//! sends frames, key updates, `close_notify` or raw garbage, in pieces of any size.
//!
//! Checked: no panic escapes; the loop runs a bounded number of non-blocking
//! iterations; every echo the client decrypts is what it sent, in order, until
//! something broke the stream (garbage, a close); `on_close` runs once, and it gets
//! 1015 exactly when the cause is a TLS failure with no close frame received first;
//! the handshake ends (success or an error) once the client has said all it has.
//!
//! Input layout: `[knobs] [script...]`.
#![no_main]

mod input;

use std::cell::{Cell, RefCell};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use input::Input;
use libfuzzer_sys::fuzz_target;
use net_websocket_ev::ev::{Loop, RunFlags};
use net_websocket_ev::proto::{
    Config, Flow, Handler, OpCode, Receiver, Reply, ReplySink, Role, Rsv,
};
use net_websocket_ev::tls::rustls::pki_types::{CertificateDer, ServerName};
use net_websocket_ev::tls::rustls::{self, ClientConfig, ClientConnection, RootCertStore};
use net_websocket_ev::tls::ServerTls;
use net_websocket_ev::websocket::upgrade::{accept, HandshakeOptions};
use net_websocket_ev::{websocket, CloseCause, Server, WebSocket};

const MAX_STEPS: usize = 128;
/// Non-blocking loop iterations at the end, to let everything settle.
const SETTLE_ROUNDS: usize = 64;
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\r\n";

/// A certificate for `localhost`, made once per process: the server's config and a
/// client config trusting it.
fn configs() -> &'static (ServerTls, Arc<ClientConfig>) {
    static CONFIGS: OnceLock<(ServerTls, Arc<ClientConfig>)> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let (pem, key) = (cert.cert.pem(), cert.signing_key.serialize_pem());
        let server = ServerTls::builder()
            .cert_pem(pem.as_bytes(), key.as_bytes())
            .unwrap()
            .build()
            .unwrap();
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from(cert.cert.der().to_vec()))
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (server, Arc::new(client))
    })
}

/// What the server side saw.
#[derive(Default)]
struct Seen {
    closes: Cell<u32>,
    code: Cell<Option<u16>>,
    handshake: RefCell<Option<Result<(), String>>>,
    ws: RefCell<Option<WebSocket>>,
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let knobs = input.byte();
    let (server_tls, client_config) = configs();
    let lp = Loop::new().unwrap();
    let (ours, theirs) = UnixStream::pair().unwrap();
    theirs.set_nonblocking(true).unwrap();
    let seen = Rc::new(Seen::default());
    let options = HandshakeOptions::default()
        .server_tls(server_tls.clone())
        .timeout(Duration::from_secs(3600)); // never: the input decides the end
    let s = seen.clone();
    let (lp2, stop_first) = (lp.clone(), knobs & 1 != 0);
    accept(
        &lp,
        TcpStream::from(OwnedFd::from(ours)),
        options,
        move |r| {
            let upgraded = match r {
                Ok(upgraded) => upgraded,
                Err(err) => {
                    *s.handshake.borrow_mut() = Some(Err(err.to_string()));
                    return;
                }
            };
            *s.handshake.borrow_mut() = Some(Ok(()));
            let (s1, s2) = (s.clone(), s.clone());
            let first = Cell::new(stop_first);
            let params = upgraded
                .into_params()
                .event_loop(&lp2)
                .max_recv_size(1 << 16)
                .on_msg_recv(move |ws, _, op, msg, _| {
                    if matches!(op, OpCode::Text | OpCode::Binary) {
                        let _ = ws.queue_msg(msg, op);
                    }
                    if first.replace(false) {
                        let _ = ws.stop_read(); // later records wait decrypted in rustls
                    }
                })
                .on_close(move |_, code| {
                    s1.closes.set(s1.closes.get() + 1);
                    s1.code.set(Some(code));
                });
            let ws = Server::new(params).expect("Server::new");
            *s2.ws.borrow_mut() = Some(ws);
        },
    );

    let name = ServerName::try_from("localhost").unwrap();
    let mut client = Client {
        tls: ClientConnection::new(client_config.clone(), name).unwrap(),
        sock: TcpStream::from(OwnedFd::from(theirs)),
        out: Vec::new(),
        plain_in: Vec::new(),
        receiver: Receiver::new(Role::Client, &Config::default()),
        sent: Vec::new(),
        echoed: Vec::new(),
        broken: false,
        head_done: false,
    };
    client.tls.writer().write_all(REQUEST).unwrap();

    for _ in 0..MAX_STEPS {
        if input.is_empty() {
            break;
        }
        match input.byte() % 10 {
            // A frame from the script, masked; text is made valid.
            0 | 1 => {
                let op = if input.byte() & 1 == 0 {
                    OpCode::Text
                } else {
                    OpCode::Binary
                };
                let len = usize::from(input.byte()) * 8;
                let payload: Vec<u8> = match op {
                    OpCode::Text => input.bytes(len).iter().map(|b| b & 0x7f).collect(),
                    _ => input.bytes(len).to_vec(),
                };
                client.send_frame(op, &payload);
            }
            // Encrypted bytes onto the socket, in a piece of any size.
            2 | 3 => {
                let n = 1 + usize::from(input.byte()) * 17;
                client.flush(n);
            }
            4 => client.pump(),
            5 => {
                for _ in 0..=input.byte() % 4 {
                    lp.run_with(RunFlags::NoWait);
                }
            }
            6 => {
                let call = input.byte() % 4;
                if let Some(ws) = seen.ws.borrow().as_ref() {
                    let _ = match call {
                        0 => ws.start_read(),
                        1 => ws.stop_read(),
                        2 => ws.close(Some(1000), "script"),
                        _ => ws.queue_msg(b"from the server", OpCode::Text),
                    };
                    // A close, or a message the client did not send: the order
                    // check stops here.
                    client.broken |= call >= 2;
                }
            }
            7 => {
                let _ = client.tls.refresh_traffic_keys();
            }
            8 => {
                client.tls.send_close_notify();
                client.broken = true;
            }
            // Raw bytes under the TLS layer: the stream is broken from here on.
            _ => {
                let len = usize::from(input.byte() % 64) + 1;
                let garbage = input.bytes(len).to_vec();
                client.flush(usize::MAX);
                let _ = client.sock.write(&garbage);
                client.broken = true;
            }
        }
    }

    // Everything the client has goes out; the loop settles, a bounded number of turns.
    for _ in 0..SETTLE_ROUNDS {
        client.flush(usize::MAX);
        lp.run_with(RunFlags::NoWait);
        client.pump();
    }
    if seen.ws.borrow().is_some() {
        if let Some(ws) = seen.ws.borrow().as_ref() {
            let _ = ws.start_read();
        }
        for _ in 0..SETTLE_ROUNDS {
            client.flush(usize::MAX);
            lp.run_with(RunFlags::NoWait);
            client.pump();
        }
    }
    // The handshake ends once the client has said all it has (its EOF at the latest).
    if seen.handshake.borrow().is_none() {
        let _ = client.sock.shutdown(std::net::Shutdown::Write);
        for _ in 0..SETTLE_ROUNDS {
            lp.run_with(RunFlags::NoWait);
            if seen.handshake.borrow().is_some() {
                break;
            }
        }
        assert!(
            seen.handshake.borrow().is_some(),
            "the handshake never ended"
        );
    }
    // Every echo decrypted is what was sent, in order, while nothing broke.
    if !client.broken {
        assert!(client.echoed.len() <= client.sent.len());
        for (i, (got, sent)) in client.echoed.iter().zip(&client.sent).enumerate() {
            assert!(got == sent, "echo {i} differs from what was sent");
        }
    }
    let ws = seen.ws.borrow_mut().take();
    if let Some(ws) = &ws {
        let cause = ws.close_cause();
        websocket::abort_all(&lp);
        assert_eq!(seen.closes.get(), 1, "on_close exactly once");
        let code = seen.code.get().unwrap();
        let tls_failure = matches!(cause, Some(CloseCause::Tls(_)));
        if code == 1015 {
            assert!(tls_failure, "1015 without a TLS cause: {cause:?}");
        }
        if tls_failure {
            assert!(code == 1015 || ws.status_code_received() != 1006);
        }
    } else {
        websocket::abort_all(&lp);
        assert_eq!(seen.closes.get(), 0);
    }
    drop(ws);
});

/// The client's side: a rustls client over the other end of the pair, its own
/// framing, and the crate's receiver (client role) decoding the server's frames.
struct Client {
    tls: ClientConnection,
    sock: TcpStream,
    /// Encrypted bytes not yet on the socket.
    out: Vec<u8>,
    /// Decrypted bytes before the 101's end.
    plain_in: Vec<u8>,
    receiver: Receiver,
    sent: Vec<Vec<u8>>,
    echoed: Vec<Vec<u8>>,
    /// Garbage, a close, or a message of the server's own: order checks stop.
    broken: bool,
    head_done: bool,
}

impl Client {
    fn send_frame(&mut self, op: OpCode, payload: &[u8]) {
        let key = [0x5a, 0x13, 0xc4, 0x7e];
        let mut frame = vec![0x80 | op.as_u8()];
        match payload.len() {
            n @ 0..=125 => frame.push(0x80 | n as u8),
            n => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        frame.extend_from_slice(&key);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        if self.tls.writer().write_all(&frame).is_ok() {
            self.sent.push(payload.to_vec());
        }
    }

    /// Moves up to `n` encrypted bytes onto the socket.
    fn flush(&mut self, n: usize) {
        while self.tls.wants_write() && self.out.len() < (64 << 10) {
            if self.tls.write_tls(&mut self.out).is_err() {
                break;
            }
        }
        let n = n.min(self.out.len());
        match self.sock.write(&self.out[..n]) {
            Ok(written) => {
                self.out.drain(..written);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(_) => self.out.clear(),
        }
    }

    /// Reads and decrypts what the server sent; decodes the frames after the 101.
    fn pump(&mut self) {
        let mut buf = [0u8; 16 << 10];
        let mut plain = Vec::new();
        loop {
            match self.sock.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut bytes = &buf[..n];
                    while !bytes.is_empty() {
                        if self.tls.read_tls(&mut bytes).is_err()
                            || self.tls.process_new_packets().is_err()
                        {
                            self.broken = true;
                            return;
                        }
                        // Taken at once: rustls reads no more while it holds 16 KiB.
                        let _ = self.tls.reader().read_to_end(&mut plain);
                    }
                }
            }
        }
        if !self.head_done {
            self.plain_in.extend_from_slice(&plain);
            let Some(end) = self.plain_in.windows(4).position(|w| w == b"\r\n\r\n") else {
                return;
            };
            assert!(self.plain_in.starts_with(b"HTTP/1.1 101 "), "not a 101");
            self.head_done = true;
            plain = self.plain_in.split_off(end + 4);
        }
        let mut echoes = Echoes(&mut self.echoed);
        let _ = self.receiver.feed(&plain, &mut echoes, &mut Ignore);
    }
}

struct Echoes<'a>(&'a mut Vec<Vec<u8>>);

impl Handler for Echoes<'_> {
    fn on_message(&mut self, _rsv: Rsv, opcode: OpCode, data: &[u8], _status: u16) -> Flow {
        if matches!(opcode, OpCode::Text | OpCode::Binary) {
            self.0.push(data.to_vec());
        }
        Flow::Continue
    }
}

struct Ignore;

impl ReplySink for Ignore {
    fn reply(&mut self, reply: Reply<'_>) {
        if let Reply::Fail(err) = reply {
            panic!("the server wrote an invalid frame: {err}");
        }
    }
}
