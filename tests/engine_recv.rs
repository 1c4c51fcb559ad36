//! Receiving rules, each as a byte-level conversation: input bytes in, handler
//! events and the frames the engine sends back out. Every conversation is also
//! fed one byte at a time, in random splits, and with a handler that pauses after
//! every event.
mod engine_util;
use engine_util as util;

use net_websocket_ev::proto::{Config, ProtocolError, RecvStatus, Role, Rsv};
use util::*;

const ROLES: [Role; 2] = [Role::Server, Role::Client];

fn cat(frames: &[Vec<u8>]) -> Vec<u8> {
    frames.concat()
}

fn expect_fail(role: Role, config: &Config, input: &[u8], code: u16) -> Outcome {
    expect_fail_with(role, config, input, code, |a, b| a == b)
}

fn expect_fail_with(
    role: Role,
    config: &Config,
    input: &[u8],
    code: u16,
    same: impl Fn(&[Ev], &[Ev]) -> bool,
) -> Outcome {
    let out = converse_all_with(role, config, input, same);
    assert_eq!(out.status, RecvStatus::Closed);
    assert_eq!(out.close_sent(), Some(code), "sent {:?}", out.sent);
    assert!(!out.engine.want_read());
    assert!(out.engine.receiver().failed().is_some());
    assert_eq!(out.engine.status_code_received(), 1006);
    assert!(out.engine.close_sent());
    assert_eq!(out.engine.status_code_sent(), code);
    out
}

#[test]
fn text_and_binary_messages() {
    for role in ROLES {
        let input = cat(&[
            frame_to(role, true, 1, b"hello"),
            frame_to(role, true, 2, &[0, 1, 0xff]),
            frame_to(role, true, 1, "héllo €".as_bytes()),
        ]);
        let out = converse_all(role, &Config::default(), &input);
        let mut want = whole(1, b"hello");
        want.extend(whole(2, &[0, 1, 0xff]));
        want.extend(whole(1, "héllo €".as_bytes()));
        assert_eq!(out.events, want);
        assert_eq!(out.status, RecvStatus::WouldBlock);
        assert!(out.sent.is_empty());
        assert!(out.engine.want_read());
        assert_eq!(out.engine.status_code_received(), 1006);
    }
}

#[test]
fn lengths_in_all_three_encodings() {
    for role in ROLES {
        for len in [0usize, 125, 126, 65535, 65536, 70000] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let out = converse(
                role,
                &Config::default(),
                &frame_to(role, true, 2, &data),
                Split::Whole,
            );
            assert_eq!(out.events, whole(2, &data), "len {len}");
        }
    }
}

#[test]
fn fragmented_message_buffered() {
    for role in ROLES {
        let input = cat(&[
            frame_to(role, false, 1, b"Hel"),
            frame_to(role, false, 0, b"lo "),
            frame_to(role, true, 0, b"world"),
        ]);
        let out = converse_all(role, &Config::default(), &input);
        assert_eq!(
            out.events,
            vec![
                start(false, 1, 3),
                chunk(b"Hel"),
                Ev::End,
                start(false, 0, 3),
                chunk(b"lo "),
                Ev::End,
                start(true, 0, 5),
                chunk(b"world"),
                Ev::End,
                msg(1, b"Hello world"),
            ]
        );
    }
}

#[test]
fn no_buffering_gives_empty_data_messages_but_control_payloads() {
    let config = Config::default().buffering(false);
    for role in ROLES {
        let input = cat(&[
            frame_to(role, false, 1, b"ab"),
            frame_to(role, true, 9, b"P"),
            frame_to(role, true, 0, b"cd"),
            frame_to(role, true, 2, b"single"),
        ]);
        let out = converse_all(role, &config, &input);
        assert_eq!(
            out.events,
            vec![
                start(false, 1, 2),
                chunk(b"ab"),
                Ev::End,
                start(true, 9, 1),
                chunk(b"P"),
                Ev::End,
                msg(9, b"P"),
                start(true, 0, 2),
                chunk(b"cd"),
                Ev::End,
                msg(1, b""),
                start(true, 2, 6),
                chunk(b"single"),
                Ev::End,
                msg(2, b""),
            ]
        );
        assert_eq!(summary(&out.sent), vec![(true, 10, b"P".to_vec())]);
    }
}

