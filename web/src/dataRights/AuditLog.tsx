import { Alert, Badge, Button, Code, Group, Select, Stack, Table, Text, TextInput, Title } from "@mantine/core";
import { useInfiniteQuery, useMutation, useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { api, call } from "../api/client";
import { fetchAuthed, saveBlob } from "../api/files";
import { notifyError } from "../ui/forms";
import { Empty, Paged } from "../ui/states";
import { dateTime } from "../ui/time";

interface Filters {
  action: string;
  actor_id: string | null;
  request_id: string;
  since: string;
  until: string;
}

const NO_FILTERS: Filters = { action: "", actor_id: null, request_id: "", since: "", until: "" };

/** The filters as the API's query: empty ones left out, dates as the start of their day (UTC). */
function query(f: Filters) {
  const day = (d: string) => (d ? new Date(`${d}T00:00:00Z`).toISOString() : undefined);
  return {
    action: f.action.trim() || undefined,
    actor_id: f.actor_id ?? undefined,
    request_id: f.request_id.trim() || undefined,
    since: day(f.since),
    until: day(f.until),
  };
}

/**
 * The organisation's audit log (admins): who did what, when, from which request; filtered,
 * checked link by link against its hash chain, and downloadable as CSV or JSON Lines.
 */
export function AuditLog() {
  const [draft, setDraft] = useState<Filters>(NO_FILTERS);
  const [filters, setFilters] = useState<Filters>(NO_FILTERS);
  const people = useQuery({
    queryKey: ["users", "all"],
    queryFn: () => call(api.GET("/api/v1/users", { params: { query: { limit: 200 } } })),
  });
  const names = new Map((people.data?.items ?? []).map((p) => [p.id, p.name || p.email]));
  const entries = useInfiniteQuery({
    queryKey: ["audit-log", filters],
    initialPageParam: undefined as string | undefined,
    queryFn: ({ pageParam }) =>
      call(api.GET("/api/v1/audit-log", { params: { query: { ...query(filters), cursor: pageParam, limit: 50 } } })),
    getNextPageParam: (page) => page.next_cursor ?? undefined,
  });
  const verify = useMutation({
    mutationFn: () => call(api.GET("/api/v1/audit-log/verify")),
    onError: (err) => notifyError(err),
  });
  const download = async (format: "csv" | "jsonl") => {
    const params = new URLSearchParams({ format });
    for (const [k, v] of Object.entries(query(filters))) if (v) params.set(k, v);
    try {
      saveBlob(await fetchAuthed(`/api/v1/audit-log/download?${params}`), `audit-log.${format}`);
    } catch (err) {
      notifyError(err, "The download did not work");
    }
  };
  const items = entries.data?.pages.flatMap((p) => p.items) ?? [];
  const set = (patch: Partial<Filters>) => setDraft((d) => ({ ...d, ...patch }));
  return (
    <Stack>
      <Title order={1} size="h2">
        Audit log
      </Title>
      <Text c="dimmed" size="sm">
        Every administrative change, in a chain of hashes: an entry changed or removed afterwards breaks it.
      </Text>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          setFilters(draft);
        }}
      >
        <Group align="flex-end" wrap="wrap">
          <TextInput
            label="Action"
            description="Exact, or a prefix ending in “.”"
            placeholder="membership."
            value={draft.action}
            onChange={(e) => set({ action: e.currentTarget.value })}
          />
          <Select
            label="Who"
            placeholder="Anyone"
            clearable
            searchable
            data={(people.data?.items ?? []).map((p) => ({ value: p.id, label: p.name || p.email }))}
            value={draft.actor_id}
            onChange={(v) => set({ actor_id: v })}
          />
          <TextInput label="From" type="date" value={draft.since} onChange={(e) => set({ since: e.currentTarget.value })} />
          <TextInput label="Before" type="date" value={draft.until} onChange={(e) => set({ until: e.currentTarget.value })} />
          <TextInput
            label="Request id"
            value={draft.request_id}
            onChange={(e) => set({ request_id: e.currentTarget.value })}
          />
          <Button type="submit" variant="light">
            Filter
          </Button>
        </Group>
      </form>
      <Group>
        <Button variant="default" loading={verify.isPending} onClick={() => verify.mutate()}>
          Verify the chain
        </Button>
        <Button variant="default" onClick={() => void download("csv")}>
          Download CSV
        </Button>
        <Button variant="default" onClick={() => void download("jsonl")}>
          Download JSON Lines
        </Button>
      </Group>
      {verify.data && (
        <Alert color={verify.data.ok ? "green" : "red"} role="status">
          {verify.data.ok
            ? `The chain holds: ${verify.data.entries} ${verify.data.entries === 1 ? "entry" : "entries"} checked.`
            : `The chain is broken after ${verify.data.entries} entries${
                verify.data.first_bad_id ? ` at entry ${verify.data.first_bad_id}` : ""
              }: ${verify.data.problem ?? ""}`}
        </Alert>
      )}
      <Paged query={entries} count={items.length} empty={<Empty title="No entries">Nothing matches these filters.</Empty>}>
        <Table.ScrollContainer minWidth={760}>
          <Table aria-label="Audit log">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>When</Table.Th>
                <Table.Th>Who</Table.Th>
                <Table.Th>What</Table.Th>
                <Table.Th>Details</Table.Th>
                <Table.Th>Request</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {items.map((e) => (
                <Table.Tr key={e.id} data-testid="audit-entry">
                  <Table.Td>{dateTime(e.created_at)}</Table.Td>
                  <Table.Td>{e.actor_id ? (names.get(e.actor_id) ?? e.actor_id) : "Docket"}</Table.Td>
                  <Table.Td>
                    <Badge variant="light">{e.action}</Badge>
                  </Table.Td>
                  <Table.Td>
                    <Code>{JSON.stringify(e.details)}</Code>
                  </Table.Td>
                  <Table.Td>
                    <Text size="xs" c="dimmed">
                      {e.request_id ?? "—"}
                    </Text>
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      </Paged>
    </Stack>
  );
}
