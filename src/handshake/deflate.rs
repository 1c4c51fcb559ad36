//! permessage-deflate (RFC 7692) negotiation: the client's offer and its check of the
//! answer, the server's choice among the offers. Both produce the
//! [`Compression`] the engine runs with.
//!
//! ```
//! use net_websocket_ev::handshake::deflate::{self, PerMessageDeflate};
//!
//! let opts = PerMessageDeflate::default();
//! // Client: the offer goes into the request's Sec-WebSocket-Extensions.
//! let offer = deflate::offer(&opts);
//! // Server: picks the first offer it can accept and answers it.
//! let (answer, server) = deflate::accept(&[offer], &opts).expect("acceptable");
//! // Client: checks the answer.
//! let client = deflate::check_answer([answer.as_str()], &opts).unwrap().expect("accepted");
//! assert_eq!((server.send, server.recv), (client.recv, client.send));
//! ```

use std::fmt::Write as _;

use super::head::{self, Extension};
use super::HandshakeError;
use crate::proto::{Compression, Window};

/// The extension's name in `Sec-WebSocket-Extensions`.
const NAME: &str = "permessage-deflate";

/// permessage-deflate settings: what we ask for and what we allow, in either role.
///
/// The fields carry the names of the RFC 7692 §7.1 parameters and mean the same in
/// both roles: `server_*` is about what the server compresses, `client_*` about what
/// the client compresses. Window sizes outside 9..=15 are taken as the nearest of
/// them.
///
/// Memory: with context takeover, each connection keeps its compressor (about
/// 2^(bits+2) bytes plus the hash tables) or its inflater (a 2^bits window) from one
/// message to the next. Without it, that state lives only while a message is being
/// compressed or inflated, so idle connections cost nothing. The default asks for no
/// context takeover in both directions.
///
/// Non-exhaustive (fields may be added): start from [`PerMessageDeflate::default`]
/// and change what you need with the setters, named like the fields.
///
/// ```
/// use net_websocket_ev::handshake::deflate::{self, PerMessageDeflate};
///
/// // Keep the context in both directions (better compression of a stream of similar
/// // messages, more memory per connection) and compress harder.
/// let opts = PerMessageDeflate::default()
///     .server_no_context_takeover(false)
///     .client_no_context_takeover(false)
///     .level(6);
/// assert_eq!(deflate::offer(&opts), "permessage-deflate; client_max_window_bits");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PerMessageDeflate {
    /// The server starts each message with a fresh compressor.
    ///
    /// As a server: we do so (and say so), and a client may ask us to anyway. As a
    /// client: we request it, so that we need no inflater between messages; a server
    /// that does not confirm it keeps its context, and so do we.
    pub server_no_context_takeover: bool,
    /// The client starts each message with a fresh compressor.
    ///
    /// As a server: we require it, so that we need no inflater between messages
    /// (and when a client offers it as a hint, we answer it too, which makes it
    /// binding, whatever this says). As a client: we promise it, and do so also
    /// when the server asks for it.
    pub client_no_context_takeover: bool,
    /// The server's window: at most 2^bits bytes, 9 to 15.
    ///
    /// As a server: the largest window we compress with (a client may ask for less).
    /// As a client: below 15, the largest we request from the server, and so the size
    /// of our inflater.
    pub server_max_window_bits: u8,
    /// The client's window: at most 2^bits bytes, 9 to 15.
    ///
    /// As a server: below 15, the largest we ask the client to use, and so the size of
    /// our inflater; a client whose offer does not allow this asking uses 15. As a
    /// client: the largest window we compress with (the server may ask for less).
    pub client_max_window_bits: u8,
    /// The deflate level of what we send: 0 (stored) to 9 (smallest, slowest).
    pub level: u8,
    /// Data messages shorter than this many bytes are sent uncompressed.
    pub threshold: u32,
}

