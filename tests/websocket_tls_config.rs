//! wss:// configurations: client certificates required and optional, SNI picking the
//! certificate, skipped verification, a `wss://` URL with an IPv6 address, a wrong
//! name, the crate's builders with a CA of one's own, the bundled roots when no client
//! config is given, and configs that cannot work. Each handshake is our client
//! against our server on one loop (see `util::tls`); the connection over TLS itself
//! is tested in `websocket_tls.rs`.
#![cfg(feature = "tls")]

mod util;

use std::net::{TcpListener, TcpStream};
use std::rc::Rc;

use net_websocket_ev::ev::Loop;
use net_websocket_ev::handshake::{ClientRequest, Request, Response};
use net_websocket_ev::tls::rustls::{self, Connection};
use net_websocket_ev::tls::{ClientTls, Roots, ServerTls};
use net_websocket_ev::websocket::upgrade::{
    accept, upgrade, HandshakeOptions, UpgradeError, Upgraded,
};
use util::run_until;
use util::tls::{
    close_both, echo_pair, handshake, handshake_on, tcp, unwrap_both, Outcome, TestPki,
};

/// The certificates the client showed, as the server saw them.
fn client_certs(served: &Upgraded<Request>) -> usize {
    match served.tls.as_ref().unwrap().rustls() {
        Connection::Server(conn) => conn.peer_certificates().map_or(0, |c| c.len()),
        Connection::Client(_) => panic!("a server session expected"),
    }
}

#[test]
fn client_certificates_required() {
    let lp = Loop::new().unwrap();
    let pki = TestPki::new();
    let required = pki.server_tls_checking_clients(false);
    // With one: in, and the server sees it.
    let ends = unwrap_both(handshake_on(
        &lp,
        tcp(false),
        required.clone(),
        pki.client_tls_with_cert(),
        "localhost",
    ));
    assert_eq!(client_certs(&ends.0), 1);
    let (_server, client, server_seen, client_seen) = echo_pair(&lp, ends, |p| p, |p| p);
    client.queue_text("with a certificate").unwrap();
    run_until(&lp, "the echo", || client_seen.count() == 1);
    close_both(&lp, &client, &server_seen, &client_seen);
    // Without: refused by the server (the client learns it from the alert).
    let (served, connected) = handshake_on(
        &lp,
        tcp(false),
        required.clone(),
        pki.client_tls(),
        "localhost",
    );
    match served.borrow_mut().take().unwrap() {
        Err(UpgradeError::Tls(_)) => {}
        other => panic!("expected a TLS error, got {other:?}"),
    }
    assert!(connected.borrow_mut().take().unwrap().is_err());
    // With one from another CA: refused too.
    let other = TestPki::new();
    let (served, connected) = handshake_on(
        &lp,
        tcp(false),
        required,
        pki.client_tls_showing(&other.client_cert, &other.client_key),
        "localhost",
    );
    assert!(matches!(
        served.borrow_mut().take().unwrap(),
        Err(UpgradeError::Tls(_))
    ));
    assert!(connected.borrow_mut().take().unwrap().is_err());
    // The client builder's certificate, to a server that requires one.
    let with_cert = ClientTls::builder()
        .roots(Roots::None)
        .ca_pem(pki.ca_cert.as_bytes())
        .unwrap()
        .client_cert_pem(pki.client_cert.as_bytes(), pki.client_key.as_bytes())
        .unwrap()
        .build()
        .unwrap();
    let ends = unwrap_both(handshake_on(
        &lp,
        tcp(false),
        pki.server_tls_requiring_client_certs(),
        with_cert,
        "localhost",
    ));
    assert_eq!(client_certs(&ends.0), 1);
}

