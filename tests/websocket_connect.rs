//! `websocket::connect`: a client connection made on the loop. Name resolution on a
//! thread (the loop keeps running meanwhile), every address tried in turn (refused,
//! timed out), the opening handshake, request and response headers, HTTP proxies
//! (from the options and from the environment), cancelling.
#![cfg(feature = "ev")]

mod util;

use std::cell::{Cell, RefCell};
use std::error::Error as _;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use net_websocket_ev::ev::{Events, Io, Loop, Timer};
use net_websocket_ev::handshake::{self, Response, ServerHandshake};
use net_websocket_ev::websocket::upgrade::{self, HandshakeOptions, Upgraded};
use net_websocket_ev::websocket::{self, ConnectError, ConnectOptions, Proxy};
use net_websocket_ev::{Client, OpCode, Server};
use util::proxy::{Answer, ConnectProxy};
use util::{deadline, run_for, run_until};

type Outcome = Rc<RefCell<Option<Result<Upgraded<Response>, ConnectError>>>>;

/// A WebSocket echo server on `lp`: accepts on a loopback listener, runs the
/// handshake (choosing the first subprotocol offered), echoes every message.
struct EchoServer {
    addr: SocketAddr,
    accepted: Rc<Cell<usize>>,
    _io: Io,
    _listener: Rc<TcpListener>,
}

impl EchoServer {
    fn start(lp: &Loop) -> EchoServer {
        let listener = Rc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Rc::new(Cell::new(0));
        let (l, count, lp2) = (listener.clone(), accepted.clone(), lp.clone());
        let io = Io::new(lp, listener.as_raw_fd(), Events::READ, move |_| {
            while let Ok((stream, _)) = l.accept() {
                count.set(count.get() + 1);
                let options = HandshakeOptions::default()
                    .select_protocol(|req| req.protocols.first().cloned());
                upgrade::accept(&lp2, stream, options, |result| {
                    if let Ok(upgraded) = result {
                        Server::new(upgraded.into_params().on_msg_recv(|ws, _, op, msg, _| {
                            ws.queue_msg(msg, op).unwrap();
                        }))
                        .unwrap();
                    }
                });
            }
        })
        .unwrap();
        io.start();
        EchoServer {
            addr,
            accepted,
            _io: io,
            _listener: listener,
        }
    }

    fn url(&self) -> String {
        format!("ws://{}/echo", self.addr)
    }
}

/// Options for a direct connection: the environment is not read (another test of
/// this binary sets proxy variables).
fn direct() -> ConnectOptions {
    ConnectOptions::new().proxy(Proxy::Direct)
}

fn start(lp: &Loop, url: &str, options: ConnectOptions) -> Outcome {
    let outcome = Outcome::default();
    let out = outcome.clone();
    websocket::connect(lp, url, options, move |result| {
        assert!(out.borrow_mut().replace(result).is_none(), "called twice");
    })
    .expect("connect starts");
    outcome
}

fn wait(lp: &Loop, outcome: &Outcome) -> Result<Upgraded<Response>, ConnectError> {
    run_until(lp, "the connect callback", || outcome.borrow().is_some());
    outcome.borrow_mut().take().unwrap()
}

/// Sends a message over the connected socket, checks its echo, closes cleanly.
fn echo_over(lp: &Loop, connected: Upgraded<Response>) {
    let got = Rc::new(RefCell::new(Vec::new()));
    let closed = Rc::new(Cell::new(None));
    let (g, c) = (got.clone(), closed.clone());
    let ws = Client::new(
        connected
            .into_params()
            .on_msg_recv(move |ws, _, op, msg, _| {
                g.borrow_mut().push((op, msg.to_vec()));
                ws.close(Some(1000), "").unwrap();
            })
            .on_close(move |_, code| c.set(Some(code))),
    )
    .unwrap();
    ws.queue_msg(b"hello over connect", OpCode::Text).unwrap();
    run_until(lp, "echo and close", || closed.get().is_some());
    assert_eq!(
        *got.borrow(),
        [(OpCode::Text, b"hello over connect".to_vec())]
    );
    assert_eq!(closed.get(), Some(1000));
}