impl PerMessageDeflate {
    /// Sets [`server_no_context_takeover`](PerMessageDeflate#structfield.server_no_context_takeover):
    /// the server starts each message with a fresh compressor. Default `true`.
    ///
    /// ```
    /// use net_websocket_ev::handshake::deflate::{offer, PerMessageDeflate};
    ///
    /// let opts = PerMessageDeflate::default().server_no_context_takeover(false);
    /// assert_eq!(
    ///     offer(&opts),
    ///     "permessage-deflate; client_no_context_takeover; client_max_window_bits"
    /// );
    /// ```
    pub fn server_no_context_takeover(mut self, on: bool) -> PerMessageDeflate {
        self.server_no_context_takeover = on;
        self
    }

    /// Sets [`client_no_context_takeover`](PerMessageDeflate#structfield.client_no_context_takeover):
    /// the client starts each message with a fresh compressor. Default `true`.
    ///
    /// ```
    /// use net_websocket_ev::handshake::deflate::{offer, PerMessageDeflate};
    ///
    /// let opts = PerMessageDeflate::default().client_no_context_takeover(false);
    /// assert_eq!(
    ///     offer(&opts),
    ///     "permessage-deflate; server_no_context_takeover; client_max_window_bits"
    /// );
    /// ```
    pub fn client_no_context_takeover(mut self, on: bool) -> PerMessageDeflate {
        self.client_no_context_takeover = on;
        self
    }

    /// Sets [`server_max_window_bits`](PerMessageDeflate#structfield.server_max_window_bits):
    /// the server's window is at most 2^bits bytes, 9 to 15. Default 15.
    ///
    /// ```
    /// use net_websocket_ev::handshake::deflate::{offer, PerMessageDeflate};
    ///
    /// let opts = PerMessageDeflate::default()
    ///     .server_no_context_takeover(false)
    ///     .client_no_context_takeover(false)
    ///     .server_max_window_bits(10);
    /// assert_eq!(
    ///     offer(&opts),
    ///     "permessage-deflate; server_max_window_bits=10; client_max_window_bits"
    /// );
    /// ```
    pub fn server_max_window_bits(mut self, bits: u8) -> PerMessageDeflate {
        self.server_max_window_bits = bits;
        self
    }

    /// Sets [`client_max_window_bits`](PerMessageDeflate#structfield.client_max_window_bits):
    /// the client's window is at most 2^bits bytes, 9 to 15. Default 15.
    ///
    /// ```
    /// use net_websocket_ev::handshake::deflate::{offer, PerMessageDeflate};
    ///
    /// let opts = PerMessageDeflate::default()
    ///     .server_no_context_takeover(false)
    ///     .client_no_context_takeover(false)
    ///     .client_max_window_bits(12);
    /// assert_eq!(offer(&opts), "permessage-deflate; client_max_window_bits=12");
    /// ```
    pub fn client_max_window_bits(mut self, bits: u8) -> PerMessageDeflate {
        self.client_max_window_bits = bits;
        self
    }

    /// Sets [`level`](PerMessageDeflate#structfield.level): the deflate level of
    /// what we send, 0 (stored) to 9 (smallest, slowest). Default 1.
    ///
    /// ```
    /// use net_websocket_ev::handshake::deflate::{accept, offer, PerMessageDeflate};
    ///
    /// let opts = PerMessageDeflate::default().level(9);
    /// let (_answer, agreed) = accept(&[offer(&opts)], &opts).expect("accepted");
    /// assert_eq!(agreed.level, 9);
    /// ```
    pub fn level(mut self, level: u8) -> PerMessageDeflate {
        self.level = level;
        self
    }

    /// Sets [`threshold`](PerMessageDeflate#structfield.threshold): data messages
    /// shorter than this many bytes are sent uncompressed. Default 128.
    ///
    /// ```
    /// use net_websocket_ev::handshake::deflate::{accept, offer, PerMessageDeflate};
    ///
    /// let opts = PerMessageDeflate::default().threshold(1024);
    /// let (_answer, agreed) = accept(&[offer(&opts)], &opts).expect("accepted");
    /// assert_eq!(agreed.threshold, 1024);
    /// ```
    pub fn threshold(mut self, bytes: u32) -> PerMessageDeflate {
        self.threshold = bytes;
        self
    }
}