#[test]
fn client_certificates_optional() {
    let lp = Loop::new().unwrap();
    let pki = TestPki::new();
    let optional = pki.server_tls_checking_clients(true);
    let ends = unwrap_both(handshake_on(
        &lp,
        tcp(false),
        optional.clone(),
        pki.client_tls(),
        "localhost",
    ));
    assert_eq!(client_certs(&ends.0), 0);
    let (_server, client, server_seen, client_seen) = echo_pair(&lp, ends, |p| p, |p| p);
    client.queue_text("without a certificate").unwrap();
    run_until(&lp, "the echo", || client_seen.count() == 1);
    close_both(&lp, &client, &server_seen, &client_seen);
    let ends = unwrap_both(handshake_on(
        &lp,
        tcp(false),
        optional.clone(),
        pki.client_tls_with_cert(),
        "localhost",
    ));
    assert_eq!(client_certs(&ends.0), 1);
    drop(ends);
    // A certificate shown is still checked.
    let other = TestPki::new();
    let (served, _) = handshake_on(
        &lp,
        tcp(false),
        optional,
        pki.client_tls_showing(&other.client_cert, &other.client_key),
        "localhost",
    );
    assert!(matches!(
        served.borrow_mut().take().unwrap(),
        Err(UpgradeError::Tls(_))
    ));
}

#[test]
fn sni_picks_the_certificate_by_name() {
    let lp = Loop::new().unwrap();
    let pki = TestPki::new();
    let key = |names: &[&str]| {
        let (cert, key) = pki.leaf(names);
        ServerTls::certified_key_from_pem(cert.as_bytes(), key.as_bytes()).unwrap()
    };
    let (a, b) = (key(&["a.test"]), key(&["b.test"]));
    let picks = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let p = picks.clone();
    let tls = ServerTls::builder()
        .sni(move |name| {
            p.lock().unwrap().push(name.map(str::to_owned));
            match name {
                Some("a.test") => Some(a.clone()),
                Some("b.test") => Some(b.clone()),
                _ => None,
            }
        })
        .build()
        .unwrap();
    for name in ["b.test", "a.test"] {
        // The client checks the certificate against the name: only the right one
        // passes.
        let (served, connected) = unwrap_both(handshake_on(
            &lp,
            tcp(false),
            tls.clone(),
            pki.client_tls(),
            name,
        ));
        match served.tls.as_ref().unwrap().rustls() {
            Connection::Server(conn) => assert_eq!(conn.server_name(), Some(name)),
            Connection::Client(_) => panic!("a server session expected"),
        }
        drop((served, connected));
    }
    // An unknown name is refused.
    let (served, connected) = handshake_on(&lp, tcp(false), tls, pki.client_tls(), "c.test");
    assert!(matches!(
        served.borrow_mut().take().unwrap(),
        Err(UpgradeError::Tls(_))
    ));
    assert!(matches!(
        connected.borrow_mut().take().unwrap(),
        Err(UpgradeError::Tls(_))
    ));
    let picks = picks.lock().unwrap().clone();
    assert_eq!(
        picks,
        [
            Some("b.test".to_owned()),
            Some("a.test".to_owned()),
            Some("c.test".to_owned())
        ]
    );
}

#[test]
fn skipped_verification_connects_to_an_untrusted_server() {
    let lp = Loop::new().unwrap();
    let pki = TestPki::new();
    let stranger = TestPki::new(); // a CA the client does not know
    let insecure = ClientTls::builder()
        .roots(Roots::None)
        .dangerous_accept_any_server_certificate()
        .build()
        .unwrap();
    let ends = unwrap_both(handshake_on(
        &lp,
        tcp(false),
        stranger.server_tls(),
        insecure,
        "not-its-name.example",
    ));
    let (_server, client, server_seen, client_seen) = echo_pair(&lp, ends, |p| p, |p| p);
    client.queue_text("insecure but encrypted").unwrap();
    run_until(&lp, "the echo", || client_seen.count() == 1);
    close_both(&lp, &client, &server_seen, &client_seen);
    // The same server to a client that checks: refused, unknown issuer.
    let (served, connected) = handshake_on(
        &lp,
        tcp(false),
        stranger.server_tls(),
        pki.client_tls(),
        "localhost",
    );
    match connected.borrow_mut().take().unwrap() {
        Err(UpgradeError::Tls(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ))) => {}
        other => panic!("expected an unknown issuer, got {other:?}"),
    }
    assert!(served.borrow_mut().take().unwrap().is_err());
}

