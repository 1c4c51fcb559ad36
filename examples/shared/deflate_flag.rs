//! The examples' `--deflate` and `--deflate-takeover`: the handshake options they
//! stand for. Included by `echo_server.rs` and `client.rs` (`mod deflate_flag;`).

use net_websocket_ev::websocket::upgrade::HandshakeOptions;

/// `deflate`: `None` without either flag, `Some(false)` for `--deflate` (no
/// context takeover either way), `Some(true)` for `--deflate-takeover` (context
/// kept both ways). Every message is compressed (threshold 0) at `level`.
#[cfg(feature = "deflate")]
pub fn handshake_options(deflate: Option<bool>, level: u8, _program: &str) -> HandshakeOptions {
    use net_websocket_ev::handshake::deflate::PerMessageDeflate;
    HandshakeOptions::default().deflate(deflate.map(|takeover| {
        PerMessageDeflate::default()
            .server_no_context_takeover(!takeover)
            .client_no_context_takeover(!takeover)
            .threshold(0)
            .level(level)
    }))
}

/// Without the `deflate` feature the flags are refused.
#[cfg(not(feature = "deflate"))]
pub fn handshake_options(deflate: Option<bool>, _level: u8, program: &str) -> HandshakeOptions {
    if deflate.is_some() {
        eprintln!("{program}: --deflate needs the deflate feature");
        std::process::exit(2);
    }
    HandshakeOptions::default()
}
