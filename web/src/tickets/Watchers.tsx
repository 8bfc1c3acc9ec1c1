import { Button, Group, Text } from "@mantine/core";
import { useQuery } from "@tanstack/react-query";
import { api, call } from "../api/client";
import { useSession } from "../auth/useSession";
import { useAction } from "../ui/useAction";
import { usePersonName } from "./reference";

export function Watchers({ ticketId }: { ticketId: string }) {
  const me = useSession()?.user.id;
  const nameOf = usePersonName();
  const key = ["ticket-watchers", ticketId];
  const watchers = useQuery({
    queryKey: key,
    queryFn: () => call(api.GET("/api/v1/tickets/{id}/watchers", { params: { path: { id: ticketId } } })),
  });
  const watching = watchers.data?.user_ids.includes(me ?? "") ?? false;
  const toggle = useAction(
    () =>
      watching
        ? call(api.DELETE("/api/v1/tickets/{id}/watch", { params: { path: { id: ticketId } } }))
        : call(api.POST("/api/v1/tickets/{id}/watch", { params: { path: { id: ticketId } } })),
    { invalidate: [key] },
  );
  return (
    <div>
      <Text size="sm" fw={500}>
        Watchers
      </Text>
      <Group justify="space-between" wrap="nowrap">
        <Text size="sm" c="dimmed">
          {watchers.data?.user_ids.map(nameOf).join(", ") || "Nobody yet"}
        </Text>
        <Button size="xs" variant="light" onClick={() => toggle.mutate()} loading={toggle.isPending}>
          {watching ? "Stop watching" : "Watch"}
        </Button>
      </Group>
    </div>
  );
}
