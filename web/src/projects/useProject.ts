import { useQuery } from "@tanstack/react-query";
import { api, call } from "../api/client";
import { atLeast, useSession } from "../auth/useSession";

export function useProject(id: string) {
  return useQuery({
    queryKey: ["project", id],
    queryFn: () => call(api.GET("/api/v1/projects/{id}", { params: { path: { id } } })),
  });
}

export function useProjectMembers(id: string) {
  const staff = atLeast(useSession()?.role, "viewer");
  return useQuery({
    queryKey: ["project", id, "members"],
    queryFn: () => call(api.GET("/api/v1/projects/{id}/members", { params: { path: { id } } })),
    enabled: staff,
  });
}

/** May the person signed in manage the project: managers and above, or its project admins. */
export function useMayManage(id: string) {
  const session = useSession();
  const members = useProjectMembers(id);
  if (atLeast(session?.role, "manager")) return true;
  return (members.data?.items ?? []).some((m) => m.user_id === session?.user.id && m.role === "admin");
}
