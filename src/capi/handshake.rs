//! The opening handshake for C: thin wrappers over the pure parsers of
//! [`crate::handshake`]. No fd, no loop: the C program reads and writes the bytes.

use std::ffi::{c_char, c_int};

use super::{bytes, c_str, owned_c_string, shielded};
use super::{NWE_EHANDSHAKE, NWE_EINVAL, NWE_EPANIC, NWE_ESTATE, NWE_OK};
use crate::handshake::{
    error_response, response, ClientHandshake, ClientRequest, HandshakeError, Request,
    ServerHandshake, DEFAULT_MAX_HEADER_SIZE,
};

/// Where a handshake is.
#[derive(Debug)]
enum Stage<T> {
    Reading,
    Done(T),
    Failed(HandshakeError),
}

/// A server's opening handshake (opaque in C): feed it the bytes read from the
/// socket until it is complete, then write its response.
#[derive(Debug)]
pub struct nwe_server_handshake {
    parser: ServerHandshake,
    stage: Stage<Request>,
    response: Vec<u8>,
    leftover: Vec<u8>,
    /// Strings handed to C, kept until the object is freed.
    strings: Vec<std::ffi::CString>,
}

/// A client's opening handshake (opaque in C): write its request, feed it the bytes
/// read until the response is complete and valid.
#[derive(Debug)]
pub struct nwe_client_handshake {
    parser: ClientHandshake,
    stage: Stage<Option<String>>,
    request: Vec<u8>,
    host: std::ffi::CString,
    port: u16,
    leftover: Vec<u8>,
    strings: Vec<std::ffi::CString>,
}

/// Maps a feed's result: 0 for more bytes needed, 1 for complete, `NWE_EHANDSHAKE`.
fn feed_result<T, U>(
    stage: &mut Stage<U>,
    result: Result<Option<T>, HandshakeError>,
    done: impl FnOnce(T) -> U,
) -> c_int {
    match result {
        Ok(None) => 0,
        Ok(Some(value)) => {
            *stage = Stage::Done(done(value));
            1
        }
        Err(err) => {
            *stage = Stage::Failed(err);
            NWE_EHANDSHAKE
        }
    }
}

/// Hands `text` to C: a pointer valid until `strings` is dropped (NULL if the text
/// holds a NUL byte).
fn keep(strings: &mut Vec<std::ffi::CString>, text: &str) -> *const c_char {
    match owned_c_string(text) {
        Some(s) => {
            strings.push(s);
            strings.last().map_or(std::ptr::null(), |s| s.as_ptr())
        }
        None => std::ptr::null(),
    }
}

/// Writes a byte range out to C.
///
/// # Safety
/// `data` and `len` must be NULL or writable.
unsafe fn give(data: *mut *const u8, len: *mut usize, bytes: &[u8]) -> c_int {
    if data.is_null() || len.is_null() {
        return NWE_EINVAL;
    }
    // SAFETY: both are writable (checked for NULL; our contract).
    unsafe {
        data.write(bytes.as_ptr());
        len.write(bytes.len());
    }
    NWE_OK
}

/// A new server handshake that accepts a request head of at most `max_header_size`
/// bytes (0: 8192). NULL only if the library failed (see `nwe_take_panic`).
///
/// ```
/// # use net_websocket_ev::capi::*;
/// # use std::ffi::CStr;
/// # use std::ptr::{null, null_mut};
/// let request = b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
///     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
///     Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Version: 13\r\n\r\n";
/// let (mut data, mut len): (*const u8, usize) = (null(), 0);
/// // SAFETY: `hs` is live until freed, once, at the end; the pointers are valid.
/// unsafe {
///     let hs = nwe_server_handshake_new(0);
///     assert_eq!(nwe_server_handshake_feed(hs, request.as_ptr(), request.len()), 1);
///     assert!(!hs.is_null());
///     nwe_server_handshake_free(hs);
/// }
/// ```
#[no_mangle]
pub extern "C" fn nwe_server_handshake_new(max_header_size: usize) -> *mut nwe_server_handshake {
    shielded(std::ptr::null_mut(), || {
        let max = match max_header_size {
            0 => DEFAULT_MAX_HEADER_SIZE,
            n => n,
        };
        Box::into_raw(Box::new(nwe_server_handshake {
            parser: ServerHandshake::new(max),
            stage: Stage::Reading,
            response: Vec::new(),
            leftover: Vec::new(),
            strings: Vec::new(),
        }))
    })
}

