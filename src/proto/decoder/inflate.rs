//! The decoder's inflating half (permessage-deflate, RFC 7692): a compressed
//! message's frames go through the inflater instead of straight to the handler,
//! and its size limit and UTF-8 check apply to what comes out.
use std::ops::Range;

use super::{Decoder, Stage};
use crate::proto::deflate::{self, Inflater, TAIL};
use crate::proto::mask::apply_mask;
use crate::proto::{pool, ProtocolError, Window};

/// The most bytes one inflate step writes: an unbuffered compressed frame is
/// reported in chunks of at most this size, and a buffered message's buffer
/// grows by at least this much at a time.
const INFLATE_STEP: usize = 64 * 1024;

/// What one [`Decoder::inflate_step`] did.
struct InflateStep {
    /// Bytes of input used.
    used: usize,
    /// The inflated bytes, in `msg_buf`.
    out: Range<usize>,
    /// The inflater holds no output back (it stopped with room to spare).
    drained: bool,
}

impl Decoder {
    /// Whether the current frame's payload goes through the inflater.
    #[inline]
    pub(super) fn inflating(&self) -> bool {
        self.msg_compressed && !self.frame_op.is_control()
    }

    /// One inflate step of the current compressed frame: unmasks the payload
    /// the input holds, inflates from it (after a message's last frame, from
    /// the flush tail), and moves on to `Stage::End` once the payload is used
    /// up and inflated whole. `Some(range)`: inflated bytes in `msg_buf` to
    /// report (one empty range for a frame that inflates to nothing); `None`:
    /// nothing to report (more input is needed when the input is used up and
    /// payload remains).
    pub(super) fn inflate_payload(
        &mut self,
        buf: &mut [u8],
        pos: &mut usize,
    ) -> Result<Option<Range<usize>>, ProtocolError> {
        let step = if self.remaining > 0 {
            let n = self.remaining.min((buf.len() - *pos) as u64) as usize;
            if n == 0 {
                return Ok(None);
            }
            let input = &mut buf[*pos..*pos + n];
            if let (Some(mask), true) = (self.frame.mask, self.unmasked < n) {
                let offset = (self.frame.len - self.remaining) as usize + self.unmasked;
                apply_mask(&mut input[self.unmasked..], mask, offset);
            }
            self.unmasked = n;
            let step = self.inflate_step(input)?;
            *pos += step.used;
            self.unmasked -= step.used;
            self.remaining -= step.used as u64;
            step
        } else if self.frame.fin && self.msg_deflated && usize::from(self.tail_fed) < TAIL.len() {
            let step = self.inflate_step(&TAIL[usize::from(self.tail_fed)..])?;
            self.tail_fed += step.used as u8;
            step
        } else {
            self.inflate_step(&[])?
        };
        let tail_done =
            !self.frame.fin || !self.msg_deflated || usize::from(self.tail_fed) == TAIL.len();
        let done = self.remaining == 0 && tail_done && step.drained;
        if done {
            self.stage = Stage::End;
        }
        if !step.out.is_empty() || done && self.frame_out == 0 {
            return Ok(Some(step.out));
        }
        Ok(None)
    }

    /// Inflates from `input` into `msg_buf`: after the message so far when
    /// buffering, at its start otherwise. Checks the inflated bytes against
    /// `max_recv_size` (the message's when buffering, the frame's otherwise;
    /// at most one byte past it is ever written) and as UTF-8.
    fn inflate_step(&mut self, input: &[u8]) -> Result<InflateStep, ProtocolError> {
        let max = self.config.max_recv_size;
        let so_far = if self.msg_buffered {
            self.msg_len
        } else {
            self.frame_out
        };
        let room = max
            .saturating_sub(so_far)
            .saturating_add(1)
            .min(INFLATE_STEP as u64) as usize;
        let start = if self.msg_buffered {
            self.msg_len as usize
        } else {
            0
        };
        let end = start + room;
        if self.msg_buf.len() < end {
            if self.msg_buf.capacity() == 0 {
                self.msg_buf = pool::take_buf();
            }
            if self.msg_buf.capacity() < end {
                // Doubling, but never past what the limit can need.
                let most = usize::try_from(max).unwrap_or(usize::MAX).saturating_add(1);
                let cap = (self.msg_buf.capacity() * 2).min(most).max(end);
                self.msg_buf.reserve_exact(cap - self.msg_buf.len());
            }
            self.msg_buf.resize(end, 0);
        }
        // `begin_frame` put one in place for the message; only `stop` takes it
        // away, and nothing is inflated after that.
        let Some(inflater) = self.inflater.as_mut() else {
            return Err(ProtocolError::BadCompressedData);
        };
        let done = inflater
            .inflate(input, &mut self.msg_buf[start..end])
            .map_err(|()| ProtocolError::BadCompressedData)?;
        let made = done.made as u64;
        self.frame_out += made;
        self.msg_len = self.msg_len.saturating_add(made);
        self.inflated_lately += made;
        let inflated = if self.msg_buffered {
            self.msg_len
        } else {
            self.frame_out
        };
        if inflated > max {
            return Err(ProtocolError::MessageTooBig);
        }
        let out = start..start + done.made;
        if self.check_utf8 && !self.utf8.feed(&self.msg_buf[out.clone()]) {
            return Err(ProtocolError::InvalidUtf8);
        }
        Ok(InflateStep {
            used: done.used,
            out,
            drained: done.drained,
        })
    }

    /// An inflater for the peer's window, from the thread's pool.
    #[cold]
    pub(super) fn take_inflater(&self) -> Box<Inflater> {
        let recv =
            deflate::negotiated(&self.config.compression).map_or(Window::DEFAULT, |c| c.recv);
        Inflater::take(recv)
    }

    /// A compressed message was received whole: its bytes are `msg_buf[..msg_len]`
    /// (buffering), and its inflater is kept for the next message when the peer
    /// keeps its context, or else goes back to the pool. Cold and out of line:
    /// `deliver`, which calls it, stays small enough to be inlined.
    #[cold]
    #[inline(never)]
    pub(super) fn end_inflated_message(&mut self) {
        self.msg_compressed = false;
        if self.msg_buffered {
            self.msg_buf.truncate(self.msg_len as usize);
        }
        let keep = deflate::negotiated(&self.config.compression)
            .is_some_and(|c| !c.recv.no_context_takeover);
        if let Some(mut inflater) = self.inflater.take() {
            if !keep {
                inflater.give(); // resets it
            } else {
                if inflater.ended() {
                    inflater.reset();
                }
                self.inflater = Some(inflater);
            }
        }
    }
}
