//! Sending: queueing rules, ordering, fragmented messages, closes, shutdown,
//! masks, the high-water mark and partial writes, checked on the wire.
mod engine_util;
use engine_util as util;

use std::sync::{Arc, Mutex, MutexGuard};

use net_websocket_ev::proto::{
    Config, Engine, Error, Fragment, OpCode, Produced, Producer, Role, SendStatus, Sender,
};
use util::*;

fn drain(engine: &mut Engine) -> Vec<Frame> {
    let mut wire = Vec::new();
    engine.send(&mut wire).unwrap();
    parse_frames(&wire)
}

fn t(fin: bool, op: u8, payload: &[u8]) -> (bool, u8, Vec<u8>) {
    (fin, op, payload.to_vec())
}

/// A producer handing out the given pieces; the last one as EOF.
fn pieces_producer(pieces: &[&[u8]]) -> Producer {
    let mut pieces: Vec<Vec<u8>> = pieces.iter().map(|p| p.to_vec()).collect();
    pieces.reverse();
    Box::new(move |buf: &mut [u8]| {
        let p = pieces.pop().unwrap_or_default();
        buf[..p.len()].copy_from_slice(&p);
        if pieces.is_empty() {
            Fragment::Eof(p.len())
        } else {
            Fragment::Data(p.len())
        }
    })
}

#[test]
fn queue_msg_checks() {
    let mut e = Engine::new(Role::Server, Config::default());
    assert_eq!(
        e.queue_msg(OpCode::Continuation, b"x"),
        Err(Error::InvalidOpcode(0))
    );
    assert_eq!(
        e.queue_msg(OpCode::Close, b""),
        Err(Error::InvalidOpcode(8))
    );
    assert_eq!(
        e.queue_msg(OpCode::Ping, &[0; 126]),
        Err(Error::ControlTooLong(126))
    );
    assert_eq!(
        e.queue_msg(OpCode::Pong, &[0; 126]),
        Err(Error::ControlTooLong(126))
    );
    assert_eq!(e.queue_msg(OpCode::Text, b"\xff"), Err(Error::InvalidUtf8));
    assert_eq!(
        e.queue_fragmented(OpCode::Ping, pieces_producer(&[b""])),
        Err(Error::InvalidOpcode(9))
    );
    assert_eq!(e.queued_count(), 0);
    assert!(!e.want_write());
    e.queue_msg(OpCode::Ping, &[0; 125]).unwrap();
    e.queue_msg(OpCode::Binary, b"\xff").unwrap();
    assert_eq!(e.queued_count(), 2);
    assert!(e.want_write());
}

#[test]
fn control_frames_go_before_data_not_yet_started() {
    for role in [Role::Server, Role::Client] {
        let mut e = Engine::new(role, Config::default());
        e.queue_msg(OpCode::Text, b"one").unwrap();
        e.queue_msg(OpCode::Binary, b"two").unwrap();
        e.queue_msg(OpCode::Ping, b"P").unwrap();
        e.sender_mut().queue_pong(b"Q");
        let frames = drain(&mut e);
        assert_eq!(
            summary(&frames),
            vec![
                t(true, 9, b"P"),
                t(true, 10, b"Q"),
                t(true, 1, b"one"),
                t(true, 2, b"two")
            ]
        );
        assert!(frames
            .iter()
            .all(|f| f.mask.is_some() == (role == Role::Client)));
        assert_eq!(e.queued_count(), 0);
        assert!(!e.want_write());
    }
}

#[test]
fn control_frame_never_enters_a_partly_written_frame() {
    let mut e = Engine::new(Role::Server, Config::default());
    e.queue_msg(OpCode::Binary, &[7; 300]).unwrap();
    let mut w = Trickle {
        step: 10,
        ..Trickle::default()
    };
    assert_eq!(e.send(&mut w).unwrap(), SendStatus::WouldBlock);
    e.queue_msg(OpCode::Ping, b"P").unwrap();
    e.queue_msg(OpCode::Text, b"after").unwrap();
    e.queue_msg(OpCode::Ping, b"R").unwrap();
    while e.send(&mut w).unwrap() != SendStatus::Idle {}
    assert_eq!(
        summary(&parse_frames(&w.data)),
        vec![
            t(true, 2, &[7; 300]),
            t(true, 9, b"P"),
            t(true, 9, b"R"),
            t(true, 1, b"after")
        ]
    );
}

#[test]
fn fragmented_message_with_interleaved_ping_then_queued_message() {
    let mut e = Engine::new(Role::Server, Config::default());
    e.queue_fragmented(OpCode::Binary, pieces_producer(&[b"a", b"b", b"c"]))
        .unwrap();
    e.queue_msg(OpCode::Text, b"after").unwrap();
    e.queue_msg(OpCode::Ping, b"P").unwrap();
    assert_eq!(e.queued_count(), 3);
    assert_eq!(
        summary(&drain(&mut e)),
        vec![
            t(true, 9, b"P"),
            t(false, 2, b"a"),
            t(false, 0, b"b"),
            t(true, 0, b"c"),
            t(true, 1, b"after"),
        ]
    );
    assert_eq!(e.queued_count(), 0);
}

