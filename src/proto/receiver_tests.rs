//! Unit tests of the receiving half (private state included).
use super::*;
use crate::proto::frame::Header;
use crate::proto::{apply_mask, Flow, OpCode, Reply, Rsv, SharedMessage, SHARE_MIN};

/// Hands out its bytes in reads of at most `chunk`, then would block;
/// counts the reads.
struct Chunks<'a> {
    data: &'a [u8],
    chunk: usize,
    reads: usize,
}

impl<'a> Chunks<'a> {
    fn new(data: &'a [u8], chunk: usize) -> Self {
        Chunks {
            data,
            chunk,
            reads: 0,
        }
    }
}

impl Read for Chunks<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reads += 1;
        if self.data.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.data.len().min(buf.len()).min(self.chunk);
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[derive(Default)]
struct Count(usize);

impl Handler for Count {
    fn on_message(&mut self, _: Rsv, _: OpCode, _: &[u8], _: u16) -> Flow {
        self.0 += 1;
        Flow::Continue
    }
}

struct NoReply;

impl ReplySink for NoReply {
    fn reply(&mut self, _: Reply<'_>) {}
}

fn frames(count: usize, len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..count {
        Header {
            fin: true,
            rsv: Rsv::empty(),
            opcode: 2,
            mask: Some([1, 2, 3, 4]),
            len: len as u64,
        }
        .encode(&mut out);
        out.extend(std::iter::repeat(0).take(len));
    }
    out
}

#[test]
fn a_short_read_ends_recv_available_without_a_read_that_would_block() {
    let data = frames(16, 32);
    let mut r = Receiver::new(Role::Server, &Config::default());
    let mut h = Count::default();
    let mut src = Chunks::new(&data, usize::MAX);
    let status = r.recv_available(&mut src, &mut h, &mut NoReply).unwrap();
    assert_eq!((status, h.0, src.reads), (RecvStatus::WouldBlock, 16, 1));
    // `recv` reads on until the transport says it would block.
    let mut src = Chunks::new(&data, usize::MAX);
    let status = r.recv(&mut src, &mut h, &mut NoReply).unwrap();
    assert_eq!((status, h.0, src.reads), (RecvStatus::WouldBlock, 32, 2));
}

#[test]
fn a_full_read_goes_on_reading() {
    // 100 KiB arrive: the first read fills the read buffer, the rest of the
    // payload is read straight into the message buffer.
    let data = frames(1, 100 << 10);
    let mut r = Receiver::new(Role::Server, &Config::default());
    let mut h = Count::default();
    let mut src = Chunks::new(&data, usize::MAX);
    let status = r.recv_available(&mut src, &mut h, &mut NoReply).unwrap();
    assert_eq!((status, h.0), (RecvStatus::WouldBlock, 1));
    assert!(src.reads >= 2);
    assert!(!r.has_pending_input());
}

/// Keeps every message and the chunk sizes.
#[derive(Default)]
struct Keep {
    msgs: Vec<Vec<u8>>,
    chunks: usize,
}

impl Handler for Keep {
    fn on_frame_chunk(&mut self, _: &[u8]) -> Flow {
        self.chunks += 1;
        Flow::Continue
    }
    fn on_message(&mut self, _: Rsv, _: OpCode, data: &[u8], _: u16) -> Flow {
        self.msgs.push(data.to_vec());
        Flow::Continue
    }
}

fn text_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [9, 8, 7, 6];
    let mut out = Vec::new();
    Header {
        fin,
        rsv: Rsv::empty(),
        opcode,
        mask: Some(mask),
        len: payload.len() as u64,
    }
    .encode(&mut out);
    let body = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[body..], mask, 0);
    out
}

#[test]
fn large_fragmented_text_read_straight_into_the_message_is_intact() {
    let text: Vec<u8> = "ab€𝄞".repeat(30_000).into_bytes();
    let (a, b) = text.split_at(50_001); // inside a code point
    let mut wire = text_frame(false, 1, a);
    wire.extend(text_frame(true, 0, b));
    wire.extend(text_frame(true, 2, b"tail"));
    for chunk in [1000, 7, 65_536, usize::MAX] {
        let mut r = Receiver::new(Role::Server, &Config::default());
        let mut h = Keep::default();
        let mut src = Chunks::new(&wire, chunk);
        while !src.data.is_empty() {
            r.recv(&mut src, &mut h, &mut NoReply).unwrap();
        }
        assert_eq!(h.msgs.len(), 2, "chunk {chunk}");
        assert!(h.msgs[0] == text, "chunk {chunk}");
        assert_eq!(h.msgs[1], b"tail");
    }
}

#[test]
fn bad_utf8_read_straight_into_the_message_fails() {
    let mut text = vec![b'a'; 200_000];
    text[150_000] = 0xff;
    let wire = text_frame(true, 1, &text);
    let mut r = Receiver::new(Role::Server, &Config::default());
    let mut h = Keep::default();
    let mut src = Chunks::new(&wire, usize::MAX);
    let status = r.recv(&mut src, &mut h, &mut NoReply).unwrap();
    assert_eq!(status, RecvStatus::Closed);
    assert_eq!(r.failed(), Some(&ProtocolError::InvalidUtf8));
    assert!(h.msgs.is_empty());
}

