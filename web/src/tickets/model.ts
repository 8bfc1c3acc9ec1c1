// Ticket vocabulary shared by the list, the board and the ticket page.

import type { components } from "../api/schema";

export type Ticket = components["schemas"]["Ticket"];
export type Status = Ticket["status"];
export type Priority = Ticket["priority"];

export const STATUSES: { value: Status; label: string; color: string }[] = [
  { value: "open", label: "Open", color: "blue" },
  { value: "in_progress", label: "In progress", color: "violet" },
  { value: "pending", label: "Pending", color: "orange" },
  { value: "resolved", label: "Resolved", color: "green" },
  { value: "closed", label: "Closed", color: "gray" },
  { value: "cancelled", label: "Cancelled", color: "dark" },
];

export const PRIORITIES: { value: Priority; label: string; color: string }[] = [
  { value: "low", label: "Low", color: "gray" },
  { value: "medium", label: "Medium", color: "blue" },
  { value: "high", label: "High", color: "orange" },
  { value: "urgent", label: "Urgent", color: "red" },
];

export function statusInfo(s: Status) {
  return STATUSES.find((x) => x.value === s) ?? STATUSES[0]!;
}

export function priorityInfo(p: Priority) {
  return PRIORITIES.find((x) => x.value === p) ?? PRIORITIES[1]!;
}

/** The fields a person edits, as they read in a conflict. */
export const FIELD_LABELS: Record<string, string> = {
  title: "Title",
  description: "Description",
  status: "Status",
  priority: "Priority",
  assignee_ids: "Assignees",
  labels: "Labels",
  due_at: "Due",
  requester_id: "Requester",
  project_id: "Project",
  parent_id: "Parent",
};
