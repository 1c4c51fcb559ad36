//! A TLS session over a non-blocking socket: rustls's sans-IO connection, read and
//! written through the socket the caller lends for each call.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConnection, Connection, ProtocolVersion, ServerConnection};

use super::{ClientTls, ServerTls, TlsError};

/// A TLS session (rustls's connection): made by the loop-driven handshake and carried
/// by [`Upgraded::tls`](crate::websocket::upgrade::Upgraded::tls) into
/// [`Params::tls`](crate::Params::tls), or made from a rustls connection of one's own.
///
/// What the handshake agreed on (the peer's certificates, the server name a client
/// asked for, the protocol version) is in [`rustls`](Self::rustls).
pub struct Session {
    conn: Connection,
    /// Plaintext rustls holds that was not read yet: no fd event will announce it.
    buffered: usize,
    /// TLS bytes written to the socket since [`take_flushed`](Self::take_flushed):
    /// progress that the plaintext counts of `write_via` do not show.
    flushed: usize,
}

/// An error of rustls's as an I/O error, so that it travels up through `Read` and
/// `Write`; [`tls_error`] finds it again.
fn to_io(err: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, err)
}

/// The TLS error inside an I/O error, if it carries one.
pub(crate) fn tls_error(err: &io::Error) -> Option<&rustls::Error> {
    err.get_ref()?.downcast_ref::<rustls::Error>()
}

impl Session {
    /// A server session that has not started: the client speaks first.
    pub fn server(tls: &ServerTls) -> Result<Session, TlsError> {
        Ok(Session::from(ServerConnection::new(tls.config.clone())?))
    }

    /// A client session to `server_name` (a DNS name or an IP address, without port
    /// or brackets): the name the server's certificate must carry, also sent as SNI.
    pub fn client(tls: &ClientTls, server_name: &str) -> Result<Session, TlsError> {
        let name = ServerName::try_from(server_name.to_owned()).map_err(|_| {
            TlsError::Pem(format!(
                "{server_name:?} is not a valid server name: give a DNS name or an IP \
                 address, without port or brackets"
            ))
        })?;
        Ok(Session::from(ClientConnection::new(
            tls.config.clone(),
            name,
        )?))
    }

    /// The rustls connection: the peer's certificates (`peer_certificates()`), the
    /// protocol version, the cipher suite, the ALPN protocol; on a server, the SNI
    /// name (`Connection::Server(c) => c.server_name()`).
    pub fn rustls(&self) -> &Connection {
        &self.conn
    }

    /// What the handshake agreed on, as a copy.
    pub fn info(&self) -> TlsInfo {
        let server_name = match &self.conn {
            Connection::Server(conn) => conn.server_name().map(str::to_owned),
            Connection::Client(_) => None,
        };
        TlsInfo {
            protocol_version: self.conn.protocol_version(),
            cipher_suite: self.conn.negotiated_cipher_suite().map(|s| s.suite()),
            server_name,
            alpn_protocol: self.conn.alpn_protocol().map(<[u8]>::to_vec),
            peer_certificates: self
                .conn
                .peer_certificates()
                .map(<[_]>::to_vec)
                .unwrap_or_default(),
        }
    }

    /// Whether the TLS handshake is still under way.
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Reads plaintext: what rustls holds first, then TLS records from `socket`, as
    /// much as needed for one byte. `Ok(0)` at the end of the peer's data: its
    /// `close_notify`, or the end of TCP without one. A TLS error comes back as an
    /// `InvalidData` I/O error carrying it (with the alert for the peer written, if
    /// the socket takes it).
    pub(crate) fn read_via(&mut self, socket: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => {
                    self.buffered = self.buffered.saturating_sub(n);
                    return Ok(n);
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(err) => return Err(err),
            }
            let mut from = socket;
            match self.conn.read_tls(&mut from) {
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            }
            match self.conn.process_new_packets() {
                Ok(state) => self.buffered = state.plaintext_bytes_to_read(),
                Err(err) => {
                    let _ = self.flush_via(socket); // the alert, if it fits
                    return Err(to_io(err));
                }
            }
            // Handshake messages, a key update's answer: out at once.
            self.flush_via(socket)?;
        }
    }

    /// Encrypts plaintext and writes what it can; `WouldBlock` once rustls holds as
    /// much as its buffer limit (64 KiB) and the socket takes nothing.
    pub(crate) fn write_via(&mut self, socket: &TcpStream, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.flush_via(socket)?;
        let n = self.conn.writer().write(buf)?;
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.flush_via(socket)?;
        Ok(n)
    }

    /// Writes the TLS records rustls holds until the socket would block.
    pub(crate) fn flush_via(&mut self, socket: &TcpStream) -> io::Result<()> {
        let mut to = socket;
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut to) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.flushed += n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }

    /// TLS bytes written to the socket since the last call.
    pub(crate) fn take_flushed(&mut self) -> usize {
        std::mem::take(&mut self.flushed)
    }

    /// Whether rustls holds TLS records the socket has not taken yet.
    pub(crate) fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    /// Whether rustls holds plaintext not read yet.
    pub(crate) fn has_buffered_input(&self) -> bool {
        self.buffered > 0
    }

    /// Sends `close_notify`, as far as the socket takes it now.
    pub(crate) fn close_via(&mut self, socket: &TcpStream) {
        self.conn.send_close_notify();
        let _ = self.flush_via(socket);
    }
}

/// What a TLS session agreed on: [`Session::info`],
/// [`WebSocket::tls_info`](crate::WebSocket::tls_info).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsInfo {
    /// TLS 1.2 or 1.3 (`None` while the handshake is under way).
    pub protocol_version: Option<ProtocolVersion>,
    /// The cipher suite agreed on.
    pub cipher_suite: Option<rustls::CipherSuite>,
    /// A server's view: the name the client asked for (SNI), if it sent one.
    pub server_name: Option<String>,
    /// The ALPN protocol agreed on, if any.
    pub alpn_protocol: Option<Vec<u8>>,
    /// The peer's certificate chain, leaf first: a client's (when the server asked
    /// for client certificates) or a server's; empty if it showed none.
    pub peer_certificates: Vec<CertificateDer<'static>>,
}

impl From<ServerConnection> for Session {
    fn from(conn: ServerConnection) -> Session {
        Session::from(Connection::Server(conn))
    }
}

impl From<ClientConnection> for Session {
    fn from(conn: ClientConnection) -> Session {
        Session::from(Connection::Client(conn))
    }
}

impl From<Connection> for Session {
    /// A session in any state: one whose handshake ran elsewhere carries on.
    fn from(mut conn: Connection) -> Session {
        let buffered = conn
            .process_new_packets()
            .map_or(0, |state| state.plaintext_bytes_to_read());
        Session {
            conn,
            buffered,
            flushed: 0,
        }
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("handshaking", &self.conn.is_handshaking())
            .field("buffered", &self.buffered)
            .finish_non_exhaustive()
    }
}
