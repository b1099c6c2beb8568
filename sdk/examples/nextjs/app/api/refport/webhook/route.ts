// Next.js (App Router) route: app/api/refport/webhook/route.ts (node or edge runtime)
import { verifyWebhook, WebhookVerificationError } from "@refport/sdk";

const seen = new Set<string>(); // use your database: INSERT ... ON CONFLICT (event_id) DO NOTHING

export async function POST(req: Request) {
  const raw = await req.text(); // the raw body: never re-serialize JSON before verifying
  let event;
  try {
    event = await verifyWebhook(raw, req.headers.get("refport-signature"), process.env.REFPORT_WEBHOOK_SECRET!);
  } catch (e) {
    if (e instanceof WebhookVerificationError) return new Response(e.code, { status: 400 });
    throw e;
  }
  if (seen.has(event.id)) return new Response("duplicate", { status: 200 }); // delivered at least once
  if (event.type === "commission.created") {
    console.log(`partner ${event.data.partner_id} earned ${event.data.amount} ${event.data.currency}`);
  } else if (event.type === "payout.paid") {
    console.log(`payout ${event.data.id} sent: ${event.data.amount}`);
  }
  seen.add(event.id);
  return new Response("ok", { status: 200 }); // anything else than 2xx is retried: 1m, 5m, 30m, 2h, ...
}