impl Default for PerMessageDeflate {
    /// No context takeover either way, 15-bit windows, level 1, threshold 128.
    fn default() -> PerMessageDeflate {
        PerMessageDeflate {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            level: 1,
            threshold: 128,
        }
    }
}

/// Client: the `Sec-WebSocket-Extensions` value that offers permessage-deflate with
/// `opts`. It always allows the server to limit our window (`client_max_window_bits`,
/// with our limit as value when below 15).
///
/// [`ClientRequest::offer_deflate`](super::ClientRequest::offer_deflate) adds it to a
/// request.
///
/// ```
/// use net_websocket_ev::handshake::deflate::{offer, PerMessageDeflate};
///
/// assert_eq!(
///     offer(&PerMessageDeflate::default()),
///     "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
///      client_max_window_bits"
/// );
/// let small = PerMessageDeflate::default()
///     .server_no_context_takeover(false)
///     .client_no_context_takeover(false)
///     .server_max_window_bits(10)
///     .client_max_window_bits(12);
/// assert_eq!(
///     offer(&small),
///     "permessage-deflate; server_max_window_bits=10; client_max_window_bits=12"
/// );
/// ```
pub fn offer(opts: &PerMessageDeflate) -> String {
    let mut value = NAME.to_owned();
    if opts.server_no_context_takeover {
        value.push_str("; server_no_context_takeover");
    }
    if opts.client_no_context_takeover {
        value.push_str("; client_no_context_takeover");
    }
    let server_bits = window_bits(opts.server_max_window_bits);
    if server_bits < 15 {
        // Writing to a String cannot fail.
        let _ = write!(value, "; server_max_window_bits={server_bits}");
    }
    value.push_str("; client_max_window_bits");
    let client_bits = window_bits(opts.client_max_window_bits);
    if client_bits < 15 {
        let _ = write!(value, "={client_bits}");
    }
    value
}

