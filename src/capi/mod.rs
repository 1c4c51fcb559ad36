//! The C API (feature `capi`): WebSocket connections on a C program's libev loop.
//!
//! The header is `src/capi/net_websocket_ev.h`; it states the ownership rules (who
//! frees what and when) and is the reference for C users. Build the libraries with
//! `scripts/capi.sh` (`cargo rustc --release --features capi --lib --crate-type
//! staticlib`, and `cdylib` for a shared library) and link the C program with
//! `-lnet_websocket_ev -lev -lpthread -ldl -lm`.
//!
//! Every entry point and every callback trampoline runs under `catch_unwind`: no Rust
//! panic unwinds into C. A panic on a connection closes it with 1011, is reported
//! by [`nwe_last_panic`] and makes the call return [`NWE_EPANIC`]. A panic inside the
//! library's own loop callbacks (outside any C call) breaks the loop out of `ev_run`
//! and waits in [`nwe_take_panic`].
//!
//! The functions are `unsafe`: their contract (valid pointers, lengths, one thread,
//! a handle used only until it is released) is C's, written in the header; every
//! pointer is checked for NULL and every length for its bound at the boundary.
//!
//! ```
//! use net_websocket_ev::capi::*;
//! use std::ffi::CStr;
//!
//! let text = unsafe { CStr::from_ptr(nwe_strerror(NWE_ECLOSED)) };
//! assert!(text.to_str().unwrap().contains("closed"));
//! let mut params = std::mem::MaybeUninit::<nwe_params>::uninit();
//! unsafe { nwe_params_init(params.as_mut_ptr()) };
//! let params = unsafe { params.assume_init() };
//! assert_eq!(params.close_timeout, 10.0);
//! ```
// The C names (nwe_ws, nwe_params) are the header's; the contract of every unsafe
// function is in the header, once, rather than in 60 `# Safety` sections.
#![allow(non_camel_case_types, clippy::missing_safety_doc)]
#![deny(unsafe_op_in_unsafe_fn)]

mod connection;
mod control;
mod handshake;
mod send;
mod state;

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::ffi::{c_char, c_int, c_uint, CString};
use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use crate::proto::{self, Rsv};
use crate::websocket::{Error, Params, DEFAULT_CLOSE_TIMEOUT};

pub use connection::*;
pub use control::*;
pub use handshake::*;
pub use send::*;
pub use state::*;

/// Success.
pub const NWE_OK: c_int = 0;
/// A bad argument: a NULL pointer, a length over its bound, an unknown opcode or flag.
pub const NWE_EINVAL: c_int = -1;
/// The connection is closed or closing: nothing more can be queued; or it is over.
pub const NWE_ECLOSED: c_int = -2;
/// An opcode that cannot be queued (continuation, close, reserved).
pub const NWE_EOPCODE: c_int = -3;
/// Text that is not UTF-8.
pub const NWE_EUTF8: c_int = -4;
/// A control payload over 125 bytes.
pub const NWE_ECONTROL_TOO_LONG: c_int = -5;
/// A close code that may not be sent.
pub const NWE_ECLOSE_CODE: c_int = -6;
/// A close reason over 123 bytes, not UTF-8, or given without a code.
pub const NWE_EREASON: c_int = -7;
/// The send queue is full (`max_queued_bytes`).
pub const NWE_EQUEUE_FULL: c_int = -8;
/// No fragmented message is pending (`nwe_resume_fragmented`).
pub const NWE_ENOT_PENDING: c_int = -9;
/// A producer wrote more than the buffer it was given.
pub const NWE_EFRAGMENT_TOO_LONG: c_int = -10;
/// Called from inside `genmask`, while the send queue is in use.
pub const NWE_EBUSY: c_int = -11;
/// A socket call failed while setting up the connection.
pub const NWE_EIO: c_int = -12;
/// The loop cannot be used (libev's default loop held by another thread).
pub const NWE_ELOOP: c_int = -13;
/// The opening handshake failed (see the handshake's error text).
pub const NWE_EHANDSHAKE: c_int = -14;
/// The call does not fit the object's state (a handshake not complete yet, or over).
pub const NWE_ESTATE: c_int = -15;
/// The library panicked (a bug): the connection is closing with 1011.
pub const NWE_EPANIC: c_int = -16;

