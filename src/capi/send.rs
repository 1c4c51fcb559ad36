//! Sending: whole messages, fragmented messages from a C producer, waiting for the
//! send queue to drain, and the queue's counts.

use std::cell::Cell;
use std::ffi::{c_int, c_uint, c_void};
use std::rc::{Rc, Weak};

use super::connection::{call_c, done, with_ws};
use super::{bytes, error_code, nwe_ws, NWE_EINVAL, NWE_EOPCODE, NWE_OK};
use crate::proto::{Fragment, OpCode};
use crate::websocket::{Waited, WebSocket};

/// A producer: `produce(ws, user, buf, cap, &len)` writes up to `cap` bytes to `buf`,
/// sets `len` and returns an `NWE_FRAGMENT_*` value.
pub type nwe_produce_fn =
    unsafe extern "C" fn(*mut nwe_ws, *mut c_void, *mut u8, usize, *mut usize) -> c_int;
/// `done(user)`: the library is done with a producer's `user`.
pub type nwe_done_fn = unsafe extern "C" fn(*mut c_void);
/// `waited(ws, user, closed, unsent)`: the answer to `nwe_wait`.
pub type nwe_wait_fn = unsafe extern "C" fn(*mut nwe_ws, *mut c_void, c_int, usize);

/// A producer's answer: a piece of data (more to come).
pub const NWE_FRAGMENT_DATA: c_int = 0;
/// A producer's answer: the last piece (may be empty).
pub const NWE_FRAGMENT_EOF: c_int = 1;
/// A producer's answer: nothing ready; not asked again until `nwe_resume_fragmented`.
pub const NWE_FRAGMENT_PAUSE: c_int = 2;
/// A producer's answer: give up (the peer gets close 1011). Any other value too.
pub const NWE_FRAGMENT_ERROR: c_int = -1;

/// Queues one message (`NWE_OP_TEXT`, `_BINARY`, `_PING` or `_PONG`) of `len` bytes.
///
/// ```
/// # use net_websocket_ev::capi::*;
/// # use net_websocket_ev::{ev::{Loop, RunFlags}, websocket, Client, Params};
/// # use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
/// # use std::os::{fd::IntoRawFd, unix::net::UnixStream};
/// # use std::ptr::{null, null_mut};
/// # let lp = Loop::new().unwrap();
/// # let (ours, theirs) = UnixStream::pair().unwrap();
/// # let peer = Client::new(Params::new(theirs).event_loop(&lp)).unwrap();
/// # let mut ws = null_mut();
/// # // SAFETY: a loop of this thread that outlives the connection; the fd is handed over.
/// # let rc = unsafe { nwe_server_new(lp.as_raw(), ours.into_raw_fd(), null(), null(), null(), 0, &mut ws) };
/// # assert_eq!(rc, NWE_OK);
/// // SAFETY: `ws` is a live handle (released once, at the end).
/// unsafe {
///     assert_eq!(nwe_queue_msg(ws, NWE_OP_TEXT, b"hello".as_ptr(), 5), NWE_OK);
///     assert_eq!(nwe_queue_msg(ws, NWE_OP_PING, null(), 0), NWE_OK);
///     assert_eq!(nwe_queue_msg(ws, NWE_OP_TEXT, b"\xff".as_ptr(), 1), NWE_EUTF8);
///     assert_eq!(nwe_queue_msg(ws, NWE_OP_CLOSE, null(), 0), NWE_EOPCODE);
/// }
/// # unsafe { nwe_release(ws) };
/// # websocket::abort_all(&lp);
/// ```
#[no_mangle]
pub unsafe extern "C" fn nwe_queue_msg(
    ws: *mut nwe_ws,
    opcode: c_uint,
    msg: *const u8,
    len: usize,
) -> c_int {
    let body = |_: &Rc<nwe_ws>, socket: &WebSocket| {
        // SAFETY: `msg` holds `len` readable bytes (our contract).
        let msg = unsafe { bytes(msg, len) }?;
        done(socket.queue_msg(msg, opcode_of(opcode)?))
    };
    // SAFETY: `ws` is NULL or a live handle; `msg` holds `len` bytes (our contract).
    unsafe { with_ws(ws, body) }
}

