import { useQuery } from "@tanstack/react-query";
import { api, call } from "../api/client";

/** The organisation's plan, limits, usage and billing (`GET /org/plan`), shared by its screens. */
export function usePlan(enabled = true) {
  return useQuery({ queryKey: ["org", "plan"], queryFn: () => call(api.GET("/api/v1/org/plan")), enabled });
}

/** Sends the browser to Stripe: a checkout for `plan`, or the billing portal. */
export async function goToStripe(to: { plan: string } | "portal"): Promise<void> {
  const { url } =
    to === "portal"
      ? await call(api.POST("/api/v1/billing/portal"))
      : await call(api.POST("/api/v1/billing/checkout", { body: to }));
  window.location.assign(url);
}
