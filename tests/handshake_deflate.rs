//! permessage-deflate (RFC 7692) negotiation in the opening handshake: every §7.1
//! parameter in both roles, the offers of real clients and of the Autobahn suite,
//! every answer a client must refuse, hostile headers, and the round trip through
//! request, response and both parsers.
#![cfg(feature = "deflate")]

use net_websocket_ev::handshake::deflate::{self, PerMessageDeflate};
use net_websocket_ev::handshake::{
    parse_request, response, response_with_extensions, ClientHandshake, ClientRequest,
    HandshakeError, DEFAULT_MAX_HEADER_SIZE,
};
use net_websocket_ev::proto::{Compression, Window};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

// Offers as real clients send them.
const CHROMIUM: &str = "permessage-deflate; client_max_window_bits";
const FIREFOX: &str = "permessage-deflate";
const NODE_WS: &str = "permessage-deflate; client_max_window_bits";
// websockets' client default (`client_max_window_bits=True`), and its server's
// default answer (12-bit windows both ways).
const PYTHON_WEBSOCKETS: &str = "permessage-deflate; client_max_window_bits";
const PYTHON_WEBSOCKETS_ANSWER: &str =
    "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12";

fn window(max_window_bits: u8, no_context_takeover: bool) -> Window {
    Window::DEFAULT
        .max_window_bits(max_window_bits)
        .no_context_takeover(no_context_takeover)
}

/// Context takeover allowed both ways: nothing asked beyond what the peer asks.
fn takeover() -> PerMessageDeflate {
    PerMessageDeflate::default()
        .server_no_context_takeover(false)
        .client_no_context_takeover(false)
}

/// The server's answer to one header value.
fn accept(value: &str, opts: &PerMessageDeflate) -> Option<(String, Compression)> {
    deflate::accept(&[value.to_owned()], opts)
}

/// The server's answer to one header value, which must be accepted.
fn accepted(value: &str, opts: &PerMessageDeflate) -> (String, Compression) {
    accept(value, opts).unwrap_or_else(|| panic!("{value:?} declined"))
}

/// What a client with `opts` makes of one answered value, which must be accepted.
fn answered(value: &str, opts: &PerMessageDeflate) -> Compression {
    match deflate::check_answer([value], opts) {
        Ok(Some(compression)) => compression,
        other => panic!("{value:?}: {other:?}"),
    }
}

/// The problem a client with `opts` finds in one answered value.
fn refused(value: &str, opts: &PerMessageDeflate) -> String {
    match deflate::check_answer([value], opts) {
        Err(HandshakeError::BadExtension(what)) => what,
        other => panic!("{value:?}: expected BadExtension, got {other:?}"),
    }
}

fn answer_with(extensions: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {ACCEPT}\r\n{extensions}\r\n"
    )
}

// ---- Defaults and the client's offer ----

#[test]
fn defaults() {
    let d = PerMessageDeflate::default();
    assert!(d.server_no_context_takeover && d.client_no_context_takeover);
    assert_eq!(
        (d.server_max_window_bits, d.client_max_window_bits),
        (15, 15)
    );
    assert_eq!((d.level, d.threshold), (1, 128));
}

