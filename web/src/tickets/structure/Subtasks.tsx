import { Anchor, Button, Group, Progress, Stack, Table, Text, TextInput, Title } from "@mantine/core";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { Link } from "react-router";
import { api, call, idempotencyKey } from "../../api/client";
import { notifyError } from "../../ui/forms";
import { Failed, Loading } from "../../ui/states";
import { StatusBadge } from "../badges";
import type { Ticket } from "../model";

/** A ticket's subtasks with their status and progress; agents add one inline. */
export function Subtasks({ ticket: t, canEdit }: { ticket: Ticket; canEdit: boolean }) {
  const client = useQueryClient();
  const key = ["tickets", "subtasks", t.id];
  const subtasks = useQuery({
    queryKey: key,
    queryFn: () =>
      call(api.GET("/api/v1/tickets", { params: { query: { parent_id: t.id, sort: "created_at", limit: 200 } } })),
  });
  const [title, setTitle] = useState("");
  const [busy, setBusy] = useState(false);
  const [idempotency, setIdempotency] = useState(idempotencyKey);

  async function add() {
    if (!title.trim()) return;
    setBusy(true);
    try {
      await call(
        api.POST("/api/v1/tickets", {
          body: { project_id: t.project_id, title, parent_id: t.id },
          params: { header: { "Idempotency-Key": idempotency } },
        }),
      );
      setTitle("");
      setIdempotency(idempotencyKey());
      void client.invalidateQueries({ queryKey: key });
      void client.invalidateQueries({ queryKey: ["ticket"] });
    } catch (err) {
      notifyError(err, "Could not add the subtask");
    } finally {
      setBusy(false);
    }
  }

  const { total, done } = t.subtasks;
  if (total === 0 && !canEdit) return null;
  return (
    <Stack component="section" aria-labelledby="subtasks" gap="xs">
      <Group justify="space-between">
        <Title order={2} size="h4" id="subtasks">
          Subtasks
        </Title>
        {total > 0 && (
          <Text size="sm" c="dimmed" data-testid="subtask-progress">
            {done} of {total} done
          </Text>
        )}
      </Group>
      {total > 0 && <Progress value={(done / total) * 100} size="sm" aria-label={`${done} of ${total} subtasks done`} />}
      {subtasks.isPending ? (
        <Loading label="Loading subtasks" />
      ) : subtasks.isError ? (
        <Failed error={subtasks.error} onRetry={() => void subtasks.refetch()} />
      ) : (
        subtasks.data.items.length > 0 && (
          <Table aria-label="Subtasks">
            <Table.Tbody>
              {subtasks.data.items.map((s) => (
                <Table.Tr key={s.id} data-testid="subtask-row">
                  <Table.Td ff="monospace" w={110}>
                    <Anchor component={Link} to={`/tickets/${s.key}`} size="sm">
                      {s.key}
                    </Anchor>
                  </Table.Td>
                  <Table.Td>
                    <Text size="sm" lineClamp={1}>
                      {s.title}
                    </Text>
                  </Table.Td>
                  <Table.Td w={120}>
                    <StatusBadge status={s.status} />
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        )
      )}
      {canEdit && (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void add();
          }}
        >
          <Group gap="xs" align="flex-end">
            <TextInput
              label="New subtask"
              placeholder="What needs doing"
              value={title}
              onChange={(e) => setTitle(e.currentTarget.value)}
              style={{ flex: 1 }}
            />
            <Button type="submit" loading={busy} disabled={!title.trim()}>
              Add subtask
            </Button>
          </Group>
        </form>
      )}
    </Stack>
  );
}
