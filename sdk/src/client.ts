/**
 * The Refport client: one object per API key, resources as properties.
 *
 *   const refport = new Refport({ apiKey: process.env.REFPORT_API_KEY, baseUrl: "https://refport.acme.com" });
 *   await refport.track.lead({ click_id, customer_external_id: user.id, customer_email: user.email });
 *
 * Retries: calls the API treats idempotently (reads, PATCH, DELETE, track.*, embed tokens) are
 * retried on network errors, timeouts, 429 and 5xx with the same `Idempotency-Key`; calls it
 * does not deduplicate (creating programs, partners, links, webhooks, API keys; approve and
 * reject) are sent once, so a lost answer can never apply them twice.
 */

import { NotFoundError } from "./errors.js";
import { Transport, type ClientOptions, type Query, type RequestOptions } from "./http.js";
import type {
  ApiKey,
  ApiKeyCreate,
  ApiKeyCreated,
  ApiKeyRevoked,
  LeadResult,
  LinkDeleted,
  CommissionCreate,
  Group,
  GroupCreate,
  GroupDeleted,
  GroupList,
  GroupUpdate,
  Coupon,
  CouponCreate,
  CouponDeleted,
  PartnerCreated,
  SaleResult,
  WebhookEndpointCreated,
  WebhookEndpointDeleted,
  Click,
  ClickListParams,
  Commission,
  CommissionListParams,
  EmbedToken,
  EmbedTokenInput,
  LeadInput,
  Link,
  LinkCreate,
  LinkUpdate,
  ListParams,
  Page,
  Partner,
  PartnerCreate,
  PartnerStats,
  PartnerUpdate,
  Payout,
  PayoutListParams,
  Program,
  ProgramCreate,
  ProgramUpdate,
  RefundInput,
  RefundResult,
  SaleInput,
  WebhookDelivery,
  WebhookEndpoint,
  WebhookEndpointCreate,
} from "./types.js";

const seg = (id: string) => encodeURIComponent(id);

/** Iterates every item of a paged list, fetching pages lazily. */
async function* paginate<T>(fetchPage: (cursor: string | undefined) => Promise<Page<T>>, start?: string): AsyncGenerator<T> {
  let cursor = start;
  for (;;) {
    const page = await fetchPage(cursor);
    yield* page.data;
    if (!page.next_cursor) return;
    cursor = page.next_cursor;
  }
}

abstract class Resource {
  constructor(protected readonly t: Transport) {}

  protected async _get<T>(path: string, query?: Query, options?: RequestOptions): Promise<T> {
    return (await this.t.request<T>({ method: "GET", path, query, retryable: true, options })).data;
  }
  protected async _post<T>(path: string, body: unknown, retryable: boolean, options?: RequestOptions): Promise<T> {
    return (await this.t.request<T>({ method: "POST", path, body, retryable, options })).data;
  }
  protected async _patch<T>(path: string, body: unknown, options?: RequestOptions): Promise<T> {
    return (await this.t.request<T>({ method: "PATCH", path, body, retryable: true, options })).data;
  }
  /** DELETE is retried; a retry that finds the resource already gone answers success. */
  protected async _del<T>(path: string, gone: T, options?: RequestOptions): Promise<T> {
    try {
      return (await this.t.request<T>({ method: "DELETE", path, retryable: true, options })).data;
    } catch (e) {
      if (e instanceof NotFoundError && e.attempts > 1) return gone;
      throw e;
    }
  }
}

/** `POST /api/v1/track/{lead,sale,refund}`: what a merchant backend calls (a `track` key suffices). */
export class Track extends Resource {
  /** Attributes the customer to the click's partner. Idempotent on (program, customer, event name). */
  lead(input: LeadInput, options?: RequestOptions): Promise<LeadResult> {
    return this._post("/api/v1/track/lead", input, true, options);
  }
  /** A sale; idempotent on (program, invoice_id): a retry answers the first result. */
  sale(input: SaleInput, options?: RequestOptions): Promise<SaleResult> {
    return this._post("/api/v1/track/sale", input, true, options);
  }
  /**
   * A full (no `amount`) or partial refund. Made exactly-once by `Idempotency-Key`: pass your own
   * `idempotencyKey` (e.g. your refund's id) to make retries across processes safe too.
   */
  refund(input: RefundInput, options?: RequestOptions): Promise<RefundResult> {
    return this._post("/api/v1/track/refund", input, true, options);
  }
}

