//! The client side of the opening handshake: URLs, the request we send, real server
//! answers, every rejection rule, byte-split feeding, and the round trip through the
//! server side.

use base64::Engine as _;
use net_websocket_ev::handshake::{
    parse_request, parse_response, response, ClientHandshake, ClientRequest, HandshakeError,
    Response, DEFAULT_MAX_HEADER_SIZE,
};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
// base64(sha1(KEY + GUID)), as RFC 6455 §1.3 gives it.
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

const NODE_WS: &str = "HTTP/1.1 101 Switching Protocols\r\n\
Upgrade: websocket\r\n\
Connection: Upgrade\r\n\
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
\r\n";

const PYTHON_WEBSOCKETS: &str = "HTTP/1.1 101 Switching Protocols\r\n\
Date: Mon, 15 Apr 2024 10:00:00 GMT\r\n\
Upgrade: websocket\r\n\
Connection: Upgrade\r\n\
Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
Sec-WebSocket-Protocol: chat\r\n\
Server: Python/3.11 websockets/12.0\r\n\
\r\n";

const NGINX_PROXY: &str = "HTTP/1.1 101 Switching Protocols\r\n\
Server: nginx/1.24.0\r\n\
Date: Mon, 15 Apr 2024 10:00:00 GMT\r\n\
Connection: upgrade\r\n\
upgrade: WebSocket\r\n\
sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
\r\n";

fn offered() -> Vec<String> {
    vec!["chat".into(), "superchat".into()]
}

fn parse_whole(answer: &str) -> Response {
    let (resp, consumed) =
        parse_response(answer.as_bytes(), KEY, &offered(), DEFAULT_MAX_HEADER_SIZE)
            .unwrap()
            .expect("complete answer");
    assert_eq!(consumed, answer.len());
    resp
}

#[test]
fn urls() {
    let cases: &[(&str, &str, u16, &str, &str)] = &[
        ("ws://example.com", "example.com", 80, "example.com", "/"),
        ("ws://example.com/", "example.com", 80, "example.com", "/"),
        (
            "ws://example.com:80/x",
            "example.com",
            80,
            "example.com",
            "/x",
        ),
        (
            "ws://example.com:/x",
            "example.com",
            80,
            "example.com",
            "/x",
        ),
        (
            "WS://Example.com:8080/a/b?c=d&e",
            "Example.com",
            8080,
            "Example.com:8080",
            "/a/b?c=d&e",
        ),
        (
            "ws://127.0.0.1:9001?room=1",
            "127.0.0.1",
            9001,
            "127.0.0.1:9001",
            "/?room=1",
        ),
        ("ws://[::1]/", "::1", 80, "[::1]", "/"),
        ("ws://[::1]:65535/p", "::1", 65535, "[::1]:65535", "/p"),
        ("ws://h:0080", "h", 80, "h", "/"),
    ];
    for &(url, host, port, host_header, path) in cases {
        let (request, got_host, got_port) = ClientRequest::from_url(url).unwrap();
        assert_eq!((got_host.as_str(), got_port), (host, port), "{url}");
        assert_eq!(
            (request.host.as_str(), request.path.as_str()),
            (host_header, path),
            "{url}"
        );
        assert!(request.protocols.is_empty() && request.headers.is_empty());
    }
    // wss:// is a URL like ws:// with the feature, refused without it.
    let wss = [
        ("wss://example.com/", 443, "example.com"),
        ("WSS://example.com:8443/x?y", 8443, "example.com:8443"),
    ];
    for (url, port, host_header) in wss {
        let parsed = ClientRequest::from_url(url);
        assert_eq!(parsed.is_ok(), cfg!(feature = "tls"), "{url}");
        if let Ok((request, host, got_port)) = parsed {
            assert_eq!(request.tls_server_name.as_deref(), Some("example.com"));
            assert_eq!(host, "example.com");
            assert_eq!(
                (got_port, request.host.as_str()),
                (port, host_header),
                "{url}"
            );
        }
    }
    let (request, ..) = ClientRequest::from_url("ws://example.com/").unwrap();
    assert_eq!(request.tls_server_name, None);
    let refused = [
        "wss:example.com/",
        "wss://user@example.com/",
        "http://example.com/",
        "example.com/",
        "ws:/example.com",
        "ws://",
        "ws:///path",
        "ws://:8080/",
        "ws://example.com:65536/",
        "ws://example.com:-1/",
        "ws://example.com:8a/",
        "ws://example.com:80:80/",
        "ws://user:pw@example.com/",
        "ws://example.com/#frag",
        "ws://example.com/a b",
        "ws://example.com/\r\nX: y",
        " ws://example.com/",
        "ws://[::1/",
        "ws://[::1]x/",
        "ws://[zz]/",
        "ws://a]b/",
    ];
    for url in refused {
        assert!(
            matches!(
                ClientRequest::from_url(url),
                Err(HandshakeError::Malformed(_))
            ),
            "{url}"
        );
    }
}