/// A resolver answering every name with `addrs`.
fn resolving_to(addrs: Vec<SocketAddr>) -> ConnectOptions {
    direct().resolver(move |_, _| Ok(addrs.clone()))
}

/// A loopback address that refuses connections: bound, not listening.
fn refusing() -> (socket2::Socket, SocketAddr) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    (socket, addr)
}

/// A loopback listener whose accept queue is full (backlog 0, filled, never
/// accepted): Linux drops further SYNs, so a connect to it neither succeeds nor
/// fails until its timeout. None where the queue never fills (then the timeout test
/// is skipped, and says so).
fn unanswering() -> Option<(socket2::Socket, Vec<TcpStream>, SocketAddr)> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..64 {
        // A second is ages for a loopback SYN-ACK: a connect still pending then was
        // dropped by the full queue.
        match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Ok(stream) => fillers.push(stream),
            Err(e) if e.kind() == ErrorKind::TimedOut => return Some((socket, fillers, addr)),
            Err(e) => panic!("filling the accept queue: {e}"),
        }
    }
    None
}

#[test]
fn connects_and_echoes() {
    let lp = Loop::new().unwrap();
    let server = EchoServer::start(&lp);
    let connected = wait(&lp, &start(&lp, &server.url(), direct())).expect("connected");
    assert_eq!(connected.head.status, 101);
    assert!(connected.event_loop.same_as(&lp));
    echo_over(&lp, connected);
    assert_eq!(server.accepted.get(), 1);
    websocket::abort_all(&lp);
}

#[test]
fn a_name_resolves_on_a_thread_while_the_loop_runs() {
    let lp = Loop::new().unwrap();
    let server = EchoServer::start(&lp);
    let (entered_tx, entered) = mpsc::channel::<String>();
    let (release, released) = mpsc::channel::<()>();
    let (entered_tx, released) = (Mutex::new(entered_tx), Mutex::new(released));
    let addr = server.addr;
    let options = direct()
        .connect_timeout(deadline())
        .resolver(move |host, port| {
            entered_tx.lock().unwrap().send(host.to_owned()).unwrap();
            released
                .lock()
                .unwrap()
                .recv_timeout(deadline())
                .expect("released by the test");
            assert_eq!(port, addr.port());
            Ok(vec![addr])
        });
    let url = format!("ws://echo.test:{}/", addr.port());
    let outcome = start(&lp, &url, options);
    // The resolver is now blocked; the loop keeps serving a timer meanwhile.
    assert_eq!(entered.recv_timeout(deadline()).unwrap(), "echo.test");
    let ticks = Rc::new(Cell::new(0));
    let t = ticks.clone();
    let ticker = Timer::new(
        &lp,
        Duration::from_millis(1),
        Duration::from_millis(1),
        move |_| t.set(t.get() + 1),
    );
    ticker.start();
    run_until(&lp, "20 timer ticks", || ticks.get() >= 20);
    assert!(outcome.borrow().is_none(), "resolved before the release");
    release.send(()).unwrap();
    let connected = wait(&lp, &outcome).expect("connected");
    echo_over(&lp, connected);
    websocket::abort_all(&lp);
}

#[test]
fn a_refused_address_is_skipped_for_the_next() {
    let lp = Loop::new().unwrap();
    let server = EchoServer::start(&lp);
    let (_refuser, refused) = refusing();
    let options = resolving_to(vec![refused, server.addr]);
    let url = format!("ws://two.test:{}/", server.addr.port());
    let connected = wait(&lp, &start(&lp, &url, options)).expect("second address");
    echo_over(&lp, connected);
    websocket::abort_all(&lp);
}