export class Programs extends Resource {
  create(input: ProgramCreate, options?: RequestOptions): Promise<Program> {
    return this._post("/api/v1/programs", input, false, options);
  }
  get(id: string, options?: RequestOptions): Promise<Program> {
    return this._get(`/api/v1/programs/${seg(id)}`, undefined, options);
  }
  update(id: string, patch: ProgramUpdate, options?: RequestOptions): Promise<Program> {
    return this._patch(`/api/v1/programs/${seg(id)}`, patch, options);
  }
  list(params: ListParams = {}, options?: RequestOptions): Promise<Page<Program>> {
    return this._get("/api/v1/programs", { ...params }, options);
  }
  /** Every program, page after page: `for await (const p of refport.programs.listAll())`. */
  listAll(params: Omit<ListParams, "cursor"> = {}): AsyncGenerator<Program> {
    return paginate((cursor) => this.list({ ...params, cursor }));
  }
}

export class Partners extends Resource {
  /** Enrols (or, with `invite: true`, invites) a partner in a program. */
  create(programId: string, input: PartnerCreate, options?: RequestOptions): Promise<PartnerCreated> {
    return this._post(`/api/v1/programs/${seg(programId)}/partners`, input, false, options);
  }
  get(id: string, options?: RequestOptions): Promise<Partner> {
    return this._get(`/api/v1/partners/${seg(id)}`, undefined, options);
  }
  update(id: string, patch: PartnerUpdate, options?: RequestOptions): Promise<Partner> {
    return this._patch(`/api/v1/partners/${seg(id)}`, patch, options);
  }
  /** Bans the partner: pending commissions are rejected, links stop crediting. */
  ban(id: string, options?: RequestOptions): Promise<Partner> {
    return this.update(id, { status: "banned" }, options);
  }
  list(programId: string, params: ListParams = {}, options?: RequestOptions): Promise<Page<Partner>> {
    return this._get(`/api/v1/programs/${seg(programId)}/partners`, { ...params }, options);
  }
  listAll(programId: string, params: Omit<ListParams, "cursor"> = {}): AsyncGenerator<Partner> {
    return paginate((cursor) => this.list(programId, { ...params, cursor }));
  }
  /** Clicks, leads, sales and earnings by status. */
  stats(id: string, options?: RequestOptions): Promise<PartnerStats> {
    return this._get(`/api/v1/partners/${seg(id)}/stats`, undefined, options);
  }
  /** Approves the partner's payout account despite an account shared with another partner
   * (the `duplicate_payout_account` fraud rule): its payouts are no longer held. Idempotent. */
  approvePayoutAccount(id: string, options?: RequestOptions): Promise<Partner> {
    return this._post(`/api/v1/partners/${seg(id)}/approve_payout_account`, undefined, true, options);
  }
}

export class Links extends Resource {
  /** A referral link for the partner (`key` generated when absent, `domain` = the program's first). */
  create(partnerId: string, input: LinkCreate, options?: RequestOptions): Promise<Link> {
    return this._post(`/api/v1/partners/${seg(partnerId)}/links`, input, false, options);
  }
  get(id: string, options?: RequestOptions): Promise<Link> {
    return this._get(`/api/v1/links/${seg(id)}`, undefined, options);
  }
  update(id: string, patch: LinkUpdate, options?: RequestOptions): Promise<Link> {
    return this._patch(`/api/v1/links/${seg(id)}`, patch, options);
  }
  delete(id: string, options?: RequestOptions): Promise<LinkDeleted> {
    return this._del(`/api/v1/links/${seg(id)}`, { id, deleted: true }, options);
  }
  list(partnerId: string, params: ListParams = {}, options?: RequestOptions): Promise<Page<Link>> {
    return this._get(`/api/v1/partners/${seg(partnerId)}/links`, { ...params }, options);
  }
  listAll(partnerId: string, params: Omit<ListParams, "cursor"> = {}): AsyncGenerator<Link> {
    return paginate((cursor) => this.list(partnerId, { ...params, cursor }));
  }
}

