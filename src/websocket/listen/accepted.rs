//! [`Accepted`]: a connection whose handshake succeeded, on its way to
//! `Server::new`.

use std::fmt;
use std::net::SocketAddr;

use crate::handshake::Request;
use crate::websocket::upgrade::Upgraded;
use crate::websocket::Params;

use super::params::ConnectionDefaults;
use super::slots::Slot;

/// A connection whose handshake succeeded, as `on_connect` gets it: make it a
/// connection with `Server::new(accepted.into_params()...)`. It counts against
/// the listener's caps until its socket is closed (dropped unused, it is closed
/// now).
pub struct Accepted {
    pub(super) upgraded: Upgraded<Request>,
    pub(super) slot: Slot,
    pub(super) defaults: ConnectionDefaults,
}

impl Accepted {
    /// The client's request: path and query, headers, cookies, the subprotocols
    /// and extensions offered.
    ///
    /// ```no_run
    /// # let accepted: net_websocket_ev::Accepted = unimplemented!();
    /// let (path, query) = accepted.request().path_and_query();
    /// let session = accepted.request().cookie("session");
    /// ```
    pub fn request(&self) -> &Request {
        &self.upgraded.head
    }

    /// The subprotocol agreed on, if any.
    ///
    /// ```no_run
    /// # let accepted: net_websocket_ev::Accepted = unimplemented!();
    /// if accepted.protocol() == Some("chat") { /* ... */ }
    /// ```
    pub fn protocol(&self) -> Option<&str> {
        self.upgraded.protocol.as_deref()
    }

    /// The client's address.
    ///
    /// ```no_run
    /// # let accepted: net_websocket_ev::Accepted = unimplemented!();
    /// println!("from {:?}", accepted.peer_addr());
    /// ```
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.upgraded.head.peer
    }

    /// The whole handshake's result: TLS session, compression agreed, leftover bytes.
    ///
    /// ```no_run
    /// # let accepted: net_websocket_ev::Accepted = unimplemented!();
    /// let first_bytes = accepted.upgraded().leftover.len();
    /// ```
    pub fn upgraded(&self) -> &Upgraded<Request> {
        &self.upgraded
    }

    /// The parameters of the connection, for [`Server::new`](crate::websocket::Server::new):
    /// the socket, TLS session, compression, leftover bytes and loop of the
    /// handshake, plus the listener's settings for its connections (see
    /// [`ListenParams`](super::ListenParams)): keepalive pings after the keepalive
    /// period of silence and [`Params::idle_timeout`] = period + pong timeout,
    /// [`Params::max_fragments`] and [`Params::message_timeout`]. Add the
    /// callbacks and any other setting (a later setter overrides the listener's).
    ///
    /// ```no_run
    /// # let accepted: net_websocket_ev::Accepted = unimplemented!();
    /// use net_websocket_ev::Server;
    /// let ws = Server::new(accepted.into_params().on_msg_recv(|ws, _, op, msg, _| {
    ///     ws.queue_msg(msg, op).ok();
    /// }))
    /// .unwrap();
    /// ```
    pub fn into_params(self) -> Params {
        let mut params = self.defaults.apply(self.upgraded.into_params());
        params.guard = Some(Box::new(self.slot));
        params
    }
}

impl fmt::Debug for Accepted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accepted")
            .field("peer", &self.upgraded.head.peer)
            .field("path", &self.upgraded.head.path)
            .field("protocol", &self.upgraded.protocol)
            .finish_non_exhaustive()
    }
}