#[test]
fn every_address_refused_lists_each_attempt() {
    let lp = Loop::new().unwrap();
    let (_a, first) = refusing();
    let (_b, second) = refusing();
    let options = resolving_to(vec![first, second]);
    let err = wait(&lp, &start(&lp, "ws://none.test:1/", options)).unwrap_err();
    let ConnectError::Connect {
        host,
        port,
        attempts,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!((host.as_str(), *port), ("none.test", 1));
    let tried: Vec<_> = attempts.iter().map(|(addr, e)| (*addr, e.kind())).collect();
    assert_eq!(
        tried,
        [
            (first, ErrorKind::ConnectionRefused),
            (second, ErrorKind::ConnectionRefused)
        ]
    );
    assert!(err.to_string().contains("2 addresses tried"), "{err}");
    assert_eq!(
        err.source().unwrap().to_string(),
        attempts[1].1.to_string(),
        "the last attempt is the source"
    );
    // An IP address is used without a lookup; the same error.
    let url = format!("ws://{first}/");
    let err = wait(&lp, &start(&lp, &url, direct())).unwrap_err();
    assert!(matches!(err, ConnectError::Connect { ref attempts, .. } if attempts.len() == 1));
}

#[test]
fn an_unanswering_address_times_out_and_the_next_is_tried() {
    let Some((_listener, _fillers, silent)) = unanswering() else {
        eprintln!("skipped: this kernel never dropped a SYN to a full accept queue");
        return;
    };
    let lp = Loop::new().unwrap();
    let server = EchoServer::start(&lp);
    let timeout = Duration::from_millis(200);
    let clock = util::LoopClock::start(&lp);
    let options = resolving_to(vec![silent]).connect_timeout(timeout);
    let err = wait(&lp, &start(&lp, "ws://silent.test/", options)).unwrap_err();
    assert!(clock.elapsed() >= timeout, "{:?}", clock.elapsed());
    let ConnectError::Connect { attempts, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].0, silent);
    assert_eq!(attempts[0].1.kind(), ErrorKind::TimedOut);

    let options = resolving_to(vec![silent, server.addr]).connect_timeout(timeout);
    let url = format!("ws://silent.test:{}/", server.addr.port());
    let connected = wait(&lp, &start(&lp, &url, options)).expect("the second address");
    echo_over(&lp, connected);
    websocket::abort_all(&lp);
}