export class Coupons extends Resource {
  /** A coupon code for the partner: conversions whose `coupon_code` names it (in any case) are
   * attributed to the partner. A code taken in the program is a 409. */
  create(partnerId: string, input: CouponCreate, options?: RequestOptions): Promise<Coupon> {
    return this._post(`/api/v1/partners/${seg(partnerId)}/coupons`, input, false, options);
  }
  delete(id: string, options?: RequestOptions): Promise<CouponDeleted> {
    return this._del(`/api/v1/coupons/${seg(id)}`, { id, deleted: true }, options);
  }
  list(partnerId: string, params: ListParams = {}, options?: RequestOptions): Promise<Page<Coupon>> {
    return this._get(`/api/v1/partners/${seg(partnerId)}/coupons`, { ...params }, options);
  }
  listAll(partnerId: string, params: Omit<ListParams, "cursor"> = {}): AsyncGenerator<Coupon> {
    return paginate((cursor) => this.list(partnerId, { ...params, cursor }));
  }
}

export class Groups extends Resource {
  /** A partner group: terms (rewards, min payout, hold days) between the program's and a
   * partner's own override. A name taken in the program (any case) is a 409. */
  create(programId: string, input: GroupCreate, options?: RequestOptions): Promise<Group> {
    return this._post(`/api/v1/programs/${seg(programId)}/groups`, input, false, options);
  }
  get(id: string, options?: RequestOptions): Promise<Group> {
    return this._get(`/api/v1/groups/${seg(id)}`, undefined, options);
  }
  update(id: string, patch: GroupUpdate, options?: RequestOptions): Promise<Group> {
    return this._patch(`/api/v1/groups/${seg(id)}`, patch, options);
  }
  /** A group with partners is a 409 `group_in_use`. */
  delete(id: string, options?: RequestOptions): Promise<GroupDeleted> {
    return this._del(`/api/v1/groups/${seg(id)}`, { id, deleted: true }, options);
  }
  /** The program's groups, by name. */
  async list(programId: string, options?: RequestOptions): Promise<Group[]> {
    return (await this._get<GroupList>(`/api/v1/programs/${seg(programId)}/groups`, undefined, options)).data;
  }
}

export class Commissions extends Resource {
  /** A manual commission (`kind: "bonus"`), paid with the partner's next payout. Retried under one
   * `Idempotency-Key`: a retry answers the bonus the first attempt created. */
  create(input: CommissionCreate, options?: RequestOptions): Promise<Commission> {
    return this._post("/api/v1/commissions", input, true, options);
  }
  /** The same object as the `data` of its `commission.*` webhooks. */
  get(id: string, options?: RequestOptions): Promise<Commission> {
    return this._get(`/api/v1/commissions/${seg(id)}`, {}, options);
  }
  list(params: CommissionListParams = {}, options?: RequestOptions): Promise<Page<Commission>> {
    return this._get("/api/v1/commissions", { ...params }, options);
  }
  listAll(params: Omit<CommissionListParams, "cursor"> = {}): AsyncGenerator<Commission> {
    return paginate((cursor) => this.list({ ...params, cursor }));
  }
  /**
   * pending -> approved. Sent once (not retried): a repeated approve answers 409
   * `invalid_transition`, so after a connection error read the commission back instead.
   */
  approve(id: string, options?: RequestOptions): Promise<Commission> {
    return this._post(`/api/v1/commissions/${seg(id)}/approve`, undefined, false, options);
  }
  /** pending|approved -> rejected with a reason (1-200 characters). Sent once, like approve. */
  reject(id: string, reason: string, options?: RequestOptions): Promise<Commission> {
    return this._post(`/api/v1/commissions/${seg(id)}/reject`, { reason }, false, options);
  }
}

export class Payouts extends Resource {
  list(params: PayoutListParams = {}, options?: RequestOptions): Promise<Page<Payout>> {
    return this._get("/api/v1/payouts", { ...params }, options);
  }
  listAll(params: Omit<PayoutListParams, "cursor"> = {}): AsyncGenerator<Payout> {
    return paginate((cursor) => this.list({ ...params, cursor }));
  }
  /**
   * Payout review mode: awaiting_approval -> processing, sent through the normal payout path
   * exactly once. Sent once (not retried): a repeated approve answers 409
   * `not_awaiting_approval`, so after a connection error read the payout back instead.
   */
  approve(id: string, options?: RequestOptions): Promise<Payout> {
    return this._post(`/api/v1/payouts/${seg(id)}/approve`, undefined, false, options);
  }
  /** awaiting_approval -> canceled; its commissions go back to the approved pool. Sent once. */
  cancel(id: string, options?: RequestOptions): Promise<Payout> {
    return this._post(`/api/v1/payouts/${seg(id)}/cancel`, undefined, false, options);
  }
}

