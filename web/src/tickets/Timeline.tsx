import { Stack, Text, Timeline as MTimeline, Title } from "@mantine/core";
import { useQuery } from "@tanstack/react-query";
import { api, call } from "../api/client";
import { Failed, Loading } from "../ui/states";
import { relative } from "../ui/time";
import { FIELD_LABELS } from "./model";
import { usePersonName } from "./reference";

const KINDS: Record<string, string> = {
  "ticket.created": "created the ticket",
  "ticket.updated": "changed",
  "ticket.assigned": "changed the assignees",
  "ticket.status_changed": "changed the status",
  "ticket.deleted": "deleted the ticket",
  "ticket.restored": "restored the ticket",
  "ticket.linked": "linked the ticket",
  "ticket.unlinked": "removed a link",
  "ticket.merged": "merged",
  "ticket.unmerged": "undid a merge",
  "ticket.split": "split comments off",
  "comment.created": "commented",
  "comment.updated": "edited a comment",
  "comment.deleted": "deleted a comment",
};

/** The other ticket of a link, merge or split entry: `{type?, key}` on the side it happened. */
function relation(changes: Record<string, { from?: unknown; to?: unknown }>): string | null {
  for (const field of ["link", "merged", "split"]) {
    const c = changes[field];
    const other = (c?.to ?? c?.from) as { key?: string; type?: string } | undefined;
    if (other?.key) return [other.type?.replace("_", " "), other.key].filter(Boolean).join(" ");
  }
  return null;
}

function describe(changes: Record<string, { from?: unknown; to?: unknown }>): string {
  const related = relation(changes);
  if (related) return related;
  return Object.entries(changes)
    .filter(([field]) => field in FIELD_LABELS)
    .map(([field, c]) => `${FIELD_LABELS[field]}: ${fmt(c?.from)} → ${fmt(c?.to)}`)
    .join("; ");
}

function fmt(v: unknown): string {
  if (v === null || v === undefined || v === "") return "—";
  if (Array.isArray(v)) return v.length ? `${v.length} item${v.length > 1 ? "s" : ""}` : "—";
  const s = String(v);
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}

export function Timeline({ ticketId }: { ticketId: string }) {
  const nameOf = usePersonName();
  const timeline = useQuery({
    queryKey: ["timeline", ticketId],
    queryFn: () =>
      call(api.GET("/api/v1/tickets/{id}/timeline", { params: { path: { id: ticketId }, query: { limit: 100 } } })),
  });
  return (
    <Stack component="section" aria-labelledby="history">
      <Title order={2} size="h4" id="history">
        History
      </Title>
      {timeline.isPending ? (
        <Loading label="Loading history" />
      ) : timeline.isError ? (
        <Failed error={timeline.error} onRetry={() => void timeline.refetch()} />
      ) : (
        <MTimeline bulletSize={12} lineWidth={2}>
          {timeline.data.items.map((e) => (
            <MTimeline.Item key={e.id} title={`${nameOf(e.actor_id)} ${KINDS[e.kind] ?? e.kind}`}>
              {e.kind !== "ticket.created" && (
                <Text size="xs" c="dimmed">
                  {describe(e.changes as Record<string, { from?: unknown; to?: unknown }>)}
                </Text>
              )}
              <Text size="xs" c="dimmed">
                {relative(e.created_at)}
              </Text>
            </MTimeline.Item>
          ))}
        </MTimeline>
      )}
    </Stack>
  );
}