/// Gives the server handshake the next `len` bytes read: 0 when it needs more, 1 when
/// the request is complete and valid, `NWE_EHANDSHAKE` when it is not (write
/// `nwe_server_handshake_response` and close), `NWE_ESTATE` once it is over.
///
/// ```
/// # use net_websocket_ev::capi::*;
/// # use std::ffi::CStr;
/// # use std::ptr::{null, null_mut};
/// let request = b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
///     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
///     Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Version: 13\r\n\r\n";
/// let (mut data, mut len): (*const u8, usize) = (null(), 0);
/// // SAFETY: `hs` is live until freed, once, at the end; the pointers are valid.
/// unsafe {
///     let hs = nwe_server_handshake_new(0);
///     assert_eq!(nwe_server_handshake_feed(hs, request.as_ptr(), request.len()), 1);
///     assert_eq!(nwe_server_handshake_feed(hs, b"more".as_ptr(), 4), NWE_ESTATE); // complete already
///     nwe_server_handshake_free(hs);
/// }
/// ```
#[no_mangle]
pub unsafe extern "C" fn nwe_server_handshake_feed(
    hs: *mut nwe_server_handshake,
    data: *const u8,
    len: usize,
) -> c_int {
    // SAFETY: `hs` is NULL or live and `data` holds `len` bytes (our contract).
    let (Some(hs), Ok(data)) = (unsafe { hs.as_mut() }, unsafe { bytes(data, len) }) else {
        return NWE_EINVAL;
    };
    shielded(NWE_EPANIC, || {
        if !matches!(hs.stage, Stage::Reading) {
            return NWE_ESTATE;
        }
        let result = hs.parser.feed(data);
        let code = feed_result(&mut hs.stage, result, |req| req);
        if code == 1 {
            hs.leftover = hs.parser.take_leftover();
        }
        code
    })
}

/// The bytes to write back: the `101 Switching Protocols` response selecting
/// `protocol` (NULL for none; else one the client offered, or `NWE_EINVAL`), or after
/// a failure the HTTP error response. Valid until the next call of this function or
/// the object's free. `NWE_ESTATE` while the request is incomplete.
///
/// ```
/// # use net_websocket_ev::capi::*;
/// # use std::ffi::CStr;
/// # use std::ptr::{null, null_mut};
/// let request = b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
///     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
///     Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Version: 13\r\n\r\n";
/// let (mut data, mut len): (*const u8, usize) = (null(), 0);
/// // SAFETY: `hs` is live until freed, once, at the end; the pointers are valid.
/// unsafe {
///     let hs = nwe_server_handshake_new(0);
///     assert_eq!(nwe_server_handshake_feed(hs, request.as_ptr(), request.len()), 1);
///     assert_eq!(nwe_server_handshake_response(hs, b"chat\0".as_ptr().cast(), &mut data, &mut len), NWE_OK);
///     let response = std::slice::from_raw_parts(data, len);
///     assert!(response.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
///     nwe_server_handshake_free(hs);
/// }
/// ```
#[no_mangle]
pub unsafe extern "C" fn nwe_server_handshake_response(
    hs: *mut nwe_server_handshake,
    protocol: *const c_char,
    data: *mut *const u8,
    len: *mut usize,
) -> c_int {
    // SAFETY: `hs` is NULL or live (our contract).
    let Some(hs) = (unsafe { hs.as_mut() }) else {
        return NWE_EINVAL;
    };
    let protocol = if protocol.is_null() {
        None
    } else {
        // SAFETY: a non-NULL `protocol` is NUL-terminated (our contract).
        match unsafe { c_str(protocol) } {
            Ok(p) => Some(p),
            Err(code) => return code,
        }
    };
    let built = shielded(Err(NWE_EPANIC), || match &hs.stage {
        Stage::Reading => Err(NWE_ESTATE),
        Stage::Failed(err) => Ok(error_response(err)),
        Stage::Done(req) => {
            if protocol.is_some_and(|p| !req.protocols.iter().any(|offered| offered == p)) {
                return Err(NWE_EINVAL);
            }
            Ok(response(req, protocol))
        }
    });
    match built {
        Ok(bytes) => {
            hs.response = bytes;
            // SAFETY: `data` and `len` are NULL or writable (our contract).
            unsafe { give(data, len, &hs.response) }
        }
        Err(code) => code,
    }
}

