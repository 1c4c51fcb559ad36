//! permessage-deflate (RFC 7692) in the engine: the RFC's own examples, round
//! trips between two engines in every mode, bytes fed whole, one at a time and
//! with pauses, and the hostile cases (bombs, corrupt streams, misplaced RSV1).
#![cfg(feature = "deflate")]

mod engine_util;

use engine_util::*;
use net_websocket_ev::proto::{
    Compression, Config, Engine, Flow, Fragment, Handler, OpCode, RecvStatus, Role, SendStatus,
    Window,
};

const RSV1: u8 = 0x40;

fn window(no_context_takeover: bool) -> Window {
    Window::DEFAULT.no_context_takeover(no_context_takeover)
}

/// A configuration with compression on: `takeover` for both directions.
fn deflate(takeover: bool) -> Config {
    Config::default().compression(Some(
        Compression::default()
            .send(window(!takeover))
            .recv(window(!takeover))
            .level(1)
            .threshold(0),
    ))
}

/// A frame with `b0` as is (fin, rsv, opcode), as the peer of a `receiver`
/// sends it.
fn frame_b0(receiver: Role, b0: u8, payload: &[u8]) -> Vec<u8> {
    raw_frame(b0, payload, mask_for(receiver))
}

/// Frames as written by `wire`, with the first byte (fin, rsv, opcode) of each.
fn frames_with_b0(wire: &[u8]) -> Vec<(u8, Vec<u8>)> {
    parse_frames(wire)
        .into_iter()
        .map(|f| (u8::from(f.fin) << 7 | f.rsv << 4 | f.op, f.payload))
        .collect()
}

/// Everything `engine` has to send (its producers are driven by `send`).
fn drain(engine: &mut Engine) -> Vec<u8> {
    let mut wire = Vec::new();
    assert_eq!(engine.send(&mut wire).unwrap(), SendStatus::Idle);
    wire
}

/// JSON-like text of about `len` bytes (compresses well, not trivially).
fn json_like(len: usize) -> Vec<u8> {
    let mut out = String::from("[");
    let mut i = 0u64;
    while out.len() < len {
        let x = i.wrapping_mul(2654435761) % 100_000;
        out.push_str(&format!(
            "{{\"id\":{i},\"name\":\"user{}\",\"score\":{x},\"tags\":[\"a{}\",\"b\"]}},",
            x % 977,
            i % 13
        ));
        i += 1;
    }
    out.truncate(len);
    out.into_bytes()
}

