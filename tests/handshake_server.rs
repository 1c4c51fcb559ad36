//! The server side of the opening handshake: real requests, every rejection rule,
//! leftover bytes, byte-split feeding and the header size limit.

use net_websocket_ev::handshake::{
    error_response, parse_request, response, Answer, HandshakeError, Request, ServerHandshake,
    DEFAULT_MAX_HEADER_SIZE,
};
use rand::{Rng, SeedableRng};

// Accept values below were computed with Python's hashlib, not with this crate.

const RFC_6455: &str = "GET /chat HTTP/1.1\r\n\
Host: server.example.com\r\n\
Upgrade: websocket\r\n\
Connection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Origin: http://example.com\r\n\
Sec-WebSocket-Protocol: chat, superchat\r\n\
Sec-WebSocket-Version: 13\r\n\
\r\n";

const CHROMIUM: &str = "GET /chat?room=7 HTTP/1.1\r\n\
Host: localhost:8080\r\n\
Connection: Upgrade\r\n\
Pragma: no-cache\r\n\
Cache-Control: no-cache\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n\
Upgrade: websocket\r\n\
Origin: http://localhost:8080\r\n\
Sec-WebSocket-Version: 13\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-US,en;q=0.9\r\n\
Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
Sec-WebSocket-Protocol: chat, superchat\r\n\
\r\n";

const FIREFOX: &str = "GET /socket HTTP/1.1\r\n\
Host: localhost:8080\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0\r\n\
Accept: */*\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Sec-WebSocket-Version: 13\r\n\
Origin: http://localhost:8080\r\n\
Sec-WebSocket-Extensions: permessage-deflate\r\n\
Sec-WebSocket-Key: vqqMfYqVnPdOYwJzQWn3FQ==\r\n\
Connection: keep-alive, Upgrade\r\n\
Sec-Fetch-Dest: empty\r\n\
Sec-Fetch-Mode: websocket\r\n\
Sec-Fetch-Site: same-origin\r\n\
Pragma: no-cache\r\n\
Cache-Control: no-cache\r\n\
Upgrade: websocket\r\n\
\r\n";

const PYTHON_WEBSOCKETS: &str = "GET / HTTP/1.1\r\n\
Host: 127.0.0.1:8765\r\n\
Upgrade: websocket\r\n\
Connection: Upgrade\r\n\
Sec-WebSocket-Key: mGtx0vDSQsxsLODMnEZcYQ==\r\n\
Sec-WebSocket-Version: 13\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
User-Agent: Python/3.11 websockets/12.0\r\n\
\r\n";

const NODE_WS: &str = "GET /echo HTTP/1.1\r\n\
Sec-WebSocket-Version: 13\r\n\
Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n\
Connection: Upgrade\r\n\
Upgrade: websocket\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
Host: localhost:8080\r\n\
\r\n";

fn parse_whole(request: &str) -> Request {
    let (req, consumed) = parse_request(request.as_bytes(), DEFAULT_MAX_HEADER_SIZE)
        .unwrap()
        .expect("complete request");
    assert_eq!(consumed, request.len());
    req
}

fn accept_of(answer: &[u8]) -> String {
    let text = String::from_utf8(answer.to_vec()).unwrap();
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix("Sec-WebSocket-Accept: "))
        .expect("accept header");
    line.to_owned()
}

#[test]
fn rfc_6455_example() {
    let req = parse_whole(RFC_6455);
    assert_eq!(req.path, "/chat");
    assert_eq!(req.host, "server.example.com");
    assert_eq!(req.key, "dGhlIHNhbXBsZSBub25jZQ==");
    assert_eq!(req.protocols, ["chat", "superchat"]);
    assert!(req.extensions.is_empty());
    assert_eq!(req.headers.len(), 7);
    assert_eq!(req.header("ORIGIN"), Some("http://example.com"));
    assert_eq!(
        response(&req, Some("chat")),
        b"HTTP/1.1 101 Switching Protocols\r\n\
          Upgrade: websocket\r\n\
          Connection: Upgrade\r\n\
          Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
          Sec-WebSocket-Protocol: chat\r\n\
          \r\n"
    );
    assert_eq!(
        response(&req, None),
        b"HTTP/1.1 101 Switching Protocols\r\n\
          Upgrade: websocket\r\n\
          Connection: Upgrade\r\n\
          Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
          \r\n"
    );
}

