//! A test PKI made at run time (no private key is ever checked in): a CA, a server
//! certificate for `localhost`, 127.0.0.1 and ::1, and a client certificate, all
//! signed by the CA; with the TLS configs the tests use. Then our client and our
//! server over TLS on one loop: both loop-driven handshakes ([`handshake_on`]), and
//! an echo server with a recording client on top ([`echo_pair`], [`close_both`]).
//! Last, a raw rustls client for the tests that need to see or break what goes over
//! the wire ([`RawTls`]).
//!
//! The configs made here offer ChaCha20-Poly1305 only: ring's AES-GCM assembly
//! makes valgrind's memcheck report the bytes it writes as uninitialised (a false
//! positive: the records authenticate at the other end), and the tests run under
//! valgrind. Each test of the crate's own builders (`ServerTls::builder`,
//! `ClientTls::builder`) meets one of these, so ChaCha20 is what is agreed.

use std::cell::{Cell, RefCell};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use net_websocket_ev::ev::Loop;
use net_websocket_ev::handshake::{ClientRequest, Request, Response};
use net_websocket_ev::tls::rustls::crypto::{ring, CryptoProvider};
use net_websocket_ev::tls::rustls::pki_types::pem::PemObject;
use net_websocket_ev::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use net_websocket_ev::tls::rustls::server::WebPkiClientVerifier;
use net_websocket_ev::tls::rustls::{
    self, ClientConfig, ClientConnection, Connection, RootCertStore, ServerConfig, ServerConnection,
};
use net_websocket_ev::tls::{ClientTls, ServerTls};
use net_websocket_ev::websocket::upgrade::{
    accept, upgrade, HandshakeOptions, UpgradeError, Upgraded,
};
use net_websocket_ev::{Client, OpCode, Params, Server, WebSocket};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

use super::run_until;

/// ring with its ChaCha20-Poly1305 suites only (TLS 1.3 and 1.2).
pub fn chacha_only() -> Arc<CryptoProvider> {
    let mut provider = ring::default_provider();
    provider.cipher_suites.retain(|suite| {
        let name = format!("{:?}", suite.suite());
        name.contains("CHACHA20_POLY1305")
    });
    assert!(!provider.cipher_suites.is_empty());
    Arc::new(provider)
}

fn certs(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap()
}

fn key(pem: &str) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).unwrap()
}