/// Deterministic bytes that do not compress.
fn noise(len: usize) -> Vec<u8> {
    let mut x = 0x9e3779b97f4a7c15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

// ------------------------------------------------------------ RFC 7692 examples

#[test]
fn rfc_7692_examples_inflate() {
    // 7.2.3.1: "Hello" in one compressed frame, and in two fragments.
    let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    for takeover in [false, true] {
        let config = deflate(takeover);
        let out = converse_all(Role::Client, &config, &frame_b0(Role::Client, 0xc1, &hello));
        assert_eq!(out.events.last(), Some(&msg(1, b"Hello")));
        assert_eq!(out.events[0], Ev::Start(true, 0b100, 1, 7));
        let mut two = frame_b0(Role::Client, 0x41, &hello[..3]);
        two.extend(frame_b0(Role::Client, 0x80, &hello[3..]));
        let out = converse_all(Role::Client, &config, &two);
        assert_eq!(out.events.last(), Some(&msg(1, b"Hello")));
        // 7.2.3.3: a stored (uncompressed) deflate block.
        let stored = [
            0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
        ];
        let out = converse_all(
            Role::Client,
            &config,
            &frame_b0(Role::Client, 0xc1, &stored),
        );
        assert_eq!(out.events.last(), Some(&msg(1, b"Hello")));
        // 7.2.3.4: a block with BFINAL set; the next message starts a new stream.
        let last = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        let mut input = frame_b0(Role::Client, 0xc1, &last);
        input.extend(frame_b0(Role::Client, 0xc1, &hello));
        let out = converse_all(Role::Client, &config, &input);
        let msgs: Vec<_> = out
            .events
            .iter()
            .filter(|e| matches!(e, Ev::Msg(..)))
            .collect();
        assert_eq!(msgs, [&msg(1, b"Hello"), &msg(1, b"Hello")]);
    }
    // 7.2.3.2: the second "Hello" refers back into the first one's window.
    let mut input = frame_b0(Role::Client, 0xc1, &hello);
    input.extend(frame_b0(
        Role::Client,
        0xc1,
        &[0xf2, 0x00, 0x11, 0x00, 0x00],
    ));
    let out = converse_all(Role::Client, &deflate(true), &input);
    let msgs: Vec<_> = out
        .events
        .iter()
        .filter(|e| matches!(e, Ev::Msg(..)))
        .collect();
    assert_eq!(msgs, [&msg(1, b"Hello"), &msg(1, b"Hello")]);
}

#[test]
fn sends_the_rfc_7692_hello() {
    // Deflate writes "Hello" as 7.2.3.1 shows, with the tail cut (with the
    // context kept: without, a message that grows is sent as it is).
    let mut server = Engine::new(Role::Server, deflate(true));
    server.queue_msg(OpCode::Text, b"Hello").unwrap();
    let frames = frames_with_b0(&drain(&mut server));
    assert_eq!(
        frames,
        [(0xc1, vec![0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00])]
    );
    let mut server = Engine::new(Role::Server, deflate(false));
    server.queue_msg(OpCode::Text, b"Hello").unwrap();
    assert_eq!(
        frames_with_b0(&drain(&mut server)),
        [(0x81, b"Hello".to_vec())]
    );
}

// ------------------------------------------------------------ round trips

/// Sends `messages` from a `from` engine to a fresh peer engine and returns the
/// peer's events (the wire fed under every split, and with pauses) and the wire.
fn round_trip(from: Role, config: &Config, messages: &[(OpCode, Vec<u8>)]) -> (Vec<Ev>, Vec<u8>) {
    let mut sender = Engine::new(from, config.clone());
    let mut wire = Vec::new();
    for (op, data) in messages {
        sender.queue_msg(*op, data).unwrap();
        wire.extend(drain(&mut sender));
    }
    let to = match from {
        Role::Server => Role::Client,
        Role::Client => Role::Server,
    };
    let out = converse_all(to, config, &wire);
    assert!(out.sent.is_empty(), "the peer answered {:?}", out.sent);
    (out.events, wire)
}

fn messages_of(events: &[Ev]) -> Vec<(u8, u8, Vec<u8>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Ev::Msg(rsv, op, data, _) => Some((*rsv, *op, data.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn round_trips_in_every_mode_and_role() {
    let texts = [
        (OpCode::Text, b"".to_vec()),
        (OpCode::Text, b"x".to_vec()),
        (OpCode::Text, json_like(4096)),
        (OpCode::Binary, noise(3000)),
        (OpCode::Text, json_like(4096)),
        (OpCode::Text, "héllo wörld ✓ 🎉".repeat(50).into_bytes()),
        (OpCode::Binary, vec![0; 70_000]),
    ];
    for takeover in [false, true] {
        for from in [Role::Server, Role::Client] {
            let (events, wire) = round_trip(from, &deflate(takeover), &texts);
            let got = messages_of(&events);
            // Delivered inflated, with RSV1 spent.
            let want: Vec<_> = texts
                .iter()
                .map(|(op, data)| (0, op.as_u8(), data.clone()))
                .collect();
            assert_eq!(got, want, "takeover {takeover}, from {from:?}");
            // With threshold 0 every message is compressed, except, without
            // context takeover, those that do not shrink (empty, one byte,
            // noise): they go as they are.
            let rsv: Vec<u8> = frames_with_b0(&wire).iter().map(|f| f.0 & 0x70).collect();
            let want: Vec<u8> = texts
                .iter()
                .map(|(_, d)| {
                    let shrinks = d.len() > 1 && d[..] != noise(3000)[..];
                    if takeover || shrinks {
                        RSV1
                    } else {
                        0
                    }
                })
                .collect();
            assert_eq!(rsv, want, "takeover {takeover}");
            let raw: usize = texts.iter().map(|(_, d)| d.len()).sum();
            assert!(wire.len() < raw / 2, "{} bytes for {raw}", wire.len());
        }
    }
}

#[test]
fn context_takeover_makes_a_repeated_message_smaller() {
    let data = json_like(2000);
    for (takeover, smaller) in [(false, false), (true, true)] {
        let mut server = Engine::new(Role::Server, deflate(takeover));
        server.queue_msg(OpCode::Text, &data).unwrap();
        let first = drain(&mut server).len();
        server.queue_msg(OpCode::Text, &data).unwrap();
        let second = drain(&mut server).len();
        assert_eq!(second * 4 < first, smaller, "{first} then {second} bytes");
    }
}

#[test]
fn threshold_sends_small_messages_plain() {
    let mut config = deflate(false);
    config.compression.as_mut().unwrap().threshold = 100;
    let mut server = Engine::new(Role::Server, config.clone());
    server.queue_msg(OpCode::Text, &[b'a'; 99]).unwrap();
    server.queue_msg(OpCode::Text, &[b'a'; 100]).unwrap();
    server.queue_msg(OpCode::Ping, b"p").unwrap();
    let frames = frames_with_b0(&drain(&mut server));
    let b0s: Vec<u8> = frames.iter().map(|f| f.0).collect();
    // The ping jumps ahead; it is never compressed.
    assert_eq!(b0s, [0x89, 0x81, 0xc1]);
    let out = converse_all(Role::Client, &config, &drain_all(frames));
    assert_eq!(
        messages_of(&out.events),
        [
            (0, 9, b"p".to_vec()),
            (0, 1, vec![b'a'; 99]),
            (0, 1, vec![b'a'; 100])
        ]
    );
}

/// The frames again as a server writes them (unmasked).
fn drain_all(frames: Vec<(u8, Vec<u8>)>) -> Vec<u8> {
    frames
        .into_iter()
        .flat_map(|(b0, p)| raw_frame(b0, &p, None))
        .collect()
}

#[test]
fn fragmented_messages_are_compressed_piece_by_piece() {
    let data = json_like(50_000);
    for takeover in [false, true] {
        for from in [Role::Server, Role::Client] {
            let mut config = deflate(takeover);
            config.fragment_size = 7000;
            let mut sender = Engine::new(from, config.clone());
            // A whole message before and after: the context follows the wire.
            sender.queue_msg(OpCode::Text, &data[..3000]).unwrap();
            let mut rest = data.clone();
            rest.reverse();
            sender
                .queue_fragmented(
                    OpCode::Text,
                    Box::new(move |buf: &mut [u8]| {
                        let n = buf.len().min(rest.len());
                        for b in &mut buf[..n] {
                            *b = rest.pop().unwrap();
                        }
                        if rest.is_empty() {
                            Fragment::Eof(n)
                        } else {
                            Fragment::Data(n)
                        }
                    }),
                )
                .unwrap();
            // Queued while the fragmented message is under way.
            sender.queue_msg(OpCode::Binary, &data[..5000]).unwrap();
            let wire = drain(&mut sender);
            let frames = frames_with_b0(&wire);
            // RSV1 on the first frame of each message only.
            let b0s: Vec<u8> = frames.iter().map(|f| f.0).collect();
            assert_eq!(b0s.len(), 1 + 8 + 1, "{b0s:x?}");
            assert_eq!(b0s[0], 0xc1);
            assert_eq!(b0s[1], 0x41);
            assert!(b0s[2..8].iter().all(|&b| b == 0x00), "{b0s:x?}");
            assert_eq!(b0s[8], 0x80);
            // Behind a fragmented message, a kept context sends it plain.
            assert_eq!(b0s[9], if takeover { 0x82 } else { 0xc2 });
            let to = if from == Role::Server {
                Role::Client
            } else {
                Role::Server
            };
            let out = converse_all(to, &config, &wire);
            assert_eq!(
                messages_of(&out.events),
                [
                    (0, 1, data[..3000].to_vec()),
                    (0, 1, data.clone()),
                    (0, 2, data[..5000].to_vec())
                ]
            );
        }
    }
}

#[test]
fn unbuffered_chunks_are_inflated_and_frame_start_has_the_wire_length() {
    let data = json_like(300_000);
    let mut server = Engine::new(Role::Server, deflate(false));
    server.queue_msg(OpCode::Text, &data).unwrap();
    let wire = drain(&mut server);
    let wire_len = frames_with_b0(&wire)[0].1.len() as u64;
    let config = deflate(false).buffering(false);
    let out = converse_all(Role::Client, &config, &wire);
    assert_eq!(
        out.events,
        [
            Ev::Start(true, 0b100, 1, wire_len),
            chunk(&data),
            Ev::End,
            Ev::Msg(0, 1, Vec::new(), 0)
        ]
    );
}

/// Counts chunks and pauses after the first one.
#[derive(Default)]
struct PauseOnce {
    chunks: Vec<usize>,
    data: Vec<u8>,
    paused: bool,
}

impl Handler for PauseOnce {
    fn on_frame_chunk(&mut self, data: &[u8]) -> Flow {
        self.chunks.push(data.len());
        self.data.extend_from_slice(data);
        if self.paused {
            Flow::Continue
        } else {
            self.paused = true;
            Flow::Pause
        }
    }
}

#[test]
fn a_pause_inside_a_masked_compressed_frame_keeps_the_rest_intact() {
    // A client's frame, masked: the unmasked part kept by the pause must not be
    // unmasked again when resumed.
    let data = json_like(400_000);
    let mut client = Engine::new(Role::Client, deflate(false));
    client.queue_msg(OpCode::Text, &data).unwrap();
    let wire = drain(&mut client);
    let config = deflate(false).buffering(false);
    let mut server = Engine::new(Role::Server, config);
    let mut h = PauseOnce::default();
    let mut status = server.feed(&wire, &mut h);
    assert_eq!(status, RecvStatus::Paused);
    while status == RecvStatus::Paused {
        status = server.resume(&mut h);
    }
    assert_eq!(status, RecvStatus::WouldBlock);
    assert!(h.chunks.len() > 2, "{:?}", h.chunks);
    assert!(h.chunks.iter().all(|&n| n <= 64 * 1024));
    assert_eq!(h.data, data);
}

// ------------------------------------------------------------ hostile input

/// The close code a client engine with `config` sends after `input`.
fn failure(config: &Config, input: &[u8]) -> Option<u16> {
    converse(Role::Client, config, input, Split::Whole).close_sent()
}

#[test]
fn rsv1_where_it_does_not_belong_is_a_protocol_error() {
    let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    // Nothing negotiated.
    assert_eq!(
        failure(&Config::default(), &frame_b0(Role::Client, 0xc1, &hello)),
        Some(1002)
    );
    // On a continuation frame.
    let mut input = frame_b0(Role::Client, 0x41, &hello[..3]);
    input.extend(frame_b0(Role::Client, 0xc0, &hello[3..]));
    assert_eq!(failure(&deflate(true), &input), Some(1002));
    // On a control frame.
    assert_eq!(
        failure(&deflate(true), &frame_b0(Role::Client, 0xc9, b"")),
        Some(1002)
    );
    // RSV2 and RSV3 stay reserved.
    assert_eq!(
        failure(&deflate(true), &frame_b0(Role::Client, 0xe1, &hello)),
        Some(1002)
    );
}

#[test]
fn corrupt_deflate_data_is_1007() {
    // BTYPE 11 is reserved: an invalid block.
    for op in [0xc1, 0xc2] {
        assert_eq!(
            failure(&deflate(false), &frame_b0(Role::Client, op, &[0xff, 0xff])),
            Some(1007)
        );
    }
}

#[test]
fn invalid_utf8_after_inflating_is_1007_and_fails_fast() {
    let mut server = Engine::new(Role::Server, deflate(false));
    let mut bad = json_like(200_000);
    bad[1000] = 0xff;
    server.queue_msg(OpCode::Binary, &bad).unwrap();
    let frames = frames_with_b0(&drain(&mut server));
    // The same bytes as a text message.
    let input = raw_frame(0xc1, &frames[0].1, None);
    for split in SPLITS {
        let out = converse(Role::Client, &deflate(false), &input, split);
        assert_eq!(out.close_sent(), Some(1007), "{split:?}");
    }
    // Without buffering, chunks stop at the first bad chunk: fail fast.
    let config = deflate(false).buffering(false);
    let out = converse(Role::Client, &config, &input, Split::Whole);
    assert_eq!(out.close_sent(), Some(1007));
    let delivered: usize = out
        .events
        .iter()
        .map(|e| if let Ev::Chunk(c) = e { c.len() } else { 0 })
        .sum();
    assert!(delivered < 64 * 1024, "{delivered} bytes delivered");
}

/// `deflate(takeover)` at level 9: zeros compress about 1000 to 1.
fn deflate_best(takeover: bool) -> Config {
    let mut config = deflate(takeover);
    config.compression.as_mut().unwrap().level = 9;
    config.max_queued_bytes = usize::MAX;
    config
}

/// Compressed zeros: `len` bytes of them as one message's deflate data.
fn compressed_zeros(len: usize) -> Vec<u8> {
    let mut server = Engine::new(Role::Server, deflate_best(false));
    server.queue_msg(OpCode::Binary, &vec![0; len]).unwrap();
    let frames = frames_with_b0(&drain(&mut server));
    frames[0].1.clone()
}

#[test]
fn a_small_frame_that_inflates_past_the_limit_is_1009() {
    let mut config = deflate(false);
    config.max_recv_size = 1 << 20;
    let zeros = compressed_zeros(4 << 20);
    assert!(zeros.len() < 8 * 1024, "{} bytes", zeros.len());
    for buffering in [true, false] {
        config.buffering = buffering;
        let out = converse(
            Role::Client,
            &config,
            &raw_frame(0xc2, &zeros, None),
            Split::Whole,
        );
        assert_eq!(out.close_sent(), Some(1009), "buffering {buffering}");
        let delivered: usize = out
            .events
            .iter()
            .map(|e| if let Ev::Chunk(c) = e { c.len() } else { 0 })
            .sum();
        assert!(delivered <= 1 << 20, "{delivered}");
    }
    // Exactly at the limit is fine.
    config.buffering = true;
    let at_limit = compressed_zeros(1 << 20);
    let out = converse(
        Role::Client,
        &config,
        &raw_frame(0xc2, &at_limit, None),
        Split::Whole,
    );
    assert_eq!(out.close_sent(), None);
    assert_eq!(messages_of(&out.events), [(0, 2, vec![0; 1 << 20])]);
}

#[test]
fn a_gigabyte_of_compressed_zeros_stops_at_the_limit() {
    // 1 GiB of zeros, compressed: the same deflate bytes per MiB once the window
    // is all zeros, so the stream is built from one MiB's output.
    let mut server = Engine::new(Role::Server, deflate_best(true));
    let mib = vec![0u8; 1 << 20];
    server.queue_msg(OpCode::Binary, &mib).unwrap();
    let first = frames_with_b0(&drain(&mut server))[0].1.clone();
    server.queue_msg(OpCode::Binary, &mib).unwrap();
    let steady = frames_with_b0(&drain(&mut server))[0].1.clone();
    // Each piece ended with a sync flush whose tail the sender cut: put it back
    // between pieces.
    let mut stream = first;
    for _ in 1..1024 {
        stream.extend_from_slice(&[0, 0, 0xff, 0xff]);
        stream.extend_from_slice(&steady);
    }
    assert!(stream.len() < 2 << 20, "{} bytes", stream.len());
    let mut config = deflate(true);
    config.max_recv_size = 16 << 20;
    let out = converse(
        Role::Client,
        &config,
        &raw_frame(0xc2, &stream, None),
        Split::Whole,
    );
    assert_eq!(out.close_sent(), Some(1009));
    assert!(out.events.iter().all(|e| !matches!(e, Ev::Msg(..))));
}

#[test]
fn an_empty_piece_after_a_flush_still_ends_the_message_for_the_peer() {
    // Found by the engine fuzzer: with context takeover, a message that ends
    // with nothing new to compress (an empty message after another one, or a
    // fragmented message ending with `Eof(0)`) made no deflate bytes, so the
    // peer's flush tail started a stored block and the next message was read
    // as its contents.
    let data = json_like(3000);
    for from in [Role::Server, Role::Client] {
        let config = deflate(true);
        let mut sender = Engine::new(from, config.clone());
        sender.queue_msg(OpCode::Text, &data).unwrap();
        sender.queue_msg(OpCode::Text, b"").unwrap();
        let mut pieces = vec![Fragment::Eof(0), Fragment::Data(100)];
        sender
            .queue_fragmented(
                OpCode::Binary,
                Box::new(move |buf: &mut [u8]| {
                    buf[..100].fill(7);
                    pieces.pop().unwrap()
                }),
            )
            .unwrap();
        sender.queue_msg(OpCode::Text, &data).unwrap();
        let wire = drain(&mut sender);
        let to = if from == Role::Server {
            Role::Client
        } else {
            Role::Server
        };
        let out = converse_all(to, &config, &wire);
        assert_eq!(out.close_sent(), None, "{from:?}");
        assert_eq!(
            messages_of(&out.events),
            [
                (0, 1, data.clone()),
                (0, 1, Vec::new()),
                (0, 2, vec![7; 100]),
                (0, 1, data.clone())
            ]
        );
    }
}

#[test]
fn an_empty_compressed_payload_is_an_empty_message_and_keeps_the_context() {
    // Some peers send an empty message as an empty payload with RSV1 (not as
    // the one byte 0x00 a deflate stream would give). With context takeover,
    // feeding the flush tail after nothing opened a stored block in the
    // inflater and broke the next message.
    let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    let again = [0xf2, 0x00, 0x11, 0x00, 0x00];
    let mut input = frame_b0(Role::Client, 0xc1, &hello);
    input.extend(frame_b0(Role::Client, 0xc1, &[]));
    // The same, fragmented into two empty frames.
    input.extend(frame_b0(Role::Client, 0x41, &[]));
    input.extend(frame_b0(Role::Client, 0x80, &[]));
    input.extend(frame_b0(Role::Client, 0xc1, &again));
    let out = converse_all(Role::Client, &deflate(true), &input);
    assert_eq!(out.close_sent(), None);
    assert_eq!(
        messages_of(&out.events),
        [
            (0, 1, b"Hello".to_vec()),
            (0, 1, Vec::new()),
            (0, 1, Vec::new()),
            (0, 1, b"Hello".to_vec())
        ]
    );
}