/// Client: checks the server's answer to [`offer(opts)`](offer), given the values of
/// the response's `Sec-WebSocket-Extensions` headers (`[&str; N]`, a `Vec<&str>`, or
/// any iterator of `&str`).
///
/// `Ok(None)`: the server declined (no extension answered). `Ok(Some(compression))`:
/// what the connection runs with. Errors:
/// [`UnrequestedExtension`](HandshakeError::UnrequestedExtension) for any other
/// extension, [`BadExtension`](HandshakeError::BadExtension) for a malformed header,
/// more than one element, an unknown, repeated or invalid parameter, a
/// `server_max_window_bits` larger than we requested, or a `client_max_window_bits`
/// without a value or of 8 (no compressor can keep to a 256-byte window).
///
/// ```
/// use net_websocket_ev::handshake::deflate::{check_answer, PerMessageDeflate};
/// use net_websocket_ev::handshake::HandshakeError;
/// use net_websocket_ev::proto::Window;
///
/// let opts = PerMessageDeflate::default();
/// let c = check_answer(["permessage-deflate; client_max_window_bits=10"], &opts)
///     .unwrap()
///     .expect("accepted");
/// assert_eq!(c.send, Window::DEFAULT.max_window_bits(10).no_context_takeover(true));
/// assert_eq!(c.recv, Window::DEFAULT);
///
/// assert_eq!(check_answer([""; 0], &opts), Ok(None));
/// assert!(matches!(
///     check_answer(["permessage-deflate; client_max_window_bits=8"], &opts),
///     Err(HandshakeError::BadExtension(_))
/// ));
/// ```
pub fn check_answer<'a>(
    values: impl IntoIterator<Item = &'a str>,
    opts: &PerMessageDeflate,
) -> Result<Option<Compression>, HandshakeError> {
    let bad = HandshakeError::BadExtension;
    let mut answered = Vec::new();
    for value in values {
        let list = head::extension_list(value)
            .ok_or_else(|| bad(format!("malformed Sec-WebSocket-Extensions {value:?}")))?;
        answered.extend(list);
    }
    if let Some(other) = answered.iter().find(|e| !e.name.eq_ignore_ascii_case(NAME)) {
        return Err(HandshakeError::UnrequestedExtension(other.name.to_owned()));
    }
    let element = match answered.as_slice() {
        [] => return Ok(None),
        [one] => one,
        _ => return Err(bad(format!("{NAME} answered more than once"))),
    };
    let params = Params::parse(element).map_err(bad)?;
    let requested = window_bits(opts.server_max_window_bits);
    let recv_bits = params.server_max_window_bits.unwrap_or(15);
    if recv_bits > requested {
        return Err(bad(format!(
            "server_max_window_bits={recv_bits} is larger than the {requested} requested"
        )));
    }
    let ours = window_bits(opts.client_max_window_bits);
    let send_bits = match params.client_max_window_bits {
        None => ours,
        Some(None) => return Err(bad("client_max_window_bits without a value".into())),
        Some(Some(8)) => {
            return Err(bad(
                "client_max_window_bits=8 (a compressor's smallest window is 9)".into(),
            ))
        }
        Some(Some(bits)) => bits.min(ours),
    };
    Ok(Some(Compression {
        send: Window {
            max_window_bits: send_bits,
            no_context_takeover: opts.client_no_context_takeover
                || params.client_no_context_takeover,
        },
        recv: Window {
            max_window_bits: recv_bits,
            no_context_takeover: params.server_no_context_takeover,
        },
        level: opts.level,
        threshold: opts.threshold,
    }))
}

/// Server: the first acceptable permessage-deflate offer among the request's
/// `Sec-WebSocket-Extensions` values ([`Request::extensions`](super::Request)), in
/// order: the value to answer with (see
/// [`response_with_extensions`](super::response_with_extensions)) and what the
/// connection runs with. `None`: no offer can be accepted; answer without the header.
///
/// Other extensions are ignored. An offer with an unknown, repeated or invalid
/// parameter, or with `server_max_window_bits=8` (no compressor can keep to a
/// 256-byte window), is skipped; a malformed header declines every offer.
///
/// ```
/// use net_websocket_ev::handshake::deflate::{accept, PerMessageDeflate};
/// use net_websocket_ev::proto::Window;
///
/// // Chromium's offer, answered with the defaults.
/// let offers = ["permessage-deflate; client_max_window_bits".to_owned()];
/// let (answer, c) = accept(&offers, &PerMessageDeflate::default()).expect("accepted");
/// assert_eq!(answer, "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
/// assert_eq!(c.send, Window::DEFAULT.no_context_takeover(true));
/// assert_eq!(c.recv, Window::DEFAULT.no_context_takeover(true));
///
/// let only_8 = ["permessage-deflate; server_max_window_bits=8".to_owned()];
/// assert_eq!(accept(&only_8, &PerMessageDeflate::default()), None);
/// ```
pub fn accept(offers: &[String], opts: &PerMessageDeflate) -> Option<(String, Compression)> {
    let mut elements = Vec::new();
    for value in offers {
        elements.extend(head::extension_list(value)?);
    }
    elements
        .iter()
        .filter(|element| element.name.eq_ignore_ascii_case(NAME))
        .filter_map(|element| Params::parse(element).ok())
        .find(|params| params.server_max_window_bits != Some(8))
        .map(|params| params.answer(opts))
}

/// The RFC 7692 §7.1 parameters of one permessage-deflate element.
#[derive(Debug, Default, PartialEq, Eq)]
struct Params {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: the parameter without a value (allowed in an offer only).
    client_max_window_bits: Option<Option<u8>>,
}

