//! Frames one engine sends are accepted by an engine of the other role, for
//! payload lengths around every length-encoding edge, whole and fragmented,
//! through random splits; and a full closing handshake between two engines.
mod engine_util;
use engine_util as util;

use net_websocket_ev::proto::{Config, Engine, Fragment, OpCode, RecvStatus, Role, SendStatus};
use rand::{rngs::StdRng, Rng, SeedableRng};
use util::*;

const LENGTHS: [usize; 12] = [
    0,
    1,
    124,
    125,
    126,
    127,
    65535,
    65536,
    65537,
    100_000,
    3 << 20,
    (3 << 20) + 5,
];

fn payload(len: usize, text: bool) -> Vec<u8> {
    if text {
        // Multi-byte characters so that code points straddle every cut.
        "aé€𝄞".bytes().cycle().take(len).collect::<Vec<u8>>()
    } else {
        let mut rng = StdRng::seed_from_u64(len as u64);
        (0..len).map(|_| rng.gen()).collect()
    }
}

/// `len` of text cut to end on a character boundary.
fn text_payload(len: usize) -> Vec<u8> {
    let mut p = payload(len, true);
    while std::str::from_utf8(&p).is_err() {
        p.pop();
    }
    p
}

fn deliver(from: &mut Engine, to: &mut Engine, split: Split) -> Vec<Ev> {
    let mut wire = Vec::new();
    while from.send(&mut wire).unwrap() != SendStatus::Idle {}
    let mut rec = Recorder::default();
    let mut reader = Pieces::new(&wire, split);
    while !reader.pieces.is_empty() {
        let status = to.recv(&mut reader, &mut rec).unwrap();
        assert_eq!(to.receiver().failed(), None);
        if status == RecvStatus::Closed {
            break;
        }
    }
    rec.events
        .into_iter()
        .filter(|e| matches!(e, Ev::Msg(..)))
        .collect()
}

#[test]
fn whole_messages_both_ways() {
    for (from_role, to_role) in [(Role::Client, Role::Server), (Role::Server, Role::Client)] {
        let mut from = Engine::new(from_role, Config::default());
        let mut to = Engine::new(to_role, Config::default());
        for len in LENGTHS {
            for op in [OpCode::Text, OpCode::Binary] {
                let data = if op == OpCode::Text {
                    text_payload(len)
                } else {
                    payload(len, false)
                };
                from.queue_msg(op, &data).unwrap();
                let split = if len > 70_000 {
                    Split::Whole
                } else {
                    Split::Random(len as u64)
                };
                let got = deliver(&mut from, &mut to, split);
                assert_eq!(
                    got,
                    vec![Ev::Msg(0, op.as_u8(), data, 0)],
                    "len {len} {op:?}"
                );
            }
        }
        for len in [0, 1, 125] {
            from.queue_msg(OpCode::Ping, &payload(len, false)).unwrap();
            let got = deliver(&mut from, &mut to, Split::Bytes);
            assert_eq!(got, vec![Ev::Msg(0, 9, payload(len, false), 0)]);
            // and `to` answered with a pong
            let got = deliver(&mut to, &mut from, Split::Whole);
            assert_eq!(got, vec![Ev::Msg(0, 10, payload(len, false), 0)]);
        }
    }
}

#[test]
fn big_message_in_small_reads() {
    let data = payload(3 << 20, false);
    let mut from = Engine::new(Role::Client, Config::default());
    let mut to = Engine::new(Role::Server, Config::default());
    from.queue_msg(OpCode::Binary, &data).unwrap();
    let got = deliver(&mut from, &mut to, Split::Random(9));
    assert_eq!(got, vec![Ev::Msg(0, 2, data, 0)]);
}

#[test]
fn fragmented_messages_both_ways() {
    for (from_role, to_role) in [(Role::Client, Role::Server), (Role::Server, Role::Client)] {
        for len in [0usize, 1, 125, 126, 4096, 4097, 65536, 200_000] {
            for op in [OpCode::Text, OpCode::Binary] {
                let data = if op == OpCode::Text {
                    text_payload(len)
                } else {
                    payload(len, false)
                };
                let mut from = Engine::new(from_role, Config::default());
                let mut to = Engine::new(to_role, Config::default());
                let mut rest = data.clone();
                let mut rng = StdRng::seed_from_u64(len as u64);
                from.queue_fragmented(
                    op,
                    Box::new(move |buf: &mut [u8]| {
                        // Text pieces end on char boundaries (the sender checks).
                        let mut n = rng.gen_range(0..=buf.len().min(rest.len()));
                        while op == OpCode::Text && n < rest.len() && (rest[n] & 0xc0) == 0x80 {
                            n -= 1;
                        }
                        buf[..n].copy_from_slice(&rest[..n]);
                        rest.drain(..n);
                        if rest.is_empty() {
                            Fragment::Eof(n)
                        } else {
                            Fragment::Data(n)
                        }
                    }),
                )
                .unwrap();
                from.queue_msg(OpCode::Ping, b"between").unwrap();
                let got = deliver(&mut from, &mut to, Split::Random(len as u64));
                assert_eq!(
                    got,
                    vec![
                        Ev::Msg(0, 9, b"between".to_vec(), 0),
                        Ev::Msg(0, op.as_u8(), data, 0)
                    ],
                    "len {len} {op:?}"
                );
            }
        }
    }
}

#[test]
fn closing_handshake_between_two_engines() {
    let mut client = Engine::new(Role::Client, Config::default());
    let mut server = Engine::new(Role::Server, Config::default());
    client.queue_msg(OpCode::Text, b"hi").unwrap();
    server.queue_msg(OpCode::Text, b"hello").unwrap();
    server.queue_close(Some(1001), b"going away").unwrap();
    assert_eq!(
        deliver(&mut server, &mut client, Split::Bytes),
        vec![msg(1, b"hello")]
    );
    assert!(server.close_sent() && server.want_read());
    assert!(client.close_received());
    // The client's "hi", not yet started, is discarded by its close reply.
    let got = deliver(&mut client, &mut server, Split::Whole);
    assert!(got.is_empty());
    assert!(server.close_received() && !server.want_read() && !server.want_write());
    assert_eq!(
        (server.status_code_sent(), server.status_code_received()),
        (1001, 1001)
    );
    assert_eq!(
        (client.status_code_sent(), client.status_code_received()),
        (1001, 1001)
    );
    assert!(!client.want_read() && !client.want_write());
}
