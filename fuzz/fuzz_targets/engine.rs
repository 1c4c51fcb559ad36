//! Two checks on the sans-IO engine, both roles, from one input:
//!
//! - receiving: arbitrary bytes fed to an engine under a configuration and read
//!   splits taken from the input: no panic, and every close code the engine sends
//!   is one allowed on the wire;
//! - sending: the same input read as a script for an engine that queues whole and
//!   fragmented messages (producers that pause, stall with `Data(0)`, fail, split
//!   characters), is resumed, pinged, closed, and writes through a writer that
//!   takes a few bytes at a time. Checked: no panic; every byte it writes parses as
//!   frames of its role (the crate's own `Receiver` of the other role), nothing
//!   after its close; a paused producer is not asked again before
//!   `resume_fragmented`, and `send` does not ask for its piece meanwhile; a ping
//!   that arrives while a message is paused is answered at once; the data messages
//!   the peer gets are the ones queued, in order, byte for byte; and once resumed,
//!   every message completes unless a producer failed or a close cut it short.
#![no_main]

mod input;

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use input::Input;
use libfuzzer_sys::fuzz_target;
use net_websocket_ev::proto::{
    is_valid_close_code, Compression, Config, Engine, Flow, Fragment, Handler, OpCode, Receiver,
    RecvStatus, Reply, ReplySink, Role, Rsv, SendStatus, Sender, Window,
};

/// Pauses now and then, to exercise resume.
struct Pauser(u8);

impl Pauser {
    fn flow(&mut self) -> Flow {
        self.0 = self.0.wrapping_add(1);
        if self.0 % 7 == 0 {
            Flow::Pause
        } else {
            Flow::Continue
        }
    }
}

impl Handler for Pauser {
    fn on_frame_start(&mut self, _: bool, _: Rsv, _: OpCode, _: u64) -> Flow {
        self.flow()
    }
    fn on_frame_chunk(&mut self, _: &[u8]) -> Flow {
        self.flow()
    }
    fn on_message(&mut self, _: Rsv, _: OpCode, _: &[u8], status: u16) -> Flow {
        assert_eq!(status, 0);
        self.flow()
    }
}

/// Checks every close frame in `wire` (written by the engine itself).
fn check_closes(mut wire: &[u8]) {
    while wire.len() >= 2 {
        let masked = wire[1] & 0x80 != 0;
        let (len, mut at) = match wire[1] & 0x7f {
            126 => (usize::from(u16::from_be_bytes([wire[2], wire[3]])), 4),
            127 => {
                let mut be = [0u8; 8];
                be.copy_from_slice(&wire[2..10]);
                (u64::from_be_bytes(be) as usize, 10)
            }
            n => (usize::from(n), 2),
        };
        let mut key = [0u8; 4];
        if masked {
            key.copy_from_slice(&wire[at..at + 4]);
            at += 4;
        }
        if wire[0] & 0x0f == 8 && len >= 2 {
            let code = u16::from_be_bytes([wire[at] ^ key[0], wire[at + 1] ^ key[1]]);
            assert!(is_valid_close_code(code), "sent close code {code}");
        }
        wire = &wire[at + len..];
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, rest)) = data.split_first() else {
        return;
    };
    for role in [Role::Server, Role::Client] {
        let config = Config::default()
            .buffering(knobs & 1 == 0)
            .allowed_rsv(if knobs & 2 != 0 {
                Rsv::RSV1
            } else {
                Rsv::empty()
            })
            .max_recv_size(if knobs & 4 != 0 { 64 } else { 1 << 20 })
            // With RSV1 allowed, every other step size also negotiates
            // permessage-deflate (context takeover by the next bit).
            .compression((knobs & 0b1010 == 0b1010).then(|| compression(knobs & 16 != 0)));
        let mut engine = Engine::new(role, config);
        let mut handler = Pauser(knobs);
        let step = usize::from(knobs >> 3) + 1;
        for piece in rest.chunks(step) {
            let mut status = engine.feed(piece, &mut handler);
            while status == RecvStatus::Paused {
                status = engine.resume(&mut handler);
            }
            if status == RecvStatus::Closed {
                assert!(!engine.want_read());
                break;
            }
        }
        let mut wire = Vec::new();
        engine
            .send(&mut wire)
            .expect("writing to a Vec cannot fail");
        check_closes(&wire);
        let code = engine.status_code_received();
        assert!(code == 1005 || code == 1006 || is_valid_close_code(code));
        send_script(role, rest);
    }
});

