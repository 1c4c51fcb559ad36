//! The connection handle `nwe_ws`: creation, the Perl-shaped calls, the callbacks.

use std::any::Any;
use std::cell::{Cell, OnceCell, RefCell};
use std::ffi::{c_char, c_int, c_uint, c_void, CString};
use std::os::fd::{FromRawFd, OwnedFd};
use std::panic::{self, AssertUnwindSafe};
use std::rc::{Rc, Weak};

use super::{bytes, error_code, injected_panic, nwe_params, panic_text, shielded};
use super::{NWE_EINVAL, NWE_ELOOP, NWE_EOPCODE, NWE_EPANIC, NWE_ESTATE, NWE_OK};
use crate::ev::{sys, Loop};
use crate::proto::{Fragment, OpCode, Role};
use crate::websocket::{self, Client, CloseCause, Params, Server, Waited, WebSocket};

/// `on_msg_recv(ws, user, rsv, opcode, msg, len, status)`.
pub type nwe_msg_recv_fn =
    unsafe extern "C" fn(*mut nwe_ws, *mut c_void, c_uint, c_uint, *const u8, usize, c_uint);
/// `on_frame_recv_start(ws, user, fin, rsv, opcode, len)`.
pub type nwe_frame_start_fn =
    unsafe extern "C" fn(*mut nwe_ws, *mut c_void, c_int, c_uint, c_uint, u64);
/// `on_frame_recv_chunk(ws, user, data, len)`.
pub type nwe_frame_chunk_fn = unsafe extern "C" fn(*mut nwe_ws, *mut c_void, *const u8, usize);
/// `on_frame_recv_end(ws, user)`.
pub type nwe_frame_end_fn = unsafe extern "C" fn(*mut nwe_ws, *mut c_void);
/// `on_close(ws, user, code)`.
pub type nwe_close_fn = unsafe extern "C" fn(*mut nwe_ws, *mut c_void, c_uint);
/// `genmask(ws, user, mask)`: fills the 4 mask bytes of the next frame.
pub type nwe_genmask_fn = unsafe extern "C" fn(*mut nwe_ws, *mut c_void, *mut u8);
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

/// The C callbacks of a connection and the `user` pointer they get. Any of them may
/// be NULL.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct nwe_callbacks {
    /// Passed to every callback; the library never reads it.
    pub user: *mut c_void,
    /// Each complete text, binary, ping or pong message (with buffering).
    pub on_msg_recv: Option<nwe_msg_recv_fn>,
    /// The header of each frame, control and close frames included.
    pub on_frame_recv_start: Option<nwe_frame_start_fn>,
    /// A piece of a frame's payload (an empty frame gives one empty chunk).
    pub on_frame_recv_chunk: Option<nwe_frame_chunk_fn>,
    /// The end of a frame.
    pub on_frame_recv_end: Option<nwe_frame_end_fn>,
    /// Once, after the fd is closed: the code of the peer's close (1005, 1006).
    pub on_close: Option<nwe_close_fn>,
    /// A client's mask bytes; NULL: random (a CSPRNG).
    pub genmask: Option<nwe_genmask_fn>,
}

/// A connection handle (opaque in C): valid from `nwe_server_new`/`nwe_client_new`
/// until `nwe_release`, whether or not the connection has ended.
#[derive(Debug)]
pub struct nwe_ws {
    ws: OnceCell<WebSocket>,
    callbacks: nwe_callbacks,
    released: Cell<bool>,
    /// The peer's close reason and a NUL, as `nwe_close_reason_received` returned it.
    reason: RefCell<Vec<u8>>,
    /// The first panic caught on this connection, for `nwe_last_panic`.
    panic: OnceCell<CString>,
}

impl nwe_ws {
    /// Records a panic and ends the connection: close 1011, or an abort if a close
    /// is not possible; neither may unwind.
    fn panicked(&self, socket: &WebSocket, payload: Box<dyn Any + Send>) {
        let text = panic_text(&*payload).replace('\0', " ");
        let _ = self.panic.set(CString::new(text).unwrap_or_default());
        let closed = panic::catch_unwind(AssertUnwindSafe(|| {
            socket.close(Some(1011), "internal error").is_ok()
        }));
        if !matches!(closed, Ok(true)) {
            let _ = panic::catch_unwind(AssertUnwindSafe(|| socket.abort()));
        }
    }

