// Project vocabulary: plan statuses, visibility and project roles.

import type { components } from "../api/schema";

export type Project = components["schemas"]["Project"];
export type ProjectStatus = Project["status"];
export type ProjectRole = components["schemas"]["ProjectRole"];
export type Member = components["schemas"]["Member"];
export type Progress = components["schemas"]["Progress"];

export const PROJECT_STATUSES: { value: ProjectStatus; label: string; color: string }[] = [
  { value: "planned", label: "Planned", color: "gray" },
  { value: "active", label: "Active", color: "blue" },
  { value: "paused", label: "Paused", color: "orange" },
  { value: "completed", label: "Completed", color: "green" },
  { value: "cancelled", label: "Cancelled", color: "dark" },
];

export const PROJECT_ROLES: { value: ProjectRole; label: string; description: string }[] = [
  { value: "admin", label: "Project admin", description: "manages the project and its members" },
  { value: "member", label: "Member", description: "works its tickets as their role allows" },
  { value: "viewer", label: "Viewer", description: "reads only" },
];

export function projectStatusInfo(s: ProjectStatus) {
  return PROJECT_STATUSES.find((x) => x.value === s) ?? PROJECT_STATUSES[1]!;
}

/** Done as a whole percentage (0 when there is nothing to do). */
export function percentDone(p: Progress): number {
  return p.total === 0 ? 0 : Math.round((p.done / p.total) * 100);
}

/** "Jan 4 → Mar 31", "from Jan 4", "until Mar 31", or nothing. */
export function dateRange(start?: string | null, target?: string | null): string {
  const day = (d: string) =>
    new Date(`${d}T00:00:00Z`).toLocaleDateString(undefined, {
      month: "short",
      day: "numeric",
      year: "numeric",
      timeZone: "UTC",
    });
  if (start && target) return `${day(start)} → ${day(target)}`;
  if (start) return `from ${day(start)}`;
  if (target) return `until ${day(target)}`;
  return "";
}
