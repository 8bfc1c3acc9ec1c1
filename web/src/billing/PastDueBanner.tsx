import { Alert, Button, Group, Text } from "@mantine/core";
import { IconAlertTriangle } from "@tabler/icons-react";
import { useMutation } from "@tanstack/react-query";
import { atLeast, useSession } from "../auth/useSession";
import { notifyError } from "../ui/forms";
import { dateTime } from "../ui/time";
import { goToStripe, usePlan } from "./usePlan";

/** Tells owners and admins, on every page, that a payment failed and when the plan goes. */
export function PastDueBanner() {
  const role = useSession()?.role;
  const plan = usePlan(atLeast(role, "admin"));
  const portal = useMutation({ mutationFn: goToStripe, onError: (err) => notifyError(err) });
  const due = plan.data?.billing;
  if (!atLeast(role, "admin") || !due?.past_due_since) return null;
  const fallback = plan.data?.plans.find((p) => p.is_default)?.label ?? "the default plan";
  return (
    <Alert color="red" icon={<IconAlertTriangle aria-hidden />} title="A payment failed" role="alert" mb="md" data-testid="past-due">
      <Group justify="space-between" align="center">
        <Text size="sm">
          Unless it is paid by {due.grace_ends_at ? dateTime(due.grace_ends_at) : "the end of the grace period"}, the
          organization moves to {fallback}. Nothing is deleted, but nothing past its limits can be added.
        </Text>
        {role === "owner" && due.has_account && (
          <Button size="xs" color="red" loading={portal.isPending} onClick={() => portal.mutate("portal")}>
            Update payment
          </Button>
        )}
      </Group>
    </Alert>
  );
}