#[test]
fn control_frames_between_fragments() {
    // The sender-level protocol: NeedFragment, push_fragment, pings in between.
    let mut s = Sender::new(Role::Server, &Config::default());
    s.queue_fragmented(OpCode::Text).unwrap();
    let mut wire = Vec::new();
    assert_eq!(
        s.send(&mut wire).unwrap(),
        SendStatus::NeedFragment { max_len: 4096 }
    );
    assert_eq!(s.push_fragment(b"a", false), Ok(()));
    s.queue_msg(OpCode::Ping, b"P").unwrap();
    assert_eq!(
        s.send(&mut wire).unwrap(),
        SendStatus::NeedFragment { max_len: 4096 }
    );
    s.queue_msg(OpCode::Pong, b"Q").unwrap();
    assert_eq!(
        s.send(&mut wire).unwrap(),
        SendStatus::NeedFragment { max_len: 4096 }
    );
    assert_eq!(
        s.push_fragment(&[0; 4097], false),
        Err(Error::FragmentTooLong {
            len: 4097,
            max: 4096
        })
    );
    // Text fragments are checked across pieces.
    assert_eq!(s.push_fragment(b"\xe2\x82", false), Ok(()));
    assert_eq!(s.push_fragment(b"\xff", false), Err(Error::InvalidUtf8));
    assert_eq!(s.push_fragment(b"\xac", true), Ok(()));
    assert_eq!(
        s.push_fragment(b"x", true),
        Err(Error::FragmentedNotPending)
    );
    assert_eq!(s.send(&mut wire).unwrap(), SendStatus::Idle);
    assert_eq!(
        summary(&parse_frames(&wire)),
        vec![
            t(false, 1, b"a"),
            t(true, 9, b"P"),
            t(true, 10, b"Q"),
            t(false, 0, b"\xe2\x82"),
            t(true, 0, b"\xac"),
        ]
    );
}

#[test]
fn producer_edge_cases() {
    // Eof(0) first: an empty message.
    let mut e = Engine::new(Role::Server, Config::default());
    e.queue_fragmented(OpCode::Text, pieces_producer(&[b""]))
        .unwrap();
    assert_eq!(summary(&drain(&mut e)), vec![t(true, 1, b"")]);

    // Eof(0) after data: an empty final frame.
    e.queue_fragmented(OpCode::Binary, pieces_producer(&[b"x", b""]))
        .unwrap();
    assert_eq!(
        summary(&drain(&mut e)),
        vec![t(false, 2, b"x"), t(true, 0, b"")]
    );

    // Data(0): nothing now, asked again at the next send.
    let calls = Shared::new(0);
    let c = calls.clone();
    e.queue_fragmented(
        OpCode::Binary,
        Box::new(move |buf: &mut [u8]| {
            *c.borrow_mut() += 1;
            match *c.borrow() {
                1 => Fragment::Data(0),
                _ => {
                    buf[0] = b'z';
                    Fragment::Eof(1)
                }
            }
        }),
    )
    .unwrap();
    let mut wire = Vec::new();
    assert_eq!(
        e.send(&mut wire).unwrap(),
        SendStatus::NeedFragment { max_len: 4096 }
    );
    assert!(wire.is_empty() && e.want_write());
    assert_eq!(e.send(&mut wire).unwrap(), SendStatus::Idle);
    assert_eq!(summary(&parse_frames(&wire)), vec![t(true, 2, b"z")]);
    assert_eq!(*calls.borrow(), 2);

    // The buffer offered is fragment_size bytes.
    let mut e = Engine::new(Role::Server, Config::default().fragment_size(3));
    e.queue_fragmented(
        OpCode::Binary,
        Box::new(|buf: &mut [u8]| {
            assert_eq!(buf.len(), 3);
            buf.fill(b'k');
            Fragment::Eof(3)
        }),
    )
    .unwrap();
    assert_eq!(summary(&drain(&mut e)), vec![t(true, 2, b"kkk")]);
}

#[test]
fn producer_error_or_overlong_sends_1011_and_discards_the_rest() {
    for bad in [Fragment::Error, Fragment::Data(5000), Fragment::Eof(4097)] {
        let mut e = Engine::new(Role::Server, Config::default());
        let mut n = 0;
        e.queue_fragmented(
            OpCode::Binary,
            Box::new(move |buf: &mut [u8]| {
                n += 1;
                if n == 1 {
                    buf[0] = b'a';
                    Fragment::Data(1)
                } else {
                    bad
                }
            }),
        )
        .unwrap();
        e.queue_msg(OpCode::Text, b"dropped").unwrap();
        let frames = drain(&mut e);
        assert_eq!(summary(&frames[..1]), vec![t(false, 2, b"a")]);
        assert_eq!(frames[1].close(), Some((1011, vec![])));
        assert_eq!(frames.len(), 2);
        assert!(e.close_sent() && !e.want_write());
        assert_eq!(e.status_code_sent(), 1011);
        assert_eq!(e.queue_msg(OpCode::Text, b"x"), Err(Error::Closed));
    }
}

/// A producer answering from a script, one answer per call, with `piece`
/// copied in for `Data(n)` and `Eof(n)`; counts its calls.
fn scripted(script: &[(Fragment, &[u8])], calls: Shared<usize>) -> Producer {
    let mut script: Vec<(Fragment, Vec<u8>)> =
        script.iter().map(|(f, p)| (*f, p.to_vec())).collect();
    script.reverse();
    Box::new(move |buf: &mut [u8]| {
        *calls.borrow_mut() += 1;
        let (answer, piece) = script.pop().expect("asked once too often");
        buf[..piece.len()].copy_from_slice(&piece);
        answer
    })
}

