//! The loop-driven opening handshakes (`websocket::upgrade::accept` and `upgrade`):
//! good and bad requests and responses, byte splits, timeout, EOF, leftover bytes.
#![cfg(feature = "ev")]

mod util;

use std::cell::RefCell;
use std::io::Read;
use std::net::TcpStream;
use std::rc::Rc;
use std::time::Duration;

use net_websocket_ev::ev::Loop;
use net_websocket_ev::handshake::{
    accept_key, ClientRequest, HandshakeError, Request, Response, ServerHandshake,
};
use net_websocket_ev::proto::Role;
use net_websocket_ev::websocket::upgrade::{
    accept, upgrade, HandshakeOptions, UpgradeError, Upgraded,
};
use net_websocket_ev::{OpCode, Server};
use util::{run_until, spin, tcp_pair, Peer};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const REQUEST: &str = "GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\r\n";

type Outcome<H> = Rc<RefCell<Option<Result<Upgraded<H>, UpgradeError>>>>;

fn start_accept(lp: &Loop, ours: TcpStream, options: HandshakeOptions) -> Outcome<Request> {
    let out: Outcome<Request> = Rc::default();
    let o = out.clone();
    accept(lp, ours, options, move |r| *o.borrow_mut() = Some(r));
    out
}

/// Reads everything until EOF from a non-blocking socket, running the loop.
fn read_to_eof(lp: &Loop, peer: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut eof = false;
    run_until(lp, "the server to close", || {
        let mut buf = [0u8; 4096];
        loop {
            match peer.read(&mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => all.extend_from_slice(&buf[..n]),
                Err(_) => break,
            }
        }
        eof
    });
    all
}

#[test]
fn accept_answers_101_and_keeps_the_bytes_after_the_request() {
    let lp = Loop::new().unwrap();
    let (ours, peer) = tcp_pair();
    let out = start_accept(&lp, ours, HandshakeOptions::default());
    let mut peer = Peer::new(peer, Role::Client);
    let mut wire = REQUEST.as_bytes().to_vec();
    let early = peer.frame(OpCode::Text, b"early");
    wire.extend_from_slice(&early);
    peer.send_raw(&wire); // the request and the first frame in one write
    run_until(&lp, "handshake", || out.borrow().is_some());
    let upgraded = out.borrow_mut().take().unwrap().expect("handshake ok");
    assert_eq!(upgraded.head.path, "/chat");
    assert_eq!(upgraded.protocol, None);
    assert_eq!(upgraded.leftover, early);
    // The 101 went out whole.
    let mut head = vec![0u8; 4096];
    let n = (&peer.sock).read(&mut head).unwrap();
    let head = String::from_utf8_lossy(&head[..n]).to_string();
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(head.contains(&format!(
        "Sec-WebSocket-Accept: {}\r\n",
        accept_key(KEY.as_bytes())
    )));
    assert!(head.ends_with("\r\n\r\n"));
    // The leftover frame reaches on_msg_recv first, then socket bytes.
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    let ws = Server::new(
        upgraded
            .into_params()
            .event_loop(&lp)
            .on_msg_recv(move |_, _, _, msg, _| g.borrow_mut().push(msg.to_vec())),
    )
    .unwrap();
    peer.send_msg(OpCode::Text, b"later");
    run_until(&lp, "two messages", || got.borrow().len() == 2);
    assert_eq!(*got.borrow(), [b"early".to_vec(), b"later".to_vec()]);
    net_websocket_ev::websocket::abort_all(ws.event_loop()); // end the still-open connection with the test
}

