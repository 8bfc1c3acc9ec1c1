import { ActionIcon, Anchor, Button, Group, Select, Stack, Table, Text, TextInput, Title, Tooltip } from "@mantine/core";
import { IconTrash } from "@tabler/icons-react";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { Link } from "react-router";
import { api, call, idempotencyKey } from "../../api/client";
import type { components } from "../../api/schema";
import { notifyError } from "../../ui/forms";
import { Failed, Loading } from "../../ui/states";
import { StatusBadge } from "../badges";
import type { Ticket } from "../model";

type LinkType = components["schemas"]["LinkType"];

export const LINK_TYPES: { value: LinkType; label: string }[] = [
  { value: "blocks", label: "blocks" },
  { value: "blocked_by", label: "is blocked by" },
  { value: "relates", label: "relates to" },
  { value: "duplicates", label: "duplicates" },
  { value: "duplicated_by", label: "is duplicated by" },
];

const labelOf = (t: LinkType) => LINK_TYPES.find((x) => x.value === t)?.label ?? t;

/** The ticket's links, from its side; agents add and remove them. */
export function Links({ ticket: t, canEdit }: { ticket: Ticket; canEdit: boolean }) {
  const client = useQueryClient();
  const key = ["links", t.id];
  const links = useQuery({
    queryKey: key,
    queryFn: () => call(api.GET("/api/v1/tickets/{id}/links", { params: { path: { id: t.id } } })),
  });
  const [kind, setKind] = useState<LinkType>("relates");
  const [other, setOther] = useState("");
  const [busy, setBusy] = useState(false);

  const refresh = () => {
    void client.invalidateQueries({ queryKey: key });
    void client.invalidateQueries({ queryKey: ["timeline", t.id] });
  };

  async function add() {
    setBusy(true);
    try {
      await call(
        api.POST("/api/v1/tickets/{id}/links", {
          params: { path: { id: t.id }, header: { "Idempotency-Key": idempotencyKey() } },
          body: { type: kind, ticket_id: other.trim().toUpperCase() },
        }),
      );
      setOther("");
      refresh();
    } catch (err) {
      notifyError(err, "Could not link the tickets");
    } finally {
      setBusy(false);
    }
  }

  async function remove(linkId: string) {
    try {
      await call(api.DELETE("/api/v1/tickets/{id}/links/{link_id}", { params: { path: { id: t.id, link_id: linkId } } }));
      refresh();
    } catch (err) {
      notifyError(err, "Could not remove the link");
    }
  }

  const items = links.data?.items ?? [];
  if (!canEdit && items.length === 0) return null;
  return (
    <Stack component="section" aria-labelledby="links" gap="xs">
      <Title order={2} size="h4" id="links">
        Linked tickets
      </Title>
      {links.isPending ? (
        <Loading label="Loading links" />
      ) : links.isError ? (
        <Failed error={links.error} onRetry={() => void links.refetch()} />
      ) : (
        items.length > 0 && (
          <Table aria-label="Linked tickets">
            <Table.Tbody>
              {items.map((l) => (
                <Table.Tr key={l.id} data-testid="link-row">
                  <Table.Td w={130}>
                    <Text size="sm" c="dimmed">
                      {labelOf(l.type)}
                    </Text>
                  </Table.Td>
                  <Table.Td ff="monospace" w={100}>
                    <Anchor component={Link} to={`/tickets/${l.ticket.key}`} size="sm">
                      {l.ticket.key}
                    </Anchor>
                  </Table.Td>
                  <Table.Td>
                    <Text size="sm" lineClamp={1}>
                      {l.ticket.title}
                    </Text>
                  </Table.Td>
                  <Table.Td w={110}>
                    <StatusBadge status={l.ticket.status} />
                  </Table.Td>
                  {canEdit && (
                    <Table.Td w={40}>
                      <Tooltip label="Remove link">
                        <ActionIcon
                          variant="subtle"
                          color="red"
                          aria-label={`Remove the link to ${l.ticket.key}`}
                          onClick={() => void remove(l.id)}
                        >
                          <IconTrash size={16} aria-hidden />
                        </ActionIcon>
                      </Tooltip>
                    </Table.Td>
                  )}
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
            if (other.trim()) void add();
          }}
        >
          <Group gap="xs" align="flex-end">
            <Select
              label="This ticket"
              data={LINK_TYPES}
              value={kind}
              onChange={(v) => v && setKind(v as LinkType)}
              allowDeselect={false}
              w={160}
            />
            <TextInput
              label="Ticket"
              placeholder="OPS-42"
              value={other}
              onChange={(e) => setOther(e.currentTarget.value)}
              w={130}
            />
            <Button type="submit" variant="default" loading={busy} disabled={!other.trim()}>
              Link
            </Button>
          </Group>
        </form>
      )}
    </Stack>
  );
}
