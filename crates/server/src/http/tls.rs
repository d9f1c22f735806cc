//! TLS on the listening port: https and wss with rustls (ring), from a PEM
//! certificate chain and private key, reloaded from the same files without
//! dropping connections.
//!
//! Owns reading and checking the files ([`load`], also used by
//! `checkconfig`), the current acceptor configuration ([`Tls`]: new
//! connections use the newest one, connections already open keep theirs)
//! and reloading it on SIGHUP. It does not accept connections nor speak
//! HTTP (`http` does): it only turns a TCP stream into a TLS one.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// Why a certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// The certificate file holds no PEM certificate.
    #[error("{0} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    NoCertificate(PathBuf),
    /// The key file holds no usable PEM private key.
    #[error("{path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1): {reason}")]
    NoKey {
        /// The file.
        path: PathBuf,
        /// What the PEM parser said.
        reason: String,
    },
    /// rustls refused the pair (e.g. the key does not match the certificate).
    #[error("certificate {cert} with key {key}: {source}")]
    Rustls {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        source: rustls::Error,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Reads a certificate chain (`cert`, PEM, leaf first) and its private key
/// (`key`, PEM) into a server configuration offering HTTP/1.1.
pub fn load(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let cert_pem = read(cert)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert.to_owned()));
    }
    let key_pem = read(key)?;
    let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::NoKey {
        path: key.to_owned(),
        reason: e.to_string(),
    })?;
    let rustls_error = |source| TlsError::Rustls {
        cert: cert.to_owned(),
        key: key.to_owned(),
        source,
    };
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(rustls_error)?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(rustls_error)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The TLS settings of a listener: the files and the configuration last
/// read from them.
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<ServerConfig>>,
}

impl Tls {
    /// Reads `cert` and `key`.
    pub fn new(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        Ok(Self {
            current: RwLock::new(load(cert, key)?),
            cert: cert.to_owned(),
            key: key.to_owned(),
        })
    }

    /// An acceptor with the newest configuration, for one new connection.
    pub fn acceptor(&self) -> TlsAcceptor {
        let config = self
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        TlsAcceptor::from(config)
    }

    /// Reads the files again; on success new connections get the new
    /// certificate, on failure the previous one stays. Open connections are
    /// not touched either way.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = load(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = config;
        Ok(())
    }
}