#[test]
fn chromium() {
    let req = parse_whole(CHROMIUM);
    assert_eq!(req.path, "/chat?room=7");
    assert_eq!(req.host, "localhost:8080");
    assert_eq!(req.protocols, ["chat", "superchat"]);
    assert_eq!(
        req.extensions,
        ["permessage-deflate; client_max_window_bits"]
    );
    assert_eq!(req.header("accept-language"), Some("en-US,en;q=0.9"));
    let answer = response(&req, Some("superchat"));
    assert_eq!(accept_of(&answer), "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
    assert!(!String::from_utf8(answer).unwrap().contains("Extensions"));
}

#[test]
fn firefox() {
    let req = parse_whole(FIREFOX);
    assert_eq!(req.path, "/socket");
    assert_eq!(req.extensions, ["permessage-deflate"]);
    assert!(req.protocols.is_empty());
    assert_eq!(req.header("Sec-Fetch-Mode"), Some("websocket"));
    assert_eq!(
        accept_of(&response(&req, None)),
        "AZvwfvgPbKlJ8ZgfwNAkb1frreI="
    );
}

#[test]
fn python_websockets() {
    let req = parse_whole(PYTHON_WEBSOCKETS);
    assert_eq!(
        (req.path.as_str(), req.host.as_str()),
        ("/", "127.0.0.1:8765")
    );
    assert_eq!(
        accept_of(&response(&req, None)),
        "LthgutMFF8YKDnlE4W4aWCHZ9QU="
    );
}

#[test]
fn node_ws() {
    let req = parse_whole(NODE_WS);
    assert_eq!(
        (req.path.as_str(), req.host.as_str()),
        ("/echo", "localhost:8080")
    );
    assert_eq!(
        accept_of(&response(&req, None)),
        "C/0nmHhBztSRGR1CwL6Tf4ZjwpY="
    );
}

/// `RFC_6455` with the line starting with `from` replaced by `to` (`None`: removed).
fn edited(from: &str, to: Option<&str>) -> String {
    let mut out = String::new();
    let mut hit = false;
    for line in RFC_6455.split_inclusive("\r\n") {
        if !hit && line.starts_with(from) {
            hit = true;
            if let Some(to) = to {
                out.push_str(to);
                out.push_str("\r\n");
            }
        } else {
            out.push_str(line);
        }
    }
    assert!(hit, "no line starts with {from:?}");
    out
}

/// `RFC_6455` with `extra` (whole lines, CRLF-terminated) before the blank line.
fn with_extra(extra: &str) -> String {
    format!("{}{extra}\r\n", &RFC_6455[..RFC_6455.len() - 2])
}

fn rejections() -> Vec<(String, HandshakeError)> {
    use HandshakeError::*;
    vec![
        (edited("GET", Some("POST /chat HTTP/1.1")), NotGet),
        (edited("GET", Some("get /chat HTTP/1.1")), NotGet),
        (edited("GET", Some("GET /chat HTTP/1.0")), NotHttp11),
        (edited("GET", Some("GET /chat HTTP/2.0")), NotHttp11),
        (
            edited("GET", Some("GET /chat HTTP/1.1x")),
            Malformed("bad HTTP version"),
        ),
        (
            edited("GET", Some("GET /chat http/1.1")),
            Malformed("bad HTTP version"),
        ),
        (
            edited("GET", Some("GET /chat")),
            Malformed("request line is not \"METHOD target HTTP/x.y\""),
        ),
        (
            edited("GET", Some("GET /chat HTTP/1.1 x")),
            Malformed("request line is not \"METHOD target HTTP/x.y\""),
        ),
        (
            edited("GET", Some("GET  /chat HTTP/1.1")),
            Malformed("request line is not \"METHOD target HTTP/x.y\""),
        ),
        (
            edited("GET", Some("GET  HTTP/1.1")),
            Malformed("empty request target"),
        ),
        (
            edited("GET", Some("G(T /chat HTTP/1.1")),
            Malformed("method is not a token"),
        ),
        (
            edited("GET", Some("GET /c\thAt HTTP/1.1")),
            Malformed("control byte in start line"),
        ),
        (edited("Host", None), MissingHost),
        (edited("Host", Some("Host:")), MissingHost),
        (edited("Host", Some("Host:   ")), MissingHost),
        (
            with_extra("host: other\r\n"),
            Malformed("repeated Host header"),
        ),
        (edited("Upgrade", None), MissingUpgrade),
        (edited("Upgrade", Some("Upgrade: h2c")), MissingUpgrade),
        (
            edited("Upgrade", Some("Upgrade: websockets")),
            MissingUpgrade,
        ),
        (edited("Upgrade", Some("Upgrade:")), MissingUpgrade),
        (edited("Connection", None), MissingConnectionUpgrade),
        (
            edited("Connection", Some("Connection: keep-alive")),
            MissingConnectionUpgrade,
        ),
        (
            edited("Connection", Some("Connection: upgrades")),
            MissingConnectionUpgrade,
        ),
        (
            edited("Connection", Some("Connection: keep-alive Upgrade")),
            MissingConnectionUpgrade,
        ),
        (
            edited("Sec-WebSocket-Version", None),
            UnsupportedVersion(None),
        ),
        (
            edited("Sec-WebSocket-Version", Some("Sec-WebSocket-Version: 8")),
            UnsupportedVersion(Some("8".into())),
        ),
        (
            edited("Sec-WebSocket-Version", Some("Sec-WebSocket-Version:")),
            UnsupportedVersion(Some(String::new())),
        ),
        (
            edited(
                "Sec-WebSocket-Version",
                Some("Sec-WebSocket-Version: 13, 8"),
            ),
            UnsupportedVersion(Some("13, 8".into())),
        ),
        (
            with_extra("Sec-WebSocket-Version: 8\r\n"),
            UnsupportedVersion(Some("13, 8".into())),
        ),
        (edited("Sec-WebSocket-Key", None), BadKey),
        (
            edited("Sec-WebSocket-Key", Some("Sec-WebSocket-Key:")),
            BadKey,
        ),
        (
            edited("Sec-WebSocket-Key", Some("Sec-WebSocket-Key: not base64!")),
            BadKey,
        ),
        // base64 of 15 and of 17 bytes
        (
            edited(
                "Sec-WebSocket-Key",
                Some("Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA"),
            ),
            BadKey,
        ),
        (
            edited(
                "Sec-WebSocket-Key",
                Some("Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAA="),
            ),
            BadKey,
        ),
        // 16 bytes without padding, with non-canonical trailing bits, with inner space
        (
            edited(
                "Sec-WebSocket-Key",
                Some("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ"),
            ),
            BadKey,
        ),
        (
            edited(
                "Sec-WebSocket-Key",
                Some("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR=="),
            ),
            BadKey,
        ),
        (
            edited(
                "Sec-WebSocket-Key",
                Some("Sec-WebSocket-Key: dGhlIHNhbXBs ZSBub25jZQ=="),
            ),
            BadKey,
        ),
        (
            with_extra("Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"),
            BadKey,
        ),
        (
            with_extra(" folded\r\n"),
            Malformed("obsolete line folding"),
        ),
        (
            with_extra("\tfolded\r\n"),
            Malformed("obsolete line folding"),
        ),
        (with_extra("X-A: b\0c\r\n"), Malformed("NUL byte in head")),
        (
            edited("GET", Some("GET /ch\0t HTTP/1.1")),
            Malformed("NUL byte in head"),
        ),
        (
            with_extra("X-A : b\r\n"),
            Malformed("header name is not a token"),
        ),
        (
            with_extra(": b\r\n"),
            Malformed("header name is not a token"),
        ),
        (
            with_extra("X(A): b\r\n"),
            Malformed("header name is not a token"),
        ),
        (
            with_extra("X-A b\r\n"),
            Malformed("header line without colon"),
        ),
        (
            with_extra("X-A: b\rc\r\n"),
            Malformed("control byte in header value"),
        ),
        (
            with_extra("X-A: b\x7f\r\n"),
            Malformed("control byte in header value"),
        ),
        (
            with_extra("X-A: b\x01\r\n"),
            Malformed("control byte in header value"),
        ),
        (format!("\r\n{RFC_6455}"), Malformed("empty start line")),
        (
            with_extra("Sec-WebSocket-Protocol: a b\r\n"),
            Malformed("subprotocol is not a token"),
        ),
        (
            with_extra("Sec-WebSocket-Protocol: \"chat\"\r\n"),
            Malformed("subprotocol is not a token"),
        ),
    ]
}

#[test]
fn every_rejection_rule() {
    for (request, expected) in rejections() {
        assert_eq!(
            parse_request(request.as_bytes(), DEFAULT_MAX_HEADER_SIZE).map(|r| r.is_some()),
            Err(expected.clone()),
            "{request:?}"
        );
        let status = expected.http_status().unwrap();
        let answer = String::from_utf8(error_response(&expected)).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{answer}");
        assert!(head.contains("\r\nConnection: close"), "{answer}");
        assert!(
            head.contains(&format!("\r\nContent-Length: {}", body.len())),
            "{answer}"
        );
        assert_eq!(body, format!("{expected}\n"));
        assert_eq!(
            head.contains("\r\nSec-WebSocket-Version: 13"),
            status == 426,
            "{answer}"
        );
    }
}

#[test]
fn error_statuses() {
    let answer = error_response(&HandshakeError::UnsupportedVersion(None));
    assert!(answer.starts_with(b"HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n"));
    let answer = error_response(&HandshakeError::HeaderTooLarge { limit: 10 });
    assert!(answer.starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
    let answer = error_response(&HandshakeError::BadKey);
    assert!(answer.starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
}

#[test]
fn tolerated_variants() {
    let accepted = [
        edited("Upgrade", Some("upgrade:WebSocket")),
        edited("Upgrade", Some("UPGRADE: h2c, websocket")),
        edited("Upgrade", Some("Upgrade: ,websocket,")),
        edited("Connection", Some("Connection: keep-alive, Upgrade")),
        edited("Connection", Some("connection:upgrade")),
        edited("Connection", Some("Connection: \t UPGRADE \t")),
        edited(
            "Sec-WebSocket-Version",
            Some("sec-websocket-version:   13  "),
        ),
        edited(
            "Sec-WebSocket-Key",
            Some("SEC-WEBSOCKET-KEY:\tdGhlIHNhbXBsZSBub25jZQ==\t"),
        ),
        edited("Host", Some("HOST: server.example.com")),
        RFC_6455.replace("\r\n", "\n"),
        RFC_6455.replacen("\r\n", "\n", 3),
        with_extra("X-Empty:\r\nX-Utf-8: caf\u{e9}\r\n"),
    ];
    for request in accepted {
        let req = parse_whole(&request);
        assert_eq!(req.key, "dGhlIHNhbXBsZSBub25jZQ==", "{request:?}");
        assert_eq!(req.host, "server.example.com");
        assert_eq!(req.path, "/chat");
    }
}

#[test]
fn repeated_protocol_headers_are_concatenated() {
    let request = edited(
        "Sec-WebSocket-Protocol",
        Some("Sec-WebSocket-Protocol: chat, , superchat\r\nsec-websocket-protocol: v2.json,mqtt"),
    );
    let req = parse_whole(&request);
    assert_eq!(req.protocols, ["chat", "superchat", "v2.json", "mqtt"]);
    let request = with_extra(
        "Sec-WebSocket-Extensions: permessage-deflate\r\nSec-WebSocket-Extensions: x-foo; a=1\r\n",
    );
    assert_eq!(
        parse_whole(&request).extensions,
        ["permessage-deflate", "x-foo; a=1"]
    );
}

#[test]
fn leftover_bytes_are_kept_exactly() {
    let leftover: &[u8] =
        b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58\r\n\r\nGET / HTTP/1.1\r\n\r\n\0";
    for request in [RFC_6455, CHROMIUM, FIREFOX, PYTHON_WEBSOCKETS, NODE_WS] {
        let mut bytes = request.as_bytes().to_vec();
        bytes.extend_from_slice(leftover);
        let (_, consumed) = parse_request(&bytes, DEFAULT_MAX_HEADER_SIZE)
            .unwrap()
            .unwrap();
        assert_eq!(&bytes[consumed..], leftover);

        let mut hs = ServerHandshake::new(DEFAULT_MAX_HEADER_SIZE);
        assert!(hs.feed(&bytes).unwrap().is_some());
        assert_eq!(hs.buffered(), leftover.len());
        assert_eq!(hs.take_leftover(), leftover);
        assert_eq!(hs.buffered(), 0);
        assert!(hs.take_leftover().is_empty());

        // Bytes fed after completion are kept for the WebSocket, never lost.
        let mut hs = ServerHandshake::new(DEFAULT_MAX_HEADER_SIZE);
        assert!(hs.feed(request.as_bytes()).unwrap().is_some());
        assert_eq!(hs.feed(b"ab").unwrap().map(|r| r.path), None);
        assert_eq!(hs.feed(b"c").unwrap().map(|r| r.path), None);
        assert_eq!(hs.take_leftover(), b"abc");
    }
}

#[test]
fn nothing_is_leftover_before_completion_or_after_an_error() {
    let mut hs = ServerHandshake::new(DEFAULT_MAX_HEADER_SIZE);
    assert!(hs.feed(&RFC_6455.as_bytes()[..20]).unwrap().is_none());
    assert_eq!(hs.buffered(), 20);
    assert!(hs.take_leftover().is_empty());
    assert_eq!(hs.buffered(), 20);

    let mut hs = ServerHandshake::new(DEFAULT_MAX_HEADER_SIZE);
    let bad = edited("GET", Some("POST /chat HTTP/1.1"));
    assert_eq!(hs.feed(bad.as_bytes()).unwrap_err(), HandshakeError::NotGet);
    // The error sticks.
    assert_eq!(
        hs.feed(RFC_6455.as_bytes()).unwrap_err(),
        HandshakeError::NotGet
    );
    assert!(hs.take_leftover().is_empty());
}

type Outcome =
    Result<Option<(String, String, String, Vec<String>, Vec<(String, String)>)>, HandshakeError>;

fn outcome(result: Result<Option<Request>, HandshakeError>) -> Outcome {
    result.map(|req| req.map(|r| (r.path, r.host, r.key, r.protocols, r.headers)))
}

/// Feeds `bytes` in the given pieces; the result of the first piece that completes
/// (or fails), with the leftover.
fn feed_pieces<'a>(pieces: impl IntoIterator<Item = &'a [u8]>, max: usize) -> (Outcome, Vec<u8>) {
    let mut hs = ServerHandshake::new(max);
    let mut result = Ok(None);
    for piece in pieces {
        let fed = hs.feed(piece);
        if result == Ok(None) {
            result = outcome(fed);
        }
    }
    (result, hs.take_leftover())
}

#[test]
fn byte_split_at_every_position_gives_the_same_result() {
    let mut samples: Vec<String> = [RFC_6455, CHROMIUM, FIREFOX, PYTHON_WEBSOCKETS, NODE_WS]
        .iter()
        .map(|s| s.to_string())
        .collect();
    samples.push(RFC_6455.replace("\r\n", "\n"));
    samples.extend(rejections().into_iter().map(|(request, _)| request));
    let tail: &[u8] = b"\x88\x80\r\n\r\nrest";
    for sample in samples {
        let mut bytes = sample.as_bytes().to_vec();
        bytes.extend_from_slice(tail);
        let whole = parse_request(&bytes, DEFAULT_MAX_HEADER_SIZE);
        let expected = outcome(whole.clone().map(|r| r.map(|(req, _)| req)));
        let expected_leftover = match &whole {
            Ok(Some((_, consumed))) => bytes[*consumed..].to_vec(),
            _ => Vec::new(),
        };
        assert!(expected != Ok(None));
        for split in 0..=bytes.len() {
            let (first, second) = bytes.split_at(split);
            let (got, leftover) = feed_pieces([first, second], DEFAULT_MAX_HEADER_SIZE);
            assert_eq!(got, expected, "split at {split} of {sample:?}");
            assert_eq!(
                leftover, expected_leftover,
                "split at {split} of {sample:?}"
            );
        }
        let (got, leftover) = feed_pieces(bytes.chunks(1), DEFAULT_MAX_HEADER_SIZE);
        assert_eq!(
            (got, leftover),
            (expected, expected_leftover),
            "bytewise {sample:?}"
        );
    }
}

#[test]
fn incomplete_prefixes_ask_for_more() {
    let bytes = RFC_6455.as_bytes();
    for end in 0..bytes.len() {
        assert!(
            parse_request(&bytes[..end], DEFAULT_MAX_HEADER_SIZE)
                .unwrap()
                .is_none(),
            "prefix of {end} bytes"
        );
    }
}

#[test]
fn header_size_limit_is_inclusive() {
    let bytes = CHROMIUM.as_bytes();
    let len = bytes.len();
    let mut with_tail = bytes.to_vec();
    with_tail.extend_from_slice(&[b'x'; 100]);

    // Exactly at the limit: fine, whatever follows.
    assert!(parse_request(bytes, len).unwrap().is_some());
    assert!(parse_request(&with_tail, len).unwrap().is_some());
    let (got, leftover) = feed_pieces(with_tail.chunks(1), len);
    assert!(matches!(got, Ok(Some(_))));
    assert_eq!(leftover, [b'x'; 100]);

    // One over: refused once `limit` bytes are in without the end of the head.
    let too_large = Err(HandshakeError::HeaderTooLarge { limit: len - 1 });
    assert_eq!(
        parse_request(bytes, len - 1).map(|r| r.is_some()),
        too_large
    );
    assert_eq!(
        parse_request(&with_tail, len - 1).map(|r| r.is_some()),
        too_large
    );
    assert!(parse_request(&bytes[..len - 2], len - 1).unwrap().is_none());
    assert_eq!(
        parse_request(&bytes[..len - 1], len - 1).map(|r| r.is_some()),
        too_large
    );
    let mut hs = ServerHandshake::new(len - 1);
    for (i, byte) in bytes.iter().enumerate() {
        let fed = hs.feed(std::slice::from_ref(byte));
        if i < len - 2 {
            assert!(fed.unwrap().is_none(), "byte {i}");
        } else {
            assert_eq!(fed.map(|r| r.is_some()), too_large, "byte {i}");
        }
    }
    // Reading from a peer that never ends its head stays bounded.
    let mut hs = ServerHandshake::new(DEFAULT_MAX_HEADER_SIZE);
    let mut refused = false;
    for _ in 0..1000 {
        if hs.feed(b"X-Filler: aaaaaaaaaaaaaaaa\r\n").is_err() {
            refused = true;
            break;
        }
        assert!(hs.buffered() < DEFAULT_MAX_HEADER_SIZE);
    }
    assert!(refused);
}

#[test]
fn arbitrary_input_never_panics() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(6455);
    let interesting = [
        0u8, b'\r', b'\n', b' ', b'\t', b':', b',', b'=', 0x7f, 0xc3, 0xff,
    ];
    let base = CHROMIUM.as_bytes();
    for position in 0..base.len() {
        for &byte in &interesting {
            let mut bytes = base.to_vec();
            bytes[position] = byte;
            let _ = parse_request(&bytes, DEFAULT_MAX_HEADER_SIZE);
            let _ = parse_request(&bytes, 64);
        }
    }
    for _ in 0..2000 {
        let len = rng.gen_range(0..300);
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                if rng.gen_bool(0.3) {
                    interesting[rng.gen_range(0..interesting.len())]
                } else {
                    rng.gen()
                }
            })
            .collect();
        let _ = parse_request(&bytes, rng.gen_range(0..400));
        let mut hs = ServerHandshake::new(rng.gen_range(0..400));
        for piece in bytes.chunks(rng.gen_range(1..20)) {
            let _ = hs.feed(piece);
        }
        let _ = hs.take_leftover();
    }
}

