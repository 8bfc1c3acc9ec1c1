import { useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api, call, ifMatch } from "../api/client";
import { ApiError } from "../api/problem";
import type { components } from "../api/schema";
import { notifyError } from "../ui/forms";
import type { Ticket } from "./model";

export type TicketPatch = components["schemas"]["TicketPatch"];

/** A change that met a newer version: what the person based it on, and what is there now. */
export interface Conflict {
  patch: TicketPatch;
  base: Ticket;
  current: Ticket;
}

/**
 * Saves ticket changes with `If-Match` set to the version the change was made on. A 412 never
 * overwrites: it loads the ticket as it is now and hands both to the conflict dialog.
 */
export function useTicketUpdate() {
  const client = useQueryClient();
  const [conflict, setConflict] = useState<Conflict | null>(null);
  const [saving, setSaving] = useState(false);

  /** Puts the ticket as it is now wherever a page holds it (pages key it by id or by key). */
  function show(ticket: Ticket) {
    client.setQueriesData<Ticket>({ queryKey: ["ticket"] }, (held) => (held?.id === ticket.id ? ticket : held));
  }

  async function save(patch: TicketPatch, base: Ticket): Promise<boolean> {
    setSaving(true);
    try {
      const updated = await call(
        api.PATCH("/api/v1/tickets/{id}", {
          params: { path: { id: base.id }, header: ifMatch(base.version) },
          body: patch,
        }),
      );
      show(updated);
      void client.invalidateQueries({ queryKey: ["timeline", base.id] });
      return true;
    } catch (err) {
      if (err instanceof ApiError && err.status === 412) {
        const current = await call(api.GET("/api/v1/tickets/{id}", { params: { path: { id: base.id } } }));
        show(current);
        setConflict({ patch, base, current });
      } else {
        notifyError(err, "Could not save the ticket");
      }
      return false;
    } finally {
      // Lists (and a board's optimistic move) settle on what the server holds, saved or not.
      void client.invalidateQueries({ queryKey: ["tickets"] });
      setSaving(false);
    }
  }

  return {
    save,
    saving,
    conflict,
    /** Sends the person's change again, on top of the current version. */
    reapply: async () => {
      if (!conflict) return;
      setConflict(null);
      await save(conflict.patch, conflict.current);
    },
    discard: () => setConflict(null),
  };
}

/** The fields another person changed between `base` and `current`. */
export function changedFields(base: Ticket, current: Ticket): string[] {
  const fields = ["title", "description", "status", "priority", "assignee_ids", "labels", "due_at", "requester_id", "project_id"] as const;
  return fields.filter((f) => JSON.stringify(base[f] ?? null) !== JSON.stringify(current[f] ?? null));
}