#[test]
fn built_request() {
    let mut request = ClientRequest::new("localhost:8080", "/chat");
    request.protocols = offered();
    let request = request.header("Origin", "http://localhost");
    assert_eq!(
        String::from_utf8(request.build_with_key(KEY)).unwrap(),
        "GET /chat HTTP/1.1\r\n\
         Host: localhost:8080\r\n\
         Upgrade: websocket\r\n\
         Connection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: chat, superchat\r\n\
         Origin: http://localhost\r\n\
         \r\n"
    );
    let empty_path = ClientRequest::new("h", "");
    assert!(empty_path
        .build_with_key(KEY)
        .starts_with(b"GET / HTTP/1.1\r\n"));
}

#[test]
fn keys_are_fresh_16_random_bytes() {
    let request = ClientRequest::from_url("ws://h/").unwrap().0;
    let (bytes, key) = request.build();
    let nonce = base64::engine::general_purpose::STANDARD
        .decode(&key)
        .unwrap();
    assert_eq!(nonce.len(), 16);
    assert_eq!(bytes, request.build_with_key(&key));
    let (_, other) = request.build();
    assert_ne!(key, other);
}

#[test]
fn real_answers() {
    let resp = parse_whole(NODE_WS);
    assert_eq!((resp.status, resp.protocol), (101, None));
    assert_eq!(resp.headers.len(), 3);

    let resp = parse_whole(PYTHON_WEBSOCKETS);
    assert_eq!(resp.protocol.as_deref(), Some("chat"));
    assert_eq!(resp.header("server"), Some("Python/3.11 websockets/12.0"));

    let resp = parse_whole(NGINX_PROXY);
    assert_eq!(resp.protocol, None);
    assert_eq!(resp.header("Sec-WebSocket-Accept"), Some(ACCEPT));

    let bare_lf = NODE_WS.replace("\r\n", "\n");
    assert_eq!(parse_whole(&bare_lf).status, 101);
    let no_reason = NODE_WS.replace("101 Switching Protocols", "101");
    assert_eq!(parse_whole(&no_reason).status, 101);
    let empty_protocol = PYTHON_WEBSOCKETS.replace("Protocol: chat", "Protocol:");
    assert_eq!(parse_whole(&empty_protocol).protocol, None);
    let empty_extensions = format!(
        "{}Sec-WebSocket-Extensions: \r\n\r\n",
        &NODE_WS[..NODE_WS.len() - 2]
    );
    assert_eq!(parse_whole(&empty_extensions).status, 101);
}

/// `NODE_WS` with `extra` header lines before the blank line.
fn with_extra(extra: &str) -> String {
    format!("{}{extra}\r\n", &NODE_WS[..NODE_WS.len() - 2])
}