    /// The pointer C knows this handle by.
    fn as_c(self: &Rc<Self>) -> *mut nwe_ws {
        Rc::as_ptr(self).cast_mut()
    }
}

/// Calls a C callback of the connection behind `weak`, unless the handle was released:
/// the handle is kept alive for the call (a release inside it frees it afterwards),
/// and a panic of the glue ends the connection with 1011.
fn call_c(weak: &Weak<nwe_ws>, call: impl FnOnce(*mut nwe_ws, &nwe_callbacks)) {
    let Some(handle) = weak.upgrade() else {
        return;
    };
    if handle.released.get() {
        return;
    }
    let ptr = handle.as_c();
    let guarded = panic::catch_unwind(AssertUnwindSafe(|| {
        injected_panic();
        call(ptr, &handle.callbacks)
    }));
    if let Err(payload) = guarded {
        if let Some(socket) = handle.ws.get() {
            handle.panicked(socket, payload);
        }
    }
}

/// The body of an entry point on a handle: checks it, keeps it alive for the call
/// (so that a callback may release it), and turns a panic into 1011 and `NWE_EPANIC`.
///
/// # Safety
/// `ws` must be NULL or a handle not yet released.
unsafe fn with_ws(
    ws: *mut nwe_ws,
    body: impl FnOnce(&Rc<nwe_ws>, &WebSocket) -> Result<c_int, c_int>,
) -> c_int {
    if ws.is_null() {
        return NWE_EINVAL;
    }
    // SAFETY: a non-NULL `ws` came from `Rc::into_raw` in `open` and has not been
    // released (our contract), so its count is at least 1; we add the one we own here.
    let handle = unsafe {
        Rc::increment_strong_count(ws.cast_const());
        Rc::from_raw(ws.cast_const())
    };
    let Some(socket) = handle.ws.get().cloned() else {
        return NWE_ESTATE;
    };
    let guarded = panic::catch_unwind(AssertUnwindSafe(|| {
        injected_panic();
        body(&handle, &socket)
    }));
    match guarded {
        Ok(Ok(code) | Err(code)) => code,
        Err(payload) => {
            handle.panicked(&socket, payload);
            NWE_EPANIC
        }
    }
}

/// Maps a connection call's result to `NWE_OK` or its error code.
fn done(result: Result<(), websocket::Error>) -> Result<c_int, c_int> {
    result.map(|()| NWE_OK).map_err(|err| error_code(&err))
}

/// Creates a server connection on `lp` for the connected socket `fd`, whose opening
/// handshake is done. See the header.
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
///     assert!(nwe_fd(ws) >= 0); // the fd is the connection's now
///     assert_eq!(nwe_server_new(null_mut(), -1, null(), null(), null(), 0, &mut null_mut()), NWE_EINVAL);
/// }
/// # unsafe { nwe_release(ws) };
/// # websocket::abort_all(&lp);
/// ```
#[no_mangle]
pub unsafe extern "C" fn nwe_server_new(
    lp: *mut sys::ev_loop,
    fd: c_int,
    params: *const nwe_params,
    callbacks: *const nwe_callbacks,
    initial: *const u8,
    initial_len: usize,
    out: *mut *mut nwe_ws,
) -> c_int {
    // SAFETY: the arguments are passed on unchanged under the same contract.
    unsafe {
        open(
            Role::Server,
            lp,
            fd,
            params,
            callbacks,
            initial,
            initial_len,
            out,
        )
    }
}

/// Creates a client connection (it masks its frames). See the header.
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
///     let (a, _b) = UnixStream::pair().unwrap();
///     let mut client = null_mut();
///     assert_eq!(nwe_client_new(lp.as_raw(), a.into_raw_fd(), null(), null(), null(), 0, &mut client), NWE_OK);
///     assert_eq!(nwe_queue_msg(client, NWE_OP_TEXT, b"masked".as_ptr(), 6), NWE_OK);
///     nwe_release(client); // aborts it: it was open
/// }
/// # unsafe { nwe_release(ws) };
/// # websocket::abort_all(&lp);
/// ```
#[no_mangle]
pub unsafe extern "C" fn nwe_client_new(
    lp: *mut sys::ev_loop,
    fd: c_int,
    params: *const nwe_params,
    callbacks: *const nwe_callbacks,
    initial: *const u8,
    initial_len: usize,
    out: *mut *mut nwe_ws,
) -> c_int {
    // SAFETY: the arguments are passed on unchanged under the same contract.
    unsafe {
        open(
            Role::Client,
            lp,
            fd,
            params,
            callbacks,
            initial,
            initial_len,
            out,
        )
    }
}

