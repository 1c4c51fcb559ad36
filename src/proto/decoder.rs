//! The receiver's decoding state: frame decoder, message assembly, UTF-8 state,
//! limits and close parsing; what [`Receiver`](super::Receiver) holds while a
//! message is under way (an idle receiver holds none of this).
use std::io::{self, Read};
use std::ops::Range;

use super::deflate::{self, Inflater};
use super::frame::{Header, MAX_HEADER_LEN};
use super::mask::{apply_mask, copy_masked};
use super::utf8::Utf8Validator;
use super::{
    is_valid_close_code, pool, Config, Flow, Handler, OpCode, ProtocolError, RecvStatus, Reply,
    ReplySink, Role, Rsv, SharedMessage, SHARE_MIN,
};

mod inflate;

/// A frame payload part at least this large is read straight into the message
/// buffer rather than through the read buffer.
const DIRECT_MIN: usize = 16 * 1024;
/// The most bytes read straight into the message buffer per call.
const DIRECT_MAX: usize = 4 << 20;
/// [`Receiver::recv_available`](super::Receiver::recv_available) returns after
/// reading input that inflated to more than this (the watcher calls again):
/// one connection sending compressed data cannot keep the loop to itself.
const INFLATE_BUDGET: u64 = 16 << 20;

/// The receiver's decoding state, boxed so that an idle receiver holds none.
pub(super) struct Decoder {
    role: Role,
    config: Config,
    stage: Stage,
    /// Header bytes cut by the end of the input.
    hdr: [u8; MAX_HEADER_LEN],
    hdr_len: u8,
    /// The frame being received.
    frame: Header,
    frame_op: OpCode,
    remaining: u64,
    /// The data message being received (`None` between messages).
    msg_op: Option<OpCode>,
    msg_rsv: Rsv,
    msg_len: u64,
    /// Frames of the data message so far (for `Config::max_fragments`).
    msg_frames: u32,
    msg_buffered: bool,
    check_utf8: bool,
    utf8: Utf8Validator,
    msg_buf: Vec<u8>,
    ctrl_buf: Vec<u8>,
    /// The data message being received is compressed (RSV1, permessage-deflate).
    msg_compressed: bool,
    /// The peer's inflater: held while a compressed message is under way, and
    /// between messages when the peer keeps its context (context takeover).
    inflater: Option<Box<Inflater>>,
    /// Of the current frame's payload in the unprocessed input, how many bytes
    /// are unmasked already (a pause while inflating keeps them).
    unmasked: usize,
    /// Bytes of the flush tail fed after the payload of a message's last frame.
    tail_fed: u8,
    /// The compressed message has had deflate bytes: a message of none (an
    /// empty payload with RSV1) is empty, and feeding it the tail would leave
    /// the inflater inside a stored block.
    msg_deflated: bool,
    /// Inflated bytes of the current frame.
    frame_out: u64,
    /// Inflated bytes since the last `recv_until` began (see `INFLATE_BUDGET`).
    inflated_lately: u64,
    /// The payload of the current message or control frame when it is whole in
    /// the input being processed (not copied).
    whole: Option<Range<usize>>,
    /// Pooled read buffer; `input[pos..end]` is kept, unprocessed input.
    input: Vec<u8>,
    pos: usize,
    end: usize,
    close_received: bool,
    failed: Option<ProtocolError>,
    shut: bool,
    status_code_received: u16,
    /// A message (or a control frame between messages) began arriving since
    /// `take_message_started` was last called.
    started: bool,
}

/// Where the decoder is. A pause can stop between any two handler events: the
/// stage is moved on before each event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Header,
    Payload,
    End,
    Message,
    Over,
}

impl Decoder {
    pub(super) fn new(role: Role, config: &Config) -> Decoder {
        Decoder {
            role,
            config: config.clone(),
            stage: Stage::Header,
            hdr: [0; MAX_HEADER_LEN],
            hdr_len: 0,
            frame: Header::default(),
            frame_op: OpCode::Continuation,
            remaining: 0,
            msg_op: None,
            msg_rsv: Rsv::empty(),
            msg_len: 0,
            msg_frames: 0,
            msg_buffered: true,
            check_utf8: false,
            utf8: Utf8Validator::default(),
            msg_buf: Vec::new(),
            ctrl_buf: Vec::new(),
            msg_compressed: false,
            inflater: None,
            unmasked: 0,
            tail_fed: 0,
            msg_deflated: false,
            frame_out: 0,
            inflated_lately: 0,
            whole: None,
            input: Vec::new(),
            pos: 0,
            end: 0,
            close_received: false,
            failed: None,
            shut: false,
            status_code_received: 1006,
            started: false,
        }
    }

