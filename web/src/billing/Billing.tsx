import { Alert, Button, Group, Stack, Text } from "@mantine/core";
import { useMutation } from "@tanstack/react-query";
import { useSearchParams } from "react-router";
import type { components } from "../api/schema";
import { useSession } from "../auth/useSession";
import { notifyError } from "../ui/forms";
import { dateTime } from "../ui/time";
import { goToStripe } from "./usePlan";

type PlanView = components["schemas"]["PlanView"];

const LIVE = ["active", "trialing", "past_due"];

/**
 * Paying for the plan: owners upgrade through Stripe's checkout, or manage what they pay in
 * Stripe's billing portal; everyone sees when the paid plan ends. Nothing when the server does
 * not take payment.
 */
export function Billing({ view }: { view: PlanView }) {
  const owner = useSession()?.role === "owner";
  const [params] = useSearchParams();
  const stripe = useMutation({ mutationFn: goToStripe, onError: (err) => notifyError(err) });
  const { billing } = view;
  if (!billing.enabled && !billing.has_account) return null;
  const subscribed = LIVE.includes(billing.subscription_status ?? "");
  const returned = params.get("billing");
  const upgrades = view.plans.filter((p) => p.purchasable && p.key !== view.plan?.key);
  return (
    <Stack gap="xs" data-testid="billing">
      {returned === "done" && (
        <Alert color="green" role="status">
          Thank you. The plan changes as soon as Stripe confirms the payment.
        </Alert>
      )}
      {returned === "cancelled" && (
        <Alert color="gray" role="status">
          Checkout was cancelled; nothing was charged.
        </Alert>
      )}
      {billing.cancel_at && (
        <Text size="sm">
          The paid plan ends on {dateTime(billing.cancel_at)}; the organization then moves to the default plan.
        </Text>
      )}
      {!owner && <Text size="sm" c="dimmed">Owners change the plan and what it costs.</Text>}
      {owner && (
        <Group gap="xs">
          {!subscribed &&
            billing.enabled &&
            upgrades.map((p) => (
              <Button
                key={p.key}
                size="sm"
                loading={stripe.isPending && stripe.variables !== "portal" && stripe.variables.plan === p.key}
                onClick={() => stripe.mutate({ plan: p.key })}
              >
                Upgrade to {p.label}
              </Button>
            ))}
          {billing.has_account && (
            <Button
              size="sm"
              variant={subscribed ? "filled" : "default"}
              loading={stripe.isPending && stripe.variables === "portal"}
              onClick={() => stripe.mutate("portal")}
            >
              {subscribed ? "Change plan or payment method" : "Invoices and payment method"}
            </Button>
          )}
        </Group>
      )}
    </Stack>
  );
}