// ---- sending ------------------------------------------------------------------

/// The most script steps per input.
const MAX_STEPS: usize = 128;
/// Rounds of resume-and-send at the end, per message queued (a producer pauses
/// once and stalls once at most), and beyond.
const FINAL_ROUNDS_PER_MESSAGE: usize = 4;
const FINAL_ROUNDS: usize = 8;

/// One data message as queued, and what its producer made of it so far.
struct Expected {
    opcode: OpCode,
    bytes: Vec<u8>,
    /// The whole message is queued (`queue_msg`, or the producer returned `Eof`).
    complete: bool,
}

/// What the script, the producers and the checks share.
#[derive(Default)]
struct Track {
    expected: Vec<Expected>,
    /// `resume_fragmented` calls so far.
    resumes: u64,
    /// The producer (by message index) that returned `Pause` and has not been
    /// asked since, with `resumes` at that moment.
    paused: Option<(usize, u64)>,
    /// A producer failed (or may: invalid UTF-8, a text message ending inside a
    /// character, an over-long piece): messages from it on may be dropped.
    may_fail: bool,
}

/// A fragmented-message producer of a few pieces, from two spec bytes.
struct Piecer {
    track: Arc<Mutex<Track>>,
    index: usize,
    pieces: usize,
    alphabet: &'static [u8],
    /// 0: Eof with data, 1: empty Eof, 2: Error, 3: a length over the buffer.
    ending: u8,
    /// The call (1-based) that returns `Pause`, and the one that returns
    /// `Data(0)`; 0 for none.
    pause_at: usize,
    stall_at: usize,
    calls: usize,
    produced: usize,
    offset: usize,
}

impl Piecer {
    fn call(&mut self, buf: &mut [u8]) -> Fragment {
        assert!(!buf.is_empty(), "a producer asked for an empty piece");
        self.calls += 1;
        let mut track = self.track.lock().unwrap();
        if let Some((index, resumes)) = track.paused.take() {
            assert_eq!(
                index, self.index,
                "a producer asked while another one is paused"
            );
            assert!(
                track.resumes > resumes,
                "a paused producer was asked again before resume_fragmented"
            );
        }
        if self.calls == self.pause_at {
            track.paused = Some((self.index, track.resumes));
            return Fragment::Pause;
        }
        if self.calls == self.stall_at {
            return Fragment::Data(0);
        }
        let n = buf.len().min(1 + 3 * self.calls);
        for b in &mut buf[..n] {
            *b = self.alphabet[self.offset % self.alphabet.len()];
            self.offset += 1;
        }
        self.produced += 1;
        let expected = &mut track.expected[self.index];
        if self.produced < self.pieces {
            expected.bytes.extend_from_slice(&buf[..n]);
            return Fragment::Data(n);
        }
        match self.ending {
            0 => {
                expected.bytes.extend_from_slice(&buf[..n]);
                expected.complete = true;
                Fragment::Eof(n)
            }
            1 => {
                expected.complete = true;
                Fragment::Eof(0)
            }
            2 => Fragment::Error,
            _ => Fragment::Data(buf.len() + 1),
        }
    }
}

impl Drop for Piecer {
    fn drop(&mut self) {
        let mut track = self.track.lock().unwrap();
        if track.paused.is_some_and(|(index, _)| index == self.index) {
            track.paused = None; // its message was dropped (a close, a failure)
        }
    }
}

/// The peer: parses what our engine wrote, as the other role.
struct Peer {
    receiver: Receiver,
    /// The peer's own frames (pings, its close), of its role.
    sender: Sender,
    seen: Seen,
    /// The code of our engine's close frame once parsed.
    close: Option<Option<u16>>,
    /// Bytes received, and bytes of whole frames parsed.
    total: usize,
    close_sent: bool,
}

