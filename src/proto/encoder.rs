//! The sender's queues and framing state: what [`Sender`](super::Sender) holds
//! while it has something to send (an idle sender holds none of this). Queueing
//! is here; framing and writing are in `encoder/write.rs`.
use std::any::Any;
use std::collections::VecDeque;

use super::deflate::Compressor;
use super::frame::{Header, MAX_HEADER_LEN};
use super::mask::apply_mask;
use super::utf8::{self, Utf8Validator};
use super::{
    is_valid_close_code, pool, Compression, Error, Fragment, MaskSource, OpCode, Produced, Role,
    Rsv, SharedMessage, SHARE_MIN,
};

mod compress;
mod write;

/// How many bytes are framed ahead into the write buffer at most (a single
/// larger message is framed whole).
const BATCH: usize = 64 * 1024;
/// The most bytes queued after the frames taken as direct bytes (see
/// [`Encoder::take_framed`]) that are moved to a buffer of their own.
const DIRECT_TAIL_MAX: usize = 4096;
/// Direct bytes up to this many are copied behind the frames in `out` rather
/// than written by a call of their own.
const FLATTEN_MAX: usize = 4096;

/// The sender's queues and framing state, boxed so that an idle sender holds none.
pub(super) struct Encoder {
    role: Role,
    fragment_size: usize,
    max_queued_bytes: usize,
    mask_source: Option<MaskSource>,
    /// A panic of the mask source, raised again by [`Sender`](super::Sender) once
    /// the queue is whole (see [`Encoder::client_mask`]).
    mask_panic: Option<Box<dyn Any + Send>>,
    /// The thread's CSPRNG, held while a client has frames to mask (a handle:
    /// the generator's state is per thread).
    /// Pings and pongs waiting: they jump ahead of `items`.
    ctrl: VecDeque<Control>,
    ctrl_bytes: usize,
    /// Data messages and the close, in order; payloads in `payloads[payloads_pos..]`,
    /// those of shared messages in `shared`.
    items: VecDeque<Item>,
    shared: VecDeque<SharedMessage>,
    /// Payload bytes in `shared`.
    shared_bytes: usize,
    payloads: Vec<u8>,
    payloads_pos: usize,
    /// Header bytes stored in `payloads[payloads_pos..]` (not counted as queued).
    queued_headers: usize,
    fragmented: usize,
    frag_utf8: Utf8Validator,
    /// permessage-deflate in force.
    compression: Option<Compression>,
    /// Our compressor: held while a compressed fragmented message is under way,
    /// and between messages when we keep our context (context takeover).
    compressor: Option<Box<Compressor>>,
    /// Framed bytes, followed by `direct` (the payload of the last frames when it
    /// was not copied); `out_pos` counts bytes written of both together.
    out: Vec<u8>,
    out_pos: usize,
    direct: Direct,
    /// One per frame in `out`, in order.
    marks: Vec<Mark>,
    /// Marks before this one are written.
    marks_pos: usize,
    in_flight: usize,
    close_queued: bool,
    close_sent: bool,
    shut: bool,
    status_code_sent: u16,
}

#[derive(Clone, Copy)]
pub(super) struct Control {
    opcode: OpCode,
    len: u8,
    data: [u8; 125],
}

#[derive(Clone, Copy, Debug)]
pub(super) enum Item {
    /// `header`: bytes of the frame header stored before the payload.
    Message {
        opcode: OpCode,
        len: usize,
        header: u8,
        /// Complete as stored: a server's frame, or a client's masked when queued
        /// (with the default mask source: nobody can tell when a random key is
        /// drawn, and masking the payload while it is hot saves a pass over it).
        /// A client's with a `genmask` is masked when framed, as documented.
        sealed: bool,
    },
    Fragmented {
        opcode: OpCode,
        started: bool,
        /// Sent compressed (permessage-deflate): each piece is compressed
        /// with a sync flush as it comes.
        compressed: bool,
        /// The producer said `Pause`: no piece is asked for until resumed.
        paused: bool,
    },
    Close {
        code: u16,
        len: usize,
        /// A failure close ([`Encoder::fail`]): it does not wait behind a
        /// paused fragmented message.
        failure: bool,
    },
    /// A server's message whose payload is the next in `shared`.
    Shared { opcode: OpCode, len: usize },
}

