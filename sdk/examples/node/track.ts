// Node (>= 18): report conversions from your backend.
import { Refport, ConflictError, RefportApiError } from "@refport/sdk";

const refport = new Refport({
  apiKey: process.env.REFPORT_API_KEY!, // a `track` key is enough for track.*
  baseUrl: "https://refport.acme.com", // your Refport deployment
});

// After sign-up: `refportId` is the visitor's `refport_id` cookie (set by /refport.js or the
// redirect). An unknown or expired id records the lead unattributed; it is never an error.
export async function onSignup(user: { id: string; email: string; name: string }, refportId: string | undefined) {
  if (!refportId) return;
  const { attributed, commission } = await refport.track.lead({
    click_id: refportId,
    customer_external_id: user.id,
    customer_email: user.email,
    customer_name: user.name,
  });
  console.log(attributed ? `credited, commission ${commission?.amount ?? 0}` : "not attributed");
}

// After payment: idempotent on invoice_id, so a retried job never pays a commission twice.
export async function onInvoicePaid(invoice: { id: string; customer: string; amount_paid: number; currency: string }) {
  try {
    await refport.track.sale({
      customer_external_id: invoice.customer,
      amount: invoice.amount_paid, // minor units
      currency: invoice.currency,
      invoice_id: invoice.id,
      metadata: { source: "stripe" },
    });
  } catch (e) {
    if (e instanceof ConflictError && e.code === "invoice_conflict") {
      console.error("invoice id reused with another amount/customer", e.message);
    } else if (e instanceof RefportApiError) {
      console.error(`Refport refused the sale: ${e.status} ${e.code}${e.field ? ` (${e.field})` : ""}`);
    } else {
      throw e; // RefportConnectionError: no answer after the retries; retry the job later
    }
  }
}

// A refund: pass your own refund id as the idempotency key, so retries land once.
export async function onRefund(refund: { id: string; invoice: string; amount: number }) {
  await refport.track.refund({ invoice_id: refund.invoice, amount: refund.amount }, { idempotencyKey: refund.id });
}