#[test]
fn empty_frames_give_one_empty_chunk() {
    for role in ROLES {
        let input = cat(&[
            frame_to(role, true, 1, b""),
            frame_to(role, true, 2, b""),
            frame_to(role, false, 1, b"ab"),
            frame_to(role, true, 0, b""),
            frame_to(role, true, 9, b""),
        ]);
        let out = converse_all(role, &Config::default(), &input);
        let mut want = whole(1, b"");
        want.extend(whole(2, b""));
        want.extend([
            start(false, 1, 2),
            chunk(b"ab"),
            Ev::End,
            start(true, 0, 0),
            chunk(b""),
            Ev::End,
            msg(1, b"ab"),
        ]);
        want.extend(whole(9, b""));
        assert_eq!(out.events, want);
        assert_eq!(summary(&out.sent), vec![(true, 10, vec![])]);
    }
}

#[test]
fn ping_is_answered_with_its_payload_before_on_message() {
    for role in ROLES {
        let mut engine = net_websocket_ev::proto::Receiver::new(role, &Config::default());
        let mut rec = Recorder::default();
        let mut replies = Replies::default();
        engine.feed(&frame_to(role, true, 9, b"p1"), &mut rec, &mut replies);
        assert_eq!(replies.0, vec![Rep::Pong(b"p1".to_vec())]);
        assert_eq!(rec.merged(), whole(9, b"p1"));
        // An unsolicited pong is reported and not answered.
        engine.feed(&frame_to(role, true, 10, b"x"), &mut rec, &mut replies);
        assert_eq!(replies.0.len(), 1);
        assert_eq!(rec.merged()[4..], whole(10, b"x")[..]);
    }
}

#[test]
fn ping_between_fragments_is_answered_at_once() {
    for role in ROLES {
        let input = cat(&[
            frame_to(role, false, 1, b"ab"),
            frame_to(role, true, 9, b"P"),
            frame_to(role, true, 0, b"cd"),
        ]);
        let out = converse_all(role, &Config::default(), &input);
        assert_eq!(
            out.events,
            vec![
                start(false, 1, 2),
                chunk(b"ab"),
                Ev::End,
                start(true, 9, 1),
                chunk(b"P"),
                Ev::End,
                msg(9, b"P"),
                start(true, 0, 2),
                chunk(b"cd"),
                Ev::End,
                msg(1, b"abcd"),
            ]
        );
        assert_eq!(summary(&out.sent), vec![(true, 10, b"P".to_vec())]);
    }
}

#[test]
fn valid_close_is_echoed_and_ends_reading() {
    for role in ROLES {
        for (code, reason) in [
            (1000u16, &b"bye"[..]),
            (1001, b""),
            (1011, b"r"),
            (1012, b""),
            (1014, b""),
            (3000, b""),
            (4999, "é".as_bytes()),
        ] {
            let payload = close_payload(code, reason);
            let input = cat(&[
                frame_to(role, true, 1, b"a"),
                frame_to(role, true, 8, &payload),
                frame_to(role, true, 1, b"after the close"),
            ]);
            let out = converse_all(role, &Config::default(), &input);
            let mut want = whole(1, b"a");
            want.extend([
                start(true, 8, payload.len() as u64),
                chunk(&payload),
                Ev::End,
            ]);
            assert_eq!(out.events, want, "code {code}");
            assert_eq!(out.status, RecvStatus::Closed);
            assert_eq!(summary(&out.sent), vec![(true, 8, payload.clone())]);
            assert!(out.engine.close_received() && !out.engine.want_read());
            assert_eq!(out.engine.status_code_received(), code);
            assert_eq!(out.engine.status_code_sent(), code);
            assert!(out.engine.receiver().failed().is_none());
        }
    }
}