#[test]
fn lookup_failures() {
    let lp = Loop::new().unwrap();
    let options =
        direct().resolver(|_, _| Err(std::io::Error::new(ErrorKind::NotFound, "no such host")));
    let err = wait(&lp, &start(&lp, "ws://missing.test/", options)).unwrap_err();
    assert!(matches!(&err, ConnectError::Resolve { host, .. } if host == "missing.test"));
    assert_eq!(err.to_string(), "cannot resolve \"missing.test\"");
    assert_eq!(err.source().unwrap().to_string(), "no such host");

    let err = wait(
        &lp,
        &start(&lp, "ws://empty.test/", resolving_to(Vec::new())),
    )
    .unwrap_err();
    assert!(matches!(&err, ConnectError::Connect { attempts, .. } if attempts.is_empty()));

    let options = direct().resolver(|_, _| panic!("a resolver bug"));
    let err = wait(&lp, &start(&lp, "ws://panics.test/", options)).unwrap_err();
    assert!(matches!(err, ConnectError::Resolve { .. }), "{err:?}");

    // A lookup slower than the connect timeout.
    let (release, released) = mpsc::channel::<()>();
    let released = Mutex::new(released);
    let options = direct()
        .connect_timeout(Duration::from_millis(50))
        .resolver(move |_, _| {
            let _ = released.lock().unwrap().recv_timeout(deadline());
            Ok(Vec::new())
        });
    let err = wait(&lp, &start(&lp, "ws://slow.test/", options)).unwrap_err();
    let ConnectError::Resolve { error, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(error.kind(), ErrorKind::TimedOut);
    release.send(()).unwrap();
}

#[test]
fn bad_requests_are_refused_before_anything_starts() {
    let lp = Loop::new().unwrap();
    let called = Rc::new(Cell::new(false));
    let refuse = |url: &str, options: ConnectOptions| {
        let called = called.clone();
        websocket::connect(&lp, url, options, move |_| called.set(true)).unwrap_err()
    };
    let injected = direct().header("X-Id", "1\r\nX-Admin: yes");
    assert!(matches!(
        refuse("ws://127.0.0.1:1/", injected),
        ConnectError::Request(_)
    ));
    let lf_origin = direct().origin("https://a.example\nX: y");
    assert!(matches!(
        refuse("ws://127.0.0.1:1/", lf_origin),
        ConnectError::Request(_)
    ));
    let bad_name = direct().header("Bad Name", "x");
    assert!(matches!(
        refuse("ws://127.0.0.1:1/", bad_name),
        ConnectError::Request(_)
    ));
    let own_header = direct().header("Sec-WebSocket-Key", "x");
    assert!(matches!(
        refuse("ws://127.0.0.1:1/", own_header),
        ConnectError::Request(_)
    ));
    let bad_protocol = direct().protocol("chat v2");
    let err = refuse("ws://127.0.0.1:1/", bad_protocol);
    assert!(matches!(err, ConnectError::Request(_)));
    assert!(err.source().unwrap().to_string().contains("subprotocol"));
    assert!(matches!(
        refuse("http://127.0.0.1:1/", direct()),
        ConnectError::Url(_)
    ));
    assert!(matches!(
        refuse("ws://127.0.0.1:1/#x", direct()),
        ConnectError::Url(_)
    ));
    let bad_proxy = ConnectOptions::new().proxy(Proxy::Http("socks5://127.0.0.1:1".into()));
    assert!(matches!(
        refuse("ws://127.0.0.1:1/", bad_proxy),
        ConnectError::ProxyUrl { .. }
    ));
    run_for(&lp, Duration::from_millis(10));
    assert!(!called.get());
}

/// A proxy password never shows in an error or in the options' debug output (both
/// end up in logs, and `unwrap` prints the debug output).
#[test]
fn a_proxy_password_is_not_shown() {
    let lp = Loop::new().unwrap();
    for url in [
        "socks5://alice:s3cret@127.0.0.1:1",
        "http://alice:s3cret@127.0.0.1:port",
        "http://alice:s3cret/x@127.0.0.1:1",
        "alice:s3cret@127.0.0.1:1/path",
    ] {
        let options = ConnectOptions::new().proxy(Proxy::Http(url.into()));
        assert!(!format!("{options:?}").contains("s3cret"), "{options:?}");
        let err = websocket::connect(&lp, "ws://127.0.0.1:1/", options, |_| {}).unwrap_err();
        assert!(matches!(err, ConnectError::ProxyUrl { .. }), "{err:?}");
        for shown in [err.to_string(), format!("{err:?}")] {
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(shown.contains("127.0.0.1"), "{shown}");
        }
    }
}

/// A server on a thread that records the request and answers 101 with extra
/// headers: what the client sent, and that the client sees the response headers.
#[test]
fn request_headers_go_out_and_response_headers_come_back() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(deadline())).unwrap();
        let mut parser = ServerHandshake::new(handshake::DEFAULT_MAX_HEADER_SIZE);
        let mut buf = [0u8; 4096];
        let request = loop {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "client hung up");
            if let Some(request) = parser.feed(&buf[..n]).unwrap() {
                break request;
            }
        };
        let answer = handshake::response(&request, Some("chat.v1"));
        let mut answer = String::from_utf8(answer).unwrap();
        answer.truncate(answer.len() - 2);
        answer.push_str("Set-Cookie: session=42\r\nX-Served-By: test\r\n\r\n");
        stream.write_all(answer.as_bytes()).unwrap();
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
        request
    });
    let lp = Loop::new().unwrap();
    let options = direct()
        .origin("https://app.example")
        .header("Cookie", "theme=dark")
        .protocol("chat.v2")
        .protocol("chat.v1");
    let url = format!("ws://{addr}/room?id=7");
    let connected = wait(&lp, &start(&lp, &url, options)).expect("connected");
    assert_eq!(connected.protocol.as_deref(), Some("chat.v1"));
    assert_eq!(connected.head.header("set-cookie"), Some("session=42"));
    assert_eq!(connected.head.header("X-Served-By"), Some("test"));
    drop(connected); // closes the socket: the server's read ends
    let request = server.join().unwrap();
    assert_eq!(request.path, "/room?id=7");
    assert_eq!(request.header("origin"), Some("https://app.example"));
    assert_eq!(request.header("cookie"), Some("theme=dark"));
    assert_eq!(request.protocols, ["chat.v2", "chat.v1"]);
}