impl Params {
    /// The parameters of `element`; the error names the problem.
    fn parse(element: &Extension<'_>) -> Result<Params, String> {
        let mut params = Params::default();
        let mut seen = [false; 4];
        for (name, value) in &element.params {
            let name = name.to_ascii_lowercase();
            let slot = match name.as_str() {
                "server_no_context_takeover" => 0,
                "client_no_context_takeover" => 1,
                "server_max_window_bits" => 2,
                "client_max_window_bits" => 3,
                _ => return Err(format!("unknown {NAME} parameter {name:?}")),
            };
            if seen[slot] {
                return Err(format!("{name} repeated"));
            }
            seen[slot] = true;
            let bits = match value.as_deref() {
                None => None,
                Some(_) if slot < 2 => return Err(format!("{name} takes no value")),
                Some(value) => Some(
                    parse_window_bits(value)
                        .ok_or_else(|| format!("{name}={value:?} is not 8 to 15"))?,
                ),
            };
            match slot {
                0 => params.server_no_context_takeover = true,
                1 => params.client_no_context_takeover = true,
                2 => {
                    params.server_max_window_bits =
                        Some(bits.ok_or_else(|| format!("{name} without a value"))?)
                }
                _ => params.client_max_window_bits = Some(bits),
            }
        }
        Ok(params)
    }

    /// Server: the answer to this offer under `opts`, and what it settles on.
    fn answer(&self, opts: &PerMessageDeflate) -> (String, Compression) {
        let mut value = NAME.to_owned();
        let server_no_context_takeover =
            self.server_no_context_takeover || opts.server_no_context_takeover;
        if server_no_context_takeover {
            value.push_str("; server_no_context_takeover");
        }
        // The client's own hint binds it only once the answer says so (RFC 7692
        // section 7.1.1.2): answered whenever we rely on it, so that we need
        // not keep an inflater between its messages.
        let client_no_context_takeover =
            opts.client_no_context_takeover || self.client_no_context_takeover;
        if client_no_context_takeover {
            value.push_str("; client_no_context_takeover");
        }
        let ours = window_bits(opts.server_max_window_bits);
        let send_bits = self
            .server_max_window_bits
            .map_or(ours, |bits| bits.min(ours));
        // An offered limit must be answered to accept the offer, even at 15.
        if self.server_max_window_bits.is_some() || send_bits < 15 {
            // Writing to a String cannot fail.
            let _ = write!(value, "; server_max_window_bits={send_bits}");
        }
        // We may limit the client's window only if it offered the parameter.
        let recv_bits = match self.client_max_window_bits {
            None => 15,
            Some(offered) => {
                let bits = window_bits(opts.client_max_window_bits).min(offered.unwrap_or(15));
                if bits < 15 {
                    let _ = write!(value, "; client_max_window_bits={bits}");
                }
                bits
            }
        };
        let compression = Compression {
            send: Window {
                max_window_bits: send_bits,
                no_context_takeover: server_no_context_takeover,
            },
            recv: Window {
                max_window_bits: recv_bits,
                no_context_takeover: client_no_context_takeover,
            },
            level: opts.level,
            threshold: opts.threshold,
        };
        (value, compression)
    }
}

/// A window size from the settings, in the range we can compress with.
fn window_bits(bits: u8) -> u8 {
    bits.clamp(9, 15)
}