#[test]
fn empty_close_is_echoed_empty_with_1005() {
    for role in ROLES {
        let out = converse_all(role, &Config::default(), &frame_to(role, true, 8, b""));
        assert_eq!(summary(&out.sent), vec![(true, 8, vec![])]);
        assert_eq!(out.engine.status_code_received(), 1005);
        assert_eq!(out.engine.status_code_sent(), 1005);
    }
}

#[test]
fn bad_close_frames() {
    for role in ROLES {
        let config = Config::default();
        expect_fail(role, &config, &frame_to(role, true, 8, &[3]), 1002);
        for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
            expect_fail(
                role,
                &config,
                &frame_to(role, true, 8, &close_payload(code, b"")),
                1002,
            );
        }
        let bad_reason = close_payload(1000, b"\xff\xfe");
        expect_fail(role, &config, &frame_to(role, true, 8, &bad_reason), 1007);
    }
}

#[test]
fn frame_level_violations_close_with_1002() {
    let config = Config::default();
    for role in ROLES {
        let cases: Vec<Vec<u8>> = vec![
            // reserved opcodes
            frame_to(role, true, 3, b"x"),
            frame_to(role, true, 7, b"x"),
            frame_to(role, true, 11, b"x"),
            frame_to(role, true, 15, b""),
            // RSV bits not allowed
            raw_frame(0x80 | 0x40 | 1, b"x", mask_for(role)),
            raw_frame(0x80 | 0x20 | 2, b"x", mask_for(role)),
            raw_frame(0x80 | 0x10 | 9, b"", mask_for(role)),
            // control frames: too long, fragmented
            frame_to(role, true, 9, &[b'a'; 126]),
            frame_to(role, false, 9, b"x"),
            frame_to(role, false, 8, b""),
            // continuation without a message, new message inside one
            frame_to(role, true, 0, b"x"),
            cat(&[
                frame_to(role, false, 1, b"a"),
                frame_to(role, true, 2, b"b"),
            ]),
            cat(&[
                frame_to(role, false, 2, b"a"),
                frame_to(role, true, 1, b"b"),
            ]),
            // non-minimal lengths, 64-bit length with the top bit set
            with_len_bytes(role, &[126, 0, 5], 5),
            with_len_bytes(role, &[127, 0, 0, 0, 0, 0, 0, 0xff, 0xff], 0),
            with_len_bytes(role, &[127, 0x80, 0, 0, 0, 0, 0, 0, 1], 0),
        ];
        for input in cases {
            let out = expect_fail(role, &config, &input, 1002);
            // No start event for a frame whose header broke a rule.
            assert!(
                !out.events.iter().any(|e| matches!(e, Ev::Start(_, _, op, _) if *op >= 3 && *op != 8 && *op != 9 && *op != 10)),
                "{:?}",
                out.events
            );
        }
        // Masking: a server needs masked frames, a client unmasked ones.
        let wrong_mask = match role {
            Role::Server => raw_frame(0x81, b"x", None),
            Role::Client => raw_frame(0x81, b"x", Some([1, 2, 3, 4])),
        };
        let out = expect_fail(role, &config, &wrong_mask, 1002);
        assert!(out.events.is_empty());
    }
}

/// A binary frame whose length field is given raw, followed by `body` bytes.
fn with_len_bytes(role: Role, len_field: &[u8], body: usize) -> Vec<u8> {
    let mut f = vec![0x82];
    let mask = mask_for(role);
    f.push(len_field[0] | if mask.is_some() { 0x80 } else { 0 });
    f.extend_from_slice(&len_field[1..]);
    if let Some(k) = mask {
        f.extend_from_slice(&k);
    }
    f.extend(std::iter::repeat(b'z').take(body));
    f
}