/// The bytes that came after the request head (the start of the WebSocket stream:
/// pass them to `nwe_server_new`), valid until the object's free.
///
/// ```
/// # use net_websocket_ev::capi::*;
/// # use std::ffi::CStr;
/// # use std::ptr::{null, null_mut};
/// let request = b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
///     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
///     Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Version: 13\r\n\r\n";
/// let (mut data, mut len): (*const u8, usize) = (null(), 0);
/// // SAFETY: `hs` is live until freed, once, at the end; the pointers are valid.
/// unsafe {
///     let hs = nwe_server_handshake_new(0);
///     assert_eq!(nwe_server_handshake_feed(hs, request.as_ptr(), request.len()), 1);
///     assert_eq!(nwe_server_handshake_leftover(hs, &mut data, &mut len), NWE_OK);
///     assert_eq!(len, 0); // no frame came with the request
///     nwe_server_handshake_free(hs);
/// }
/// ```
#[no_mangle]
pub unsafe extern "C" fn nwe_server_handshake_leftover(
    hs: *mut nwe_server_handshake,
    data: *mut *const u8,
    len: *mut usize,
) -> c_int {
    // SAFETY: `hs` is NULL or live (our contract).
    let Some(hs) = (unsafe { hs.as_ref() }) else {
        return NWE_EINVAL;
    };
    if !matches!(hs.stage, Stage::Done(_)) {
        return NWE_ESTATE;
    }
    // SAFETY: `data` and `len` are NULL or writable (our contract).
    unsafe { give(data, len, &hs.leftover) }
}

/// The request's path (`/chat?x=1`), once complete; else NULL. Valid until the free.
///
/// ```
/// # use net_websocket_ev::capi::*;
/// # use std::ffi::CStr;
/// # use std::ptr::{null, null_mut};
/// let request = b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
///     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
///     Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Version: 13\r\n\r\n";
/// let (mut data, mut len): (*const u8, usize) = (null(), 0);
/// // SAFETY: `hs` is live until freed, once, at the end; the pointers are valid.
/// unsafe {
///     let hs = nwe_server_handshake_new(0);
///     assert_eq!(nwe_server_handshake_feed(hs, request.as_ptr(), request.len()), 1);
///     assert_eq!(CStr::from_ptr(nwe_server_handshake_path(hs)).to_str(), Ok("/chat"));
///     nwe_server_handshake_free(hs);
/// }
/// ```
#[no_mangle]
pub unsafe extern "C" fn nwe_server_handshake_path(hs: *mut nwe_server_handshake) -> *const c_char {
    // SAFETY: `hs` is NULL or live (our contract).
    let Some(hs) = (unsafe { hs.as_mut() }) else {
        return std::ptr::null();
    };
    shielded(std::ptr::null(), || match &hs.stage {
        Stage::Done(req) => keep(&mut hs.strings, &req.path),
        _ => std::ptr::null(),
    })
}

