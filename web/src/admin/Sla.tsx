import {
  ActionIcon,
  Alert,
  Button,
  Group,
  NumberInput,
  Paper,
  Select,
  Stack,
  Table,
  Text,
  TextInput,
  Textarea,
  Title,
} from "@mantine/core";
import { useForm, type UseFormReturnType } from "@mantine/form";
import { IconTrash } from "@tabler/icons-react";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api, call } from "../api/client";
import { ApiError, errorMessage } from "../api/problem";
import type { components } from "../api/schema";
import { FormModal } from "../ui/FormModal";
import { notifyDone } from "../ui/forms";
import { Empty, Failed, Loading } from "../ui/states";
import { useAction } from "../ui/useAction";
import { isAgent, personOptions, usePeople, useProjects } from "../tickets/reference";
import { modals } from "./confirm";

type Calendar = components["schemas"]["CalendarView"];
type WeeklyHours = components["schemas"]["WeeklyHours"];
type Holiday = components["schemas"]["Holiday"];
type PolicyInput = components["schemas"]["SlaPolicyInput"];
type Priority = components["schemas"]["Priority"];
type Role = components["schemas"]["Role"];

const DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"] as const;
type Day = (typeof DAYS)[number];
const CALENDARS = ["calendars"];
const POLICIES = ["sla-policies"];
const ZONES: string[] = Intl.supportedValuesOf?.("timeZone") ?? ["UTC"];

/**
 * Puts the API's field errors where the form shows them (`policies[0].x` is `policies.0.x`,
 * `hours.monday[1]` is the Monday field); returns what found no field.
 */
function placeErrors<T extends object>(form: UseFormReturnType<T>, err: unknown, field: (api: string) => string): string | null {
  if (!(err instanceof ApiError)) return errorMessage(err);
  const errors = err.fieldErrors();
  if (Object.keys(errors).length === 0) return errorMessage(err);
  const placed: Record<string, string> = {};
  for (const [f, message] of Object.entries(errors)) {
    const key = field(f);
    placed[key] = placed[key] ? `${placed[key]}; ${message}` : message;
  }
  form.setErrors(placed);
  return null;
}

/** SLA settings: business calendars, and the policies that count on them. */
export function Sla() {
  return (
    <Stack>
      <Title order={1} size="h2">
        SLA
      </Title>
      <Text size="sm" c="dimmed" maw={760}>
        Targets count business time on a calendar (its time zone, opening hours and holidays), and stand still while a
        ticket waits on the customer. Each ticket shows its clocks and how their due times were computed; warnings and
        breaches notify the assignees and managers, go to webhooks and mail, and can escalate.
      </Text>
      <Calendars />
      <Policies />
      <modals.Host />
    </Stack>
  );
}

function hoursText(day: WeeklyHours[Day] | undefined): string {
  return (day ?? []).map((i) => `${i.start}-${i.end}`).join(", ");
}

function parseHours(text: string): { start: string; end: string }[] {
  return text
    .split(",")
    .map((part) => part.trim())
    .filter(Boolean)
    .map((part) => {
      const [start = "", end = ""] = part.split("-").map((s) => s.trim());
      return { start, end };
    });
}

function holidaysText(holidays: Holiday[]): string {
  return holidays.map((h) => [h.date, h.recurring ? "yearly" : "", h.name].filter(Boolean).join(" ")).join("\n");
}

function parseHolidays(text: string): Holiday[] {
  return text
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => {
      const [date = "", ...rest] = line.split(/\s+/);
      const recurring = rest[0]?.toLowerCase() === "yearly";
      return { date, recurring, name: (recurring ? rest.slice(1) : rest).join(" ") };
    });
}

