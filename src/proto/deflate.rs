//! permessage-deflate's codec (RFC 7692): raw deflate streams, one message at a
//! time, and the per-thread pools that lend a compressor or an inflater to a
//! connection only while it has a message in flight (unless it keeps its
//! context between messages).
//!
//! Without the cargo feature `deflate` the codec types are empty (no value of
//! them can exist) and [`negotiated`] says `None`: compression is off.

use super::Compression;

/// What a sync flush ends with (an empty stored block's length fields): the
/// sender removes it from the end of a message, the receiver puts it back.
pub(super) const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The compression in force for a configuration: `None` without the feature.
#[inline]
pub(super) fn negotiated(compression: &Option<Compression>) -> Option<Compression> {
    if cfg!(feature = "deflate") {
        *compression
    } else {
        None
    }
}

#[cfg(feature = "deflate")]
pub(super) use codec::{Compressor, Inflater};

#[cfg(not(feature = "deflate"))]
pub(super) use disabled::{Compressor, Inflater};

#[cfg(feature = "deflate")]
mod codec {
    use std::cell::RefCell;

    use zlib_rs::{Deflate, DeflateConfig, DeflateFlush, Inflate, InflateFlush, Status};

    use super::super::Window;
    use super::TAIL;

    /// Spare compressors and inflaters kept per thread (each kind).
    const MAX_SPARE: usize = 4;

    /// zlib's memory level (the size of its hash table and symbol buffer) for a
    /// window of `bits`: zlib's default 8 at 15 bits, one less per bit below,
    /// as Python's `websockets` pairs 5 with 12. What a connection that keeps
    /// its context holds shrinks with the window it negotiated.
    fn mem_level(bits: u8) -> i32 {
        (i32::from(bits) - 7).clamp(1, 8)
    }

    thread_local! {
        #[allow(clippy::vec_box)]
        static SPARE_COMPRESSORS: RefCell<Vec<Box<Compressor>>> = const { RefCell::new(Vec::new()) };
        #[allow(clippy::vec_box)]
        static SPARE_INFLATERS: RefCell<Vec<Box<Inflater>>> = const { RefCell::new(Vec::new()) };
    }

    /// A compressor for one direction's messages (raw deflate).
    pub(in crate::proto) struct Compressor {
        z: Deflate,
        bits: u8,
        level: u8,
    }

    impl Compressor {
        /// A compressor for `window` at `level`: a spare from the thread's pool,
        /// or a new one.
        pub(in crate::proto) fn take(window: Window, level: u8) -> Box<Compressor> {
            // zlib's smallest raw deflate window is 9 bits; the negotiation never
            // settles on 8 for what we send, but a hand-made `Compression` might.
            let bits = window.max_window_bits.clamp(9, 15);
            let level = level.min(9);
            let spare = SPARE_COMPRESSORS.with(|p| {
                let mut p = p.borrow_mut();
                let at = p.iter().position(|c| c.bits == bits && c.level == level)?;
                Some(p.swap_remove(at))
            });
            spare.unwrap_or_else(|| {
                let config = DeflateConfig {
                    level: i32::from(level),
                    window_bits: -i32::from(bits),
                    mem_level: mem_level(bits),
                    ..DeflateConfig::default()
                };
                Box::new(Compressor {
                    z: Deflate::new_with_config(config),
                    bits,
                    level,
                })
            })
        }

        /// Back to the thread's pool, reset (dropped when the pool is full).
        pub(in crate::proto) fn give(mut self: Box<Compressor>) {
            self.z.reset();
            SPARE_COMPRESSORS.with(|p| {
                let mut p = p.borrow_mut();
                if p.len() < MAX_SPARE {
                    p.push(self);
                }
            });
        }

        /// Compresses `data` with a sync flush and appends the result to `out`;
        /// `last`: the message ends here, and the flush's tail (`TAIL`) is left
        /// out, as RFC 7692 section 7.2.1 says.
        pub(in crate::proto) fn compress(&mut self, data: &[u8], last: bool, out: &mut Vec<u8>) {
            let start = out.len();
            // Deflate's worst case is a few bytes per 16 KiB stored block, plus the
            // flush; more room is added if it is ever short.
            let mut room = data.len() + data.len() / 1024 + 64;
            let mut input = data;
            loop {
                let at = out.len();
                out.resize(at + room, 0);
                let before_in = self.z.total_in();
                let before_out = self.z.total_out();
                let status = self
                    .z
                    .compress(input, &mut out[at..], DeflateFlush::SyncFlush);
                let used = (self.z.total_in() - before_in) as usize;
                let made = (self.z.total_out() - before_out) as usize;
                out.truncate(at + made);
                input = &input[used..];
                // A stream error cannot happen with a valid stream and buffers;
                // `BufError` is "no progress possible", which with room and the
                // flush done means done.
                let done = input.is_empty() && made < room;
                if done || !matches!(status, Ok(Status::Ok)) {
                    break;
                }
                room = room.max(4096);
            }
            if !last {
                return;
            }
            if out.len() >= start + TAIL.len() && out.ends_with(&TAIL) {
                out.truncate(out.len() - TAIL.len());
            } else {
                // Nothing new since the last flush (an empty message, or an
                // empty last piece, with the context kept): zlib writes nothing
                // for a repeated flush. The message must still end in an empty
                // stored block for the peer's tail to complete: its first byte
                // (BFINAL 0, BTYPE 00, padding; the output is byte-aligned
                // after the flush), the rest being the tail left out.
                out.push(0x00);
            }
        }
    }

