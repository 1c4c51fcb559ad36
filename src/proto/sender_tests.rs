//! Unit tests of the sending half (private state included).
use super::*;
use crate::proto::{Flow, Handler, Receiver, Reply, ReplySink, Rsv};

/// Takes at most `chunk` bytes a write (only the first of vectored
/// buffers, as `Write`'s default), and `budget` bytes in all, then would
/// block.
struct Pipe {
    out: Vec<u8>,
    chunk: usize,
    budget: usize,
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(self.chunk).min(self.budget);
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.budget -= n;
        self.out.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[derive(Default)]
struct Got(Vec<(OpCode, Vec<u8>)>, Vec<Option<u16>>);

impl Handler for Got {
    fn on_message(&mut self, _: Rsv, op: OpCode, data: &[u8], _: u16) -> Flow {
        self.0.push((op, data.to_vec()));
        Flow::Continue
    }
}

impl ReplySink for Got {
    fn reply(&mut self, reply: Reply<'_>) {
        if let Reply::Close { code, .. } = reply {
            self.1.push(code);
        }
    }
}

/// What the peer of `role` makes of `wire`.
fn decode(role: Role, wire: &[u8]) -> Got {
    let peer = match role {
        Role::Server => Role::Client,
        Role::Client => Role::Server,
    };
    let mut r = Receiver::new(peer, &Config::default());
    let mut got = Got::default();
    let mut sink = Got::default();
    r.feed(wire, &mut got, &mut sink);
    got.1 = sink.1;
    got
}

fn big(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn a_large_payload_written_in_small_pieces_arrives_whole() {
    for role in [Role::Server, Role::Client] {
        let data = big(100_000);
        let mut s = Sender::new(role, &Config::default());
        let mut pipe = Pipe {
            out: Vec::new(),
            chunk: 999,
            budget: usize::MAX,
        };
        // Alone in the queue: written from where it was queued; behind
        // another message: copied.
        s.queue_msg(OpCode::Binary, &data).unwrap();
        assert_eq!(s.send(&mut pipe).unwrap(), SendStatus::Idle);
        s.queue_msg(OpCode::Binary, b"small").unwrap();
        s.queue_msg(OpCode::Binary, &data).unwrap();
        assert_eq!(s.send(&mut pipe).unwrap(), SendStatus::Idle);
        assert_eq!(s.queued_count(), 0);
        let got = decode(role, &pipe.out);
        assert_eq!(got.0.len(), 3);
        assert!(got.0[0].1 == data, "{role:?}");
        assert_eq!(got.0[1].1, b"small");
        assert!(got.0[2].1 == data, "{role:?}");
    }
}

#[test]
fn a_pong_waits_for_a_large_payload_already_started() {
    let data = big(50_000);
    let mut s = Sender::new(Role::Server, &Config::default());
    s.queue_msg(OpCode::Binary, &data).unwrap();
    let mut pipe = Pipe {
        out: Vec::new(),
        chunk: usize::MAX,
        budget: 20_000,
    };
    assert_eq!(s.send(&mut pipe).unwrap(), SendStatus::WouldBlock);
    assert_eq!(s.queued_bytes(), 50_004 - 20_000);
    assert!(s.encoder_ref().has_direct(), "the payload was not copied");
    s.queue_pong(b"p");
    pipe.budget = usize::MAX;
    assert_eq!(s.send(&mut pipe).unwrap(), SendStatus::Idle);
    let got = decode(Role::Server, &pipe.out);
    assert_eq!(got.0.len(), 2);
    assert!(got.0[0].1 == data);
    assert_eq!(got.0[1], (OpCode::Pong, b"p".to_vec()));
}

#[test]
fn a_close_reply_drops_a_large_payload_not_started() {
    let mut s = Sender::new(Role::Server, &Config::default());
    s.queue_msg(OpCode::Binary, &big(40_000)).unwrap();
    s.queue_msg(OpCode::Ping, b"first").unwrap();
    let mut pipe = Pipe {
        out: Vec::new(),
        chunk: usize::MAX,
        budget: 3,
    };
    assert_eq!(s.send(&mut pipe).unwrap(), SendStatus::WouldBlock);
    assert!(s.encoder_ref().has_direct());
    s.reply_close(Some(1000), b"");
    assert!(s.queued_bytes() < 100);
    pipe.budget = usize::MAX;
    assert_eq!(s.send(&mut pipe).unwrap(), SendStatus::Idle);
    let got = decode(Role::Server, &pipe.out);
    assert_eq!(got.0, [(OpCode::Ping, b"first".to_vec())]);
    assert_eq!(got.1, [Some(1000)]);
    assert!(s.close_sent());
}

#[test]
fn a_fragment_pushed_behind_a_large_payload_follows_it() {
    let data = big(30_000);
    let mut s = Sender::new(Role::Client, &Config::default());
    s.queue_msg(OpCode::Binary, &data).unwrap();
    s.queue_fragmented(OpCode::Text).unwrap();
    let mut pipe = Pipe {
        out: Vec::new(),
        chunk: usize::MAX,
        budget: 10,
    };
    assert_eq!(s.send(&mut pipe).unwrap(), SendStatus::WouldBlock);
    assert!(s.encoder_ref().has_direct());
    s.push_fragment(b"frag", true).unwrap();
    pipe.budget = usize::MAX;
    assert_eq!(s.send(&mut pipe).unwrap(), SendStatus::Idle);
    let got = decode(Role::Client, &pipe.out);
    assert_eq!(got.0.len(), 2);
    assert!(got.0[0].1 == data);
    assert_eq!(got.0[1], (OpCode::Text, b"frag".to_vec()));
}

#[test]
fn a_close_reply_cuts_a_framed_batch_at_the_first_frame_not_started() {
    let mut s = Sender::new(Role::Server, &Config::default());
    for i in 0..10u8 {
        s.queue_msg(OpCode::Binary, &[i; 1000]).unwrap();
    }
    assert_eq!(s.queued_bytes(), 10_000);
    let mut pipe = Pipe {
        out: Vec::new(),
        chunk: usize::MAX,
        budget: 3500, // inside the 4th frame (1004 bytes each)
    };
    assert_eq!(s.send(&mut pipe).unwrap(), SendStatus::WouldBlock);
    assert!(s.encoder_ref().has_direct(), "the batch was not copied");
    assert_eq!(s.queued_bytes(), 10 * 1004 - 3500);
    s.queue_pong(b"p");
    s.reply_close(Some(1001), b"bye");
    pipe.budget = usize::MAX;
    assert_eq!(s.send(&mut pipe).unwrap(), SendStatus::Idle);
    let got = decode(Role::Server, &pipe.out);
    let msgs: Vec<_> = got.0.iter().map(|(op, d)| (*op, d.len(), d[0])).collect();
    assert_eq!(
        msgs,
        [
            (OpCode::Binary, 1000, 0),
            (OpCode::Binary, 1000, 1),
            (OpCode::Binary, 1000, 2),
            (OpCode::Binary, 1000, 3),
            (OpCode::Pong, 1, b'p'),
        ]
    );
    assert_eq!(got.1, [Some(1001)]);
    assert_eq!((s.queued_count(), s.queued_bytes()), (0, 0));
}

#[test]
fn an_idle_sender_holds_no_encoder() {
    let mut s = Sender::new(Role::Server, &Config::default());
    assert!(s.enc.is_none(), "a new sender holds no encoder");
    assert_eq!(s.send(&mut Vec::new()).unwrap(), SendStatus::Idle);
    s.queue_msg(OpCode::Text, b"hello").unwrap();
    assert!(s.enc.is_some() && s.want_write());
    let mut pipe = Pipe {
        out: Vec::new(),
        chunk: 3,
        budget: 4,
    };
    assert_eq!(s.send(&mut pipe).unwrap(), SendStatus::WouldBlock);
    assert!(s.enc.is_some(), "a partly written frame is kept");
    pipe.budget = usize::MAX;
    assert_eq!(s.send(&mut pipe).unwrap(), SendStatus::Idle);
    assert_eq!(pipe.out, b"\x81\x05hello");
    assert!(s.enc.is_none(), "idle once everything is written");
    assert_eq!(s.queued_count(), 0);
    // A refused message leaves nothing behind either.
    assert!(s.queue_msg(OpCode::Close, b"").is_err());
    assert!(s.enc.is_none());
    // A close is state that stays.
    s.queue_close(Some(1000), b"").unwrap();
    assert_eq!(s.send(&mut Vec::new()).unwrap(), SendStatus::Idle);
    assert!(s.close_sent() && s.enc.is_some());
    assert_eq!(s.status_code_sent(), 1000);
}

/// A shared message is written from where it is, by a server: the same frame as a
/// copied one, resumed exactly after partial writes, between other messages, and
/// let go once written; the queue counts its bytes meanwhile.
#[test]
fn shared_payloads_are_written_as_queued_messages_would_be() {
    let data = big(100_000);
    let msg = SharedMessage::new(OpCode::Binary, data.clone()).unwrap();
    for chunk in [1, 999, usize::MAX] {
        let mut s = Sender::new(Role::Server, &Config::default());
        s.queue_msg(OpCode::Text, b"before").unwrap();
        s.queue_shared(&msg).unwrap();
        s.queue_shared(&msg).unwrap();
        s.queue_msg(OpCode::Text, b"after").unwrap();
        assert_eq!(s.queued_bytes(), 6 + 2 * 100_000 + 5);
        assert_eq!(s.queued_count(), 4);
        let mut pipe = Pipe {
            out: Vec::new(),
            chunk,
            budget: usize::MAX,
        };
        assert_eq!(s.send(&mut pipe).unwrap(), SendStatus::Idle);
        assert_eq!(s.queued_count(), 0);
        let got = decode(Role::Server, &pipe.out);
        let want = [
            (OpCode::Text, b"before".to_vec()),
            (OpCode::Binary, data.clone()),
            (OpCode::Binary, data.clone()),
            (OpCode::Text, b"after".to_vec()),
        ];
        assert!(got.0 == want, "chunk {chunk}");
        assert_eq!(std::sync::Arc::strong_count(&msg.payload), 1, "let go");
    }
}

/// A client masks each frame, compression makes each connection's bytes its
/// own, and small payloads are cheaper to copy: those are copied, and arrive.
#[test]
fn shared_payloads_are_copied_where_they_cannot_be_shared() {
    let large = SharedMessage::new(OpCode::Text, "é".repeat(20_000).into_bytes()).unwrap();
    let small = SharedMessage::new(OpCode::Binary, vec![3; 100]).unwrap();
    for role in [Role::Server, Role::Client] {
        let mut s = Sender::new(role, &Config::default());
        s.queue_shared(&small).unwrap();
        s.queue_shared(&large).unwrap();
        let copies = std::sync::Arc::strong_count(&large.payload) - 1;
        assert_eq!(copies, usize::from(role == Role::Server), "{role:?}");
        let mut wire = Vec::new();
        s.send(&mut wire).unwrap();
        let got = decode(role, &wire);
        assert_eq!(got.0.len(), 2);
        assert_eq!(got.0[0], (OpCode::Binary, vec![3; 100]));
        assert!(
            got.0[1] == (OpCode::Text, large.payload().to_vec()),
            "{role:?}"
        );
    }
}

/// The high-water mark counts shared bytes; the peer's close drops shared
/// messages not started, as any data.
#[test]
fn shared_payloads_count_against_the_high_water_mark_and_are_dropped_by_a_close() {
    let msg = SharedMessage::new(OpCode::Binary, vec![1; 50_000]).unwrap();
    let mut s = Sender::new(Role::Server, &Config::default().max_queued_bytes(120_000));
    s.queue_shared(&msg).unwrap();
    s.queue_shared(&msg).unwrap();
    assert!(matches!(
        s.queue_shared(&msg),
        Err(Error::QueueFull {
            queued: 150_000,
            limit: 120_000
        })
    ));
    s.reply_close(Some(1000), b"");
    assert_eq!(std::sync::Arc::strong_count(&msg.payload), 1);
    let mut wire = Vec::new();
    s.send(&mut wire).unwrap();
    assert_eq!(wire, [0x88, 2, 0x03, 0xe8]);
}
