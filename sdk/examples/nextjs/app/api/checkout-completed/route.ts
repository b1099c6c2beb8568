// Next.js (App Router) route: app/api/checkout-completed/route.ts, called by your payment flow
import { Refport, RefportApiError } from "@refport/sdk";

const refport = new Refport({ apiKey: process.env.REFPORT_API_KEY!, baseUrl: process.env.REFPORT_BASE_URL! });

export async function POST(req: Request) {
  const { userId, invoiceId, amount, currency } = (await req.json()) as {
    userId: string;
    invoiceId: string;
    amount: number;
    currency: string;
  };
  try {
    const sale = await refport.track.sale({ customer_external_id: userId, invoice_id: invoiceId, amount, currency });
    return Response.json({ attributed: sale.attributed, commission: sale.commission?.amount ?? 0 });
  } catch (e) {
    if (e instanceof RefportApiError) return Response.json({ error: e.code }, { status: e.status });
    throw e;
  }
}
