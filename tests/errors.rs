//! The shape of the errors: one "closed" error from every queue method, whatever
//! closed the connection; a wrapper says what failed and returns the cause from
//! `source()` without printing it again; messages say what to do.
#![cfg(feature = "ev")]

mod util;

use std::error::Error as StdError;
use std::io;

use net_websocket_ev::ev::{LoopError, WatcherError};
use net_websocket_ev::handshake::HandshakeError;
use net_websocket_ev::proto::{Error as ProtoError, ProtocolError};
use net_websocket_ev::{CloseCause, Error, Fragment, OpCode, WebSocket};
use util::{run_until, server};

/// Every way of queueing fails with `Error::Closed` (never `Error::Queue`), and
/// leaves the queue as it was.
fn assert_queueing_is_closed(ws: &WebSocket, when: &str) {
    let before = ws.queued_count().ok();
    let results = [
        ("queue_text", ws.queue_text("x")),
        ("queue_binary", ws.queue_binary(b"x")),
        ("queue_msg(Text)", ws.queue_msg(b"x", OpCode::Text)),
        ("queue_msg(Ping)", ws.queue_msg(b"x", OpCode::Ping)),
        ("queue_msg(Pong)", ws.queue_msg(b"x", OpCode::Pong)),
        (
            "queue_fragmented",
            ws.queue_fragmented(|_, _| Fragment::Eof(0), OpCode::Binary),
        ),
        ("close", ws.close(Some(1000), "again")),
    ];
    for (method, result) in results {
        assert!(
            matches!(result, Err(Error::Closed)),
            "{method} {when}: {result:?}"
        );
    }
    assert_eq!(ws.queued_count().ok(), before, "{when}");
}

#[test]
fn queueing_after_our_close_is_closed() {
    let s = server(|p| p);
    s.ws.close(Some(1000), "bye").unwrap();
    assert!(!s.ws.is_closed(), "still closing: reading goes on");
    assert_queueing_is_closed(&s.ws, "after close()");
}

#[test]
fn queueing_after_shutdown_write_is_closed() {
    let s = server(|p| p);
    s.ws.shutdown_write().unwrap();
    assert!(!s.ws.is_closed(), "reading goes on");
    assert_queueing_is_closed(&s.ws, "after shutdown_write()");
}

#[test]
fn queueing_after_the_peers_close_is_closed() {
    let mut s = server(|p| p);
    // Our answer stays queued: the connection is closing, not over.
    s.ws.stop_write().unwrap();
    s.peer.close(Some(1001), "");
    let ws = s.ws.clone();
    run_until(&s.lp, "the peer's close", || {
        ws.status_code_received() == 1001
    });
    assert!(!s.ws.is_closed());
    assert_eq!(s.ws.queued_count().unwrap(), 1, "our answering close");
    assert_queueing_is_closed(&s.ws, "after the peer's close");
    s.ws.start_write().unwrap();
    s.until("the end", |_, log| !log.closes.is_empty());
    assert_eq!(s.ws.close_cause(), Some(CloseCause::PeerClose));
}

#[test]
fn queueing_after_the_end_is_closed() {
    let mut s = server(|p| p);
    s.ws.abort().unwrap();
    assert!(s.ws.is_closed());
    assert_queueing_is_closed(&s.ws, "after abort()");
    s.until("on_close", |_, log| !log.closes.is_empty());
    assert_queueing_is_closed(&s.ws, "after on_close");
}

/// `err` wraps another error: `source()` returns it and `Display` does not repeat it.
fn assert_wraps(err: &dyn StdError) -> String {
    let source = err
        .source()
        .unwrap_or_else(|| panic!("{err:?} has no source"));
    let (outer, inner) = (err.to_string(), source.to_string());
    assert!(
        !outer.contains(&inner),
        "{outer:?} repeats its source {inner:?}"
    );
    inner
}