fn rejections() -> Vec<(String, HandshakeError)> {
    use HandshakeError::*;
    let status = |line: &str| NODE_WS.replacen("HTTP/1.1 101 Switching Protocols", line, 1);
    vec![
        (status("HTTP/1.1 404 Not Found"), BadStatus(404)),
        (status("HTTP/1.1 200 OK"), BadStatus(200)),
        (status("HTTP/1.1 426 Upgrade Required"), BadStatus(426)),
        (status("HTTP/1.0 101 Switching Protocols"), NotHttp11),
        (
            status("HTTP/1.1 1010 Switching"),
            Malformed("status code is not 3 digits"),
        ),
        (
            status("HTTP/1.1 10a Switching"),
            Malformed("status code is not 3 digits"),
        ),
        (
            status("HTTP/1.1"),
            Malformed("status line is not \"HTTP/x.y code reason\""),
        ),
        (
            status("HTTP/11 101 Switching"),
            Malformed("bad HTTP version"),
        ),
        (status("ICY 101 Switching"), Malformed("bad HTTP version")),
        (
            NODE_WS.replace("Upgrade: websocket\r\n", ""),
            MissingUpgrade,
        ),
        (
            NODE_WS.replace("Upgrade: websocket", "Upgrade: h2c"),
            MissingUpgrade,
        ),
        (
            NODE_WS.replace("Connection: Upgrade\r\n", ""),
            MissingConnectionUpgrade,
        ),
        (
            NODE_WS.replace("Connection: Upgrade", "Connection: close"),
            MissingConnectionUpgrade,
        ),
        (
            NODE_WS.replace(&format!("Sec-WebSocket-Accept: {ACCEPT}\r\n"), ""),
            BadAccept,
        ),
        (
            NODE_WS.replace(ACCEPT, "HSmrc0sMlYUkAGmm5OPpG2HaGWk="),
            BadAccept,
        ),
        (NODE_WS.replace(ACCEPT, &ACCEPT.to_lowercase()), BadAccept),
        (
            with_extra(&format!("Sec-WebSocket-Accept: {ACCEPT}\r\n")),
            BadAccept,
        ),
        (
            with_extra("Sec-WebSocket-Protocol: mqtt\r\n"),
            UnrequestedProtocol("mqtt".into()),
        ),
        (
            with_extra("Sec-WebSocket-Protocol: Chat\r\n"),
            UnrequestedProtocol("Chat".into()),
        ),
        (
            with_extra("Sec-WebSocket-Protocol: chat, superchat\r\n"),
            UnrequestedProtocol("chat, superchat".into()),
        ),
        (
            with_extra("Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: chat\r\n"),
            UnrequestedProtocol("chat, chat".into()),
        ),
        (
            with_extra("Sec-WebSocket-Extensions: permessage-deflate\r\n"),
            UnrequestedExtension("permessage-deflate".into()),
        ),
        (
            with_extra(" folded\r\n"),
            Malformed("obsolete line folding"),
        ),
        (with_extra("X: \0\r\n"), Malformed("NUL byte in head")),
        (
            with_extra("X y\r\n"),
            Malformed("header line without colon"),
        ),
    ]
}

#[test]
fn every_rejection_rule() {
    for (answer, expected) in rejections() {
        assert_eq!(
            parse_response(answer.as_bytes(), KEY, &offered(), DEFAULT_MAX_HEADER_SIZE)
                .map(|r| r.is_some()),
            Err(expected.clone()),
            "{answer:?}"
        );
    }
    // A protocol when we offered none.
    let answer = PYTHON_WEBSOCKETS.as_bytes();
    assert_eq!(
        parse_response(answer, KEY, &[], DEFAULT_MAX_HEADER_SIZE).map(|r| r.is_some()),
        Err(HandshakeError::UnrequestedProtocol("chat".into()))
    );
    // The right answer to another key.
    assert_eq!(
        parse_response(NODE_WS.as_bytes(), "x3JJHMbDL1EzLkh9GBhXDw==", &[], 8192)
            .map(|r| r.is_some()),
        Err(HandshakeError::BadAccept)
    );
    assert_eq!(HandshakeError::BadStatus(404).http_status(), None);
}

type Outcome = Result<Option<(u16, Option<String>, Vec<(String, String)>)>, HandshakeError>;

fn feed_pieces<'a>(pieces: impl IntoIterator<Item = &'a [u8]>, max: usize) -> (Outcome, Vec<u8>) {
    let mut hs = ClientHandshake::new(KEY.into(), offered(), max);
    let mut result = Ok(None);
    for piece in pieces {
        let fed = hs
            .feed(piece)
            .map(|r| r.map(|r| (r.status, r.protocol, r.headers)));
        if result == Ok(None) {
            result = fed;
        }
    }
    (result, hs.take_leftover())
}

