//! TLS for the registry listener (rustls through Pingora).
//!
//! The certificate and key files are read and checked before the server
//! starts, so a wrong path or a key that does not match fails with a message
//! naming the file, not a panic inside Pingora. The listener serves the
//! certificate through a resolver whose key can be replaced at runtime:
//! on SIGHUP, or when either file changes on disk, the files are read
//! again and, if they are valid, new handshakes use them. Connections
//! already open keep theirs; nothing is dropped. A bad new pair is logged
//! and the old one stays.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// How often the files are checked for changes.
const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// The certificate chain and key files of the listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Reads and checks a certificate chain and its key.
pub fn load(files: &CertFiles) -> Result<Arc<CertifiedKey>, String> {
    let read = |path: &Path, what: &str| {
        std::fs::read(path)
            .map_err(|e| format!("cannot read the TLS {what} {}: {e}", path.display()))
    };
    let cert_pem = read(&files.cert, "certificate")?;
    let key_pem = read(&files.key, "key")?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            format!(
                "the TLS certificate {} is not valid PEM: {e}",
                files.cert.display()
            )
        })?;
    if chain.is_empty() {
        return Err(format!(
            "the TLS certificate {} holds no certificate (expected PEM blocks \
             `-----BEGIN CERTIFICATE-----`, server certificate first)",
            files.cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        format!(
            "the TLS key {} holds no usable private key (expected PEM PKCS#8, PKCS#1 \
             or SEC1; {e})",
            files.key.display()
        )
    })?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| {
        format!(
            "the TLS key {} is not an RSA, ECDSA or Ed25519 key rustls can use: {e}",
            files.key.display()
        )
    })?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| {
        format!(
            "the TLS key {} does not belong to the certificate {}: {e}",
            files.key.display(),
            files.cert.display()
        )
    })?;
    Ok(Arc::new(certified))
}

fn mtimes(files: &CertFiles) -> (Option<SystemTime>, Option<SystemTime>) {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    (m(&files.cert), m(&files.key))
}

/// The listener's certificate, replaceable while the server runs.
pub struct ReloadingCert {
    files: CertFiles,
    current: RwLock<Arc<CertifiedKey>>,
    seen: Mutex<(Option<SystemTime>, Option<SystemTime>)>,
}

impl fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl ReloadingCert {
    /// Loads the files now; an error here should stop the start.
    pub fn open(files: CertFiles) -> Result<Arc<ReloadingCert>, String> {
        let seen = mtimes(&files);
        let current = load(&files)?;
        Ok(Arc::new(ReloadingCert {
            files,
            current: RwLock::new(current),
            seen: Mutex::new(seen),
        }))
    }

    /// Reads the files again; on success new handshakes use them.
    pub fn reload(&self) -> Result<(), String> {
        let seen = mtimes(&self.files);
        let fresh = load(&self.files)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = seen;
        Ok(())
    }

    fn changed(&self) -> bool {
        let now = mtimes(&self.files);
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) != now
    }

    /// Reloads on SIGHUP and when the files change, on the given runtime,
    /// for as long as it runs.
    pub fn watch(self: &Arc<Self>, runtime: &tokio::runtime::Handle) {
        let me = Arc::clone(self);
        runtime.spawn(async move {
            let mut hangup =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot watch SIGHUP; TLS files are still reloaded when they change");
                        None
                    }
                };
            loop {
                let why = tokio::select! {
                    _ = async {
                        match hangup.as_mut() {
                            Some(h) => { h.recv().await; }
                            None => std::future::pending::<()>().await,
                        }
                    } => "SIGHUP",
                    _ = tokio::time::sleep(WATCH_INTERVAL) => {
                        if !me.changed() {
                            continue;
                        }
                        "the files changed"
                    }
                };
                match me.reload() {
                    Ok(()) => tracing::info!(cert = %me.files.cert.display(), reason = why, "TLS certificate reloaded"),
                    Err(e) => {
                        // Do not retry the same broken files every tick.
                        *me.seen.lock().unwrap_or_else(|p| p.into_inner()) = mtimes(&me.files);
                        tracing::error!(reason = why, error = %e, "TLS certificate not reloaded; still serving the previous one");
                    }
                }
            }
        });
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(|p| p.into_inner()),
        ))
    }
}
