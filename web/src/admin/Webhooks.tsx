import {
  Accordion,
  Alert,
  Badge,
  Button,
  Checkbox,
  Code,
  Group,
  Paper,
  SimpleGrid,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
} from "@mantine/core";
import { useForm } from "@mantine/form";
import { useInfiniteQuery, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api, call } from "../api/client";
import type { components } from "../api/schema";
import { FormModal } from "../ui/FormModal";
import { ShownOnce } from "../ui/ShownOnce";
import { useSubmit } from "../ui/forms";
import { Empty, Failed, Loading, Paged } from "../ui/states";
import { dateTime } from "../ui/time";
import { useAction } from "../ui/useAction";
import { modals } from "./confirm";

type Webhook = components["schemas"]["Webhook"];
type Delivery = components["schemas"]["WebhookDelivery"];
type DeliveryStatus = components["schemas"]["WebhookDeliveryStatus"];

type EventType = components["schemas"]["WebhookEventType"];

/** Every event type the server offers, by group (a type the server adds is a type error here). */
const GROUP_OF: Record<EventType, string> = {
  "ticket.created": "Tickets",
  "ticket.updated": "Tickets",
  "ticket.assigned": "Tickets",
  "ticket.status_changed": "Tickets",
  "ticket.deleted": "Tickets",
  "ticket.restored": "Tickets",
  "ticket.linked": "Tickets",
  "ticket.unlinked": "Tickets",
  "ticket.merged": "Tickets",
  "ticket.unmerged": "Tickets",
  "comment.created": "Comments",
  "comment.updated": "Comments",
  "comment.deleted": "Comments",
  "attachment.added": "Files",
  "attachment.removed": "Files",
  "project.created": "Projects",
  "project.updated": "Projects",
  "project.archived": "Projects",
  "project.restored": "Projects",
  "sla.warning": "SLA",
  "sla.breached": "SLA",
};
const EVENT_GROUPS = [...new Set(Object.values(GROUP_OF))].map((label) => ({
  label,
  events: (Object.keys(GROUP_OF) as EventType[]).filter((e) => GROUP_OF[e] === label),
}));

const STATUS_COLOR: Record<DeliveryStatus, string> = {
  pending: "yellow",
  delivering: "blue",
  succeeded: "green",
  failed: "red",
};

const WEBHOOKS = ["webhooks"];

/** Webhooks: endpoints that hear of the organisation's events, signed, retried for days. */
export function Webhooks() {
  const client = useQueryClient();
  const hooks = useQuery({ queryKey: WEBHOOKS, queryFn: () => call(api.GET("/api/v1/webhooks")) });
  const [editing, setEditing] = useState<Webhook | "new" | null>(null);
  const [secret, setSecret] = useState<{ url: string; secret: string } | null>(null);
  const [open, setOpen] = useState<string | null>(null);

  const shown = (url: string, s: string) => {
    setSecret({ url, secret: s });
    void client.invalidateQueries({ queryKey: WEBHOOKS });
  };

  return (
    <Stack>
      <Group justify="space-between">
        <Title order={1} size="h2">
          Webhooks
        </Title>
        <Button onClick={() => setEditing("new")}>New webhook</Button>
      </Group>
      <Text size="sm" c="dimmed" maw={720}>
        Docket posts each event you choose to your endpoint as JSON (<Code>{"{type, timestamp, data}"}</Code>), signed
        as the Standard Webhooks specification says (<Code>webhook-id</Code>, <Code>webhook-timestamp</Code>,{" "}
        <Code>webhook-signature</Code>). A failed delivery is retried for about three days; only public addresses can
        receive webhooks.
      </Text>
      {secret && (
        <ShownOnce
          title="The signing secret — copy it now, it is not shown again"
          value={secret.secret}
          testId="webhook-secret"
          onDone={() => setSecret(null)}
        >
          <Text size="sm">For {secret.url}</Text>
        </ShownOnce>
      )}
      {hooks.isPending ? (
        <Loading label="Loading webhooks" />
      ) : hooks.isError ? (
        <Failed error={hooks.error} onRetry={() => void hooks.refetch()} />
      ) : hooks.data.items.length === 0 ? (
        <Empty
          title="No webhooks yet"
          action={
            <Button variant="light" onClick={() => setEditing("new")}>
              Add the first webhook
            </Button>
          }
        >
          Add one to let another system hear what happens here.
        </Empty>
      ) : (
        hooks.data.items.map((w) => (
          <WebhookCard
            key={w.id}
            hook={w}
            open={open === w.id}
            onToggle={() => setOpen(open === w.id ? null : w.id)}
            onEdit={() => setEditing(w)}
            onSecret={(s) => shown(w.url, s)}
          />
        ))
      )}
      {editing && (
        <WebhookForm
          key={editing === "new" ? "new" : editing.id}
          existing={editing === "new" ? null : editing}
          onClose={() => setEditing(null)}
          onCreated={(url, s) => {
            setEditing(null);
            shown(url, s);
          }}
        />
      )}
      <modals.Host />
    </Stack>
  );
}