/// PEM text of a CA and of certificates it signed.
pub struct TestPki {
    pub ca_cert: String,
    pub server_cert: String,
    pub server_key: String,
    pub client_cert: String,
    pub client_key: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestPki {
    /// A fresh CA with a server and a client certificate.
    pub fn new() -> TestPki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // A name of its own: a certificate from another test CA is then one of an
        // unknown issuer, not one whose signature does not match.
        static SERIAL: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "net-websocket-ev test CA {}",
            SERIAL.fetch_add(1, Ordering::Relaxed)
        );
        ca_params.distinguished_name.push(DnType::CommonName, name);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let (server_cert, server_key) = TestPki::sign(&issuer, &["localhost", "127.0.0.1", "::1"]);
        let (client_cert, client_key) = TestPki::sign(&issuer, &["client.test"]);
        TestPki {
            ca_cert: ca_cert.pem(),
            server_cert,
            server_key,
            client_cert,
            client_key,
            issuer,
        }
    }

    /// Another certificate for `names` signed by this CA, and its key, as PEM.
    pub fn leaf(&self, names: &[&str]) -> (String, String) {
        TestPki::sign(&self.issuer, names)
    }

    /// A certificate for `names` signed by `issuer`, and its key, as PEM.
    fn sign(issuer: &Issuer<'_, KeyPair>, names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.signed_by(&key, issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// The test CA as the only root.
    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        for cert in certs(&self.ca_cert) {
            roots.add(cert).unwrap();
        }
        roots
    }

    /// A server presenting the server certificate.
    pub fn server_tls(&self) -> ServerTls {
        let config = ServerConfig::builder_with_provider(chacha_only())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs(&self.server_cert), key(&self.server_key))
            .unwrap();
        ServerTls::from_config(Arc::new(config))
    }

    /// A server requiring a client certificate signed by this CA.
    pub fn server_tls_requiring_client_certs(&self) -> ServerTls {
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(self.roots()), chacha_only())
                .build()
                .unwrap();
        let config = ServerConfig::builder_with_provider(chacha_only())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs(&self.server_cert), key(&self.server_key))
            .unwrap();
        ServerTls::from_config(Arc::new(config))
    }

    /// The crate's builder: a server with the server certificate that asks
    /// clients for one signed by this CA, required or `optional`.
    pub fn server_tls_checking_clients(&self, optional: bool) -> ServerTls {
        ServerTls::builder()
            .cert_pem(self.server_cert.as_bytes(), self.server_key.as_bytes())
            .unwrap()
            .client_ca_pem(self.ca_cert.as_bytes())
            .unwrap()
            .client_cert_optional(optional)
            .build()
            .unwrap()
    }

    /// A client trusting only the test CA.
    pub fn client_tls(&self) -> ClientTls {
        let config = ClientConfig::builder_with_provider(chacha_only())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(self.roots())
            .with_no_client_auth();
        ClientTls::from_config(Arc::new(config))
    }

    /// [`client_tls`](Self::client_tls) speaking TLS 1.2 only.
    pub fn client_tls12(&self) -> ClientTls {
        let config = ClientConfig::builder_with_provider(chacha_only())
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_root_certificates(self.roots())
            .with_no_client_auth();
        ClientTls::from_config(Arc::new(config))
    }

    /// A client trusting only the test CA, showing the certificate `cert`/`key`
    /// (PEM).
    pub fn client_tls_showing(&self, cert: &str, key_pem: &str) -> ClientTls {
        let config = ClientConfig::builder_with_provider(chacha_only())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(self.roots())
            .with_client_auth_cert(certs(cert), key(key_pem))
            .unwrap();
        ClientTls::from_config(Arc::new(config))
    }

    /// A client trusting only the test CA, showing the client certificate.
    pub fn client_tls_with_cert(&self) -> ClientTls {
        self.client_tls_showing(&self.client_cert, &self.client_key)
    }
}

/// What one side's handshake ended with, once it did (`None` before).
pub type Outcome<H> = Rc<RefCell<Option<Result<Upgraded<H>, UpgradeError>>>>;

/// A connected pair of TCP sockets: `(client, server)`; with `small`, both have
/// small buffers ([`super::small_buffers`]).
pub fn tcp(small: bool) -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    if small {
        super::small_buffers(&listener); // inherited by the accepted socket
    }
    let addr = listener.local_addr().unwrap();
    let client = if small {
        super::connect_with_small_buffers(addr)
    } else {
        TcpStream::connect(addr).unwrap()
    };
    let (server, _) = listener.accept().unwrap();
    (client, server)
}

/// Both handshakes over TLS on `lp` on the given sockets: the server's and the
/// client's outcome, once both are known.
pub fn handshake_on(
    lp: &Loop,
    (client_stream, server_stream): (TcpStream, TcpStream),
    server_tls: ServerTls,
    client_tls: ClientTls,
    server_name: &str,
) -> (Outcome<Request>, Outcome<Response>) {
    let served: Outcome<Request> = Rc::default();
    let s = served.clone();
    let options = HandshakeOptions::default().server_tls(server_tls);
    accept(lp, server_stream, options, move |r| {
        *s.borrow_mut() = Some(r)
    });
    let (mut request, ..) = ClientRequest::from_url("wss://localhost/t").unwrap();
    request.tls_server_name = Some(server_name.into());
    let connected: Outcome<Response> = Rc::default();
    let c = connected.clone();
    let options = HandshakeOptions::default().client_tls(client_tls);
    upgrade(lp, client_stream, &request, options, move |r| {
        *c.borrow_mut() = Some(r)
    });
    run_until(lp, "both handshakes", || {
        served.borrow().is_some() && connected.borrow().is_some()
    });
    (served, connected)
}

