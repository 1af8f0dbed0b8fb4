//! placeholder: being written
use pingora::proxy::Session;
use utoipa::OpenApi;

use super::request::ApiRequest;
use crate::app::App;
use crate::error::GatewayError;
use crate::http::Reply;

#[derive(OpenApi)]
#[openapi()]
pub struct Doc;

pub async fn list(
    _app: &App,
    _req: &ApiRequest,
    _project: Option<(&Session, &str)>,
) -> Result<Reply, GatewayError> {
    Err(GatewayError::NotFound("/api/v2.0/audit-logs".into()))
}
