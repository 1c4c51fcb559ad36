//! The write side of the [`Encoder`]: framing what is queued into the write buffer
//! (or taking it as it was queued), masking a client's frames, writing, and
//! keeping count of what the written bytes complete.
use std::any::Any;
use std::io::{self, Write};
use std::panic::{self, AssertUnwindSafe};

use super::{Direct, Encoder, Item, Mark, BATCH, DIRECT_TAIL_MAX, FLATTEN_MAX};
use crate::proto::frame::Header;
use crate::proto::mask::apply_mask;
use crate::proto::{pool, OpCode, Role, Rsv, SendStatus};

impl Encoder {
    /// Writes queued frames to `w` until nothing is left, `w` would block, or a
    /// fragmented message needs its next piece. Many frames go out per write and
    /// a partial write resumes exactly. `Interrupted` is retried; other I/O
    /// errors are returned (a write of 0 bytes is `WriteZero`).
    pub(in crate::proto) fn send<W: Write>(&mut self, w: &mut W) -> io::Result<SendStatus> {
        loop {
            if self.shut || self.close_sent {
                return Ok(SendStatus::Idle);
            }
            if self.out_pos < self.framed_len() {
                // Never `write_vectored`: std makes it a `writev`, which raises
                // SIGPIPE on a vanished peer (a `write` on a socket is a `send`
                // with MSG_NOSIGNAL), killing a host that keeps SIGPIPE's default.
                // Small direct bytes join `out` (a copy costs less than a call);
                // large ones follow it in a write of their own.
                if self.out_pos < self.out.len() && self.direct.len() <= FLATTEN_MAX {
                    self.flatten_direct();
                }
                let written = if self.out_pos < self.out.len() {
                    w.write(&self.out[self.out_pos..])
                } else {
                    w.write(&self.direct.bytes()[self.out_pos - self.out.len()..])
                };
                match written {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => self.advance(n),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        return Ok(SendStatus::WouldBlock)
                    }
                    Err(e) => return Err(e),
                }
                continue;
            }
            self.reset_out();
            self.fill();
            if self.framed_len() == 0 {
                pool::release(&mut self.out);
                match self.items.front() {
                    Some(Item::Fragmented { paused: false, .. }) => {
                        return Ok(SendStatus::NeedFragment {
                            max_len: self.fragment_size,
                        })
                    }
                    Some(Item::Fragmented { paused: true, .. }) if self.failure_waits() => {
                        self.fail_past_paused();
                    }
                    _ => return Ok(SendStatus::Idle),
                }
            }
        }
    }

    /// A failure close waits behind a paused fragmented message: the message
    /// and everything after it are abandoned, and the close (as queued) goes
    /// out now.
    #[cold]
    fn fail_past_paused(&mut self) {
        let Some(&Item::Close { code, len, .. }) = self.items.back() else {
            return;
        };
        // The stored payload is the code then the reason, at the end.
        let start = self.payloads.len() - len + len.min(2);
        let mut reason = [0u8; 123];
        let reason_len = self.payloads.len() - start;
        reason[..reason_len].copy_from_slice(&self.payloads[start..]);
        self.drop_items();
        self.close_queued = false;
        let code = (code != 1005).then_some(code);
        self.push_close(code, &reason[..reason_len], true);
    }

    /// Bytes framed so far: `out` and the direct payload after it.
    pub(super) fn framed_len(&self) -> usize {
        self.out.len() + self.direct.len()
    }

    /// Copies a direct payload into `out`, so that frames can follow it there.
    pub(super) fn flatten_direct(&mut self) {
        if !self.direct.is_empty() {
            self.out.extend_from_slice(self.direct.bytes());
            self.direct.release();
        }
    }

    pub(super) fn reset_out(&mut self) {
        self.out.clear();
        self.out_pos = 0;
        self.direct.release();
        self.marks.clear();
        self.marks_pos = 0;
        self.in_flight = 0;
    }

    /// Frames waiting control frames, then data items, into `out` (about
    /// `BATCH` bytes), stopping at a fragmented message or after the close.
    pub(super) fn fill(&mut self) {
        while let Some(c) = self.ctrl.pop_front() {
            self.ctrl_bytes -= usize::from(c.len);
            self.frame(c.opcode, Rsv::empty(), true, &c.data[..usize::from(c.len)]);
            self.complete_last_mark(None);
        }
        while self.out.len() < BATCH {
            let (opcode, len, header, sealed, close) = match self.items.front() {
                Some(Item::Message {
                    opcode,
                    len,
                    header,
                    sealed,
                }) => (*opcode, *len, usize::from(*header), *sealed, None),
                Some(Item::Close { code, len, .. }) => (OpCode::Close, *len, 0, false, Some(*code)),
                Some(&Item::Shared { opcode, len }) => {
                    self.frame_shared(opcode, len);
                    break;
                }
                Some(Item::Fragmented { .. }) | None => break,
            };
            if header > 0 {
                if self.payloads_pos == 0 && self.take_framed() {
                    break;
                }
                // Framed where it was queued, then copied.
                self.items.pop_front();
                let start = self.payloads_pos;
                self.payloads_pos += header + len;
                self.queued_headers -= header;
                if !sealed {
                    let mask = self.next_mask();
                    seal(&mut self.payloads[start..self.payloads_pos], header, mask);
                }
                let out_start = self.out.len();
                if self.out.capacity() == 0 {
                    self.out = pool::take_buf();
                }
                self.out
                    .extend_from_slice(&self.payloads[start..self.payloads_pos]);
                self.push_mark(out_start, self.out.len(), true);
                continue;
            }
            self.items.pop_front();
            let start = self.payloads_pos;
            self.payloads_pos += len;
            let payloads = std::mem::take(&mut self.payloads);
            self.frame(opcode, Rsv::empty(), true, &payloads[start..start + len]);
            self.payloads = payloads;
            self.complete_last_mark(close);
            if close.is_some() {
                break;
            }
        }
        if self.payloads_pos == self.payloads.len() {
            self.payloads_pos = 0;
            pool::release(&mut self.payloads);
        }
    }

    /// Takes the frames queued framed at the head of the queue as the direct
    /// bytes, written from where they were queued instead of being copied into
    /// `out` (see [`Encoder::send`]), when they fill the payload
    /// buffer or leave only a small tail, which is moved to a buffer of its own.
    /// Small messages gain too: the copy goes, and so does a buffer from the pool.
    pub(super) fn take_framed(&mut self) -> bool {
        let mut end = 0;
        let mut count = 0;
        for item in &self.items {
            match item {
                Item::Message { len, header, .. } if *header > 0 => {
                    end += usize::from(*header) + len;
                    count += 1;
                }
                _ => break,
            }
        }
        let tail = self.payloads.len() - end;
        if end == 0 || tail > DIRECT_TAIL_MAX {
            return false;
        }
        let rest = if tail > 0 {
            self.payloads.split_off(end)
        } else {
            Vec::new()
        };
        let mut direct = std::mem::replace(&mut self.payloads, rest);
        self.payloads_pos = 0;
        let base = self.out.len();
        let mut at = 0;
        for _ in 0..count {
            let Some(Item::Message {
                len,
                header,
                sealed,
                ..
            }) = self.items.pop_front()
            else {
                break;
            };
            let header = usize::from(header);
            self.queued_headers -= header;
            if !sealed {
                let mask = self.next_mask();
                seal(&mut direct[at..at + header + len], header, mask);
            }
            self.push_mark(base + at, base + at + header + len, true);
            at += header + len;
        }
        self.direct = Direct::Queued(direct);
        true
    }

    /// Frames the shared message at the head of the queue: its header into `out`,
    /// its payload as the direct bytes (nothing is framed after them).
    fn frame_shared(&mut self, opcode: OpCode, len: usize) {
        self.items.pop_front();
        let Some(payload) = self.shared.pop_front() else {
            return; // one payload per shared item: not reached
        };
        self.shared_bytes -= len;
        if self.out.capacity() == 0 {
            self.out = pool::take_buf();
        }
        let start = self.out.len();
        Header {
            fin: true,
            rsv: Rsv::empty(),
            opcode: opcode.as_u8(),
            mask: None,
            len: len as u64,
        }
        .encode(&mut self.out);
        self.push_mark(start, self.out.len() + len, true);
        self.direct = Direct::Shared(payload, len);
    }

    /// Records a whole data frame (`completes`: the end of a message).
    pub(super) fn push_mark(&mut self, start: usize, end: usize, completes: bool) {
        self.marks.push(Mark {
            start,
            end,
            completes,
            close: None,
            control: false,
        });
        if completes {
            self.in_flight += 1;
        }
    }

    /// A client's mask key for the next frame.
    #[inline]
    pub(super) fn next_mask(&mut self) -> Option<[u8; 4]> {
        match self.role {
            Role::Server => None,
            Role::Client => Some(self.client_mask()),
        }
    }

    /// A client's mask key. A panicking mask source must not leave a frame half
    /// made: that frame gets a random key and the panic is kept, to be raised again
    /// once the queue is whole ([`Encoder::take_mask_panic`]).
    pub(super) fn client_mask(&mut self) -> [u8; 4] {
        let mut key = [0u8; 4];
        let Some(source) = &mut self.mask_source else {
            return self.random_key();
        };
        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(|| source(&mut key))) {
            self.mask_panic.get_or_insert(payload);
            key = self.random_key();
        }
        key
    }

    /// 4 bytes from the thread's CSPRNG.
    pub(super) fn random_key(&mut self) -> [u8; 4] {
        rand::RngCore::next_u32(&mut rand::thread_rng()).to_ne_bytes()
    }

    /// The panic the mask source raised during the last call, if any.
    pub(in crate::proto) fn take_mask_panic(&mut self) -> Option<Box<dyn Any + Send>> {
        self.mask_panic.take()
    }

    /// Appends one frame to `out`, masked for a client.
    pub(super) fn frame(&mut self, opcode: OpCode, rsv: Rsv, fin: bool, payload: &[u8]) {
        let mask = self.next_mask();
        if self.out.capacity() == 0 {
            self.out = pool::take_buf();
        }
        let start = self.out.len();
        let header = Header {
            fin,
            rsv,
            opcode: opcode.as_u8(),
            mask,
            len: payload.len() as u64,
        };
        header.encode(&mut self.out);
        let body = self.out.len();
        self.out.extend_from_slice(payload);
        if let Some(mask) = mask {
            apply_mask(&mut self.out[body..], mask, 0);
        }
        self.marks.push(Mark {
            start,
            end: self.out.len(),
            completes: false,
            close: None,
            control: matches!(opcode, OpCode::Ping | OpCode::Pong),
        });
    }

    /// Marks the frame just framed as the end of a message (or the close).
    pub(super) fn complete_last_mark(&mut self, close: Option<u16>) {
        if let Some(mark) = self.marks.last_mut() {
            mark.completes = true;
            mark.close = close;
            self.in_flight += 1;
        }
    }

    /// `n` more bytes of `out` were written.
    pub(super) fn advance(&mut self, n: usize) {
        self.out_pos += n;
        while let Some(mark) = self.marks.get(self.marks_pos) {
            if mark.end > self.out_pos {
                break;
            }
            if mark.completes {
                self.in_flight -= 1;
            }
            if let Some(code) = mark.close {
                self.close_sent = true;
                self.status_code_sent = code;
                self.drop_items();
                self.ctrl.clear();
                self.ctrl_bytes = 0;
                self.reset_out();
                pool::release(&mut self.out);
                return;
            }
            self.marks_pos += 1;
        }
    }
}

/// Completes a frame stored with room for its header (`frame[..header]`): a
/// client's header gets its mask key and the payload is masked in place; a
/// server's header was written when the message was queued.
fn seal(frame: &mut [u8], header: usize, mask: Option<[u8; 4]>) {
    let Some(mask) = mask else {
        return;
    };
    let (head, payload) = frame.split_at_mut(header);
    head[header - 4..].copy_from_slice(&mask);
    apply_mask(payload, mask, 0);
}
