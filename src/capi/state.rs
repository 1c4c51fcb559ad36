//! A connection's state: whether it is closed, the close codes and reason, why it
//! ended, its fd and its last panic; and `nwe_abort_all` for a whole loop.

use std::ffi::{c_char, c_int};
use std::rc::Rc;

use super::connection::with_ws;
use super::{nwe_ws, shielded, NWE_EINVAL, NWE_ELOOP, NWE_EPANIC};
use crate::ev::{sys, Loop};
use crate::websocket::{self, CloseCause, WebSocket};

/// The connection is open.
pub const NWE_CAUSE_OPEN: c_int = 0;
/// The peer started the closing handshake.
pub const NWE_CAUSE_PEER_CLOSE: c_int = 1;
/// We started it with `nwe_close` and it completed.
pub const NWE_CAUSE_LOCAL_CLOSE: c_int = 2;
/// The peer broke the protocol (we sent 1002, 1007 or 1009).
pub const NWE_CAUSE_PROTOCOL_ERROR: c_int = 3;
/// A producer failed (we sent 1011).
pub const NWE_CAUSE_PRODUCER_ERROR: c_int = 4;
/// Nothing arrived for the idle timeout (we sent 1001).
pub const NWE_CAUSE_IDLE_TIMEOUT: c_int = 5;
/// A message took longer than the message timeout (we sent 1008).
pub const NWE_CAUSE_MESSAGE_TIMEOUT: c_int = 6;
/// The closing made no progress for the close timeout.
pub const NWE_CAUSE_CLOSE_TIMEOUT: c_int = 7;
/// The peer ended the TCP connection without a close frame.
pub const NWE_CAUSE_EOF: c_int = 8;
/// A socket error.
pub const NWE_CAUSE_IO: c_int = 9;
/// The TLS session failed (never from the C API, which has no TLS).
pub const NWE_CAUSE_TLS: c_int = 10;
/// `nwe_abort`, `nwe_abort_all` or `nwe_release` of an open connection.
pub const NWE_CAUSE_ABORTED: c_int = 11;
/// Reading was shut down and the queue drained, or both directions were shut down.
pub const NWE_CAUSE_SHUTDOWN: c_int = 12;

/// 1 if the connection is over or its end is decided, 0 if open.
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
///     assert_eq!(nwe_is_closed(ws), 0);
///     assert_eq!(nwe_abort(ws), NWE_OK);
///     assert_eq!(nwe_is_closed(ws), 1); // decided: the loop finishes it
/// }
/// # unsafe { nwe_release(ws) };
/// # websocket::abort_all(&lp);
/// ```
#[no_mangle]
pub unsafe extern "C" fn nwe_is_closed(ws: *mut nwe_ws) -> c_int {
    // SAFETY: `ws` is NULL or a live handle (our contract).
    unsafe { with_ws(ws, |_, socket| Ok(c_int::from(socket.is_closed()))) }
}

/// The code of the peer's close frame so far: 1006 until one arrives, 1005 if it had
/// none (what `on_close` gets).
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
///     assert_eq!(nwe_status_code_received(ws), 1006); // nothing yet
///     peer.close(Some(1001), "going away").unwrap();
///     while nwe_is_closed(ws) == 0 {
///         lp.run_with(RunFlags::Once);
///     }
///     assert_eq!(nwe_status_code_received(ws), 1001);
/// }
/// # unsafe { nwe_release(ws) };
/// # websocket::abort_all(&lp);
/// ```
#[no_mangle]
pub unsafe extern "C" fn nwe_status_code_received(ws: *mut nwe_ws) -> c_int {
    // SAFETY: `ws` is NULL or a live handle (our contract).
    unsafe { with_ws(ws, |_, socket| Ok(socket.status_code_received().into())) }
}

/// The code of the close frame we sent once written (1005 for one without code), 0
/// before.
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
///     assert_eq!(nwe_status_code_sent(ws), 0);
///     assert_eq!(nwe_close(ws, 4000, null(), 0), NWE_OK);
///     while nwe_is_closed(ws) == 0 {
///         lp.run_with(RunFlags::Once);
///     }
///     assert_eq!(nwe_status_code_sent(ws), 4000);
/// }
/// # unsafe { nwe_release(ws) };
/// # websocket::abort_all(&lp);
/// ```
#[no_mangle]
pub unsafe extern "C" fn nwe_status_code_sent(ws: *mut nwe_ws) -> c_int {
    // SAFETY: `ws` is NULL or a live handle (our contract).
    unsafe {
        with_ws(ws, |_, socket| {
            Ok(socket.status_code_sent().map_or(0, c_int::from))
        })
    }
}