#[test]
fn accept_selects_an_offered_subprotocol() {
    let lp = Loop::new().unwrap();
    let (ours, mut peer) = tcp_pair();
    let options = HandshakeOptions::default()
        .select_protocol(|req: &Request| req.protocols.iter().find(|p| *p == "superchat").cloned());
    let out = start_accept(&lp, ours, options);
    let req = REQUEST.replace(
        "\r\n\r\n",
        "\r\nSec-WebSocket-Protocol: chat, superchat\r\n\r\n",
    );
    std::io::Write::write_all(&mut peer, req.as_bytes()).unwrap();
    run_until(&lp, "handshake", || out.borrow().is_some());
    let upgraded = out.borrow_mut().take().unwrap().unwrap();
    assert_eq!(upgraded.protocol.as_deref(), Some("superchat"));
}

fn refused(request: &str, status: &str) -> (HandshakeError, String) {
    let lp = Loop::new().unwrap();
    let (ours, mut peer) = tcp_pair();
    let out = start_accept(&lp, ours, HandshakeOptions::default());
    std::io::Write::write_all(&mut peer, request.as_bytes()).unwrap();
    let answer = String::from_utf8(read_to_eof(&lp, &mut peer)).unwrap();
    assert!(answer.starts_with(status), "{answer}");
    run_until(&lp, "done", || out.borrow().is_some());
    let err = match out.borrow_mut().take().unwrap() {
        Err(UpgradeError::Handshake(err)) => err,
        other => panic!("expected a refusal, got {other:?}"),
    };
    (err, answer)
}

#[test]
fn bad_requests_get_400_and_the_socket_closed() {
    let (err, _) = refused(&REQUEST.replace("GET", "POST"), "HTTP/1.1 400 ");
    assert_eq!(err, HandshakeError::NotGet);
    let (err, _) = refused(
        &REQUEST.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""),
        "HTTP/1.1 400 ",
    );
    assert_eq!(err, HandshakeError::BadKey);
    let (err, _) = refused(
        &REQUEST.replace("Upgrade: websocket\r\n", ""),
        "HTTP/1.1 400 ",
    );
    assert_eq!(err, HandshakeError::MissingUpgrade);
    let (err, _) = refused("garbage\r\n\r\n", "HTTP/1.1 400 ");
    assert!(matches!(err, HandshakeError::Malformed(_)), "{err:?}");
}

/// A TLS client on the plain port (its ClientHello begins with 0x16) is refused at its
/// first byte: nothing it sends will ever end an HTTP head, so waiting for the
/// handshake timeout would only hold the socket.
#[test]
fn a_tls_client_hello_on_the_plain_port_is_refused_at_once() {
    // A record header and the start of a ClientHello, no line end anywhere.
    let (err, _) = refused(
        "\x16\x03\x01\x00\x7f\x01\x00\x00\x7b\x03\x03",
        "HTTP/1.1 400 ",
    );
    assert_eq!(err, HandshakeError::Malformed("method is not a token"));
}

#[test]
fn wrong_version_gets_426_with_the_supported_version() {
    let (err, answer) = refused(
        &REQUEST.replace("Version: 13", "Version: 8"),
        "HTTP/1.1 426 ",
    );
    assert_eq!(err, HandshakeError::UnsupportedVersion(Some("8".into())));
    assert!(answer.contains("Sec-WebSocket-Version: 13\r\n"), "{answer}");
}

#[test]
fn header_over_the_limit_is_refused() {
    let lp = Loop::new().unwrap();
    let (ours, mut peer) = tcp_pair();
    let out = start_accept(&lp, ours, HandshakeOptions::default().max_header_size(64));
    std::io::Write::write_all(&mut peer, REQUEST.as_bytes()).unwrap();
    let answer = String::from_utf8(read_to_eof(&lp, &mut peer)).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    let result = out.borrow_mut().take().unwrap();
    assert!(matches!(
        result,
        Err(UpgradeError::Handshake(
            HandshakeError::HeaderTooLarge { .. }
        ))
    ));
}