/// The bytes written after `out` without being copied into it.
pub(super) enum Direct {
    /// Frames taken as they were queued (see [`Encoder::take_framed`]).
    Queued(Vec<u8>),
    /// The first `len` bytes of a shared payload (see [`Encoder::queue_shared`]).
    Shared(SharedMessage, usize),
}

impl Direct {
    pub(super) fn bytes(&self) -> &[u8] {
        match self {
            Direct::Queued(bytes) => bytes,
            Direct::Shared(msg, len) => &msg.payload()[..*len],
        }
    }

    pub(super) fn len(&self) -> usize {
        self.bytes().len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps the first `len` bytes.
    fn truncate(&mut self, len: usize) {
        match self {
            Direct::Queued(bytes) => bytes.truncate(len),
            Direct::Shared(_, kept) => *kept = len.min(*kept),
        }
    }

    /// Lets go of the bytes (back to the pool), leaving nothing allocated.
    #[inline]
    pub(super) fn release(&mut self) {
        if self.is_released() {
            return;
        }
        match std::mem::replace(self, Direct::Queued(Vec::new())) {
            Direct::Queued(bytes) => pool::give_buf(bytes),
            Direct::Shared(msg, _) => pool::give_shared(msg),
        }
    }

    fn is_released(&self) -> bool {
        matches!(self, Direct::Queued(bytes) if bytes.capacity() == 0)
    }
}

/// The end of a frame in `out`, and what writing it completes.
#[derive(Clone, Copy, Debug)]
pub(super) struct Mark {
    start: usize,
    end: usize,
    /// The last frame of a queued message (or a control frame).
    completes: bool,
    /// The close frame, with its code (1005 for an empty one).
    close: Option<u16>,
    /// A ping or pong.
    control: bool,
}

impl Encoder {
    pub(super) fn new(role: Role, fragment_size: usize, max_queued_bytes: usize) -> Encoder {
        Encoder {
            role,
            fragment_size,
            max_queued_bytes,
            mask_source: None,
            mask_panic: None,
            ctrl: VecDeque::new(),
            ctrl_bytes: 0,
            items: VecDeque::new(),
            shared: VecDeque::new(),
            shared_bytes: 0,
            payloads: Vec::new(),
            payloads_pos: 0,
            queued_headers: 0,
            fragmented: 0,
            frag_utf8: Utf8Validator::default(),
            compression: None,
            compressor: None,
            out: Vec::new(),
            out_pos: 0,
            direct: Direct::Queued(Vec::new()),
            marks: Vec::new(),
            marks_pos: 0,
            in_flight: 0,
            close_queued: false,
            close_sent: false,
            shut: false,
            status_code_sent: 1006,
        }
    }

    /// Makes a spare (pristine) encoder fresh for another sender, keeping its
    /// queues' capacity (bounded by `trim_for_spare`) and its handle on the
    /// thread's CSPRNG. A pristine encoder
    /// owns no buffer: this frees nothing.
    pub(super) fn renew(&mut self, role: Role, fragment_size: usize, max_queued_bytes: usize) {
        // Pristine means every queue and flag is as `new` leaves it (see
        // `is_pristine`): only the configuration and what it does not look at are set.
        debug_assert!(self.is_pristine());
        self.role = role;
        self.fragment_size = fragment_size;
        self.max_queued_bytes = max_queued_bytes;
        self.frag_utf8 = Utf8Validator::default();
        self.mask_panic = None;
    }

    pub(super) fn set_limits(&mut self, fragment_size: usize, max_queued_bytes: usize) {
        self.fragment_size = fragment_size;
        self.max_queued_bytes = max_queued_bytes;
    }

    /// Whether a close is queued (or sent).
    pub(super) fn close_queued(&self) -> bool {
        self.close_queued
    }

    /// Whether the close frame has been written whole.
    pub(super) fn close_sent(&self) -> bool {
        self.close_sent
    }

    pub(super) fn status_code_sent(&self) -> u16 {
        self.status_code_sent
    }

    /// How many fragmented messages are queued.
    pub(super) fn fragmented_count(&self) -> usize {
        self.fragmented
    }

    /// Whether writing may call user code: a producer or a mask source.
    pub(super) fn sends_user_code(&self) -> bool {
        self.fragmented > 0 || self.mask_source.is_some()
    }

    /// Whether frames are written from where they were queued (not copied).
    #[cfg(test)]
    pub(super) fn has_direct(&self) -> bool {
        !self.direct.is_empty()
    }