/// A masked client frame (FIN set) with `payload`, for the idle-state tests.
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let key = [1u8, 2, 3, 4];
    let mut f = vec![0x80 | opcode, 0x80 | payload.len() as u8];
    f.extend_from_slice(&key);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    f
}

#[test]
fn an_idle_receiver_holds_no_decoder() {
    let mut r = Receiver::new(Role::Server, &Config::default());
    assert!(r.decoder.is_none(), "a new receiver holds no decoder");
    let mut h = Count::default();
    // Whole message: the decoder goes back to the pool.
    let frame = client_frame(0x1, b"hello");
    assert_eq!(r.feed(&frame, &mut h, &mut NoReply), RecvStatus::WouldBlock);
    assert_eq!(h.0, 1);
    assert!(r.decoder.is_none(), "idle after a whole message");
    // Half a frame: the decoder is kept with its state.
    let frame = client_frame(0x2, b"split message");
    assert_eq!(
        r.feed(&frame[..5], &mut h, &mut NoReply),
        RecvStatus::WouldBlock
    );
    assert!(r.decoder.is_some(), "mid-frame state is kept");
    assert_eq!(
        r.feed(&frame[5..], &mut h, &mut NoReply),
        RecvStatus::WouldBlock
    );
    assert_eq!(h.0, 2);
    assert!(
        r.decoder.is_none(),
        "idle again once the message is delivered"
    );
    // A close ends reading: that state stays.
    let close = client_frame(0x8, &1000u16.to_be_bytes());
    assert_eq!(r.feed(&close, &mut h, &mut NoReply), RecvStatus::Closed);
    assert!(r.close_received() && !r.want_read());
    assert_eq!(r.status_code_received(), 1000);
}

#[test]
fn an_idle_receiver_holds_no_decoder_after_split_or_fragmented_messages() {
    // Payloads that cannot be handed out in place are gathered in buffers:
    // those go back to the pool with the message, fed whole or byte by byte.
    let mut fragmented = client_frame(0x2, b"first piece");
    fragmented[0] &= 0x7f; // no FIN
    fragmented.extend(client_frame(0x9, b"ping between"));
    fragmented.extend(client_frame(0x0, b"last piece"));
    let inputs = [
        client_frame(0x1, b"split text"),
        client_frame(0x9, b"split ping"),
        fragmented,
    ];
    for input in &inputs {
        for step in [1, 7, input.len()] {
            let mut r = Receiver::new(Role::Server, &Config::default());
            let mut h = Count::default();
            for piece in input.chunks(step) {
                assert_eq!(r.feed(piece, &mut h, &mut NoReply), RecvStatus::WouldBlock);
            }
            assert!(h.0 >= 1);
            assert!(r.decoder.is_none(), "a decoder kept, step {step}");
        }
    }
}

/// Records every event with its arguments, and every reply.
#[derive(Default, Debug, PartialEq)]
struct Log(Vec<String>);

impl Handler for Log {
    fn on_frame_start(&mut self, fin: bool, rsv: Rsv, op: OpCode, len: u64) -> Flow {
        self.0
            .push(format!("start {fin} {} {op:?} {len}", rsv.bits()));
        Flow::Continue
    }
    fn on_frame_chunk(&mut self, data: &[u8]) -> Flow {
        self.0.push(format!("chunk {data:?}"));
        Flow::Continue
    }
    fn on_frame_end(&mut self) -> Flow {
        self.0.push("end".into());
        Flow::Continue
    }
    fn on_message(&mut self, rsv: Rsv, op: OpCode, data: &[u8], status: u16) -> Flow {
        self.0
            .push(format!("msg {} {op:?} {data:?} {status}", rsv.bits()));
        Flow::Continue
    }
}

impl ReplySink for Log {
    fn reply(&mut self, reply: Reply<'_>) {
        self.0.push(format!("reply {reply:?}"));
    }
}

/// What `r` makes of `input` fed one byte at a time: its events, then its replies.
fn events(r: &mut Receiver, input: &[u8]) -> Log {
    let (mut h, mut s) = (Log::default(), Log::default());
    for byte in input.chunks(1) {
        r.feed(byte, &mut h, &mut s);
    }
    h.0.extend(s.0);
    h
}