#[test]
fn through_a_proxy_from_the_options_with_basic_auth() {
    let lp = Loop::new().unwrap();
    let server = EchoServer::start(&lp);
    let proxy = ConnectProxy::start(Answer::Tunnel, 1);
    let asked = Arc::new(Mutex::new(Vec::new()));
    let names = asked.clone();
    let options = ConnectOptions::new()
        .proxy(Proxy::Http(format!(
            "http://alice:open%20sesame@{}",
            proxy.addr
        )))
        .resolver(move |host, _| {
            names.lock().unwrap().push(host.to_owned());
            Err(std::io::Error::new(ErrorKind::NotFound, "not asked for"))
        });
    let connected = wait(&lp, &start(&lp, &server.url(), options)).expect("through the proxy");
    echo_over(&lp, connected);
    websocket::abort_all(&lp);
    let heads = proxy.finish();
    assert_eq!(heads.len(), 1);
    let target = server.addr.to_string();
    assert!(
        heads[0].starts_with(&format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n")),
        "{}",
        heads[0]
    );
    // base64("alice:open sesame")
    assert!(heads[0].contains("\r\nProxy-Authorization: Basic YWxpY2U6b3BlbiBzZXNhbWU=\r\n"));
    assert!(
        asked.lock().unwrap().is_empty(),
        "an IP proxy needs no lookup"
    );
}

#[test]
fn a_proxy_by_name_is_resolved_by_our_resolver_the_target_by_the_proxy() {
    let lp = Loop::new().unwrap();
    let server = EchoServer::start(&lp);
    let proxy = ConnectProxy::start(Answer::Tunnel, 1);
    let asked = Arc::new(Mutex::new(Vec::new()));
    let names = asked.clone();
    let proxy_addr = proxy.addr;
    let options = ConnectOptions::new()
        .proxy(Proxy::Http(format!("proxy.test:{}", proxy_addr.port())))
        .resolver(move |host, port| {
            names.lock().unwrap().push(format!("{host}:{port}"));
            Ok(vec![proxy_addr])
        });
    let url = format!("ws://echo.test:{}/", server.addr.port());
    let connected = wait(&lp, &start(&lp, &url, options)).expect("through the proxy");
    echo_over(&lp, connected);
    websocket::abort_all(&lp);
    let heads = proxy.finish();
    assert!(heads[0].starts_with(&format!("CONNECT echo.test:{} ", server.addr.port())));
    assert_eq!(
        *asked.lock().unwrap(),
        [format!("proxy.test:{}", proxy_addr.port())]
    );
}

#[test]
fn a_proxy_refusing_with_403_is_an_error_with_its_status() {
    let lp = Loop::new().unwrap();
    let proxy = ConnectProxy::start(Answer::Refuse(403), 1);
    let options = ConnectOptions::new().proxy(Proxy::Http(proxy.url()));
    let err = wait(&lp, &start(&lp, "ws://127.0.0.1:9/", options)).unwrap_err();
    let ConnectError::ProxyRefused { status, reason } = &err else {
        panic!("{err:?}")
    };
    assert_eq!((*status, reason.as_str()), (403, "Refused"));
    assert_eq!(err.to_string(), "the proxy refused the tunnel: 403 Refused");
    proxy.finish();
}

#[test]
fn a_proxy_that_is_not_http_is_an_error() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.write_all(b"SSH-2.0-OpenSSH_9.6\r\n\r\n").unwrap();
        let mut rest = Vec::new();
        stream.set_read_timeout(Some(deadline())).unwrap();
        let _ = stream.read_to_end(&mut rest);
    });
    let lp = Loop::new().unwrap();
    let options = ConnectOptions::new().proxy(Proxy::Http(format!("http://{addr}")));
    let err = wait(&lp, &start(&lp, "ws://127.0.0.1:9/", options)).unwrap_err();
    assert!(matches!(err, ConnectError::Proxy(ref e) if e.kind() == ErrorKind::InvalidData));
    fake.join().unwrap();
}

