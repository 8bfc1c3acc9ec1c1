import { Badge, Button, Table, Text } from "@mantine/core";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, call } from "../../api/client";
import { notifyDone, notifyError } from "../../ui/forms";
import { dateTime } from "../../ui/time";

const METHODS: Record<string, string> = {
  password: "Password",
  mfa: "Password and second factor",
  passkey: "Passkey",
  sso: "Single sign-on",
};

/** The person's live sessions, in each of their organizations; any but this one can be ended. */
export function ActiveSessions() {
  const client = useQueryClient();
  const list = useQuery({ queryKey: ["sessions"], queryFn: () => call(api.GET("/api/v1/auth/sessions")) });
  const end = useMutation({
    mutationFn: (id: string) => call(api.DELETE("/api/v1/auth/sessions/{id}", { params: { path: { id } } })),
    onSuccess: async () => {
      await client.invalidateQueries({ queryKey: ["sessions"] });
      notifyDone("Session ended");
    },
    onError: (err) => notifyError(err),
  });
  if (!list.data) return null;
  return (
    <Table data-testid="sessions">
      <Table.Thead>
        <Table.Tr>
          <Table.Th>Organization</Table.Th>
          <Table.Th>Signed in with</Table.Th>
          <Table.Th>Since</Table.Th>
          <Table.Th />
        </Table.Tr>
      </Table.Thead>
      <Table.Tbody>
        {list.data.map((s) => (
          <Table.Tr key={s.id}>
            <Table.Td>{s.organization.name}</Table.Td>
            <Table.Td>{METHODS[s.method] ?? s.method}</Table.Td>
            <Table.Td>{dateTime(s.created_at)}</Table.Td>
            <Table.Td>
              {s.current ? (
                <Badge variant="light">This session</Badge>
              ) : (
                <Button size="xs" variant="subtle" color="red" onClick={() => end.mutate(s.id)}>
                  End
                </Button>
              )}
            </Table.Td>
          </Table.Tr>
        ))}
      </Table.Tbody>
      {list.data.length === 0 && (
        <Table.Caption>
          <Text size="sm">No sessions.</Text>
        </Table.Caption>
      )}
    </Table>
  );
}