/// Both constructors.
///
/// # Safety
/// The header's contract of `nwe_server_new`: `fd` an open socket the caller gives
/// up, `lp` a libev loop of this thread that outlives the connection, the pointers
/// NULL or valid (`initial` for `initial_len` bytes).
#[allow(clippy::too_many_arguments)]
unsafe fn open(
    role: Role,
    lp: *mut sys::ev_loop,
    fd: c_int,
    params: *const nwe_params,
    callbacks: *const nwe_callbacks,
    initial: *const u8,
    initial_len: usize,
    out: *mut *mut nwe_ws,
) -> c_int {
    if fd < 0 {
        return NWE_EINVAL;
    }
    // SAFETY: `fd` is an open socket the caller hands over (our contract): from here
    // on it is ours, and closed on every failure below.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    shielded(NWE_EPANIC, || {
        if out.is_null() {
            return NWE_EINVAL;
        }
        // SAFETY: `out` is not NULL and writable (our contract).
        unsafe { out.write(std::ptr::null_mut()) };
        if lp.is_null() {
            return NWE_EINVAL;
        }
        let mut c_params = std::mem::MaybeUninit::uninit();
        // SAFETY: `nwe_params_init` fills the whole struct.
        let mut c_params = unsafe {
            super::nwe_params_init(c_params.as_mut_ptr());
            c_params.assume_init()
        };
        if !params.is_null() {
            // SAFETY: a non-NULL `params` points to an initialised `nwe_params`.
            c_params = unsafe { params.read() };
        }
        let callbacks = if callbacks.is_null() {
            nwe_callbacks {
                user: std::ptr::null_mut(),
                on_msg_recv: None,
                on_frame_recv_start: None,
                on_frame_recv_chunk: None,
                on_frame_recv_end: None,
                on_close: None,
                genmask: None,
            }
        } else {
            // SAFETY: a non-NULL `callbacks` points to an initialised `nwe_callbacks`.
            unsafe { callbacks.read() }
        };
        // SAFETY: `initial` holds `initial_len` readable bytes (our contract).
        let initial = match unsafe { bytes(initial, initial_len) } {
            Ok(initial) => initial.to_vec(),
            Err(code) => return code,
        };
        // SAFETY: `lp` is a valid libev loop of this thread that outlives every
        // connection on it (the header's contract for the loop).
        let Ok(event_loop) = (unsafe { Loop::from_raw(lp) }) else {
            return NWE_ELOOP;
        };
        let params = match c_params.apply(Params::new(socket)) {
            Ok(params) => params.event_loop(&event_loop).initial_data(initial),
            Err(code) => return code,
        };
        let handle = Rc::new(nwe_ws {
            ws: OnceCell::new(),
            callbacks,
            released: Cell::new(false),
            reason: RefCell::new(Vec::new()),
            panic: OnceCell::new(),
        });
        let params = with_callbacks(params, &handle);
        let opened = match role {
            Role::Server => Server::new(params),
            Role::Client => Client::new(params),
        };
        match opened {
            Ok(ws) => {
                let _ = handle.ws.set(ws);
                // SAFETY: `out` is not NULL and writable (checked above).
                unsafe { out.write(Rc::into_raw(handle).cast_mut()) };
                NWE_OK
            }
            Err(err) => error_code(&err),
        }
    })
}