#[test]
#[cfg(debug_assertions)]
#[should_panic(expected = "was not offered")]
fn selecting_a_protocol_not_offered_is_a_caller_bug() {
    let req = parse_whole(RFC_6455);
    let _ = response(&req, Some("mqtt"));
}

/// Bytes that cannot begin a request are refused as they come, before any line end:
/// a TLS ClientHello (0x16 ...) sent to a plain port fails at its first byte.
#[test]
fn a_start_that_cannot_be_a_request_is_refused_at_once() {
    let mut hs = ServerHandshake::new(DEFAULT_MAX_HEADER_SIZE);
    assert_eq!(
        hs.feed(b"\x16").map(|r| r.is_some()),
        Err(HandshakeError::Malformed("method is not a token"))
    );
    assert_eq!(
        parse_request(b"\x16\x03\x01", DEFAULT_MAX_HEADER_SIZE).map(|r| r.is_some()),
        Err(HandshakeError::Malformed("method is not a token"))
    );
    // A method still arriving, or a request line past its method, waits for more.
    let mut hs = ServerHandshake::new(DEFAULT_MAX_HEADER_SIZE);
    assert_eq!(hs.feed(b"GE").map(|r| r.is_some()), Ok(false));
    assert_eq!(hs.feed(b"T /\x16").map(|r| r.is_some()), Ok(false));
}