/// The reason of the peer's close frame: 1 and `*reason`/`*len` set (NUL-terminated,
/// valid until the next call of this function on `ws` or its release), or 0 if none.
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
///     let (mut reason, mut len) = (null(), 0);
///     assert_eq!(nwe_close_reason_received(ws, &mut reason, &mut len), 0);
///     peer.close(Some(1001), "going away").unwrap();
///     while nwe_is_closed(ws) == 0 {
///         lp.run_with(RunFlags::Once);
///     }
///     assert_eq!(nwe_close_reason_received(ws, &mut reason, &mut len), 1);
///     assert_eq!(CStr::from_ptr(reason).to_str(), Ok("going away"));
/// }
/// # unsafe { nwe_release(ws) };
/// # websocket::abort_all(&lp);
/// ```
#[no_mangle]
pub unsafe extern "C" fn nwe_close_reason_received(
    ws: *mut nwe_ws,
    reason: *mut *const c_char,
    len: *mut usize,
) -> c_int {
    let body = |handle: &Rc<nwe_ws>, socket: &WebSocket| {
        if reason.is_null() || len.is_null() {
            return Err(NWE_EINVAL);
        }
        let (ptr, n, found) = match socket.close_reason_received() {
            None => (std::ptr::null(), 0, 0),
            Some(text) => {
                let mut cache = handle.reason.borrow_mut();
                cache.clear();
                cache.extend_from_slice(text.as_bytes());
                cache.push(0);
                (cache.as_ptr().cast(), text.len(), 1)
            }
        };
        // SAFETY: `reason` and `len` are not NULL and writable (our contract).
        unsafe {
            reason.write(ptr);
            len.write(n);
        }
        Ok(found)
    };
    // SAFETY: `ws` is NULL or a live handle; `reason` and `len` NULL or writable.
    unsafe { with_ws(ws, body) }
}

/// Why the connection ended or is ending: an `NWE_CAUSE_*` value (`NWE_CAUSE_OPEN`
/// while open).
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
///     assert_eq!(nwe_close_cause(ws), NWE_CAUSE_OPEN);
///     peer.abort().unwrap(); // gone without a close frame
///     while nwe_is_closed(ws) == 0 {
///         lp.run_with(RunFlags::Once);
///     }
///     assert_eq!(nwe_close_cause(ws), NWE_CAUSE_EOF);
/// }
/// # unsafe { nwe_release(ws) };
/// # websocket::abort_all(&lp);
/// ```
#[no_mangle]
pub unsafe extern "C" fn nwe_close_cause(ws: *mut nwe_ws) -> c_int {
    let body = |_: &Rc<nwe_ws>, socket: &WebSocket| {
        Ok(match socket.close_cause() {
            None => NWE_CAUSE_OPEN,
            Some(CloseCause::PeerClose) => NWE_CAUSE_PEER_CLOSE,
            Some(CloseCause::LocalClose) => NWE_CAUSE_LOCAL_CLOSE,
            Some(CloseCause::ProtocolError(_)) => NWE_CAUSE_PROTOCOL_ERROR,
            Some(CloseCause::ProducerError) => NWE_CAUSE_PRODUCER_ERROR,
            Some(CloseCause::IdleTimeout) => NWE_CAUSE_IDLE_TIMEOUT,
            Some(CloseCause::MessageTimeout) => NWE_CAUSE_MESSAGE_TIMEOUT,
            Some(CloseCause::CloseTimeout) => NWE_CAUSE_CLOSE_TIMEOUT,
            Some(CloseCause::Eof) => NWE_CAUSE_EOF,
            Some(CloseCause::Io(_)) => NWE_CAUSE_IO,
            #[cfg(feature = "tls")]
            Some(CloseCause::Tls(_)) => NWE_CAUSE_TLS,
            Some(CloseCause::Aborted) => NWE_CAUSE_ABORTED,
            Some(CloseCause::Shutdown) => NWE_CAUSE_SHUTDOWN,
        })
    };
    // SAFETY: `ws` is NULL or a live handle (our contract).
    unsafe { with_ws(ws, body) }
}

