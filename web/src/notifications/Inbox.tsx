import { Badge, Button, Card, Group, SegmentedControl, Stack, Text, Title } from "@mantine/core";
import { useInfiniteQuery } from "@tanstack/react-query";
import { useState } from "react";
import { Link } from "react-router";
import { api, call } from "../api/client";
import { useAction } from "../ui/useAction";
import { Empty, Failed, Loading } from "../ui/states";
import { relative } from "../ui/time";

export function Inbox() {
  const [filter, setFilter] = useState<"all" | "unread">("unread");
  const list = useInfiniteQuery({
    queryKey: ["notifications", "list", filter],
    initialPageParam: undefined as string | undefined,
    queryFn: ({ pageParam }) =>
      call(
        api.GET("/api/v1/notifications", {
          params: { query: { unread: filter === "unread" ? true : undefined, cursor: pageParam, limit: 50 } },
        }),
      ),
    getNextPageParam: (page) => page.next_cursor ?? undefined,
  });
  const markRead = useAction(
    (id: string) => call(api.PATCH("/api/v1/notifications/{id}/read", { params: { path: { id } } })),
    { invalidate: [["notifications"]] },
  );
  const markAll = useAction(() => call(api.PATCH("/api/v1/notifications/read-all")), {
    invalidate: [["notifications"]],
  });
  const items = list.data?.pages.flatMap((p) => p.items) ?? [];

  return (
    <Stack>
      <Group justify="space-between">
        <Title order={1} size="h2">
          Notifications
        </Title>
        <Group>
          <SegmentedControl
            aria-label="Show"
            value={filter}
            onChange={(v) => setFilter(v as "all" | "unread")}
            data={[
              { label: "Unread", value: "unread" },
              { label: "All", value: "all" },
            ]}
          />
          <Button variant="light" onClick={() => markAll.mutate()} loading={markAll.isPending}>
            Mark all read
          </Button>
        </Group>
      </Group>
      {list.isPending ? (
        <Loading />
      ) : list.isError ? (
        <Failed error={list.error} onRetry={() => void list.refetch()} />
      ) : items.length === 0 ? (
        <Empty title={filter === "unread" ? "You are all caught up" : "No notifications yet"}>
          You hear here about tickets you are assigned to, requested or watch.
        </Empty>
      ) : (
        <Stack gap="xs" component="ul" p={0} style={{ listStyle: "none" }}>
          {items.map((n) => (
            <Card key={n.id} withBorder component="li" padding="sm" data-testid="notification">
              <Group justify="space-between" wrap="nowrap" align="flex-start">
                <Stack gap={2}>
                  <Group gap="xs">
                    {!n.read_at && <Badge size="xs">new</Badge>}
                    {n.ticket_id || n.type === "webhook_disabled" ? (
                      <Text
                        component={Link}
                        to={n.ticket_id ? `/tickets/${n.ticket_id}` : "/admin/webhooks"}
                        fw={500}
                        onClick={() => !n.read_at && markRead.mutate(n.id)}
                      >
                        {n.title}
                      </Text>
                    ) : (
                      <Text fw={500}>{n.title}</Text>
                    )}
                  </Group>
                  {n.body && (
                    <Text size="sm" c="dimmed" lineClamp={2}>
                      {n.body}
                    </Text>
                  )}
                  <Text size="xs" c="dimmed">
                    {relative(n.created_at)}
                  </Text>
                </Stack>
                {!n.read_at && (
                  <Button size="xs" variant="subtle" onClick={() => markRead.mutate(n.id)}>
                    Mark read
                  </Button>
                )}
              </Group>
            </Card>
          ))}
        </Stack>
      )}
      {list.hasNextPage && (
        <Button variant="default" onClick={() => void list.fetchNextPage()} loading={list.isFetchingNextPage}>
          Load more
        </Button>
      )}
    </Stack>
  );
}