#[test]
fn byte_split_at_every_position_gives_the_same_result() {
    let mut samples: Vec<String> = [NODE_WS, PYTHON_WEBSOCKETS, NGINX_PROXY]
        .iter()
        .map(|s| s.to_string())
        .collect();
    samples.extend(rejections().into_iter().map(|(answer, _)| answer));
    // A server's first frames may come in the same read as its answer.
    let tail: &[u8] = b"\x81\x05hello\x89\x00\r\n\r\n";
    for sample in samples {
        let mut bytes = sample.as_bytes().to_vec();
        bytes.extend_from_slice(tail);
        let whole = parse_response(&bytes, KEY, &offered(), DEFAULT_MAX_HEADER_SIZE);
        let expected: Outcome = whole
            .clone()
            .map(|r| r.map(|(r, _)| (r.status, r.protocol, r.headers)));
        let expected_leftover = match &whole {
            Ok(Some((_, consumed))) => {
                assert_eq!(&bytes[*consumed..], tail);
                tail.to_vec()
            }
            _ => Vec::new(),
        };
        assert!(expected != Ok(None));
        for split in 0..=bytes.len() {
            let (first, second) = bytes.split_at(split);
            let got = feed_pieces([first, second], DEFAULT_MAX_HEADER_SIZE);
            assert_eq!(
                got,
                (expected.clone(), expected_leftover.clone()),
                "split at {split} of {sample:?}"
            );
        }
        let got = feed_pieces(bytes.chunks(1), DEFAULT_MAX_HEADER_SIZE);
        assert_eq!(got, (expected, expected_leftover), "bytewise {sample:?}");
    }
}

#[test]
fn header_size_limit_is_inclusive() {
    let bytes = PYTHON_WEBSOCKETS.as_bytes();
    let len = bytes.len();
    assert!(parse_response(bytes, KEY, &offered(), len)
        .unwrap()
        .is_some());
    assert!(matches!(feed_pieces(bytes.chunks(1), len).0, Ok(Some(_))));
    let too_large = HandshakeError::HeaderTooLarge { limit: len - 1 };
    assert_eq!(
        parse_response(bytes, KEY, &offered(), len - 1).unwrap_err(),
        too_large
    );
    assert_eq!(feed_pieces(bytes.chunks(1), len - 1).0, Err(too_large));
}

#[test]
fn round_trip() {
    for url in [
        "ws://localhost:9001/chat?room=1",
        "ws://[::1]/",
        "ws://example.com",
    ] {
        let (mut request, _host, _port) = ClientRequest::from_url(url).unwrap();
        request.protocols = vec!["v1.example".into(), "v2.example".into()];
        request
            .headers
            .push(("Origin".into(), "http://example.com".into()));
        let (mut sent, key) = request.build();
        sent.extend_from_slice(b"\x81\x82abcd\x00\x00");

        let (req, consumed) = parse_request(&sent, DEFAULT_MAX_HEADER_SIZE)
            .unwrap()
            .unwrap();
        assert_eq!(&sent[consumed..], b"\x81\x82abcd\x00\x00");
        assert_eq!(req.host, request.host);
        assert_eq!(req.path, request.path);
        assert_eq!(req.key, key);
        assert_eq!(req.protocols, request.protocols);
        assert_eq!(req.header("origin"), Some("http://example.com"));

        for selected in [None, Some("v2.example")] {
            let mut answer = response(&req, selected);
            answer.extend_from_slice(b"\x81\x00");
            let mut client = ClientHandshake::new(
                key.clone(),
                request.protocols.clone(),
                DEFAULT_MAX_HEADER_SIZE,
            );
            let resp = client.feed(&answer).unwrap().expect("complete answer");
            assert_eq!(resp.status, 101);
            assert_eq!(resp.protocol.as_deref(), selected);
            assert_eq!(client.take_leftover(), b"\x81\x00");

            let (resp, consumed) =
                parse_response(&answer, &key, &request.protocols, DEFAULT_MAX_HEADER_SIZE)
                    .unwrap()
                    .unwrap();
            assert_eq!(resp.protocol.as_deref(), selected);
            assert_eq!(consumed, answer.len() - 2);
        }
    }
}