/// The value of the request's header `name` (case-insensitive), once complete; NULL
/// if absent. Valid until the free.
///
/// ```
/// # use net_websocket_ev::capi::*;
/// # use std::ffi::CStr;
/// # use std::ptr::{null, null_mut};
/// let request = b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
///     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
///     Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Version: 13\r\n\r\n";
/// let (mut data, mut len): (*const u8, usize) = (null(), 0);
/// // SAFETY: `hs` is live until freed, once, at the end; the pointers are valid.
/// unsafe {
///     let hs = nwe_server_handshake_new(0);
///     assert_eq!(nwe_server_handshake_feed(hs, request.as_ptr(), request.len()), 1);
///     let host = nwe_server_handshake_header(hs, b"host\0".as_ptr().cast());
///     assert_eq!(CStr::from_ptr(host).to_str(), Ok("example.com"));
///     assert!(nwe_server_handshake_header(hs, b"origin\0".as_ptr().cast()).is_null());
///     nwe_server_handshake_free(hs);
/// }
/// ```
#[no_mangle]
pub unsafe extern "C" fn nwe_server_handshake_header(
    hs: *mut nwe_server_handshake,
    name: *const c_char,
) -> *const c_char {
    // SAFETY: `hs` is NULL or live; `name` NULL or NUL-terminated (our contract).
    let (Some(hs), Ok(name)) = (unsafe { hs.as_mut() }, unsafe { c_str(name) }) else {
        return std::ptr::null();
    };
    shielded(std::ptr::null(), || match &hs.stage {
        Stage::Done(req) => match req.header(name) {
            Some(value) => keep(&mut hs.strings, value),
            None => std::ptr::null(),
        },
        _ => std::ptr::null(),
    })
}

/// Why the handshake failed, or NULL. Valid until the free.
///
/// ```
/// # use net_websocket_ev::capi::*;
/// # use std::ffi::CStr;
/// # use std::ptr::{null, null_mut};
/// let request = b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
///     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
///     Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Version: 13\r\n\r\n";
/// let (mut data, mut len): (*const u8, usize) = (null(), 0);
/// // SAFETY: `hs` is live until freed, once, at the end; the pointers are valid.
/// unsafe {
///     let hs = nwe_server_handshake_new(0);
///     assert_eq!(nwe_server_handshake_feed(hs, request.as_ptr(), request.len()), 1);
///     assert!(nwe_server_handshake_error(hs).is_null()); // it succeeded
///     let bad = nwe_server_handshake_new(0);
///     assert_eq!(nwe_server_handshake_feed(bad, b"POST / HTTP/1.1\r\n\r\n".as_ptr(), 19), NWE_EHANDSHAKE);
///     assert!(!nwe_server_handshake_error(bad).is_null());
///     nwe_server_handshake_free(bad);
///     nwe_server_handshake_free(hs);
/// }
/// ```
#[no_mangle]
pub unsafe extern "C" fn nwe_server_handshake_error(
    hs: *mut nwe_server_handshake,
) -> *const c_char {
    // SAFETY: `hs` is NULL or live (our contract).
    let Some(hs) = (unsafe { hs.as_mut() }) else {
        return std::ptr::null();
    };
    shielded(std::ptr::null(), || match &hs.stage {
        Stage::Failed(err) => keep(&mut hs.strings, &err.to_string()),
        _ => std::ptr::null(),
    })
}

/// Frees a server handshake and every pointer it handed out. Ignores NULL.
///
/// ```
/// # use net_websocket_ev::capi::*;
/// # use std::ffi::CStr;
/// # use std::ptr::{null, null_mut};
/// let request = b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
///     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
///     Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Version: 13\r\n\r\n";
/// let (mut data, mut len): (*const u8, usize) = (null(), 0);
/// // SAFETY: `hs` is live until freed, once, at the end; the pointers are valid.
/// unsafe {
///     let hs = nwe_server_handshake_new(0);
///     assert_eq!(nwe_server_handshake_feed(hs, request.as_ptr(), request.len()), 1);
///     let other = nwe_server_handshake_new(0);
///     nwe_server_handshake_free(other); // and every pointer it returned
///     nwe_server_handshake_free(null_mut()); // ignored
///     nwe_server_handshake_free(hs);
/// }
/// ```
#[no_mangle]
pub unsafe extern "C" fn nwe_server_handshake_free(hs: *mut nwe_server_handshake) {
    if hs.is_null() {
        return;
    }
    // SAFETY: a non-NULL `hs` came from `Box::into_raw` and is freed once (our contract).
    let hs = unsafe { Box::from_raw(hs) };
    shielded((), move || drop(hs))
}

