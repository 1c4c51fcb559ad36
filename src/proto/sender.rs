//! The sending half: the send queue, framing, masking, close state and
//! fragmented messages.
use std::io::{self, Write};

use super::deflate;
use super::encoder::Encoder;
use super::{
    pool, Compression, Config, Error, Fragment, MaskSource, OpCode, Produced, Role, SendStatus,
    SharedMessage,
};

/// Queues messages and writes them as frames.
///
/// Control frames (ping, pong) go before data messages not yet started and
/// between the frames of a fragmented message, never inside a frame already
/// framed. Data messages go in FIFO order; a user close after everything queued
/// before it. Small frames are framed into one buffer and written together.
///
/// The only user code a `Sender` ever calls is the mask source
/// ([`Sender::set_mask_source`]), once per frame of a client.
///
/// With nothing queued it holds no queue state: the encoder goes back to a small
/// per-thread pool once everything is written, and an idle sender is its
/// configuration and one empty pointer.
pub struct Sender {
    role: Role,
    /// `Config::fragment_size` (at most `u32::MAX`: 4 bytes fewer per idle sender).
    fragment_size: u32,
    max_queued_bytes: usize,
    /// permessage-deflate in force (`Config::compression`).
    compression: Option<Compression>,
    /// `None` while idle (see [`Encoder::is_pristine`]).
    enc: Option<Box<Encoder>>,
}

/// The fragment size in use: at least 1, at most `u32::MAX`.
fn fragment_size(config: &Config) -> u32 {
    config.fragment_size.clamp(1, u32::MAX as usize) as u32
}

