//! placeholder: being written
use utoipa::OpenApi;

use super::request::ApiRequest;
use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;

#[derive(OpenApi)]
#[openapi()]
pub struct Doc;

pub fn ping() -> Reply {
    Reply::new(200)
        .header("Content-Type", "text/plain; charset=utf-8")
        .bytes("Pong".into())
}

pub async fn health(_app: &App) -> Result<Reply, GatewayError> {
    Err(GatewayError::NotFound("/api/v2.0/health".into()))
}

pub async fn systeminfo(_app: &App, _req: &ApiRequest) -> Result<Reply, GatewayError> {
    Err(GatewayError::NotFound("/api/v2.0/systeminfo".into()))
}

pub async fn search(_app: &App, _req: &ApiRequest) -> Result<Reply, GatewayError> {
    Err(GatewayError::NotFound("/api/v2.0/search".into()))
}