#[test]
fn arbitrary_input_never_panics() {
    let interesting = [0u8, b'\r', b'\n', b' ', b'\t', b':', b',', b'1', 0x7f, 0xff];
    let base = PYTHON_WEBSOCKETS.as_bytes();
    for position in 0..base.len() {
        for &byte in &interesting {
            let mut bytes = base.to_vec();
            bytes[position] = byte;
            let _ = parse_response(&bytes, KEY, &offered(), DEFAULT_MAX_HEADER_SIZE);
            let _ = parse_response(&bytes, KEY, &[], 40);
        }
    }
    for url in [
        "ws://[",
        "ws://[]",
        "ws://:",
        "ws://a:99999999999999999999",
        "ws://\u{e9}/",
        "ws://é:1/ü",
    ] {
        let _ = ClientRequest::from_url(url);
    }
}

/// An answer that cannot be HTTP is refused at its first byte: a TLS alert from a
/// `wss://` port that got a plain request fails at once.
#[test]
fn an_answer_that_cannot_be_http_is_refused_at_once() {
    let mut hs = ClientHandshake::new(KEY.into(), offered(), DEFAULT_MAX_HEADER_SIZE);
    assert_eq!(
        hs.feed(b"\x15\x03\x03\x00\x02\x02\x46")
            .map(|r| r.is_some()),
        Err(HandshakeError::Malformed("bad HTTP version"))
    );
    let mut hs = ClientHandshake::new(KEY.into(), offered(), DEFAULT_MAX_HEADER_SIZE);
    assert_eq!(hs.feed(b"HTT").map(|r| r.is_some()), Ok(false));
}

/// A request with CR or LF (or another control byte) in a field would inject headers
/// of the user's choosing: `validate` refuses it, and every other field rule.
#[test]
fn validate_refuses_what_would_break_the_request() {
    let base = || ClientRequest::from_url("ws://example.com/chat").unwrap().0;
    assert_eq!(base().validate(), Ok(()));
    let mut ok = base();
    ok.protocols.push("chat.v2".into());
    ok.headers
        .push(("Origin".into(), "http://example.com".into()));
    ok.headers.push(("X-Tabbed".into(), "a\tb".into()));
    ok.headers
        .push(("Sec-WebSocket-Extensions".into(), "x-ext".into()));
    assert_eq!(ok.validate(), Ok(()));
    type Spoil = Box<dyn Fn(&mut ClientRequest)>;
    let bad: Vec<(&str, Spoil)> = vec![
        (
            "CRLF in a value",
            Box::new(|r| r.headers.push(("X-Id".into(), "1\r\nX-Admin: yes".into()))),
        ),
        (
            "LF in a value",
            Box::new(|r| r.headers.push(("X-Id".into(), "1\nX".into()))),
        ),
        (
            "NUL in a value",
            Box::new(|r| r.headers.push(("X-Id".into(), "1\0".into()))),
        ),
        (
            "CRLF in a name",
            Box::new(|r| r.headers.push(("X\r\nY".into(), "1".into()))),
        ),
        (
            "a space in a name",
            Box::new(|r| r.headers.push(("X Y".into(), "1".into()))),
        ),
        (
            "an empty name",
            Box::new(|r| r.headers.push((String::new(), "1".into()))),
        ),
        (
            "the handshake's own Host",
            Box::new(|r| r.headers.push(("host".into(), "evil".into()))),
        ),
        (
            "the handshake's own key",
            Box::new(|r| r.headers.push(("Sec-WebSocket-Key".into(), "x".into()))),
        ),
        (
            "a protocol that is not a token",
            Box::new(|r| r.protocols.push("a b".into())),
        ),
        (
            "an empty protocol",
            Box::new(|r| r.protocols.push(String::new())),
        ),
        (
            "CRLF in the path",
            Box::new(|r| r.path = "/a\r\nX: y".into()),
        ),
        ("a space in the path", Box::new(|r| r.path = "/a b".into())),
        (
            "CRLF in the host",
            Box::new(|r| r.host = "h\r\nX: y".into()),
        ),
        ("an empty host", Box::new(|r| r.host = String::new())),
    ];
    for (what, spoil) in bad {
        let mut request = base();
        spoil(&mut request);
        assert!(
            matches!(request.validate(), Err(HandshakeError::Malformed(_))),
            "{what}: {:?}",
            request.validate()
        );
    }
}