// ---- the plain requests a request hook sees, and its answers ----------------------

#[test]
fn plain_requests_pass_only_when_allowed() {
    let plain = "GET /health?verbose HTTP/1.1\r\nHost: a\r\nCookie: a=1; b=\"two\"\r\n\r\n";
    let mut strict = ServerHandshake::new(DEFAULT_MAX_HEADER_SIZE);
    assert_eq!(
        strict.feed(plain.as_bytes()).unwrap_err(),
        HandshakeError::MissingUpgrade
    );
    let mut hs = ServerHandshake::new(DEFAULT_MAX_HEADER_SIZE).allow_plain();
    let req = hs.feed(plain.as_bytes()).unwrap().unwrap();
    assert!(!req.upgrade);
    assert_eq!((req.method.as_str(), req.host.as_str()), ("GET", "a"));
    assert_eq!(req.path_and_query(), ("/health", Some("verbose")));
    assert_eq!(
        req.cookies().collect::<Vec<_>>(),
        [("a", "1"), ("b", "two")]
    );
    assert!(req.key.is_empty() && req.protocols.is_empty());
    // An upgrade still is one, and a broken upgrade still fails.
    let mut hs = ServerHandshake::new(DEFAULT_MAX_HEADER_SIZE).allow_plain();
    assert!(hs.feed(RFC_6455.as_bytes()).unwrap().unwrap().upgrade);
    let broken = RFC_6455.replace("Connection: Upgrade\r\n", "");
    let mut hs = ServerHandshake::new(DEFAULT_MAX_HEADER_SIZE).allow_plain();
    assert_eq!(
        hs.feed(broken.as_bytes()).unwrap_err(),
        HandshakeError::MissingConnectionUpgrade
    );
    // Plain: GET or HEAD; HTTP/1.1 needs one Host, HTTP/1.0 none.
    for (head, expected) in [
        (
            "POST / HTTP/1.1\r\nHost: a\r\n\r\n",
            Err(HandshakeError::NotGet),
        ),
        ("GET / HTTP/1.1\r\n\r\n", Err(HandshakeError::MissingHost)),
        (
            "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
            Err(HandshakeError::NotHttp11),
        ),
        ("HEAD / HTTP/1.0\r\n\r\n", Ok("HEAD")),
    ] {
        let mut hs = ServerHandshake::new(DEFAULT_MAX_HEADER_SIZE).allow_plain();
        let got = hs.feed(head.as_bytes()).map(|r| r.unwrap().method);
        assert_eq!(got.as_deref().map_err(Clone::clone), expected, "{head:?}");
    }
}