#[test]
fn push_produced_carries_out_every_answer() {
    // What comes of each answer, on the sender alone; `buf` is the buffer the
    // producer was given (max_len bytes).
    let need = SendStatus::NeedFragment { max_len: 4096 };
    let fresh = |op: OpCode| {
        let mut s = Sender::new(Role::Server, &Config::default());
        s.queue_fragmented(op).unwrap();
        s.queue_msg(OpCode::Text, b"after").unwrap();
        let mut wire = Vec::new();
        assert_eq!(s.send(&mut wire).unwrap(), need);
        (s, wire)
    };
    let mut buf = vec![0; 4096];

    let (mut s, mut wire) = fresh(OpCode::Text);
    buf[..3].copy_from_slice(b"abc");
    assert_eq!(s.push_produced(&buf, Fragment::Data(3)), Produced::Queued);
    assert_eq!(s.send(&mut wire).unwrap(), need);
    assert_eq!(s.push_produced(&buf, Fragment::Data(0)), Produced::NotReady);
    assert_eq!(s.send(&mut wire).unwrap(), need, "asked again");
    buf[..2].copy_from_slice(b"\xe2\x82");
    assert_eq!(s.push_produced(&buf, Fragment::Data(2)), Produced::Queued);
    buf[0] = 0xac;
    assert_eq!(s.push_produced(&buf, Fragment::Eof(1)), Produced::Finished);
    assert_eq!(s.send(&mut wire).unwrap(), SendStatus::Idle);
    assert_eq!(
        summary(&parse_frames(&wire)),
        vec![
            t(false, 1, b"abc"),
            t(false, 0, b"\xe2\x82"),
            t(true, 0, b"\xac"),
            t(true, 1, b"after"),
        ]
    );

    // Every failure abandons the message and what follows it, and queues 1011
    // after the pieces already queued.
    let failures: [(OpCode, &[u8], Fragment); 6] = [
        (OpCode::Binary, b"", Fragment::Error),
        (OpCode::Binary, b"", Fragment::Data(4097)),
        (OpCode::Binary, b"", Fragment::Eof(4097)),
        // Text that is not UTF-8: refused, not dropped with the rest sent.
        (OpCode::Text, b"\xff", Fragment::Data(1)),
        (OpCode::Text, b"\xc0\xaf", Fragment::Eof(2)),
        // A text message that ends inside a character.
        (OpCode::Text, b"\xe2\x82", Fragment::Eof(2)),
    ];
    for (op, piece, answer) in failures {
        let (mut s, mut wire) = fresh(op);
        buf[..1].copy_from_slice(b"x");
        assert_eq!(s.push_produced(&buf, Fragment::Data(1)), Produced::Queued);
        buf[..piece.len()].copy_from_slice(piece);
        assert_eq!(
            s.push_produced(&buf, answer),
            Produced::Failed,
            "{answer:?}"
        );
        assert!(s.close_queued());
        assert_eq!(s.send(&mut wire).unwrap(), SendStatus::Idle);
        let frames = parse_frames(&wire);
        assert_eq!(summary(&frames[..1]), vec![t(false, op.as_u8(), b"x")]);
        assert_eq!(frames[1].close(), Some((1011, vec![])), "{answer:?}");
        assert_eq!(frames.len(), 2);
        assert_eq!(s.status_code_sent(), 1011);
    }
    // A length over the buffer given is refused even under fragment_size.
    let (mut s, _) = fresh(OpCode::Binary);
    assert_eq!(
        s.push_produced(&buf[..10], Fragment::Data(11)),
        Produced::Failed
    );
    assert!(s.close_queued());

    // No message waiting for a piece: nothing is queued, no close either.
    let mut s = Sender::new(Role::Server, &Config::default());
    for answer in [
        Fragment::Data(1),
        Fragment::Data(0),
        Fragment::Eof(0),
        Fragment::Pause,
    ] {
        assert_eq!(s.push_produced(&buf, answer), Produced::Failed);
        assert!(!s.close_queued() && !s.want_write());
    }
}

#[test]
fn an_engine_producer_of_bad_text_gets_1011() {
    // The engine carries out its producers' answers with push_produced: a text
    // piece that is not UTF-8, or a text message that ends inside a character,
    // abandons the message (nothing after the refused piece is sent).
    for script in [
        &[
            (Fragment::Data(2), &b"ok"[..]),
            (Fragment::Data(1), b"\xff"),
            (Fragment::Eof(1), b"z"),
        ][..],
        &[
            (Fragment::Data(2), &b"ok"[..]),
            (Fragment::Eof(2), b"\xe2\x82"),
        ][..],
    ] {
        let mut e = Engine::new(Role::Server, Config::default());
        let calls = Shared::new(0);
        e.queue_fragmented(OpCode::Text, scripted(script, calls.clone()))
            .unwrap();
        e.queue_msg(OpCode::Binary, b"dropped").unwrap();
        let frames = drain(&mut e);
        assert_eq!(summary(&frames[..1]), vec![t(false, 1, b"ok")]);
        assert_eq!(frames[1].close(), Some((1011, vec![])));
        assert_eq!(frames.len(), 2);
        assert_eq!(*calls.borrow(), 2, "the producer was dropped");
    }
}

/// Feeds `input` whole, or one byte at a time.
fn feed_bytes(e: &mut Engine, input: &[u8], one_byte_at_a_time: bool) -> Recorder {
    let mut rec = Recorder::default();
    if one_byte_at_a_time {
        for b in input {
            e.feed(std::slice::from_ref(b), &mut rec);
        }
    } else {
        e.feed(input, &mut rec);
    }
    rec
}