/// Both handshakes with the test PKI's configs over a fresh TCP connection.
pub fn handshake(
    lp: &Loop,
    pki: &TestPki,
    server_name: &str,
) -> (Outcome<Request>, Outcome<Response>) {
    handshake_on(
        lp,
        tcp(false),
        pki.server_tls(),
        pki.client_tls(),
        server_name,
    )
}

/// Both ends of a successful handshake with the test PKI's configs, for
/// `localhost`, over a fresh TCP connection (with small buffers if `small`).
pub fn tls_pair(lp: &Loop, pki: &TestPki, small: bool) -> (Upgraded<Request>, Upgraded<Response>) {
    unwrap_both(handshake_on(
        lp,
        tcp(small),
        pki.server_tls(),
        pki.client_tls(),
        "localhost",
    ))
}

/// The two sides of a successful handshake.
pub fn unwrap_both(
    (served, connected): (Outcome<Request>, Outcome<Response>),
) -> (Upgraded<Request>, Upgraded<Response>) {
    let served = served
        .borrow_mut()
        .take()
        .unwrap()
        .expect("server handshake");
    let connected = connected
        .borrow_mut()
        .take()
        .unwrap()
        .expect("client handshake");
    // What this module's configs arrange, for valgrind's sake (see the module doc).
    let suite = served
        .tls
        .as_ref()
        .unwrap()
        .rustls()
        .negotiated_cipher_suite();
    assert!(
        format!("{suite:?}").contains("CHACHA20"),
        "{suite:?} agreed: a config outside util::tls?"
    );
    (served, connected)
}

/// What one side's callbacks saw (messages whole; not [`super::Seen`], the raw
/// peer's record of frames).
#[derive(Default)]
pub struct Seen {
    /// Every message, in order.
    pub msgs: RefCell<Vec<(OpCode, Vec<u8>)>>,
    /// The code `on_close` got.
    pub close: Cell<Option<u16>>,
}

impl Seen {
    /// `params` recording every message and the close.
    pub fn record(self: &Rc<Self>, params: Params) -> Params {
        let (m, c) = (self.clone(), self.clone());
        params
            .on_msg_recv(move |_, _, op, msg, _| m.msgs.borrow_mut().push((op, msg.to_vec())))
            .on_close(move |_, code| c.close.set(Some(code)))
    }

    /// The messages seen so far.
    pub fn count(&self) -> usize {
        self.msgs.borrow().len()
    }
}

/// `params` echoing every data message, recording the close.
pub fn echo(params: Params, seen: &Rc<Seen>) -> Params {
    let c = seen.clone();
    params
        .on_msg_recv(|ws, _, op, msg, _| {
            if matches!(op, OpCode::Text | OpCode::Binary) {
                ws.queue_msg(msg, op).unwrap();
            }
        })
        .on_close(move |_, code| c.close.set(Some(code)))
}

/// An echo server and a recording client over TLS on `lp`: `(server, client, what
/// the server's close got, what the client saw)`.
pub fn echo_pair(
    lp: &Loop,
    ends: (Upgraded<Request>, Upgraded<Response>),
    tweak_server: impl FnOnce(Params) -> Params,
    tweak_client: impl FnOnce(Params) -> Params,
) -> (WebSocket, WebSocket, Rc<Seen>, Rc<Seen>) {
    let (served, connected) = ends;
    assert!(served.tls.is_some() && connected.tls.is_some());
    let (server_seen, client_seen) = (Rc::new(Seen::default()), Rc::new(Seen::default()));
    let server = Server::new(tweak_server(echo(
        served.into_params().event_loop(lp),
        &server_seen,
    )))
    .unwrap();
    let client = Client::new(tweak_client(
        client_seen.record(connected.into_params().event_loop(lp)),
    ))
    .unwrap();
    (server, client, server_seen, client_seen)
}