#[test]
fn wss_url_with_an_ipv6_address() {
    let lp = Loop::new().unwrap();
    let pki = TestPki::new();
    let listener = TcpListener::bind("[::1]:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (request, host, to) = ClientRequest::from_url(&format!("wss://[::1]:{port}/v6")).unwrap();
    assert_eq!((host.as_str(), to), ("::1", port));
    // The address, without brackets, is the name the certificate must carry.
    let name = request.tls_server_name.clone().unwrap();
    assert_eq!(name, "::1");
    let client_stream = TcpStream::connect((host.as_str(), to)).unwrap();
    let (server_stream, _) = listener.accept().unwrap();
    let ends = unwrap_both(handshake_on(
        &lp,
        (client_stream, server_stream),
        pki.server_tls(),
        pki.client_tls(),
        &name,
    ));
    let (_server, client, server_seen, client_seen) = echo_pair(&lp, ends, |p| p, |p| p);
    client.queue_text("over IPv6").unwrap();
    run_until(&lp, "the echo", || client_seen.count() == 1);
    close_both(&lp, &client, &server_seen, &client_seen);
}

#[test]
fn wrong_name_is_refused() {
    let lp = Loop::new().unwrap();
    let pki = TestPki::new();
    let (served, connected) = handshake(&lp, &pki, "not-the-server.example");
    match connected.borrow_mut().take().unwrap() {
        Err(UpgradeError::Tls(rustls::Error::InvalidCertificate(err))) => assert!(
            matches!(
                err,
                rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. }
            ),
            "{err:?}"
        ),
        other => panic!("expected a TLS error, got {other:?}"),
    }
    assert!(served.borrow_mut().take().unwrap().is_err());
}

#[test]
fn the_builders_with_a_ca_of_ones_own() {
    let lp = Loop::new().unwrap();
    let pki = TestPki::new();
    // A client trusting only our CA, against the test server.
    let custom_ca = ClientTls::builder()
        .roots(Roots::None)
        .ca_pem(pki.ca_cert.as_bytes())
        .unwrap()
        .build()
        .unwrap();
    let ends = unwrap_both(handshake_on(
        &lp,
        tcp(false),
        pki.server_tls(),
        custom_ca.clone(),
        "localhost",
    ));
    let (_server, client, server_seen, client_seen) = echo_pair(&lp, ends, |p| p, |p| p);
    client.queue_text("custom CA").unwrap();
    run_until(&lp, "the echo", || client_seen.count() == 1);
    close_both(&lp, &client, &server_seen, &client_seen);
    // The name is checked with it too.
    let (_, connected) = handshake_on(&lp, tcp(false), pki.server_tls(), custom_ca, "other.test");
    assert!(matches!(
        connected.borrow_mut().take().unwrap(),
        Err(UpgradeError::Tls(rustls::Error::InvalidCertificate(_)))
    ));
    // A server built from PEM, against the test client, on the IP address it
    // carries.
    let server = ServerTls::builder()
        .cert_pem(pki.server_cert.as_bytes(), pki.server_key.as_bytes())
        .unwrap()
        .build()
        .unwrap();
    let ends = unwrap_both(handshake_on(
        &lp,
        tcp(false),
        server,
        pki.client_tls(),
        "127.0.0.1",
    ));
    let (_server, client, server_seen, client_seen) = echo_pair(&lp, ends, |p| p, |p| p);
    client.queue_text("certificate from PEM").unwrap();
    run_until(&lp, "the echo", || client_seen.count() == 1);
    close_both(&lp, &client, &server_seen, &client_seen);
}

