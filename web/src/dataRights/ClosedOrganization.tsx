import { Alert, Button, Center, Group, Paper, Stack, Text, Title } from "@mantine/core";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useNavigate } from "react-router";
import { api, call } from "../api/client";
import { refresh, signOut, type Session } from "../api/session";
import { notifyDone, notifyError } from "../ui/forms";
import { dateTime } from "../ui/time";

/**
 * What an owner of a deleted organisation sees after signing in: when it goes for good, and the
 * one thing left to do with it, restoring it.
 */
export function ClosedOrganization({ session }: { session: Session }) {
  const navigate = useNavigate();
  const client = useQueryClient();
  const restore = useMutation({
    mutationFn: async () => {
      await call(api.POST("/api/v1/org/restore"));
      // A new token for the open organisation.
      await refresh();
    },
    onSuccess: () => {
      client.clear();
      notifyDone(`${session.organization.name} is open again. Everyone signs in anew.`);
    },
    onError: (err) => notifyError(err),
  });
  const purgeAt = session.organization.purge_at;
  return (
    <Center mih="100vh" p="md">
      <Paper withBorder p="xl" maw={520}>
        <Stack>
          <Title order={1} size="h3">
            {session.organization.name} was deleted
          </Title>
          <Alert color="red" role="status">
            {purgeAt
              ? `Everything it holds will be removed for good on ${dateTime(purgeAt)}.`
              : "It is being removed."}
          </Alert>
          <Text size="sm">
            Until then it is closed: nobody but its owners can sign in, mail to it is refused, its
            webhooks and API tokens have stopped. Restoring it opens it again as it was.
          </Text>
          <Group justify="flex-end">
            <Button
              variant="default"
              onClick={() => void signOut().then(() => navigate("/signin", { replace: true }))}
            >
              Sign out
            </Button>
            <Button loading={restore.isPending} onClick={() => restore.mutate()}>
              Restore {session.organization.name}
            </Button>
          </Group>
        </Stack>
      </Paper>
    </Center>
  );
}