#[test]
fn a_decoder_from_the_pool_behaves_as_a_new_one() {
    // A receiver that leaves a used decoder in the pool: RSV1 text with bytes that
    // are not UTF-8 (its extension owns them), fragmented, unbuffered.
    let used = Config {
        allowed_rsv: Rsv::RSV1,
        buffering: false,
        ..Config::default()
    };
    let mut first = Receiver::new(Role::Server, &used);
    let mut seed = client_frame(0x1, b"\xff\xfe");
    seed[0] = 0x40 | 0x1; // RSV1, not FIN
    seed.extend(client_frame(0x80, b"\xfd")); // the final continuation
    let log = events(&mut first, &seed);
    assert!(log.0.iter().all(|e| !e.starts_with("reply")), "{log:?}");
    assert!(
        first.decoder.is_none(),
        "idle: its decoder went to the pool"
    );
    assert!(SPARE_DECODERS.with(|p| !p.borrow().is_empty()));

    // The same input through a receiver that takes that spare, and through one
    // built with the pool empty, gives the same events and replies.
    let input = [
        client_frame(0x82, b"bin"),
        client_frame(0x81, b"\xff"),  // not UTF-8, no extension: 1007
        client_frame(0x80, b"stray"), // never reached
    ]
    .concat();
    let mut pooled = Receiver::new(Role::Server, &Config::default());
    let from_pool = events(&mut pooled, &input);
    SPARE_DECODERS.with(|p| p.borrow_mut().clear());
    let mut fresh = Receiver::new(Role::Server, &Config::default());
    let from_new = events(&mut fresh, &input);
    assert_eq!(from_pool, from_new);
    assert!(
        from_new.0.iter().any(|e| e.contains("InvalidUtf8")),
        "{from_new:?}"
    );
    // A continuation with no message begun is refused by both.
    let mut pooled = Receiver::new(Role::Server, &used);
    let stray = client_frame(0x80, b"x");
    let from_pool = events(&mut pooled, &stray);
    SPARE_DECODERS.with(|p| p.borrow_mut().clear());
    assert_eq!(
        from_pool,
        events(&mut Receiver::new(Role::Server, &used), &stray)
    );
    assert!(from_pool
        .0
        .iter()
        .any(|e| e.contains("UnexpectedContinuation")));
}

/// Large messages arrive through `on_shared_message`, small ones through
/// `on_message`; what a handler keeps of a shared one stays intact.
#[derive(Default)]
struct Shared {
    kept: Vec<SharedMessage>,
    small: Vec<Vec<u8>>,
}

impl Handler for Shared {
    fn on_message(&mut self, _: Rsv, _: OpCode, data: &[u8], _: u16) -> Flow {
        self.small.push(data.to_vec());
        Flow::Continue
    }
    fn on_shared_message(&mut self, _: Rsv, msg: &SharedMessage, _: u16) -> Flow {
        self.kept.push(msg.clone());
        Flow::Continue
    }
}

/// The message buffer is read over, not zeroed: a buffer a larger message left in
/// the pool must give a later, smaller message exactly its own bytes, whichever
/// way they come (straight into the message, through the read buffer, one byte at
/// a time, in fragments).
#[test]
fn messages_read_over_a_reused_buffer_are_exactly_their_own_bytes() {
    let sizes = [
        300_000usize,
        20_000,
        150_000,
        SHARE_MIN,
        SHARE_MIN - 1,
        70_000,
    ];
    let mut wire = Vec::new();
    for (i, &len) in sizes.iter().enumerate() {
        let payload = vec![i as u8 + 1; len];
        if i % 2 == 0 {
            wire.extend(text_frame(true, 2, &payload));
        } else {
            let (a, b) = payload.split_at(len / 3);
            wire.extend(text_frame(false, 2, a));
            wire.extend(text_frame(true, 0, b));
        }
    }
    for chunk in [1, 999, 65_536, usize::MAX] {
        let mut r = Receiver::new(Role::Server, &Config::default());
        let mut h = Shared::default();
        let mut src = Chunks::new(&wire, chunk);
        while !src.data.is_empty() {
            r.recv(&mut src, &mut h, &mut NoReply).unwrap();
        }
        let shared: Vec<usize> = h.kept.iter().map(|m| m.payload().len()).collect();
        assert_eq!(
            shared,
            [300_000, 20_000, 150_000, SHARE_MIN, 70_000],
            "chunk {chunk}"
        );
        assert_eq!(h.small, [vec![5u8; SHARE_MIN - 1]], "chunk {chunk}");
        for (m, fill) in h.kept.iter().zip([1u8, 2, 3, 4, 6]) {
            assert_eq!(m.opcode(), OpCode::Binary);
            assert!(m.payload().iter().all(|&b| b == fill), "chunk {chunk}");
        }
    }
}

/// Text is shared only once checked: with RSV1 allowed and set (a user's own
/// extension owns the payload) a large text message is not checked, so it comes
/// through `on_message`.
#[test]
fn unchecked_text_is_not_shared() {
    let text = vec![b'x'; 100_000]; // larger than a read: assembled in a buffer of its own
    let mut wire = text_frame(true, 1, &text);
    let mut r = Receiver::new(Role::Server, &Config::default());
    let mut h = Shared::default();
    let mut src = Chunks::new(&wire, usize::MAX);
    r.recv(&mut src, &mut h, &mut NoReply).unwrap();
    assert_eq!(h.kept.len(), 1);
    assert_eq!(h.kept[0].opcode(), OpCode::Text);

    wire[0] |= 0x40; // RSV1
    let config = Config::default().allowed_rsv(Rsv::RSV1);
    let mut r = Receiver::new(Role::Server, &config);
    let mut h = Shared::default();
    let mut src = Chunks::new(&wire, usize::MAX);
    r.recv(&mut src, &mut h, &mut NoReply).unwrap();
    assert!(h.kept.is_empty());
    assert_eq!(h.small, [text]);
}
