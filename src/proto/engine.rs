//! The unified, wslay-like context: a [`Receiver`] and a [`Sender`] glued
//! together, with the producers of fragmented messages.
use std::collections::VecDeque;
use std::io::{self, Read, Write};

use super::{
    Config, Error, Fragment, Handler, MaskSource, OpCode, Produced, Producer, Receiver, RecvStatus,
    Reply, ReplySink, Role, SendStatus, Sender,
};

/// A whole WebSocket connection without I/O, for standalone use (tests, fuzzing,
/// benchmarks, simple programs): what the peer sends is fed in, replies (pongs,
/// close answers) are queued automatically, and queued frames are written out.
///
/// ```
/// use net_websocket_ev::proto::{Config, Engine, Flow, Handler, OpCode, Role, Rsv};
///
/// struct Print(Vec<String>);
/// impl Handler for Print {
///     fn on_message(&mut self, _rsv: Rsv, opcode: OpCode, data: &[u8], _status: u16) -> Flow {
///         self.0.push(format!("{opcode:?} {}", String::from_utf8_lossy(data)));
///         Flow::Continue
///     }
/// }
///
/// let mut client = Engine::new(Role::Client, Config::default());
/// let mut server = Engine::new(Role::Server, Config::default());
/// client.queue_msg(OpCode::Text, b"hello").unwrap();
/// client.queue_msg(OpCode::Ping, b"p").unwrap();
/// client.queue_close(Some(1000), b"bye").unwrap();
///
/// let mut wire = Vec::new();
/// client.send(&mut wire).unwrap();
/// let mut seen = Print(Vec::new());
/// server.feed(&wire, &mut seen);
/// assert_eq!(seen.0, ["Ping p", "Text hello"]); // control frames go first
/// assert!(server.close_received());
///
/// // The server answered the ping, then echoed the close.
/// let mut back = Vec::new();
/// server.send(&mut back).unwrap();
/// let mut seen = Print(Vec::new());
/// client.feed(&back, &mut seen);
/// assert_eq!(seen.0, ["Pong p"]);
/// assert_eq!(client.status_code_received(), 1000);
/// assert!(!client.want_read() && !client.want_write());
/// ```
pub struct Engine {
    receiver: Receiver,
    sender: Sender,
    producers: VecDeque<Producer>,
    scratch: Vec<u8>,
}

/// Forwards the receiver's replies to the sender.
struct Glue<'a>(&'a mut Sender);

impl ReplySink for Glue<'_> {
    fn reply(&mut self, reply: Reply<'_>) {
        match reply {
            Reply::Pong(payload) => self.0.queue_pong(payload),
            Reply::Close { code, reason } => self.0.reply_close(code, reason),
            Reply::Fail(err) => self.0.fail(err.close_code()),
        }
    }
}

impl Engine {
    /// A context for `role` with `config`.
    pub fn new(role: Role, config: Config) -> Engine {
        Engine {
            receiver: Receiver::new(role, &config),
            sender: Sender::new(role, &config),
            producers: VecDeque::new(),
            scratch: Vec::new(),
        }
    }

    /// Replaces the client's mask source ([`Sender::set_mask_source`]).
    pub fn set_mask_source(&mut self, f: MaskSource) {
        self.sender.set_mask_source(f);
    }

    /// Reads and processes everything `r` has ([`Receiver::recv`]); replies are
    /// queued on the sender.
    pub fn recv<R: Read, H: Handler>(&mut self, r: &mut R, h: &mut H) -> io::Result<RecvStatus> {
        let status = self.receiver.recv(r, h, &mut Glue(&mut self.sender));
        self.sync_producers();
        status
    }

    /// Processes bytes in memory ([`Receiver::feed`]); replies are queued on the
    /// sender.
    pub fn feed<H: Handler>(&mut self, data: &[u8], h: &mut H) -> RecvStatus {
        let status = self.receiver.feed(data, h, &mut Glue(&mut self.sender));
        self.sync_producers();
        status
    }

    /// Processes bytes kept by a pause ([`Receiver::resume`]).
    pub fn resume<H: Handler>(&mut self, h: &mut H) -> RecvStatus {
        let status = self.receiver.resume(h, &mut Glue(&mut self.sender));
        self.sync_producers();
        status
    }

    /// Writes queued frames to `w` ([`Sender::send`]), calling the producers of
    /// fragmented messages as their turn comes ([`Sender::push_produced`] carries
    /// out their answers). Returns [`SendStatus::NeedFragment`] only when a
    /// producer returned `Data(0)` (nothing now): call `send` again later and it
    /// will be asked again. A producer that returned `Pause` is not asked again
    /// until [`Engine::resume_fragmented`]; `send` returns `Idle` meanwhile.
    pub fn send<W: Write>(&mut self, w: &mut W) -> io::Result<SendStatus> {
        loop {
            let status = self.sender.send(w)?;
            self.sync_producers();
            let SendStatus::NeedFragment { max_len } = status else {
                return Ok(status);
            };
            let Some(producer) = self.producers.front_mut() else {
                // Cannot happen: producers are kept in step with the sender.
                self.sender.abort_fragmented();
                continue;
            };
            self.scratch.resize(max_len, 0);
            let outcome = producer(&mut self.scratch[..max_len]);
            if matches!(outcome, Fragment::Eof(_) | Fragment::Error) {
                // The message ends here whatever comes of it (popped first: a
                // panicking mask source comes out of `push_produced` after the
                // last piece is queued).
                self.producers.pop_front();
            }
            let produced = self.sender.push_produced(&self.scratch[..max_len], outcome);
            self.sync_producers();
            if self.producers.is_empty() {
                self.scratch = Vec::new();
            }
            if produced == Produced::NotReady {
                return Ok(status);
            }
        }
    }

