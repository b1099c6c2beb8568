// Next.js (App Router) route: app/api/signup/route.ts
import { Refport } from "@refport/sdk";

const refport = new Refport({ apiKey: process.env.REFPORT_API_KEY!, baseUrl: process.env.REFPORT_BASE_URL! });

function cookie(req: Request, name: string): string | undefined {
  const m = (req.headers.get("cookie") ?? "").match(new RegExp(`(?:^|;\\s*)${name}=([^;]*)`));
  return m?.[1] ? decodeURIComponent(m[1]) : undefined;
}

export async function POST(req: Request) {
  const { email, name } = (await req.json()) as { email: string; name: string };
  const user = { id: crypto.randomUUID(), email, name }; // ...create the user in your database

  const refportId = cookie(req, "refport_id"); // with next/headers: (await cookies()).get("refport_id")?.value
  if (refportId) {
    await refport.track.lead({ click_id: refportId, customer_external_id: user.id, customer_email: email, customer_name: name });
  }
  return Response.json({ id: user.id }, { status: 201 });
}