/// A fake proxy: reads the CONNECT head (one byte at a time), writes `answer` in one
/// piece, then `more` until the client goes, and returns the head.
fn fake_proxy(
    answer: &'static [u8],
    more: &'static [u8],
) -> (SocketAddr, thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(deadline())).unwrap();
        stream.set_write_timeout(Some(deadline())).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        stream.write_all(answer).unwrap();
        while !more.is_empty() && stream.write_all(more).is_ok() {}
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
        String::from_utf8(head).unwrap()
    });
    (addr, fake)
}

/// What the proxy sends right after its answer head, in the same segment, is the
/// server's: here a refusal the handshake must see (lost, the handshake would wait
/// for its timeout instead).
#[test]
fn bytes_after_the_proxy_answer_go_to_the_handshake() {
    let (addr, fake) = fake_proxy(
        b"HTTP/1.1 200 Connection established\r\n\r\n\
          HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
        b"",
    );
    let lp = Loop::new().unwrap();
    let options = ConnectOptions::new()
        .proxy(Proxy::Http(format!("http://{addr}")))
        .handshake({
            let mut handshake = HandshakeOptions::default();
            handshake.timeout = deadline();
            handshake
        });
    let err = wait(&lp, &start(&lp, "ws://[::1]:8080/", options)).unwrap_err();
    assert!(
        matches!(
            err,
            ConnectError::Upgrade(upgrade::UpgradeError::Handshake(
                handshake::HandshakeError::BadStatus(403)
            ))
        ),
        "{err:?}"
    );
    let head = fake.join().unwrap();
    assert!(
        head.starts_with("CONNECT [::1]:8080 HTTP/1.1\r\nHost: [::1]:8080\r\n"),
        "{head}"
    );
}

/// A proxy whose answer head never ends is cut off at the handshake's header limit.
#[test]
fn a_never_ending_proxy_answer_is_bounded() {
    let (addr, fake) = fake_proxy(b"HTTP/1.1 200 OK\r\n", b"X-Filler: yyyyyyyyyyyyyyyy\r\n");
    let lp = Loop::new().unwrap();
    let options = ConnectOptions::new()
        .proxy(Proxy::Http(format!("http://{addr}")))
        .handshake({
            let mut handshake = HandshakeOptions::default();
            handshake.max_header_size = 4096;
            handshake.timeout = deadline();
            handshake
        });
    let err = wait(&lp, &start(&lp, "ws://127.0.0.1:9/", options)).unwrap_err();
    assert!(
        matches!(err, ConnectError::Proxy(ref e) if e.kind() == ErrorKind::InvalidData),
        "{err:?}"
    );
    fake.join().unwrap();
}

