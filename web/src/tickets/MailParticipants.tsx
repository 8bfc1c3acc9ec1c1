import { ActionIcon, Button, Group, Stack, Text, Tooltip } from "@mantine/core";
import { useQuery } from "@tanstack/react-query";
import { api, call } from "../api/client";
import { useAction } from "../ui/useAction";

/**
 * Who hears of this ticket by mail besides its requester, and the addresses its mails copied in
 * that Docket held back (the mail was not authenticated, or copied in more than 20 people): an
 * agent adds one with a click, or takes someone out. Shown only for tickets that came by mail.
 */
export function MailParticipants({ ticketId }: { ticketId: string }) {
  const key = ["ticket-mail-participants", ticketId];
  const conversation = useQuery({
    queryKey: key,
    queryFn: () =>
      call(api.GET("/api/v1/tickets/{id}/mail-participants", { params: { path: { id: ticketId } } })),
  });
  const add = useAction(
    (address: string) =>
      call(
        api.POST("/api/v1/tickets/{id}/mail-participants", {
          params: { path: { id: ticketId } },
          body: { address },
        }),
      ),
    { done: (c) => `Added: ${c.participants.at(-1) ?? ""} now hears of this ticket by mail`, invalidate: [key] },
  );
  const remove = useAction(
    (address: string) =>
      call(
        api.DELETE("/api/v1/tickets/{id}/mail-participants/{address}", {
          params: { path: { id: ticketId, address } },
        }),
      ),
    { done: "Taken out of the mail conversation", invalidate: [key] },
  );
  const c = conversation.data;
  if (!c || (c.participants.length === 0 && c.held.length === 0)) return null;
  return (
    <div data-testid="mail-participants">
      <Text size="sm" fw={500}>
        Copied in by mail
      </Text>
      <Stack gap={4}>
        {c.participants.map((address) => (
          <Group key={address} justify="space-between" wrap="nowrap" gap="xs">
            <Text size="sm" style={{ overflowWrap: "anywhere" }}>
              {address}
            </Text>
            <Tooltip label="Take out of the mail conversation">
              <ActionIcon
                size="sm"
                variant="subtle"
                color="gray"
                aria-label={`Take ${address} out of the mail conversation`}
                onClick={() => remove.mutate(address)}
              >
                ×
              </ActionIcon>
            </Tooltip>
          </Group>
        ))}
        {c.held.length > 0 && (
          <Text size="xs" c="dimmed">
            Copied in but not added (the mail was not authenticated, or copied in too many people):
          </Text>
        )}
        {c.held.slice(0, 50).map((h) => (
          <Group key={h.address} justify="space-between" wrap="nowrap" gap="xs" data-testid="held-address">
            <Text size="sm" c="dimmed" style={{ overflowWrap: "anywhere" }}>
              {h.address}
            </Text>
            <Button
              size="compact-xs"
              variant="light"
              loading={add.isPending && add.variables === h.address}
              onClick={() => add.mutate(h.address)}
              aria-label={`Add ${h.address} to the mail conversation`}
            >
              Add
            </Button>
          </Group>
        ))}
        {c.held.length > 50 && (
          <Text size="xs" c="dimmed">
            and {c.held.length - 50} more
          </Text>
        )}
      </Stack>
    </div>
  );
}
