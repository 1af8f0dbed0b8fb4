//! Builds and runs the Pingora server around the gateway.

use std::net::SocketAddr;
use std::sync::Arc;

use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignalWatch};

use crate::app::App;
use crate::proxy::Gateway;
use crate::redirect::Redirect;
use crate::tls::ReloadingCert;
use pingora::listeners::tls::TlsSettings;

pub struct ServerSettings {
    pub listen: SocketAddr,
    pub threads: usize,
    pub grace_period_secs: u64,
    /// Serve HTTPS (HTTP/1.1 and HTTP/2 by ALPN) with this certificate.
    pub tls: Option<Arc<ReloadingCert>>,
    /// With TLS: a plain-HTTP listener that redirects to HTTPS.
    pub http_redirect: Option<SocketAddr>,
    /// `[metrics] listen`: serve `/metrics` there (plain HTTP) instead of
    /// on the main listener.
    pub metrics_listen: Option<String>,
}

/// Runs until `shutdown` fires. Blocks the calling thread; must not be
/// called from inside a tokio runtime (Pingora builds its own).
pub fn run(
    settings: &ServerSettings,
    app: Arc<App>,
    shutdown: Box<dyn ShutdownSignalWatch>,
) -> Result<(), String> {
    let conf = ServerConf {
        threads: settings.threads,
        // Pingora's defaults wait minutes before exiting; a registry being
        // redeployed should finish in-flight requests and go.
        grace_period_seconds: Some(settings.grace_period_secs),
        graceful_shutdown_timeout_seconds: Some(settings.grace_period_secs),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut service =
        pingora::proxy::http_proxy_service(&server.configuration, Gateway { app: app.clone() });
    let addr = settings.listen.to_string();
    match &settings.tls {
        Some(cert) => {
            // Paths stay empty: the resolver serves the certificate, so a
            // reload reaches new handshakes without a restart.
            let mut tls = TlsSettings::intermediate("", "")
                .map_err(|e| format!("cannot set up TLS on {addr}: {e}"))?;
            tls.set_cert_resolver(cert.clone());
            tls.enable_h2();
            service.add_tls_with_settings(&addr, None, tls);
        }
        None => service.add_tcp(&addr),
    }
    if let (Some(redirect), Some(_)) = (settings.http_redirect, &settings.tls) {
        let mut plain = pingora::proxy::http_proxy_service(
            &server.configuration,
            Redirect {
                external_url: app.external_url.clone(),
                https_port: settings.listen.port(),
            },
        );
        plain.add_tcp(&redirect.to_string());
        server.add_service(plain);
    }
    server.add_service(service);
    if let Some(addr) = &settings.metrics_listen {
        server.add_service(crate::metrics::metrics_service(app.clone(), addr));
    }
    server.run(RunArgs {
        shutdown_signal: shutdown,
    });
    Ok(())
}
