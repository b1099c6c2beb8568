use super::error::{ApiError, ApiResult};
use super::Call;
use worker::{Request, Response};

pub async fn list(_c: &Call) -> ApiResult<Response> {
    Err(ApiError::NotFound("route"))
}
pub async fn approve(_c: &Call, _id: &str) -> ApiResult<Response> {
    Err(ApiError::NotFound("route"))
}
pub async fn reject(_req: &mut Request, _c: &Call, _id: &str) -> ApiResult<Response> {
    Err(ApiError::NotFound("route"))
}