#[test]
fn a_paused_producer_is_not_asked_again_until_resumed() {
    for one_byte_at_a_time in [false, true] {
        let calls = Shared::new(0);
        let mut e = Engine::new(Role::Server, Config::default());
        let script = [
            (Fragment::Data(1), &b"a"[..]),
            (Fragment::Pause, b""),
            (Fragment::Eof(1), b"b"),
        ];
        e.queue_fragmented(OpCode::Binary, scripted(&script, calls.clone()))
            .unwrap();
        e.queue_msg(OpCode::Text, b"after").unwrap();
        e.queue_close(Some(1000), b"").unwrap();
        let mut wire = Vec::new();
        // Paused: `send` returns Idle, not NeedFragment, and nothing is wanted.
        assert_eq!(e.send(&mut wire).unwrap(), SendStatus::Idle);
        assert_eq!(*calls.borrow(), 2);
        assert!(e.sender().fragmented_paused() && !e.want_write());
        assert_eq!(e.send(&mut wire).unwrap(), SendStatus::Idle);
        assert_eq!(*calls.borrow(), 2, "not asked again while paused");
        // A ping is answered meanwhile: control frames pass the paused message.
        feed_bytes(
            &mut e,
            &frame_to(Role::Server, true, 9, b"P"),
            one_byte_at_a_time,
        );
        assert!(e.want_write());
        assert_eq!(e.send(&mut wire).unwrap(), SendStatus::Idle);
        assert!(!e.want_write() && e.sender().fragmented_paused());
        assert_eq!(*calls.borrow(), 2);
        // The data and the user close queued after it wait; resumed, it goes on.
        e.resume_fragmented();
        assert!(!e.sender().fragmented_paused() && e.want_write());
        assert_eq!(e.send(&mut wire).unwrap(), SendStatus::Idle);
        assert_eq!(*calls.borrow(), 3);
        assert_eq!(
            summary(&parse_frames(&wire)),
            vec![
                t(false, 2, b"a"),
                t(true, 10, b"P"),
                t(true, 0, b"b"),
                t(true, 1, b"after"),
                t(true, 8, &close_payload(1000, b"")),
            ]
        );
        assert!(e.close_sent());
    }
}

#[test]
fn a_paused_sender_writes_control_frames_and_returns_idle() {
    let mut s = Sender::new(Role::Client, &Config::default());
    s.queue_fragmented(OpCode::Binary).unwrap();
    let mut wire = Vec::new();
    let need = SendStatus::NeedFragment { max_len: 4096 };
    assert_eq!(s.send(&mut wire).unwrap(), need);
    assert_eq!(
        s.push_produced(&[0; 4096], Fragment::Pause),
        Produced::Paused
    );
    assert!(s.fragmented_paused() && !s.want_write());
    assert_eq!(s.send(&mut wire).unwrap(), SendStatus::Idle);
    s.queue_msg(OpCode::Ping, b"1").unwrap();
    s.queue_pong(b"2");
    assert!(s.want_write());
    assert_eq!(s.send(&mut wire).unwrap(), SendStatus::Idle);
    assert!(!s.want_write());
    assert_eq!(
        summary(&parse_frames(&wire)),
        vec![t(true, 9, b"1"), t(true, 10, b"2")]
    );
    // Resuming something not paused is a no-op; resumed, it is asked for again.
    s.resume_fragmented();
    s.resume_fragmented();
    assert!(!s.fragmented_paused() && s.want_write());
    assert_eq!(s.send(&mut wire).unwrap(), need);
    assert_eq!(
        s.push_produced(&[7; 4096], Fragment::Eof(1)),
        Produced::Finished
    );
    assert_eq!(s.send(&mut wire).unwrap(), SendStatus::Idle);
    assert_eq!(summary(&parse_frames(&wire))[2], t(true, 2, &[7]));
    assert!(!s.fragmented_paused() && !s.want_write());
}

