//! The encoder's compressing half (permessage-deflate, RFC 7692): whole
//! messages compressed as they are queued, a fragmented message's pieces as
//! they are framed, and whose compressor each uses.
use super::Encoder;
use crate::proto::deflate::Compressor;
use crate::proto::{pool, Compression, OpCode, Rsv};

impl Encoder {
    /// Sets the compression for messages queued from now on.
    pub(in crate::proto) fn set_compression(&mut self, compression: Option<Compression>) {
        if self.compression != compression {
            self.compression = compression;
            if self.fragmented == 0 {
                if let Some(c) = self.compressor.take() {
                    c.give();
                }
            }
        }
    }

    /// Queues a text or binary message with compression on: compressed when it
    /// is at least the threshold (and, without context takeover, when it
    /// shrinks). Out of line, so that `queue_msg` without compression stays as
    /// small as it was.
    #[cold]
    #[inline(never)]
    pub(super) fn queue_compressible(&mut self, c: Compression, opcode: OpCode, data: &[u8]) {
        if !self.compresses(c, data.len()) {
            self.queue_data(opcode, Rsv::empty(), data);
            return;
        }
        let mut squeezed = pool::take_buf();
        if c.send.no_context_takeover {
            // Nothing kept between messages: a compressor from the pool.
            let mut z = Compressor::take(c.send, c.level);
            z.compress(data, true, &mut squeezed);
            z.give();
        } else {
            self.own_compressor(c).compress(data, true, &mut squeezed);
        }
        // Data that does not compress goes as it is (the fast levels can grow it
        // by a few percent). Not when the context is kept: the compressor has
        // seen the message, so the peer must too.
        if c.send.no_context_takeover && squeezed.len() >= data.len() {
            self.queue_data(opcode, Rsv::empty(), data);
        } else {
            self.queue_data(opcode, Rsv::RSV1, &squeezed);
        }
        pool::release(&mut squeezed);
    }

    /// Frames the next piece of a compressed fragmented message: compressed
    /// with a sync flush (the tail cut after the last one), RSV1 on the first
    /// frame. Without context takeover the compressor goes back to the pool
    /// with the last piece.
    pub(super) fn frame_compressed(
        &mut self,
        c: Compression,
        opcode: OpCode,
        first: bool,
        last: bool,
        data: &[u8],
    ) {
        let mut squeezed = pool::take_buf();
        self.own_compressor(c).compress(data, last, &mut squeezed);
        let rsv = if first { Rsv::RSV1 } else { Rsv::empty() };
        self.frame(opcode, rsv, last, &squeezed);
        pool::release(&mut squeezed);
        if last && c.send.no_context_takeover {
            if let Some(z) = self.compressor.take() {
                z.give();
            }
        }
    }

    /// Whether a whole message of `len` bytes is sent compressed. When we keep
    /// our context, a message queued behind a fragmented message still under
    /// way goes uncompressed: it would be compressed before the rest of that
    /// message but sent after it, and the peer's context follows the order on
    /// the wire (an uncompressed message is not part of it).
    fn compresses(&self, c: Compression, len: usize) -> bool {
        let big_enough = len as u64 >= u64::from(c.threshold);
        let in_order = c.send.no_context_takeover || self.fragmented == 0;
        big_enough && in_order
    }

    /// The connection's compressor: for the fragmented message under way, and
    /// for every message when we keep our context.
    fn own_compressor(&mut self, c: Compression) -> &mut Compressor {
        self.compressor
            .get_or_insert_with(|| Compressor::take(c.send, c.level))
    }
}
