//! Coupon codes of a partner (issue 16): `POST/GET /api/v1/partners/{id}/coupons`,
//! `DELETE /api/v1/coupons/{id}`. What a code attributes is `refport_core::coupon`'s.

use super::auth::Perm;
use super::error::{ApiError, ApiResult};
use super::{body, created, ok, partners, path_id, Call, Page};
use crate::state::new_id;
use crate::store::coupons::{self, Coupon, Inserted};
use refport_core::coupon::CouponCode;
use refport_core::ids;
use refport_core::partner::PartnerStatus;
use refport_core::time::rfc3339;
use serde_json::{json, Value};
use worker::{Request, Response};

refport_core::from_json! {
    deny_unknown_fields
    struct CreateCoupon {
        code: String,
    }
}

/// The wire shape of a coupon.
fn out(k: &Coupon) -> Value {
    json!({"id": k.id, "program_id": k.program_id, "partner_id": k.partner_id, "code": k.code,
           "created_at": rfc3339(k.created_at)})
}

pub async fn create(req: &mut Request, c: &Call, partner_id: &str) -> ApiResult<Response> {
    c.who.require(Perm::Write)?;
    let partner = partners::load(c, partner_id).await?;
    let code = CouponCode::parse("code", &body::<CreateCoupon>(req).await?.code)?;
    if partner.status == PartnerStatus::Banned {
        return Err(ApiError::conflict("partner_banned", "a banned partner cannot get new coupon codes"));
    }
    let coupon = Coupon {
        id: new_id(ids::COUPON, c.now)?,
        program_id: partner.program_id,
        partner_id: partner.id,
        code: code.code,
        created_at: c.now,
    };
    match coupons::insert(&c.state.db, &coupon, &code.key).await? {
        Inserted::Ok => created(&out(&coupon)),
        Inserted::CodeTaken => Err(ApiError::conflict(
            "coupon_code_taken",
            format!("the program already has the coupon code `{}` (codes ignore case)", coupon.code),
        )),
    }
}

pub async fn list(c: &Call, partner_id: &str) -> ApiResult<Response> {
    c.who.require(Perm::Read)?;
    let partner = partners::load(c, partner_id).await?;
    let page = Page::from_query(&c.query)?;
    let rows = coupons::list_for_partner(&c.state.db, &partner.id, &page.before(), page.limit).await?;
    page.respond(rows.iter().map(out).collect(), |k| k["id"].as_str().unwrap_or_default().to_string())
}

pub async fn delete(c: &Call, id: &str) -> ApiResult<Response> {
    c.who.require(Perm::Write)?;
    let id = path_id(id, ids::COUPON, "coupon")?;
    // One conditional write: a coupon of another program than the key's is not found.
    if !coupons::soft_delete(&c.state.db, &id, c.who.program_id.as_deref(), c.now).await? {
        return Err(ApiError::NotFound("coupon"));
    }
    ok(&json!({"id": id, "deleted": true}))
}