#[test]
fn a_failure_close_or_a_close_reply_passes_a_paused_message() {
    let unmasked = raw_frame(0x81, b"unmasked", None);
    let peer_close = frame_to(Role::Server, true, 8, &close_payload(1001, b"bye"));
    let paused: &[(Fragment, &[u8])] = &[(Fragment::Data(1), b"a"), (Fragment::Pause, b"")];
    // Not paused yet when the failure comes (it is queued behind the message,
    // then the producer pauses).
    let later: &[(Fragment, &[u8])] = &[
        (Fragment::Data(1), b"a"),
        (Fragment::Data(0), b""),
        (Fragment::Pause, b""),
    ];
    for (script, input, code) in [
        (paused, &unmasked, 1002),
        (later, &unmasked, 1002),
        (paused, &peer_close, 1001),
    ] {
        for one_byte_at_a_time in [false, true] {
            let calls = Shared::new(0);
            let mut e = Engine::new(Role::Server, Config::default());
            e.queue_fragmented(OpCode::Binary, scripted(script, calls.clone()))
                .unwrap();
            e.queue_msg(OpCode::Text, b"dropped").unwrap();
            let mut wire = Vec::new();
            e.send(&mut wire).unwrap();
            assert_eq!(e.want_write(), script.len() == 3);
            feed_bytes(&mut e, input, one_byte_at_a_time);
            assert!(e.want_write(), "the close is wanted");
            assert_eq!(e.send(&mut wire).unwrap(), SendStatus::Idle);
            assert_eq!(*calls.borrow(), script.len());
            let frames = parse_frames(&wire);
            assert_eq!(summary(&frames[..1]), vec![t(false, 2, b"a")]);
            assert_eq!(frames[1].close().map(|c| c.0), Some(code));
            assert_eq!(frames.len(), 2, "{code}: the rest is dropped");
            assert!(e.close_sent() && !e.want_write());
            assert_eq!(Arc::strong_count(&calls.0), 1, "the producer was dropped");
        }
    }
    // A user close queued behind the paused message stops waiting when the peer
    // breaks the protocol (it is the close that goes out, with its code).
    let mut e = Engine::new(Role::Server, Config::default());
    let calls = Shared::new(0);
    e.queue_fragmented(OpCode::Binary, scripted(paused, calls.clone()))
        .unwrap();
    e.queue_close(Some(4000), b"mine").unwrap();
    let mut wire = Vec::new();
    assert_eq!(e.send(&mut wire).unwrap(), SendStatus::Idle);
    assert!(!e.want_write(), "the user close waits");
    e.feed(&unmasked, &mut Recorder::default());
    assert!(e.want_write());
    assert_eq!(e.send(&mut wire).unwrap(), SendStatus::Idle);
    let frames = parse_frames(&wire);
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[1].close(), Some((4000, b"mine".to_vec())));
    assert_eq!(Arc::strong_count(&calls.0), 1, "the producer was dropped");
}

#[test]
fn user_close_goes_after_everything_queued_before_it() {
    let mut e = Engine::new(Role::Client, Config::default());
    e.queue_msg(OpCode::Text, b"a").unwrap();
    e.queue_fragmented(OpCode::Binary, pieces_producer(&[b"b", b"c"]))
        .unwrap();
    e.queue_close(Some(1000), b"bye").unwrap();
    assert_eq!(e.queue_msg(OpCode::Text, b"late"), Err(Error::Closed));
    assert_eq!(e.queue_msg(OpCode::Ping, b"late"), Err(Error::Closed));
    assert_eq!(e.queue_close(Some(1000), b""), Err(Error::Closed));
    // An automatic pong after the close is queued still goes out, ahead of the
    // data (RFC 6455 section 5.5.2; the Perl module dropped it).
    e.sender_mut().queue_pong(b"pong");
    assert_eq!(e.status_code_sent(), 1006);
    assert!(e.sender().close_queued() && !e.close_sent());
    let frames = drain(&mut e);
    assert_eq!(
        summary(&frames),
        vec![
            t(true, 10, b"pong"),
            t(true, 1, b"a"),
            t(false, 2, b"b"),
            t(true, 0, b"c"),
            t(true, 8, &close_payload(1000, b"bye")),
        ]
    );
    assert!(e.close_sent() && !e.want_write());
    assert_eq!(e.status_code_sent(), 1000);
    // Reading goes on until the peer's close.
    assert!(e.want_read());
}

/// A writer that takes `budget` bytes in all, then would block.
#[derive(Default)]
struct Budget {
    data: Vec<u8>,
    budget: usize,
}

