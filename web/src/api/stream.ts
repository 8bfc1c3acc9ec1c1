// One live feed per tab: `/api/v1/stream` read with fetch (so the token travels in the
// Authorization header, never in a URL), resumed with Last-Event-ID after a drop. Each event
// invalidates the queries it affects; a `reset` (the server no longer has what we missed)
// refetches everything.

import { fetchEventSource } from "@microsoft/fetch-event-source";
import type { QueryClient } from "@tanstack/react-query";
import { accessToken, refresh } from "./session";

export interface FeedEvent {
  id: string;
  type: string;
  ticket_id?: string | null;
  data?: Record<string, unknown>;
}

class Retry extends Error {}

/** What an event changes in the cache. */
export function affectedQueries(event: FeedEvent): unknown[][] {
  if (event.type === "reset") return [[]];
  const ticket = event.ticket_id ?? undefined;
  if (event.type.startsWith("notification.")) return [["notifications"]];
  if (event.type.startsWith("comment.")) {
    // A deleted comment takes its files with it.
    return [["comments", ticket], ["attachments", ticket], ["timeline", ticket]];
  }
  if (event.type.startsWith("attachment.")) {
    return [["attachments", ticket], ["timeline", ticket]];
  }
  if (event.type.startsWith("ticket.")) {
    // Ticket pages are keyed by what their address names (an id or a key like OPS-42).
    return [["tickets"], ["ticket"], ["timeline", ticket]];
  }
  if (event.type.startsWith("project.")) return [["projects"]];
  return [];
}

/** Follows the feed until `signal` aborts; `onState` tells whether it is connected. */
export function followFeed(
  client: QueryClient,
  signal: AbortSignal,
  onState: (live: boolean) => void,
): void {
  void fetchEventSource("/api/v1/stream", {
    signal,
    openWhenHidden: true,
    async fetch(input, init) {
      const token = await accessToken();
      const headers = new Headers(init?.headers);
      if (token) headers.set("Authorization", `Bearer ${token}`);
      return fetch(input, { ...init, headers });
    },
    async onopen(res) {
      if (res.ok && res.headers.get("content-type")?.startsWith("text/event-stream")) {
        onState(true);
        return;
      }
      if (res.status === 401) await refresh();
      throw new Retry(`stream answered ${res.status}`);
    },
    onmessage(msg) {
      if (!msg.data) return;
      let event: FeedEvent;
      try {
        event = { ...(JSON.parse(msg.data) as FeedEvent), id: msg.id };
      } catch {
        return;
      }
      for (const queryKey of affectedQueries(event)) {
        void client.invalidateQueries({
          queryKey: queryKey.filter((k) => k !== undefined),
        });
      }
    },
    onclose() {
      // The server ends a stream when the token expires: reconnect with a fresh one.
      onState(false);
      throw new Retry("stream closed");
    },
    onerror() {
      onState(false);
      return 1000 + Math.random() * 2000;
    },
  });
}
