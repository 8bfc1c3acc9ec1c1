import { Paper, SegmentedControl, Stack, Table, Text, Title } from "@mantine/core";
import { useQuery } from "@tanstack/react-query";
import { api, call } from "../api/client";
import type { components } from "../api/schema";
import { useAction } from "../ui/useAction";
import { Failed, Loading } from "../ui/states";

type Kind = components["schemas"]["NotificationKind"];
type Delivery = components["schemas"]["Delivery"];

const KINDS: Record<Kind, string> = {
  assigned: "You are assigned a ticket",
  unassigned: "You are taken off a ticket",
  comment: "New comments on your tickets",
  mentioned: "Someone mentions you",
  status_changed: "Status changes on your tickets",
  webhook_disabled: "A webhook Docket stopped delivering to (admins)",
  sla_warning: "An SLA clock of your tickets nears its due time (staff)",
  sla_breached: "An SLA clock of your tickets passed its due time (staff)",
};

const DELIVERIES: { value: Delivery; label: string }[] = [
  { value: "immediately", label: "At once" },
  { value: "hourly_digest", label: "Hourly digest" },
  { value: "off", label: "Off" },
];

/** How each kind of notification reaches the person by mail (in-app notifications stay). */
export function MailPreferences() {
  const prefs = useQuery({
    queryKey: ["notification-preferences"],
    queryFn: () => call(api.GET("/api/v1/me/notification-preferences")),
  });
  const save = useAction(
    (p: { kind: Kind; delivery: Delivery }) =>
      call(api.PUT("/api/v1/me/notification-preferences", { body: { preferences: [p] } })),
    { done: "Saved", invalidate: [["notification-preferences"]] },
  );
  return (
    <Paper withBorder p="md" id="notifications">
      <Stack>
        <Title order={2} size="h4">
          Notification mail
        </Title>
        <Text size="sm" c="dimmed">
          What reaches your inbox for this organization. The bell in Docket shows everything either way.
        </Text>
        {prefs.isPending ? (
          <Loading />
        ) : prefs.isError ? (
          <Failed error={prefs.error} onRetry={() => void prefs.refetch()} />
        ) : (
          <Table aria-label="Notification mail">
            <Table.Tbody>
              {prefs.data.preferences.map((p) => (
                <Table.Tr key={p.kind}>
                  <Table.Td>
                    <Text size="sm" id={`pref-${p.kind}`}>
                      {KINDS[p.kind]}
                    </Text>
                  </Table.Td>
                  <Table.Td>
                    <SegmentedControl
                      size="xs"
                      aria-labelledby={`pref-${p.kind}`}
                      data={DELIVERIES}
                      value={p.delivery}
                      onChange={(delivery) => save.mutate({ kind: p.kind, delivery: delivery as Delivery })}
                    />
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        )}
      </Stack>
    </Paper>
  );
}
