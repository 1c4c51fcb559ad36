//! The sans-IO types that may move to another thread (`Send`) or be shared between
//! threads (`Sync`), as quinn-proto's and rustls's are: checked at compile time (a type
//! that loses either fails to build this file), without libev.
//! The engine and its sender are `Send` but not `Sync` (their mask source and
//! producers are `FnMut + Send`), as rustls's connections are.

use net_websocket_ev::handshake::{
    ClientHandshake, ClientRequest, HandshakeError, Request, Response, ServerHandshake,
};
use net_websocket_ev::proto::{
    Compression, Config, Error, Flow, OpCode, ProtocolError, Receiver, RecvStatus, Role, Rsv,
    SendStatus, Utf8Validator, Window,
};

fn send_and_sync<T: Send + Sync>() {}

fn send<T: Send>() {}

#[test]
fn the_engine_and_its_sender_can_move_to_another_thread() {
    send::<net_websocket_ev::proto::Engine>();
    send::<net_websocket_ev::proto::Sender>();
    send::<net_websocket_ev::proto::MaskSource>();
    send::<net_websocket_ev::proto::Producer>();
}

#[test]
fn the_receiver_and_its_values_are_send_and_sync() {
    send_and_sync::<Receiver>();
    send_and_sync::<Utf8Validator>();
    send_and_sync::<Config>();
    send_and_sync::<Compression>();
    send_and_sync::<Window>();
    send_and_sync::<Error>();
    send_and_sync::<ProtocolError>();
    send_and_sync::<OpCode>();
    send_and_sync::<Rsv>();
    send_and_sync::<Role>();
    send_and_sync::<Flow>();
    send_and_sync::<RecvStatus>();
    send_and_sync::<SendStatus>();
}

#[test]
fn the_handshake_types_are_send_and_sync() {
    send_and_sync::<ClientRequest>();
    send_and_sync::<ClientHandshake>();
    send_and_sync::<Response>();
    send_and_sync::<Request>();
    send_and_sync::<ServerHandshake>();
    send_and_sync::<HandshakeError>();
    #[cfg(feature = "deflate")]
    send_and_sync::<net_websocket_ev::handshake::deflate::PerMessageDeflate>();
}