/// A client handshake for a `ws://host[:port]/path` URL, offering the
/// comma-separated subprotocols `protocols` (NULL for none); its request is ready in
/// `nwe_client_handshake_request`. `NWE_EINVAL` for a bad URL (or `wss://`: the C API
/// has no TLS).
///
/// ```
/// # use net_websocket_ev::capi::*;
/// # use std::ffi::CStr;
/// # use std::ptr::{null, null_mut};
/// let mut hs: *mut nwe_client_handshake = null_mut();
/// let (mut data, mut len): (*const u8, usize) = (null(), 0);
/// // SAFETY: `hs` is live until freed, once, at the end; the pointers are valid.
/// unsafe {
///     assert_eq!(nwe_client_handshake_new(b"ws://localhost:9001/feed\0".as_ptr().cast(), null(), &mut hs), NWE_OK);
///     assert!(!hs.is_null());
///     let mut bad = null_mut();
///     assert_eq!(nwe_client_handshake_new(b"http://x/\0".as_ptr().cast(), null(), &mut bad), NWE_EINVAL);
///     nwe_client_handshake_free(hs);
/// }
/// ```
#[no_mangle]
pub unsafe extern "C" fn nwe_client_handshake_new(
    url: *const c_char,
    protocols: *const c_char,
    out: *mut *mut nwe_client_handshake,
) -> c_int {
    if out.is_null() {
        return NWE_EINVAL;
    }
    // SAFETY: `out` is not NULL and writable (our contract).
    unsafe { out.write(std::ptr::null_mut()) };
    // SAFETY: `url` is NULL or NUL-terminated (our contract).
    let Ok(url) = (unsafe { c_str(url) }) else {
        return NWE_EINVAL;
    };
    let protocols = if protocols.is_null() {
        ""
    } else {
        // SAFETY: a non-NULL `protocols` is NUL-terminated (our contract).
        match unsafe { c_str(protocols) } {
            Ok(p) => p,
            Err(code) => return code,
        }
    };
    let made = shielded(Err(NWE_EPANIC), || {
        let (mut request, host, port) = ClientRequest::from_url(url).map_err(|_| NWE_EINVAL)?;
        if request.tls_server_name.is_some() {
            return Err(NWE_EINVAL);
        }
        for p in protocols
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            request = request.protocol(p);
        }
        request.validate().map_err(|_| NWE_EINVAL)?;
        let (bytes, key) = request.build();
        Ok(nwe_client_handshake {
            parser: ClientHandshake::new(key, request.protocols, DEFAULT_MAX_HEADER_SIZE),
            stage: Stage::Reading,
            request: bytes,
            host: owned_c_string(&host).ok_or(NWE_EINVAL)?,
            port,
            leftover: Vec::new(),
            strings: Vec::new(),
        })
    });
    match made {
        Ok(hs) => {
            // SAFETY: `out` is not NULL and writable (checked above).
            unsafe { out.write(Box::into_raw(Box::new(hs))) };
            NWE_OK
        }
        Err(code) => code,
    }
}