#[test]
fn allowed_rsv1_only_on_first_data_frame_and_skips_utf8() {
    let config = Config::default().allowed_rsv(Rsv::RSV1);
    for role in ROLES {
        let m = mask_for(role);
        // RSV1 on the first frame of a text message: the payload is the
        // extension's, not checked as UTF-8.
        let input = cat(&[
            raw_frame(0x40 | 0x01, b"\xff", m),
            raw_frame(0x80, b"\xfe", m),
        ]);
        let out = converse_all(role, &config, &input);
        assert_eq!(
            out.events.last(),
            Some(&Ev::Msg(4, 1, b"\xff\xfe".to_vec(), 0))
        );
        assert!(out.sent.is_empty());
        // RSV1 on a continuation or a control frame, RSV2 anyway: 1002.
        expect_fail(
            role,
            &config,
            &cat(&[raw_frame(0x01, b"a", m), raw_frame(0xc0, b"b", m)]),
            1002,
        );
        expect_fail(role, &config, &raw_frame(0xc9, b"", m), 1002);
        expect_fail(role, &config, &raw_frame(0xa2, b"", m), 1002);
    }
}

#[test]
fn invalid_utf8_fails_at_the_first_bad_byte() {
    let config = Config::default();
    for role in ROLES {
        // The chunk with the bad byte is not delivered (valid bytes that arrived
        // in earlier reads were).
        let input = frame_to(role, true, 1, b"ok\xc0\xafmore");
        let out = expect_fail_with(role, &config, &input, 1007, valid_prefix(b"ok\xc0"));
        assert_eq!(out.events, vec![start(true, 1, 8)]);
        // Fail fast: a bad first fragment fails before the message ends.
        let input = frame_to(role, false, 1, b"\xed\xa0\x80");
        let out = expect_fail_with(role, &config, &input, 1007, valid_prefix(b"\xed\xa0"));
        assert_eq!(out.events, vec![start(false, 1, 3)]);
        // A message ending inside a code point: the chunk comes, no end.
        let out = expect_fail(role, &config, &frame_to(role, true, 1, b"ab\xe2\x82"), 1007);
        assert_eq!(out.events, vec![start(true, 1, 4), chunk(b"ab\xe2\x82")]);
        // Binary is not checked.
        let out = converse_all(role, &config, &frame_to(role, true, 2, b"\xff"));
        assert!(out.sent.is_empty());
    }
}

/// Under other splits, bytes before the bad one (`upto`, the bad byte being the
/// last) that arrived in earlier reads may have been delivered as chunks.
fn valid_prefix(upto: &'static [u8]) -> impl Fn(&[Ev], &[Ev]) -> bool {
    move |split, whole| {
        split == whole
            || split[..1] == whole[..1]
                && matches!(&split[1..], [Ev::Chunk(c)] if !c.is_empty() && c.len() < upto.len() && upto.starts_with(c))
    }
}

#[test]
fn code_point_split_across_frames_is_valid() {
    for role in ROLES {
        let euro = "€".as_bytes();
        let input = cat(&[
            frame_to(role, false, 1, &euro[..1]),
            frame_to(role, false, 0, &euro[1..2]),
            frame_to(role, true, 0, &euro[2..]),
        ]);
        let out = converse_all(role, &Config::default(), &input);
        assert_eq!(out.events.last(), Some(&msg(1, euro)));
        assert!(out.sent.is_empty());
        // The same split with a bad continuation byte fails at that frame.
        let input = cat(&[
            frame_to(role, false, 1, &euro[..1]),
            frame_to(role, true, 0, b"A"),
        ]);
        let out = expect_fail(role, &Config::default(), &input, 1007);
        assert_eq!(out.events.last(), Some(&start(true, 0, 1)));
    }
}

