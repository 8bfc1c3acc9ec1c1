import {
  Anchor,
  Breadcrumbs,
  Button,
  Grid,
  Group,
  Menu,
  MultiSelect,
  Paper,
  Select,
  Stack,
  TagsInput,
  Text,
  TextInput,
  Textarea,
  Title,
} from "@mantine/core";
import { DateTimePicker } from "@mantine/dates";
import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { Link, useParams } from "react-router";
import { api, call } from "../api/client";
import { atLeast, useSession } from "../auth/useSession";
import { Failed, Loading } from "../ui/states";
import { dateTime } from "../ui/time";
import { SlaClocks, useCalendarNames } from "../sla/SlaBadge";
import { PriorityBadge, StatusBadge } from "./badges";
import { TicketFiles } from "./Attachments";
import { Comments } from "./Comments";
import { ConflictDialog } from "./ConflictDialog";
import { PRIORITIES, STATUSES, type Ticket } from "./model";
import { isAgent, personOptions, usePeople, usePersonName, useProjects } from "./reference";
import { Timeline } from "./Timeline";
import { useTicketUpdate } from "./useTicketUpdate";
import { MailParticipants } from "./MailParticipants";
import { Links } from "./structure/Links";
import { MergeDialog, MergedNotice, SplitDialog } from "./structure/MergeSplit";
import { Subtasks } from "./structure/Subtasks";
import { Watchers } from "./Watchers";

export function TicketPage() {
  const { id = "" } = useParams();
  const ticket = useQuery({
    queryKey: ["ticket", id],
    queryFn: () => call(api.GET("/api/v1/tickets/{id}", { params: { path: { id } } })),
  });
  const updates = useTicketUpdate();

  if (ticket.isPending) return <Loading label="Loading ticket" />;
  if (ticket.isError) return <Failed error={ticket.error} onRetry={() => void ticket.refetch()} />;
  const t = ticket.data;
  return (
    <>
      <TicketView ticket={t} save={updates.save} saving={updates.saving} inConflict={updates.conflict !== null} />
      <ConflictDialog conflict={updates.conflict} onReapply={() => void updates.reapply()} onDiscard={updates.discard} />
    </>
  );
}

type Save = ReturnType<typeof useTicketUpdate>["save"];

function TicketView({
  ticket: t,
  save,
  saving,
  inConflict,
}: {
  ticket: Ticket;
  save: Save;
  saving: boolean;
  inConflict: boolean;
}) {
  const role = useSession()?.role;
  const canEdit = atLeast(role, "agent");
  const staff = atLeast(role, "viewer");
  const calendars = useCalendarNames(staff);
  const projects = useProjects(true);
  const project = projects.data?.find((p) => p.id === t.project_id);
  const parent = useQuery({
    queryKey: ["ticket", t.parent_id],
    queryFn: () => call(api.GET("/api/v1/tickets/{id}", { params: { path: { id: t.parent_id ?? "" } } })),
    enabled: Boolean(t.parent_id),
  });
  const [dialog, setDialog] = useState<"merge" | "split" | null>(null);
  // Editing keeps the version it started from: a save after someone else's change is a conflict.
  const [editing, setEditing] = useState<{ base: Ticket; title: string; description: string } | null>(null);
  // A conflict settles the edit either way: re-applied on the new version, or dropped.
  const [wasInConflict, setWasInConflict] = useState(inConflict);
  if (inConflict !== wasInConflict) {
    setWasInConflict(inConflict);
    if (!inConflict) setEditing(null);
  }

  async function saveText() {
    if (!editing) return;
    const patch: { title?: string; description?: string | null } = {};
    if (editing.title !== editing.base.title) patch.title = editing.title;
    if (editing.description !== (editing.base.description ?? "")) patch.description = editing.description || null;
    if (Object.keys(patch).length === 0 || (await save(patch, editing.base))) setEditing(null);
  }

  return (
    <Stack>
      <Breadcrumbs>
        <Anchor component={Link} to="/tickets">
          Tickets
        </Anchor>
        {project && (
          <Anchor component={Link} to={staff ? `/projects/${project.id}` : `/tickets?project_id=${project.id}`}>
            {project.name}
          </Anchor>
        )}
        {parent.data && (
          <Anchor component={Link} to={`/tickets/${parent.data.key}`} ff="monospace">
            {parent.data.key}
          </Anchor>
        )}
        <Text ff="monospace">{t.key}</Text>
      </Breadcrumbs>
      <MergedNotice ticket={t} canEdit={canEdit} />
      <Grid gutter="lg">
        <Grid.Col span={{ base: 12, md: 8 }}>
          <Stack>
            {editing ? (
              <Paper withBorder p="md">
                <Stack>
                  <TextInput
                    label="Title"
                    value={editing.title}
                    onChange={(e) => setEditing({ ...editing, title: e.currentTarget.value })}
                    data-autofocus
                  />
                  <Textarea
                    label="Description"
                    autosize
                    minRows={4}
                    value={editing.description}
                    onChange={(e) => setEditing({ ...editing, description: e.currentTarget.value })}
                  />
                  <Group justify="flex-end">
                    <Button variant="default" onClick={() => setEditing(null)}>
                      Cancel
                    </Button>
                    <Button onClick={() => void saveText()} loading={saving}>
                      Save
                    </Button>
                  </Group>
                </Stack>
              </Paper>
            ) : (
              <Stack gap="xs">
                {/* The title wraps anywhere, so the buttons beside it stay on screen on a phone. */}
                <Group justify="space-between" align="flex-start" wrap="nowrap">
                  <Title order={1} size="h2" data-testid="ticket-title" className="pre-wrap" style={{ minWidth: 0 }}>
                    {t.title}
                  </Title>
                  {canEdit && (
                    <Group gap={4} wrap="nowrap" style={{ flexShrink: 0 }}>
                      <Button
                        variant="default"
                        size="xs"
                        onClick={() => setEditing({ base: t, title: t.title, description: t.description ?? "" })}
                      >
                        Edit
                      </Button>
                      <Menu position="bottom-end">
                        <Menu.Target>
                          <Button variant="default" size="xs">
                            More
                          </Button>
                        </Menu.Target>
                        <Menu.Dropdown>
                          <Menu.Item onClick={() => setDialog("merge")} disabled={Boolean(t.merged_into_id)}>
                            Merge into another ticket…
                          </Menu.Item>
                          <Menu.Item onClick={() => setDialog("split")} disabled={Boolean(t.merged_into_id)}>
                            Split replies into a new ticket…
                          </Menu.Item>
                        </Menu.Dropdown>
                      </Menu>
                    </Group>
                  )}
                </Group>
                <Group gap="xs">
                  <StatusBadge status={t.status} />
                  <PriorityBadge priority={t.priority} />
                  <Text size="xs" c="dimmed">
                    Opened {dateTime(t.created_at)} · version {t.version}
                  </Text>
                </Group>
                {staff && <SlaClocks sla={t.sla} calendars={calendars} />}
                <Text className="pre-wrap" c={t.description ? undefined : "dimmed"}>
                  {t.description || "No description."}
                </Text>
              </Stack>
            )}
            {staff && <Subtasks ticket={t} canEdit={canEdit} />}
            {staff && <Links ticket={t} canEdit={canEdit} />}
            <TicketFiles ticketId={t.id} />
            <Comments ticket={t} />
            {staff && <Timeline ticketId={t.id} />}
          </Stack>
        </Grid.Col>
        <Grid.Col span={{ base: 12, md: 4 }}>
          <Fields ticket={t} save={save} canEdit={canEdit} />
        </Grid.Col>
      </Grid>
      {canEdit && <MergeDialog ticket={t} opened={dialog === "merge"} onClose={() => setDialog(null)} />}
      {canEdit && <SplitDialog ticket={t} opened={dialog === "split"} onClose={() => setDialog(null)} />}
    </Stack>
  );
}