/// Sets the Rust callbacks that call the C ones that are not NULL.
fn with_callbacks(mut params: Params, handle: &Rc<nwe_ws>) -> Params {
    let cbs = handle.callbacks;
    if let Some(f) = cbs.on_msg_recv {
        let weak = Rc::downgrade(handle);
        params = params.on_msg_recv(move |_, rsv, opcode, msg, status| {
            call_c(&weak, |ws, cbs| {
                let (rsv, op) = (c_uint::from(rsv.bits()), c_uint::from(opcode.as_u8()));
                // SAFETY: a C function pointer given for this callback; `msg` lives
                // for the call.
                unsafe {
                    f(
                        ws,
                        cbs.user,
                        rsv,
                        op,
                        msg.as_ptr(),
                        msg.len(),
                        status.into(),
                    )
                }
            })
        });
    }
    if let Some(f) = cbs.on_frame_recv_start {
        let weak = Rc::downgrade(handle);
        params = params.on_frame_recv_start(move |_, fin, rsv, opcode, len| {
            call_c(&weak, |ws, cbs| {
                let (rsv, op) = (c_uint::from(rsv.bits()), c_uint::from(opcode.as_u8()));
                // SAFETY: a C function pointer given for this callback.
                unsafe { f(ws, cbs.user, c_int::from(fin), rsv, op, len) }
            })
        });
    }
    if let Some(f) = cbs.on_frame_recv_chunk {
        let weak = Rc::downgrade(handle);
        params = params.on_frame_recv_chunk(move |_, data| {
            call_c(&weak, |ws, cbs| {
                // SAFETY: a C function pointer given for this callback; `data`
                // lives for the call.
                unsafe { f(ws, cbs.user, data.as_ptr(), data.len()) }
            })
        });
    }
    if let Some(f) = cbs.on_frame_recv_end {
        let weak = Rc::downgrade(handle);
        params = params.on_frame_recv_end(move |_| {
            call_c(&weak, |ws, cbs| {
                // SAFETY: a C function pointer given for this callback.
                unsafe { f(ws, cbs.user) }
            })
        });
    }
    if let Some(f) = cbs.on_close {
        let weak = Rc::downgrade(handle);
        params = params.on_close(move |_, code| {
            call_c(&weak, |ws, cbs| {
                // SAFETY: a C function pointer given for this callback.
                unsafe { f(ws, cbs.user, code.into()) }
            })
        });
    }
    if let Some(f) = cbs.genmask {
        let weak = LoopThreadOnly(Rc::downgrade(handle));
        params = params.genmask(move |mask| {
            let weak = &weak; // the whole wrapper, not its field, goes into the closure
            call_c(&weak.0, |ws, cbs| {
                // SAFETY: a C function pointer given for this callback; `mask` is 4
                // writable bytes for the call.
                unsafe { f(ws, cbs.user, mask.as_mut_ptr()) }
            })
        });
    }
    params
}

/// A value only ever used on the loop's thread, for the one callback that must be
/// `Send`: `genmask` (the engine under a connection is `Send`, so its mask source is).
struct LoopThreadOnly<T>(T);

// SAFETY: the mask source lives in the sender of a connection, inside a `WebSocket`
// (an `Rc`), which is neither `Send` nor `Sync` and never hands its sender out: it is
// called, and dropped, on the thread that made it only.
unsafe impl<T> Send for LoopThreadOnly<T> {}

/// Releases a handle: the library frees it (after the callback that called this
/// returns, if one did). A connection still open is aborted, and no callback of it
/// runs from now on (not even `on_close`). See the header.
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
///     let (a, _b) = UnixStream::pair().unwrap();
///     let mut other = null_mut();
///     assert_eq!(nwe_server_new(lp.as_raw(), a.into_raw_fd(), null(), null(), null(), 0, &mut other), NWE_OK);
///     nwe_release(other); // open: aborted, no callback of it runs any more
///     nwe_release(null_mut()); // ignored
/// }
/// # unsafe { nwe_release(ws) };
/// # websocket::abort_all(&lp);
/// ```
#[no_mangle]
pub unsafe extern "C" fn nwe_release(ws: *mut nwe_ws) {
    if ws.is_null() {
        return;
    }
    // SAFETY: a non-NULL `ws` came from `Rc::into_raw` and is released once (the
    // header's contract): this takes back the reference the caller held.
    let handle = unsafe { Rc::from_raw(ws.cast_const()) };
    shielded((), move || {
        handle.released.set(true);
        if let Some(socket) = handle.ws.get() {
            if !socket.is_closed() {
                let _ = socket.abort();
            }
        }
        drop(handle);
    })
}

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
