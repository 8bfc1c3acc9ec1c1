import { ActionIcon, Card, Checkbox, Group, Select, Stack, Text, Title } from "@mantine/core";
import { IconGripVertical } from "@tabler/icons-react";
import {
  DndContext,
  KeyboardSensor,
  PointerSensor,
  useDraggable,
  useDroppable,
  useSensor,
  useSensors,
  type DragEndEvent,
} from "@dnd-kit/core";
import { useQueries, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { Link, useSearchParams } from "react-router";
import { api, call } from "../api/client";
import { atLeast, useSession } from "../auth/useSession";
import { Failed, Loading } from "../ui/states";
import { SlaBadge } from "../sla/SlaBadge";
import { PriorityBadge } from "./badges";
import { ConflictDialog } from "./ConflictDialog";
import { STATUSES, statusInfo, type Status, type Ticket } from "./model";
import { useProjects } from "./reference";
import { BulkBar } from "./structure/BulkBar";
import { NONE, toggle, within, without, type Selection } from "./structure/selection";
import { useTicketUpdate } from "./useTicketUpdate";

/** Columns shown: cancelled tickets stay off the board. */
const COLUMNS = STATUSES.filter((s) => s.value !== "cancelled");
const PER_COLUMN = 100;

/** Tickets by status; dragging a card to another column changes its status. */
export function Board() {
  const [params, setParams] = useSearchParams();
  const projectId = params.get("project_id") ?? undefined;
  const canEdit = atLeast(useSession()?.role, "agent");
  const projects = useProjects();
  const client = useQueryClient();
  const updates = useTicketUpdate();
  const columns = useQueries({
    queries: COLUMNS.map((c) => ({
      queryKey: ["tickets", "board", projectId, c.value],
      queryFn: () =>
        call(
          api.GET("/api/v1/tickets", {
            params: { query: { status: c.value, project_id: projectId, sort: "-priority", limit: PER_COLUMN } },
          }),
        ),
    })),
  });
  const [chosen, setChosen] = useState<Selection>(NONE);
  const all = columns.flatMap((c) => c.data?.items ?? []);
  const order = all.map((t) => t.id);
  const selection = within(chosen, order);
  const choose = (id: string, range: boolean) => setChosen(toggle(selection, order, order.indexOf(id), range));
  const sensors = useSensors(
    useSensor(PointerSensor, { activationConstraint: { distance: 5 } }),
    useSensor(KeyboardSensor),
  );

  async function onDragEnd(e: DragEndEvent) {
    const ticket = e.active.data.current?.ticket as Ticket | undefined;
    const to = e.over?.id as Status | undefined;
    if (!ticket || !to || ticket.status === to) return;
    // Shown in the new column at once; the server's answer (or refusal) settles it.
    for (const status of [ticket.status, to]) {
      client.setQueryData(
        ["tickets", "board", projectId, status],
        (page: { items: Ticket[]; next_cursor?: string | null } | undefined) =>
          page && {
            ...page,
            items:
              status === to
                ? [{ ...ticket, status: to }, ...page.items]
                : page.items.filter((t) => t.id !== ticket.id),
          },
      );
    }
    await updates.save({ status: to }, ticket);
  }

  return (
    <Stack>
      <Group justify="space-between">
        <Title order={1} size="h2">
          Board
        </Title>
        <Select
          label="Project"
          placeholder="All projects"
          data={(projects.data ?? []).map((p) => ({ value: p.id, label: `${p.key} · ${p.name}` }))}
          value={projectId ?? null}
          onChange={(v) => setParams(v ? { project_id: v } : {})}
          clearable
          w={220}
        />
      </Group>
      {columns.some((c) => c.isError) ? (
        <Failed error={columns.find((c) => c.isError)?.error} onRetry={() => columns.forEach((c) => void c.refetch())} />
      ) : columns.some((c) => c.isPending) ? (
        <Loading label="Loading the board" />
      ) : (
        <DndContext sensors={sensors} onDragEnd={(e) => void onDragEnd(e)}>
          <div className="board">
            {COLUMNS.map((c, i) => (
              <Column
                key={c.value}
                status={c.value}
                tickets={columns[i]?.data?.items ?? []}
                canEdit={canEdit}
                chosen={selection.ids}
                onChoose={choose}
              />
            ))}
          </div>
        </DndContext>
      )}
      {canEdit && (
        <BulkBar
          tickets={all.filter((t) => selection.ids.has(t.id))}
          onDone={(changed) => setChosen(without(selection, changed))}
          onClear={() => setChosen(NONE)}
        />
      )}
      <ConflictDialog conflict={updates.conflict} onReapply={() => void updates.reapply()} onDiscard={updates.discard} />
    </Stack>
  );
}

/** Choosing cards: click toggles one, shift-click a range (in the board's reading order). */
interface Choosing {
  chosen: ReadonlySet<string>;
  onChoose: (id: string, range: boolean) => void;
}

function Column({
  status,
  tickets,
  canEdit,
  chosen,
  onChoose,
}: { status: Status; tickets: Ticket[]; canEdit: boolean } & Choosing) {
  const { setNodeRef, isOver } = useDroppable({ id: status });
  const info = statusInfo(status);
  return (
    <Stack
      ref={setNodeRef}
      className="board-column"
      data-over={isOver}
      data-testid={`column-${status}`}
      gap="xs"
      p="xs"
      bg="gray.0"
      style={{ borderRadius: 8, minHeight: 300 }}
      component="section"
      aria-label={`${info.label}: ${tickets.length} tickets`}
    >
      <Group justify="space-between">
        <Text fw={600}>{info.label}</Text>
        <Text size="sm" c="dimmed">
          {tickets.length}
          {tickets.length >= PER_COLUMN ? "+" : ""}
        </Text>
      </Group>
      {tickets.map((t) => (
        <BoardCard key={t.id} ticket={t} canEdit={canEdit} chosen={chosen} onChoose={onChoose} />
      ))}
    </Stack>
  );
}

function BoardCard({ ticket, canEdit, chosen, onChoose }: { ticket: Ticket; canEdit: boolean } & Choosing) {
  const { attributes, listeners, setNodeRef, setActivatorNodeRef, transform, isDragging } = useDraggable({
    id: ticket.id,
    data: { ticket },
    disabled: !canEdit,
  });
  return (
    <Card
      ref={setNodeRef}
      withBorder
      padding="xs"
      className="board-card"
      data-dragging={isDragging}
      data-chosen={chosen.has(ticket.id)}
      data-testid="board-card"
      style={transform ? { transform: `translate(${transform.x}px, ${transform.y}px)`, zIndex: 10 } : undefined}
    >
      <Group justify="space-between" gap={4} wrap="nowrap">
        <Group gap={4} wrap="nowrap">
          {canEdit && (
            // The handle, not the card, is the control: the card also holds a link.
            <ActionIcon
              ref={setActivatorNodeRef}
              variant="subtle"
              color="gray"
              size="sm"
              {...listeners}
              {...attributes}
              aria-roledescription="draggable"
              aria-label={`Move ${ticket.key}: ${ticket.title}`}
            >
              <IconGripVertical size={14} aria-hidden />
            </ActionIcon>
          )}
          {canEdit && (
            <Checkbox
              size="xs"
              aria-label={`Choose ${ticket.key}`}
              checked={chosen.has(ticket.id)}
              onChange={() => undefined}
              onClick={(e) => onChoose(ticket.id, e.shiftKey)}
            />
          )}
          <Text component={Link} to={`/tickets/${ticket.key}`} size="xs" ff="monospace" c="blue.9">
            {ticket.key}
          </Text>
        </Group>
        <Group gap={4} wrap="nowrap">
          <SlaBadge sla={ticket.sla} />
          <PriorityBadge priority={ticket.priority} />
        </Group>
      </Group>
      <Text size="sm" lineClamp={2}>
        {ticket.title}
      </Text>
    </Card>
  );
}