#[test]
fn max_recv_size_buffered_counts_the_whole_message() {
    let config = Config::default().max_recv_size(10);
    for role in ROLES {
        // Exactly the limit is fine, one frame or several.
        let out = converse_all(role, &config, &frame_to(role, true, 2, &[7; 10]));
        assert_eq!(out.events.last(), Some(&msg(2, &[7; 10])));
        let input = cat(&[
            frame_to(role, false, 2, &[1; 6]),
            frame_to(role, true, 0, &[2; 4]),
        ]);
        assert!(converse_all(role, &config, &input).sent.is_empty());
        // One over: 1009 from the header, before any payload is delivered.
        let out = expect_fail(role, &config, &frame_to(role, true, 2, &[7; 11]), 1009);
        assert!(out.events.is_empty());
        let input = cat(&[
            frame_to(role, false, 2, &[1; 6]),
            frame_to(role, true, 0, &[2; 6]),
        ]);
        let out = expect_fail(role, &config, &input, 1009);
        assert_eq!(out.events.last(), Some(&Ev::End));
        // A declared length far beyond memory is refused without allocating.
        let huge = with_len_bytes(
            role,
            &[127, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            0,
        );
        expect_fail(role, &Config::default(), &huge, 1009);
    }
}

#[test]
fn the_default_max_recv_size_is_64_mib() {
    assert_eq!(Config::default().max_recv_size, 64 << 20);
    for role in ROLES {
        // A header declaring 64 MiB passes (no payload follows, nothing is sent);
        // one declaring a byte more is refused from the header with 1009.
        let at_limit = with_len_bytes(role, &[127, 0, 0, 0, 0, 0x04, 0, 0, 0], 0);
        let out = converse_all(role, &Config::default(), &at_limit);
        assert_eq!(out.status, RecvStatus::WouldBlock);
        assert!(out.sent.is_empty());
        let over = with_len_bytes(role, &[127, 0, 0, 0, 0, 0x04, 0, 0, 1], 0);
        let out = expect_fail(role, &Config::default(), &over, 1009);
        assert!(out.events.is_empty());
    }
}

#[test]
fn max_recv_size_without_buffering_is_per_frame() {
    let config = Config::default().max_recv_size(10).buffering(false);
    for role in ROLES {
        let input = cat(&[
            frame_to(role, false, 2, &[1; 6]),
            frame_to(role, true, 0, &[2; 6]),
        ]);
        let out = converse_all(role, &config, &input);
        assert_eq!(out.events.last(), Some(&msg(2, b"")));
        assert!(out.sent.is_empty());
        expect_fail(role, &config, &frame_to(role, true, 2, &[7; 11]), 1009);
    }
}

#[test]
fn control_frames_too_long_is_1002_then_limit_is_1009() {
    let config = Config::default().max_recv_size(10);
    for role in ROLES {
        expect_fail(role, &config, &frame_to(role, true, 9, &[1; 126]), 1002);
        expect_fail(role, &config, &frame_to(role, true, 9, &[1; 20]), 1009);
    }
}

#[test]
fn messages_before_a_violation_are_delivered_and_answered_first() {
    for role in ROLES {
        let input = cat(&[
            frame_to(role, true, 1, b"one"),
            frame_to(role, true, 9, b"p"),
            frame_to(role, true, 3, b"bad"),
            frame_to(role, true, 1, b"never"),
        ]);
        let out = expect_fail(role, &Config::default(), &input, 1002);
        let mut want = whole(1, b"one");
        want.extend(whole(9, b"p"));
        assert_eq!(out.events, want);
        assert_eq!(summary(&out.sent)[0], (true, 10, b"p".to_vec()));
        assert_eq!(out.sent.len(), 2);
    }
}

#[test]
fn pause_keeps_the_rest_for_resume() {
    use net_websocket_ev::proto::{Flow, Handler, OpCode, Receiver};
    struct PauseOnMsg(Vec<Vec<u8>>);
    impl Handler for PauseOnMsg {
        fn on_message(&mut self, _: Rsv, _: OpCode, data: &[u8], _: u16) -> Flow {
            self.0.push(data.to_vec());
            Flow::Pause
        }
    }
    for role in ROLES {
        let input = cat(&[
            frame_to(role, true, 1, b"first"),
            frame_to(role, true, 1, b"second"),
            frame_to(role, true, 8, &close_payload(1000, b"")),
        ]);
        let mut r = Receiver::new(role, &Config::default());
        let mut h = PauseOnMsg(Vec::new());
        let mut replies = Replies::default();
        let mut reader = Pieces::new(&input, Split::Whole);
        reader.eof = true;
        assert_eq!(
            r.recv(&mut reader, &mut h, &mut replies).unwrap(),
            RecvStatus::Paused
        );
        assert!(r.has_pending_input());
        assert_eq!(h.0, vec![b"first".to_vec()]);
        // A paused receiver reads nothing new: recv resumes the kept bytes first.
        assert_eq!(
            r.recv(&mut reader, &mut h, &mut replies).unwrap(),
            RecvStatus::Paused
        );
        assert_eq!(h.0.len(), 2);
        assert!(replies.0.is_empty());
        assert_eq!(r.resume(&mut h, &mut replies), RecvStatus::Closed);
        assert_eq!(replies.0, vec![Rep::Close(Some(1000), vec![])]);
        assert!(!r.has_pending_input());
    }
}

#[test]
fn eof_errors_and_shutdown_read() {
    use net_websocket_ev::proto::Receiver;
    use std::io;
    for role in ROLES {
        let mut r = Receiver::new(role, &Config::default());
        let mut rec = Recorder::default();
        let mut replies = Replies::default();
        let half = frame_to(role, true, 1, b"half a frame");
        let mut reader = Pieces::new(&half[..5], Split::Whole);
        reader.eof = true;
        assert_eq!(
            r.recv(&mut reader, &mut rec, &mut replies).unwrap(),
            RecvStatus::Eof
        );
        assert!(replies.0.is_empty());

        struct Failing(usize);
        impl io::Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                self.0 += 1;
                if self.0 == 1 {
                    return Err(io::ErrorKind::Interrupted.into());
                }
                Err(io::ErrorKind::ConnectionReset.into())
            }
        }
        let err = r.recv(&mut Failing(0), &mut rec, &mut replies).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset);

        r.feed(&frame_to(role, false, 1, b"part"), &mut rec, &mut replies);
        r.shutdown_read();
        assert!(!r.want_read() && !r.has_pending_input());
        let mut more = Pieces::new(&frame_to(role, true, 0, b"x"), Split::Whole);
        assert_eq!(
            r.recv(&mut more, &mut rec, &mut replies).unwrap(),
            RecvStatus::Closed
        );
        assert_eq!(more.pieces.len(), 1, "nothing read after shutdown_read");
        assert_eq!(r.feed(b"xx", &mut rec, &mut replies), RecvStatus::Closed);
        assert_eq!(r.status_code_received(), 1006);
    }
}

