//! A test PKI made at run time (no private key is ever checked in): a CA, a server
//! certificate for `localhost`, 127.0.0.1 and ::1, and a client certificate, all
//! signed by the CA; with the TLS configs the tests use.

use net_websocket_ev::tls::{ClientTls, ServerTls};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// PEM text of a CA and of certificates it signed.
pub struct TestPki {
    pub ca_cert: String,
    pub server_cert: String,
    pub server_key: String,
    pub client_cert: String,
    pub client_key: String,
}

impl TestPki {
    /// A fresh CA with a server and a client certificate.
    pub fn new() -> TestPki {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "net-websocket-ev test CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let (server_cert, server_key) = TestPki::leaf(&issuer, &["localhost", "127.0.0.1", "::1"]);
        let (client_cert, client_key) = TestPki::leaf(&issuer, &["client.test"]);
        TestPki {
            ca_cert: ca_cert.pem(),
            server_cert,
            server_key,
            client_cert,
            client_key,
        }
    }

    /// A certificate for `names` signed by `issuer`, and its key, as PEM.
    fn leaf(issuer: &Issuer<'_, KeyPair>, names: &[&str]) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.signed_by(&key, issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A server presenting the server certificate.
    pub fn server_tls(&self) -> ServerTls {
        ServerTls::builder()
            .cert_pem(self.server_cert.as_bytes(), self.server_key.as_bytes())
            .unwrap()
            .build()
            .unwrap()
    }

    /// A client trusting only the test CA.
    pub fn client_tls(&self) -> ClientTls {
        ClientTls::builder()
            .roots(net_websocket_ev::tls::Roots::None)
            .ca_pem(self.ca_cert.as_bytes())
            .unwrap()
            .build()
            .unwrap()
    }
}
