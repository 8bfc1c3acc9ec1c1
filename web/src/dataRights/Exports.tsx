import { Badge, Button, Group, Paper, Stack, Table, Text, Title } from "@mantine/core";
import { useQuery } from "@tanstack/react-query";
import { api, call } from "../api/client";
import { fetchAuthed, fileSize, saveBlob } from "../api/files";
import type { components } from "../api/schema";
import { notifyError } from "../ui/forms";
import { dateTime } from "../ui/time";
import { useAction } from "../ui/useAction";

type Export = components["schemas"]["Export"];
type Scope = components["schemas"]["ExportScope"];

const STATUS_COLOR: Record<string, string> = { pending: "gray", running: "blue", ready: "green", failed: "red" };

async function download(e: Export) {
  try {
    saveBlob(await fetchAuthed(`/api/v1/exports/${e.id}/download`), `docket-export-${e.id}.zip`);
  } catch (err) {
    notifyError(err, "The download did not work");
  }
}

/**
 * Asking for an export of `scope` and the caller's exports of it: built in the background
 * (the list looks again every few seconds until it is done), mailed when ready, kept 7 days.
 */
export function Exports({ scope, title, description }: { scope: Scope; title: string; description: string }) {
  const exports = useQuery({
    queryKey: ["exports"],
    queryFn: () => call(api.GET("/api/v1/exports")),
    refetchInterval: (q) =>
      q.state.data?.some((e) => e.status === "pending" || e.status === "running") ? 3000 : false,
  });
  const ask = useAction(() => call(api.POST("/api/v1/exports", { body: { scope } })), {
    done: "Export asked for: you will get a mail when it is ready",
    invalidate: [["exports"]],
  });
  const mine = (exports.data ?? []).filter((e) => e.scope === scope);
  const busy = mine.some((e) => e.status === "pending" || e.status === "running");
  return (
    <Paper withBorder p="md">
      <Stack>
        <Title order={2} size="h4">
          {title}
        </Title>
        <Text size="sm" c="dimmed">
          {description}
        </Text>
        {mine.length > 0 && (
          <Table aria-label={title}>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Asked for</Table.Th>
                <Table.Th>Status</Table.Th>
                <Table.Th>Size</Table.Th>
                <Table.Th />
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {mine.map((e) => (
                <Table.Tr key={e.id}>
                  <Table.Td>{dateTime(e.created_at)}</Table.Td>
                  <Table.Td>
                    <Badge color={STATUS_COLOR[e.status] ?? "gray"} variant="light">
                      {e.status}
                    </Badge>
                  </Table.Td>
                  <Table.Td>{e.size != null ? fileSize(e.size) : "—"}</Table.Td>
                  <Table.Td>
                    {e.status === "ready" && e.expires_at && (
                      <Group gap="xs" justify="flex-end">
                        <Text size="xs" c="dimmed">
                          until {dateTime(e.expires_at)}
                        </Text>
                        <Button size="xs" variant="light" onClick={() => void download(e)}>
                          Download
                        </Button>
                      </Group>
                    )}
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        )}
        <Group justify="flex-end">
          <Button variant="default" loading={ask.isPending} disabled={busy} onClick={() => ask.mutate(undefined)}>
            {busy ? "Being built…" : "Export"}
          </Button>
        </Group>
      </Stack>
    </Paper>
  );
}