    /// What one [`Inflater::inflate`] call did.
    #[derive(Clone, Copy, Debug)]
    pub(in crate::proto) struct Inflated {
        /// Bytes of input used.
        pub used: usize,
        /// Bytes written at the start of the output.
        pub made: usize,
        /// Nothing more is pending inside the inflater for the input given so
        /// far: it stopped with room left in the output.
        pub drained: bool,
    }

    /// An inflater for the peer's messages (raw deflate).
    pub(in crate::proto) struct Inflater {
        z: Inflate,
        bits: u8,
        /// The peer's stream ended (a final block): the rest of the message is
        /// ignored and the inflater must be reset before the next one.
        ended: bool,
    }

    impl Inflater {
        /// An inflater for the peer's `window`: a spare from the thread's pool,
        /// or a new one.
        pub(in crate::proto) fn take(window: Window) -> Box<Inflater> {
            // zlib compressors turn a window of 8 bits into 9: inflate with 9.
            let bits = window.max_window_bits.clamp(9, 15);
            let spare = SPARE_INFLATERS.with(|p| {
                let mut p = p.borrow_mut();
                let at = p.iter().position(|i| i.bits == bits)?;
                Some(p.swap_remove(at))
            });
            spare.unwrap_or_else(|| {
                Box::new(Inflater {
                    z: Inflate::new(false, bits),
                    bits,
                    ended: false,
                })
            })
        }

        /// Back to the thread's pool, reset (dropped when the pool is full).
        pub(in crate::proto) fn give(mut self: Box<Inflater>) {
            self.reset();
            SPARE_INFLATERS.with(|p| {
                let mut p = p.borrow_mut();
                if p.len() < MAX_SPARE {
                    p.push(self);
                }
            });
        }

        /// Forgets the messages inflated so far.
        pub(in crate::proto) fn reset(&mut self) {
            self.z.reset(false);
            self.ended = false;
        }

        /// Whether the peer's stream ended inside the last message (a final
        /// block): the next message needs a reset inflater.
        pub(in crate::proto) fn ended(&self) -> bool {
            self.ended
        }

        /// Inflates from `input` into `out` (which must not be empty); `Err` for
        /// a corrupt stream. After the stream's end the rest of the input is
        /// used up and ignored.
        pub(in crate::proto) fn inflate(
            &mut self,
            input: &[u8],
            out: &mut [u8],
        ) -> Result<Inflated, ()> {
            debug_assert!(!out.is_empty());
            if self.ended {
                return Ok(Inflated {
                    used: input.len(),
                    made: 0,
                    drained: true,
                });
            }
            let before_in = self.z.total_in();
            let before_out = self.z.total_out();
            let status = self.z.decompress(input, out, InflateFlush::SyncFlush);
            let used = (self.z.total_in() - before_in) as usize;
            let made = (self.z.total_out() - before_out) as usize;
            match status {
                Ok(Status::StreamEnd) => {
                    self.ended = true;
                    Ok(Inflated {
                        used: input.len(),
                        made,
                        drained: true,
                    })
                }
                Ok(Status::Ok | Status::BufError) => Ok(Inflated {
                    used,
                    made,
                    drained: made < out.len(),
                }),
                Err(_) => Err(()),
            }
        }
    }
}

#[cfg(not(feature = "deflate"))]
#[allow(clippy::boxed_local)]
mod disabled {
    //! Without the codec: empty types, so that code holding an
    //! `Option<Box<Inflater>>` compiles and that option is always `None`.
    use super::super::Window;

    pub(in crate::proto) enum Compressor {}
    pub(in crate::proto) enum Inflater {}

    #[derive(Clone, Copy, Debug)]
    pub(in crate::proto) struct Inflated {
        pub used: usize,
        pub made: usize,
        pub drained: bool,
    }

    impl Compressor {
        pub(in crate::proto) fn take(_: Window, _: u8) -> Box<Compressor> {
            unreachable!("compression is never negotiated without the deflate feature")
        }
        pub(in crate::proto) fn give(self: Box<Compressor>) {
            match *self {}
        }
        pub(in crate::proto) fn compress(&mut self, _: &[u8], _: bool, _: &mut Vec<u8>) {
            match *self {}
        }
    }

    impl Inflater {
        pub(in crate::proto) fn take(_: Window) -> Box<Inflater> {
            unreachable!("compression is never negotiated without the deflate feature")
        }
        pub(in crate::proto) fn give(self: Box<Inflater>) {
            match *self {}
        }
        pub(in crate::proto) fn reset(&mut self) {
            match *self {}
        }
        pub(in crate::proto) fn ended(&self) -> bool {
            match *self {}
        }
        pub(in crate::proto) fn inflate(&mut self, _: &[u8], _: &mut [u8]) -> Result<Inflated, ()> {
            match *self {}
        }
    }
}
