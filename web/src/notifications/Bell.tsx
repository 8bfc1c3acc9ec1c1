import { ActionIcon, Indicator } from "@mantine/core";
import { IconBell } from "@tabler/icons-react";
import { useQuery } from "@tanstack/react-query";
import { Link } from "react-router";
import { api, call } from "../api/client";

export function useUnreadCount() {
  return useQuery({
    queryKey: ["notifications", "unread"],
    queryFn: () => call(api.GET("/api/v1/notifications/unread-count")),
  });
}

export function NotificationBell() {
  const count = useUnreadCount().data?.count ?? 0;
  const label = count === 1 ? "1 unread notification" : `${count} unread notifications`;
  return (
    <Indicator label={count > 99 ? "99+" : count} size={18} disabled={count === 0} offset={4}>
      <ActionIcon
        component={Link}
        to="/notifications"
        variant="subtle"
        size="lg"
        aria-label={`Notifications: ${label}`}
        data-testid="bell"
        data-count={count}
      >
        <IconBell size={20} aria-hidden />
      </ActionIcon>
    </Indicator>
  );
}