#[test]
fn request_written_one_byte_per_loop_turn() {
    let lp = Loop::new().unwrap();
    let (ours, mut peer) = tcp_pair();
    let out = start_accept(&lp, ours, HandshakeOptions::default());
    let bytes = REQUEST.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        std::io::Write::write_all(&mut peer, &[*b]).unwrap();
        spin(&lp, 2);
        if i + 1 < bytes.len() {
            assert!(out.borrow().is_none(), "finished early at byte {i}");
        }
    }
    run_until(&lp, "handshake", || out.borrow().is_some());
    let upgraded = out.borrow_mut().take().unwrap().unwrap();
    assert!(upgraded.leftover.is_empty());
}

#[test]
fn request_split_in_two_at_every_position_keeps_the_leftover() {
    let lp = Loop::new().unwrap();
    let mut wire = REQUEST.as_bytes().to_vec();
    wire.extend_from_slice(&[0x81, 0x80, 1, 2, 3, 4]); // an empty masked text frame
    for split in 1..wire.len() {
        let (ours, mut peer) = tcp_pair();
        let out = start_accept(&lp, ours, HandshakeOptions::default());
        std::io::Write::write_all(&mut peer, &wire[..split]).unwrap();
        spin(&lp, 2);
        std::io::Write::write_all(&mut peer, &wire[split..]).unwrap();
        run_until(&lp, "handshake", || out.borrow().is_some());
        let upgraded = out.borrow_mut().take().unwrap();
        let upgraded = upgraded.unwrap_or_else(|e| panic!("split at {split}: {e}"));
        // The frame bytes that came with the request are kept, whatever the split
        // (some may still be in the socket when the head completes).
        let mut rest = upgraded.leftover.clone();
        let mut stream = upgraded.stream;
        let mut buf = [0u8; 64];
        run_until(&lp, "the frame bytes", || {
            if let Ok(n) = stream.read(&mut buf) {
                rest.extend_from_slice(&buf[..n]);
            }
            rest.len() >= 6
        });
        assert_eq!(rest, [0x81, 0x80, 1, 2, 3, 4], "split at {split}");
    }
}

#[test]
fn handshake_timeout_closes_the_socket() {
    let lp = Loop::new().unwrap();
    let (ours, mut peer) = tcp_pair();
    let out = start_accept(
        &lp,
        ours,
        HandshakeOptions::default().timeout(Duration::from_millis(50)),
    );
    std::io::Write::write_all(&mut peer, b"GET / HTTP/1.1\r\n").unwrap();
    let answer = read_to_eof(&lp, &mut peer);
    assert!(answer.is_empty());
    run_until(&lp, "done", || out.borrow().is_some());
    assert!(matches!(
        out.borrow_mut().take().unwrap(),
        Err(UpgradeError::Timeout)
    ));
}

#[test]
fn peer_hanging_up_during_the_handshake_is_eof() {
    let lp = Loop::new().unwrap();
    let (ours, peer) = tcp_pair();
    let out = start_accept(&lp, ours, HandshakeOptions::default());
    peer.shutdown(std::net::Shutdown::Write).unwrap();
    run_until(&lp, "done", || out.borrow().is_some());
    assert!(matches!(
        out.borrow_mut().take().unwrap(),
        Err(UpgradeError::Eof)
    ));
}

fn start_upgrade(lp: &Loop, ours: TcpStream) -> Outcome<Response> {
    let out: Outcome<Response> = Rc::default();
    let o = out.clone();
    let request = ClientRequest::new("localhost", "/x");
    upgrade(lp, ours, &request, HandshakeOptions::default(), move |r| {
        *o.borrow_mut() = Some(r)
    });
    out
}

/// Plays the server for `upgrade`: reads the request, answers with `answer(request)`.
fn serve(lp: &Loop, peer: &mut TcpStream, answer: impl FnOnce(&Request) -> Vec<u8>) {
    let mut parser = ServerHandshake::new(8192);
    let mut request = None;
    run_until(lp, "the request", || {
        let mut buf = [0u8; 4096];
        if let Ok(n) = peer.read(&mut buf) {
            request = parser.feed(&buf[..n]).unwrap();
        }
        request.is_some()
    });
    std::io::Write::write_all(peer, &answer(&request.unwrap())).unwrap();
}