/// The names of the error codes, `NWE_OK` first; the index is `-code`.
const ERROR_TEXTS: [&str; 17] = [
    "success\0",
    "invalid argument (a NULL pointer, a length over its bound, an unknown opcode or flag)\0",
    "the connection is closed or closing: nothing more can be queued\0",
    "this opcode cannot be queued (continuation, close or reserved): use nwe_close for a close\0",
    "text is not valid UTF-8\0",
    "a control frame's payload is longer than 125 bytes\0",
    "this close code may not be sent\0",
    "the close reason is longer than 123 bytes, not UTF-8, or given without a code\0",
    "the send queue is full (max_queued_bytes)\0",
    "no fragmented message is pending\0",
    "a producer wrote more than the buffer it was given\0",
    "busy: the send queue cannot be used from inside genmask\0",
    "a socket call failed while setting up the connection\0",
    "the event loop cannot be used (the default loop is held by another thread)\0",
    "the opening handshake failed\0",
    "the call does not fit the object's state\0",
    "the library panicked (a bug): the connection is closing with 1011\0",
];

/// The text of an error code (a static, NUL-terminated string; never NULL).
///
/// ```
/// use net_websocket_ev::capi::*;
/// use std::ffi::CStr;
/// // SAFETY: nwe_strerror returns a static NUL-terminated string.
/// let text = unsafe { CStr::from_ptr(nwe_strerror(NWE_EUTF8)) };
/// assert_eq!(text.to_str(), Ok("text is not valid UTF-8"));
/// ```
#[no_mangle]
pub extern "C" fn nwe_strerror(code: c_int) -> *const c_char {
    let text = code
        .checked_neg()
        .and_then(|i| usize::try_from(i).ok())
        .and_then(|i| ERROR_TEXTS.get(i))
        .copied()
        .unwrap_or("unknown error code\0");
    text.as_ptr().cast()
}

/// The limits and timeouts of a connection (`Params`); fill it with
/// [`nwe_params_init`], then change what you need.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct nwe_params {
    /// 1: messages are assembled for `on_msg_recv` (default); 0: data comes only
    /// through the frame callbacks.
    pub buffering: c_int,
    /// The largest message (or frame, without buffering) accepted; over it, 1009.
    pub max_recv_size: u64,
    /// Seconds a closing connection may go without progress; 0 for none.
    pub close_timeout: f64,
    /// Seconds without input before close 1001; 0 for none (default).
    pub idle_timeout: f64,
    /// Seconds between pings when idle; 0 for none (default).
    pub keepalive: f64,
    /// Seconds a message may take to arrive before close 1008; 0 for none (default).
    pub message_timeout: f64,
    /// Frames one message may have before close 1009; 0 for no limit (default).
    pub max_fragments: u32,
    /// Bytes the send queue may hold before queueing fails with `NWE_EQUEUE_FULL`.
    pub max_queued_bytes: usize,
    /// The size of the buffer a producer fills (at least 1).
    pub fragment_size: usize,
    /// RSV bits the peer may set (`NWE_RSV1 | NWE_RSV2 | NWE_RSV3`); default none.
    pub allowed_rsv: c_uint,
}

/// Opcode of a continuation frame (frame callbacks only).
pub const NWE_OP_CONTINUATION: c_uint = 0;
/// Opcode of a text message.
pub const NWE_OP_TEXT: c_uint = 1;
/// Opcode of a binary message.
pub const NWE_OP_BINARY: c_uint = 2;
/// Opcode of a close frame (frame callbacks only; send one with `nwe_close`).
pub const NWE_OP_CLOSE: c_uint = 8;
/// Opcode of a ping.
pub const NWE_OP_PING: c_uint = 9;
/// Opcode of a pong.
pub const NWE_OP_PONG: c_uint = 10;

/// RSV1 in `rsv` arguments and `allowed_rsv`.
pub const NWE_RSV1: c_uint = 4;
/// RSV2.
pub const NWE_RSV2: c_uint = 2;
/// RSV3.
pub const NWE_RSV3: c_uint = 1;

