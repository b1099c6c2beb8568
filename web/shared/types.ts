/** A condition of a reward modifier: `field` is country, product_id, sale_amount, customer_type,
 * event_name or metadata.<key>; `value` a list for `in`/`not_in`. */
export type RewardCondition = { field: string; op: "eq" | "neq" | "in" | "not_in" | "gte" | "lte" | "contains"; value: string | number | boolean | (string | number | boolean)[] };
/** Terms replacing the reward's base terms when the conditions match (the best paying match wins). */
export type RewardModifier = { conditions: RewardCondition[]; match?: "all" | "any"; type: "flat" | "percentage"; amount: number; duration_months?: number | null };
export type Reward = {
  type: "flat" | "percentage";
  amount: number;
  duration_months?: number | null;
  modifiers?: RewardModifier[];
  /** Sale rewards: the most one customer can earn its partner (minor units). */
  max_amount_per_customer?: number | null;
  /** Sale rewards: how many of one customer's sales earn a commission. */
  max_sales_per_customer?: number | null;
};
export type Rewards = { lead?: Reward | null; sale?: Reward | null };
/** A fraud rule's code (also a held commission's reason, and a rule-rejected one's `reason`). */
export type FraudRule = "self_referral" | "email_domain_match" | "disposable_email" | "paid_traffic" | "click_spam" | "duplicate_payout_account" | "banned_referrer";
/** `hold`: pending until the merchant decides; `reject`: created rejected; `off`. */
export type FraudAction = "hold" | "reject" | "off";
/** Every rule, with its action (duplicate_payout_account is hold or off). */
export type FraudRules = Record<FraudRule, FraudAction>;
export type Schedule = { every: "day" } | { every: "week"; weekday: number } | { every: "month"; day: number };

export interface Program {
  id: string;
  name: string;
  description: string;
  logo_url: string | null;
  brand_color: string;
  domains: string[];
  allowed_hosts: string[];
  cookie_domain: string | null;
  payout_currency: string;
  min_payout: number;
  payout_schedule: Schedule;
  attribution_window_days: number;
  attribution_model: "last_click" | "first_click";
  hold_days: number;
  rewards: Rewards;
  fraud_rules: FraudRules;
  /** click_spam: more clicks than this by one visitor on the link in 24 hours (1 to 10000). */
  click_spam_threshold: number;
  /** banned_referrer: referrer hostnames the rule judges. */
  banned_referrers: string[];
  /** `review`: the cron prepares due payouts awaiting the merchant's approval. */
  payout_mode?: "automatic" | "review";
  created_at?: string;
}

export interface Partner {
  id: string;
  program_id: string;
  email: string;
  name: string;
  status: "invited" | "active" | "banned";
  payouts_enabled: boolean;
  stripe_account_id?: string | null;
  /** Fraud rules holding the partner's payouts until the merchant approves its payout account. */
  payout_hold_reasons?: FraudRule[];
  created_at?: string;
  /** The partner's own rewards, per kind; null: its group's or the program's apply. */
  rewards?: Rewards | null;
  group_id?: string | null;
  /** The partner's own minimum payout (minor units); null: its group's or the program's. */
  min_payout?: number | null;
}

/** A partner group: terms between the program's and a partner's own (null: the program's). */
export interface Group {
  id: string;
  program_id: string;
  name: string;
  rewards: Rewards | null;
  min_payout: number | null;
  hold_days: number | null;
  /** Partners in the group. */
  partners: number;
  created_at: string;
  updated_at: string;
}

export interface Earnings {
  pending: number;
  approved: number;
  paid: number;
  rejected: number;
  total: number;
}

export interface PartnerStats {
  partner_id: string;
  clicks: number;
  leads: number;
  sales: number;
  sale_amount: number;
  currency: string | null;
  earnings: Earnings;
}

export interface Link {
  id: string;
  domain: string;
  key: string;
  url: string;
  short_url: string;
}