#[test]
fn without_a_client_config_the_bundled_roots_decide() {
    let lp = Loop::new().unwrap();
    let pki = TestPki::new();
    let (client_stream, server_stream) = tcp(false);
    let served: Outcome<Request> = Rc::default();
    let s = served.clone();
    let options = HandshakeOptions::default().server_tls(pki.server_tls());
    accept(&lp, server_stream, options, move |r| {
        *s.borrow_mut() = Some(r)
    });
    let (request, ..) = ClientRequest::from_url("wss://localhost/t").unwrap();
    let connected: Outcome<Response> = Rc::default();
    let c = connected.clone();
    // No client_tls: the Mozilla roots, which do not know the test CA.
    upgrade(&lp, client_stream, &request, Default::default(), move |r| {
        *c.borrow_mut() = Some(r)
    });
    run_until(&lp, "both handshakes", || {
        served.borrow().is_some() && connected.borrow().is_some()
    });
    match connected.borrow_mut().take().unwrap() {
        Err(UpgradeError::Tls(rustls::Error::InvalidCertificate(
            rustls::CertificateError::UnknownIssuer,
        ))) => {}
        other => panic!("expected an unknown issuer, got {other:?}"),
    }
    assert!(served.borrow_mut().take().unwrap().is_err());
}

#[test]
fn configs_that_cannot_work_fail_to_build() {
    assert!(ClientTls::builder().roots(Roots::None).build().is_err());
    assert!(ClientTls::builder()
        .roots(Roots::None)
        .dangerous_accept_any_server_certificate()
        .build()
        .is_ok());
    assert!(ServerTls::builder().build().is_err());
    let pki = TestPki::new();
    assert!(ClientTls::builder().ca_pem(b"not PEM").is_err());
    // A key that is not the certificate's.
    assert!(ServerTls::builder()
        .cert_pem(pki.server_cert.as_bytes(), pki.client_key.as_bytes())
        .is_err());
}

/// `WebSocket::tls_info` and `Session::info`: what each side's session agreed on, the
/// same before and after the handshake hands over; `None` for a plain connection and
/// once closed.
#[test]
fn tls_info_reports_what_the_session_agreed() {
    let lp = Loop::new().unwrap();
    let pki = TestPki::new();
    let ends = unwrap_both(handshake_on(
        &lp,
        tcp(false),
        pki.server_tls_checking_clients(false),
        pki.client_tls_with_cert(),
        "localhost",
    ));
    let at_handshake = (
        ends.0.tls.as_ref().unwrap().info(),
        ends.1.tls.as_ref().unwrap().info(),
    );
    let (server, client, server_seen, client_seen) = echo_pair(&lp, ends, |p| p, |p| p);
    let (on_server, on_client) = (server.tls_info().unwrap(), client.tls_info().unwrap());
    assert_eq!((&on_server, &on_client), (&at_handshake.0, &at_handshake.1));
    for info in [&on_server, &on_client] {
        assert_eq!(
            info.protocol_version,
            Some(rustls::ProtocolVersion::TLSv1_3)
        );
        assert_eq!(
            info.cipher_suite,
            Some(rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256)
        );
        assert_eq!(info.alpn_protocol, None);
        assert_eq!(info.peer_certificates.len(), 1);
    }
    // Each side holds the other's certificate; the server heard the name asked for.
    let pem_der = |pem: &str| {
        use rustls::pki_types::{pem::PemObject, CertificateDer};
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    };
    assert_eq!(on_server.peer_certificates[0], pem_der(&pki.client_cert));
    assert_eq!(on_client.peer_certificates[0], pem_der(&pki.server_cert));
    assert_eq!(on_server.server_name.as_deref(), Some("localhost"));
    assert_eq!(on_client.server_name, None);
    close_both(&lp, &client, &server_seen, &client_seen);
    assert_eq!(server.tls_info(), None);

    // A plain connection has none.
    let (ours, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    let plain =
        net_websocket_ev::Server::new(net_websocket_ev::Params::new(ours).event_loop(&lp)).unwrap();
    assert_eq!(plain.tls_info(), None);
    net_websocket_ev::websocket::abort_all(&lp);
}
