//! Builds and runs the Pingora server around the gateway.

use std::net::SocketAddr;
use std::sync::Arc;

use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignalWatch};

use crate::app::App;
use crate::proxy::Gateway;

pub struct ServerSettings {
    pub listen: SocketAddr,
    pub threads: usize,
    pub grace_period_secs: u64,
}

/// Runs until `shutdown` fires. Blocks the calling thread; must not be
/// called from inside a tokio runtime (Pingora builds its own).
pub fn run(settings: &ServerSettings, app: Arc<App>, shutdown: Box<dyn ShutdownSignalWatch>) {
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
    let mut service = pingora::proxy::http_proxy_service(&server.configuration, Gateway { app });
    service.add_tcp(&settings.listen.to_string());
    server.add_service(service);
    server.run(RunArgs {
        shutdown_signal: shutdown,
    });
}
