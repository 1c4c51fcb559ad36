//! Helpers shared by the engine tests: a recording handler, frame building and
//! parsing written independently of the engine, in-memory transports.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{self, Read, Write};

use net_websocket_ev::proto::{
    Config, Engine, Flow, Handler, OpCode, RecvStatus, Reply, ReplySink, Role, Rsv,
};
use rand::{rngs::StdRng, Rng, SeedableRng};

/// One handler event, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ev {
    Start(bool, u8, u8, u64),
    Chunk(Vec<u8>),
    End,
    Msg(u8, u8, Vec<u8>, u16),
}

pub fn start(fin: bool, op: u8, len: u64) -> Ev {
    Ev::Start(fin, 0, op, len)
}
pub fn chunk(data: &[u8]) -> Ev {
    Ev::Chunk(data.to_vec())
}
pub fn msg(op: u8, data: &[u8]) -> Ev {
    Ev::Msg(0, op, data.to_vec(), 0)
}
/// The events of one whole unfragmented frame and its message.
pub fn whole(op: u8, data: &[u8]) -> Vec<Ev> {
    vec![
        start(true, op, data.len() as u64),
        chunk(data),
        Ev::End,
        msg(op, data),
    ]
}

/// Records every event; pauses after every event when `pause_every` is set.
#[derive(Default, Debug)]
pub struct Recorder {
    pub events: Vec<Ev>,
    pub pause_every: bool,
}

impl Recorder {
    fn flow(&self) -> Flow {
        if self.pause_every {
            Flow::Pause
        } else {
            Flow::Continue
        }
    }
    /// Events with consecutive chunks merged (splitting input splits chunks).
    pub fn merged(&self) -> Vec<Ev> {
        merge_chunks(&self.events)
    }
}

pub fn merge_chunks(events: &[Ev]) -> Vec<Ev> {
    let mut out: Vec<Ev> = Vec::new();
    for e in events {
        if let (Ev::Chunk(more), Some(Ev::Chunk(prev))) = (e, out.last_mut()) {
            prev.extend_from_slice(more);
            continue;
        }
        out.push(e.clone());
    }
    out
}

impl Handler for Recorder {
    fn on_frame_start(&mut self, fin: bool, rsv: Rsv, opcode: OpCode, len: u64) -> Flow {
        self.events
            .push(Ev::Start(fin, rsv.bits(), opcode.as_u8(), len));
        self.flow()
    }
    fn on_frame_chunk(&mut self, data: &[u8]) -> Flow {
        self.events.push(Ev::Chunk(data.to_vec()));
        self.flow()
    }
    fn on_frame_end(&mut self) -> Flow {
        self.events.push(Ev::End);
        self.flow()
    }
    fn on_message(&mut self, rsv: Rsv, opcode: OpCode, data: &[u8], status: u16) -> Flow {
        self.events
            .push(Ev::Msg(rsv.bits(), opcode.as_u8(), data.to_vec(), status));
        self.flow()
    }
}

/// A reply, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rep {
    Pong(Vec<u8>),
    Close(Option<u16>, Vec<u8>),
    Fail(u16),
}

#[derive(Default, Debug)]
pub struct Replies(pub Vec<Rep>);

impl ReplySink for Replies {
    fn reply(&mut self, reply: Reply<'_>) {
        self.0.push(match reply {
            Reply::Pong(p) => Rep::Pong(p.to_vec()),
            Reply::Close { code, reason } => Rep::Close(code, reason.to_vec()),
            Reply::Fail(e) => Rep::Fail(e.close_code()),
        });
    }
}