    /// Replaces the source of the 4 mask bytes of each frame a client sends
    /// (Perl's `genmask`). The default is a CSPRNG (`rand`'s thread rng). It is
    /// called once per frame, when the frame is framed, which is during
    /// [`Sender::send`] or [`Sender::push_fragment`].
    pub fn set_mask_source(&mut self, f: MaskSource) {
        self.mask_source = Some(f);
    }

    /// Queues a whole text, binary, ping or pong message. Text must be UTF-8,
    /// control payloads at most 125 bytes.
    pub fn queue_msg(&mut self, opcode: OpCode, data: &[u8]) -> Result<(), Error> {
        self.check_open()?;
        match opcode {
            OpCode::Continuation | OpCode::Close => {
                return Err(Error::InvalidOpcode(opcode.as_u8()))
            }
            OpCode::Ping | OpCode::Pong if data.len() > 125 => {
                return Err(Error::ControlTooLong(data.len()))
            }
            OpCode::Text if !utf8::is_valid(data) => return Err(Error::InvalidUtf8),
            _ => {}
        }
        self.queue_checked(opcode, data)
    }

    /// Queues a message whose opcode and payload are checked, if there is room.
    #[inline(always)]
    fn queue_checked(&mut self, opcode: OpCode, data: &[u8]) -> Result<(), Error> {
        self.check_room(data.len())?;
        if opcode.is_control() {
            self.push_control(opcode, data);
        } else if let Some(c) = self.compression {
            self.queue_compressible(c, opcode, data);
        } else {
            self.queue_data(opcode, Rsv::empty(), data);
        }
        Ok(())
    }

    /// Queues a text or binary message as one frame with `payload` and `rsv`.
    /// Always inlined: in `queue_msg` with `rsv` a constant, which keeps the
    /// uncompressed path within a few instructions of what it was before
    /// compression (a call and a computed header cost ~40 a message).
    #[inline(always)]
    pub(super) fn queue_data(&mut self, opcode: OpCode, rsv: Rsv, data: &[u8]) {
        // The header is stored in front of the payload: written now for a
        // server and for a client with the default mask source (the payload
        // masked now too), with room for the key for a client with a `genmask`.
        let (mask, sealed) = match self.role {
            Role::Server => (None, true),
            Role::Client if self.mask_source.is_none() => (Some(self.random_key()), true),
            Role::Client => (Some([0; 4]), false),
        };
        let (bytes, n) = Header {
            fin: true,
            rsv,
            opcode: opcode.as_u8(),
            mask,
            len: data.len() as u64,
        }
        .to_bytes();
        self.push_payload(&bytes, n, data);
        if let (Some(key), true) = (mask, sealed) {
            let end = self.payloads.len();
            apply_mask(&mut self.payloads[end - data.len()..], key, 0);
        }
        self.queued_headers += n;
        self.items.push_back(Item::Message {
            opcode,
            len: data.len(),
            header: n as u8,
            sealed,
        });
    }

    /// Queues a text or binary message (checked when it was made) whose payload
    /// is shared, not copied:
    /// written from where it is, for a server without compression and a payload
    /// of at least [`SHARE_MIN`] bytes; otherwise (a client masks each frame,
    /// compression makes each connection's bytes its own, and a small payload
    /// costs less to copy) as [`Encoder::queue_msg`].
    pub fn queue_shared(&mut self, msg: &SharedMessage) -> Result<(), Error> {
        let (opcode, data) = (msg.opcode(), msg.payload());
        self.check_open()?;
        if self.role == Role::Client || self.compression.is_some() || data.len() < SHARE_MIN {
            return self.queue_checked(opcode, data);
        }
        self.check_room(data.len())?;
        self.items.push_back(Item::Shared {
            opcode,
            len: data.len(),
        });
        self.shared.push_back(msg.clone());
        self.shared_bytes += data.len();
        Ok(())
    }

    /// Queues a text or binary message whose pieces the caller supplies, each
    /// time [`Sender::send`] returns [`SendStatus::NeedFragment`], with
    /// [`Sender::push_fragment`].
    pub fn queue_fragmented(&mut self, opcode: OpCode) -> Result<(), Error> {
        self.check_open()?;
        if !matches!(opcode, OpCode::Text | OpCode::Binary) {
            return Err(Error::InvalidOpcode(opcode.as_u8()));
        }
        self.items.push_back(Item::Fragmented {
            opcode,
            started: false,
            compressed: self.compression.is_some(),
            paused: false,
        });
        self.fragmented += 1;
        Ok(())
    }

