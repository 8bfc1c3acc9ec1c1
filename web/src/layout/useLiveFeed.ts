import { useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { followFeed } from "../api/stream";
import { useSession } from "../auth/useSession";

/** Keeps this tab's one stream open while signed in; returns whether it is connected. */
export function useLiveFeed(): boolean {
  const client = useQueryClient();
  const org = useSession()?.organization.id;
  const [live, setLive] = useState(false);
  useEffect(() => {
    if (!org) return;
    const stop = new AbortController();
    followFeed(client, stop.signal, setLive);
    return () => {
      stop.abort();
      setLive(false);
    };
  }, [client, org]);
  return live;
}