/// The name of an `NWE_CAUSE_*` value (a static string; never NULL).
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
///     let name = CStr::from_ptr(nwe_close_cause_name(nwe_close_cause(ws)));
///     assert_eq!(name.to_str(), Ok("open"));
/// }
/// # unsafe { nwe_release(ws) };
/// # websocket::abort_all(&lp);
/// ```
#[no_mangle]
pub extern "C" fn nwe_close_cause_name(cause: c_int) -> *const c_char {
    let name = match cause {
        NWE_CAUSE_OPEN => "open\0",
        NWE_CAUSE_PEER_CLOSE => "the peer closed the connection\0",
        NWE_CAUSE_LOCAL_CLOSE => "we closed the connection\0",
        NWE_CAUSE_PROTOCOL_ERROR => "the peer broke the protocol\0",
        NWE_CAUSE_PRODUCER_ERROR => "a fragmented-message producer failed: close 1011\0",
        NWE_CAUSE_IDLE_TIMEOUT => "idle timeout: close 1001\0",
        NWE_CAUSE_MESSAGE_TIMEOUT => "message timeout: close 1008\0",
        NWE_CAUSE_CLOSE_TIMEOUT => "the closing made no progress for the close timeout\0",
        NWE_CAUSE_EOF => "the peer ended the connection without a close frame\0",
        NWE_CAUSE_IO => "socket error\0",
        NWE_CAUSE_TLS => "TLS failure\0",
        NWE_CAUSE_ABORTED => "aborted\0",
        NWE_CAUSE_SHUTDOWN => "shut down\0",
        _ => "unknown cause\0",
    };
    name.as_ptr().cast()
}

/// The socket's fd while the connection has it, else `NWE_ECLOSED`. Do not close it.
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
///     assert!(nwe_fd(ws) >= 0); // for getsockopt and the like; do not close it
///     assert_eq!(nwe_abort(ws), NWE_OK);
///     lp.run_with(RunFlags::NoWait); // the loop closes it
///     assert_eq!(nwe_fd(ws), NWE_ECLOSED);
/// }
/// # unsafe { nwe_release(ws) };
/// # websocket::abort_all(&lp);
/// ```
#[no_mangle]
pub unsafe extern "C" fn nwe_fd(ws: *mut nwe_ws) -> c_int {
    let body = |_: &Rc<nwe_ws>, socket: &WebSocket| socket.as_raw_fd().ok_or(super::NWE_ECLOSED);
    // SAFETY: `ws` is NULL or a live handle (our contract).
    unsafe { with_ws(ws, body) }
}

/// The text of the first panic caught on this connection (valid until its release),
/// or NULL.
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
///     assert!(nwe_last_panic(ws).is_null()); // no panic so far
/// }
/// # unsafe { nwe_release(ws) };
/// # websocket::abort_all(&lp);
/// ```
#[no_mangle]
pub unsafe extern "C" fn nwe_last_panic(ws: *mut nwe_ws) -> *const c_char {
    if ws.is_null() {
        return std::ptr::null();
    }
    // SAFETY: a non-NULL `ws` is a live handle (our contract); we only read it.
    let handle = unsafe { &*ws.cast_const() };
    handle
        .panic
        .get()
        .map_or(std::ptr::null(), |text| text.as_ptr())
}

/// Ends every connection on `lp` now (their `on_close` runs inside this call) and
/// returns how many there were; call it before destroying the loop. Negative on error.
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
///     assert_eq!(nwe_abort_all(lp.as_raw()), 2); // ours and the peer; then destroy the loop
///     assert_eq!(nwe_is_closed(ws), 1);
/// }
/// # unsafe { nwe_release(ws) };
/// # websocket::abort_all(&lp);
/// ```
#[no_mangle]
pub unsafe extern "C" fn nwe_abort_all(lp: *mut sys::ev_loop) -> c_int {
    if lp.is_null() {
        return NWE_EINVAL;
    }
    shielded(NWE_EPANIC, || {
        // SAFETY: `lp` is a valid libev loop of this thread (our contract).
        let Ok(event_loop) = (unsafe { Loop::from_raw(lp) }) else {
            return NWE_ELOOP;
        };
        c_int::try_from(websocket::abort_all(&event_loop)).unwrap_or(c_int::MAX)
    })
}