    /// Frames the next piece of the fragmented message at the head of the queue
    /// (`last`: the final one). At most `max_len` bytes of
    /// [`SendStatus::NeedFragment`]. Text pieces are checked as UTF-8 across
    /// pieces. An empty piece that is not `last` sends nothing.
    pub fn push_fragment(&mut self, data: &[u8], last: bool) -> Result<(), Error> {
        if self.shut || self.close_sent {
            return Err(Error::Closed);
        }
        let Some(Item::Fragmented {
            opcode,
            started,
            compressed,
            ..
        }) = self.items.front().copied()
        else {
            return Err(Error::FragmentedNotPending);
        };
        if data.len() > self.fragment_size {
            return Err(Error::FragmentTooLong {
                len: data.len(),
                max: self.fragment_size,
            });
        }
        if opcode == OpCode::Text {
            if !started {
                self.frag_utf8.reset();
            }
            let mut utf8 = self.frag_utf8;
            if !utf8.feed(data) || last && !utf8.is_complete() {
                return Err(Error::InvalidUtf8);
            }
            self.frag_utf8 = utf8;
        }
        if data.is_empty() && !last {
            return Ok(());
        }
        let wire_op = if started {
            OpCode::Continuation
        } else {
            opcode
        };
        if self.out_pos == self.framed_len() {
            self.reset_out();
        }
        self.flatten_direct();
        match self.compression.filter(|_| compressed) {
            Some(c) => self.frame_compressed(c, wire_op, !started, last, data),
            None => self.frame(wire_op, Rsv::empty(), last, data),
        }
        if last {
            self.items.pop_front();
            self.fragmented -= 1;
            self.complete_last_mark(None);
        } else if let Some(Item::Fragmented { started, .. }) = self.items.front_mut() {
            *started = true;
        }
        Ok(())
    }

    /// Carries out what a producer returned for the fragmented message at the
    /// head of the queue: see [`Sender::push_produced`](super::Sender::push_produced).
    pub fn push_produced(&mut self, buf: &[u8], outcome: Fragment) -> Produced {
        let (len, last) = match outcome {
            Fragment::Data(n) => (n, false),
            Fragment::Eof(n) => (n, true),
            Fragment::Pause => {
                if self.shut || self.close_sent {
                    return Produced::Failed;
                }
                return match self.items.front_mut() {
                    Some(Item::Fragmented { paused, .. }) => {
                        *paused = true;
                        Produced::Paused
                    }
                    _ => Produced::Failed,
                };
            }
            Fragment::Error => (usize::MAX, true),
        };
        // `push_fragment` checks the rest: a message waiting, the length
        // against `fragment_size`, UTF-8 across the pieces of a text message.
        let pushed = match buf.get(..len) {
            Some(piece) => self.push_fragment(piece, last),
            None => Err(Error::FragmentTooLong {
                len,
                max: buf.len(),
            }),
        };
        match pushed {
            Ok(()) if last => Produced::Finished,
            Ok(()) if len == 0 => Produced::NotReady,
            Ok(()) => Produced::Queued,
            Err(_) => {
                self.abort_fragmented();
                Produced::Failed
            }
        }
    }

    /// Lets a paused fragmented message at the head of the queue be asked for
    /// its next piece again. No-op otherwise.
    pub fn resume_fragmented(&mut self) {
        if let Some(Item::Fragmented { paused, .. }) = self.items.front_mut() {
            *paused = false;
        }
    }

    /// Whether the head of the queue is a paused fragmented message.
    pub fn fragmented_paused(&self) -> bool {
        matches!(
            self.items.front(),
            Some(Item::Fragmented { paused: true, .. })
        )
    }

    /// The producer of the fragmented message at the head of the queue failed:
    /// the message and everything queued after it are dropped and close 1011 is
    /// queued at once. No-op when the head is not a fragmented message.
    pub fn abort_fragmented(&mut self) {
        if self.shut || self.close_sent {
            return;
        }
        if !matches!(self.items.front(), Some(Item::Fragmented { .. })) {
            return;
        }
        self.drop_items();
        self.close_queued = false;
        self.push_close(Some(1011), b"", false);
    }

