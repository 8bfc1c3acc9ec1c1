import { Badge, Button, Code, Group, Stack, Table, Text, Title } from "@mantine/core";
import { useInfiniteQuery } from "@tanstack/react-query";
import { Link } from "react-router";
import { api, call } from "../api/client";
import { useAction } from "../ui/useAction";
import { Empty, Paged } from "../ui/states";
import { dateTime } from "../ui/time";

/** Events every retry failed for: what went wrong, and a way to send them again. */
export function DeadEvents() {
  const events = useInfiniteQuery({
    queryKey: ["admin-events", "dead"],
    initialPageParam: undefined as string | undefined,
    queryFn: ({ pageParam }) =>
      call(api.GET("/api/v1/admin/events", { params: { query: { status: "dead", cursor: pageParam, limit: 50 } } })),
    getNextPageParam: (page) => page.next_cursor ?? undefined,
  });
  const retry = useAction(
    (id: string) => call(api.POST("/api/v1/admin/events/{id}/retry", { params: { path: { id } } })),
    { done: "Queued again", invalidate: [["admin-events"]] },
  );
  const items = events.data?.pages.flatMap((p) => p.items) ?? [];
  return (
    <Stack>
      <Title order={1} size="h2">
        Dead events
      </Title>
      <Text c="dimmed" size="sm">
        Changes whose notifications or live updates failed after every retry. Fix the cause, then queue them again.
      </Text>
      <Paged query={events} count={items.length} empty={<Empty title="No dead events">Everything was delivered.</Empty>}>
        <Table.ScrollContainer minWidth={600}>
          <Table aria-label="Dead events">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Event</Table.Th>
                <Table.Th>Attempts</Table.Th>
                <Table.Th>Last error</Table.Th>
                <Table.Th>Created</Table.Th>
                <Table.Th>
                  <span className="sr-only">Actions</span>
                </Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {items.map((e) => (
                <Table.Tr key={e.id} data-testid="dead-event">
                  <Table.Td>
                    <Group gap="xs">
                      <Badge variant="light">{e.type}</Badge>
                      {e.ticket_id && (
                        <Text component={Link} to={`/tickets/${e.ticket_id}`} size="xs" c="blue.9">
                          ticket
                        </Text>
                      )}
                    </Group>
                  </Table.Td>
                  <Table.Td>{e.attempts}</Table.Td>
                  <Table.Td>
                    <Code block>{e.last_error ?? "—"}</Code>
                  </Table.Td>
                  <Table.Td>{dateTime(e.created_at)}</Table.Td>
                  <Table.Td>
                    <Button size="xs" onClick={() => retry.mutate(e.id)} loading={retry.isPending}>
                      Retry
                    </Button>
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      </Paged>
    </Stack>
  );
}