#[derive(Default)]
struct Seen {
    masked: bool,
    parsed: usize,
    data: Vec<(OpCode, Vec<u8>)>,
    pongs: Vec<Vec<u8>>,
}

impl Handler for Seen {
    fn on_frame_start(&mut self, _fin: bool, rsv: Rsv, _opcode: OpCode, len: u64) -> Flow {
        // RSV1 marks a compressed message's first frame; nothing else is set.
        assert!(Rsv::RSV1.contains(rsv), "the engine set {rsv:?}");
        let ext = match len {
            0..=125 => 0,
            126..=65535 => 2,
            _ => 8,
        };
        self.parsed += 2 + ext + if self.masked { 4 } else { 0 } + len as usize;
        Flow::Continue
    }

    fn on_message(&mut self, _rsv: Rsv, opcode: OpCode, data: &[u8], _: u16) -> Flow {
        match opcode {
            OpCode::Text | OpCode::Binary => self.data.push((opcode, data.to_vec())),
            OpCode::Pong => self.pongs.push(data.to_vec()),
            _ => {}
        }
        Flow::Continue
    }
}

struct PeerReplies<'a>(&'a mut Option<Option<u16>>);

impl ReplySink for PeerReplies<'_> {
    fn reply(&mut self, reply: Reply<'_>) {
        match reply {
            Reply::Pong(_) => {}
            Reply::Close { code, .. } => *self.0 = Some(code),
            Reply::Fail(err) => panic!("the engine wrote an invalid frame: {err}"),
        }
    }
}

impl Peer {
    fn parse(&mut self, wire: &[u8], track: &Track) {
        if wire.is_empty() {
            return;
        }
        assert!(
            self.close.is_none(),
            "{} bytes after the engine's close frame",
            wire.len()
        );
        self.total += wire.len();
        let status = self
            .receiver
            .feed(wire, &mut self.seen, &mut PeerReplies(&mut self.close));
        assert_ne!(status, RecvStatus::Paused);
        if self.close.is_some() {
            assert_eq!(
                self.total, self.seen.parsed,
                "bytes after the engine's close frame"
            );
        }
        // The data messages so far are the ones queued, in order.
        for (i, (opcode, data)) in self.seen.data.iter().enumerate() {
            let expected = track
                .expected
                .get(i)
                .unwrap_or_else(|| panic!("data message {i} was never queued"));
            assert_eq!(*opcode, expected.opcode, "message {i}'s opcode");
            assert!(
                expected.complete,
                "message {i} arrived before its producer ended it"
            );
            assert!(*data == expected.bytes, "message {i}'s bytes");
        }
    }
}

/// A writer that takes at most `chunk` bytes a call and `budget` in all, then
/// would block.
struct Trickle<'a> {
    out: &'a mut Vec<u8>,
    chunk: usize,
    budget: usize,
}

impl Write for Trickle<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(self.chunk).min(self.budget);
        if n == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.out.extend_from_slice(&buf[..n]);
        self.budget -= n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Our engine writes everything it will now (producers answering as they do).
fn send_all(engine: &mut Engine, peer: &mut Peer, track: &Arc<Mutex<Track>>) -> SendStatus {
    let mut wire = Vec::new();
    let status = engine
        .send(&mut wire)
        .expect("writing to a Vec cannot fail");
    check_send_status(engine, status, track);
    peer.parse(&wire, &track.lock().unwrap());
    status
}

fn check_send_status(engine: &Engine, status: SendStatus, track: &Arc<Mutex<Track>>) {
    // Paused and not resumed since (a resumed producer is asked at the next piece).
    let paused = {
        let t = track.lock().unwrap();
        t.paused.is_some_and(|(_, at)| at == t.resumes)
    };
    assert_eq!(
        engine.sender().fragmented_paused(),
        paused,
        "the sender's pause and the producer's disagree"
    );
    if paused {
        assert!(
            !matches!(status, SendStatus::NeedFragment { .. }),
            "send asked for a piece of a paused message"
        );
    }
}

/// permessage-deflate both ways, with or without context takeover.
fn compression(takeover: bool) -> Compression {
    let window = Window::DEFAULT.no_context_takeover(!takeover);
    Compression::default()
        .send(window)
        .recv(window)
        .level(1)
        .threshold(0)
}