    /// Queues the user's close: it goes out after everything queued before it,
    /// and nothing can be queued after it. `code` `None` sends an empty close
    /// (the reason must then be empty).
    pub fn queue_close(&mut self, code: Option<u16>, reason: &[u8]) -> Result<(), Error> {
        self.check_open()?;
        match code {
            None if !reason.is_empty() => return Err(Error::InvalidCloseReason),
            Some(code) if !is_valid_close_code(code) => return Err(Error::InvalidCloseCode(code)),
            _ => {}
        }
        if reason.len() > 123 {
            return Err(Error::ReasonTooLong(reason.len()));
        }
        if std::str::from_utf8(reason).is_err() {
            return Err(Error::InvalidCloseReason);
        }
        self.push_close(code, reason, false);
        Ok(())
    }

    /// Answers the peer's close at once, echoing `code` and `reason`: only a frame
    /// already partly written and the control frames already queued (pongs
    /// answering pings that came before the close) go before it; data not yet
    /// started is dropped. If a close is already queued but not yet framed,
    /// that close is kept and moved to the front the same way. No-op once a close
    /// is framed or sent, or writing is shut down.
    pub fn reply_close(&mut self, code: Option<u16>, reason: &[u8]) {
        if self.shut || self.close_sent || self.close_framed() {
            return;
        }
        self.drop_unstarted_frames();
        let queued = match self.items.back() {
            Some(Item::Close { code, len, .. }) => Some((*code, *len)),
            _ => None,
        };
        match queued {
            Some((queued_code, len)) => {
                // The stored payload is the code then the reason.
                let start = self.payloads.len() - len + len.min(2);
                let reason = self.payloads[start..].to_vec();
                self.drop_items();
                self.close_queued = false;
                let code = (queued_code != 1005).then_some(queued_code);
                self.push_close(code, &reason, false);
            }
            None => {
                self.drop_items();
                let reason = if reason.len() <= 123 { reason } else { &[] };
                self.push_close(code, reason, false);
            }
        }
    }

    /// The peer broke the protocol: close with `code` after everything already
    /// queued, except that it does not wait for a paused fragmented message;
    /// nothing can be queued afterwards. If a close is already queued, that one
    /// stays, and no longer waits for a paused message either. No-op once a
    /// close is sent.
    pub fn fail(&mut self, code: u16) {
        if self.shut || self.close_sent {
            return;
        }
        if !self.close_queued {
            self.push_close(Some(code), b"", true);
        } else if let Some(Item::Close { failure, .. }) = self.items.back_mut() {
            *failure = true;
        }
    }

    /// Queues a pong answering a ping (at most 125 bytes are kept): see
    /// [`Sender::queue_pong`](super::Sender::queue_pong).
    pub fn queue_pong(&mut self, payload: &[u8]) {
        if self.shut || self.close_sent {
            return;
        }
        let payload = &payload[..payload.len().min(125)];
        if self.close_queued && self.close_framed() {
            self.pong_before_framed_close(payload);
            return;
        }
        if self.over_high_water() {
            // Past the high-water mark the newest ping's payload replaces the pong
            // still waiting (RFC 6455 section 5.5.3 lets an endpoint answer only the
            // latest ping): a peer that pings without reading cannot grow the queue.
            let waiting = self
                .ctrl
                .iter_mut()
                .rev()
                .find(|c| c.opcode == OpCode::Pong);
            if let Some(pong) = waiting {
                self.ctrl_bytes -= usize::from(pong.len);
                pong.data[..payload.len()].copy_from_slice(payload);
                pong.len = payload.len() as u8;
                self.ctrl_bytes += payload.len();
                return;
            }
        }
        self.push_control(OpCode::Pong, payload);
    }

    /// Frames a pong in front of our close, which is framed: only while the
    /// close's writing has not begun, and under the high-water mark (a peer
    /// flooding us with pings while we close gets no more pongs past it).
    #[cold]
    fn pong_before_framed_close(&mut self, payload: &[u8]) {
        let Some(close) = self.marks.pop() else {
            return;
        };
        // Nothing is framed after a close, and a close is framed into `out`
        // after any direct bytes were written or flattened.
        debug_assert!(close.close.is_some() && self.direct.is_empty());
        if close.start < self.out_pos || self.over_high_water() {
            self.marks.push(close);
            return;
        }
        // A close frame is at most 2 + 4 + 125 bytes.
        let mut bytes = [0u8; 131];
        let len = close.end - close.start;
        bytes[..len].copy_from_slice(&self.out[close.start..close.end]);
        self.out.truncate(close.start);
        self.frame(OpCode::Pong, Rsv::empty(), true, payload);
        self.complete_last_mark(None);
        let start = self.out.len();
        self.out.extend_from_slice(&bytes[..len]);
        self.marks.push(Mark {
            start,
            end: self.out.len(),
            ..close
        });
    }