#[test]
fn limits_can_change_between_messages() {
    use net_websocket_ev::proto::Receiver;
    let role = Role::Server;
    let mut r = Receiver::new(role, &Config::default());
    let mut rec = Recorder::default();
    let mut replies = Replies::default();
    r.feed(&frame_to(role, true, 2, &[0; 20]), &mut rec, &mut replies);
    let mut c = r.config().clone();
    c.max_recv_size = 10;
    r.set_config(&c);
    r.feed(&frame_to(role, true, 2, &[0; 20]), &mut rec, &mut replies);
    assert_eq!(replies.0, vec![Rep::Fail(1009)]);
}

/// A data message of `frames` frames of one byte each (`op` first, then
/// continuations), with a ping after its first frame.
fn fragments(role: Role, op: u8, frames: usize) -> Vec<u8> {
    let mut input = Vec::new();
    for i in 0..frames {
        input.extend(frame_to(
            role,
            i + 1 == frames,
            if i == 0 { op } else { 0 },
            b"a",
        ));
        if i == 0 {
            input.extend(frame_to(role, true, 9, b"p"));
        }
    }
    input
}

#[test]
fn max_fragments_counts_the_frames_of_each_message() {
    for buffering in [true, false] {
        let config = Config::default()
            .max_fragments(Some(3))
            .buffering(buffering);
        for role in ROLES {
            // Three frames (a ping between them not counted), twice: each message
            // counts from one.
            let input = cat(&[fragments(role, 1, 3), fragments(role, 2, 3)]);
            let out = converse_all(role, &config, &input);
            let data: &[u8] = if buffering { b"aaa" } else { b"" };
            let msgs: Vec<&Ev> = out
                .events
                .iter()
                .filter(|e| matches!(e, Ev::Msg(_, 1 | 2, ..)))
                .collect();
            assert_eq!(msgs, [&msg(1, data), &msg(2, data)]);
            assert_eq!(summary(&out.sent), vec![(true, 10, b"p".to_vec()); 2]);
            assert!(out.engine.want_read());
            // A fourth frame is refused from its header with 1009: nothing of it
            // reaches the handler.
            let out = expect_fail(role, &config, &fragments(role, 2, 4), 1009);
            assert_eq!(out.events.iter().filter(|e| **e == Ev::End).count(), 4);
            assert_eq!(out.events.last(), Some(&Ev::End), "{:?}", out.events);
            assert_eq!(
                out.engine.receiver().failed(),
                Some(&ProtocolError::TooManyFragments { limit: 3 })
            );
        }
    }
}