#[test]
fn an_answer_writes_exactly_its_headers_and_refuses_injection() {
    let req = parse_whole(RFC_6455);
    let accept = Answer::accept()
        .protocol("chat")
        .header("Set-Cookie", "id=1\tx");
    assert_eq!(
        String::from_utf8(accept.to_bytes(&req, Some("permessage-deflate")).unwrap()).unwrap(),
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\
         Sec-WebSocket-Extensions: permessage-deflate\r\nSet-Cookie: id=1\tx\r\n\r\n"
    );
    let page = Answer::status(200)
        .header("Content-Type", "text/html")
        .body("<p>hi</p>");
    assert_eq!(
        String::from_utf8(page.to_bytes(&req, None).unwrap()).unwrap(),
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n\
         Content-Length: 9\r\n\r\n<p>hi</p>"
    );
    assert!(Answer::status(204)
        .to_bytes(&req, None)
        .unwrap()
        .ends_with(b"Connection: close\r\n\r\n"));
    let refused = |answer: Answer| match answer.to_bytes(&req, None) {
        Err(HandshakeError::Malformed(_)) => {}
        other => panic!("{answer:?} gave {other:?}"),
    };
    refused(Answer::accept().header("X", "a\rb"));
    refused(Answer::accept().header("X", "a\nb"));
    refused(Answer::accept().header("X", "a\0b"));
    refused(Answer::accept().header("X Y", "1"));
    refused(Answer::accept().header("", "1"));
    refused(Answer::accept().header("Sec-WebSocket-Accept", "forged"));
    refused(Answer::status(403).header("transfer-encoding", "chunked"));
    refused(Answer::status(403).header("Connection", "keep-alive"));
    refused(Answer::accept().protocol("superduper"));
    refused(Answer::accept().body("x"));
    assert_eq!(Answer::status(101), Answer::accept()); // one and the same
    refused(Answer::status(99));
    refused(Answer::status(600));
    refused(Answer::status(204).body("x"));
    refused(Answer::status(403).protocol("chat"));
    // Accepting a plain request is the missing upgrade it is.
    let mut hs = ServerHandshake::new(DEFAULT_MAX_HEADER_SIZE).allow_plain();
    let plain = hs
        .feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap()
        .unwrap();
    assert_eq!(
        Answer::accept().to_bytes(&plain, None).unwrap_err(),
        HandshakeError::MissingUpgrade
    );
}
