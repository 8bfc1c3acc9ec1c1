import {
  ActionIcon,
  Button,
  Checkbox,
  Group,
  MultiSelect,
  Select,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
  Tooltip,
} from "@mantine/core";
import { DateInput } from "@mantine/dates";
import { useHotkeys } from "@mantine/hooks";
import { IconPlus, IconX } from "@tabler/icons-react";
import { useInfiniteQuery } from "@tanstack/react-query";
import { useEffect, useRef, useState } from "react";
import { useNavigate, useSearchParams } from "react-router";
import { api, call } from "../api/client";
import { atLeast, useSession } from "../auth/useSession";
import { Empty, Failed, Loading } from "../ui/states";
import { relative } from "../ui/time";
import { SlaBadge } from "../sla/SlaBadge";
import { PriorityBadge, StatusBadge } from "./badges";
import { CreateTicket } from "./CreateTicket";
import { SORTS, apiQuery, isFiltered, paramsFromView, viewFromParams, type ListView } from "./filters";
import { PRIORITIES, STATUSES } from "./model";
import { personOptions, usePeople, usePersonName, useProjects } from "./reference";
import { SavedViews } from "./SavedViews";
import { BulkBar } from "./structure/BulkBar";
import { NONE, toggle, within, without, type Selection } from "./structure/selection";