/// Queues a message produced piece by piece by `produce`; `done` (may be NULL) gets
/// `user` once the library no longer needs it. See the header.
///
/// ```
/// # use net_websocket_ev::capi::*;
/// # use net_websocket_ev::{ev::{Loop, RunFlags}, websocket, Client, Params};
/// # use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
/// # use std::os::{fd::IntoRawFd, unix::net::UnixStream};
/// # use std::ptr::{null, null_mut};
/// # let lp = Loop::new().unwrap();
/// # let (ours, theirs) = UnixStream::pair().unwrap();
/// # let peer = Client::new(Params::new(theirs).event_loop(&lp)).unwrap();
/// # let mut ws = null_mut();
/// # // SAFETY: a loop of this thread that outlives the connection; the fd is handed over.
/// # let rc = unsafe { nwe_server_new(lp.as_raw(), ours.into_raw_fd(), null(), null(), null(), 0, &mut ws) };
/// # assert_eq!(rc, NWE_OK);
/// // SAFETY: `ws` is a live handle (released once, at the end).
/// unsafe {
///     // One piece, the last: "data".
///     unsafe extern "C" fn produce(_: *mut nwe_ws, _: *mut c_void, buf: *mut u8, cap: usize, len: *mut usize) -> c_int {
///         assert!(cap >= 4);
///         buf.copy_from_nonoverlapping(b"data".as_ptr(), 4);
///         len.write(4);
///         NWE_FRAGMENT_EOF
///     }
///     assert_eq!(nwe_queue_fragmented(ws, NWE_OP_BINARY, Some(produce), None, null_mut()), NWE_OK);
///     let mut count = 1;
///     while count > 0 {
///         lp.run_with(RunFlags::Once);
///         assert_eq!(nwe_queued_count(ws, &mut count), NWE_OK);
///     }
/// }
/// # unsafe { nwe_release(ws) };
/// # websocket::abort_all(&lp);
/// ```
#[no_mangle]
pub unsafe extern "C" fn nwe_queue_fragmented(
    ws: *mut nwe_ws,
    opcode: c_uint,
    produce: Option<nwe_produce_fn>,
    done_fn: Option<nwe_done_fn>,
    user: *mut c_void,
) -> c_int {
    let body = |handle: &Rc<nwe_ws>, socket: &WebSocket| {
        let produce = produce.ok_or(NWE_EINVAL)?;
        let opcode = opcode_of(opcode)?;
        let owner = Rc::new(CUser {
            user,
            done: done_fn,
            armed: Cell::new(true),
        });
        let state = owner.clone();
        let weak = Rc::downgrade(handle);
        let producer = move |_: &WebSocket, buf: &mut [u8]| {
            let mut piece = Fragment::Error;
            call_c(&weak, |ws, _| {
                let mut len = 0usize;
                // SAFETY: the C producer; `buf` is writable for `buf.len()` bytes
                // and `len` for one `size_t`, for the call.
                let answer =
                    unsafe { produce(ws, state.user, buf.as_mut_ptr(), buf.len(), &mut len) };
                piece = match answer {
                    _ if len > buf.len() => Fragment::Error,
                    NWE_FRAGMENT_DATA => Fragment::Data(len),
                    NWE_FRAGMENT_EOF => Fragment::Eof(len),
                    NWE_FRAGMENT_PAUSE => Fragment::Pause,
                    _ => Fragment::Error,
                };
            });
            piece
        };
        let result = socket.queue_fragmented(producer, opcode);
        if result.is_err() {
            owner.armed.set(false); // the caller keeps `user`
        }
        done(result)
    };
    // SAFETY: `ws` is NULL or a live handle (our contract).
    unsafe { with_ws(ws, body) }
}

/// Asks a producer that returned `NWE_FRAGMENT_PAUSE` for its next piece again.
///
/// ```
/// # use net_websocket_ev::capi::*;
/// # use net_websocket_ev::{ev::{Loop, RunFlags}, websocket, Client, Params};
/// # use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
/// # use std::os::{fd::IntoRawFd, unix::net::UnixStream};
/// # use std::ptr::{null, null_mut};
/// # let lp = Loop::new().unwrap();
/// # let (ours, theirs) = UnixStream::pair().unwrap();
/// # let peer = Client::new(Params::new(theirs).event_loop(&lp)).unwrap();
/// # let mut ws = null_mut();
/// # // SAFETY: a loop of this thread that outlives the connection; the fd is handed over.
/// # let rc = unsafe { nwe_server_new(lp.as_raw(), ours.into_raw_fd(), null(), null(), null(), 0, &mut ws) };
/// # assert_eq!(rc, NWE_OK);
/// // SAFETY: `ws` is a live handle (released once, at the end).
/// unsafe {
///     assert_eq!(nwe_resume_fragmented(ws), NWE_OK); // nothing paused: nothing to do
/// }
/// # unsafe { nwe_release(ws) };
/// # websocket::abort_all(&lp);
/// ```
#[no_mangle]
pub unsafe extern "C" fn nwe_resume_fragmented(ws: *mut nwe_ws) -> c_int {
    // SAFETY: `ws` is NULL or a live handle (our contract).
    unsafe { with_ws(ws, |_, socket| done(socket.resume_fragmented())) }
}