export interface Commission {
  id: string;
  partner_id: string;
  program_id: string;
  customer_id: string | null;
  kind: "lead" | "sale" | "clawback" | "bonus";
  /** A bonus's description (null for the other kinds). */
  description?: string | null;
  invoice_id: string | null;
  sale_amount: number;
  amount: number;
  currency: string;
  status: "pending" | "approved" | "paid" | "rejected";
  reason: string | null;
  created_at: string;
  approved_at: string | null;
  paid_at: string | null;
  payout_id: string | null;
  /** The fraud rules that held it for review (kept after the merchant's decision). */
  hold_reasons: FraudRule[];
  /** Pending and held: only the merchant's approve or reject decides it. */
  held: boolean;
}

export interface Payout {
  id: string;
  partner_id: string;
  program_id: string;
  amount: number;
  currency: string;
  status: "processing" | "paid" | "failed" | "awaiting_approval" | "canceled";
  stripe_transfer_id: string | null;
  failure_message: string | null;
  commission_count: number;
  created_at: string;
  paid_at: string | null;
}

export interface PortalMe {
  program: {
    id: string;
    name: string;
    description: string;
    logo_url: string | null;
    brand_color: string;
    payout_currency: string;
    min_payout: number;
    terms: string;
  };
  partner: {
    id: string;
    name: string;
    email: string;
    status: string;
    payouts_enabled: boolean;
    stripe_connected: boolean;
    /** ISO 3166-1 alpha-2; null until the merchant sets it or the partner picks it at onboarding. */
    country: string | null;
    /** `stripe_requirements`, `deauthorized` or a Stripe refusal code; null when enabled. */
    payouts_disabled_reason: string | null;
  };
  links: Link[];
  totals: { clicks: number; leads: number; sales: number; earnings: Earnings };
}

export interface DayStat {
  date: string;
  clicks: number;
  leads: number;
  sales: number;
  earnings: number;
}

/** Clicks, leads and sales of one combination of sub-IDs (null: absent). */
export interface SubIdStat {
  sub1: string | null;
  sub2: string | null;
  sub3: string | null;
  clicks: number;
  leads: number;
  sales: number;
}

export interface PortalStats {
  days: number;
  currency: string;
  data: DayStat[];
  /** The period's clicks and conversions that carried sub-IDs (`?sub1=` on a link), busiest first. */
  sub_ids: SubIdStat[];
}

/** `GET /api/v1/integrations/stripe`: one of the two webhook endpoints to add in Stripe. */
export interface StripeWebhookEndpoint {
  /** `platform`: events on your account; `connect`: events on connected accounts. */
  endpoint: "platform" | "connect";
  url: string;
  /** Whether the Worker has this endpoint's signing secret (STRIPE_WEBHOOK_SECRET / STRIPE_CONNECT_WEBHOOK_SECRET). */
  secret_configured: boolean;
  /** The event types to select in Stripe. */
  events: string[];
}

/** What a received Stripe event did: a lead or sale credited to a partner, nothing (with a
 * reason), or an update applied (refund, payout account). */
export type StripeEventOutcome = "attributed" | "unattributed" | "ignored" | "applied";

/** A Stripe event the Worker received (newest first, at most 50). */
export interface StripeEventRecord {
  id: string;
  type: string;
  endpoint: "platform" | "connect";
  received_at: string;
  /** null for events received before outcomes were recorded. */
  outcome: StripeEventOutcome | null;
  /** lead, sale, lead_and_sale, refund, account_updated, transfer_reversed, payouts_resumed… */
  effect: string | null;
  /** Why nothing was credited (not_a_refport_click, no_click_id, unpaid…, or a track API reason). */
  reason: string | null;
  program_id: string | null;
  partner_id: string | null;
  partner_name: string | null;
  customer: string | null;
  object_id: string | null;
  /** Minor units of `currency`. */
  amount: number | null;
  currency: string | null;
}

export interface StripeIntegration {
  webhooks: StripeWebhookEndpoint[];
  /** STRIPE_SECRET_KEY: needed to read refunds of subscriptions and foreign-currency payments. */
  api_key_configured: boolean;
  events: StripeEventRecord[];
}