function Fields({ ticket: t, save, canEdit }: { ticket: Ticket; save: Save; canEdit: boolean }) {
  const people = usePeople();
  const nameOf = usePersonName();
  const staff = atLeast(useSession()?.role, "viewer");
  const [labels, setLabels] = useState<string[] | null>(null);

  if (!canEdit) {
    return (
      <Paper withBorder p="md">
        <Stack gap="xs">
          <Field label="Status">
            <StatusBadge status={t.status} />
          </Field>
          <Field label="Priority">
            <PriorityBadge priority={t.priority} />
          </Field>
          {staff && <Field label="Assignees">{t.assignee_ids.map(nameOf).join(", ") || "Nobody"}</Field>}
          {staff && <Field label="Labels">{t.labels.join(", ") || "None"}</Field>}
          <Field label="Due">{t.due_at ? dateTime(t.due_at) : "No due date"}</Field>
          {staff && <Field label="Requester">{nameOf(t.requester_id)}</Field>}
        </Stack>
      </Paper>
    );
  }
  return (
    <Paper withBorder p="md">
      <Stack gap="sm">
        <Select
          label="Status"
          data={STATUSES}
          value={t.status}
          allowDeselect={false}
          onChange={(status) => status && status !== t.status && void save({ status: status as Ticket["status"] }, t)}
        />
        <Select
          label="Priority"
          data={PRIORITIES}
          value={t.priority}
          allowDeselect={false}
          onChange={(p) => p && p !== t.priority && void save({ priority: p as Ticket["priority"] }, t)}
        />
        <MultiSelect
          label="Assignees"
          data={personOptions(people.data, isAgent)}
          value={t.assignee_ids}
          searchable
          onChange={(ids) => void save({ assignee_ids: ids }, t)}
        />
        <TagsInput
          label="Labels"
          description="Enter adds a label"
          value={labels ?? t.labels}
          onChange={setLabels}
          onBlur={() => {
            if (labels && JSON.stringify(labels) !== JSON.stringify(t.labels)) {
              void save({ labels }, t).then(() => setLabels(null));
            }
          }}
        />
        <DateTimePicker
          label="Due"
          clearable
          valueFormat="YYYY-MM-DD HH:mm"
          value={t.due_at ? new Date(t.due_at) : null}
          onChange={(d) => void save({ due_at: d ? new Date(d).toISOString() : null }, t)}
        />
        <Select
          label="Requester"
          data={personOptions(people.data)}
          value={t.requester_id ?? null}
          searchable
          clearable
          onChange={(id) => void save({ requester_id: id }, t)}
        />
        <Watchers ticketId={t.id} />
        <MailParticipants ticketId={t.id} />
      </Stack>
    </Paper>
  );
}

function Field({ label, children }: { label: string; children: React.ReactNode }) {
  return (
    <div>
      <Text size="xs" c="dimmed">
        {label}
      </Text>
      <Text size="sm" component="div">
        {children}
      </Text>
    </div>
  );
}
