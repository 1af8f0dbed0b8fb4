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

pub async fn route(
    _app: &App,
    session: &mut Session,
    _req: &ApiRequest,
    _rest: &[&str],
) -> Result<Reply, GatewayError> {
    Err(GatewayError::NotFound(
        session.req_header().uri.path().to_owned(),
    ))
}