#[test]
fn engine_refusals_are_wrapped_with_the_engine_error_as_source() {
    let s = server(|p| p.max_queued_bytes(100));
    s.ws.stop_write().unwrap();

    let err = s.ws.queue_msg(b"bye", OpCode::Close).unwrap_err();
    assert!(
        matches!(err, Error::Queue(ProtoError::InvalidOpcode(8))),
        "{err:?}"
    );
    assert_eq!(
        assert_wraps(&err),
        "opcode 8 (close) cannot be queued: use close()"
    );

    let err = s.ws.queue_msg(&[0xff], OpCode::Text).unwrap_err();
    assert!(
        matches!(err, Error::Queue(ProtoError::InvalidUtf8)),
        "{err:?}"
    );
    assert_eq!(
        assert_wraps(&err),
        "text is not valid UTF-8: queue it as binary"
    );

    s.ws.queue_binary(&[0; 80]).unwrap();
    let err = s.ws.queue_binary(&[0; 80]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Queue(ProtoError::QueueFull {
                queued: 160,
                limit: 100
            })
        ),
        "{err:?}"
    );
    assert_eq!(
        assert_wraps(&err),
        "the send queue is full (160 bytes with this message, limit 100): \
         wait() for it to drain or raise max_queued_bytes"
    );

    let err = s.ws.close(Some(1004), "").unwrap_err();
    assert!(
        matches!(err, Error::Queue(ProtoError::InvalidCloseCode(1004))),
        "{err:?}"
    );
    assert!(assert_wraps(&err).contains("use 1000-1003, 1007-1014 or 3000-4999"));
}

#[test]
fn io_and_loop_errors_are_wrapped() {
    let err = Error::from(io::Error::from(io::ErrorKind::InvalidInput));
    assert!(matches!(err, Error::Io(_)));
    assert_wraps(&err);

    let err = Error::from(LoopError::DefaultLoopInUse);
    assert!(matches!(err, Error::Loop(LoopError::DefaultLoopInUse)));
    assert!(assert_wraps(&err).contains("Loop::new()"));
}

#[test]
fn errors_without_a_cause_have_no_source() {
    let closed = Error::from(ProtoError::Closed);
    assert!(matches!(closed, Error::Closed), "{closed:?}");
    let leaves: [&dyn StdError; 6] = [
        &closed,
        &ProtoError::ControlTooLong(126),
        &ProtocolError::MessageTooBig,
        &HandshakeError::BadStatus(403),
        &LoopError::Create,
        &WatcherError::InvalidFd(-1),
    ];
    for err in leaves {
        assert!(err.source().is_none(), "{err:?}");
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn messages_say_what_to_do() {
    let cases: [(&dyn StdError, &str); 7] = [
        (&ProtoError::InvalidOpcode(0), "queue_fragmented()"),
        (&ProtoError::InvalidOpcode(9), "queue_msg()"),
        (
            &ProtoError::ControlTooLong(126),
            "as a text or binary message",
        ),
        (&ProtoError::InvalidCloseReason, "Some(code)"),
        (&ProtocolError::MessageTooBig, "raise max_recv_size"),
        (&Error::Stalled, "start_write()"),
        (
            &WatcherError::SignalNeedsDefaultLoop(libc::SIGCHLD),
            "Loop::default_loop()",
        ),
    ];
    for (err, hint) in cases {
        assert!(err.to_string().contains(hint), "{err:?}: {err}");
    }
}

#[cfg(feature = "tls")]
#[test]
fn tls_errors_are_wrapped() {
    use net_websocket_ev::tls::{rustls, ServerTls, TlsError};

    let missing = std::env::temp_dir().join("net-websocket-ev-no-such-dir/cert.pem");
    let err = ServerTls::from_pem_files(&missing, &missing).unwrap_err();
    assert!(
        matches!(&err, TlsError::Io { path, .. } if *path == missing),
        "{err:?}"
    );
    assert_wraps(&err);
    let io = err.source().and_then(|s| s.downcast_ref::<io::Error>());
    assert_eq!(io.map(io::Error::kind), Some(io::ErrorKind::NotFound));

    let err = TlsError::from(rustls::Error::General("refused".into()));
    assert_wraps(&err);

    let err = ServerTls::builder().build().unwrap_err();
    assert!(matches!(err, TlsError::Pem(_)), "{err:?}");
    assert!(err.source().is_none());
    assert!(err.to_string().contains("cert_pem_files()"), "{err}");
}