    /// Whether the queue holds more than the high-water mark, counting what each
    /// waiting control frame really takes.
    fn over_high_water(&self) -> bool {
        let control = self.ctrl.len() * std::mem::size_of::<Control>();
        self.queued_bytes() - self.ctrl_bytes + control > self.max_queued_bytes
    }

    /// Whether there is something to write: not shut down, no close sent, and a
    /// frame queued or partly written (or a fragmented message waiting, unless
    /// it is paused: then only what may pass it counts).
    pub fn want_write(&self) -> bool {
        !self.shut
            && !self.close_sent
            && (self.out_pos < self.framed_len()
                || !self.ctrl.is_empty()
                || match self.items.front() {
                    None => false,
                    Some(Item::Fragmented { paused: true, .. }) => self.failure_waits(),
                    Some(_) => true,
                })
    }

    /// Whether a failure close is queued (it passes a paused fragmented message).
    pub(super) fn failure_waits(&self) -> bool {
        matches!(self.items.back(), Some(Item::Close { failure: true, .. }))
    }

    /// Messages queued or partly sent, control frames and the close included.
    pub fn queued_count(&self) -> usize {
        self.ctrl.len() + self.items.len() + self.in_flight
    }

    /// Bytes queued and not yet written: payloads waiting, and framed bytes
    /// (headers included) not yet written. The high-water mark applies to this.
    pub fn queued_bytes(&self) -> usize {
        self.ctrl_bytes
            + self.shared_bytes
            + (self.payloads.len() - self.payloads_pos - self.queued_headers)
            + (self.framed_len() - self.out_pos)
    }

    /// Ends writing at once: the queue is dropped, `want_write` turns false and
    /// queueing returns [`Error::Closed`].
    pub fn shutdown_write(&mut self) {
        self.shut = true;
        self.drop_items();
        self.ctrl.clear();
        self.ctrl_bytes = 0;
        self.reset_out();
        pool::release(&mut self.out);
    }

    /// Shrinks the queues of an encoder going back to the pool to a few KiB
    /// each: what a burst made them grow to is not kept by a spare, while the
    /// capacity steady traffic needs is.
    pub(super) fn trim_for_spare(&mut self) {
        const KEPT: usize = 4096;
        self.ctrl.shrink_to(KEPT / std::mem::size_of::<Control>());
        self.items.shrink_to(KEPT / std::mem::size_of::<Item>());
        self.shared
            .shrink_to(KEPT / std::mem::size_of::<SharedMessage>());
        self.marks.shrink_to(KEPT / std::mem::size_of::<Mark>());
    }

    /// Nothing queued, framed or in flight, no buffer, no mask source, nothing
    /// ended: a fresh encoder would do the same from here, so this one may go back
    /// to the pool (its queues' capacity is kept for reuse).
    pub(super) fn is_pristine(&self) -> bool {
        self.ctrl.is_empty()
            && self.ctrl_bytes == 0
            && self.items.is_empty()
            && self.shared.is_empty()
            && self.shared_bytes == 0
            && self.payloads.capacity() == 0
            && self.payloads_pos == 0
            && self.queued_headers == 0
            && self.fragmented == 0
            && self.out.capacity() == 0
            && self.out_pos == 0
            && self.direct.is_released()
            && self.marks.is_empty()
            && self.marks_pos == 0
            && self.in_flight == 0
            && self.mask_source.is_none()
            && self.compressor.is_none()
            && !self.close_queued
            && !self.close_sent
            && !self.shut
            && self.status_code_sent == 1006
    }