function WebhookCard({
  hook,
  open,
  onToggle,
  onEdit,
  onSecret,
}: {
  hook: Webhook;
  open: boolean;
  onToggle: () => void;
  onEdit: () => void;
  onSecret: (secret: string) => void;
}) {
  const path = { params: { path: { id: hook.id } } };
  const deliveries = ["webhook-deliveries", hook.id];
  const test = useAction(() => call(api.POST("/api/v1/webhooks/{id}/test", path)), {
    done: "Test delivery queued",
    invalidate: [deliveries],
  });
  const rotate = useAction(() => call(api.POST("/api/v1/webhooks/{id}/rotate-secret", path)), {
    done: "New secret made; the old one keeps signing for 24 hours",
    invalidate: [WEBHOOKS],
  });
  const toggle = useAction(
    (active: boolean) => call(api.PATCH("/api/v1/webhooks/{id}", { ...path, body: { active } })),
    { done: (w) => (w.active ? "Deliveries turned on" : "Deliveries turned off"), invalidate: [WEBHOOKS] },
  );
  const remove = useAction(() => call(api.DELETE("/api/v1/webhooks/{id}", path)), {
    done: "Webhook deleted",
    invalidate: [WEBHOOKS],
  });

  return (
    <Paper withBorder p="md" data-testid="webhook">
      <Stack gap="xs">
        <Group justify="space-between" align="flex-start" wrap="nowrap">
          <Stack gap={2} style={{ minWidth: 0 }}>
            <Text fw={600} ff="monospace" style={{ overflowWrap: "anywhere" }}>
              {hook.url}
            </Text>
            {hook.description && (
              <Text size="sm" c="dimmed">
                {hook.description}
              </Text>
            )}
          </Stack>
          <Badge color={hook.active ? "green" : "gray"} variant="light" style={{ flexShrink: 0 }}>
            {hook.active ? "active" : "off"}
          </Badge>
        </Group>
        {hook.disabled_reason && (
          <Alert color="red" title="Docket stopped delivering to this endpoint">
            {hook.disabled_reason}. Fix the receiver, then turn deliveries on again.
          </Alert>
        )}
        {hook.active && hook.failing_since && (
          <Text size="sm" c="red.8">
            Failing since {dateTime(hook.failing_since)}; after 5 days of failures it is turned off.
          </Text>
        )}
        <Group gap={4}>
          {hook.events.map((e) => (
            <Badge key={e} variant="outline" size="sm" tt="none">
              {e}
            </Badge>
          ))}
        </Group>
        {hook.previous_secret_expires_at && (
          <Text size="xs" c="dimmed">
            The previous secret also signs until {dateTime(hook.previous_secret_expires_at)}.
          </Text>
        )}
        <Group gap="xs">
          <Button size="xs" variant="light" onClick={onToggle} aria-expanded={open}>
            {open ? "Hide deliveries" : "Deliveries"}
          </Button>
          <Button size="xs" variant="default" onClick={() => test.mutate(undefined)} disabled={!hook.active}>
            Send test
          </Button>
          <Button size="xs" variant="default" onClick={onEdit}>
            Edit
          </Button>
          <Button
            size="xs"
            variant="default"
            onClick={() =>
              modals.confirm({
                title: "Rotate the signing secret?",
                body: "A new secret signs from now on. The current one keeps signing beside it for 24 hours, so your receiver can switch without losing a delivery.",
                confirm: "Rotate",
                onConfirm: () => rotate.mutate(undefined, { onSuccess: (w) => onSecret(w.secret) }),
              })
            }
          >
            Rotate secret
          </Button>
          <Button size="xs" variant="default" onClick={() => toggle.mutate(!hook.active)}>
            {hook.active ? "Turn off" : "Turn on"}
          </Button>
          <Button
            size="xs"
            color="red"
            variant="subtle"
            onClick={() =>
              modals.confirm({
                title: "Delete this webhook?",
                body: `Deliveries to ${hook.url} stop, and its delivery log is deleted.`,
                confirm: "Delete",
                onConfirm: () => remove.mutate(undefined),
              })
            }
          >
            Delete
          </Button>
        </Group>
        {open && <Deliveries hook={hook} />}
      </Stack>
    </Paper>
  );
}

