// Names for ids: projects and people, loaded once and shared by every page.

import { useQuery } from "@tanstack/react-query";
import { api, call } from "../api/client";
import { atLeast, useSession } from "../auth/useSession";
import type { components } from "../api/schema";

export type Project = components["schemas"]["Project"];
export type Person = components["schemas"]["Person"];

/** Every page of a listing (reference data is small: projects and people). */
async function all<T>(load: (cursor?: string) => Promise<{ items: T[]; next_cursor?: string | null }>) {
  const out: T[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < 50; i++) {
    const page = await load(cursor);
    out.push(...page.items);
    if (!page.next_cursor) break;
    cursor = page.next_cursor;
  }
  return out;
}

export function useProjects(includeArchived = false) {
  return useQuery({
    queryKey: ["projects", { includeArchived }],
    queryFn: () =>
      all((cursor) =>
        call(
          api.GET("/api/v1/projects", {
            params: { query: { include_archived: includeArchived, cursor, limit: 200 } },
          }),
        ),
      ),
    staleTime: 60_000,
  });
}

/** The organisation's people (staff only: requesters do not see the member list). */
export function usePeople() {
  const role = useSession()?.role;
  return useQuery({
    queryKey: ["people"],
    queryFn: () =>
      all((cursor) => call(api.GET("/api/v1/users", { params: { query: { cursor, limit: 200 } } }))),
    enabled: atLeast(role, "viewer"),
    staleTime: 60_000,
  });
}

/** A name for a person id: the member's name, "You", or a neutral stand-in. */
export function usePersonName() {
  const me = useSession()?.user;
  const people = usePeople().data;
  return (id: string | null | undefined): string => {
    if (!id) return "Nobody";
    if (id === me?.id) return `${me.name} (you)`;
    return people?.find((p) => p.id === id)?.name ?? "Support team";
  };
}

export function personOptions(people: Person[] | undefined, filter?: (p: Person) => boolean) {
  return (people ?? [])
    .filter((p) => p.active && (!filter || filter(p)))
    .map((p) => ({ value: p.id, label: p.name }));
}

export const isAgent = (p: Person) => ["owner", "admin", "manager", "agent"].includes(p.role);
