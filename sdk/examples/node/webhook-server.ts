// Node: receive Refport's webhooks with node:http (any framework works the same way: verify the
// RAW body, then apply each event id once).
import { createServer } from "node:http";
import { verifyWebhook, WebhookVerificationError, type WebhookEvent } from "@refport/sdk";

const secret = process.env.REFPORT_WEBHOOK_SECRET!; // whsec_..., from POST /api/v1/webhooks
const applied = new Set<string>(); // use a table with a unique key on the event id in production

async function apply(event: WebhookEvent) {
  switch (event.type) {
    case "commission.created":
    case "commission.updated":
      console.log(`commission ${event.data.id}: ${event.data.status} ${event.data.amount} ${event.data.currency}`);
      break;
    case "payout.paid":
      console.log(`paid ${event.data.amount} to ${event.data.partner_id}`);
      break;
    default:
      break;
  }
}

createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", async () => {
    try {
      const event = await verifyWebhook(Buffer.concat(chunks), req.headers["refport-signature"] as string | undefined, secret);
      if (!applied.has(event.id)) {
        await apply(event);
        applied.add(event.id);
      }
      res.writeHead(200).end();
    } catch (e) {
      // 400 on a bad signature; any other failure answers 500 and Refport retries (1m, 5m, 30m, ...)
      res.writeHead(e instanceof WebhookVerificationError ? 400 : 500).end();
    }
  });
}).listen(3000);
