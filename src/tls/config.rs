//! What a TLS server or client is configured with: [`ServerTls`] and [`ClientTls`],
//! each a shared rustls config built from PEM files or given ready-made.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

/// Picks the certificate for the server name a client asked for (SNI; `None` when
/// it sent none). `None` refuses the handshake.
type PickCert = dyn Fn(Option<&str>) -> Option<Arc<CertifiedKey>> + Send + Sync;

/// Why a TLS configuration could not be built.
///
/// [`Io`](Self::Io) and [`Rustls`](Self::Rustls) say what failed and return the
/// underlying error from [`source`](std::error::Error::source).
///
/// ```
/// use net_websocket_ev::tls::ServerTls;
/// use std::error::Error as _;
///
/// let err = ServerTls::from_pem_files("no/such/cert.pem", "no/such/key.pem").unwrap_err();
/// assert_eq!(err.to_string(), "cannot read no/such/cert.pem");
/// let cause = err.source().expect("the I/O error");
/// assert_eq!(
///     cause.downcast_ref::<std::io::Error>().map(|e| e.kind()),
///     Some(std::io::ErrorKind::NotFound)
/// );
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: io::Error,
    },
    /// PEM input held no certificate, no private key, or something unparsable; or
    /// the configuration lacks a part (a server's certificate, a client's trusted
    /// roots), or a server name is not valid. The text names the problem.
    Pem(String),
    /// rustls refused the configuration (a key that does not fit the certificate,
    /// an unsupported key type, an invalid CA, a bad server name).
    Rustls(rustls::Error),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Io { path, .. } => write!(f, "cannot read {}", path.display()),
            TlsError::Pem(what) => f.write_str(what),
            TlsError::Rustls(_) => f.write_str("rustls refused the TLS configuration"),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsError::Io { error, .. } => Some(error),
            TlsError::Pem(_) => None,
            TlsError::Rustls(err) => Some(err),
        }
    }
}

impl From<rustls::Error> for TlsError {
    fn from(err: rustls::Error) -> TlsError {
        TlsError::Rustls(err)
    }
}

/// The crypto provider of every config built here: ring (see `Cargo.toml` for why).
fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(ring::default_provider()))
        .clone()
}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::Io {
        path: path.to_owned(),
        error,
    })
}

/// Every certificate in PEM input, in order; at least one.
fn certs_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| TlsError::Pem(format!("bad PEM certificate: {err}")))?;
    if certs.is_empty() {
        return Err(TlsError::Pem("no certificate in PEM input".into()));
    }
    Ok(certs)
}

/// The first private key in PEM input (PKCS#8, PKCS#1 or SEC1).
fn key_from_pem(pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem)
        .map_err(|err| TlsError::Pem(format!("no usable private key in PEM input: {err}")))
}

fn roots_from_pem(roots: &mut RootCertStore, pem: &[u8]) -> Result<(), TlsError> {
    for cert in certs_from_pem(pem)? {
        roots.add(cert)?;
    }
    Ok(())
}

// ---- server ------------------------------------------------------------------

/// A TLS server's configuration: a shared [`rustls::ServerConfig`], cheap to clone.
///
/// ```no_run
/// use net_websocket_ev::tls::ServerTls;
///
/// let plain = ServerTls::from_pem_files("cert.pem", "key.pem")?;
/// // Clients must show a certificate signed by this CA (mutual TLS):
/// let mutual = ServerTls::builder()
///     .cert_pem_files("cert.pem", "key.pem")?
///     .client_ca_pem_file("clients-ca.pem")?
///     .build()?;
/// # Ok::<(), net_websocket_ev::tls::TlsError>(())
/// ```
#[derive(Clone)]
pub struct ServerTls {
    pub(crate) config: Arc<ServerConfig>,
}

