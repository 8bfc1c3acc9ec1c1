import { Button, Group, Stack, Table, Text, TextInput } from "@mantine/core";
import { useForm } from "@mantine/form";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, call } from "../../api/client";
import { createPasskey } from "../../api/session";
import { notifyDone, notifyError, useSubmit } from "../../ui/forms";
import { dateTime } from "../../ui/time";
import { enrolling } from "./TotpSetup";

/** Registers a passkey on this device; `setupToken` while finishing a sign-in's set-up step. */
export async function registerPasskey(name: string, setupToken?: string): Promise<string[] | undefined> {
  const auth = enrolling(setupToken);
  const started = await call(api.POST("/api/v1/auth/passkeys/register/start", auth));
  const credential = await createPasskey((started.options as { publicKey: unknown }).publicKey);
  const done = await call(
    api.POST("/api/v1/auth/passkeys/register/finish", {
      body: { ceremony_id: started.ceremony_id, name, credential: credential as Record<string, never> },
      ...auth,
    }),
  );
  return done.recovery_codes ?? undefined;
}

/** The account's passkeys: add one on this device, remove one. */
export function Passkeys({ onRecoveryCodes }: { onRecoveryCodes: (codes: string[]) => void }) {
  const client = useQueryClient();
  const list = useQuery({ queryKey: ["passkeys"], queryFn: () => call(api.GET("/api/v1/auth/passkeys")) });
  const form = useForm({
    initialValues: { name: "" },
    validate: { name: (v) => (v.trim() ? null : "Name it, such as Laptop") },
  });
  const { submit, error } = useSubmit(form, async ({ name }) => {
    const codes = await registerPasskey(name.trim());
    form.reset();
    await client.invalidateQueries({ queryKey: ["passkeys"] });
    await client.invalidateQueries({ queryKey: ["me"] });
    notifyDone("Passkey added");
    if (codes) onRecoveryCodes(codes);
  });
  const remove = useMutation({
    mutationFn: (id: string) => call(api.DELETE("/api/v1/auth/passkeys/{id}", { params: { path: { id } } })),
    onSuccess: async () => {
      await client.invalidateQueries({ queryKey: ["passkeys"] });
      await client.invalidateQueries({ queryKey: ["me"] });
      notifyDone("Passkey removed");
    },
    onError: (err) => notifyError(err),
  });

  return (
    <Stack>
      {list.data && list.data.length > 0 ? (
        <Table>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Passkey</Table.Th>
              <Table.Th>Added</Table.Th>
              <Table.Th>Last used</Table.Th>
              <Table.Th />
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {list.data.map((p) => (
              <Table.Tr key={p.id}>
                <Table.Td>{p.name}</Table.Td>
                <Table.Td>{dateTime(p.created_at)}</Table.Td>
                <Table.Td>{p.last_used_at ? dateTime(p.last_used_at) : "Never"}</Table.Td>
                <Table.Td>
                  <Button
                    size="xs"
                    color="red"
                    variant="subtle"
                    onClick={() => remove.mutate(p.id)}
                    aria-label={`Remove passkey ${p.name}`}
                  >
                    Remove
                  </Button>
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      ) : (
        <Text size="sm" c="dimmed">
          No passkeys yet. A passkey signs you in with this device's screen lock, and nobody can phish it.
        </Text>
      )}
      <form onSubmit={submit} noValidate>
<Group align="flex-end">
        <TextInput label="Name" placeholder="Laptop" {...form.getInputProps("name")} />
        <Button type="submit" variant="light" loading={form.submitting}>
          Add a passkey
        </Button>
      </Group>
</form>
      {error && (
        <Text c="red" size="sm" role="alert">
          {error}
        </Text>
      )}
    </Stack>
  );
}
