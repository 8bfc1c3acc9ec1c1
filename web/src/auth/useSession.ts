import { useSyncExternalStore } from "react";
import { session, subscribe, type Role, type Session } from "../api/session";

export function useSession(): Session | null {
  return useSyncExternalStore(subscribe, session, session);
}

const RANK: Record<Role, number> = {
  owner: 5,
  admin: 4,
  manager: 3,
  agent: 2,
  viewer: 1,
  requester: 0,
};

/** True when `role` has every right of `least` (requesters rank below all staff). */
export function atLeast(role: Role | undefined, least: Role): boolean {
  return role !== undefined && RANK[role] >= RANK[least];
}
