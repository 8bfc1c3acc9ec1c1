import { Badge, Group, Paper, Progress, Stack, Text, Title } from "@mantine/core";
import { limitFigure } from "../api/problem";
import { Failed, Loading } from "../ui/states";
import { Billing } from "./Billing";
import { usePlan } from "./usePlan";

/** The limits shown, in the order a person thinks of them. */
const SHOWN = [
  ["seats", "Seats", "Active staff and pending staff invitations; customers are free"],
  ["projects", "Projects", "Projects that are not archived"],
  ["storage_bytes", "File storage", "Attachments kept"],
  ["webhooks", "Webhooks", "Endpoints that hear about changes"],
] as const;

/**
 * The organisation's plan, how much of each limit it uses, and paying for it. Shown only where
 * the server has plans; a self-hosted server without a plans file limits nothing and shows
 * nothing.
 */
export function PlanUsage() {
  const plan = usePlan();
  if (plan.isPending) return <Loading label="Loading the plan" />;
  if (plan.isError) return <Failed error={plan.error} onRetry={() => void plan.refetch()} />;
  const current = plan.data.plan;
  if (!current) return null;
  return (
    <Paper withBorder p="md" component="section" aria-labelledby="plan-title" id="plan">
      <Stack>
        <Group justify="space-between">
          <Title order={2} size="h4" id="plan-title">
            Plan
          </Title>
          <Badge size="lg" variant="light">
            {current.label}
          </Badge>
        </Group>
        {SHOWN.map(([key, label, hint]) => {
          const limit = plan.data.limits[key];
          const used = plan.data.usage[key];
          const share = limit ? Math.min(100, (used / limit) * 100) : 0;
          const full = limit != null && used >= limit;
          return (
            <Stack key={key} gap={4} data-testid={`plan-${key}`}>
              <Group justify="space-between">
                <Text size="sm" fw={500}>
                  {label}
                </Text>
                <Text size="sm" c={full ? "red" : "dimmed"}>
                  {limit == null
                    ? `${limitFigure(key, used)} · unlimited`
                    : `${limitFigure(key, used)} of ${limitFigure(key, limit)}`}
                </Text>
              </Group>
              {limit != null && (
                <Progress
                  value={share}
                  color={full ? "red" : share >= 80 ? "yellow" : "blue"}
                  aria-label={`${label}: ${limitFigure(key, used)} of ${limitFigure(key, limit)}`}
                />
              )}
              <Text size="xs" c="dimmed">
                {hint}
              </Text>
            </Stack>
          );
        })}
        <Billing view={plan.data} />
      </Stack>
    </Paper>
  );
}
