//! Arbitrary bytes through the opening-handshake parsers of both sides, fed in pieces
//! whose size comes from the input: no panic; fed in pieces or whole, the same
//! outcome; an accepted request gets a 101 that our own client accepts, a refused one
//! a 400 or 426; a `ws://` URL our client accepts builds a request our server accepts;
//! permessage-deflate: any offer or answer parses without panic, and our client's
//! offer under any settings is accepted by our server under any settings, with an
//! answer our client accepts, both ends agreeing on each direction.
#![no_main]

use libfuzzer_sys::fuzz_target;
use net_websocket_ev::handshake::deflate::{self, PerMessageDeflate};
use net_websocket_ev::handshake::{
    accept_key, error_response, parse_request, parse_response, response, ClientHandshake,
    ClientRequest, ServerHandshake,
};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// Feeds `data` in pieces of `step` bytes until a piece gives a result (or an error).
fn feed_in_pieces<T, E>(
    data: &[u8],
    step: usize,
    mut feed: impl FnMut(&[u8]) -> Result<Option<T>, E>,
) -> Result<Option<T>, E> {
    for piece in data.chunks(step) {
        let result = feed(piece);
        if !matches!(result, Ok(None)) {
            return result;
        }
    }
    Ok(None)
}

fn server_side(data: &[u8], step: usize, max: usize) {
    let whole = parse_request(data, max);
    let mut hs = ServerHandshake::new(max);
    let pieces = feed_in_pieces(data, step, |piece| hs.feed(piece));
    match (&whole, &pieces) {
        (Ok(Some((req, consumed))), Ok(Some(req2))) => {
            assert_eq!(format!("{req:?}"), format!("{req2:?}"));
            let mut leftover = hs.take_leftover();
            // The pieces after the one that completed the head were not fed.
            let fed = data.len().min(leftover.len() + consumed);
            leftover.truncate(fed - consumed);
            assert_eq!(leftover, data[*consumed..fed]);
            let answer = response(req, None);
            assert!(answer.starts_with(b"HTTP/1.1 101 "));
            let parsed = parse_response(&answer, &req.key, &[], 8192)
                .expect("our client accepts our server's 101")
                .expect("complete");
            assert_eq!(parsed.0.status, 101);
            assert_eq!(parsed.1, answer.len());
            assert_eq!(
                parsed.0.header("Sec-WebSocket-Accept"),
                Some(accept_key(req.key.as_bytes()).as_str())
            );
        }
        (Err(e), Err(e2)) => {
            assert_eq!(e, e2);
            let refusal = error_response(e);
            assert!(refusal.starts_with(b"HTTP/1.1 400 ") || refusal.starts_with(b"HTTP/1.1 426 "));
        }
        (Ok(None), Ok(None)) => {}
        _ => panic!("whole {whole:?} but in pieces of {step}: {pieces:?}"),
    }
}

fn client_side(data: &[u8], step: usize, max: usize) {
    let offered = vec!["chat".to_string(), "superchat".to_string()];
    let whole = parse_response(data, KEY, &offered, max);
    let mut hs = ClientHandshake::new(KEY.to_string(), offered, max);
    let pieces = feed_in_pieces(data, step, |piece| hs.feed(piece));
    match (&whole, &pieces) {
        (Ok(Some((resp, _))), Ok(Some(resp2))) => {
            assert_eq!(resp.status, 101);
            assert_eq!(format!("{resp:?}"), format!("{resp2:?}"));
        }
        (Err(e), Err(e2)) => assert_eq!(e, e2),
        (Ok(None), Ok(None)) => {}
        _ => panic!("whole {whole:?} but in pieces of {step}: {pieces:?}"),
    }
}

fn url_round_trip(data: &[u8]) {
    let Ok(url) = std::str::from_utf8(data) else {
        return;
    };
    let Ok((request, _host, _port)) = ClientRequest::from_url(url) else {
        return;
    };
    let (bytes, key) = request.build();
    let (req, consumed) = parse_request(&bytes, 1 << 20)
        .unwrap_or_else(|e| panic!("our server refuses our request for {url:?}: {e:?}"))
        .expect("complete");
    assert_eq!(consumed, bytes.len());
    assert_eq!(req.key, key);
    assert_eq!(req.host, request.host);
}

/// Settings from two bytes of input: every field varies (windows out of range too).
fn settings(a: u8, b: u8) -> PerMessageDeflate {
    PerMessageDeflate::default()
        .server_no_context_takeover(a & 1 != 0)
        .client_no_context_takeover(a & 2 != 0)
        .server_max_window_bits(7 + (a >> 2 & 0xf))
        .client_max_window_bits(7 + (b & 0xf))
        .level(b >> 4 & 0x7)
        .threshold(u32::from(a))
}

fn deflate_negotiation(data: &[u8]) {
    let (a, b, c, d) = (
        data.first().copied().unwrap_or(0),
        data.get(1).copied().unwrap_or(0),
        data.get(2).copied().unwrap_or(0),
        data.get(3).copied().unwrap_or(0),
    );
    let (client, server) = (settings(a, b), settings(c, d));
    // Arbitrary text as offers and as an answer: no panic.
    let text = String::from_utf8_lossy(data).into_owned();
    if let Some((answer, agreed)) = deflate::accept(&[text.clone()], &server) {
        assert!(!answer.contains(['\r', '\n']), "{answer:?}");
        assert!((9..=15).contains(&agreed.send.max_window_bits));
    }
    let _ = deflate::check_answer([text.as_str()], &client);
    // Our offer, our answer, our check: they agree.
    let offer = deflate::offer(&client);
    let (answer, at_server) = deflate::accept(&[offer.clone()], &server)
        .unwrap_or_else(|| panic!("our server declined our offer {offer:?}"));
    let at_client = deflate::check_answer([answer.as_str()], &client)
        .unwrap_or_else(|e| panic!("our client refused {answer:?} to {offer:?}: {e}"))
        .expect("an answer");
    assert_eq!(at_client.send, at_server.recv, "{offer:?} -> {answer:?}");
    assert_eq!(at_client.recv, at_server.send, "{offer:?} -> {answer:?}");
}

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, rest)) = data.split_first() else {
        return;
    };
    let step = usize::from(knobs & 0x3f) + 1;
    let max = if knobs & 0x40 != 0 { 64 } else { 8192 };
    if knobs & 0x80 == 0 {
        server_side(rest, step, max);
    } else {
        client_side(rest, step, max);
    }
    url_round_trip(rest);
    deflate_negotiation(rest);
});