/// Fills `params` with the defaults of the Rust `Params`: buffering on, 64 MiB
/// messages, a 10 s close timeout, no idle/keepalive/message timeout, no fragment
/// limit, a 16 MiB send queue, 4 KiB producer buffers, no RSV bits. Ignores NULL.
///
/// ```
/// use net_websocket_ev::capi::*;
/// let mut params = std::mem::MaybeUninit::<nwe_params>::uninit();
/// // SAFETY: `params` is writable; nwe_params_init fills all of it.
/// let mut params = unsafe {
///     nwe_params_init(params.as_mut_ptr());
///     params.assume_init()
/// };
/// assert_eq!((params.buffering, params.max_recv_size, params.close_timeout), (1, 64 << 20, 10.0));
/// params.idle_timeout = 30.0; // then pass &params to nwe_server_new
/// ```
#[no_mangle]
pub unsafe extern "C" fn nwe_params_init(params: *mut nwe_params) {
    if params.is_null() {
        return;
    }
    let config = proto::Config::default();
    let defaults = nwe_params {
        buffering: c_int::from(config.buffering),
        max_recv_size: config.max_recv_size,
        close_timeout: DEFAULT_CLOSE_TIMEOUT.as_secs_f64(),
        idle_timeout: 0.0,
        keepalive: 0.0,
        message_timeout: 0.0,
        max_fragments: config.max_fragments.unwrap_or(0),
        max_queued_bytes: config.max_queued_bytes,
        fragment_size: config.fragment_size,
        allowed_rsv: c_uint::from(config.allowed_rsv.bits()),
    };
    // SAFETY: `params` is not NULL and points to writable memory for one
    // `nwe_params` (the caller's contract); `write` does not read the old value.
    unsafe { params.write(defaults) };
}

impl nwe_params {
    /// Applies the C parameters to `params`, or `NWE_EINVAL` for a value out of range.
    fn apply(&self, mut params: Params) -> Result<Params, c_int> {
        let seconds = |s: f64| -> Result<Option<Duration>, c_int> {
            if s == 0.0 {
                return Ok(None);
            }
            if s.is_nan() || s < 0.0 {
                return Err(NWE_EINVAL);
            }
            Duration::try_from_secs_f64(s)
                .map(Some)
                .map_err(|_| NWE_EINVAL)
        };
        if self.fragment_size == 0 || !matches!(self.buffering, 0 | 1) {
            return Err(NWE_EINVAL);
        }
        let rsv = u8::try_from(self.allowed_rsv)
            .ok()
            .and_then(Rsv::from_bits)
            .ok_or(NWE_EINVAL)?;
        params = params
            .buffering(self.buffering == 1)
            .max_recv_size(self.max_recv_size)
            .close_timeout(seconds(self.close_timeout)?)
            .idle_timeout(seconds(self.idle_timeout)?)
            .keepalive(seconds(self.keepalive)?)
            .message_timeout(seconds(self.message_timeout)?)
            .max_fragments((self.max_fragments != 0).then_some(self.max_fragments))
            .max_queued_bytes(self.max_queued_bytes)
            .fragment_size(self.fragment_size)
            .allowed_rsv(rsv);
        Ok(params)
    }
}

/// The error code of a connection call's failure.
fn error_code(err: &Error) -> c_int {
    match err {
        Error::Closed => NWE_ECLOSED,
        Error::Queue(err) => match err {
            proto::Error::Closed => NWE_ECLOSED,
            proto::Error::InvalidOpcode(_) => NWE_EOPCODE,
            proto::Error::ControlTooLong(_) => NWE_ECONTROL_TOO_LONG,
            proto::Error::InvalidUtf8 => NWE_EUTF8,
            proto::Error::InvalidCloseCode(_) => NWE_ECLOSE_CODE,
            proto::Error::ReasonTooLong(_) | proto::Error::InvalidCloseReason => NWE_EREASON,
            proto::Error::QueueFull { .. } => NWE_EQUEUE_FULL,
            proto::Error::FragmentedNotPending => NWE_ENOT_PENDING,
            proto::Error::FragmentTooLong { .. } => NWE_EFRAGMENT_TOO_LONG,
        },
        Error::Busy => NWE_EBUSY,
        // Only wait_blocking stalls, and the C API has no blocking wait.
        Error::Stalled => NWE_ESTATE,
        Error::Io(_) => NWE_EIO,
        Error::Loop(_) => NWE_ELOOP,
    }
}