export function TicketList() {
  const [params, setParams] = useSearchParams();
  const view = viewFromParams(params);
  const navigate = useNavigate();
  const role = useSession()?.role;
  const staff = atLeast(role, "viewer");
  const canCreate = atLeast(role, "agent") || role === "requester";
  const canChange = atLeast(role, "agent");
  const [chosen, setChosen] = useState<Selection>(NONE);
  const projects = useProjects();
  const people = usePeople();
  const nameOf = usePersonName();
  const [creating, setCreating] = useState(false);
  const [active, setActive] = useState(0);
  const jump = useRef<HTMLInputElement>(null);

  const query = apiQuery(view);
  const list = useInfiniteQuery({
    queryKey: ["tickets", "list", query],
    initialPageParam: undefined as string | undefined,
    queryFn: ({ pageParam }) =>
      call(api.GET("/api/v1/tickets", { params: { query: { ...query, cursor: pageParam, limit: 50 } } })),
    getNextPageParam: (page) => page.next_cursor ?? undefined,
  });
  const tickets = list.data?.pages.flatMap((p) => p.items) ?? [];
  const order = tickets.map((t) => t.id);
  const selection = within(chosen, order);
  const choose = (index: number, range: boolean) => setChosen(toggle(selection, order, index, range));

  const update = (change: Partial<ListView>) => {
    setParams(paramsFromView({ ...view, ...change }));
    setActive(0);
  };

  useHotkeys([
    ["j", () => setActive((i) => Math.min(i + 1, Math.max(tickets.length - 1, 0)))],
    ["k", () => setActive((i) => Math.max(i - 1, 0))],
    ["Enter", () => tickets[active] && navigate(`/tickets/${tickets[active].key}`)],
    ["c", () => canCreate && setCreating(true)],
    ["/", () => jump.current?.focus()],
  ]);
  // `x` chooses the focused row, also right after a checkbox was clicked (which keeps the
  // focus), but never while typing into a field.
  const typing = (e: KeyboardEvent) =>
    e.target instanceof HTMLInputElement && e.target.type !== "checkbox";
  useHotkeys(
    [
      ["x", (e) => canChange && !typing(e) && choose(active, false)],
      ["shift+x", (e) => canChange && !typing(e) && choose(active, true)],
    ],
    ["TEXTAREA", "SELECT"],
  );
  useEffect(() => {
    document.querySelector(`[data-row="${active}"]`)?.scrollIntoView({ block: "nearest" });
  }, [active]);

  const projectOptions = (projects.data ?? []).map((p) => ({ value: p.id, label: `${p.key} · ${p.name}` }));
  const peopleOptions = [{ value: "me", label: "Me" }, ...personOptions(people.data)];

  return (
    <Stack>
      <Group justify="space-between">
        <Title order={1} size="h2">
          {staff ? "Tickets" : "My tickets"}
        </Title>
        <Group gap="xs">
          {staff && <SavedViews query={paramsFromView(view).toString()} />}
          {canCreate && (
            <Button leftSection={<IconPlus size={16} aria-hidden />} onClick={() => setCreating(true)}>
              New ticket
            </Button>
          )}
        </Group>
      </Group>

      <Group gap="xs" align="flex-end" component="section" aria-label="Filters">
        <TextInput
          ref={jump}
          label="Go to ticket"
          placeholder="OPS-42"
          w={130}
          onKeyDown={(e) => {
            const key = e.currentTarget.value.trim().toUpperCase();
            if (e.key === "Enter" && key) navigate(`/tickets/${encodeURIComponent(key)}`);
          }}
        />
        <Select
          label="Project"
          data={projectOptions}
          value={view.project_id ?? null}
          onChange={(v) => update({ project_id: v ?? undefined })}
          clearable
          searchable
          w={180}
        />
        <MultiSelect
          label="Status"
          data={STATUSES}
          value={view.status}
          onChange={(status) => update({ status })}
          clearable
          w={200}
        />
        <MultiSelect
          label="Priority"
          data={PRIORITIES}
          value={view.priority}
          onChange={(priority) => update({ priority })}
          clearable
          w={180}
        />
        {staff && (
          <>
            <Select
              label="Assignee"
              data={peopleOptions}
              value={view.assignee ?? null}
              onChange={(v) => update({ assignee: v ?? undefined })}
              clearable
              searchable
              w={160}
            />
            <Select
              label="Requester"
              data={peopleOptions}
              value={view.requester ?? null}
              onChange={(v) => update({ requester: v ?? undefined })}
              clearable
              searchable
              w={160}
            />
            <TextInput
              label="Label"
              defaultValue={view.label ?? ""}
              key={view.label ?? ""}
              onBlur={(e) => update({ label: e.currentTarget.value.trim() || undefined })}
              onKeyDown={(e) => e.key === "Enter" && update({ label: e.currentTarget.value.trim() || undefined })}
              w={130}
            />
          </>
        )}
        <DateInput
          label="Due before"
          value={view.due_before ? new Date(view.due_before) : null}
          onChange={(d) => update({ due_before: d ? new Date(d).toISOString() : undefined })}
          clearable
          valueFormat="YYYY-MM-DD"
          w={150}
        />
        <Select
          label="Sort"
          data={SORTS}
          value={view.sort}
          onChange={(sort) => update({ sort: sort ?? undefined })}
          allowDeselect={false}
          w={170}
        />
        {isFiltered(view) && (
          <Tooltip label="Clear filters">
            <ActionIcon variant="subtle" size="lg" aria-label="Clear filters" onClick={() => setParams({})}>
              <IconX size={18} aria-hidden />
            </ActionIcon>
          </Tooltip>
        )}
      </Group>

      {list.isPending ? (
        <Loading label="Loading tickets" />
      ) : list.isError ? (
        <Failed error={list.error} onRetry={() => void list.refetch()} />
      ) : tickets.length === 0 ? (
        <Empty
          title={isFiltered(view) ? "No tickets match these filters" : "No tickets yet"}
          action={
            isFiltered(view) ? (
              <Button variant="light" onClick={() => setParams({})}>
                Clear the filters
              </Button>
            ) : canCreate ? (
              <Button variant="light" onClick={() => setCreating(true)}>
                File a ticket
              </Button>
            ) : undefined
          }
        >
          {canCreate ? "Press c or choose New ticket to file one." : undefined}
        </Empty>
      ) : (
        <Table.ScrollContainer minWidth={360}>
          <Table highlightOnHover verticalSpacing="xs" aria-label="Tickets">
            <Table.Thead>
              <Table.Tr>
                {canChange && (
                  <Table.Th w={36}>
                    <Checkbox
                      aria-label="Choose every ticket shown"
                      checked={selection.ids.size > 0 && selection.ids.size === tickets.length}
                      indeterminate={selection.ids.size > 0 && selection.ids.size < tickets.length}
                      onChange={() =>
                        setChosen(selection.ids.size === tickets.length ? NONE : { ids: new Set(order), anchor: null })
                      }
                    />
                  </Table.Th>
                )}
                <Table.Th>Key</Table.Th>
                <Table.Th>Title</Table.Th>
                <Table.Th>Status</Table.Th>
                <Table.Th visibleFrom="sm">Priority</Table.Th>
                {staff && <Table.Th visibleFrom="sm">SLA</Table.Th>}
                {staff && <Table.Th visibleFrom="md">Assignees</Table.Th>}
                <Table.Th visibleFrom="md">Due</Table.Th>
                <Table.Th visibleFrom="sm">Updated</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {tickets.map((t, i) => (
                <Table.Tr
                  key={t.id}
                  className="ticket-row"
                  data-row={i}
                  data-active={i === active}
                  data-chosen={selection.ids.has(t.id)}
                  data-testid="ticket-row"
                  onClick={() => navigate(`/tickets/${t.key}`)}
                >
                  {canChange && (
                    <Table.Td onClick={(e) => e.stopPropagation()}>
                      <Checkbox
                        aria-label={`Choose ${t.key}`}
                        checked={selection.ids.has(t.id)}
                        onChange={() => undefined}
                        onClick={(e) => {
                          setActive(i);
                          choose(i, e.shiftKey);
                        }}
                      />
                    </Table.Td>
                  )}
                  <Table.Td>
                    <Text
                      component="a"
                      href={`/tickets/${t.key}`}
                      onClick={(e) => {
                        e.preventDefault();
                        navigate(`/tickets/${t.key}`);
                      }}
                      size="sm"
                      ff="monospace"
                      c="blue.9"
                    >
                      {t.key}
                    </Text>
                  </Table.Td>
                  <Table.Td>
                    <Text size="sm" lineClamp={1}>
                      {t.title}
                    </Text>
                    {t.subtasks.total > 0 && (
                      <Text size="xs" c="dimmed" data-testid="ticket-subtasks">
                        {t.subtasks.done}/{t.subtasks.total} subtasks done
                      </Text>
                    )}
                  </Table.Td>
                  <Table.Td>
                    <StatusBadge status={t.status} />
                  </Table.Td>
                  <Table.Td visibleFrom="sm">
                    <PriorityBadge priority={t.priority} />
                  </Table.Td>
                  {staff && (
                    <Table.Td visibleFrom="sm" onClick={(e) => e.stopPropagation()}>
                      <SlaBadge sla={t.sla} />
                    </Table.Td>
                  )}
                  {staff && (
                    <Table.Td visibleFrom="md">
                      <Text size="sm" lineClamp={1}>
                        {t.assignee_ids.map(nameOf).join(", ") || "—"}
                      </Text>
                    </Table.Td>
                  )}
                  <Table.Td visibleFrom="md">
                    <Text size="sm">{t.due_at ? relative(t.due_at) : "—"}</Text>
                  </Table.Td>
                  <Table.Td visibleFrom="sm">
                    <Text size="sm" c="dimmed">
                      {relative(t.updated_at)}
                    </Text>
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
      {canChange && (
        <BulkBar
          tickets={tickets.filter((t) => selection.ids.has(t.id))}
          onDone={(changed) => setChosen(without(selection, changed))}
          onClear={() => setChosen(NONE)}
        />
      )}
      {list.hasNextPage && (
        <Button variant="default" onClick={() => void list.fetchNextPage()} loading={list.isFetchingNextPage}>
          Load more
        </Button>
      )}
      <CreateTicket opened={creating} onClose={() => setCreating(false)} />
    </Stack>
  );
}
