import { Alert, Button, Group, List, MultiSelect, Paper, Select, TagsInput, Text } from "@mantine/core";
import { useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api, call, idempotencyKey } from "../../api/client";
import type { components } from "../../api/schema";
import { notifyDone, notifyError } from "../../ui/forms";
import { PRIORITIES, STATUSES, type Ticket } from "../model";
import { isAgent, personOptions, usePeople } from "../reference";

type BulkSet = components["schemas"]["BulkSet"];
type BulkResult = components["schemas"]["BulkResult"];

/**
 * The bar over a list with tickets chosen: one change applied to each of them. Each ticket is
 * changed (or refused) on its own; those refused stay chosen, with the reason.
 */
export function BulkBar({
  tickets,
  onDone,
  onClear,
}: {
  tickets: Ticket[];
  /** Called with the ids that were changed (the others stay chosen). */
  onDone: (changed: string[]) => void;
  onClear: () => void;
}) {
  const people = usePeople();
  const client = useQueryClient();
  const [set, setSet] = useState<BulkSet>({});
  const [busy, setBusy] = useState(false);
  const [failed, setFailed] = useState<BulkResult[]>([]);
  if (tickets.length === 0) return null;
  const empty =
    !set.status && !set.priority && !set.assignee_ids && !set.add_labels?.length && !set.remove_labels?.length;

  async function apply() {
    setBusy(true);
    try {
      const { results } = await call(
        api.POST("/api/v1/tickets/bulk", {
          body: { ids: tickets.map((t) => t.id), set },
          params: { header: { "Idempotency-Key": idempotencyKey() } },
        }),
      );
      const changed = results.filter((r) => r.status === 200).map((r) => r.id);
      setFailed(results.filter((r) => r.status !== 200));
      notifyDone(`${changed.length} of ${results.length} tickets changed`);
      setSet({});
      onDone(changed);
      void client.invalidateQueries({ queryKey: ["tickets"] });
    } catch (err) {
      notifyError(err, "Could not change the tickets");
    } finally {
      setBusy(false);
    }
  }

  const keyOf = (id: string) => tickets.find((t) => t.id === id)?.key ?? id;
  return (
    <Paper withBorder p="sm" shadow="sm" className="bulk-bar" component="section" aria-label="Change the chosen tickets">
      <Group gap="xs" align="flex-end">
        <Text fw={500} size="sm" data-testid="bulk-count">
          {tickets.length} chosen
        </Text>
        <Select
          label="Status"
          data={STATUSES}
          value={set.status ?? null}
          onChange={(v) => setSet({ ...set, status: (v as BulkSet["status"]) ?? undefined })}
          clearable
          w={140}
        />
        <Select
          label="Priority"
          data={PRIORITIES}
          value={set.priority ?? null}
          onChange={(v) => setSet({ ...set, priority: (v as BulkSet["priority"]) ?? undefined })}
          clearable
          w={120}
        />
        <MultiSelect
          label="Assign to"
          data={personOptions(people.data, isAgent)}
          value={set.assignee_ids ?? []}
          onChange={(ids) => setSet({ ...set, assignee_ids: ids.length ? ids : undefined })}
          searchable
          w={200}
        />
        <TagsInput
          label="Add labels"
          value={set.add_labels ?? []}
          onChange={(add_labels) => setSet({ ...set, add_labels })}
          w={150}
        />
        <TagsInput
          label="Remove labels"
          value={set.remove_labels ?? []}
          onChange={(remove_labels) => setSet({ ...set, remove_labels })}
          w={150}
        />
        <Button onClick={() => void apply()} loading={busy} disabled={empty}>
          Apply to {tickets.length}
        </Button>
        <Button variant="subtle" onClick={onClear}>
          Clear
        </Button>
      </Group>
      {failed.length > 0 && (
        <Alert color="orange" mt="xs" title="Some tickets were left as they were" withCloseButton onClose={() => setFailed([])}>
          <List size="sm">
            {failed.map((r) => (
              <List.Item key={r.id}>
                {keyOf(r.id)}: {r.problem?.detail ?? `status ${r.status}`}
              </List.Item>
            ))}
          </List>
        </Alert>
      )}
    </Paper>
  );
}
