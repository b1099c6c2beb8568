use super::error::{ApiError, ApiResult};
use super::Call;
use worker::{Request, Response};

pub async fn lead(_req: &mut Request, _c: &Call) -> ApiResult<Response> {
    Err(ApiError::NotFound("route"))
}
pub async fn sale(_req: &mut Request, _c: &Call) -> ApiResult<Response> {
    Err(ApiError::NotFound("route"))
}
pub async fn refund(_req: &mut Request, _c: &Call) -> ApiResult<Response> {
    Err(ApiError::NotFound("route"))
}
