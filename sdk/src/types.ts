/**
 * Wire types of the Refport API, taken from the types generated from the OpenAPI document
 * (`npm run generate` -> `src/generated/openapi.ts`; do not edit that file by hand). Amounts
 * are integer minor units, rates basis points, times RFC 3339 strings, ids prefixed strings.
 */

import type { components } from "./generated/openapi.js";

type S = components["schemas"];

export type Program = S["Program"];
export type ProgramCreate = S["ProgramCreate"];
export type ProgramUpdate = S["ProgramPatch"];
export type PayoutSchedule = S["PayoutSchedule"];
export type Rewards = S["Rewards"];
export type RewardsInput = S["RewardsInput"];

export type Partner = S["Partner"];
/** A created partner; an invited one carries its `invitation`. */
export type PartnerCreated = S["PartnerCreated"];
export type PartnerCreate = S["PartnerCreate"];
export type PartnerUpdate = S["PartnerPatch"];
export type PartnerStatus = Partner["status"];
export type PartnerStats = S["PartnerStats"];

export type Link = S["Link"];
export type LinkCreate = S["LinkCreate"];
export type LinkUpdate = S["LinkPatch"];
export type LinkDeleted = S["LinkDeleted"];
export type Coupon = S["Coupon"];
export type CouponCreate = S["CouponCreate"];
export type CouponDeleted = S["CouponDeleted"];

export type Click = S["Click"];

export type Commission = S["Commission"];
export type CommissionCreate = S["CommissionCreate"];
export type Group = S["Group"];
export type GroupCreate = S["GroupCreate"];
export type GroupUpdate = S["GroupPatch"];
export type GroupList = S["GroupList"];
export type GroupDeleted = S["GroupDeleted"];
export type RewardModifier = S["RewardModifier"];
export type RewardCondition = S["RewardCondition"];
export type CommissionStatus = Commission["status"];

export type Payout = S["Payout"];
export type PayoutStatus = Payout["status"];

/** Free-form sale metadata: any JSON object (at most 4096 bytes serialized). */
export type Metadata = Record<string, unknown>;
export type LeadInput = S["TrackLead"];
// The document types `metadata` as a bare `object`, which openapi-typescript renders as
// `Record<string, never>`: widened here to any JSON object.
export type SaleInput = Omit<S["TrackSale"], "metadata"> & { metadata?: Metadata | null };
export type RefundInput = S["TrackRefund"];
export type LeadEvent = S["LeadEvent"];
export type SaleEvent = Omit<S["SaleEvent"], "metadata"> & { metadata: Metadata | null };
/** The answer of `track.lead` (a retry answers the same body). */
export type LeadResult = S["LeadResult"];
/** The answer of `track.sale` (a retry answers the same body). */
export type SaleResult = Omit<S["SaleResult"], "event"> & { event: SaleEvent };
export type Refund = S["Refund"];
export type RefundResult = S["RefundResult"];

export type EmbedTokenInput = S["EmbedTokenCreate"];
export type EmbedToken = S["EmbedToken"];

export type ApiKeyCreate = S["ApiKeyCreate"];
export type ApiKey = S["ApiKey"];
/** A created API key: carries the key itself (`rp_live_...`), shown once. */
export type ApiKeyCreated = S["ApiKeyCreated"];
export type ApiKeyRevoked = S["ApiKeyRevoked"];

export type WebhookEndpointCreate = S["WebhookEndpointCreate"];
export type WebhookEndpoint = S["WebhookEndpoint"];
/** A created endpoint: carries its signing `secret` (`whsec_...`), shown once. */
export type WebhookEndpointCreated = S["WebhookEndpointCreated"];
export type WebhookEndpointDeleted = S["WebhookEndpointDeleted"];
export type WebhookDelivery = S["WebhookDelivery"];
export type WebhookEventType = S["WebhookEventType"];

/** The `{"error": {...}}` body of every 4xx/5xx answer. */
export type ErrorResponse = S["Error"];

/** `data` of a `lead.created` / `sale.created` webhook event: the conversion as recorded, with
 * the commission it earned (the same object as `GET /api/v1/commissions/{id}`; null: none). */
export type ConversionWebhookData = Omit<S["ConversionWebhookData"], "metadata"> & { metadata: Metadata | null };
/** @deprecated the `data` of `lead.created` is {@link ConversionWebhookData}. */
export type LeadCreatedData = ConversionWebhookData;

interface EventBase<T extends WebhookEventType, D> {
  /** `evt_...`: apply each id once (deliveries are at least once). */
  id: string;
  type: T;
  created_at: string;
  data: D;
}

/** A verified webhook event, discriminated by `type`. */
export type WebhookEvent =
  | EventBase<"partner.enrolled", Partner>
  | EventBase<"partner.updated", Partner>
  | EventBase<"partner.banned", Partner>
  | EventBase<"lead.created", ConversionWebhookData>
  | EventBase<"sale.created", ConversionWebhookData>
  | EventBase<"commission.created", Commission>
  | EventBase<"commission.updated", Commission>
  | EventBase<"commission.approved", Commission>
  | EventBase<"commission.paid", Commission>
  | EventBase<"payout.paid", Payout>
  | EventBase<"payout.failed", Payout>
  | EventBase<"payout.reversed", Payout>
  | EventBase<"payout.awaiting_approval", Payout>;

/** One page of a list, newest first. */
export interface Page<T> {
  data: T[];
  /** Pass as `cursor` for the next page; null on the last page. */
  next_cursor: string | null;
}

export interface ListParams {
  /** 1 to 100 (default 20). */
  limit?: number;
  cursor?: string;
}

export interface CommissionListParams extends ListParams {
  program_id?: string;
  partner_id?: string;
  status?: CommissionStatus;
  /** `true`: only commissions held by a fraud rule for the merchant (pending with `hold_reasons`). */
  held?: boolean;
}

export interface PayoutListParams extends ListParams {
  program_id?: string;
  partner_id?: string;
  status?: PayoutStatus;
}

export interface ClickListParams extends ListParams {
  link_id?: string;
  partner_id?: string;
  program_id?: string;
}