thread_local! {
    /// The text of the last panic caught at the boundary outside any connection
    /// (a handshake object's call), for `nwe_take_panic`.
    static BOUNDARY_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The message a panic payload carries.
fn panic_text(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

thread_local! {
    /// Set by [`inject_panic_for_tests`]: the next shielded call panics.
    static INJECTED_PANIC: Cell<bool> = const { Cell::new(false) };
}

/// A test hook, not part of the C API: the next connection entry point or callback
/// trampoline on this thread panics inside its shield, as a bug in the library would,
/// so that tests can watch the panic being handled (close 1011, `NWE_EPANIC`,
/// `nwe_last_panic`).
///
/// ```
/// use net_websocket_ev::capi::*;
/// use net_websocket_ev::{ev::Loop, websocket};
/// use std::os::{fd::IntoRawFd, unix::net::UnixStream};
/// use std::ptr::{null, null_mut};
///
/// let lp = Loop::new().unwrap();
/// let (ours, _peer) = UnixStream::pair().unwrap();
/// let mut ws = null_mut();
/// // SAFETY: a loop of this thread that outlives the connection; the fd is handed over.
/// let rc = unsafe { nwe_server_new(lp.as_raw(), ours.into_raw_fd(), null(), null(), null(), 0, &mut ws) };
/// assert_eq!(rc, NWE_OK);
/// inject_panic_for_tests();
/// // SAFETY: `ws` is a live handle, released once, at the end.
/// unsafe {
///     assert_eq!(nwe_start(ws), NWE_EPANIC);
///     assert!(!nwe_last_panic(ws).is_null());
///     nwe_release(ws);
/// }
/// websocket::abort_all(&lp);
/// ```
#[doc(hidden)]
pub fn inject_panic_for_tests() {
    INJECTED_PANIC.with(|armed| armed.set(true));
}

/// Panics if a test asked for it ([`inject_panic_for_tests`]).
fn injected_panic() {
    if INJECTED_PANIC.with(|armed| armed.replace(false)) {
        panic!("a panic injected by a test");
    }
}

/// Runs `body` so that no panic leaves it: a panic is kept for [`nwe_take_panic`]
/// and `on_panic` is returned. For entry points that have no connection.
fn shielded<R>(on_panic: R, body: impl FnOnce() -> R) -> R {
    match panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => value,
        Err(payload) => {
            let text = panic_text(&*payload);
            BOUNDARY_PANIC.with(|slot| *slot.borrow_mut() = Some(text));
            on_panic
        }
    }
}

/// Takes the last panic the library caught outside a connection call on this thread:
/// a panic of the library's own loop callbacks (after which `ev_run` returned early:
/// libev was told to break out), or of a handshake call (which returned
/// `NWE_EPANIC`). Copies its text, NUL-terminated and cut to `len - 1` bytes, into
/// `buf` (which may be NULL when `len` is 0) and returns 1; returns 0 if there was none.
///
/// ```
/// use net_websocket_ev::capi::*;
/// let mut text = [0; 128];
/// // SAFETY: `text` has room for 128 bytes.
/// assert_eq!(unsafe { nwe_take_panic(text.as_mut_ptr(), text.len()) }, 0); // none
/// ```
#[no_mangle]
pub unsafe extern "C" fn nwe_take_panic(buf: *mut c_char, len: usize) -> c_int {
    let parked = crate::ev::take_panic().map(|payload| panic_text(&*payload));
    let text = parked.or_else(|| BOUNDARY_PANIC.with(|slot| slot.borrow_mut().take()));
    let Some(text) = text else {
        return 0;
    };
    if !buf.is_null() && len > 0 {
        let n = text.len().min(len - 1);
        // SAFETY: `buf` is not NULL and has room for `len` bytes (the caller's
        // contract); we write `n + 1 <= len` of them, from our own string.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), n);
            buf.add(n).write(0);
        }
    }
    1
}

/// Borrows `len` bytes at `ptr` (NULL is allowed when `len` is 0).
///
/// # Safety
/// A non-NULL `ptr` must point to `len` readable bytes that stay unchanged while the
/// slice is used.
unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> Result<&'a [u8], c_int> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() || len > isize::MAX as usize {
        return Err(NWE_EINVAL);
    }
    // SAFETY: `ptr` is not NULL and points to `len` readable bytes (our contract).
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Reads a NUL-terminated UTF-8 string (NULL is `NWE_EINVAL`).
///
/// # Safety
/// A non-NULL `ptr` must point to a NUL-terminated string.
unsafe fn c_str<'a>(ptr: *const c_char) -> Result<&'a str, c_int> {
    if ptr.is_null() {
        return Err(NWE_EINVAL);
    }
    // SAFETY: `ptr` is not NULL and NUL-terminated (our contract).
    let s = unsafe { std::ffi::CStr::from_ptr(ptr) };
    s.to_str().map_err(|_| NWE_EINVAL)
}

/// A string for C that lives as long as its owner; `None` if it holds a NUL byte.
fn owned_c_string(s: &str) -> Option<CString> {
    CString::new(s).ok()
}