function Deliveries({ hook }: { hook: Webhook }) {
  const queryKey = ["webhook-deliveries", hook.id];
  const log = useInfiniteQuery({
    queryKey,
    initialPageParam: undefined as string | undefined,
    queryFn: ({ pageParam }) =>
      call(
        api.GET("/api/v1/webhooks/{id}/deliveries", {
          params: { path: { id: hook.id }, query: { cursor: pageParam } },
        }),
      ),
    getNextPageParam: (page) => page.next_cursor ?? undefined,
  });
  const redeliver = useAction(
    (delivery_id: string) =>
      call(
        api.POST("/api/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver", {
          params: { path: { id: hook.id, delivery_id } },
        }),
      ),
    { done: "Sending again", invalidate: [queryKey] },
  );
  const items = log.data?.pages.flatMap((p) => p.items) ?? [];
  return (
    <Stack gap="xs">
      <Group justify="space-between">
        <Title order={2} size="h5">
          Deliveries (last 30 days)
        </Title>
        <Button size="compact-xs" variant="subtle" onClick={() => void log.refetch()}>
          Refresh
        </Button>
      </Group>
      <Paged
        query={log}
        count={items.length}
        empty={<Empty title="No deliveries yet">Events you subscribed to, and test deliveries, show here.</Empty>}
      >
        <Accordion variant="contained" chevronPosition="left" aria-label="Deliveries">
          {items.map((d) => (
            <DeliveryItem key={d.id} delivery={d} onRedeliver={() => redeliver.mutate(d.id)} />
          ))}
        </Accordion>
      </Paged>
    </Stack>
  );
}