    /// Makes a spare (pristine) decoder fresh for another receiver. Pristine means
    /// between messages with nothing kept and no buffer (see `is_pristine`); the
    /// per-frame and per-message fields are all set by the next frame's header
    /// before they are read, so only the configuration is set here.
    pub(super) fn renew(&mut self, role: Role, config: &Config) {
        debug_assert!(self.is_pristine());
        self.role = role;
        self.config = config.clone();
        self.pos = 0;
        self.end = 0;
        self.started = false;
    }

    /// Between messages with nothing kept, no buffer and nothing ended: a fresh
    /// decoder would do the same from here, so this one may go back to the pool.
    pub(super) fn is_pristine(&self) -> bool {
        self.stage == Stage::Header
            && self.hdr_len == 0
            && self.msg_op.is_none()
            && self.whole.is_none()
            && self.pos >= self.end
            && self.input.capacity() == 0
            && self.msg_buf.capacity() == 0
            && self.ctrl_buf.capacity() == 0
            && self.inflater.is_none()
            && !self.close_received
            && self.failed.is_none()
            && !self.shut
            && self.status_code_received == 1006
    }

    pub(super) fn recv_until<R: Read, H: Handler, S: ReplySink>(
        &mut self,
        r: &mut R,
        h: &mut H,
        s: &mut S,
        short_read_drains: bool,
    ) -> io::Result<RecvStatus> {
        self.inflated_lately = 0;
        if self.has_pending_input() {
            let status = self.resume(h, s);
            if status != RecvStatus::WouldBlock {
                return Ok(status);
            }
        }
        loop {
            if !self.want_read() {
                return Ok(RecvStatus::Closed);
            }
            if self.reads_direct() {
                match self.recv_direct(r, h, s)? {
                    None => continue,
                    Some(status) => return Ok(status),
                }
            }
            if self.input.is_empty() {
                self.input = pool::take_read_buf();
            }
            self.pos = 0;
            self.end = 0;
            match r.read(&mut self.input) {
                Ok(0) => {
                    self.release_input();
                    return Ok(RecvStatus::Eof);
                }
                Ok(n) => {
                    let asked = self.input.len();
                    self.end = n.min(asked);
                    let status = self.run(h, s);
                    let spent = self.inflated_lately > INFLATE_BUDGET;
                    if status != RecvStatus::WouldBlock || short_read_drains && (n < asked || spent)
                    {
                        return Ok(status);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.release_input();
                    if e.kind() == io::ErrorKind::WouldBlock {
                        return Ok(RecvStatus::WouldBlock);
                    }
                    return Err(e);
                }
            }
        }
    }

    pub(super) fn feed<H: Handler, S: ReplySink>(
        &mut self,
        data: &[u8],
        h: &mut H,
        s: &mut S,
    ) -> RecvStatus {
        let mut rest = data;
        if self.has_pending_input() {
            let status = self.resume(h, s);
            if status != RecvStatus::WouldBlock {
                self.keep(rest);
                return status;
            }
        }
        while !rest.is_empty() {
            if !self.want_read() {
                return RecvStatus::Closed;
            }
            if self.input.is_empty() {
                self.input = pool::take_read_buf();
            }
            let n = rest.len().min(self.input.len());
            self.input[..n].copy_from_slice(&rest[..n]);
            self.pos = 0;
            self.end = n;
            rest = &rest[n..];
            let status = self.run(h, s);
            if status != RecvStatus::WouldBlock {
                self.keep(rest);
                return status;
            }
        }
        if self.want_read() {
            RecvStatus::WouldBlock
        } else {
            RecvStatus::Closed
        }
    }

    pub(super) fn resume<H: Handler, S: ReplySink>(&mut self, h: &mut H, s: &mut S) -> RecvStatus {
        if !self.want_read() {
            return RecvStatus::Closed;
        }
        self.run(h, s)
    }

    pub(super) fn has_pending_input(&self) -> bool {
        self.pos < self.end
    }

    pub(super) fn want_read(&self) -> bool {
        !self.shut && !self.close_received && self.failed.is_none()
    }

    pub(super) fn close_received(&self) -> bool {
        self.close_received
    }

    pub(super) fn failed(&self) -> Option<&ProtocolError> {
        self.failed.as_ref()
    }

    pub(super) fn status_code_received(&self) -> u16 {
        self.status_code_received
    }

    /// Whether part of a message has arrived and the rest has not: a frame's
    /// header or payload is cut, or a fragmented data message waits for its
    /// next frame. A message whose last byte has arrived is not in progress,
    /// even while a pause keeps it from the handler.
    pub(super) fn message_in_progress(&self) -> bool {
        if !self.want_read() {
            return false;
        }
        let frame_cut = self.hdr_len > 0 || self.stage == Stage::Payload;
        let data_ended = matches!(self.stage, Stage::End | Stage::Message)
            && !self.frame_op.is_control()
            && self.frame.fin;
        frame_cut || self.msg_op.is_some() && !data_ended
    }

    pub(super) fn take_message_started(&mut self) -> bool {
        std::mem::take(&mut self.started)
    }

    pub(super) fn set_config(&mut self, config: &Config) {
        self.config = config.clone();
    }

    pub(super) fn shutdown_read(&mut self) {
        self.shut = true;
        self.stop();
    }

    /// Runs the decoder over `input[pos..end]`, then gives the buffer back unless
    /// a pause keeps bytes in it.
    fn run<H: Handler, S: ReplySink>(&mut self, h: &mut H, s: &mut S) -> RecvStatus {
        let mut input = std::mem::take(&mut self.input);
        let (pos, end) = (self.pos, self.end);
        let (used, status) = self.process(&mut input[pos..end], h, s);
        self.input = input;
        self.pos = pos + used;
        if status == RecvStatus::Paused && self.pos < self.end {
            return status;
        }
        self.release_input();
        status
    }

    /// Whether the rest of the current frame's payload is read straight into the
    /// message buffer: a large part of a buffered data frame is still to come and
    /// no bytes are kept. This saves a copy through the read buffer and reads in
    /// larger pieces.
    fn reads_direct(&self) -> bool {
        self.stage == Stage::Payload
            && self.msg_buffered
            && !self.msg_compressed
            && !self.frame_op.is_control()
            && self.remaining >= DIRECT_MIN as u64
            && !self.has_pending_input()
    }

    /// Reads payload of the current frame into the message buffer (at most
    /// `DIRECT_MAX` bytes a call), then runs the decoder over what follows the
    /// payload (the frame's end and the message). `None`: go on reading.
    fn recv_direct<R: Read, H: Handler, S: ReplySink>(
        &mut self,
        r: &mut R,
        h: &mut H,
        s: &mut S,
    ) -> io::Result<Option<RecvStatus>> {
        let want = self.remaining.min(DIRECT_MAX as u64) as usize;
        if self.msg_buf.capacity() == 0 {
            self.msg_buf = pool::take_filled();
        }
        // The message so far is `msg_buf[..msg_len]`; bytes after it are stale
        // (initialised) and are read over. Only room never used before is
        // zeroed: a buffer from the pool comes back with its old length, so a
        // steady stream of large messages zeroes nothing (a plain `Read` cannot
        // fill uninitialised memory without it being zeroed first).
        let start = self.msg_len as usize;
        let end = start + want;
        if self.msg_buf.len() < end {
            self.msg_buf.resize(end, 0);
        }
        let mut got = 0;
        let stopped = loop {
            if got == want {
                break None;
            }
            match r.read(&mut self.msg_buf[start + got..end]) {
                Ok(0) => break Some(RecvStatus::Eof),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    break Some(RecvStatus::WouldBlock)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        if got == 0 {
            return Ok(stopped);
        }
        let offset = (self.frame.len - self.remaining) as usize;
        let chunk = &mut self.msg_buf[start..start + got];
        if let Some(mask) = self.frame.mask {
            apply_mask(chunk, mask, offset);
        }
        if self.check_utf8 && !self.utf8.feed(chunk) {
            return Ok(Some(self.fail(ProtocolError::InvalidUtf8, s)));
        }
        self.remaining -= got as u64;
        self.msg_len = self.msg_len.saturating_add(got as u64);
        if self.remaining == 0 {
            self.stage = Stage::End;
        }
        if h.on_frame_chunk(&self.msg_buf[start..start + got]) == Flow::Pause {
            return Ok(Some(RecvStatus::Paused));
        }
        if self.remaining == 0 {
            // The frame's end and the message: no input bytes are needed.
            let (_, status) = self.process(&mut [], h, s);
            if status != RecvStatus::WouldBlock {
                return Ok(Some(status));
            }
        }
        Ok(stopped)
    }

    /// Appends `data` to the kept bytes (feed after a pause).
    fn keep(&mut self, data: &[u8]) {
        if data.is_empty() || !self.want_read() {
            return;
        }
        if self.input.is_empty() {
            self.input = pool::take_read_buf();
            self.pos = 0;
            self.end = 0;
        }
        self.input.copy_within(self.pos..self.end, 0);
        self.end -= self.pos;
        self.pos = 0;
        let need = self.end + data.len();
        if need > self.input.len() {
            self.input.resize(need, 0);
        }
        self.input[self.end..need].copy_from_slice(data);
        self.end = need;
    }

    fn release_input(&mut self) {
        self.pos = 0;
        self.end = 0;
        if !self.input.is_empty() {
            pool::give_read_buf(std::mem::take(&mut self.input));
        }
    }

    /// Reading is over: drops every buffer.
    fn stop(&mut self) {
        self.stage = Stage::Over;
        self.whole = None;
        self.release_input();
        pool::release(&mut self.msg_buf);
        pool::release(&mut self.ctrl_buf);
        if let Some(inflater) = self.inflater.take() {
            inflater.give();
        }
    }

    fn fail<S: ReplySink>(&mut self, err: ProtocolError, s: &mut S) -> RecvStatus {
        s.reply(Reply::Fail(err.clone()));
        self.failed = Some(err);
        self.stop();
        RecvStatus::Closed
    }

    /// The decoder proper: returns how many bytes of `buf` it consumed and why it
    /// stopped. Stops early only on a pause or the end of reading.
    fn process<H: Handler, S: ReplySink>(
        &mut self,
        buf: &mut [u8],
        h: &mut H,
        s: &mut S,
    ) -> (usize, RecvStatus) {
        let mut pos = 0;
        let status = loop {
            let flow = match self.stage {
                Stage::Over => break RecvStatus::Closed,
                Stage::Header => {
                    if pos == buf.len() {
                        break RecvStatus::WouldBlock;
                    }
                    if self.hdr_len == 0 && self.msg_op.is_none() {
                        self.started = true;
                    }
                    match self.read_header(&buf[pos..]) {
                        Ok((used, done)) => {
                            pos += used;
                            if !done {
                                continue;
                            }
                        }
                        Err(e) => break self.fail(e, s),
                    }
                    if let Err(e) = self.begin_frame() {
                        break self.fail(e, s);
                    }
                    self.stage = Stage::Payload;
                    let f = &self.frame;
                    h.on_frame_start(f.fin, f.rsv, self.frame_op, f.len)
                }
                Stage::Payload if self.inflating() => match self.inflate_payload(buf, &mut pos) {
                    Ok(Some(out)) => h.on_frame_chunk(&self.msg_buf[out]),
                    Ok(None) if pos == buf.len() && self.remaining > 0 => {
                        break RecvStatus::WouldBlock
                    }
                    Ok(None) => Flow::Continue,
                    Err(e) => break self.fail(e, s),
                },
                Stage::Payload => {
                    if self.frame.len == 0 {
                        self.stage = Stage::End;
                        h.on_frame_chunk(&[])
                    } else {
                        if pos == buf.len() {
                            break RecvStatus::WouldBlock;
                        }
                        let avail = (buf.len() - pos) as u64;
                        let n = self.remaining.min(avail) as usize;
                        let chunk = pos..pos + n;
                        let stored = match self.take_chunk(&mut buf[chunk.clone()], chunk.clone()) {
                            Ok(stored) => stored,
                            Err(e) => break self.fail(e, s),
                        };
                        pos += n;
                        match stored {
                            Some(at) => h.on_frame_chunk(&self.msg_buf[at]),
                            None => h.on_frame_chunk(&buf[chunk]),
                        }
                    }
                }
                Stage::End => match self.end_frame(buf, h, s) {
                    // The message's end follows at once unless the handler paused.
                    Ok(Flow::Continue) if self.stage == Stage::Message => self.deliver(buf, h),
                    Ok(flow) => flow,
                    Err(status) => break status,
                },
                Stage::Message => self.deliver(buf, h),
            };
            if flow == Flow::Pause {
                break RecvStatus::Paused;
            }
        };
        // A payload left in the input must survive the input (a pause).
        if let Some(r) = self.whole.take() {
            let target = if self.frame_op.is_control() {
                &mut self.ctrl_buf
            } else {
                &mut self.msg_buf
            };
            target.extend_from_slice(&buf[r]);
        }
        (pos, status)
    }

    /// The message (or control frame) just ended goes to the handler. Always
    /// inlined (into `process`'s two calls), as it was before compression
    /// made it a little larger: a call per message costs ~25 instructions.
    #[inline(always)]
    fn deliver<H: Handler>(&mut self, buf: &[u8], h: &mut H) -> Flow {
        self.stage = Stage::Header;
        let whole = self.whole.take();
        if self.frame_op.is_control() {
            let data = match &whole {
                Some(r) => &buf[r.clone()],
                None => &self.ctrl_buf[..],
            };
            let flow = h.on_message(self.frame.rsv, self.frame_op, data, 0);
            pool::release(&mut self.ctrl_buf);
            return flow;
        }
        let op = self.msg_op.take().unwrap_or(OpCode::Binary);
        let mut rsv = self.msg_rsv;
        if self.msg_compressed {
            self.end_inflated_message();
            // The message is delivered inflated: the extension's bit is spent.
            rsv.remove(Rsv::RSV1);
        }
        let data = match (&whole, self.msg_buffered) {
            (Some(r), true) => &buf[r.clone()],
            (None, true)
                if self.msg_len >= SHARE_MIN as u64 && (self.check_utf8 || op != OpCode::Text) =>
            {
                return self.deliver_shared(rsv, op, h)
            }
            (None, true) => &self.msg_buf[..self.msg_len as usize],
            (_, false) => &[],
        };
        let flow = h.on_message(rsv, op, data, 0);
        // Back to the pool after every message, so that an idle receiver holds no
        // buffer whatever it received: the pool keeps buffers up to a bound (a
        // large message's buffer is freed) for the next message to reuse.
        pool::release(&mut self.msg_buf);
        flow
    }

    /// Delivers a large assembled message (text checked as UTF-8) as a
    /// [`SharedMessage`], which the handler may keep (to queue it without a
    /// copy); the buffer goes back to the pool once its last holder lets go.
    #[inline(never)]
    fn deliver_shared<H: Handler>(&mut self, rsv: Rsv, op: OpCode, h: &mut H) -> Flow {
        let mut bytes = std::mem::take(&mut self.msg_buf);
        bytes.truncate(self.msg_len as usize);
        let msg = SharedMessage::checked(op, bytes);
        let flow = h.on_shared_message(rsv, &msg, 0);
        pool::give_shared(msg);
        flow
    }

    /// Decodes a header from the stash plus `buf`: the bytes of `buf` used and
    /// whether the header is complete (then it is in `self.frame`).
    #[inline]
    fn read_header(&mut self, buf: &[u8]) -> Result<(usize, bool), ProtocolError> {
        if self.hdr_len == 0 {
            if let Some((header, len)) = Header::parse(buf)? {
                self.frame = header;
                return Ok((len, true));
            }
        }
        let have = usize::from(self.hdr_len);
        let take = (MAX_HEADER_LEN - have).min(buf.len());
        self.hdr[have..have + take].copy_from_slice(&buf[..take]);
        match Header::parse(&self.hdr[..have + take])? {
            Some((header, len)) => {
                self.frame = header;
                self.hdr_len = 0;
                Ok((len - have, true))
            }
            None => {
                self.hdr_len = (have + take) as u8;
                Ok((take, false))
            }
        }
    }

    /// Checks the new frame's header against the rules and the message state, and
    /// starts a message on a first data frame.
    #[inline]
    fn begin_frame(&mut self) -> Result<(), ProtocolError> {
        let f = self.frame;
        let op = OpCode::from_u8(f.opcode).ok_or(ProtocolError::ReservedOpcode(f.opcode))?;
        let first_data = matches!(op, OpCode::Text | OpCode::Binary);
        // Whether this frame's payload is compressed: RSV1 on a message's first
        // frame, with compression negotiated (RSV1 is then allowed whatever
        // `allowed_rsv` says); the rest of such a message.
        let compressed = if f.rsv.is_empty() {
            !first_data && self.msg_compressed && op == OpCode::Continuation
        } else {
            let negotiated = deflate::negotiated(&self.config.compression).is_some();
            let mut allowed = self.config.allowed_rsv;
            if negotiated {
                allowed |= Rsv::RSV1;
            }
            if !allowed.contains(f.rsv) || !first_data {
                return Err(ProtocolError::ReservedBits);
            }
            negotiated && f.rsv.contains(Rsv::RSV1)
        };
        if op.is_control() {
            if !f.fin {
                return Err(ProtocolError::FragmentedControlFrame);
            }
            if f.len > 125 {
                return Err(ProtocolError::ControlFrameTooLong);
            }
        }
        match (self.role, f.mask.is_some()) {
            (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
            (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        match (op, self.msg_op.is_some()) {
            (OpCode::Continuation, false) => return Err(ProtocolError::UnexpectedContinuation),
            (OpCode::Text | OpCode::Binary, true) => {
                return Err(ProtocolError::ExpectedContinuation)
            }
            _ => {}
        }
        if op == OpCode::Continuation {
            if let Some(limit) = self.config.max_fragments.map(|l| l.max(1)) {
                if self.msg_frames >= limit {
                    return Err(ProtocolError::TooManyFragments { limit });
                }
            }
            self.msg_frames = self.msg_frames.saturating_add(1);
        }
        let buffered = if first_data {
            self.config.buffering
        } else {
            self.msg_buffered
        };
        // Control frames and unbuffered frames are limited alone; a buffered
        // message by what it has gathered plus this frame. A compressed frame
        // is limited by what it inflates to, while it inflates.
        let total = if op.is_control() || !buffered || first_data {
            f.len
        } else {
            self.msg_len.saturating_add(f.len)
        };
        if total > self.config.max_recv_size && !compressed {
            return Err(ProtocolError::MessageTooBig);
        }
        if first_data {
            self.msg_op = Some(op);
            self.msg_rsv = f.rsv;
            self.msg_len = 0;
            self.msg_frames = 1;
            self.msg_buffered = self.config.buffering;
            self.msg_compressed = compressed;
            // RSV1 without compression: a user's own extension owns the payload.
            self.check_utf8 = op == OpCode::Text && (compressed || !f.rsv.contains(Rsv::RSV1));
            self.utf8.reset();
            self.msg_buf.clear();
            if compressed && self.inflater.is_none() {
                self.inflater = Some(self.take_inflater());
            }
        }
        if compressed {
            if first_data {
                self.msg_deflated = false;
            }
            self.msg_deflated |= f.len > 0;
            self.unmasked = 0;
            self.tail_fed = 0;
            self.frame_out = 0;
        }
        if op.is_control() {
            self.ctrl_buf.clear();
        }
        self.frame_op = op;
        self.remaining = f.len;
        Ok(())
    }

    /// Unmasks, checks and stores one chunk of payload (`range` is its place in
    /// the input being processed). `Some(range)`: the unmasked bytes are in
    /// `msg_buf[range]` (the input's stay masked); `None`: in the input.
    #[inline]
    fn take_chunk(
        &mut self,
        chunk: &mut [u8],
        range: Range<usize>,
    ) -> Result<Option<Range<usize>>, ProtocolError> {
        let offset = (self.frame.len - self.remaining) as usize;
        let n = chunk.len() as u64;
        self.remaining -= n;
        if self.remaining == 0 {
            self.stage = Stage::End;
        }
        let whole_frame = offset == 0 && self.remaining == 0;
        if !self.frame_op.is_control()
            && self.msg_buffered
            && !(whole_frame && self.frame.fin && self.msg_len == 0)
        {
            return self.store_chunk(chunk, offset).map(Some);
        }
        if let Some(mask) = self.frame.mask {
            apply_mask(chunk, mask, offset);
        }
        if self.frame_op.is_control() {
            if whole_frame {
                self.whole = Some(range);
            } else {
                if self.ctrl_buf.capacity() == 0 {
                    self.ctrl_buf = pool::take_buf();
                }
                self.ctrl_buf.extend_from_slice(chunk);
            }
            return Ok(None);
        }
        if self.check_utf8 && !self.utf8.feed(chunk) {
            return Err(ProtocolError::InvalidUtf8);
        }
        if self.msg_buffered {
            self.whole = Some(range);
        }
        self.msg_len = self.msg_len.saturating_add(n);
        Ok(None)
    }

    /// Appends a chunk of a buffered data message to the message so far, over
    /// stale bytes (see `recv_direct`), unmasked as it is copied; checks it.
    fn store_chunk(&mut self, chunk: &[u8], offset: usize) -> Result<Range<usize>, ProtocolError> {
        if self.msg_buf.capacity() == 0 {
            self.msg_buf = pool::take_filled();
        }
        let at = self.msg_len as usize;
        let end = at + chunk.len();
        debug_assert!(self.msg_buf.len() >= at);
        if self.msg_buf.len() < end {
            self.msg_buf.truncate(at);
            self.msg_buf.extend_from_slice(chunk);
            if let Some(mask) = self.frame.mask {
                apply_mask(&mut self.msg_buf[at..], mask, offset);
            }
        } else if let Some(mask) = self.frame.mask {
            copy_masked(&mut self.msg_buf[at..end], chunk, mask, offset);
        } else {
            self.msg_buf[at..end].copy_from_slice(chunk);
        }
        if self.check_utf8 && !self.utf8.feed(&self.msg_buf[at..end]) {
            return Err(ProtocolError::InvalidUtf8);
        }
        self.msg_len = end as u64;
        Ok(at..end)
    }

    /// The end of a frame: the UTF-8 end check, the pong, `on_frame_end`, and the
    /// close handshake. `Err` carries the status when reading stops here.
    #[inline]
    fn end_frame<H: Handler, S: ReplySink>(
        &mut self,
        buf: &[u8],
        h: &mut H,
        s: &mut S,
    ) -> Result<Flow, RecvStatus> {
        let op = self.frame_op;
        if !op.is_control() && self.frame.fin && self.check_utf8 && !self.utf8.is_complete() {
            return Err(self.fail(ProtocolError::InvalidUtf8, s));
        }
        let payload = match &self.whole {
            Some(r) if op.is_control() => &buf[r.clone()],
            _ => &self.ctrl_buf[..],
        };
        if op == OpCode::Ping {
            s.reply(Reply::Pong(payload));
        }
        let flow = h.on_frame_end();
        if op == OpCode::Close {
            return Err(self.close(buf, s));
        }
        self.stage = if op.is_control() || self.frame.fin {
            Stage::Message
        } else {
            Stage::Header
        };
        Ok(flow)
    }

    /// A close frame was received whole: validate it and answer.
    fn close<S: ReplySink>(&mut self, buf: &[u8], s: &mut S) -> RecvStatus {
        let whole = self.whole.take();
        let payload = match &whole {
            Some(r) => &buf[r.clone()],
            None => &self.ctrl_buf[..],
        };
        let result = match payload {
            [] => Ok((None, &payload[..0])),
            [_] => Err(ProtocolError::CloseOneByte),
            [hi, lo, reason @ ..] => {
                let code = u16::from_be_bytes([*hi, *lo]);
                if !is_valid_close_code(code) {
                    Err(ProtocolError::InvalidCloseCode(code))
                } else if std::str::from_utf8(reason).is_err() {
                    Err(ProtocolError::InvalidCloseReason)
                } else {
                    Ok((Some(code), reason))
                }
            }
        };
        match result {
            Ok((code, reason)) => {
                self.status_code_received = code.unwrap_or(1005);
                self.close_received = true;
                s.reply(Reply::Close { code, reason });
                self.stop();
                RecvStatus::Closed
            }
            Err(e) => self.fail(e, s),
        }
    }
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("role", &self.role)
            .field("stage", &self.stage)
            .field("message", &self.msg_op)
            .field("pending_input", &(self.end - self.pos))
            .field("close_received", &self.close_received)
            .field("failed", &self.failed)
            .field("shut", &self.shut)
            .finish()
    }
}