impl ServerTls {
    /// A server with one certificate chain (leaf first) and its private key, from PEM
    /// files: [`builder`](Self::builder) with [`cert_pem_files`](ServerTlsBuilder::cert_pem_files).
    pub fn from_pem_files(
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<ServerTls, TlsError> {
        ServerTls::builder()
            .cert_pem_files(cert_chain, key)?
            .build()
    }

    /// A ready rustls configuration, used as it is (its ALPN list included: leave it
    /// empty or put `http/1.1` in it; WebSockets do not run over `h2` here).
    pub fn from_config(config: Arc<ServerConfig>) -> ServerTls {
        ServerTls { config }
    }

    /// A builder: a certificate (or an SNI callback), optionally client certificates.
    pub fn builder() -> ServerTlsBuilder {
        ServerTlsBuilder {
            cert: None,
            client_roots: None,
            client_cert_optional: false,
        }
    }

    /// A certificate chain and key from PEM files as SNI callbacks return them.
    ///
    /// ```no_run
    /// use net_websocket_ev::tls::ServerTls;
    ///
    /// let a = ServerTls::certified_key_from_pem_files("a.pem", "a.key")?;
    /// let b = ServerTls::certified_key_from_pem_files("b.pem", "b.key")?;
    /// let tls = ServerTls::builder()
    ///     .sni(move |name| match name {
    ///         Some("b.example") => Some(b.clone()),
    ///         _ => Some(a.clone()),
    ///     })
    ///     .build()?;
    /// # Ok::<(), net_websocket_ev::tls::TlsError>(())
    /// ```
    pub fn certified_key_from_pem_files(
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Arc<CertifiedKey>, TlsError> {
        let chain = read_file(cert_chain.as_ref())?;
        let key = read_file(key.as_ref())?;
        ServerTls::certified_key_from_pem(&chain, &key)
    }

    /// [`certified_key_from_pem_files`](Self::certified_key_from_pem_files) from PEM
    /// bytes.
    pub fn certified_key_from_pem(
        cert_chain: &[u8],
        key: &[u8],
    ) -> Result<Arc<CertifiedKey>, TlsError> {
        let chain = certs_from_pem(cert_chain)?;
        let key = provider()
            .key_provider
            .load_private_key(key_from_pem(key)?)?;
        let certified = CertifiedKey::new(chain, key);
        certified.keys_match().or_else(|err| match err {
            // The key type cannot tell (nothing to compare): accept it.
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown) => Ok(()),
            err => Err(err),
        })?;
        Ok(Arc::new(certified))
    }

    /// The rustls configuration.
    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

/// Builds a [`ServerTls`]: [`ServerTls::builder`].
pub struct ServerTlsBuilder {
    cert: Option<Arc<dyn ResolvesServerCert>>,
    client_roots: Option<RootCertStore>,
    client_cert_optional: bool,
}

impl ServerTlsBuilder {
    /// The certificate chain (leaf first) and private key, from PEM files.
    pub fn cert_pem_files(
        self,
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<ServerTlsBuilder, TlsError> {
        let key = ServerTls::certified_key_from_pem_files(cert_chain, key)?;
        Ok(self.sni(move |_| Some(key.clone())))
    }

    /// The certificate chain and key from PEM bytes.
    pub fn cert_pem(self, cert_chain: &[u8], key: &[u8]) -> Result<ServerTlsBuilder, TlsError> {
        let key = ServerTls::certified_key_from_pem(cert_chain, key)?;
        Ok(self.sni(move |_| Some(key.clone())))
    }

    /// Picks the certificate per connection from the server name the client sent
    /// (SNI), `None` if it sent none; returning `None` refuses the handshake. It runs
    /// on the loop's thread, inside the handshake: keep it quick.
    pub fn sni(
        mut self,
        pick: impl Fn(Option<&str>) -> Option<Arc<CertifiedKey>> + Send + Sync + 'static,
    ) -> ServerTlsBuilder {
        self.cert = Some(Arc::new(Sni(Box::new(pick))));
        self
    }

    /// Requires clients to show a certificate signed by a CA in this PEM file
    /// (several CAs: call again); see [`client_cert_optional`](Self::client_cert_optional).
    /// The certificate a client showed is in [`Session::rustls`](super::Session::rustls)'s
    /// `peer_certificates()`.
    pub fn client_ca_pem_file(self, path: impl AsRef<Path>) -> Result<ServerTlsBuilder, TlsError> {
        let pem = read_file(path.as_ref())?;
        self.client_ca_pem(&pem)
    }

    /// [`client_ca_pem_file`](Self::client_ca_pem_file) from PEM bytes.
    pub fn client_ca_pem(mut self, pem: &[u8]) -> Result<ServerTlsBuilder, TlsError> {
        roots_from_pem(
            self.client_roots.get_or_insert_with(RootCertStore::empty),
            pem,
        )?;
        Ok(self)
    }

    /// With a client CA: also let clients without a certificate in (a certificate
    /// shown is still checked). Default false.
    pub fn client_cert_optional(mut self, optional: bool) -> ServerTlsBuilder {
        self.client_cert_optional = optional;
        self
    }

    /// The configuration (TLS 1.2 and 1.3, rustls's safe defaults).
    pub fn build(self) -> Result<ServerTls, TlsError> {
        let cert = self.cert.ok_or_else(|| {
            TlsError::Pem(
                "a TLS server needs a certificate: call cert_pem_files(), cert_pem() or sni()"
                    .into(),
            )
        })?;
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?;
        let builder = match self.client_roots {
            None => builder.with_no_client_auth(),
            Some(roots) => {
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
                let verifier = if self.client_cert_optional {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                let verifier = verifier
                    .build()
                    .map_err(|err| TlsError::Pem(format!("bad client CA: {err}")))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder.with_cert_resolver(cert);
        Ok(ServerTls {
            config: Arc::new(config),
        })
    }
}

impl fmt::Debug for ServerTlsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTlsBuilder")
            .field("cert", &self.cert.is_some())
            .field("client_roots", &self.client_roots.as_ref().map(|r| r.len()))
            .field("client_cert_optional", &self.client_cert_optional)
            .finish()
    }
}

/// An SNI callback as rustls's certificate resolver.
struct Sni(Box<PickCert>);

impl ResolvesServerCert for Sni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        (self.0)(hello.server_name())
    }
}

impl fmt::Debug for Sni {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sni")
    }
}

// ---- client ------------------------------------------------------------------

/// Where a client's trusted roots come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Roots {
    /// The Mozilla set built into the crate (`webpki-roots`): the same on every
    /// machine. The default.
    Bundled,
    /// The system's store (`/etc/ssl/certs` and the like, as OpenSSL finds it).
    System,
    /// Both.
    BundledAndSystem,
    /// None: only CAs added with [`ClientTlsBuilder::ca_pem_file`].
    None,
}

