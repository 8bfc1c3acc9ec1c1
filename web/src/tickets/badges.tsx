import { Badge } from "@mantine/core";
import { priorityInfo, statusInfo, type Priority, type Status } from "./model";

export function StatusBadge({ status }: { status: Status }) {
  const s = statusInfo(status);
  return (
    <Badge color={s.color} variant="light" data-testid="status">
      {s.label}
    </Badge>
  );
}

export function PriorityBadge({ priority }: { priority: Priority }) {
  const p = priorityInfo(priority);
  return (
    <Badge color={p.color} variant="dot">
      {p.label}
    </Badge>
  );
}