fn send_script(role: Role, data: &[u8]) {
    let mut input = Input(data);
    let setup = input.byte();
    let compressed = (setup & 0x30 != 0).then(|| compression(setup & 0x20 != 0));
    let config = Config::default()
        .fragment_size([1, 2, 5, 4096][usize::from(setup & 3)])
        .max_queued_bytes(if setup & 4 != 0 { 256 } else { 1 << 20 })
        .compression(compressed);
    // The peer inflates what we compress.
    let peer_config = Config::default().compression(compressed);
    let peer_role = match role {
        Role::Server => Role::Client,
        Role::Client => Role::Server,
    };
    let mut engine = Engine::new(role, config);
    if setup & 8 != 0 {
        let mut n = 0u8;
        engine.set_mask_source(Box::new(move |mask| {
            n = n.wrapping_add(1);
            *mask = [n, 0, 0, n];
        }));
    }
    let mut peer = Peer {
        receiver: Receiver::new(peer_role, &peer_config),
        sender: Sender::new(peer_role, &peer_config),
        seen: Seen {
            masked: role == Role::Client,
            ..Seen::default()
        },
        close: None,
        total: 0,
        close_sent: false,
    };
    let track = Arc::new(Mutex::new(Track::default()));
    let mut close_queued = false;
    let mut ping_no = 0u8;

    for _ in 0..MAX_STEPS {
        if input.is_empty() {
            break;
        }
        match input.byte() % 8 {
            0 => {
                // A whole message.
                let (kind, len) = (input.byte(), usize::from(input.byte()));
                let opcode = if kind & 1 != 0 {
                    OpCode::Text
                } else {
                    OpCode::Binary
                };
                let body: Vec<u8> = match kind >> 1 & 3 {
                    0 => vec![b'w'; len],
                    1 => "\u{20ac}".repeat(len / 3 + 1).into_bytes(),
                    2 => vec![0xc3; len.max(1)], // not UTF-8
                    _ => vec![kind; len * 24],
                };
                let result = engine.queue_msg(opcode, &body);
                let valid = opcode == OpCode::Binary || std::str::from_utf8(&body).is_ok();
                if close_queued || !valid {
                    assert!(result.is_err(), "queued after close, or invalid text");
                }
                if result.is_ok() {
                    track.lock().unwrap().expected.push(Expected {
                        opcode,
                        bytes: body,
                        complete: true,
                    });
                }
            }
            1 => {
                // A fragmented message.
                let (spec, when) = (input.byte(), input.byte());
                let opcode = if spec & 0x80 != 0 {
                    OpCode::Text
                } else {
                    OpCode::Binary
                };
                let alphabet: &'static [u8] = match spec >> 2 & 3 {
                    0 => b"abc",
                    1 => "\u{e9}".as_bytes(),
                    2 => b"ok\xff",
                    _ => "\u{1f600}x".as_bytes(),
                };
                let ending = spec >> 4 & 3;
                let index = track.lock().unwrap().expected.len();
                let piecer = Piecer {
                    track: track.clone(),
                    index,
                    pieces: 1 + usize::from(spec & 3),
                    alphabet,
                    ending,
                    pause_at: usize::from(when & 7),
                    stall_at: usize::from(when >> 3 & 7),
                    calls: 0,
                    produced: 0,
                    offset: 0,
                };
                let mut piecer = piecer;
                let result = engine.queue_fragmented(opcode, Box::new(move |buf| piecer.call(buf)));
                if close_queued {
                    assert!(result.is_err(), "queued after close");
                }
                if result.is_ok() {
                    let mut t = track.lock().unwrap();
                    t.expected.push(Expected {
                        opcode,
                        bytes: Vec::new(),
                        complete: false,
                    });
                    if ending >= 2 || (opcode == OpCode::Text && alphabet != b"abc") {
                        t.may_fail = true;
                    }
                }
            }
            2 => {
                track.lock().unwrap().resumes += 1;
                engine.resume_fragmented();
            }
            3 => {
                // Our engine writes through a narrow pipe.
                let (chunk, budget) = (input.byte(), input.byte());
                let mut wire = Vec::new();
                let mut w = Trickle {
                    out: &mut wire,
                    chunk: usize::from(chunk % 16) + 1,
                    budget: usize::from(budget) * 4,
                };
                let status = engine.send(&mut w).expect("a WouldBlock is not an error");
                check_send_status(&engine, status, &track);
                peer.parse(&wire, &track.lock().unwrap());
            }
            4 => {
                // The peer pings: answered at once, paused message or not, unless
                // our close is out or reading is over.
                ping_no = ping_no.wrapping_add(1);
                let payload = [b'p', ping_no];
                let answers = engine.want_read() && !engine.close_sent() && !peer.close_sent;
                if peer.close_sent {
                    continue;
                }
                // Whatever our engine had queued goes out first (it may have been
                // cut mid-frame by a narrow write).
                send_all(&mut engine, &mut peer, &track);
                let answers = answers && !engine.close_sent();
                peer.sender
                    .queue_msg(OpCode::Ping, &payload)
                    .expect("a ping");
                let mut ping = Vec::new();
                peer.sender.send(&mut ping).expect("to a Vec");
                let mut status = engine.feed(&ping, &mut Pauser(1));
                while status == RecvStatus::Paused {
                    status = engine.resume(&mut Pauser(1));
                }
                let pongs = peer.seen.pongs.len();
                send_all(&mut engine, &mut peer, &track);
                if answers {
                    assert_eq!(
                        peer.seen.pongs.get(pongs).map(Vec::as_slice),
                        Some(&payload[..]),
                        "a ping got no pong at once (paused: {:?})",
                        track.lock().unwrap().paused
                    );
                }
            }
            5 => {
                let len = usize::from(input.byte() % 130);
                let result = engine.queue_msg(OpCode::Ping, &vec![b'o'; len]);
                if len > 125 {
                    assert!(result.is_err(), "a {len}-byte ping queued");
                }
            }
            6 => {
                let code = match input.byte() % 4 {
                    0 => Some(1000),
                    1 => Some(4321),
                    2 => None,
                    _ => Some(1005), // not allowed on the wire
                };
                let reason: &[u8] = if code.is_some() { b"bye" } else { b"" };
                let result = engine.queue_close(code, reason);
                if code == Some(1005) {
                    assert!(result.is_err(), "close 1005 queued");
                }
                if result.is_ok() {
                    close_queued = true;
                }
            }
            _ => {
                // The peer closes (rarely: it ends the script's interest).
                if input.byte() & 3 == 0 && !peer.close_sent {
                    send_all(&mut engine, &mut peer, &track);
                    peer.sender.queue_close(Some(1000), b"").expect("a close");
                    let mut close = Vec::new();
                    peer.sender.send(&mut close).expect("to a Vec");
                    peer.close_sent = true;
                    let mut status = engine.feed(&close, &mut Pauser(1));
                    while status == RecvStatus::Paused {
                        status = engine.resume(&mut Pauser(1));
                    }
                }
            }
        }
    }

    // The end: resumed as often as it takes, every message completes (or a close
    // or failure cut the queue short), and nothing is left to write.
    let rounds = FINAL_ROUNDS + FINAL_ROUNDS_PER_MESSAGE * track.lock().unwrap().expected.len();
    for _ in 0..rounds {
        track.lock().unwrap().resumes += 1;
        engine.resume_fragmented();
        let status = send_all(&mut engine, &mut peer, &track);
        if status == SendStatus::Idle
            && !engine.want_write()
            && track.lock().unwrap().paused.is_none()
        {
            break;
        }
    }
    assert!(
        !engine.want_write(),
        "the engine still wants to write after {rounds} rounds"
    );
    assert!(
        track.lock().unwrap().paused.is_none(),
        "a message is still paused"
    );
    let t = track.lock().unwrap();
    if !t.may_fail && !peer.close_sent {
        assert_eq!(engine.queued_count(), 0, "messages left in the queue");
        assert_eq!(
            peer.seen.data.len(),
            t.expected.len(),
            "not every queued message arrived"
        );
        if close_queued {
            assert!(peer.close.is_some(), "our close never went out");
        }
    }
}
