//! SSL_GET's TLS client: rustls with ring, TLS 1.2 or 1.3, and as keepalived's SSL_GET, any
//! server certificate. With keepalived's global `SSL { certificate, key }` block the client
//! presents that certificate when the real server asks for one ([`ClientCert`]).

use std::sync::{Arc, LazyLock, Mutex};

use rustls::{
    ClientConfig, DigitallySignedStruct, InconsistentKeys, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature},
    pki_types::{
        CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
        ServerName, UnixTime, pem::PemObject as _,
    },
    sign::{CertifiedKey, SingleCertAndKey},
};
use tokio_rustls::TlsConnector;

/// SSL_GET's client certificate: keepalived's `SSL { certificate, key }`, read and checked.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ClientCert {
    /// The certificates (DER), the client's first, as in the PEM file.
    chain: Vec<Vec<u8>>,
    key: Vec<u8>,
    format: KeyFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum KeyFormat {
    Pkcs1,
    Sec1,
    Pkcs8,
}

impl std::fmt::Debug for ClientCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCert")
            .field("certificates", &self.chain.len())
            .field("key", &format_args!("<{:?} key, not shown>", self.format))
            .finish()
    }
}

/// Why a certificate and key cannot be SSL_GET's client certificate.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientCertError {
    #[error("no PEM certificate in it")]
    NoCertificate,
    #[error("no PEM private key in it (PKCS #8, PKCS #1 or SEC1)")]
    NoKey,
    #[error(
        "the private key is encrypted, which lb cannot decrypt: decrypt it (`openssl pkey -in \
         KEY -out PLAIN.key`, readable by root only) and name that file"
    )]
    EncryptedKey,
    #[error("invalid PEM: {0}")]
    BadPem(String),
    #[error("the TLS library refuses them: {0}")]
    Refused(String),
}

impl ClientCert {
    /// A certificate chain (PEM, the client's certificate first) and its private key (PEM,
    /// unencrypted), refused unless rustls takes them together (the key must be the
    /// certificate's).
    pub fn from_pem(chain: &str, key: &str) -> Result<Self, ClientCertError> {
        let chain = certificates(chain)?;
        if key.contains("ENCRYPTED PRIVATE KEY") || key.contains("Proc-Type: 4,ENCRYPTED") {
            return Err(ClientCertError::EncryptedKey);
        }
        let parsed = match PrivateKeyDer::from_pem_slice(key.as_bytes()) {
            Ok(key) => key,
            Err(rustls::pki_types::pem::Error::NoItemsFound) => {
                return Err(ClientCertError::NoKey);
            }
            Err(e) => return Err(ClientCertError::BadPem(e.to_string())),
        };
        let format = match &parsed {
            PrivateKeyDer::Pkcs1(_) => KeyFormat::Pkcs1,
            PrivateKeyDer::Sec1(_) => KeyFormat::Sec1,
            _ => KeyFormat::Pkcs8,
        };
        let cert = ClientCert {
            chain: chain.into_iter().map(|c| c.to_vec()).collect(),
            key: parsed.secret_der().to_vec(),
            format,
        };
        client_config(Some(&cert)).map_err(|e| ClientCertError::Refused(e.to_string()))?;
        Ok(cert)
    }

    fn key(&self) -> PrivateKeyDer<'static> {
        let der = self.key.clone();
        match self.format {
            KeyFormat::Pkcs1 => PrivatePkcs1KeyDer::from(der).into(),
            KeyFormat::Sec1 => PrivateSec1KeyDer::from(der).into(),
            KeyFormat::Pkcs8 => PrivatePkcs8KeyDer::from(der).into(),
        }
    }
}

/// The certificates of a PEM file (at least one).
pub fn certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>, ClientCertError> {
    let chain = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ClientCertError::BadPem(e.to_string()))?;
    if chain.is_empty() {
        return Err(ClientCertError::NoCertificate);
    }
    Ok(chain)
}

fn provider() -> Arc<CryptoProvider> {
    #[expect(
        deprecated,
        reason = "ring has no post-quantum key exchange, which a health check can do without; \
                  aws-lc-rs, which has, needs cmake and a much longer build"
    )]
    let provider = rustls::crypto::ring::default_provider();
    Arc::new(provider)
}

/// SSL_GET's client configuration: TLS 1.2 or 1.3 with rustls's safe defaults (ring), any
/// server certificate, and `cert` if given.
fn client_config(cert: Option<&ClientCert>) -> Result<ClientConfig, rustls::Error> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)));
    match cert {
        None => Ok(builder.with_no_client_auth()),
        Some(cert) => {
            let chain = cert.chain.iter().map(|c| c.clone().into()).collect();
            let key = builder
                .crypto_provider()
                .key_provider
                .load_private_key(cert.key())?;
            let certified = CertifiedKey::new(chain, key);
            // A key that is not the certificate's is refused. A certificate webpki cannot
            // parse (an X.509 v1 one, as `openssl x509 -req` makes) is still presented, as
            // OpenSSL, and so keepalived, presents it: the real server judges it.
            if let Err(e @ rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) =
                certified.keys_match()
            {
                return Err(e);
            }
            Ok(builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(certified))))
        }
    }
}

/// Without a client certificate.
static PLAIN: LazyLock<TlsConnector> = LazyLock::new(|| {
    let config = client_config(None).expect("ring supports the default protocol versions");
    TlsConnector::from(Arc::new(config))
});

/// With the client certificate last asked for (a configuration has one `SSL` block).
static WITH_CERT: Mutex<Option<(ClientCert, TlsConnector)>> = Mutex::new(None);

/// The connector for a check that presents `cert` (or none).
pub(super) fn connector(cert: Option<&ClientCert>) -> Result<TlsConnector, String> {
    let Some(cert) = cert else {
        return Ok(PLAIN.clone());
    };
    let mut cached = WITH_CERT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((held, connector)) = cached.as_ref()
        && held == cert
    {
        return Ok(connector.clone());
    }
    let config = client_config(Some(cert)).map_err(|e| format!("client certificate: {e}"))?;
    let connector = TlsConnector::from(Arc::new(config));
    *cached = Some((cert.clone(), connector.clone()));
    Ok(connector)
}

/// Takes any certificate, as keepalived's SSL_GET does unless given a CA: a health check asks
/// whether the real server answers, not who it is. The handshake's signatures are still
/// checked against the certificate presented.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
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
        verify_tls12_signature(
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
        verify_tls13_signature(
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