    /// Lets a fragmented message paused by its producer ([`Fragment::Pause`]) be
    /// produced again: its producer is called at the next [`Engine::send`]
    /// ([`Sender::resume_fragmented`]).
    pub fn resume_fragmented(&mut self) {
        self.sender.resume_fragmented();
    }

    /// Queues a whole message ([`Sender::queue_msg`]).
    pub fn queue_msg(&mut self, opcode: OpCode, data: &[u8]) -> Result<(), Error> {
        self.sender.queue_msg(opcode, data)
    }

    /// Queues a text or binary message made by `producer`, which is called with
    /// a buffer of `Config::fragment_size` bytes each time the message's next
    /// frame can go out. `Data(0)` sends nothing (asked again at the next
    /// `send`); `Pause` sends nothing and waits for
    /// [`Engine::resume_fragmented`]; a length over the buffer's is a producer
    /// bug, taken as `Error`; `Error`, or a text piece that is not UTF-8,
    /// abandons the message and queues close 1011 ([`Sender::push_produced`]).
    pub fn queue_fragmented(&mut self, opcode: OpCode, producer: Producer) -> Result<(), Error> {
        self.sender.queue_fragmented(opcode)?;
        self.producers.push_back(producer);
        Ok(())
    }

    /// Queues the user's close ([`Sender::queue_close`]).
    pub fn queue_close(&mut self, code: Option<u16>, reason: &[u8]) -> Result<(), Error> {
        self.sender.queue_close(code, reason)
    }

    /// Whether reading goes on ([`Receiver::want_read`]).
    pub fn want_read(&self) -> bool {
        self.receiver.want_read()
    }

    /// Whether something waits to be written ([`Sender::want_write`]).
    pub fn want_write(&self) -> bool {
        self.sender.want_write()
    }

    /// Messages queued or partly sent ([`Sender::queued_count`]).
    pub fn queued_count(&self) -> usize {
        self.sender.queued_count()
    }

    /// Bytes queued and not yet written ([`Sender::queued_bytes`]).
    pub fn queued_bytes(&self) -> usize {
        self.sender.queued_bytes()
    }

    /// Whether part of a message has arrived and the rest has not
    /// ([`Receiver::message_in_progress`]).
    pub fn message_in_progress(&self) -> bool {
        self.receiver.message_in_progress()
    }

    /// Whether a valid close was received.
    pub fn close_received(&self) -> bool {
        self.receiver.close_received()
    }

    /// Whether our close frame was written.
    pub fn close_sent(&self) -> bool {
        self.sender.close_sent()
    }

    /// The peer's close code: 1006 until a close arrives, 1005 if it had none.
    pub fn status_code_received(&self) -> u16 {
        self.receiver.status_code_received()
    }

    /// The code of our close: 1006 until one is written, 1005 if it had none.
    pub fn status_code_sent(&self) -> u16 {
        self.sender.status_code_sent()
    }

    /// Ends reading at once ([`Receiver::shutdown_read`]).
    pub fn shutdown_read(&mut self) {
        self.receiver.shutdown_read();
    }

    /// Ends writing at once ([`Sender::shutdown_write`]); producers are dropped.
    pub fn shutdown_write(&mut self) {
        self.sender.shutdown_write();
        self.sync_producers();
    }

    /// The receiving half.
    pub fn receiver(&self) -> &Receiver {
        &self.receiver
    }

    /// The receiving half, mutable.
    pub fn receiver_mut(&mut self) -> &mut Receiver {
        &mut self.receiver
    }

    /// The sending half.
    pub fn sender(&self) -> &Sender {
        &self.sender
    }

    /// The sending half, mutable. Queue fragmented messages through
    /// [`Engine::queue_fragmented`], not on it directly: the engine keeps their
    /// producers.
    pub fn sender_mut(&mut self) -> &mut Sender {
        &mut self.sender
    }

    /// The sender drops fragmented messages only from the back of its queue
    /// (close, abort, shutdown) and finishes them from the front: keep the
    /// producers in step.
    fn sync_producers(&mut self) {
        let queued = self.sender.fragmented_count();
        self.producers.truncate(queued);
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("receiver", &self.receiver)
            .field("sender", &self.sender)
            .field("producers", &self.producers.len())
            .finish()
    }
}
