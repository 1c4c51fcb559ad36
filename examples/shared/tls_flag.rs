//! The examples' TLS flags: `--tls-cert FILE --tls-key FILE` (echo_server) and
//! `--ca FILE` (client), as the handshake options they stand for. Included by
//! `echo_server.rs` and `client.rs` (`mod tls_flag;`). Without the `tls` feature
//! the flags are refused with a hint.

#![allow(dead_code)] // each example uses one half

use net_websocket_ev::websocket::upgrade::HandshakeOptions;

/// A server's certificate, loaded once, for every connection accepted on a port.
#[derive(Clone, Default)]
pub struct ServerTlsFlag {
    #[cfg(feature = "tls")]
    tls: Option<net_websocket_ev::tls::ServerTls>,
}

impl ServerTlsFlag {
    /// Both files or neither.
    pub fn load(cert: Option<&str>, key: Option<&str>) -> Result<ServerTlsFlag, String> {
        match (cert, key) {
            (None, None) => Ok(ServerTlsFlag::default()),
            (Some(cert), Some(key)) => ServerTlsFlag::load_pair(cert, key),
            _ => Err("--tls-cert and --tls-key go together".into()),
        }
    }

    #[cfg(feature = "tls")]
    fn load_pair(cert: &str, key: &str) -> Result<ServerTlsFlag, String> {
        let tls = net_websocket_ev::tls::ServerTls::from_pem_files(cert, key)
            .map_err(|err| format!("--tls-cert/--tls-key: {err}"))?;
        Ok(ServerTlsFlag { tls: Some(tls) })
    }

    #[cfg(not(feature = "tls"))]
    fn load_pair(_cert: &str, _key: &str) -> Result<ServerTlsFlag, String> {
        Err("--tls-cert needs the tls feature (cargo run --features tls ...)".into())
    }

    /// Whether a certificate was given.
    pub fn is_on(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }

    /// The handshake runs TLS first if a certificate was given.
    pub fn apply(&self, options: &mut HandshakeOptions) {
        #[cfg(feature = "tls")]
        {
            options.server_tls = self.tls.clone();
        }
        #[cfg(not(feature = "tls"))]
        let _ = options;
    }
}

/// A client's trust: the built-in roots plus `--ca FILE`, or (`--insecure`) none.
#[derive(Clone, Default)]
pub struct ClientTlsFlag {
    #[cfg(feature = "tls")]
    tls: Option<net_websocket_ev::tls::ClientTls>,
}

impl ClientTlsFlag {
    pub fn load(ca: Option<&str>, insecure: bool) -> Result<ClientTlsFlag, String> {
        if ca.is_none() && !insecure {
            return Ok(ClientTlsFlag::default());
        }
        ClientTlsFlag::build(ca, insecure)
    }

    #[cfg(feature = "tls")]
    fn build(ca: Option<&str>, insecure: bool) -> Result<ClientTlsFlag, String> {
        let mut builder = net_websocket_ev::tls::ClientTls::builder();
        if let Some(ca) = ca {
            builder = builder
                .ca_pem_file(ca)
                .map_err(|err| format!("--ca: {err}"))?;
        }
        if insecure {
            builder = builder.dangerous_accept_any_server_certificate();
        }
        let tls = builder.build().map_err(|err| format!("--ca: {err}"))?;
        Ok(ClientTlsFlag { tls: Some(tls) })
    }

    #[cfg(not(feature = "tls"))]
    fn build(_ca: Option<&str>, _insecure: bool) -> Result<ClientTlsFlag, String> {
        Err("--ca and --insecure need the tls feature (cargo run --features tls ...)".into())
    }

    /// A `wss://` handshake trusts what the flags say (the built-in roots without them).
    pub fn apply(&self, options: &mut HandshakeOptions) {
        #[cfg(feature = "tls")]
        {
            options.client_tls = self.tls.clone();
        }
        #[cfg(not(feature = "tls"))]
        let _ = options;
    }
}