/// The host to connect to (from the URL). Valid until the free; NULL for a NULL `hs`.
///
/// ```
/// # use net_websocket_ev::capi::*;
/// # use std::ffi::CStr;
/// # use std::ptr::{null, null_mut};
/// let mut hs: *mut nwe_client_handshake = null_mut();
/// let (mut data, mut len): (*const u8, usize) = (null(), 0);
/// // SAFETY: `hs` is live until freed, once, at the end; the pointers are valid.
/// unsafe {
///     assert_eq!(nwe_client_handshake_new(b"ws://localhost:9001/feed\0".as_ptr().cast(), null(), &mut hs), NWE_OK);
///     assert_eq!(CStr::from_ptr(nwe_client_handshake_host(hs)).to_str(), Ok("localhost"));
///     nwe_client_handshake_free(hs);
/// }
/// ```
#[no_mangle]
pub unsafe extern "C" fn nwe_client_handshake_host(hs: *mut nwe_client_handshake) -> *const c_char {
    // SAFETY: `hs` is NULL or live (our contract).
    unsafe { hs.as_ref() }.map_or(std::ptr::null(), |hs| hs.host.as_ptr())
}

/// The port to connect to (from the URL, 80 by default); `NWE_EINVAL` for NULL.
///
/// ```
/// # use net_websocket_ev::capi::*;
/// # use std::ffi::CStr;
/// # use std::ptr::{null, null_mut};
/// let mut hs: *mut nwe_client_handshake = null_mut();
/// let (mut data, mut len): (*const u8, usize) = (null(), 0);
/// // SAFETY: `hs` is live until freed, once, at the end; the pointers are valid.
/// unsafe {
///     assert_eq!(nwe_client_handshake_new(b"ws://localhost:9001/feed\0".as_ptr().cast(), null(), &mut hs), NWE_OK);
///     assert_eq!(nwe_client_handshake_port(hs), 9001);
///     nwe_client_handshake_free(hs);
/// }
/// ```
#[no_mangle]
pub unsafe extern "C" fn nwe_client_handshake_port(hs: *mut nwe_client_handshake) -> c_int {
    // SAFETY: `hs` is NULL or live (our contract).
    unsafe { hs.as_ref() }.map_or(NWE_EINVAL, |hs| c_int::from(hs.port))
}

/// The request bytes to write, valid until the free.
///
/// ```
/// # use net_websocket_ev::capi::*;
/// # use std::ffi::CStr;
/// # use std::ptr::{null, null_mut};
/// let mut hs: *mut nwe_client_handshake = null_mut();
/// let (mut data, mut len): (*const u8, usize) = (null(), 0);
/// // SAFETY: `hs` is live until freed, once, at the end; the pointers are valid.
/// unsafe {
///     assert_eq!(nwe_client_handshake_new(b"ws://localhost:9001/feed\0".as_ptr().cast(), null(), &mut hs), NWE_OK);
///     assert_eq!(nwe_client_handshake_request(hs, &mut data, &mut len), NWE_OK);
///     assert!(std::slice::from_raw_parts(data, len).starts_with(b"GET /feed HTTP/1.1\r\n"));
///     nwe_client_handshake_free(hs);
/// }
/// ```
#[no_mangle]
pub unsafe extern "C" fn nwe_client_handshake_request(
    hs: *mut nwe_client_handshake,
    data: *mut *const u8,
    len: *mut usize,
) -> c_int {
    // SAFETY: `hs` is NULL or live (our contract).
    let Some(hs) = (unsafe { hs.as_ref() }) else {
        return NWE_EINVAL;
    };
    // SAFETY: `data` and `len` are NULL or writable (our contract).
    unsafe { give(data, len, &hs.request) }
}