function DeliveryItem({ delivery: d, onRedeliver }: { delivery: Delivery; onRedeliver: () => void }) {
  return (
    <Accordion.Item value={d.id} data-testid="delivery">
      <Accordion.Control>
        <Group justify="space-between" wrap="nowrap">
          <Group gap="xs" wrap="nowrap">
            <Badge color={STATUS_COLOR[d.status]} variant="light" style={{ minWidth: "max-content" }}>
              {d.status}
            </Badge>
            <Text size="sm" ff="monospace">
              {d.event_type}
            </Text>
          </Group>
          <Text size="xs" c="dimmed">
            {dateTime(d.created_at)}
          </Text>
        </Group>
      </Accordion.Control>
      <Accordion.Panel>
        <Stack gap="xs">
          <Group justify="space-between">
            <Text size="xs" c="dimmed">
              webhook-id <Code>msg_{d.id.replaceAll("-", "")}</Code>
              {d.next_attempt_at && <> · next attempt {dateTime(d.next_attempt_at)}</>}
            </Text>
            <Button size="compact-xs" variant="light" onClick={onRedeliver} disabled={d.status === "delivering"}>
              Redeliver
            </Button>
          </Group>
          <Table aria-label="Attempts">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>When</Table.Th>
                <Table.Th>Answer</Table.Th>
                <Table.Th>Time</Table.Th>
                <Table.Th>Response (first 2 KB)</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {d.attempts.map((a) => (
                <Table.Tr key={a.id} data-testid="attempt">
                  <Table.Td>{dateTime(a.attempted_at)}</Table.Td>
                  <Table.Td>
                    <Text size="sm">{a.status_code ?? "—"}</Text>
                    {a.error && (
                      <Text size="xs" c="red.8" style={{ overflowWrap: "anywhere" }}>
                        {a.error}
                      </Text>
                    )}
                  </Table.Td>
                  <Table.Td>{a.latency_ms} ms</Table.Td>
                  <Table.Td>
                    <Text size="xs" ff="monospace" lineClamp={3} style={{ overflowWrap: "anywhere" }}>
                      {a.response ?? "—"}
                    </Text>
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
          <Text size="xs" c="dimmed">
            Body sent
          </Text>
          <Code block style={{ maxHeight: 200, overflow: "auto" }}>
            {JSON.stringify(d.payload, null, 2)}
          </Code>
        </Stack>
      </Accordion.Panel>
    </Accordion.Item>
  );
}

/** Creates a webhook, or edits `existing`. */
function WebhookForm({
  existing,
  onClose,
  onCreated,
}: {
  existing: Webhook | null;
  onClose: () => void;
  onCreated: (url: string, secret: string) => void;
}) {
  const client = useQueryClient();
  const form = useForm({
    initialValues: existing
      ? { url: existing.url, description: existing.description, events: existing.events }
      : { url: "", description: "", events: ["ticket.created"] as EventType[] },
    validate: {
      url: (v) => (/^https?:\/\/.+/.test(v.trim()) ? null : "An http:// or https:// address"),
      events: (v) => (v.length ? null : "Choose at least one event"),
    },
  });
  const { submit, error, limited } = useSubmit(form, async ({ url, description, events }) => {
    if (existing) {
      await call(
        api.PATCH("/api/v1/webhooks/{id}", {
          params: { path: { id: existing.id } },
          body: { url: url.trim(), description, events },
        }),
      );
      void client.invalidateQueries({ queryKey: WEBHOOKS });
      onClose();
    } else {
      const made = await call(api.POST("/api/v1/webhooks", { body: { url: url.trim(), description, events } }));
      onCreated(made.url, made.secret);
    }
  });
  return (
    <FormModal
      opened
      onClose={onClose}
      title={existing ? "Edit webhook" : "New webhook"}
      error={error}
      limited={limited}
      onSubmit={submit}
      submitLabel={existing ? "Save" : "Create webhook"}
      submitting={form.submitting}
      size="lg"
    >
      <TextInput
        label="Endpoint URL"
        placeholder="https://example.com/docket-events"
        data-autofocus
        {...form.getInputProps("url")}
      />
      <TextInput label="Description" placeholder="What receives it" {...form.getInputProps("description")} />
      <Checkbox.Group label="Events" {...form.getInputProps("events")}>
        <SimpleGrid cols={{ base: 1, sm: 2 }} mt="xs">
          {EVENT_GROUPS.map((g) => (
            <Stack key={g.label} gap={4}>
              <Text size="sm" fw={500}>
                {g.label}
              </Text>
              {g.events.map((e) => (
                <Checkbox key={e} value={e} label={e} />
              ))}
            </Stack>
          ))}
        </SimpleGrid>
      </Checkbox.Group>
    </FormModal>
  );
}