/// Calls `waited` once the send queue is empty (`closed` 0), or once the connection
/// ended with `unsent` messages left (`closed` 1). See the header.
///
/// ```
/// # use net_websocket_ev::capi::*;
/// # use net_websocket_ev::{ev::{Loop, RunFlags}, websocket, Client, Params};
/// # use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
/// # use std::os::{fd::IntoRawFd, unix::net::UnixStream};
/// # use std::ptr::{null, null_mut};
/// # let lp = Loop::new().unwrap();
/// # let (ours, theirs) = UnixStream::pair().unwrap();
/// # let peer = Client::new(Params::new(theirs).event_loop(&lp)).unwrap();
/// # let mut ws = null_mut();
/// # // SAFETY: a loop of this thread that outlives the connection; the fd is handed over.
/// # let rc = unsafe { nwe_server_new(lp.as_raw(), ours.into_raw_fd(), null(), null(), null(), 0, &mut ws) };
/// # assert_eq!(rc, NWE_OK);
/// // SAFETY: `ws` is a live handle (released once, at the end).
/// unsafe {
///     unsafe extern "C" fn waited(_: *mut nwe_ws, user: *mut c_void, closed: c_int, _: usize) {
///         user.cast::<c_int>().write(1 + closed); // 1: drained
///     }
///     let mut seen: c_int = 0;
///     assert_eq!(nwe_queue_msg(ws, NWE_OP_TEXT, b"hi".as_ptr(), 2), NWE_OK);
///     assert_eq!(nwe_wait(ws, Some(waited), (&mut seen as *mut c_int).cast()), NWE_OK);
///     while seen == 0 {
///         lp.run_with(RunFlags::Once);
///     }
///     assert_eq!(seen, 1);
/// }
/// # unsafe { nwe_release(ws) };
/// # websocket::abort_all(&lp);
/// ```
#[no_mangle]
pub unsafe extern "C" fn nwe_wait(
    ws: *mut nwe_ws,
    waited: Option<nwe_wait_fn>,
    user: *mut c_void,
) -> c_int {
    let body = |handle: &Rc<nwe_ws>, socket: &WebSocket| {
        let waited = waited.ok_or(NWE_EINVAL)?;
        let call = Rc::new(WaitCall {
            waited,
            user,
            handle: Rc::downgrade(handle),
            armed: Cell::new(true),
        });
        let fire = call.clone();
        let result = socket.wait(move |_, outcome| fire.fire(outcome, false));
        if result.is_err() {
            call.armed.set(false); // never called: the caller keeps `user`
        }
        done(result)
    };
    // SAFETY: `ws` is NULL or a live handle (our contract).
    unsafe { with_ws(ws, body) }
}

/// Messages queued or partly sent, control frames included, into `*count`.
///
/// ```
/// # use net_websocket_ev::capi::*;
/// # use net_websocket_ev::{ev::{Loop, RunFlags}, websocket, Client, Params};
/// # use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
/// # use std::os::{fd::IntoRawFd, unix::net::UnixStream};
/// # use std::ptr::{null, null_mut};
/// # let lp = Loop::new().unwrap();
/// # let (ours, theirs) = UnixStream::pair().unwrap();
/// # let peer = Client::new(Params::new(theirs).event_loop(&lp)).unwrap();
/// # let mut ws = null_mut();
/// # // SAFETY: a loop of this thread that outlives the connection; the fd is handed over.
/// # let rc = unsafe { nwe_server_new(lp.as_raw(), ours.into_raw_fd(), null(), null(), null(), 0, &mut ws) };
/// # assert_eq!(rc, NWE_OK);
/// // SAFETY: `ws` is a live handle (released once, at the end).
/// unsafe {
///     let mut count = 0;
///     assert_eq!(nwe_stop_write(ws), NWE_OK);
///     assert_eq!(nwe_queue_msg(ws, NWE_OP_TEXT, b"held".as_ptr(), 4), NWE_OK);
///     assert_eq!(nwe_queued_count(ws, &mut count), NWE_OK);
///     assert_eq!(count, 1);
/// }
/// # unsafe { nwe_release(ws) };
/// # websocket::abort_all(&lp);
/// ```
#[no_mangle]
pub unsafe extern "C" fn nwe_queued_count(ws: *mut nwe_ws, count: *mut usize) -> c_int {
    let body = |_: &Rc<nwe_ws>, socket: &WebSocket| {
        if count.is_null() {
            return Err(NWE_EINVAL);
        }
        let n = socket.queued_count().map_err(|e| error_code(&e))?;
        // SAFETY: `count` is not NULL and writable (our contract).
        unsafe { count.write(n) };
        Ok(NWE_OK)
    };
    // SAFETY: `ws` is NULL or a live handle; `count` NULL or writable (our contract).
    unsafe { with_ws(ws, body) }
}

