import { useMutation, useQueryClient } from "@tanstack/react-query";
import { notifyDone, notifyError } from "./forms";

/**
 * A button's API call: on success it says so (when `done` is given) and refreshes the queries
 * it affects; on failure it says why.
 */
export function useAction<V, R>(
  run: (v: V) => Promise<R>,
  { done, invalidate }: { done?: string | ((result: R) => string); invalidate: unknown[][] },
) {
  const client = useQueryClient();
  return useMutation({
    mutationFn: run,
    onSuccess: (result) => {
      if (done) notifyDone(typeof done === "function" ? done(result) : done);
      for (const queryKey of invalidate) void client.invalidateQueries({ queryKey });
    },
    onError: (err) => notifyError(err),
  });
}