    fn check_open(&self) -> Result<(), Error> {
        if self.shut || self.close_queued || self.close_sent {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    fn check_room(&self, len: usize) -> Result<(), Error> {
        let queued = self.queued_bytes().saturating_add(len);
        if queued > self.max_queued_bytes {
            return Err(Error::QueueFull {
                queued,
                limit: self.max_queued_bytes,
            });
        }
        Ok(())
    }

    fn push_control(&mut self, opcode: OpCode, data: &[u8]) {
        let mut c = Control {
            opcode,
            len: data.len() as u8,
            data: [0; 125],
        };
        c.data[..data.len()].copy_from_slice(data);
        self.ctrl.push_back(c);
        self.ctrl_bytes += data.len();
    }

    /// Appends the first `head_len` bytes of `head` (a header, or nothing) and
    /// `data` to the payload buffer, taking a buffer from the pool or reclaiming
    /// the written front first.
    #[inline]
    fn push_payload(&mut self, head: &[u8; MAX_HEADER_LEN], head_len: usize, data: &[u8]) {
        if self.payloads.capacity() == 0 {
            self.payloads = pool::take_buf();
        }
        if self.payloads_pos == self.payloads.len() {
            self.payloads.clear();
            self.payloads_pos = 0;
        } else if self.payloads_pos > BATCH && self.payloads_pos * 2 > self.payloads.len() {
            self.payloads.drain(..self.payloads_pos);
            self.payloads_pos = 0;
        }
        // The whole array, then cut: a copy of fixed size is a few moves, where
        // one of a few bytes would be a call.
        let at = self.payloads.len() + head_len;
        self.payloads.reserve(MAX_HEADER_LEN + data.len());
        self.payloads.extend_from_slice(head);
        self.payloads.truncate(at);
        self.payloads.extend_from_slice(data);
    }

    /// Queues a close (`failure`: see [`Item::Close`]).
    fn push_close(&mut self, code: Option<u16>, reason: &[u8], failure: bool) {
        let mut payload = [0u8; 125];
        let mut len = 0;
        if let Some(code) = code {
            payload[..2].copy_from_slice(&code.to_be_bytes());
            payload[2..2 + reason.len()].copy_from_slice(reason);
            len = 2 + reason.len();
        }
        self.push_payload(&[0; MAX_HEADER_LEN], 0, &payload[..len]);
        self.items.push_back(Item::Close {
            code: code.unwrap_or(1005),
            len,
            failure,
        });
        self.close_queued = true;
    }

    /// Drops every data item and the close (not the framed bytes).
    fn drop_items(&mut self) {
        self.items.clear();
        if let Some(z) = self.compressor.take() {
            z.give();
        }
        self.fragmented = 0;
        self.shared.drain(..).for_each(pool::give_shared);
        self.shared_bytes = 0;
        self.payloads.clear();
        self.payloads_pos = 0;
        self.queued_headers = 0;
        pool::release(&mut self.payloads);
    }

    /// Drops the data frames in `out` whose writing has not begun; control frames
    /// among them stay, in order.
    fn drop_unstarted_frames(&mut self) {
        let first = self.marks[self.marks_pos..]
            .iter()
            .position(|m| m.start >= self.out_pos)
            .map_or(self.marks.len(), |i| self.marks_pos + i);
        // Direct frames come last (nothing is framed into `out` after them): cut
        // them at the first frame not started.
        if first < self.marks.len() && !self.direct.is_empty() {
            let cut = self.marks[first].start;
            if cut <= self.out.len() {
                self.direct.release();
            } else {
                self.direct.truncate(cut - self.out.len());
            }
        }
        let mut write = self.marks.get(first).map_or(self.out.len(), |m| m.start);
        let mut kept = first;
        for i in first..self.marks.len() {
            let mut mark = self.marks[i];
            if !mark.control {
                if mark.completes {
                    self.in_flight -= 1;
                }
                continue;
            }
            self.out.copy_within(mark.start..mark.end, write);
            mark.end = write + (mark.end - mark.start);
            mark.start = write;
            write = mark.end;
            self.marks[kept] = mark;
            kept += 1;
        }
        self.marks.truncate(kept);
        self.out.truncate(write);
    }

    fn close_framed(&self) -> bool {
        self.marks[self.marks_pos..]
            .iter()
            .any(|m| m.close.is_some())
    }
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("role", &self.role)
            .field("queued_count", &self.queued_count())
            .field("queued_bytes", &self.queued_bytes())
            .field("close_queued", &self.close_queued)
            .field("close_sent", &self.close_sent)
            .field("shut", &self.shut)
            .finish_non_exhaustive()
    }
}