#[test]
fn upgrade_accepts_a_good_101_and_keeps_the_frame_after_it() {
    let lp = Loop::new().unwrap();
    let (ours, mut peer) = tcp_pair();
    let out = start_upgrade(&lp, ours);
    serve(&lp, &mut peer, |req| {
        assert_eq!(req.path, "/x");
        let mut answer = net_websocket_ev::handshake::response(req, None);
        answer.extend_from_slice(&[0x81, 0x02, b'h', b'i']);
        answer
    });
    run_until(&lp, "upgrade", || out.borrow().is_some());
    let upgraded = out.borrow_mut().take().unwrap().expect("upgrade ok");
    assert_eq!(upgraded.leftover, [0x81, 0x02, b'h', b'i']);
}

#[test]
fn upgrade_refuses_a_wrong_accept_key_and_a_non_101() {
    let lp = Loop::new().unwrap();
    let (ours, mut peer) = tcp_pair();
    let out = start_upgrade(&lp, ours);
    serve(&lp, &mut peer, |_| {
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
            .to_vec()
    });
    run_until(&lp, "upgrade", || out.borrow().is_some());
    assert!(matches!(
        out.borrow_mut().take().unwrap(),
        Err(UpgradeError::Handshake(HandshakeError::BadAccept))
    ));

    let (ours, mut peer) = tcp_pair();
    let out = start_upgrade(&lp, ours);
    serve(&lp, &mut peer, |_| {
        b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n".to_vec()
    });
    run_until(&lp, "upgrade", || out.borrow().is_some());
    assert!(matches!(
        out.borrow_mut().take().unwrap(),
        Err(UpgradeError::Handshake(HandshakeError::BadStatus(403)))
    ));
}

#[test]
fn refusal_survives_unread_bytes_after_a_bad_request() {
    let lp = Loop::new().unwrap();
    let (ours, mut peer) = tcp_pair();
    let out = start_accept(&lp, ours, HandshakeOptions::default());
    let mut wire = REQUEST.replace("GET", "POST").into_bytes();
    wire.extend(std::iter::repeat(b'x').take(10_000));
    std::io::Write::write_all(&mut peer, &wire).unwrap();
    run_until(&lp, "done", || out.borrow().is_some());
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    // The end of the answer: None for a clean end of stream, else the error.
    let mut end = None;
    run_until(&lp, "the end of the answer", || {
        match peer.read(&mut buf) {
            Ok(0) => end = Some(None),
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => end = Some(Some(e.kind())),
        }
        end.is_some()
    });
    let err = end.unwrap();
    assert!(
        all.starts_with(b"HTTP/1.1 400 "),
        "got {:?} then {err:?}",
        String::from_utf8_lossy(&all)
    );
    assert_eq!(err, None, "reset instead of a clean close after the 400");
}

/// `upgrade` refuses a request that `validate` refuses (a header injection) before
/// writing a byte.
#[test]
fn upgrade_refuses_an_injected_header_and_writes_nothing() {
    let lp = Loop::new().unwrap();
    let (ours, mut peer) = tcp_pair();
    let (mut request, ..) = ClientRequest::from_url("ws://localhost/x").unwrap();
    request
        .headers
        .push(("X-Id".into(), "1\r\nX-Admin: yes".into()));
    let out: Outcome<Response> = Rc::default();
    let o = out.clone();
    upgrade(&lp, ours, &request, HandshakeOptions::default(), move |r| {
        *o.borrow_mut() = Some(r)
    });
    match out.borrow_mut().take() {
        Some(Err(UpgradeError::Handshake(HandshakeError::Malformed(_)))) => {}
        other => panic!("expected a refusal at once, got {other:?}"),
    }
    // The socket was dropped unwritten: the peer reads EOF, nothing before it.
    assert!(read_to_eof(&lp, &mut peer).is_empty());
}
