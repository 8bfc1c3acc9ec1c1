import { Button, Code, Group, MultiSelect, Paper, Stack, Table, Text, TextInput, Title } from "@mantine/core";
import { DateTimePicker } from "@mantine/dates";
import { useForm } from "@mantine/form";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api, call } from "../api/client";
import type { components } from "../api/schema";
import { usePersonName } from "../tickets/reference";
import { FormModal } from "../ui/FormModal";
import { ShownOnce } from "../ui/ShownOnce";
import { useSubmit } from "../ui/forms";
import { Failed, Loading } from "../ui/states";
import { dateTime } from "../ui/time";
import { useAction } from "../ui/useAction";
import { atLeast, useSession } from "./useSession";

type Scope = components["schemas"]["Scope"];

const SCOPES: { value: Scope; label: string }[] = [
  { value: "read", label: "read: look things up" },
  { value: "write", label: "write: also change tickets, comments, projects" },
  { value: "admin", label: "admin: also administer the organisation" },
];

/**
 * API tokens for other systems: each acts as you, within its scopes. A new token is shown once;
 * revoking one stops it at once. Admins see everyone's tokens in the organisation.
 */
export function ApiTokens() {
  const session = useSession();
  const admin = atLeast(session?.role, "admin");
  const nameOf = usePersonName();
  const client = useQueryClient();
  const tokens = useQuery({ queryKey: ["api-tokens"], queryFn: () => call(api.GET("/api/v1/api-tokens")) });
  const [creating, setCreating] = useState(false);
  const [shown, setShown] = useState<string | null>(null);
  const form = useForm({
    initialValues: { name: "", scopes: ["read", "write"] as Scope[], expires_at: null as string | null },
    validate: {
      name: (v) => (v.trim() ? null : "Name the token"),
      scopes: (v) => (v.length ? null : "Choose at least one scope"),
    },
  });
  const { submit, error } = useSubmit(form, async ({ name, scopes, expires_at }) => {
    const created = await call(
      api.POST("/api/v1/api-tokens", {
        body: { name, scopes, expires_at: expires_at ? new Date(expires_at).toISOString() : null },
      }),
    );
    setCreating(false);
    form.reset();
    setShown(created.token);
    void client.invalidateQueries({ queryKey: ["api-tokens"] });
  });
  const revoke = useAction(
    (id: string) => call(api.DELETE("/api/v1/api-tokens/{id}", { params: { path: { id } } })),
    { done: "Token revoked", invalidate: [["api-tokens"]] },
  );

  return (
    <Paper withBorder p="md" id="api-tokens">
      <Stack>
        <Group justify="space-between">
          <Title order={2} size="h4">
            API tokens
          </Title>
          <Button size="xs" onClick={() => setCreating(true)}>
            New token
          </Button>
        </Group>
        <Text size="sm" c="dimmed">
          For scripts and other systems: send <Code>Authorization: Bearer dkt_…</Code>. A token acts as you, within
          its scopes.
        </Text>
        {shown && (
          <ShownOnce
            title="Your new token — copy it now, it is not shown again"
            value={shown}
            testId="new-token"
            onDone={() => setShown(null)}
          />
        )}
        {tokens.isPending ? (
          <Loading label="Loading tokens" />
        ) : tokens.isError ? (
          <Failed error={tokens.error} onRetry={() => void tokens.refetch()} />
        ) : tokens.data.items.length === 0 ? (
          <Text size="sm">No tokens yet.</Text>
        ) : (
          <Table aria-label="API tokens">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Name</Table.Th>
                {admin && <Table.Th>Owner</Table.Th>}
                <Table.Th>Scopes</Table.Th>
                <Table.Th>Last used</Table.Th>
                <Table.Th>Expires</Table.Th>
                <Table.Th>
                  <span className="sr-only">Actions</span>
                </Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {tokens.data.items.map((t) => (
                <Table.Tr key={t.id} data-testid="api-token-row">
                  <Table.Td>
                    <Text size="sm">{t.name}</Text>
                    <Text size="xs" ff="monospace" c="dimmed">
                      {t.prefix}
                    </Text>
                  </Table.Td>
                  {admin && <Table.Td>{nameOf(t.user_id)}</Table.Td>}
                  <Table.Td>{t.scopes.join(", ")}</Table.Td>
                  <Table.Td>{t.last_used_at ? dateTime(t.last_used_at) : "Never"}</Table.Td>
                  <Table.Td>{t.expires_at ? dateTime(t.expires_at) : "Never"}</Table.Td>
                  <Table.Td>
                    <Button
                      size="compact-xs"
                      color="red"
                      variant="subtle"
                      onClick={() => revoke.mutate(t.id)}
                      aria-label={`Revoke ${t.name}`}
                    >
                      Revoke
                    </Button>
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        )}
      </Stack>
      <FormModal
        opened={creating}
        onClose={() => setCreating(false)}
        title="New API token"
        error={error}
        onSubmit={submit}
        submitLabel="Create token"
        submitting={form.submitting}
      >
        <TextInput label="Name" description="What it is for, e.g. CI pipeline" data-autofocus {...form.getInputProps("name")} />
        <MultiSelect label="Scopes" data={SCOPES} {...form.getInputProps("scopes")} />
        <DateTimePicker
          label="Expires"
          description="Leave empty to keep it until you revoke it"
          clearable
          valueFormat="YYYY-MM-DD HH:mm"
          minDate={new Date()}
          {...form.getInputProps("expires_at")}
        />
      </FormModal>
    </Paper>
  );
}