/// A TLS client's configuration: a shared [`rustls::ClientConfig`], cheap to clone.
/// The server's certificate is checked against the roots and the name the client
/// connects to (the URL's host).
///
/// ```no_run
/// use net_websocket_ev::tls::{ClientTls, Roots};
///
/// let default = ClientTls::default(); // the built-in Mozilla roots
/// let custom = ClientTls::builder()
///     .roots(Roots::System)
///     .ca_pem_file("my-ca.pem")?
///     .client_cert_pem_files("me.pem", "me.key")?
///     .build()?;
/// # Ok::<(), net_websocket_ev::tls::TlsError>(())
/// ```
#[derive(Clone)]
pub struct ClientTls {
    pub(crate) config: Arc<ClientConfig>,
}

impl Default for ClientTls {
    /// The built-in roots, no client certificate; built once per process.
    fn default() -> ClientTls {
        static DEFAULT: OnceLock<Arc<ClientConfig>> = OnceLock::new();
        let config = DEFAULT.get_or_init(|| {
            let mut roots = RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            let config = ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .expect("ring supports rustls's default protocol versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            Arc::new(config)
        });
        ClientTls {
            config: config.clone(),
        }
    }
}

impl ClientTls {
    /// A builder: roots, extra CAs, a client certificate.
    pub fn builder() -> ClientTlsBuilder {
        ClientTlsBuilder {
            roots: Roots::Bundled,
            extra: RootCertStore::empty(),
            client_cert: None,
            skip_verification: false,
        }
    }