#[cfg(feature = "tls")]
#[test]
fn wss_by_name_through_a_proxy() {
    let pki = util::tls::TestPki::new();
    let lp = Loop::new().unwrap();
    let listener = Rc::new(TcpListener::bind("127.0.0.1:0").unwrap());
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let server_tls = pki.server_tls();
    let (l, lp2) = (listener.clone(), lp.clone());
    let io = Io::new(&lp, listener.as_raw_fd(), Events::READ, move |_| {
        while let Ok((stream, _)) = l.accept() {
            let options = HandshakeOptions::default().server_tls(server_tls.clone());
            upgrade::accept(&lp2, stream, options, |result| {
                let upgraded = result.expect("TLS server handshake");
                Server::new(upgraded.into_params().on_msg_recv(|ws, _, op, msg, _| {
                    ws.queue_msg(msg, op).unwrap();
                }))
                .unwrap();
            });
        }
    })
    .unwrap();
    io.start();
    // The proxy resolves "localhost" itself; our resolver is never asked.
    let proxy = ConnectProxy::start(Answer::Tunnel, 1);
    let options = ConnectOptions::new()
        .proxy(Proxy::Http(proxy.url()))
        .resolver(|host, _| panic!("asked to resolve {host}"))
        .handshake(HandshakeOptions::default().client_tls(pki.client_tls()));
    let url = format!("wss://localhost:{port}/secure");
    let connected = wait(&lp, &start(&lp, &url, options)).expect("wss through the proxy");
    assert!(connected.tls.is_some());
    echo_over(&lp, connected);
    websocket::abort_all(&lp);
    let heads = proxy.finish();
    assert!(heads[0].starts_with(&format!("CONNECT localhost:{port} ")));
}

#[test]
fn cancelling_while_resolving_drops_the_callback() {
    let lp = Loop::new().unwrap();
    let (entered_tx, entered) = mpsc::channel::<()>();
    let (release, released) = mpsc::channel::<()>();
    let (entered_tx, released) = (Mutex::new(entered_tx), Mutex::new(released));
    let (_refuser, refused) = refusing();
    let options = direct().connect_timeout(deadline()).resolver(move |_, _| {
        entered_tx.lock().unwrap().send(()).unwrap();
        let _ = released.lock().unwrap().recv_timeout(deadline());
        Ok(vec![refused])
    });
    let dropped = Rc::new(Cell::new(false));
    let guard = DropFlag(dropped.clone());
    let pending = websocket::connect(&lp, "ws://late.test/", options, move |_| {
        let _keep = &guard;
        panic!("called after cancel");
    })
    .unwrap();
    entered.recv_timeout(deadline()).unwrap();
    assert!(pending.is_pending());
    pending.cancel();
    assert!(!pending.is_pending());
    assert!(dropped.get(), "the callback is dropped at once");
    // The late answer lands nowhere.
    release.send(()).unwrap();
    run_for(&lp, Duration::from_millis(20));
}

#[test]
fn cancelling_during_the_handshake_closes_the_socket() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (got_request, request_in) = mpsc::channel::<()>();
    let server = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(deadline())).unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.ends_with(b"\r\n\r\n") {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0);
            head.extend_from_slice(&buf[..n]);
        }
        got_request.send(()).unwrap();
        // Never answers; the cancel must end the connection.
        stream.read(&mut buf).map(|n| n == 0)
    });
    let lp = Loop::new().unwrap();
    let pending = websocket::connect(&lp, &format!("ws://{addr}/"), direct(), |_| {
        panic!("called after cancel")
    })
    .unwrap();
    run_until(&lp, "the request at the server", || {
        request_in.try_recv().is_ok()
    });
    pending.cancel();
    run_until(&lp, "the server's end of the connection", || {
        server.is_finished()
    });
    assert!(server.join().unwrap().unwrap_or(true), "EOF or reset");
}

/// A cancel while the proxy has not answered `CONNECT` closes the socket to it.
#[test]
fn cancelling_during_the_tunnel_closes_the_socket() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (got_connect, connect_in) = mpsc::channel::<()>();
    let proxy = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.set_read_timeout(Some(deadline())).unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.ends_with(b"\r\n\r\n") {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0);
            head.extend_from_slice(&buf[..n]);
        }
        got_connect.send(()).unwrap();
        // Never answers; the cancel must end the connection.
        stream.read(&mut buf).map(|n| n == 0)
    });
    let lp = Loop::new().unwrap();
    let options = ConnectOptions::new().proxy(Proxy::Http(format!("http://{addr}")));
    let pending = websocket::connect(&lp, "ws://127.0.0.1:9/", options, |_| {
        panic!("called after cancel")
    })
    .unwrap();
    run_until(&lp, "the CONNECT at the proxy", || {
        connect_in.try_recv().is_ok()
    });
    pending.cancel();
    assert!(!pending.is_pending());
    run_until(&lp, "the proxy's end of the connection", || {
        proxy.is_finished()
    });
    assert!(proxy.join().unwrap().unwrap_or(true), "EOF or reset");
}

