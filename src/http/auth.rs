//! API-key authentication. Keys are `rp_live_...`; only their SHA-256 is stored. The bootstrap
//! admin key comes from the `REFPORT_ADMIN_KEY` secret and is compared by hash, in constant time.

use super::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store;
use refport_core::crypto::{ct_eq, looks_like_api_key, sha256_hex};
use worker::Request;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Perm {
    Read,
    Write,
    Track,
}

impl Perm {
    pub fn parse(s: &str) -> Option<Perm> {
        match s {
            "read" => Some(Perm::Read),
            "write" => Some(Perm::Write),
            "track" => Some(Perm::Track),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Perm::Read => "read",
            Perm::Write => "write",
            Perm::Track => "track",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Principal {
    pub key_id: Option<String>,
    /// A key bound to a program sees only that program; other programs answer 404.
    pub program_id: Option<String>,
    pub perms: Vec<Perm>,
}

impl Principal {
    pub fn require(&self, p: Perm) -> ApiResult<()> {
        if self.perms.contains(&p) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!("this API key lacks the `{}` permission", p.as_str())))
        }
    }

    /// Whether this key may see the program; callers answer 404 when it may not.
    pub fn sees(&self, program_id: &str) -> bool {
        self.program_id.as_deref().is_none_or(|p| p == program_id)
    }

    pub fn check_program(&self, program_id: &str, what: &'static str) -> ApiResult<()> {
        if self.sees(program_id) {
            Ok(())
        } else {
            Err(ApiError::NotFound(what))
        }
    }
}

pub async fn authenticate(req: &Request, state: &AppState) -> ApiResult<Principal> {
    let header = req.headers().get("authorization").ok().flatten().unwrap_or_default();
    // The auth scheme is case-insensitive (RFC 9110 11.1).
    let key = header
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, k)| k.trim())
        .ok_or(ApiError::Unauthorized("send your API key as `Authorization: Bearer rp_live_...`"))?;
    if !looks_like_api_key(key) {
        return Err(ApiError::Unauthorized("invalid API key"));
    }
    let hash = sha256_hex(key.as_bytes());
    if let Some(admin) = &state.secrets.admin_key {
        if ct_eq(sha256_hex(admin.bytes()).as_bytes(), hash.as_bytes()) {
            return Ok(Principal { key_id: None, program_id: None, perms: vec![Perm::Read, Perm::Write, Perm::Track] });
        }
    }
    // The lookup is by hash (an index seek); equality of a SHA-256 preimage leaks nothing useful.
    match store::api_keys::find_active(&state.db, &hash).await? {
        Some(k) => Ok(Principal {
            key_id: Some(k.id),
            program_id: k.program_id,
            perms: k.permissions.iter().filter_map(|p| Perm::parse(p)).collect(),
        }),
        None => Err(ApiError::Unauthorized("invalid API key")),
    }
}
