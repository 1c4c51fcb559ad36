//! A small per-thread pool of byte buffers, so that idle connections hold none
//! and busy ones do not allocate per read or per message.
use std::cell::RefCell;
use std::thread::LocalKey;

use super::SharedMessage;

/// The size of a read buffer.
pub(crate) const READ_BUF_SIZE: usize = 64 * 1024;
/// Spare buffers kept per kind and thread.
const MAX_SPARE: usize = 16;
/// Larger general buffers are freed rather than kept.
const MAX_KEPT_CAPACITY: usize = 4 << 20;
/// The most bytes of spare general buffers kept per thread: large messages
/// reuse a buffer instead of growing a fresh one (page faults and copies), and
/// a burst of them leaves at most this much behind.
const MAX_KEPT_TOTAL: usize = 8 << 20;

/// Spare general buffers and the bytes they hold.
struct SpareBufs {
    bufs: Vec<Vec<u8>>,
    bytes: usize,
}

thread_local! {
    static READ_BUFS: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    static BUFS: RefCell<SpareBufs> = const {
        RefCell::new(SpareBufs {
            bufs: Vec::new(),
            bytes: 0,
        })
    };
}

/// A read buffer: `len() == READ_BUF_SIZE`, contents unspecified.
pub(crate) fn take_read_buf() -> Vec<u8> {
    READ_BUFS
        .with(|p| p.borrow_mut().pop())
        .unwrap_or_else(|| vec![0; READ_BUF_SIZE])
}

/// Gives back a read buffer (one of another size is freed).
pub(crate) fn give_read_buf(buf: Vec<u8>) {
    if buf.len() != READ_BUF_SIZE {
        return;
    }
    READ_BUFS.with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < MAX_SPARE {
            p.push(buf);
        }
    });
}

/// An empty buffer, with spare capacity when the pool had one.
pub(crate) fn take_buf() -> Vec<u8> {
    BUFS.with(|spares| {
        let mut spares = spares.borrow_mut();
        let mut buf = spares.bufs.pop().unwrap_or_default();
        spares.bytes -= buf.capacity();
        buf.clear();
        buf
    })
}

/// The spare buffer that held the most when it was given back, as it was: its
/// length is what it held (stale bytes, initialised), which a reader may read
/// over without zeroing them first (see `Decoder::recv_direct`). Empty when the
/// pool had none.
pub(crate) fn take_filled() -> Vec<u8> {
    BUFS.with(|spares| {
        let mut spares = spares.borrow_mut();
        let fullest = (0..spares.bufs.len()).max_by_key(|&i| spares.bufs[i].len());
        let buf = fullest.map_or_else(Vec::new, |i| spares.bufs.swap_remove(i));
        spares.bytes -= buf.capacity();
        buf
    })
}

/// Gives back a general buffer; a very large or capacity-less one is freed. Its
/// bytes are kept as they are (see [`take_filled`]).
pub(crate) fn give_buf(buf: Vec<u8>) {
    if buf.capacity() == 0 || buf.capacity() > MAX_KEPT_CAPACITY {
        return;
    }
    BUFS.with(|spares| {
        let mut spares = spares.borrow_mut();
        let bytes = spares.bytes + buf.capacity();
        if bytes <= MAX_KEPT_TOTAL && spares.bufs.len() < MAX_SPARE {
            spares.bytes = bytes;
            spares.bufs.push(buf);
        }
    });
}

/// Gives back the payload of a [`SharedMessage`] when this was its last holder.
pub(crate) fn give_shared(msg: SharedMessage) {
    if let Some(buf) = msg.into_unique() {
        give_buf(buf);
    }
}

/// Gives `buf` back to the pool, leaving an unallocated Vec in its place.
pub(crate) fn release(buf: &mut Vec<u8>) {
    if buf.capacity() != 0 {
        give_buf(std::mem::take(buf));
    }
}

/// A per-thread stack of spare boxed states of one kind (decoders, encoders): a
/// spare goes back and forth as the allocation it is.
#[allow(clippy::vec_box)]
pub(crate) type Spares<T> = LocalKey<RefCell<Vec<Box<T>>>>;

/// Spare states kept per kind and thread.
const MAX_SPARE_STATES: usize = 64;

/// A spare state, if the thread keeps one.
pub(crate) fn take_spare<T>(spares: &'static Spares<T>) -> Option<Box<T>> {
    spares.with(|s| s.borrow_mut().pop())
}

/// Keeps `spare` for reuse, unless the thread keeps enough already.
pub(crate) fn keep_spare<T>(spares: &'static Spares<T>, spare: Box<T>) {
    spares.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < MAX_SPARE_STATES {
            s.push(spare);
        }
    });
}