#[test]
fn offers() {
    let cases = [
        (
            PerMessageDeflate::default(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             client_max_window_bits",
        ),
        (takeover(), "permessage-deflate; client_max_window_bits"),
        (
            PerMessageDeflate::default().client_no_context_takeover(false),
            "permessage-deflate; server_no_context_takeover; client_max_window_bits",
        ),
        (
            takeover().server_max_window_bits(9),
            "permessage-deflate; server_max_window_bits=9; client_max_window_bits",
        ),
        (
            takeover().client_max_window_bits(11),
            "permessage-deflate; client_max_window_bits=11",
        ),
        // Out of range: the nearest window we can compress with.
        (
            takeover()
                .server_max_window_bits(8)
                .client_max_window_bits(99),
            "permessage-deflate; server_max_window_bits=9; client_max_window_bits",
        ),
    ];
    for (opts, expected) in cases {
        assert_eq!(deflate::offer(&opts), expected, "{opts:?}");
    }
}

#[test]
fn request_carries_the_offer() {
    let mut request = ClientRequest::new("example.com", "/");
    request.offer_deflate(&takeover());
    let text = String::from_utf8(request.build_with_key(KEY)).unwrap();
    assert!(text.ends_with(
        "Sec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
    ));
    let (req, _) = parse_request(text.as_bytes(), DEFAULT_MAX_HEADER_SIZE)
        .unwrap()
        .unwrap();
    assert_eq!(
        req.extensions,
        ["permessage-deflate; client_max_window_bits"]
    );
}

// ---- Server: real clients ----

#[test]
fn browsers_and_libraries() {
    for offer in [CHROMIUM, FIREFOX, NODE_WS, PYTHON_WEBSOCKETS] {
        let (answer, c) = accepted(offer, &PerMessageDeflate::default());
        assert_eq!(
            answer,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
        assert_eq!((c.send, c.recv), (window(15, true), window(15, true)));
        assert_eq!((c.level, c.threshold), (1, 128));

        let (answer, c) = accepted(offer, &takeover());
        assert_eq!(answer, "permessage-deflate");
        assert_eq!((c.send, c.recv), (window(15, false), window(15, false)));
    }
    // Small windows: the client's only where its offer allows us to ask.
    let small = takeover()
        .server_max_window_bits(12)
        .client_max_window_bits(12);
    let (answer, c) = accepted(CHROMIUM, &small);
    assert_eq!(
        answer,
        "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
    );
    assert_eq!((c.send, c.recv), (window(12, false), window(12, false)));
    let (answer, c) = accepted(FIREFOX, &small);
    assert_eq!(answer, "permessage-deflate; server_max_window_bits=12");
    assert_eq!((c.send, c.recv), (window(12, false), window(15, false)));
}

#[test]
fn level_and_threshold_are_ours() {
    let opts = PerMessageDeflate::default().level(9).threshold(0);
    let (_, c) = accepted(FIREFOX, &opts);
    assert_eq!((c.level, c.threshold), (9, 0));
    let c = answered("permessage-deflate", &opts);
    assert_eq!((c.level, c.threshold), (9, 0));
}

// ---- Server: each RFC 7692 §7.1 parameter of an offer ----

#[test]
fn server_no_context_takeover_offered_is_granted() {
    let (answer, c) = accepted(
        "permessage-deflate; server_no_context_takeover",
        &takeover(),
    );
    assert_eq!(answer, "permessage-deflate; server_no_context_takeover");
    assert_eq!((c.send, c.recv), (window(15, true), window(15, false)));
}

#[test]
fn client_no_context_takeover_offered_is_a_hint() {
    // Answered, so that it binds the client (RFC 7692 7.1.1.2), and we need no
    // inflater between messages.
    let (answer, c) = accepted(
        "permessage-deflate; client_no_context_takeover",
        &takeover(),
    );
    assert_eq!(answer, "permessage-deflate; client_no_context_takeover");
    assert_eq!((c.send, c.recv), (window(15, false), window(15, true)));
}

#[test]
fn client_no_context_takeover_is_asked_of_any_client() {
    let opts = takeover().client_no_context_takeover(true);
    let (answer, c) = accepted(FIREFOX, &opts);
    assert_eq!(answer, "permessage-deflate; client_no_context_takeover");
    assert_eq!(c.recv, window(15, true));
}

#[test]
fn server_max_window_bits_offered() {
    for offered in 9..=15u8 {
        for ours in 9..=15u8 {
            let opts = takeover().server_max_window_bits(ours);
            let value = format!("permessage-deflate; server_max_window_bits={offered}");
            let (answer, c) = accepted(&value, &opts);
            let chosen = offered.min(ours);
            assert_eq!(
                answer,
                format!("permessage-deflate; server_max_window_bits={chosen}")
            );
            assert_eq!((c.send, c.recv), (window(chosen, false), window(15, false)));
        }
    }
    // We cannot compress with a 256-byte window.
    assert_eq!(
        accept("permessage-deflate; server_max_window_bits=8", &takeover()),
        None
    );
}

#[test]
fn client_max_window_bits_offered() {
    for offered in 8..=15u8 {
        for ours in 9..=15u8 {
            let opts = takeover().client_max_window_bits(ours);
            let value = format!("permessage-deflate; client_max_window_bits={offered}");
            let (answer, c) = accepted(&value, &opts);
            let chosen = offered.min(ours);
            let expected = match chosen {
                15 => "permessage-deflate".to_owned(),
                _ => format!("permessage-deflate; client_max_window_bits={chosen}"),
            };
            assert_eq!(answer, expected);
            // A client window of 8 is inflated (with a window of 9, which reads it).
            assert_eq!((c.send, c.recv), (window(15, false), window(chosen, false)));
        }
    }
    // Without the parameter, the client may not be limited: it uses 15.
    let opts = takeover().client_max_window_bits(10);
    let (answer, c) = accepted("permessage-deflate", &opts);
    assert_eq!(answer, "permessage-deflate");
    assert_eq!(c.recv, window(15, false));
}

#[test]
fn every_parameter_at_once() {
    let (answer, c) = accepted(
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
         server_max_window_bits=10; client_max_window_bits=11",
        &takeover(),
    );
    assert_eq!(
        answer,
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
         server_max_window_bits=10; client_max_window_bits=11"
    );
    assert_eq!((c.send, c.recv), (window(10, true), window(11, true)));
}

// ---- Server: Autobahn 13.x offers, several offers, declined offers ----

#[test]
fn autobahn_offers() {
    let opts = takeover();
    let (answer, c) = accepted(
        "permessage-deflate; client_no_context_takeover; client_max_window_bits",
        &opts,
    );
    assert_eq!(answer, "permessage-deflate; client_no_context_takeover");
    assert_eq!((c.send, c.recv), (window(15, false), window(15, true)));

    let (answer, c) = accepted("permessage-deflate; server_max_window_bits=9", &opts);
    assert_eq!(answer, "permessage-deflate; server_max_window_bits=9");
    assert_eq!(c.send, window(9, false));

    let (answer, c) = accepted(
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=15",
        &opts,
    );
    assert_eq!(
        answer,
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=15"
    );
    assert_eq!(c.send, window(15, true));

    // Three offers in one header: the first one is taken.
    let three = "permessage-deflate; client_no_context_takeover; server_max_window_bits=9, \
                 permessage-deflate; client_no_context_takeover, permessage-deflate";
    let (answer, c) = accepted(three, &opts);
    assert_eq!(
        answer,
        "permessage-deflate; client_no_context_takeover; server_max_window_bits=9"
    );
    assert_eq!((c.send, c.recv), (window(9, false), window(15, true)));

    // The same with a window of 8 first: that offer is skipped for the next.
    let (answer, c) = accepted(&three.replace("=9", "=8"), &opts);
    assert_eq!(answer, "permessage-deflate; client_no_context_takeover");
    assert_eq!((c.send, c.recv), (window(15, false), window(15, true)));
}

#[test]
fn offers_across_headers_and_other_extensions() {
    let offers = [
        "x-webkit-deflate-frame".to_owned(),
        "foo; a=1, permessage-deflate; server_max_window_bits=8".to_owned(),
        String::new(),
        "permessage-deflate; client_max_window_bits=10, permessage-deflate".to_owned(),
    ];
    let (answer, c) = deflate::accept(&offers, &takeover()).expect("accepted");
    assert_eq!(answer, "permessage-deflate; client_max_window_bits=10");
    assert_eq!(c.recv, window(10, false));
    // Only other extensions, or nothing: declined.
    assert_eq!(deflate::accept(&offers[..1], &takeover()), None);
    assert_eq!(deflate::accept(&[], &takeover()), None);
    assert_eq!(deflate::accept(&[String::new()], &takeover()), None);
}

#[test]
fn bad_offers_are_skipped() {
    for bad in [
        "permessage-deflate; foo",
        "permessage-deflate; foo=1",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_max_window_bits; CLIENT_MAX_WINDOW_BITS=10",
        "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
        "permessage-deflate; server_no_context_takeover=true",
        "permessage-deflate; client_no_context_takeover=\"\"",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; server_max_window_bits=+9",
        "permessage-deflate; client_max_window_bits=0",
        "permessage-deflate; client_max_window_bits=abc",
        "permessage-deflate; client_max_window_bits=\"09\"",
        "permessage-deflate; client_max_window_bits=\"\"",
    ] {
        assert_eq!(accept(bad, &takeover()), None, "{bad}");
        // A good offer after it is taken.
        let (answer, _) = accepted(&format!("{bad}, permessage-deflate"), &takeover());
        assert_eq!(answer, "permessage-deflate", "{bad}");
    }
}

#[test]
fn quoted_values_whitespace_and_case() {
    let (answer, c) = accepted(
        "PerMessage-Deflate ;Server_Max_Window_Bits = \"10\" ;\tclient_max_window_bits=\"12\"",
        &takeover(),
    );
    assert_eq!(
        answer,
        "permessage-deflate; server_max_window_bits=10; client_max_window_bits=12"
    );
    assert_eq!((c.send, c.recv), (window(10, false), window(12, false)));
    // A quoted-pair inside the quotes is undone.
    let (_, c) = accepted(
        "permessage-deflate; server_max_window_bits=\"1\\1\"",
        &takeover(),
    );
    assert_eq!(c.send, window(11, false));
    let c = answered(
        "permessage-deflate ; server_max_window_bits = \"9\" , ",
        &takeover(),
    );
    assert_eq!(c.recv, window(9, false));
}

// ---- Server: hostile headers ----

#[test]
fn malformed_headers_decline_everything() {
    for bad in [
        "permessage-deflate;",
        "permessage-deflate; ;client_max_window_bits",
        "permessage-deflate client_max_window_bits",
        "permessage-deflate; server_max_window_bits=\"10",
        "permessage-deflate; server_max_window_bits=\"10\"x",
        "permessage-deflate; server_max_window_bits=",
        "permessage-deflate; server_max_window_bits=1 0",
        "permessage-deflate; =10",
        "permessage-deflate; a=b=c",
        "\"permessage-deflate\"",
        "permessage-deflate; server_max_window_bits=\"\u{1}\"",
        "permessage-deflate/1",
        "permessage-deflate, ;",
    ] {
        assert_eq!(accept(bad, &takeover()), None, "{bad:?}");
        let offers = [bad.to_owned(), "permessage-deflate".to_owned()];
        assert_eq!(deflate::accept(&offers, &takeover()), None, "{bad:?}");
        assert!(
            matches!(
                deflate::check_answer([bad], &takeover()),
                Err(HandshakeError::BadExtension(_))
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn arbitrary_input_never_panics() {
    let base = "permessage-deflate; server_no_context_takeover; client_max_window_bits=\"10\", \
                permessage-deflate; server_max_window_bits=9";
    let interesting = [
        "",
        "\0",
        "\r",
        "\n",
        " ",
        "\t",
        ";",
        ",",
        "=",
        "\"",
        "\\",
        "8",
        "\u{7f}",
        "\u{e9}",
        "\u{1F600}",
    ];
    let opts = [PerMessageDeflate::default(), takeover()];
    for (position, _) in base.char_indices() {
        for insert in interesting {
            for replace in [false, true] {
                let end = if replace { position + 1 } else { position };
                let value = format!("{}{insert}{}", &base[..position], &base[end..]);
                for opts in &opts {
                    let _ = deflate::accept(std::slice::from_ref(&value), opts);
                    let _ = deflate::check_answer([value.as_str()], opts);
                }
            }
        }
        let _ = deflate::accept(&[base[..position].to_owned()], &opts[0]);
        let _ = deflate::check_answer([&base[position..]], &opts[0]);
    }
    // Long lists are parsed in one pass.
    let many = ",".repeat(100_000) + &"permessage-deflate; x, ".repeat(10_000);
    assert_eq!(deflate::accept(&[many], &opts[0]), None);
}

// ---- Client: each parameter of an answer ----

#[test]
fn declined_by_the_server() {
    let opts = PerMessageDeflate::default();
    assert_eq!(deflate::check_answer([""; 0], &opts), Ok(None));
    assert_eq!(deflate::check_answer([""], &opts), Ok(None));
    assert_eq!(deflate::check_answer([" , "], &opts), Ok(None));
}

#[test]
fn answers_of_real_servers() {
    // Node ws and this crate, to the default offer.
    let c = answered(
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        &PerMessageDeflate::default(),
    );
    assert_eq!((c.send, c.recv), (window(15, true), window(15, true)));
    // Python websockets' server: 12-bit windows, context kept.
    let c = answered(PYTHON_WEBSOCKETS_ANSWER, &takeover());
    assert_eq!((c.send, c.recv), (window(12, false), window(12, false)));
    // ... which a client that requested a smaller server window must refuse.
    let small = takeover().server_max_window_bits(10);
    assert!(refused(PYTHON_WEBSOCKETS_ANSWER, &small).contains("server_max_window_bits=12"));
}

#[test]
fn server_no_context_takeover_answered() {
    let c = answered(
        "permessage-deflate; server_no_context_takeover",
        &takeover(),
    );
    assert_eq!((c.send, c.recv), (window(15, false), window(15, true)));
    // Requested but not confirmed: the server keeps its context, so do we.
    let c = answered("permessage-deflate", &PerMessageDeflate::default());
    assert_eq!((c.send, c.recv), (window(15, true), window(15, false)));
}

#[test]
fn client_no_context_takeover_answered() {
    let c = answered(
        "permessage-deflate; client_no_context_takeover",
        &takeover(),
    );
    assert_eq!((c.send, c.recv), (window(15, true), window(15, false)));
}

#[test]
fn server_max_window_bits_answered() {
    for requested in 9..=15u8 {
        let opts = takeover().server_max_window_bits(requested);
        for bits in 8..=15u8 {
            let value = format!("permessage-deflate; server_max_window_bits={bits}");
            if bits <= requested {
                assert_eq!(answered(&value, &opts).recv, window(bits, false));
            } else {
                assert!(refused(&value, &opts).contains("larger"), "{value}");
            }
        }
    }
}

#[test]
fn client_max_window_bits_answered() {
    for ours in 9..=15u8 {
        let opts = takeover().client_max_window_bits(ours);
        for bits in 9..=15u8 {
            let value = format!("permessage-deflate; client_max_window_bits={bits}");
            assert_eq!(answered(&value, &opts).send, window(bits.min(ours), false));
        }
        let what = refused("permessage-deflate; client_max_window_bits=8", &opts);
        assert!(what.contains("client_max_window_bits=8"), "{what}");
    }
    let what = refused("permessage-deflate; client_max_window_bits", &takeover());
    assert!(what.contains("without a value"), "{what}");
}

// ---- Client: every other refusal ----

#[test]
fn refused_answers() {
    let opts = PerMessageDeflate::default();
    assert_eq!(
        deflate::check_answer(["x-foo"], &opts),
        Err(HandshakeError::UnrequestedExtension("x-foo".into()))
    );
    assert_eq!(
        deflate::check_answer(["permessage-deflate", "x-foo; a=1"], &opts),
        Err(HandshakeError::UnrequestedExtension("x-foo".into()))
    );
    assert_eq!(
        deflate::check_answer(["x-foo, permessage-deflate"], &opts),
        Err(HandshakeError::UnrequestedExtension("x-foo".into()))
    );
    for (value, problem) in [
        ("permessage-deflate, permessage-deflate", "more than once"),
        ("permessage-deflate,PERMESSAGE-DEFLATE", "more than once"),
        ("permessage-deflate; foo", "unknown"),
        (
            "permessage-deflate; server_no_context_takeover; Server_No_Context_Takeover",
            "repeated",
        ),
        (
            "permessage-deflate; client_max_window_bits=9; client_max_window_bits=9",
            "repeated",
        ),
        (
            "permessage-deflate; server_no_context_takeover=1",
            "no value",
        ),
        (
            "permessage-deflate; client_no_context_takeover=\"x\"",
            "no value",
        ),
        (
            "permessage-deflate; server_max_window_bits",
            "without a value",
        ),
        (
            "permessage-deflate; server_max_window_bits=7",
            "not 8 to 15",
        ),
        (
            "permessage-deflate; server_max_window_bits=16",
            "not 8 to 15",
        ),
        (
            "permessage-deflate; server_max_window_bits=09",
            "not 8 to 15",
        ),
        (
            "permessage-deflate; server_max_window_bits=\"09\"",
            "not 8 to 15",
        ),
        (
            "permessage-deflate; client_max_window_bits=x",
            "not 8 to 15",
        ),
        (
            "permessage-deflate; client_max_window_bits=-9",
            "not 8 to 15",
        ),
        (
            "permessage-deflate; client_max_window_bits=\"\"",
            "not 8 to 15",
        ),
        (
            "permessage-deflate; client_max_window_bits=8",
            "smallest window",
        ),
        ("permessage-deflate;", "malformed"),
    ] {
        let what = refused(value, &opts);
        assert!(what.contains(problem), "{value}: {what}");
    }
    // Across headers, too.
    assert!(matches!(
        deflate::check_answer(["permessage-deflate", "permessage-deflate"], &opts),
        Err(HandshakeError::BadExtension(_))
    ),);
}

#[test]
fn bad_extension_error() {
    let err = HandshakeError::BadExtension("client_max_window_bits=8".into());
    assert_eq!(err.http_status(), None);
    assert_eq!(
        err.to_string(),
        "bad Sec-WebSocket-Extensions answer: client_max_window_bits=8"
    );
}

// ---- The handshake hooks ----

#[test]
fn client_handshake_with_deflate() {
    let feed = |extensions: &str, offer: Option<PerMessageDeflate>| {
        let mut hs = ClientHandshake::new(KEY.into(), Vec::new(), DEFAULT_MAX_HEADER_SIZE);
        if let Some(opts) = offer {
            hs = hs.with_deflate(opts);
        }
        hs.feed(answer_with(extensions).as_bytes())
            .map(|resp| resp.expect("complete").compression)
    };
    let opts = PerMessageDeflate::default();
    let c = feed(
        "Sec-WebSocket-Extensions: permessage-deflate\r\n\
         Sec-WebSocket-Extensions: \r\n",
        Some(opts.clone()),
    )
    .unwrap()
    .expect("accepted");
    assert_eq!((c.send, c.recv), (window(15, true), window(15, false)));
    assert_eq!(feed("", Some(opts.clone())), Ok(None));
    assert_eq!(
        feed("Sec-WebSocket-Extensions: \r\n", Some(opts.clone())),
        Ok(None)
    );
    assert!(matches!(
        feed(
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=8\r\n",
            Some(opts.clone())
        ),
        Err(HandshakeError::BadExtension(_))
    ));
    // Nothing offered: any extension fails, as before.
    assert_eq!(feed("", None), Ok(None));
    assert_eq!(
        feed("Sec-WebSocket-Extensions: permessage-deflate\r\n", None),
        Err(HandshakeError::UnrequestedExtension(
            "permessage-deflate".into()
        ))
    );
}

#[test]
fn response_headers() {
    let request = format!(
        "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Extensions: {CHROMIUM}\r\n\r\n"
    );
    let (req, _) = parse_request(request.as_bytes(), DEFAULT_MAX_HEADER_SIZE)
        .unwrap()
        .unwrap();
    assert_eq!(
        response_with_extensions(&req, None, None),
        response(&req, None)
    );
    let (value, _) = deflate::accept(&req.extensions, &takeover()).unwrap();
    let answer = response_with_extensions(&req, Some("chat"), Some(&value));
    assert_eq!(
        String::from_utf8(answer).unwrap(),
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {ACCEPT}\r\nSec-WebSocket-Protocol: chat\r\n\
             Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
        )
    );
    // A value that would break the head, or an empty one, is left out.
    for bad in ["permessage-deflate\r\nX-Evil: 1", "a\nb", ""] {
        assert_eq!(
            response_with_extensions(&req, None, Some(bad)),
            response(&req, None),
            "{bad:?}"
        );
    }
}

/// Every combination of settings on both ends, through the whole handshake: the
/// request with the offer, the server's choice and answer, the client's check. What
/// one end sends with is what the other inflates with.
#[test]
fn round_trip_agrees() {
    let mut settings = Vec::new();
    for server_no_context_takeover in [false, true] {
        for client_no_context_takeover in [false, true] {
            for server_max_window_bits in [9, 12, 15] {
                for client_max_window_bits in [9, 12, 15] {
                    settings.push(
                        PerMessageDeflate::default()
                            .server_no_context_takeover(server_no_context_takeover)
                            .client_no_context_takeover(client_no_context_takeover)
                            .server_max_window_bits(server_max_window_bits)
                            .client_max_window_bits(client_max_window_bits),
                    );
                }
            }
        }
    }
    for client_opts in &settings {
        let (mut request, _, _) = ClientRequest::from_url("ws://example.com/").unwrap();
        request.offer_deflate(client_opts);
        let (bytes, key) = request.build();
        let (req, _) = parse_request(&bytes, DEFAULT_MAX_HEADER_SIZE)
            .unwrap()
            .unwrap();
        for server_opts in &settings {
            let (value, server) = deflate::accept(&req.extensions, server_opts).expect("accepted");
            let answer = response_with_extensions(&req, None, Some(&value));
            let mut client = ClientHandshake::new(key.clone(), Vec::new(), DEFAULT_MAX_HEADER_SIZE)
                .with_deflate(client_opts.clone());
            let resp = client.feed(&answer).unwrap().expect("complete");
            let client_side = resp.compression.expect("accepted");
            assert_eq!(
                (server.send, server.recv),
                (client_side.recv, client_side.send),
                "client {client_opts:?}, server {server_opts:?}: {value}"
            );
            assert!(server.send.max_window_bits <= server_opts.server_max_window_bits);
            assert!(server.send.max_window_bits <= client_opts.server_max_window_bits);
            assert!(client_side.send.max_window_bits <= client_opts.client_max_window_bits);
            assert!(server.recv.max_window_bits <= server_opts.client_max_window_bits);
            assert!(server.send.no_context_takeover >= server_opts.server_no_context_takeover);
            assert!(server.send.no_context_takeover >= client_opts.server_no_context_takeover);
            assert!(server.recv.no_context_takeover >= server_opts.client_no_context_takeover);
            assert!(server.recv.no_context_takeover >= client_opts.client_no_context_takeover);
        }
    }
}

/// Found by Autobahn 12.* against `echo_server --deflate-takeover`: a client's
/// `client_no_context_takeover` hint was relied on (our inflater reset per
/// message) without being answered, so the client kept its context and its
/// third message referred to bytes our inflater had forgotten (1007).
#[test]
fn a_hint_relied_on_is_answered() {
    let takeover = PerMessageDeflate::default()
        .server_no_context_takeover(false)
        .client_no_context_takeover(false);
    let offer =
        vec!["permessage-deflate; client_no_context_takeover; client_max_window_bits".to_string()];
    let (answer, agreed) = deflate::accept(&offer, &takeover).expect("accepted");
    assert!(agreed.recv.no_context_takeover);
    assert!(
        answer
            .split(';')
            .any(|p| p.trim() == "client_no_context_takeover"),
        "{answer}"
    );
    // Without the hint, nothing is assumed and nothing answered.
    let offer = vec!["permessage-deflate; client_max_window_bits".to_string()];
    let (answer, agreed) = deflate::accept(&offer, &takeover).expect("accepted");
    assert!(!agreed.recv.no_context_takeover);
    assert_eq!(answer, "permessage-deflate");
}