impl std::io::Write for Budget {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.budget);
        if n == 0 {
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        self.budget -= n;
        self.data.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn pings_are_answered_until_our_close_is_written() {
    // RFC 6455 section 5.5.2: a ping that arrives after our close is queued,
    // before our close is written and before the peer's close, gets its pong.
    // Two moments: the close still queued behind a message being written, and
    // the close framed behind it but not yet started. Every ping is fed whole
    // and one byte at a time.
    for role in [Role::Server, Role::Client] {
        let mask = if role == Role::Client { 4 } else { 0 };
        for first in [vec![5; 100_000], b"a".to_vec()] {
            // 10 bytes of the long message; exactly the short message's frame.
            let budget = if first.len() > 125 {
                10
            } else {
                2 + mask + first.len()
            };
            for one_byte_at_a_time in [false, true] {
                let mut e = Engine::new(role, Config::default());
                e.queue_msg(OpCode::Binary, &first).unwrap();
                e.queue_close(Some(1000), b"bye").unwrap();
                let mut w = Budget {
                    data: Vec::new(),
                    budget,
                };
                assert_eq!(e.send(&mut w).unwrap(), SendStatus::WouldBlock);
                assert!(e.sender().close_queued() && !e.close_sent());
                let mut rec = Recorder::default();
                let ping = frame_to(role, true, 9, b"late ping");
                if one_byte_at_a_time {
                    for b in &ping {
                        e.feed(std::slice::from_ref(b), &mut rec);
                    }
                } else {
                    e.feed(&ping, &mut rec);
                }
                assert_eq!(rec.events.last(), Some(&msg(9, b"late ping")));
                assert!(e.want_write());
                w.budget = usize::MAX;
                assert_eq!(e.send(&mut w).unwrap(), SendStatus::Idle);
                assert_eq!(
                    summary(&parse_frames(&w.data)),
                    vec![
                        t(true, 2, &first),
                        t(true, 10, b"late ping"),
                        t(true, 8, &close_payload(1000, b"bye")),
                    ],
                    "{role:?}, first message {} bytes",
                    first.len()
                );
                assert!(e.close_sent() && !e.want_write());
                // Once our close is written, a ping gets no pong.
                e.feed(&frame_to(role, true, 9, b"too late"), &mut rec);
                assert!(!e.want_write());
                assert_eq!(e.queued_count(), 0);
            }
        }
        // Once the close frame's writing has begun, nothing can go before it.
        let mut e = Engine::new(role, Config::default());
        e.queue_close(Some(1000), b"bye").unwrap();
        let mut w = Budget {
            data: Vec::new(),
            budget: 1,
        };
        assert_eq!(e.send(&mut w).unwrap(), SendStatus::WouldBlock);
        e.feed(&frame_to(role, true, 9, b"late"), &mut Recorder::default());
        assert_eq!(e.queued_count(), 1);
        w.budget = usize::MAX;
        assert_eq!(e.send(&mut w).unwrap(), SendStatus::Idle);
        assert_eq!(
            summary(&parse_frames(&w.data)),
            vec![t(true, 8, &close_payload(1000, b"bye"))]
        );
    }
}

#[test]
fn queue_close_checks() {
    let mut e = Engine::new(Role::Server, Config::default());
    assert_eq!(
        e.queue_close(Some(999), b""),
        Err(Error::InvalidCloseCode(999))
    );
    assert_eq!(
        e.queue_close(Some(1005), b""),
        Err(Error::InvalidCloseCode(1005))
    );
    assert_eq!(
        e.queue_close(Some(1000), &[b'a'; 124]),
        Err(Error::ReasonTooLong(124))
    );
    assert_eq!(
        e.queue_close(Some(1000), b"\xff"),
        Err(Error::InvalidCloseReason)
    );
    assert_eq!(e.queue_close(None, b"why"), Err(Error::InvalidCloseReason));
    assert!(!e.sender().close_queued());
    e.queue_close(None, b"").unwrap();
    assert_eq!(summary(&drain(&mut e)), vec![t(true, 8, b"")]);
    assert_eq!(e.status_code_sent(), 1005);
    // 123 bytes of reason is the most.
    let mut e = Engine::new(Role::Server, Config::default());
    e.queue_close(Some(4000), &[b'r'; 123]).unwrap();
    assert_eq!(drain(&mut e)[0].close(), Some((4000, vec![b'r'; 123])));
}

#[test]
fn peer_close_is_answered_at_once_and_unstarted_data_dropped() {
    for role in [Role::Server, Role::Client] {
        let mut e = Engine::new(role, Config::default());
        e.queue_msg(OpCode::Binary, &[1; 100]).unwrap();
        let mut w = Trickle {
            step: 10,
            ..Trickle::default()
        };
        assert_eq!(e.send(&mut w).unwrap(), SendStatus::WouldBlock);
        e.queue_msg(OpCode::Text, b"echo queued before the close")
            .unwrap();
        e.queue_fragmented(OpCode::Binary, pieces_producer(&[b"x"]))
            .unwrap();
        let mut rec = Recorder::default();
        let input = [
            frame_to(role, true, 9, b"p"),
            frame_to(role, true, 8, &close_payload(1001, b"going")),
        ]
        .concat();
        e.feed(&input, &mut rec);
        assert!(e.close_received());
        assert_eq!(e.queued_count(), 3, "partly written frame, pong, close");
        assert_eq!(e.queue_msg(OpCode::Text, b"x"), Err(Error::Closed));
        while e.send(&mut w).unwrap() != SendStatus::Idle {}
        assert_eq!(
            summary(&parse_frames(&w.data)),
            vec![
                t(true, 2, &[1; 100]),
                t(true, 10, b"p"),
                t(true, 8, &close_payload(1001, b"going")),
            ]
        );
        assert!(!e.want_read() && !e.want_write());
        assert_eq!(
            (e.status_code_received(), e.status_code_sent()),
            (1001, 1001)
        );
    }
}

#[test]
fn peer_close_moves_a_queued_user_close_to_the_front() {
    let mut e = Engine::new(Role::Server, Config::default());
    e.queue_msg(OpCode::Binary, &[1; 10]).unwrap();
    e.queue_close(Some(1000), b"mine").unwrap();
    let mut rec = Recorder::default();
    e.feed(
        &frame_to(Role::Server, true, 8, &close_payload(1001, b"")),
        &mut rec,
    );
    let frames = drain(&mut e);
    assert_eq!(
        summary(&frames),
        vec![t(true, 8, &close_payload(1000, b"mine"))]
    );
}

#[test]
fn violation_close_goes_after_what_was_queued() {
    let mut e = Engine::new(Role::Server, Config::default());
    e.queue_msg(OpCode::Text, b"earlier").unwrap();
    let mut rec = Recorder::default();
    e.feed(&raw_frame(0x81, b"unmasked", None), &mut rec);
    assert_eq!(e.queue_msg(OpCode::Text, b"x"), Err(Error::Closed));
    let frames = drain(&mut e);
    assert_eq!(
        summary(&frames),
        vec![
            t(true, 1, b"earlier"),
            t(true, 8, &close_payload(1002, b""))
        ]
    );
}

#[test]
fn shutdown_write_drops_the_queue_at_once() {
    let mut e = Engine::new(Role::Server, Config::default());
    e.queue_msg(OpCode::Text, b"a").unwrap();
    e.queue_fragmented(OpCode::Binary, pieces_producer(&[b"b"]))
        .unwrap();
    e.shutdown_write();
    assert!(!e.want_write());
    assert_eq!((e.queued_count(), e.queued_bytes()), (0, 0));
    assert_eq!(e.queue_msg(OpCode::Text, b"x"), Err(Error::Closed));
    assert_eq!(e.queue_close(Some(1000), b""), Err(Error::Closed));
    let mut wire = Vec::new();
    assert_eq!(e.send(&mut wire).unwrap(), SendStatus::Idle);
    assert!(wire.is_empty());
    // Reading goes on; the peer's close can no longer be answered.
    let mut rec = Recorder::default();
    e.feed(&frame_to(Role::Server, true, 1, b"still read"), &mut rec);
    e.feed(
        &frame_to(Role::Server, true, 8, &close_payload(1000, b"")),
        &mut rec,
    );
    assert_eq!(rec.merged()[..4], whole(1, b"still read")[..]);
    assert_eq!(e.status_code_received(), 1000);
    assert!(!e.want_write() && !e.close_sent());
}

#[test]
fn mask_source_is_called_once_per_frame() {
    let mut e = Engine::new(Role::Client, Config::default());
    let calls = Shared::new(0u8);
    let c = calls.clone();
    e.set_mask_source(Box::new(move |key: &mut [u8; 4]| {
        *c.borrow_mut() += 1;
        *key = [1, 2, 3, 4];
    }));
    e.queue_msg(OpCode::Ping, b"cp").unwrap();
    e.queue_msg(OpCode::Text, b"hello").unwrap();
    e.queue_fragmented(OpCode::Text, pieces_producer(&[b"ab", b"cd"]))
        .unwrap();
    e.queue_close(Some(1000), b"done").unwrap();
    let mut wire = Vec::new();
    e.send(&mut wire).unwrap();
    let frames = parse_frames(&wire);
    assert_eq!(frames.len(), 5);
    assert!(frames.iter().all(|f| f.mask == Some([1, 2, 3, 4])));
    assert_eq!(*calls.borrow(), 5);
    // The bytes on the wire really are masked with that key.
    assert_eq!(&wire[2..6], &[1, 2, 3, 4]);
    assert_eq!(&wire[6..8], &[b'c' ^ 1, b'p' ^ 2]);
}

#[test]
fn default_masks_are_random() {
    let mut e = Engine::new(Role::Client, Config::default());
    for _ in 0..8 {
        e.queue_msg(OpCode::Binary, b"x").unwrap();
    }
    let masks: std::collections::HashSet<_> = drain(&mut e).iter().map(|f| f.mask).collect();
    assert!(masks.len() >= 7, "{masks:?}");
    assert!(!masks.contains(&None));
}

#[test]
fn high_water_mark() {
    let mut e = Engine::new(Role::Server, Config::default().max_queued_bytes(100));
    e.queue_msg(OpCode::Binary, &[0; 60]).unwrap();
    assert_eq!(e.queued_bytes(), 60);
    assert_eq!(
        e.queue_msg(OpCode::Binary, &[0; 41]),
        Err(Error::QueueFull {
            queued: 101,
            limit: 100
        })
    );
    e.queue_msg(OpCode::Binary, &[0; 40]).unwrap();
    assert_eq!(e.queued_count(), 2);
    // A close or a pong is never refused.
    e.sender_mut().queue_pong(b"p");
    e.queue_close(Some(1000), b"").unwrap();
    drain(&mut e);
    assert_eq!(e.queued_bytes(), 0);
}

#[test]
fn ping_flood_past_the_high_water_mark_answers_only_the_latest_ping() {
    let config = Config::default().max_queued_bytes(1000);
    let mut e = Engine::new(Role::Server, config);
    let mut input = Vec::new();
    for i in 0..10_000u32 {
        input.extend(frame_to(Role::Server, true, 9, &i.to_be_bytes()));
    }
    let mut rec = Recorder::default();
    e.feed(&input, &mut rec);
    // Every ping was delivered, but the queue did not grow with them.
    let pings = rec
        .events
        .iter()
        .filter(|ev| matches!(ev, Ev::Msg(_, 9, _, _)));
    assert_eq!(pings.count(), 10_000);
    assert!(e.queued_count() <= 10, "{} pongs queued", e.queued_count());
    let frames = drain(&mut e);
    assert!(frames.iter().all(|f| f.op == 10));
    let first = &frames[0].payload;
    assert_eq!(
        first,
        &0u32.to_be_bytes(),
        "pongs under the mark answer their own ping"
    );
    let last = &frames.last().unwrap().payload;
    assert_eq!(
        last,
        &9_999u32.to_be_bytes(),
        "the waiting pong answers the latest ping"
    );
    // Under the mark again, each ping gets its own pong.
    e.feed(&frame_to(Role::Server, true, 9, b"a"), &mut rec);
    e.feed(&frame_to(Role::Server, true, 9, b"b"), &mut rec);
    assert_eq!(
        summary(&drain(&mut e)),
        vec![t(true, 10, b"a"), t(true, 10, b"b")]
    );
}

#[test]
fn queued_count_and_bytes_follow_partial_writes() {
    let mut e = Engine::new(Role::Server, Config::default());
    e.queue_msg(OpCode::Text, b"abc").unwrap();
    e.queue_msg(OpCode::Binary, b"defgh").unwrap();
    e.queue_msg(OpCode::Ping, b"p").unwrap();
    assert_eq!((e.queued_count(), e.queued_bytes()), (3, 9));
    let mut w = Trickle {
        step: 1,
        ..Trickle::default()
    };
    let mut seen = vec![];
    loop {
        match e.send(&mut w).unwrap() {
            SendStatus::Idle => break,
            SendStatus::WouldBlock => seen.push((e.queued_count(), e.queued_bytes())),
            other => panic!("{other:?}"),
        }
    }
    // 3 frames: 3 + 5 + 7 = 15 bytes, one byte per write.
    assert_eq!(w.data.len(), 15);
    assert_eq!(seen.first(), Some(&(3, 14)));
    assert_eq!(seen[2], (2, 12), "the pong (3 bytes) is written");
    assert_eq!(seen.last(), Some(&(1, 1)));
    assert!(seen.windows(2).all(|p| p[0].1 == p[1].1 + 1));
    assert_eq!(
        summary(&parse_frames(&w.data)),
        vec![t(true, 9, b"p"), t(true, 1, b"abc"), t(true, 2, b"defgh")]
    );
    assert_eq!((e.queued_count(), e.queued_bytes()), (0, 0));
}

#[test]
fn partial_writes_resume_exactly_and_small_frames_coalesce() {
    for role in [Role::Server, Role::Client] {
        let make = || {
            let mut e = Engine::new(role, Config::default());
            e.set_mask_source(Box::new(|k: &mut [u8; 4]| *k = [9, 8, 7, 6]));
            for i in 0..50u8 {
                e.queue_msg(OpCode::Binary, &vec![i; usize::from(i) * 7])
                    .unwrap();
            }
            e.queue_msg(OpCode::Binary, &[3; 70_000]).unwrap();
            e.queue_fragmented(OpCode::Text, pieces_producer(&[b"x", b"y"]))
                .unwrap();
            e.queue_close(Some(1000), b"").unwrap();
            e
        };
        let mut at_once = Counting::default();
        let mut e = make();
        assert_eq!(e.send(&mut at_once).unwrap(), SendStatus::Idle);
        assert!(at_once.writes <= 4, "{} writes", at_once.writes);

        for step in [1, 7, 1000] {
            let mut e = make();
            let mut w = Trickle {
                step,
                ..Trickle::default()
            };
            while e.send(&mut w).unwrap() != SendStatus::Idle {}
            assert_eq!(w.data, at_once.data, "step {step}");
        }
    }
}

#[test]
fn write_errors_are_returned() {
    use std::io;
    struct Broken(usize);
    impl io::Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            self.0 += 1;
            match self.0 {
                1 => Err(io::ErrorKind::Interrupted.into()),
                2 => Ok(0),
                _ => Err(io::ErrorKind::BrokenPipe.into()),
            }
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut e = Engine::new(Role::Server, Config::default());
    e.queue_msg(OpCode::Text, b"x").unwrap();
    let mut w = Broken(0);
    assert_eq!(e.send(&mut w).unwrap_err().kind(), io::ErrorKind::WriteZero);
    assert_eq!(
        e.send(&mut w).unwrap_err().kind(),
        io::ErrorKind::BrokenPipe
    );
    assert_eq!(e.queued_count(), 1);
}

#[test]
fn peer_close_keeps_framed_control_frames_and_drops_framed_data() {
    let mut e = Engine::new(Role::Server, Config::default());
    e.queue_msg(OpCode::Text, b"framed, never started").unwrap();
    e.queue_msg(OpCode::Ping, b"P").unwrap();
    // Everything is framed, nothing written.
    let mut w = Trickle {
        block_next: true,
        ..Trickle::default()
    };
    assert_eq!(e.send(&mut w).unwrap(), SendStatus::WouldBlock);
    assert!(w.data.is_empty());
    let mut rec = Recorder::default();
    e.feed(&frame_to(Role::Server, true, 8, b""), &mut rec);
    assert_eq!(
        drain(&mut e).iter().map(|f| f.op).collect::<Vec<_>>(),
        [9, 8]
    );
}

#[test]
fn a_panicking_mask_source_costs_one_key_and_leaves_the_queue_whole() {
    let mut e = Engine::new(Role::Client, Config::default());
    let mut calls = 0;
    e.set_mask_source(Box::new(move |key: &mut [u8; 4]| {
        calls += 1;
        if calls == 2 {
            panic!("mask source failed");
        }
        *key = [9, 9, 9, 9];
    }));
    for msg in [&b"one"[..], b"two", b"six"] {
        e.queue_msg(OpCode::Binary, msg).unwrap();
    }
    let mut wire = Vec::new();
    let raised = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| e.send(&mut wire)));
    let payload = raised.expect_err("the panic comes out of send");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"mask source failed"));
    e.send(&mut wire).unwrap();
    e.queue_msg(OpCode::Text, b"after").unwrap();
    e.send(&mut wire).unwrap();
    let frames = parse_frames(&wire);
    assert_eq!(
        summary(&frames),
        vec![
            t(true, 2, b"one"),
            t(true, 2, b"two"),
            t(true, 2, b"six"),
            t(true, 1, b"after")
        ]
    );
    assert_eq!(frames[0].mask, Some([9; 4]));
    assert!(frames[1].mask.is_some(), "the failed draw got a random key");
    assert_eq!(frames[2].mask, Some([9; 4]));
    assert_eq!((e.queued_count(), e.queued_bytes()), (0, 0));
}

/// State shared with a producer or a mask source, which are `Send`.
#[derive(Debug, Default)]
struct Shared<T>(Arc<Mutex<T>>);

impl<T> Shared<T> {
    fn new(value: T) -> Self {
        Shared(Arc::new(Mutex::new(value)))
    }

    fn borrow(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap()
    }

    fn borrow_mut(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap()
    }
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared(self.0.clone())
    }
}
