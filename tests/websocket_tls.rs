//! wss://: our client against our server over TLS on one loop, both sides driven by
//! the loop-driven handshakes (`upgrade::accept` with `server_tls`, `upgrade::upgrade`
//! with a `wss://` request), with a test CA made at run time.
#![cfg(feature = "tls")]

mod util;

use std::cell::RefCell;
use std::net::{TcpListener, TcpStream};
use std::rc::Rc;

use net_websocket_ev::ev::Loop;
use net_websocket_ev::handshake::{ClientRequest, Request, Response};
use net_websocket_ev::websocket::upgrade::{
    accept, upgrade, HandshakeOptions, UpgradeError, Upgraded,
};
use net_websocket_ev::{Client, OpCode, Server, WebSocket};
use util::run_until;
use util::tls::TestPki;

type Outcome<H> = Rc<RefCell<Option<Result<Upgraded<H>, UpgradeError>>>>;

/// Both handshakes over TLS on `lp`: the server's and the client's outcome.
fn handshake(lp: &Loop, pki: &TestPki, server_name: &str) -> (Outcome<Request>, Outcome<Response>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let client_stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (server_stream, _) = listener.accept().unwrap();
    let served: Outcome<Request> = Rc::default();
    let s = served.clone();
    let options = HandshakeOptions {
        server_tls: Some(pki.server_tls()),
        ..Default::default()
    };
    accept(lp, server_stream, options, move |r| {
        *s.borrow_mut() = Some(r)
    });
    let (mut request, ..) = ClientRequest::from_url(&format!("wss://localhost:{port}/t")).unwrap();
    request.tls_server_name = Some(server_name.into());
    let connected: Outcome<Response> = Rc::default();
    let c = connected.clone();
    let options = HandshakeOptions {
        client_tls: Some(pki.client_tls()),
        ..Default::default()
    };
    upgrade(lp, client_stream, &request, options, move |r| {
        *c.borrow_mut() = Some(r)
    });
    run_until(lp, "both handshakes", || {
        served.borrow().is_some() && connected.borrow().is_some()
    });
    (served, connected)
}

#[test]
fn echo_over_tls() {
    let lp = Loop::new().unwrap();
    let pki = TestPki::new();
    let (served, connected) = handshake(&lp, &pki, "localhost");
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
    assert!(served.tls.is_some() && connected.tls.is_some());
    assert_eq!(served.head.path, "/t");
    let _server = Server::new(served.into_params().on_msg_recv(|ws, _, op, msg, _| {
        ws.queue_msg(msg, op).unwrap();
    }))
    .unwrap();
    let got: Rc<RefCell<Vec<Vec<u8>>>> = Rc::default();
    let closed = Rc::new(RefCell::new(None));
    let (g, c) = (got.clone(), closed.clone());
    let client = Client::new(
        connected
            .into_params()
            .on_msg_recv(move |_, _, _, msg, _| g.borrow_mut().push(msg.to_vec()))
            .on_close(move |_: &WebSocket, code| *c.borrow_mut() = Some(code)),
    )
    .unwrap();
    let sizes = [0usize, 1, 125, 126, 65535, 65536, 1 << 20];
    for &size in &sizes {
        let msg: Vec<u8> = (0..size).map(|i| (i * 7 + i / 256) as u8).collect();
        client.queue_msg(&msg, OpCode::Binary).unwrap();
    }
    run_until(&lp, "every echo", || got.borrow().len() == sizes.len());
    for (msg, &size) in got.borrow().iter().zip(&sizes) {
        assert_eq!(msg.len(), size);
        assert!(msg
            .iter()
            .enumerate()
            .all(|(i, &b)| b == (i * 7 + i / 256) as u8));
    }
    client.close(Some(1000), "bye").unwrap();
    run_until(&lp, "the close", || closed.borrow().is_some());
    assert_eq!(*closed.borrow(), Some(1000));
}

#[test]
fn wrong_name_is_refused() {
    let lp = Loop::new().unwrap();
    let pki = TestPki::new();
    let (served, connected) = handshake(&lp, &pki, "not-the-server.example");
    match connected.borrow_mut().take().unwrap() {
        Err(UpgradeError::Tls(err)) => assert!(err.to_string().contains("certificate"), "{err}"),
        other => panic!("expected a TLS error, got {other:?}"),
    }
    assert!(served.borrow_mut().take().unwrap().is_err());
}