    /// A ready rustls configuration, used as it is.
    pub fn from_config(config: Arc<ClientConfig>) -> ClientTls {
        ClientTls { config }
    }

    /// The rustls configuration.
    pub fn config(&self) -> &Arc<ClientConfig> {
        &self.config
    }
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls").finish_non_exhaustive()
    }
}

/// Builds a [`ClientTls`]: [`ClientTls::builder`].
#[derive(Debug)]
pub struct ClientTlsBuilder {
    roots: Roots,
    extra: RootCertStore,
    client_cert: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    skip_verification: bool,
}

impl ClientTlsBuilder {
    /// Where the trusted roots come from (default [`Roots::Bundled`]).
    pub fn roots(mut self, roots: Roots) -> ClientTlsBuilder {
        self.roots = roots;
        self
    }

    /// Also trusts the CA certificates in this PEM file.
    pub fn ca_pem_file(self, path: impl AsRef<Path>) -> Result<ClientTlsBuilder, TlsError> {
        let pem = read_file(path.as_ref())?;
        self.ca_pem(&pem)
    }

    /// [`ca_pem_file`](Self::ca_pem_file) from PEM bytes.
    pub fn ca_pem(mut self, pem: &[u8]) -> Result<ClientTlsBuilder, TlsError> {
        roots_from_pem(&mut self.extra, pem)?;
        Ok(self)
    }

    /// Shows this certificate chain (leaf first) to servers that ask (mutual TLS).
    pub fn client_cert_pem_files(
        self,
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<ClientTlsBuilder, TlsError> {
        let chain = read_file(cert_chain.as_ref())?;
        let key = read_file(key.as_ref())?;
        self.client_cert_pem(&chain, &key)
    }

    /// [`client_cert_pem_files`](Self::client_cert_pem_files) from PEM bytes.
    pub fn client_cert_pem(
        mut self,
        cert_chain: &[u8],
        key: &[u8],
    ) -> Result<ClientTlsBuilder, TlsError> {
        self.client_cert = Some((certs_from_pem(cert_chain)?, key_from_pem(key)?));
        Ok(self)
    }

    /// **Insecure: for tests only.** Accepts any server certificate, for any name,
    /// expired or self-signed: anyone on the path can read and change the traffic.
    /// (The handshake's signatures are still checked, so the session is at least
    /// with whoever holds the certificate's key.)
    pub fn dangerous_accept_any_server_certificate(mut self) -> ClientTlsBuilder {
        self.skip_verification = true;
        self
    }

    /// The configuration (TLS 1.2 and 1.3, rustls's safe defaults). Fails with
    /// [`Roots::None`] and no CA added, unless verification is skipped.
    pub fn build(self) -> Result<ClientTls, TlsError> {
        let mut roots = RootCertStore::empty();
        if matches!(self.roots, Roots::Bundled | Roots::BundledAndSystem) {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        if matches!(self.roots, Roots::System | Roots::BundledAndSystem) {
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                let why = found
                    .errors
                    .first()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default();
                return Err(TlsError::Pem(format!(
                    "no certificate in the system's store{why}"
                )));
            }
            roots.add_parsable_certificates(found.certs);
        }
        roots.roots.extend(self.extra.roots);
        if roots.is_empty() && !self.skip_verification {
            return Err(TlsError::Pem(
                "no trusted root: add a CA (ca_pem_file(), ca_pem()) or choose roots (roots())"
                    .into(),
            ));
        }
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?;
        let builder = if self.skip_verification {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider())))
        } else {
            builder.with_root_certificates(roots)
        };
        let config = match self.client_cert {
            Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
            None => builder.with_no_client_auth(),
        };
        Ok(ClientTls {
            config: Arc::new(config),
        })
    }
}

/// [`ClientTlsBuilder::dangerous_accept_any_server_certificate`]'s verifier: any
/// certificate, but signatures made with its key are still checked.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