#[test]
fn max_fragments_zero_counts_as_one_and_none_is_unlimited() {
    assert_eq!(Config::default().max_fragments, None);
    let one = Config::default().max_fragments(Some(0));
    for role in ROLES {
        let out = converse_all(role, &one, &frame_to(role, true, 2, b"whole"));
        assert_eq!(out.events, whole(2, b"whole"));
        let out = expect_fail(role, &one, &fragments(role, 2, 2), 1009);
        assert_eq!(
            out.engine.receiver().failed(),
            Some(&ProtocolError::TooManyFragments { limit: 1 })
        );
        // The default takes a thousand fragments.
        let out = converse(
            role,
            &Config::default(),
            &fragments(role, 1, 1000),
            Split::Whole,
        );
        assert_eq!(out.events.last(), Some(&msg(1, &[b'a'; 1000])));
        assert!(out.engine.want_read());
    }
}

#[test]
fn max_fragments_takes_a_message_of_exactly_the_limit_and_no_more() {
    // 65,536 frames (of one byte, to keep the test small); Autobahn 9.3.1 and
    // 9.4.1 send 65,537 (4 MiB in 64-byte fragments, then an empty last one).
    let config = Config::default().max_fragments(Some(1 << 16));
    let role = Role::Server;
    let out = converse(role, &config, &fragments(role, 2, 1 << 16), Split::Whole);
    assert_eq!(out.events.last(), Some(&msg(2, &[b'a'; 1 << 16])));
    let out = converse(
        role,
        &config,
        &fragments(role, 2, (1 << 16) + 1),
        Split::Whole,
    );
    assert_eq!(out.close_sent(), Some(1009));
}