/// Builds one frame: `b0` carries fin, rsv and opcode; masked with `mask`.
pub fn raw_frame(b0: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![b0];
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(m | n as u8),
        n if n <= 0xffff => {
            out.push(m | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(m | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// A frame as the peer of a `receiver` of that role sends it (masked to a server).
pub fn frame_to(receiver: Role, fin: bool, op: u8, payload: &[u8]) -> Vec<u8> {
    let b0 = (u8::from(fin) << 7) | op;
    raw_frame(b0, payload, mask_for(receiver))
}

pub fn mask_for(receiver: Role) -> Option<[u8; 4]> {
    match receiver {
        Role::Server => Some([0x37, 0xfa, 0x21, 0x3d]),
        Role::Client => None,
    }
}

pub fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

/// A frame parsed from the wire by the test's own decoder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    /// RSV1-3 as wslay numbers them (`Rsv` bits: RSV1 is 0b100).
    pub rsv: u8,
    pub op: u8,
    pub mask: Option<[u8; 4]>,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The close code and reason of a close frame.
    pub fn close(&self) -> Option<(u16, Vec<u8>)> {
        if self.payload.len() < 2 {
            return None;
        }
        Some((
            u16::from_be_bytes([self.payload[0], self.payload[1]]),
            self.payload[2..].to_vec(),
        ))
    }
}

/// Parses complete frames (unmasking); panics on trailing garbage.
pub fn parse_frames(mut wire: &[u8]) -> Vec<Frame> {
    let mut frames = Vec::new();
    while !wire.is_empty() {
        let fin = wire[0] & 0x80 != 0;
        let rsv = wire[0] >> 4 & 0x7;
        let op = wire[0] & 0x0f;
        let masked = wire[1] & 0x80 != 0;
        let (len, mut at) = match wire[1] & 0x7f {
            126 => (u16::from_be_bytes([wire[2], wire[3]]) as usize, 4),
            127 => (
                u64::from_be_bytes(wire[2..10].try_into().unwrap()) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        let mask = masked.then(|| {
            let k = [wire[at], wire[at + 1], wire[at + 2], wire[at + 3]];
            at += 4;
            k
        });
        let mut payload = wire[at..at + len].to_vec();
        if let Some(k) = mask {
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= k[i % 4];
            }
        }
        frames.push(Frame {
            fin,
            rsv,
            op,
            mask,
            payload,
        });
        wire = &wire[at + len..];
    }
    frames
}

/// (fin, opcode, payload) of each frame, for compact expectations.
pub fn summary(frames: &[Frame]) -> Vec<(bool, u8, Vec<u8>)> {
    frames
        .iter()
        .map(|f| (f.fin, f.op, f.payload.clone()))
        .collect()
}

/// How input is cut into pieces.
#[derive(Clone, Copy, Debug)]
pub enum Split {
    Whole,
    Bytes,
    Random(u64),
}

pub const SPLITS: [Split; 5] = [
    Split::Whole,
    Split::Bytes,
    Split::Random(1),
    Split::Random(2),
    Split::Random(3),
];

pub fn pieces(data: &[u8], split: Split) -> Vec<&[u8]> {
    match split {
        Split::Whole => vec![data],
        Split::Bytes => data.chunks(1).collect(),
        Split::Random(seed) => {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut out = Vec::new();
            let mut rest = data;
            while !rest.is_empty() {
                let n = rng.gen_range(1..=rest.len().min(40));
                out.push(&rest[..n]);
                rest = &rest[n..];
            }
            out
        }
    }
}

/// A reader that hands out the given pieces one read at a time, then would block
/// (or reports EOF when `eof` is set).
#[derive(Debug, Default)]
pub struct Pieces {
    pub pieces: VecDeque<Vec<u8>>,
    pub eof: bool,
}

impl Pieces {
    pub fn new(data: &[u8], split: Split) -> Pieces {
        Pieces {
            pieces: pieces(data, split)
                .into_iter()
                .map(|p| p.to_vec())
                .collect(),
            eof: false,
        }
    }
}

impl Read for Pieces {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(mut piece) = self.pieces.pop_front() else {
            return if self.eof {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        };
        let n = piece.len().min(buf.len());
        buf[..n].copy_from_slice(&piece[..n]);
        if n < piece.len() {
            self.pieces.push_front(piece.split_off(n));
        }
        Ok(n)
    }
}

/// What a receiving engine did with some input.
#[derive(Debug)]
pub struct Outcome {
    pub events: Vec<Ev>,
    pub status: RecvStatus,
    pub sent: Vec<Frame>,
    pub engine: Engine,
}

impl Outcome {
    /// The close code the engine sent, if any.
    pub fn close_sent(&self) -> Option<u16> {
        self.sent
            .iter()
            .find(|f| f.op == 8)
            .map(|f| f.close().map_or(1005, |c| c.0))
    }
}

/// Feeds `input` to a fresh engine of `role` cut by `split`, with the engine's
/// `recv` reading the pieces, then collects what it writes.
pub fn converse(role: Role, config: &Config, input: &[u8], split: Split) -> Outcome {
    let mut engine = Engine::new(role, config.clone());
    let mut rec = Recorder::default();
    let mut reader = Pieces::new(input, split);
    let mut status = RecvStatus::WouldBlock;
    while !reader.pieces.is_empty() {
        status = engine.recv(&mut reader, &mut rec).unwrap();
        if status == RecvStatus::Closed {
            break;
        }
    }
    let mut wire = Vec::new();
    engine.send(&mut wire).unwrap();
    Outcome {
        events: rec.merged(),
        status,
        sent: parse_frames(&wire),
        engine,
    }
}

/// `converse` under every split: all must agree; returns the whole-input outcome.
pub fn converse_all(role: Role, config: &Config, input: &[u8]) -> Outcome {
    converse_all_with(role, config, input, |a, b| a == b)
}

/// `converse_all` where events under other splits only need to satisfy
/// `same(split_events, whole_events)`.
pub fn converse_all_with(
    role: Role,
    config: &Config,
    input: &[u8],
    same: impl Fn(&[Ev], &[Ev]) -> bool,
) -> Outcome {
    let first = converse(role, config, input, Split::Whole);
    for split in SPLITS {
        let other = converse(role, config, input, split);
        assert!(
            same(&other.events, &first.events),
            "{split:?} events {:?} vs {:?}",
            other.events,
            first.events
        );
        assert_eq!(
            summary(&other.sent),
            summary(&first.sent),
            "{split:?} sent frames"
        );
        assert_eq!(other.status, first.status, "{split:?} status");
    }
    // Pausing after every event and resuming changes nothing either.
    let paused = converse_paused(role, config, input);
    assert!(
        same(&paused.0, &first.events),
        "paused events {:?}",
        paused.0
    );
    assert_eq!(
        summary(&paused.1),
        summary(&first.sent),
        "paused sent frames"
    );
    // A server never masks, a client always does.
    for f in &first.sent {
        assert_eq!(f.mask.is_some(), role == Role::Client, "{f:?}");
    }
    first
}

/// Feeds `input` with a handler that pauses after every event, resuming until
/// all is processed.
pub fn converse_paused(role: Role, config: &Config, input: &[u8]) -> (Vec<Ev>, Vec<Frame>) {
    let mut engine = Engine::new(role, config.clone());
    let mut rec = Recorder {
        pause_every: true,
        ..Recorder::default()
    };
    let mut status = engine.feed(input, &mut rec);
    let mut guard = 0;
    while status == RecvStatus::Paused {
        assert!(engine.receiver().has_pending_input() || engine.want_read());
        status = engine.resume(&mut rec);
        guard += 1;
        assert!(guard < 1_000_000);
    }
    let mut wire = Vec::new();
    engine.send(&mut wire).unwrap();
    (rec.merged(), parse_frames(&wire))
}

/// A writer that takes at most `step` bytes per call and would block on every
/// other call; counts the calls that wrote.
#[derive(Debug, Default)]
pub struct Trickle {
    pub data: Vec<u8>,
    pub step: usize,
    pub block_next: bool,
    pub writes: usize,
}

impl Write for Trickle {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.block_next {
            self.block_next = false;
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.block_next = true;
        let n = buf.len().min(self.step.max(1));
        self.data.extend_from_slice(&buf[..n]);
        self.writes += 1;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A writer that counts calls and takes everything.
#[derive(Debug, Default)]
pub struct Counting {
    pub data: Vec<u8>,
    pub writes: usize,
}

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writes += 1;
        self.data.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
