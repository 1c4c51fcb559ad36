//! The connection handle `nwe_ws`: its C callbacks, its creation and release, and the
//! glue every entry point and callback trampoline goes through (`with_ws`, `call_c`).

use std::any::Any;
use std::cell::{Cell, OnceCell, RefCell};
use std::ffi::{c_int, c_uint, c_void, CString};
use std::os::fd::{FromRawFd, OwnedFd};
use std::panic::{self, AssertUnwindSafe};
use std::rc::{Rc, Weak};

use super::{bytes, error_code, injected_panic, nwe_params, panic_text, shielded};
use super::{NWE_EINVAL, NWE_ELOOP, NWE_EPANIC, NWE_ESTATE, NWE_OK};
use crate::ev::{sys, Loop};
use crate::proto::Role;
use crate::websocket::{self, Client, Params, Server, WebSocket};

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
    pub(super) released: Cell<bool>,
    /// The peer's close reason and a NUL, as `nwe_close_reason_received` returned it.
    pub(super) reason: RefCell<Vec<u8>>,
    /// The first panic caught on this connection, for `nwe_last_panic`.
    pub(super) panic: OnceCell<CString>,
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
    pub(super) fn as_c(self: &Rc<Self>) -> *mut nwe_ws {
        Rc::as_ptr(self).cast_mut()
    }
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

/// Calls a C callback of the connection behind `weak`, unless the handle was released:
/// the handle is kept alive for the call (a release inside it frees it afterwards),
/// and a panic of the glue ends the connection with 1011.
pub(super) fn call_c(weak: &Weak<nwe_ws>, call: impl FnOnce(*mut nwe_ws, &nwe_callbacks)) {
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
pub(super) unsafe fn with_ws(
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
pub(super) fn done(result: Result<(), websocket::Error>) -> Result<c_int, c_int> {
    result.map(|()| NWE_OK).map_err(|err| error_code(&err))
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