thread_local! {
    // Boxes: a spare goes back and forth as the allocation it is (`pool::Spares`).
    #[allow(clippy::vec_box)]
    static SPARE_ENCODERS: std::cell::RefCell<Vec<Box<Encoder>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// A fresh encoder: a spare from the pool, or a new one.
#[cold]
fn pooled_encoder(
    role: Role,
    fragment_size: usize,
    max_queued_bytes: usize,
    compression: Option<Compression>,
) -> Box<Encoder> {
    let mut e = match pool::take_spare(&SPARE_ENCODERS) {
        Some(mut e) => {
            e.renew(role, fragment_size, max_queued_bytes);
            e
        }
        None => Box::new(Encoder::new(role, fragment_size, max_queued_bytes)),
    };
    e.set_compression(compression);
    e
}

impl Sender {
    /// A sender for `role` (a client masks every frame).
    pub fn new(role: Role, config: &Config) -> Sender {
        Sender {
            role,
            fragment_size: fragment_size(config),
            max_queued_bytes: config.max_queued_bytes,
            compression: deflate::negotiated(&config.compression),
            enc: None,
        }
    }

    /// The encoder, from the pool or new when idle.
    #[inline]
    fn enc(&mut self) -> &mut Encoder {
        let (role, fragment_size) = (self.role, self.fragment_size as usize);
        let (max_queued, compression) = (self.max_queued_bytes, self.compression);
        self.enc
            .get_or_insert_with(|| pooled_encoder(role, fragment_size, max_queued, compression))
    }

    /// Gives the encoder back to the pool when it holds nothing worth keeping.
    fn idle_check<T>(&mut self, result: T) -> T {
        if self.enc.as_ref().is_some_and(|d| d.is_pristine()) {
            if let Some(mut spare) = self.enc.take() {
                spare.trim_for_spare();
                pool::keep_spare(&SPARE_ENCODERS, spare);
            }
        }
        result
    }

    #[cfg(test)]
    fn encoder_ref(&self) -> &Encoder {
        self.enc.as_ref().expect("an encoder in use")
    }

    /// Replaces the source of the 4 mask bytes of each frame a client sends
    /// (Perl's `genmask`). The default is a CSPRNG (`rand`'s thread rng). It is
    /// called once per frame, when the frame is framed, which is during
    /// [`Sender::send`] or [`Sender::push_fragment`]. If it panics, that frame gets
    /// a random key and the panic comes out of the call once the queue is whole.
    pub fn set_mask_source(&mut self, f: MaskSource) {
        self.enc().set_mask_source(f);
    }

    /// Queues a whole text, binary, ping or pong message. Text must be UTF-8,
    /// control payloads at most 125 bytes.
    pub fn queue_msg(&mut self, opcode: OpCode, data: &[u8]) -> Result<(), Error> {
        let result = self.enc().queue_msg(opcode, data);
        if result.is_ok() {
            return result; // something is queued: the encoder is in use
        }
        self.idle_check(result)
    }

    /// Queues a whole text or binary message whose payload is shared with its
    /// other holders instead of copied: a server writes it from where it is
    /// (several connections can send one broadcast payload, and a received message
    /// can be echoed as it was assembled). A client (it masks each frame), a
    /// connection with compression, and a payload under [`SHARE_MIN`](super::SHARE_MIN)
    /// bytes (cheaper to copy) get a copy, as with [`Sender::queue_msg`].
    ///
    /// ```
    /// use net_websocket_ev::proto::{Config, OpCode, Role, Sender, SharedMessage};
    ///
    /// let msg = SharedMessage::new(OpCode::Binary, vec![7u8; 64 * 1024])?;
    /// let mut a = Sender::new(Role::Server, &Config::default());
    /// let mut b = Sender::new(Role::Server, &Config::default());
    /// a.queue_shared(&msg)?;
    /// b.queue_shared(&msg)?; // the same bytes, not a copy
    /// let mut wire = Vec::new();
    /// a.send(&mut wire)?;
    /// assert_eq!(wire[..4], [0x82, 127, 0, 0]); // a binary frame, 64-bit length
    /// assert_eq!(wire.len(), 10 + 64 * 1024);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn queue_shared(&mut self, msg: &SharedMessage) -> Result<(), Error> {
        let result = self.enc().queue_shared(msg);
        if result.is_ok() {
            return result;
        }
        self.idle_check(result)
    }

    /// Queues a fragmented message: its pieces come through
    /// [`Sender::push_produced`] (or [`Sender::push_fragment`]) when
    /// [`Sender::send`] asks for them.
    pub fn queue_fragmented(&mut self, opcode: OpCode) -> Result<(), Error> {
        let result = self.enc().queue_fragmented(opcode);
        self.idle_check(result)
    }

    /// The next piece of the fragmented message at the head of the queue; `last`
    /// ends it.
    pub fn push_fragment(&mut self, data: &[u8], last: bool) -> Result<(), Error> {
        let result = self.enc().push_fragment(data, last);
        self.raise_mask_panic();
        self.idle_check(result)
    }

    /// Carries out what the producer of the fragmented message at the head of
    /// the queue returned, after [`Sender::send`] returned
    /// [`SendStatus::NeedFragment`]: `buf` is the buffer the producer was given
    /// (`max_len` bytes), `outcome` its answer. This is the one place a
    /// producer's answer is interpreted; drop the producer when the result is
    /// [`Produced::Finished`] or [`Produced::Failed`], keep it otherwise.
    ///
    /// - `Data(n)`: the first `n` bytes of `buf` are queued as the next frame
    ///   ([`Produced::Queued`]); `Data(0)` queues nothing
    ///   ([`Produced::NotReady`]: ask again at the next `NeedFragment`).
    /// - `Eof(n)`: the last frame, `n` bytes (may be 0): [`Produced::Finished`].
    /// - `Pause`: nothing is queued and the message is paused
    ///   ([`Produced::Paused`]): until [`Sender::resume_fragmented`], `send`
    ///   writes control frames and returns [`SendStatus::Idle`] instead of
    ///   asking for a piece, and [`Sender::want_write`] is false unless a
    ///   control frame (or a failure close, which then abandons the message)
    ///   waits.
    /// - `Error`, a length over `buf`'s, or a piece [`Sender::push_fragment`]
    ///   refuses (invalid UTF-8 in a text message, also a text message ending
    ///   inside a character): the message and everything queued after it are
    ///   dropped and close 1011 is queued ([`Produced::Failed`]).
    ///
    /// ```
    /// use net_websocket_ev::proto::{Config, Fragment, OpCode, Produced, Role, SendStatus, Sender};
    ///
    /// let mut sender = Sender::new(Role::Server, &Config::default());
    /// sender.queue_fragmented(OpCode::Text).unwrap();
    /// let mut pieces = vec![&b"lo"[..], b"hel"]; // popped from the back
    /// let mut producer = move |buf: &mut [u8]| match pieces.pop() {
    ///     Some(p) => {
    ///         buf[..p.len()].copy_from_slice(p);
    ///         Fragment::Data(p.len())
    ///     }
    ///     None => Fragment::Eof(0),
    /// };
    /// let mut wire = Vec::new();
    /// let mut buf = Vec::new();
    /// loop {
    ///     match sender.send(&mut wire).unwrap() {
    ///         SendStatus::NeedFragment { max_len } => {
    ///             buf.resize(max_len, 0);
    ///             let outcome = producer(&mut buf);
    ///             match sender.push_produced(&buf, outcome) {
    ///                 Produced::Queued => {}
    ///                 Produced::Finished | Produced::Failed => {} // drop the producer here
    ///                 Produced::NotReady | Produced::Paused => break, // ask later
    ///             }
    ///         }
    ///         _ => break,
    ///     }
    /// }
    /// assert_eq!(wire, b"\x01\x03hel\x00\x02lo\x80\x00");
    ///
    /// // A text message may not end inside a character: close 1011.
    /// sender.queue_fragmented(OpCode::Text).unwrap();
    /// assert_eq!(sender.send(&mut wire).unwrap(), SendStatus::NeedFragment { max_len: 4096 });
    /// assert_eq!(sender.push_produced(b"\xe2\x82", Fragment::Eof(2)), Produced::Failed);
    /// assert!(sender.close_queued());
    /// ```
    pub fn push_produced(&mut self, buf: &[u8], outcome: Fragment) -> Produced {
        let result = self.enc().push_produced(buf, outcome);
        self.raise_mask_panic();
        self.idle_check(result)
    }

    /// Lets a paused fragmented message ([`Fragment::Pause`]) be asked for its
    /// next piece again: `send` returns [`SendStatus::NeedFragment`] for it
    /// and [`Sender::want_write`] turns true. No-op when the head of the queue
    /// is not a paused message.
    pub fn resume_fragmented(&mut self) {
        if let Some(e) = self.enc.as_mut() {
            e.resume_fragmented();
        }
    }

    /// Whether the head of the queue is a fragmented message paused by its
    /// producer ([`Fragment::Pause`]).
    pub fn fragmented_paused(&self) -> bool {
        self.enc.as_ref().is_some_and(|e| e.fragmented_paused())
    }

    /// The producer of the fragmented message at the head of the queue failed:
    /// the message and everything queued after it are dropped and close 1011 is
    /// queued at once. No-op when the head is not a fragmented message.
    pub fn abort_fragmented(&mut self) {
        if let Some(e) = self.enc.as_mut() {
            e.abort_fragmented();
        }
        self.idle_check(())
    }

    /// Queues the user's close: it goes out after everything queued before it,
    /// and nothing can be queued after it. `code` `None` sends an empty close
    /// (the reason must then be empty).
    pub fn queue_close(&mut self, code: Option<u16>, reason: &[u8]) -> Result<(), Error> {
        let result = self.enc().queue_close(code, reason);
        self.idle_check(result)
    }

    /// Answers the peer's close at once, echoing `code` and `reason`: only a frame
    /// already partly written and the control frames already queued (pongs
    /// answering pings that came before the close) go before it; data not yet
    /// started is dropped. If a close is already queued but not yet framed,
    /// that close is kept and moved to the front the same way. No-op once a close
    /// is framed or sent, or writing is shut down.
    pub fn reply_close(&mut self, code: Option<u16>, reason: &[u8]) {
        self.enc().reply_close(code, reason);
    }

    /// The peer broke the protocol: close with `code` after everything already
    /// queued, except a paused fragmented message, which it does not wait for
    /// (that message and what follows it are dropped); nothing can be queued
    /// afterwards. If a close is already queued, that one is kept (and no
    /// longer waits for a paused message either); no-op once a close is sent.
    pub fn fail(&mut self, code: u16) {
        self.enc().fail(code);
    }

    /// Queues a pong answering a ping (at most 125 bytes are kept). After our
    /// close is queued it still goes out, before the close, as RFC 6455 section
    /// 5.5.2 asks (the Perl module dropped it); it is dropped only once the
    /// close frame's writing has begun, or writing is shut down. Past
    /// `max_queued_bytes` (waiting control frames counted at what they take,
    /// ~130 bytes each) it replaces the pong still waiting rather than adding
    /// one: then only the latest ping is answered, as RFC 6455 section 5.5.3
    /// allows, and the queue stays bounded (with our close already framed, past
    /// the mark it is dropped).
    pub fn queue_pong(&mut self, payload: &[u8]) {
        self.enc().queue_pong(payload);
        self.idle_check(())
    }

    /// Writes queued frames to `w` until nothing is left, `w` would block, or a
    /// fragmented message needs its next piece (a paused one needs none: `send`
    /// returns `Idle` then, with the control frames written). Many frames go out per write and
    /// a partial write resumes exactly. `Interrupted` is retried; other I/O
    /// errors are returned (a write of 0 bytes is `WriteZero`).
    pub fn send<W: Write>(&mut self, w: &mut W) -> io::Result<SendStatus> {
        let Some(e) = self.enc.as_mut() else {
            return Ok(SendStatus::Idle); // nothing queued
        };
        let result = e.send(w);
        self.raise_mask_panic();
        self.idle_check(result)
    }

    /// Raises again a panic of the mask source, now that the queue is whole: the
    /// frame it failed to mask went out with a random key, and the sender can be
    /// used on as if nothing had happened.
    fn raise_mask_panic(&mut self) {
        if let Some(payload) = self.enc.as_mut().and_then(|e| e.take_mask_panic()) {
            std::panic::resume_unwind(payload);
        }
    }

    /// Whether there is something to write: not shut down, no close sent, and a
    /// frame queued or partly written, or a fragmented message waiting for its
    /// next piece. Behind a paused fragmented message, only control frames and a
    /// failure close count: data and a user close queued after it wait.
    pub fn want_write(&self) -> bool {
        self.enc.as_ref().is_some_and(|e| e.want_write())
    }

    /// Messages queued or partly sent, control frames and the close included.
    pub fn queued_count(&self) -> usize {
        self.enc.as_ref().map_or(0, |e| e.queued_count())
    }

    /// Bytes queued and not yet written: payloads waiting, and framed bytes
    /// (headers included) not yet written. The high-water mark applies to this.
    pub fn queued_bytes(&self) -> usize {
        self.enc.as_ref().map_or(0, |e| e.queued_bytes())
    }

    /// Whether a close is queued (or sent).
    pub fn close_queued(&self) -> bool {
        self.enc.as_ref().is_some_and(|e| e.close_queued())
    }

    /// Whether the close frame has been written whole.
    pub fn close_sent(&self) -> bool {
        self.enc.as_ref().is_some_and(|e| e.close_sent())
    }

    /// The code of the close sent: 1006 until one is written, 1005 for an empty
    /// close.
    pub fn status_code_sent(&self) -> u16 {
        self.enc.as_ref().map_or(1006, |e| e.status_code_sent())
    }

    /// Ends writing at once: the queue is dropped, `want_write` turns false and
    /// queueing returns [`Error::Closed`].
    pub fn shutdown_write(&mut self) {
        self.enc().shutdown_write();
    }

    /// Changes `fragment_size`, `max_queued_bytes` and `compression` (a
    /// change of compression applies to messages queued from now on).
    pub fn set_config(&mut self, config: &Config) {
        self.fragment_size = fragment_size(config);
        self.max_queued_bytes = config.max_queued_bytes;
        self.compression = deflate::negotiated(&config.compression);
        if let Some(e) = self.enc.as_mut() {
            e.set_limits(self.fragment_size as usize, self.max_queued_bytes);
            e.set_compression(self.compression);
        }
    }

    /// The send-queue high-water mark (`max_queued_bytes`).
    pub(crate) fn max_queued_bytes(&self) -> usize {
        self.max_queued_bytes
    }

    /// Whether writing what is queued may call user code: a fragmented message
    /// (its producer) or a client's mask source.
    pub(crate) fn sends_user_code(&self) -> bool {
        self.enc.as_ref().is_some_and(|e| e.sends_user_code())
    }

    /// How many fragmented messages are queued (their producers live elsewhere).
    pub(crate) fn fragmented_count(&self) -> usize {
        self.enc.as_ref().map_or(0, |e| e.fragmented_count())
    }
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.enc {
            Some(e) => e.fmt(f),
            None => f
                .debug_struct("Sender")
                .field("role", &self.role)
                .field("queued_count", &0)
                .finish_non_exhaustive(),
        }
    }
}

#[cfg(test)]
#[path = "sender_tests.rs"]
mod tests;