export class Clicks extends Resource {
  list(params: ClickListParams = {}, options?: RequestOptions): Promise<Page<Click>> {
    return this._get("/api/v1/clicks", { ...params }, options);
  }
  listAll(params: Omit<ClickListParams, "cursor"> = {}): AsyncGenerator<Click> {
    return paginate((cursor) => this.list({ ...params, cursor }));
  }
}

export class EmbedTokens extends Resource {
  /**
   * A short-lived token for the embedded partner portal (`/embed/referrals?token=...`), for an
   * existing partner (`partner_id`) or self-enrolment (`partner: {email, name}`, idempotent by email).
   */
  create(input: EmbedTokenInput, options?: RequestOptions): Promise<EmbedToken> {
    return this._post("/api/v1/embed-tokens", input, true, options);
  }
}

export class Webhooks extends Resource {
  /** Registers an endpoint; the answer carries its signing `secret` (`whsec_...`), shown once. */
  create(input: WebhookEndpointCreate, options?: RequestOptions): Promise<WebhookEndpointCreated> {
    return this._post("/api/v1/webhooks", input, false, options);
  }
  list(params: ListParams = {}, options?: RequestOptions): Promise<Page<WebhookEndpoint>> {
    return this._get("/api/v1/webhooks", { ...params }, options);
  }
  delete(id: string, options?: RequestOptions): Promise<WebhookEndpointDeleted> {
    return this._del(`/api/v1/webhooks/${seg(id)}`, { id, deleted: true }, options);
  }
  /** The endpoint's delivery log, newest first. */
  deliveries(id: string, params: ListParams = {}, options?: RequestOptions): Promise<Page<WebhookDelivery>> {
    return this._get(`/api/v1/webhooks/${seg(id)}/deliveries`, { ...params }, options);
  }
  /** Sends a delivery's event again now (same event id and body); answers the delivery after it. */
  resend(deliveryId: string, options?: RequestOptions): Promise<WebhookDelivery> {
    return this._post(`/api/v1/webhook-deliveries/${seg(deliveryId)}/resend`, undefined, false, options);
  }
}

export class ApiKeys extends Resource {
  /** A new key; the answer carries the key itself (`rp_live_...`), shown once. */
  create(input: ApiKeyCreate, options?: RequestOptions): Promise<ApiKeyCreated> {
    return this._post("/api/v1/api-keys", input, false, options);
  }
  list(params: ListParams = {}, options?: RequestOptions): Promise<Page<ApiKey>> {
    return this._get("/api/v1/api-keys", { ...params }, options);
  }
  revoke(id: string, options?: RequestOptions): Promise<ApiKeyRevoked> {
    return this._del(`/api/v1/api-keys/${seg(id)}`, { id, revoked: true }, options);
  }
}

export class Refport {
  readonly track: Track;
  readonly programs: Programs;
  readonly partners: Partners;
  readonly links: Links;
  readonly coupons: Coupons;
  readonly groups: Groups;
  readonly commissions: Commissions;
  readonly payouts: Payouts;
  readonly clicks: Clicks;
  readonly embedTokens: EmbedTokens;
  readonly webhooks: Webhooks;
  readonly apiKeys: ApiKeys;
  /** The transport, for calls the SDK has no method for yet. */
  readonly http: Transport;

  constructor(options: ClientOptions = {}) {
    const t = new Transport(options);
    this.http = t;
    this.track = new Track(t);
    this.programs = new Programs(t);
    this.partners = new Partners(t);
    this.links = new Links(t);
    this.coupons = new Coupons(t);
    this.groups = new Groups(t);
    this.commissions = new Commissions(t);
    this.payouts = new Payouts(t);
    this.clicks = new Clicks(t);
    this.embedTokens = new EmbedTokens(t);
    this.webhooks = new Webhooks(t);
    this.apiKeys = new ApiKeys(t);
  }
}
