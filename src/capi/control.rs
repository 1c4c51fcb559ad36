//! Flow control and the end of a connection: starting and stopping each direction,
//! shutting one down for good, aborting, and the closing handshake.

use std::ffi::{c_char, c_int, c_uint};
use std::rc::Rc;

use super::connection::{done, with_ws};
use super::{bytes, nwe_ws};
use crate::websocket::WebSocket;

/// Defines the entry points that take only the handle and call one `WebSocket` method
/// (defined here, first, because a macro must precede its calls).
macro_rules! direction_calls {
    ($($(#[$doc:meta])* $name:ident => $method:ident;)*) => {$(
        $(#[$doc])*
        #[no_mangle]
        pub unsafe extern "C" fn $name(ws: *mut nwe_ws) -> c_int {
            // SAFETY: `ws` is NULL or a live handle (our contract).
            unsafe { with_ws(ws, |_, socket| done(socket.$method())) }
        }
    )*};
}

direction_calls! {
    /// Resumes both directions.
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
    ///     assert_eq!(nwe_stop(ws), NWE_OK);
    ///     assert_eq!(nwe_start(ws), NWE_OK);
    /// }
    /// # unsafe { nwe_release(ws) };
    /// # websocket::abort_all(&lp);
    /// ```
    nwe_start => start;
    /// Pauses both directions; nothing is lost.
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
    ///     assert_eq!(nwe_stop(ws), NWE_OK); // neither reads nor writes until nwe_start
    ///     assert_eq!(nwe_queue_msg(ws, NWE_OP_TEXT, b"kept".as_ptr(), 4), NWE_OK);
    /// }
    /// # unsafe { nwe_release(ws) };
    /// # websocket::abort_all(&lp);
    /// ```
    nwe_stop => stop;
    /// Resumes reading.
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
    ///     assert_eq!(nwe_stop_read(ws), NWE_OK);
    ///     assert_eq!(nwe_start_read(ws), NWE_OK);
    /// }
    /// # unsafe { nwe_release(ws) };
    /// # websocket::abort_all(&lp);
    /// ```
    nwe_start_read => start_read;
    /// Pauses reading (a paused reader notices nothing, not even EOF).
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
    ///     assert_eq!(nwe_stop_read(ws), NWE_OK); // back-pressure
    ///     peer.close(Some(1000), "").unwrap();
    ///     lp.run_with(RunFlags::NoWait);
    ///     assert_eq!(nwe_is_closed(ws), 0); // not even the close is noticed
    /// }
    /// # unsafe { nwe_release(ws) };
    /// # websocket::abort_all(&lp);
    /// ```
    nwe_stop_read => stop_read;
    /// Resumes writing.
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
    ///     assert_eq!(nwe_stop_write(ws), NWE_OK);
    ///     assert_eq!(nwe_start_write(ws), NWE_OK);
    /// }
    /// # unsafe { nwe_release(ws) };
    /// # websocket::abort_all(&lp);
    /// ```
    nwe_start_write => start_write;
    /// Pauses writing, control frames included.
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
    ///     assert_eq!(nwe_queue_msg(ws, NWE_OP_TEXT, b"later".as_ptr(), 5), NWE_OK);
    ///     lp.run_with(RunFlags::NoWait);
    ///     assert_eq!(nwe_queued_count(ws, &mut count), NWE_OK);
    ///     assert_eq!(count, 1);
    /// }
    /// # unsafe { nwe_release(ws) };
    /// # websocket::abort_all(&lp);
    /// ```
    nwe_stop_write => stop_write;
    /// Ends reading for good; the connection ends once the queue has drained.
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
    ///     assert_eq!(nwe_queue_msg(ws, NWE_OP_TEXT, b"bye".as_ptr(), 3), NWE_OK);
    ///     assert_eq!(nwe_shutdown_read(ws), NWE_OK);
    ///     while nwe_is_closed(ws) == 0 {
    ///         lp.run_with(RunFlags::Once);
    ///     }
    ///     assert_eq!(nwe_close_cause(ws), NWE_CAUSE_SHUTDOWN);
    /// }
    /// # unsafe { nwe_release(ws) };
    /// # websocket::abort_all(&lp);
    /// ```
    nwe_shutdown_read => shutdown_read;
    /// Ends writing for good; the queue is dropped; reading goes on.
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
    ///     assert_eq!(nwe_shutdown_write(ws), NWE_OK);
    ///     assert_eq!(nwe_queue_msg(ws, NWE_OP_TEXT, b"x".as_ptr(), 1), NWE_ECLOSED);
    ///     assert_eq!(nwe_is_closed(ws), 0); // reading goes on
    /// }
    /// # unsafe { nwe_release(ws) };
    /// # websocket::abort_all(&lp);
    /// ```
    nwe_shutdown_write => shutdown_write;
    /// Ends the connection without a closing handshake, from the loop a moment later.
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
    ///     assert_eq!(nwe_abort(ws), NWE_OK);
    ///     lp.run_with(RunFlags::NoWait);
    ///     assert_eq!(nwe_close_cause(ws), NWE_CAUSE_ABORTED);
    ///     assert_eq!(nwe_abort(ws), NWE_ECLOSED);
    /// }
    /// # unsafe { nwe_release(ws) };
    /// # websocket::abort_all(&lp);
    /// ```
    nwe_abort => abort;
}

/// Starts the closing handshake with `code` (0: a close without code, then `len` must
/// be 0) and a UTF-8 `reason` of `len` bytes (at most 123; NULL when `len` is 0).
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
///     assert_eq!(nwe_close(ws, 1000, b"bye".as_ptr().cast(), 3), NWE_OK);
///     assert_eq!(nwe_queue_msg(ws, NWE_OP_TEXT, null(), 0), NWE_ECLOSED);
///     while nwe_is_closed(ws) == 0 {
///         lp.run_with(RunFlags::Once);
///     }
///     assert_eq!(nwe_status_code_received(ws), 1000); // the peer echoed it
/// }
/// # unsafe { nwe_release(ws) };
/// # websocket::abort_all(&lp);
/// ```
#[no_mangle]
pub unsafe extern "C" fn nwe_close(
    ws: *mut nwe_ws,
    code: c_uint,
    reason: *const c_char,
    len: usize,
) -> c_int {
    let body = |_: &Rc<nwe_ws>, socket: &WebSocket| {
        // SAFETY: `reason` holds `len` readable bytes (our contract).
        let reason = unsafe { bytes(reason.cast(), len) }?;
        let reason = std::str::from_utf8(reason).map_err(|_| super::NWE_EREASON)?;
        let code = match code {
            0 => None,
            code => Some(u16::try_from(code).map_err(|_| super::NWE_ECLOSE_CODE)?),
        };
        done(socket.close(code, reason))
    };
    // SAFETY: `ws` is NULL or a live handle; `reason` holds `len` bytes (our contract).
    unsafe { with_ws(ws, body) }
}