function Calendars() {
  const calendars = useQuery({ queryKey: CALENDARS, queryFn: () => call(api.GET("/api/v1/calendars")) });
  const [editing, setEditing] = useState<Calendar | "new" | null>(null);
  const remove = useAction(
    (id: string) => call(api.DELETE("/api/v1/calendars/{id}", { params: { path: { id } } })),
    { done: "Calendar deleted", invalidate: [CALENDARS] },
  );
  return (
    <Paper withBorder p="md">
      <Stack>
        <Group justify="space-between">
          <Title order={2} size="h3">
            Business calendars
          </Title>
          <Button onClick={() => setEditing("new")}>New calendar</Button>
        </Group>
        {calendars.isPending ? (
          <Loading label="Loading calendars" />
        ) : calendars.isError ? (
          <Failed error={calendars.error} onRetry={() => void calendars.refetch()} />
        ) : calendars.data.items.length === 0 ? (
          <Empty
            title="No calendars yet"
            action={
              <Button variant="light" onClick={() => setEditing("new")}>
                Add business hours
              </Button>
            }
          >
            Without one, policies count around the clock (UTC).
          </Empty>
        ) : (
          <Table.ScrollContainer minWidth={560}>
            <Table>
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Name</Table.Th>
                  <Table.Th>Time zone</Table.Th>
                  <Table.Th>Hours</Table.Th>
                  <Table.Th>Holidays</Table.Th>
                  <Table.Th />
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {calendars.data.items.map((c) => (
                  <Table.Tr key={c.id} data-testid="calendar">
                    <Table.Td>{c.name}</Table.Td>
                    <Table.Td>{c.time_zone}</Table.Td>
                    <Table.Td>
                      <Text size="xs">
                        {DAYS.filter((d) => c.hours[d]?.length)
                          .map((d) => `${d.slice(0, 3)} ${hoursText(c.hours[d])}`)
                          .join(" · ")}
                      </Text>
                    </Table.Td>
                    <Table.Td>{c.holidays.length}</Table.Td>
                    <Table.Td>
                      <Group gap="xs" wrap="nowrap">
                        <Button size="xs" variant="default" onClick={() => setEditing(c)}>
                          Edit
                        </Button>
                        <Button
                          size="xs"
                          variant="default"
                          color="red"
                          onClick={() =>
                            modals.confirm({
                              title: `Delete ${c.name}?`,
                              body: "A calendar a policy uses cannot be deleted.",
                              confirm: "Delete",
                              onConfirm: () => remove.mutate(c.id),
                            })
                          }
                        >
                          Delete
                        </Button>
                      </Group>
                    </Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </Table.ScrollContainer>
        )}
      </Stack>
      {editing && (
        <CalendarForm
          key={editing === "new" ? "new" : editing.id}
          existing={editing === "new" ? null : editing}
          onClose={() => setEditing(null)}
        />
      )}
    </Paper>
  );
}

function CalendarForm({ existing, onClose }: { existing: Calendar | null; onClose: () => void }) {
  const client = useQueryClient();
  const form = useForm({
    initialValues: {
      name: existing?.name ?? "",
      time_zone: existing?.time_zone ?? Intl.DateTimeFormat().resolvedOptions().timeZone ?? "UTC",
      hours: Object.fromEntries(
        DAYS.map((d) => [d, existing ? hoursText(existing.hours[d]) : d === "saturday" || d === "sunday" ? "" : "09:00-17:00"]),
      ) as Record<Day, string>,
      holidays: existing ? holidaysText(existing.holidays) : "",
    },
  });
  const [error, setError] = useState<string | null>(null);
  const [saving, setSaving] = useState(false);
  const submit = form.onSubmit(async (v) => {
    setError(null);
    setSaving(true);
    const body = {
      name: v.name,
      time_zone: v.time_zone,
      hours: Object.fromEntries(DAYS.map((d) => [d, parseHours(v.hours[d])])) as WeeklyHours,
      holidays: parseHolidays(v.holidays),
    };
    try {
      if (existing) {
        await call(api.PATCH("/api/v1/calendars/{id}", { params: { path: { id: existing.id } }, body }));
      } else {
        await call(api.POST("/api/v1/calendars", { body }));
      }
      await client.invalidateQueries({ queryKey: CALENDARS });
      notifyDone(existing ? "Calendar saved; open tickets recomputed" : "Calendar created");
      onClose();
    } catch (err) {
      setError(placeErrors(form, err, (f) => (f.startsWith("holidays") ? "holidays" : f.replace(/\[\d+\]$/, ""))));
    } finally {
      setSaving(false);
    }
  });
  return (
    <FormModal
      opened
      onClose={onClose}
      title={existing ? `Edit ${existing.name}` : "New calendar"}
      size="lg"
      error={error}
      onSubmit={submit}
      submitLabel={existing ? "Save calendar" : "Create calendar"}
      submitting={saving}
    >
      <TextInput label="Name" required {...form.getInputProps("name")} />
      <Select label="Time zone" searchable data={ZONES} {...form.getInputProps("time_zone")} />
      <Text size="sm" fw={500}>
        Opening hours (local time, e.g. 09:00-12:30, 13:30-17:00; empty = closed)
      </Text>
      {DAYS.map((d) => (
        <TextInput
          key={d}
          label={d.charAt(0).toUpperCase() + d.slice(1)}
          placeholder="closed"
          {...form.getInputProps(`hours.${d}`)}
        />
      ))}
      <Textarea
        label="Holidays"
        description="One per line: 2026-12-24 Christmas Eve — or 2026-12-25 yearly Christmas for every year"
        autosize
        minRows={2}
        {...form.getInputProps("holidays")}
      />
    </FormModal>
  );
}

const PRIORITIES: Priority[] = ["urgent", "high", "medium", "low"];
const ROLES: Role[] = ["owner", "admin", "manager", "agent", "viewer"];

type PolicyRow = {
  priority: Priority;
  project_id: string;
  calendar_id: string;
  first_response_minutes: number | string;
  next_response_minutes: number | string;
  resolution_minutes: number | string;
  warning_percent: number | string;
  notify_role: string;
  reassign_to: string;
};

function toInput(r: PolicyRow): PolicyInput {
  const escalation: PolicyInput["escalation"] =
    r.notify_role || r.reassign_to
      ? [{ on: "breach", notify_role: (r.notify_role || null) as Role | null, reassign_to: r.reassign_to || null }]
      : [];
  const num = (v: number | string) => (v === "" ? null : Number(v));
  return {
    priority: r.priority,
    project_id: r.project_id || null,
    calendar_id: r.calendar_id || null,
    first_response_minutes: Number(r.first_response_minutes),
    next_response_minutes: num(r.next_response_minutes),
    resolution_minutes: Number(r.resolution_minutes),
    warning_percent: num(r.warning_percent),
    escalation,
  };
}

function Policies() {
  const policies = useQuery({ queryKey: POLICIES, queryFn: () => call(api.GET("/api/v1/sla-policies")) });
  if (policies.isPending) return <Loading label="Loading policies" />;
  if (policies.isError) return <Failed error={policies.error} onRetry={() => void policies.refetch()} />;
  const rows: PolicyRow[] = policies.data.policies.map((p) => {
    const breach = p.escalation.find((e) => e.on === "breach");
    return {
      priority: p.priority,
      project_id: p.project_id ?? "",
      calendar_id: p.calendar_id ?? "",
      first_response_minutes: p.first_response_minutes ?? "",
      next_response_minutes: p.next_response_minutes ?? "",
      resolution_minutes: p.resolution_minutes ?? "",
      warning_percent: p.warning_percent,
      notify_role: breach?.notify_role ?? "",
      reassign_to: breach?.reassign_to ?? "",
    };
  });
  return <PolicyEditor key={policies.dataUpdatedAt} rows={rows} />;
}

function PolicyEditor({ rows }: { rows: PolicyRow[] }) {
  const client = useQueryClient();
  const projects = useProjects();
  const calendars = useQuery({ queryKey: CALENDARS, queryFn: () => call(api.GET("/api/v1/calendars")) });
  const people = usePeople();
  const form = useForm({ initialValues: { policies: rows } });
  const [error, setError] = useState<string | null>(null);
  const [saving, setSaving] = useState(false);
  const projectOptions = [{ value: "", label: "All projects" }, ...(projects.data ?? []).map((p) => ({ value: p.id, label: `${p.key} · ${p.name}` }))];
  const calendarOptions = [
    { value: "", label: "Around the clock (UTC)" },
    ...(calendars.data?.items ?? []).map((c) => ({ value: c.id, label: c.name })),
  ];
  const submit = form.onSubmit(async (v) => {
    setError(null);
    setSaving(true);
    try {
      await call(api.PUT("/api/v1/sla-policies", { body: { policies: v.policies.map(toInput) } }));
      await client.invalidateQueries({ queryKey: POLICIES });
      notifyDone("Policies saved; open tickets recomputed");
    } catch (err) {
      setError(
        placeErrors(form, err, (f) => {
          const m = /^policies\[(\d+)\]\.([a-z_]+)/.exec(f);
          if (!m) return f;
          const field = m[2] === "escalation" ? "notify_role" : m[2];
          return `policies.${m[1]}.${field}`;
        }),
      );
    } finally {
      setSaving(false);
    }
  });
  const add = () =>
    form.insertListItem("policies", {
      priority: "medium",
      project_id: "",
      calendar_id: "",
      first_response_minutes: 240,
      next_response_minutes: "",
      resolution_minutes: 2880,
      warning_percent: 80,
      notify_role: "",
      reassign_to: "",
    } satisfies PolicyRow);
  const list = form.getValues().policies;
  return (
    <Paper withBorder p="md">
      <form onSubmit={submit} noValidate>
        <Stack>
          <Group justify="space-between">
            <Title order={2} size="h3">
              Policies
            </Title>
            <Button variant="default" onClick={add}>
              Add policy
            </Button>
          </Group>
          <Text size="sm" c="dimmed">
            Targets in business minutes. A project&apos;s own policy wins over the one for all projects. Breach: notify a
            role and/or reassign.
          </Text>
          {error && (
            <Alert color="red" role="alert">
              {error}
            </Alert>
          )}
          {list.length === 0 ? (
            <Empty
              title="No policies"
              action={
                <Button variant="light" onClick={add}>
                  Add the first policy
                </Button>
              }
            >
              Tickets have no SLA clocks until a policy covers their priority.
            </Empty>
          ) : (
            <Table.ScrollContainer minWidth={1100}>
              <Table verticalSpacing="xs">
                <Table.Thead>
                  <Table.Tr>
                    <Table.Th>Priority</Table.Th>
                    <Table.Th>Project</Table.Th>
                    <Table.Th>Calendar</Table.Th>
                    <Table.Th>First reply</Table.Th>
                    <Table.Th>Next reply</Table.Th>
                    <Table.Th>Resolution</Table.Th>
                    <Table.Th>Warn at %</Table.Th>
                    <Table.Th>On breach notify</Table.Th>
                    <Table.Th>On breach reassign</Table.Th>
                    <Table.Th />
                  </Table.Tr>
                </Table.Thead>
                <Table.Tbody>
                  {list.map((_, i) => (
                    <Table.Tr key={form.key(`policies.${i}`)} data-testid="policy">
                      <Table.Td>
                        <Select aria-label="Priority" data={PRIORITIES} allowDeselect={false} {...form.getInputProps(`policies.${i}.priority`)} />
                      </Table.Td>
                      <Table.Td>
                        <Select aria-label="Project" data={projectOptions} allowDeselect={false} {...form.getInputProps(`policies.${i}.project_id`)} />
                      </Table.Td>
                      <Table.Td>
                        <Select aria-label="Calendar" data={calendarOptions} allowDeselect={false} {...form.getInputProps(`policies.${i}.calendar_id`)} />
                      </Table.Td>
                      <Table.Td>
                        <NumberInput aria-label="First reply minutes" min={1} {...form.getInputProps(`policies.${i}.first_response_minutes`)} />
                      </Table.Td>
                      <Table.Td>
                        <NumberInput aria-label="Next reply minutes" min={1} placeholder="—" {...form.getInputProps(`policies.${i}.next_response_minutes`)} />
                      </Table.Td>
                      <Table.Td>
                        <NumberInput aria-label="Resolution minutes" min={1} {...form.getInputProps(`policies.${i}.resolution_minutes`)} />
                      </Table.Td>
                      <Table.Td>
                        <NumberInput aria-label="Warning percent" min={1} max={99} {...form.getInputProps(`policies.${i}.warning_percent`)} />
                      </Table.Td>
                      <Table.Td>
                        <Select
                          aria-label="Notify role on breach"
                          data={[{ value: "", label: "Nobody more" }, ...ROLES.map((r) => ({ value: r, label: r }))]}
                          allowDeselect={false}
                          {...form.getInputProps(`policies.${i}.notify_role`)}
                        />
                      </Table.Td>
                      <Table.Td>
                        <Select
                          aria-label="Reassign on breach"
                          data={[{ value: "", label: "Nobody" }, ...personOptions(people.data, isAgent)]}
                          allowDeselect={false}
                          {...form.getInputProps(`policies.${i}.reassign_to`)}
                        />
                      </Table.Td>
                      <Table.Td>
                        <ActionIcon variant="subtle" color="red" aria-label="Remove policy" onClick={() => form.removeListItem("policies", i)}>
                          <IconTrash size={16} aria-hidden />
                        </ActionIcon>
                      </Table.Td>
                    </Table.Tr>
                  ))}
                </Table.Tbody>
              </Table>
            </Table.ScrollContainer>
          )}
          <Group justify="flex-end">
            <Button type="submit" loading={saving}>
              Save policies
            </Button>
          </Group>
        </Stack>
      </form>
    </Paper>
  );
}