/// Bytes queued and not yet written, into `*bytes`.
///
/// ```
/// # use net_websocket_ev::capi::*;
/// # use net_websocket_ev::{ev::{Loop, RunFlags}, websocket, Client, Params};
/// # use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
/// # use std::os::{fd::IntoRawFd, unix::net::UnixStream};
/// # use std::ptr::{null, null_mut};
/// # let lp = Loop::new().unwrap();
/// # let (ours, theirs) = UnixStream::pair().unwrap();
/// # let peer = Client::new(Params::new(theirs).event_loop(&lp)).unwrap();
/// # let mut ws = null_mut();
/// # // SAFETY: a loop of this thread that outlives the connection; the fd is handed over.
/// # let rc = unsafe { nwe_server_new(lp.as_raw(), ours.into_raw_fd(), null(), null(), null(), 0, &mut ws) };
/// # assert_eq!(rc, NWE_OK);
/// // SAFETY: `ws` is a live handle (released once, at the end).
/// unsafe {
///     let mut bytes = 0;
///     assert_eq!(nwe_stop_write(ws), NWE_OK);
///     assert_eq!(nwe_queue_msg(ws, NWE_OP_BINARY, [0u8; 100].as_ptr(), 100), NWE_OK);
///     assert_eq!(nwe_queued_bytes(ws, &mut bytes), NWE_OK);
///     assert!(bytes >= 100);
/// }
/// # unsafe { nwe_release(ws) };
/// # websocket::abort_all(&lp);
/// ```
#[no_mangle]
pub unsafe extern "C" fn nwe_queued_bytes(ws: *mut nwe_ws, bytes: *mut usize) -> c_int {
    let body = |_: &Rc<nwe_ws>, socket: &WebSocket| {
        if bytes.is_null() {
            return Err(NWE_EINVAL);
        }
        let n = socket.queued_bytes().map_err(|e| error_code(&e))?;
        // SAFETY: `bytes` is not NULL and writable (our contract).
        unsafe { bytes.write(n) };
        Ok(NWE_OK)
    };
    // SAFETY: `ws` is NULL or a live handle; `bytes` NULL or writable (our contract).
    unsafe { with_ws(ws, body) }
}

/// The opcode of a queue call: the protocol's numbers; the engine refuses the ones
/// that cannot be queued.
fn opcode_of(opcode: c_uint) -> Result<OpCode, c_int> {
    u8::try_from(opcode)
        .ok()
        .and_then(OpCode::from_u8)
        .ok_or(NWE_EOPCODE)
}

/// A C `user` pointer the library holds for a producer, handed back to `done` once.
struct CUser {
    user: *mut c_void,
    done: Option<nwe_done_fn>,
    armed: Cell<bool>,
}

impl Drop for CUser {
    fn drop(&mut self) {
        if let (true, Some(done)) = (self.armed.get(), self.done) {
            // SAFETY: the C function given with `user`, called once, here.
            unsafe { done(self.user) }
        }
    }
}

/// A pending `nwe_wait`: called once, by the connection or, if it drops the call
/// unmade, when dropped.
struct WaitCall {
    waited: nwe_wait_fn,
    user: *mut c_void,
    handle: Weak<nwe_ws>,
    armed: Cell<bool>,
}

impl WaitCall {
    /// Calls C, with the handle unless it was released or `anonymous` (the call
    /// dropped unmade: the connection is being torn down, not to be called).
    fn fire(&self, outcome: Waited, anonymous: bool) {
        if !self.armed.replace(false) {
            return;
        }
        let (closed, unsent) = match outcome {
            Waited::Drained => (0, 0),
            Waited::Closed { unsent } => (1, unsent),
        };
        let handle = self
            .handle
            .upgrade()
            .filter(|h| !anonymous && !h.released.get());
        let ptr = handle.as_ref().map_or(std::ptr::null_mut(), |h| h.as_c());
        // SAFETY: the C function given with `user`; `ptr` is NULL or a live handle,
        // kept alive by `handle` for the call.
        unsafe { (self.waited)(ptr, self.user, closed, unsent) }
    }
}

impl Drop for WaitCall {
    fn drop(&mut self) {
        self.fire(Waited::Closed { unsent: 0 }, true);
    }
}