/// A `*_max_window_bits` value: 8 to 15 in decimal, no sign, no leading zero.
fn parse_window_bits(value: &str) -> Option<u8> {
    match value.as_bytes() {
        [digit @ b'8'..=b'9'] => Some(digit - b'0'),
        [b'1', digit @ b'0'..=b'5'] => Some(10 + digit - b'0'),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(max_window_bits: u8, no_context_takeover: bool) -> Window {
        Window {
            max_window_bits,
            no_context_takeover,
        }
    }

    fn takeover() -> PerMessageDeflate {
        PerMessageDeflate {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            ..PerMessageDeflate::default()
        }
    }

    fn params(value: &str) -> Result<Params, String> {
        let list = head::extension_list(value).expect("well-formed");
        Params::parse(&list[0])
    }

    #[test]
    fn window_bits_values() {
        for bits in 8..=15u8 {
            assert_eq!(parse_window_bits(&bits.to_string()), Some(bits));
        }
        for bad in [
            "", "7", "16", "08", "010", "+9", "-9", " 9", "9 ", "1O", "٩", "99",
        ] {
            assert_eq!(parse_window_bits(bad), None, "{bad:?}");
        }
        assert_eq!(
            (window_bits(0), window_bits(8), window_bits(200)),
            (9, 9, 15)
        );
    }

    #[test]
    fn parameters() {
        assert_eq!(
            params("permessage-deflate; Server_No_Context_Takeover; CLIENT_MAX_WINDOW_BITS"),
            Ok(Params {
                server_no_context_takeover: true,
                client_max_window_bits: Some(None),
                ..Params::default()
            })
        );
        assert_eq!(
            params("permessage-deflate; server_max_window_bits=\"10\"; client_max_window_bits=9"),
            Ok(Params {
                server_max_window_bits: Some(10),
                client_max_window_bits: Some(Some(9)),
                ..Params::default()
            })
        );
        for bad in [
            "permessage-deflate; foo",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_max_window_bits; Client_Max_Window_Bits=10",
            "permessage-deflate; client_no_context_takeover=1",
            "permessage-deflate; server_no_context_takeover=\"\"",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; client_max_window_bits=\"\"",
        ] {
            assert!(params(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn server_answers() {
        let offer = |value: &str, opts: &PerMessageDeflate| accept(&[value.to_owned()], opts);
        let (answer, c) = offer(
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=12; \
             client_max_window_bits=11",
            &takeover(),
        )
        .unwrap();
        assert_eq!(
            answer,
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=12; \
             client_max_window_bits=11"
        );
        assert_eq!((c.send, c.recv), (window(12, true), window(11, false)));
        // Our own limits, applied where the offer allows them.
        let small = PerMessageDeflate {
            server_max_window_bits: 10,
            client_max_window_bits: 9,
            ..takeover()
        };
        let (answer, c) = offer("permessage-deflate", &small).unwrap();
        assert_eq!(answer, "permessage-deflate; server_max_window_bits=10");
        assert_eq!((c.send, c.recv), (window(10, false), window(15, false)));
        let (answer, c) = offer("permessage-deflate; client_max_window_bits", &small).unwrap();
        assert_eq!(
            answer,
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=9"
        );
        assert_eq!(c.recv, window(9, false));
        // An offered 15 is answered to accept the offer.
        let (answer, _) =
            offer("permessage-deflate; server_max_window_bits=15", &takeover()).unwrap();
        assert_eq!(answer, "permessage-deflate; server_max_window_bits=15");
    }

    #[test]
    fn client_checks() {
        let opts = takeover();
        let c = check_answer(["permessage-deflate"], &opts)
            .unwrap()
            .unwrap();
        assert_eq!((c.send, c.recv), (window(15, false), window(15, false)));
        assert_eq!((c.level, c.threshold), (1, 128));
        let c = check_answer(
            ["permessage-deflate; client_no_context_takeover; server_max_window_bits=8"],
            &opts,
        )
        .unwrap()
        .unwrap();
        assert_eq!((c.send, c.recv), (window(15, true), window(8, false)));
        let bad = |value: &str| match check_answer([value], &opts) {
            Err(HandshakeError::BadExtension(what)) => what,
            other => panic!("{value}: {other:?}"),
        };
        assert!(bad("permessage-deflate; client_max_window_bits").contains("without a value"));
        assert!(bad("permessage-deflate, permessage-deflate").contains("more than once"));
        assert!(bad("permessage-deflate; x=1").contains("unknown"));
        assert!(bad("permessage-deflate;").contains("malformed"));
    }
}