/// Gives the client handshake the next `len` bytes of the response: 0 when it needs
/// more, 1 when it is complete and valid, `NWE_EHANDSHAKE` when not (see
/// `nwe_client_handshake_error`), `NWE_ESTATE` once over.
///
/// ```
/// # use net_websocket_ev::capi::*;
/// # use std::ffi::CStr;
/// # use std::ptr::{null, null_mut};
/// let mut hs: *mut nwe_client_handshake = null_mut();
/// let (mut data, mut len): (*const u8, usize) = (null(), 0);
/// // SAFETY: `hs` is live until freed, once, at the end; the pointers are valid.
/// unsafe {
///     assert_eq!(nwe_client_handshake_new(b"ws://localhost:9001/feed\0".as_ptr().cast(), null(), &mut hs), NWE_OK);
///     // The request, answered by a server handshake, checked by the client.
///     assert_eq!(nwe_client_handshake_request(hs, &mut data, &mut len), NWE_OK);
///     let server = nwe_server_handshake_new(0);
///     assert_eq!(nwe_server_handshake_feed(server, data, len), 1);
///     assert_eq!(nwe_server_handshake_response(server, null(), &mut data, &mut len), NWE_OK);
///     assert_eq!(nwe_client_handshake_feed(hs, data, len), 1);
///     nwe_server_handshake_free(server);
///     nwe_client_handshake_free(hs);
/// }
/// ```
#[no_mangle]
pub unsafe extern "C" fn nwe_client_handshake_feed(
    hs: *mut nwe_client_handshake,
    data: *const u8,
    len: usize,
) -> c_int {
    // SAFETY: `hs` is NULL or live and `data` holds `len` bytes (our contract).
    let (Some(hs), Ok(data)) = (unsafe { hs.as_mut() }, unsafe { bytes(data, len) }) else {
        return NWE_EINVAL;
    };
    shielded(NWE_EPANIC, || {
        if !matches!(hs.stage, Stage::Reading) {
            return NWE_ESTATE;
        }
        let result = hs.parser.feed(data);
        let code = feed_result(&mut hs.stage, result, |resp| resp.protocol);
        if code == 1 {
            hs.leftover = hs.parser.take_leftover();
        }
        code
    })
}

/// The subprotocol the server selected, or NULL (none, or not complete). Valid until
/// the free.
///
/// ```
/// # use net_websocket_ev::capi::*;
/// # use std::ffi::CStr;
/// # use std::ptr::{null, null_mut};
/// let mut hs: *mut nwe_client_handshake = null_mut();
/// let (mut data, mut len): (*const u8, usize) = (null(), 0);
/// // SAFETY: `hs` is live until freed, once, at the end; the pointers are valid.
/// unsafe {
///     assert_eq!(nwe_client_handshake_new(b"ws://localhost:9001/feed\0".as_ptr().cast(), null(), &mut hs), NWE_OK);
///     assert!(nwe_client_handshake_protocol(hs).is_null()); // none offered, none selected
///     nwe_client_handshake_free(hs);
/// }
/// ```
#[no_mangle]
pub unsafe extern "C" fn nwe_client_handshake_protocol(
    hs: *mut nwe_client_handshake,
) -> *const c_char {
    // SAFETY: `hs` is NULL or live (our contract).
    let Some(hs) = (unsafe { hs.as_mut() }) else {
        return std::ptr::null();
    };
    shielded(std::ptr::null(), || match &hs.stage {
        Stage::Done(Some(p)) => keep(&mut hs.strings, p),
        _ => std::ptr::null(),
    })
}

