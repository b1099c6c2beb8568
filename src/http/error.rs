//! The one API error type and its single mapping to HTTP: `{"error": {"code", "message"}}`.
//! Internal details are logged, never sent to the client.

use crate::store::{InUse, StoreError, Taken};
use refport_core::error::Invalid;
use serde_json::json;
use worker::Response;

#[derive(Debug)]
pub enum ApiError {
    /// Malformed request: bad JSON, wrong types, unknown fields, bad query parameters. 400.
    BadRequest {
        code: &'static str,
        message: String,
    },
    /// Well-formed but semantically invalid input (core validation). 422.
    Invalid(Invalid),
    /// Missing or unknown API key / token. 401.
    Unauthorized(&'static str),
    /// The key is valid but lacks the permission. 403.
    Forbidden(String),
    /// Unknown resource, or one outside the key's program. 404.
    NotFound(&'static str),
    /// With the methods the path answers (the `Allow` header).
    MethodNotAllowed(String),
    /// Conflicts with stored state (duplicate key, illegal status transition). 409.
    Conflict {
        code: &'static str,
        message: String,
    },
    /// Request understood and valid, but cannot be processed in this state. 422.
    Unprocessable {
        code: &'static str,
        message: String,
    },
    PayloadTooLarge,
    /// A dependency (Stripe) did not answer: the caller should retry later. 503.
    Unavailable(&'static str),
    /// Anything else: logged with its cause, answered as a bare 500.
    Internal(String),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest { code, message: message.into() }
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Conflict { code, message: message.into() }
    }
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::Unprocessable { code, message: message.into() }
    }

    pub fn status(&self) -> u16 {
        match self {
            ApiError::BadRequest { .. } => 400,
            ApiError::Unauthorized(_) => 401,
            ApiError::Forbidden(_) => 403,
            ApiError::NotFound(_) => 404,
            ApiError::MethodNotAllowed(_) => 405,
            ApiError::Conflict { .. } => 409,
            ApiError::PayloadTooLarge => 413,
            ApiError::Unavailable(_) => 503,
            ApiError::Invalid(_) | ApiError::Unprocessable { .. } => 422,
            ApiError::Internal(_) => 500,
        }
    }

    /// The answer's `error.code`.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Unprocessable { code, .. } => code,
            ApiError::Invalid(i) => i.code,
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }

    pub fn into_response(self) -> Response {
        let status = self.status();
        let mut field = None;
        let message: std::borrow::Cow<str> = match &self {
            ApiError::BadRequest { message, .. }
            | ApiError::Conflict { message, .. }
            | ApiError::Unprocessable { message, .. } => message.as_str().into(),
            ApiError::Invalid(i) => {
                field = Some(i.field.as_str());
                i.to_string().into()
            }
            ApiError::Unauthorized(m) | ApiError::Unavailable(m) => (*m).into(),
            ApiError::Forbidden(m) => m.as_str().into(),
            ApiError::NotFound(what) => format!("{what} not found").into(),
            ApiError::MethodNotAllowed(allow) => format!("this path answers {allow}").into(),
            ApiError::PayloadTooLarge => format!("request body exceeds {} bytes", super::MAX_BODY).into(),
            ApiError::Internal(cause) => {
                worker::console_error!("internal error: {cause}");
                "internal error".into()
            }
        };
        let mut error = serde_json::Map::new();
        error.insert("code".into(), self.code().into());
        error.insert("message".into(), message.into_owned().into());
        if let Some(f) = field {
            error.insert("field".into(), f.into());
        }
        let body = json!({ "error": error });
        let response = super::json_response(status, &body);
        if let ApiError::MethodNotAllowed(allow) = &self {
            let _ = response.headers().set("allow", allow);
        }
        response
    }
}

impl From<Invalid> for ApiError {
    fn from(i: Invalid) -> Self {
        ApiError::Invalid(i)
    }
}

/// The one mapping of storage outcomes to API errors.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Taken(Taken::Domain) => {
                ApiError::conflict("domain_taken", "one of the domains already belongs to another program")
            }
            StoreError::Taken(Taken::PartnerEmail) => {
                ApiError::conflict("partner_exists", "a partner with this email is already enrolled in the program")
            }
            StoreError::Taken(Taken::LinkKey) => {
                ApiError::conflict("key_taken", "this key is already used on the domain")
            }
            StoreError::Taken(Taken::GroupName) => {
                ApiError::conflict("group_exists", "a group with this name already exists in the program")
            }
            StoreError::InUse(InUse::Group) => {
                ApiError::conflict("group_in_use", "the group still has partners; move them to another group first")
            }
            StoreError::InUse(InUse::Domain) => {
                ApiError::conflict("domain_in_use", "a removed domain still has links; delete or move them first")
            }
            StoreError::Raced => ApiError::conflict("concurrent_update", "the resource changed meanwhile; retry"),
            StoreError::NotFound(_) | StoreError::Corrupt(_) | StoreError::Database(_) => {
                ApiError::Internal(e.to_string())
            }
        }
    }
}

impl From<crate::state::RandomUnavailable> for ApiError {
    fn from(e: crate::state::RandomUnavailable) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<worker::Error> for ApiError {
    fn from(e: worker::Error) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<serde_json::Error> for ApiError {
    fn from(e: serde_json::Error) -> Self {
        ApiError::Internal(format!("json: {e}"))
    }
}