#[test]
fn cancelling_while_connecting_and_after_the_callback() {
    let Some((_listener, _fillers, silent)) = unanswering() else {
        eprintln!("skipped: this kernel never dropped a SYN to a full accept queue");
        return;
    };
    let lp = Loop::new().unwrap();
    let url = format!("ws://{silent}/");
    let pending = websocket::connect(&lp, &url, direct(), |_| panic!("cancelled")).unwrap();
    run_for(&lp, Duration::from_millis(20));
    pending.cancel();
    run_for(&lp, Duration::from_millis(20));
    // After the callback, cancel is a no-op.
    let server = EchoServer::start(&lp);
    let outcome = Outcome::default();
    let out = outcome.clone();
    let pending = websocket::connect(&lp, &server.url(), direct(), move |r| {
        *out.borrow_mut() = Some(r)
    })
    .unwrap();
    let connected = wait(&lp, &outcome).expect("connected");
    assert!(!pending.is_pending());
    pending.cancel();
    echo_over(&lp, connected);
    websocket::abort_all(&lp);
}

/// Proxies from the environment: one test, since variables are process-wide (the
/// other tests here use `Proxy::Direct` and never read them). The server is reached
/// by a name under `.test` (the resolver, or the proxy, maps it to 127.0.0.1):
/// loopback addresses are never proxied from the environment.
#[test]
fn proxies_from_the_environment() {
    struct Unset;
    impl Drop for Unset {
        fn drop(&mut self) {
            for name in ["http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY"] {
                std::env::remove_var(name);
            }
        }
    }
    let _unset = Unset;
    let lp = Loop::new().unwrap();
    let server = EchoServer::start(&lp);
    let proxy = ConnectProxy::start(Answer::Tunnel, 1);
    let addr = server.addr;
    let by_name = || ConnectOptions::new().resolver(move |_, _| Ok(vec![addr]));
    let url = format!("ws://echo.test:{}/", addr.port());
    let echo = |options: ConnectOptions, url: &str| {
        let connected = wait(&lp, &start(&lp, url, options)).expect("connected");
        echo_over(&lp, connected);
    };

    std::env::set_var("http_proxy", proxy.url());
    echo(by_name(), &url);
    assert_eq!(proxy.heads().len(), 1, "went through http_proxy");
    assert!(proxy.heads()[0].starts_with(&format!("CONNECT echo.test:{} ", addr.port())));

    // Reached directly: loopback, a host in no_proxy, `*`, Proxy::Direct.
    echo(ConnectOptions::new(), &server.url());
    std::env::set_var("no_proxy", "example.com, .echo.test");
    echo(by_name(), &url);
    std::env::set_var("no_proxy", "*");
    echo(by_name(), &url);
    std::env::remove_var("no_proxy");
    std::env::set_var("NO_PROXY", "echo.test");
    echo(by_name(), &url);
    std::env::remove_var("NO_PROXY");
    echo(by_name().proxy(Proxy::Direct), &url);
    websocket::abort_all(&lp);
    assert_eq!(proxy.finish().len(), 1, "the proxy saw only the first");
    assert_eq!(server.accepted.get(), 6);

    // Upper-case HTTP_PROXY is not read (curl's rule); a bad http_proxy is an error.
    std::env::remove_var("http_proxy");
    std::env::set_var("HTTP_PROXY", "http://127.0.0.1:1");
    echo(by_name(), &url);
    std::env::set_var("http_proxy", "ftp://proxy.example");
    let err = websocket::connect(&lp, &url, by_name(), |_| {}).unwrap_err();
    assert!(matches!(err, ConnectError::ProxyUrl { ref url, .. } if url == "ftp://proxy.example"));
    websocket::abort_all(&lp);
}

/// Sets its flag when dropped.
struct DropFlag(Rc<Cell<bool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}