/// The bytes that came after the response head (the first frames: pass them to
/// `nwe_client_new`), valid until the free. `NWE_ESTATE` before completion.
///
/// ```
/// # use net_websocket_ev::capi::*;
/// # use std::ffi::CStr;
/// # use std::ptr::{null, null_mut};
/// let mut hs: *mut nwe_client_handshake = null_mut();
/// let (mut data, mut len): (*const u8, usize) = (null(), 0);
/// // SAFETY: `hs` is live until freed, once, at the end; the pointers are valid.
/// unsafe {
///     assert_eq!(nwe_client_handshake_new(b"ws://localhost:9001/feed\0".as_ptr().cast(), null(), &mut hs), NWE_OK);
///     assert_eq!(nwe_client_handshake_leftover(hs, &mut data, &mut len), NWE_ESTATE); // not complete
///     // The request, answered by a server handshake, checked by the client.
///     assert_eq!(nwe_client_handshake_request(hs, &mut data, &mut len), NWE_OK);
///     let server = nwe_server_handshake_new(0);
///     assert_eq!(nwe_server_handshake_feed(server, data, len), 1);
///     assert_eq!(nwe_server_handshake_response(server, null(), &mut data, &mut len), NWE_OK);
///     assert_eq!(nwe_client_handshake_feed(hs, data, len), 1);
///     assert_eq!(nwe_client_handshake_leftover(hs, &mut data, &mut len), NWE_OK);
///     assert_eq!(len, 0);
///     nwe_server_handshake_free(server);
///     nwe_client_handshake_free(hs);
/// }
/// ```
#[no_mangle]
pub unsafe extern "C" fn nwe_client_handshake_leftover(
    hs: *mut nwe_client_handshake,
    data: *mut *const u8,
    len: *mut usize,
) -> c_int {
    // SAFETY: `hs` is NULL or live (our contract).
    let Some(hs) = (unsafe { hs.as_ref() }) else {
        return NWE_EINVAL;
    };
    if !matches!(hs.stage, Stage::Done(_)) {
        return NWE_ESTATE;
    }
    // SAFETY: `data` and `len` are NULL or writable (our contract).
    unsafe { give(data, len, &hs.leftover) }
}

/// Why the handshake failed, or NULL. Valid until the free.
///
/// ```
/// # use net_websocket_ev::capi::*;
/// # use std::ffi::CStr;
/// # use std::ptr::{null, null_mut};
/// let mut hs: *mut nwe_client_handshake = null_mut();
/// let (mut data, mut len): (*const u8, usize) = (null(), 0);
/// // SAFETY: `hs` is live until freed, once, at the end; the pointers are valid.
/// unsafe {
///     assert_eq!(nwe_client_handshake_new(b"ws://localhost:9001/feed\0".as_ptr().cast(), null(), &mut hs), NWE_OK);
///     let bad = b"HTTP/1.1 404 Not Found\r\n\r\n";
///     assert_eq!(nwe_client_handshake_feed(hs, bad.as_ptr(), bad.len()), NWE_EHANDSHAKE);
///     assert!(!nwe_client_handshake_error(hs).is_null());
///     nwe_client_handshake_free(hs);
/// }
/// ```
#[no_mangle]
pub unsafe extern "C" fn nwe_client_handshake_error(
    hs: *mut nwe_client_handshake,
) -> *const c_char {
    // SAFETY: `hs` is NULL or live (our contract).
    let Some(hs) = (unsafe { hs.as_mut() }) else {
        return std::ptr::null();
    };
    shielded(std::ptr::null(), || match &hs.stage {
        Stage::Failed(err) => keep(&mut hs.strings, &err.to_string()),
        _ => std::ptr::null(),
    })
}

/// Frees a client handshake and every pointer it handed out. Ignores NULL.
///
/// ```
/// # use net_websocket_ev::capi::*;
/// # use std::ffi::CStr;
/// # use std::ptr::{null, null_mut};
/// let mut hs: *mut nwe_client_handshake = null_mut();
/// let (mut data, mut len): (*const u8, usize) = (null(), 0);
/// // SAFETY: `hs` is live until freed, once, at the end; the pointers are valid.
/// unsafe {
///     assert_eq!(nwe_client_handshake_new(b"ws://localhost:9001/feed\0".as_ptr().cast(), null(), &mut hs), NWE_OK);
///     nwe_client_handshake_free(null_mut()); // ignored; `hs` is freed below
///     nwe_client_handshake_free(hs);
/// }
/// ```
#[no_mangle]
pub unsafe extern "C" fn nwe_client_handshake_free(hs: *mut nwe_client_handshake) {
    if hs.is_null() {
        return;
    }
    // SAFETY: a non-NULL `hs` came from `Box::into_raw` and is freed once (our contract).
    let hs = unsafe { Box::from_raw(hs) };
    shielded((), move || drop(hs))
}