/// Clean close from the client; both ends see 1000.
pub fn close_both(lp: &Loop, client: &WebSocket, server_seen: &Seen, client_seen: &Seen) {
    client.close(Some(1000), "bye").unwrap();
    run_until(lp, "the close", || {
        client_seen.close.get().is_some() && server_seen.close.get().is_some()
    });
    assert_eq!(client_seen.close.get(), Some(1000));
    assert_eq!(server_seen.close.get(), Some(1000));
}

/// A rustls client (or server) over a non-blocking socket of the test's, pumped by
/// hand: what it reads is kept, and how its reading ended (the peer's
/// `close_notify`, a TCP end without one, a TLS error) is told apart.
pub struct RawTls {
    pub conn: Connection,
    pub sock: TcpStream,
    /// Plaintext read so far.
    pub plain: Vec<u8>,
    /// How reading ended: `Ok(())` at the peer's `close_notify`, the error's kind
    /// otherwise (`UnexpectedEof`: TCP ended without `close_notify`).
    pub end: Option<Result<(), ErrorKind>>,
    /// The TLS error rustls reported, if any.
    pub tls_error: Option<rustls::Error>,
}

impl RawTls {
    /// A client to `name` over `sock` (made non-blocking) with `config`.
    pub fn new(sock: TcpStream, config: Arc<ClientConfig>, name: &str) -> RawTls {
        sock.set_nonblocking(true).unwrap();
        let name = ServerName::try_from(name.to_owned()).unwrap();
        RawTls::with(sock, ClientConnection::new(config, name).unwrap().into())
    }

    /// A server over `sock` (made non-blocking) with `config`.
    pub fn server(sock: TcpStream, config: Arc<ServerConfig>) -> RawTls {
        sock.set_nonblocking(true).unwrap();
        RawTls::with(sock, ServerConnection::new(config).unwrap().into())
    }

    fn with(sock: TcpStream, conn: Connection) -> RawTls {
        RawTls {
            conn,
            sock,
            plain: Vec::new(),
            end: None,
            tls_error: None,
        }
    }

    /// Queues plaintext (sent by the next [`pump`](Self::pump)).
    pub fn send(&mut self, bytes: &[u8]) {
        self.conn.writer().write_all(bytes).unwrap();
    }

    /// Writes what rustls holds and reads what came, without blocking.
    pub fn pump(&mut self) {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.sock) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => {
                    self.end.get_or_insert(Err(e.kind()));
                    return;
                }
            }
        }
        while self.end.is_none() {
            let eof = match self.conn.read_tls(&mut self.sock) {
                Ok(n) => n == 0,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.end = Some(Err(e.kind()));
                    return;
                }
            };
            if let Err(err) = self.conn.process_new_packets() {
                self.tls_error = Some(err);
                self.end = Some(Err(ErrorKind::InvalidData));
                return;
            }
            self.read_plain();
            if eof && self.end.is_none() {
                self.end = Some(Err(ErrorKind::UnexpectedEof));
            }
        }
    }

    fn read_plain(&mut self) {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match self.conn.reader().read(&mut buf) {
                Ok(0) => {
                    self.end = Some(Ok(()));
                    return;
                }
                Ok(n) => self.plain.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) => {
                    self.end = Some(Err(e.kind()));
                    return;
                }
            }
        }
    }

    /// Whether the TLS handshake is done.
    pub fn connected(&self) -> bool {
        !self.conn.is_handshaking()
    }

    /// Writes raw bytes under TLS, straight into the socket (small amounts).
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.sock.write_all(bytes)
    }
}

/// Deterministic bytes: message `seed`'s content.
pub fn pattern(seed: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i * 7 + i / 251 + seed * 13) as u8)
        .collect()
}