#[test]
fn limits_can_change_between_messages_max_fragments_too() {
    use net_websocket_ev::proto::Receiver;
    let role = Role::Client;
    let mut r = Receiver::new(role, &Config::default());
    let mut rec = Recorder::default();
    let mut replies = Replies::default();
    r.feed(&fragments(role, 2, 5), &mut rec, &mut replies);
    let mut c = r.config().clone();
    c.max_fragments = Some(4);
    r.set_config(&c);
    r.feed(&fragments(role, 2, 4), &mut rec, &mut replies);
    assert_eq!(replies.0, vec![Rep::Pong(b"p".to_vec()); 2]);
    r.feed(&fragments(role, 2, 5), &mut rec, &mut replies);
    assert_eq!(replies.0.last(), Some(&Rep::Fail(1009)));
}

/// `message_in_progress` after each piece of `input` fed to a fresh receiver,
/// with `take_message_started`.
fn progress(role: Role, input: &[u8], split: Split) -> Vec<(bool, bool)> {
    use net_websocket_ev::proto::Receiver;
    let mut r = Receiver::new(role, &Config::default());
    let mut rec = Recorder::default();
    let mut replies = Replies::default();
    pieces(input, split)
        .into_iter()
        .map(|piece| {
            r.feed(piece, &mut rec, &mut replies);
            (r.message_in_progress(), r.take_message_started())
        })
        .collect()
}

#[test]
fn a_message_is_in_progress_from_its_first_byte_to_its_last() {
    for role in ROLES {
        let head = frame_to(role, false, 1, b"ab");
        let ping = frame_to(role, true, 9, b"p");
        let tail = frame_to(role, true, 0, b"cd");
        let input = cat(&[head.clone(), ping.clone(), tail.clone()]);
        let seen = progress(role, &input, Split::Bytes);
        let last = seen.len() - 1;
        for (i, &(in_progress, started)) in seen.iter().enumerate() {
            // In progress from the first byte to the one before the last; begun
            // at the first byte only (the ping and the continuation are inside).
            assert_eq!(in_progress, i < last, "byte {i}");
            assert_eq!(started, i == 0, "byte {i}");
        }
        // A control frame between messages counts as a message of its own.
        let seen = progress(role, &ping, Split::Bytes);
        assert_eq!(seen[0], (true, true));
        assert!(seen[1..seen.len() - 1].iter().all(|&s| s == (true, false)));
        assert_eq!(seen.last(), Some(&(false, false)));
        // One read that ends a message and begins the next says so.
        let next = frame_to(role, true, 2, b"xyz");
        let input = cat(&[head.clone(), tail.clone(), next[..3].to_vec()]);
        let cut = head.len() + 1;
        let seen = progress(role, &input, Split::Whole);
        assert_eq!(seen, [(true, true)]);
        let seen = {
            use net_websocket_ev::proto::Receiver;
            let mut r = Receiver::new(role, &Config::default());
            let (mut rec, mut replies) = (Recorder::default(), Replies::default());
            r.feed(&input[..cut], &mut rec, &mut replies);
            let first = (r.message_in_progress(), r.take_message_started());
            r.feed(&input[cut..], &mut rec, &mut replies);
            let second = (r.message_in_progress(), r.take_message_started());
            r.feed(&next[3..], &mut rec, &mut replies);
            let third = (r.message_in_progress(), r.take_message_started());
            [first, second, third]
        };
        assert_eq!(seen, [(true, true), (true, true), (false, false)]);
    }
}

#[test]
fn nothing_is_in_progress_once_reading_is_over() {
    for role in ROLES {
        // A violation in the middle of a fragmented message.
        let input = cat(&[
            frame_to(role, false, 1, b"ab"),
            frame_to(role, true, 2, b"x"),
        ]);
        let out = expect_fail(role, &Config::default(), &input, 1002);
        assert!(!out.engine.message_in_progress());
        // A close between fragments ends it too.
        let input = cat(&[
            frame_to(role, false, 1, b"ab"),
            frame_to(role, true, 8, &close_payload(1000, b"")),
        ]);
        let out = converse_all(role, &Config::default(), &input);
        assert!(out.engine.close_received());
        assert!(!out.engine.message_in_progress());
    }
}
