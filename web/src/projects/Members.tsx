import { ActionIcon, Button, Group, Paper, Select, Stack, Table, Text, Title, Tooltip } from "@mantine/core";
import { IconTrash } from "@tabler/icons-react";
import { useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api, call } from "../api/client";
import { notifyDone, notifyError } from "../ui/forms";
import { Empty, Failed, Loading } from "../ui/states";
import { personOptions, usePeople, usePersonName } from "../tickets/reference";
import { PROJECT_ROLES, type Member, type Project } from "./model";
import { useMayManage, useProjectMembers } from "./useProject";

/** The project's members and their project roles; project admins and managers change them. */
export function Members({ project }: { project: Project }) {
  const members = useProjectMembers(project.id);
  const mayManage = useMayManage(project.id);
  const people = usePeople();
  const nameOf = usePersonName();
  const client = useQueryClient();
  const [adding, setAdding] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const items = members.data?.items ?? [];

  async function replace(next: Member[], done: string) {
    setBusy(true);
    try {
      await call(
        api.PUT("/api/v1/projects/{id}/members", {
          params: { path: { id: project.id } },
          body: { members: next },
        }),
      );
      notifyDone(done);
      void client.invalidateQueries({ queryKey: ["project", project.id] });
      void client.invalidateQueries({ queryKey: ["projects"] });
    } catch (err) {
      notifyError(err, "Could not change the members");
    } finally {
      setBusy(false);
    }
  }

  const candidates = personOptions(people.data, (p) => p.role !== "requester" && !items.some((m) => m.user_id === p.id));
  return (
    <Paper withBorder p="md" component="section" aria-labelledby="members-title">
      <Stack gap="sm">
        <Title order={2} size="h4" id="members-title">
          Members
        </Title>
        <Text size="sm" c="dimmed">
          {project.visibility === "members"
            ? "Only these people (and the organisation's owners and admins) see this project."
            : "Everyone in the organisation sees this project; members' project roles still apply."}
        </Text>
        {members.isPending ? (
          <Loading label="Loading members" />
        ) : members.isError ? (
          <Failed error={members.error} onRetry={() => void members.refetch()} />
        ) : items.length === 0 ? (
          <Empty title="No members yet">
            {mayManage ? "Add the people who work on this project below." : undefined}
          </Empty>
        ) : (
          <Table aria-label="Members">
            <Table.Tbody>
              {items.map((m) => (
                <Table.Tr key={m.user_id} data-testid="member-row">
                  <Table.Td>
                    <Text size="sm">{nameOf(m.user_id)}</Text>
                  </Table.Td>
                  <Table.Td>
                    {mayManage ? (
                      <Select
                        aria-label={`Project role of ${nameOf(m.user_id)}`}
                        data={PROJECT_ROLES}
                        value={m.role}
                        allowDeselect={false}
                        size="xs"
                        disabled={busy}
                        onChange={(role) =>
                          role &&
                          void replace(
                            items.map((x) => (x.user_id === m.user_id ? { ...x, role: role as Member["role"] } : x)),
                            "Role changed",
                          )
                        }
                      />
                    ) : (
                      <Text size="sm">{PROJECT_ROLES.find((r) => r.value === m.role)?.label}</Text>
                    )}
                  </Table.Td>
                  {mayManage && (
                    <Table.Td w={40}>
                      <Tooltip label="Remove">
                        <ActionIcon
                          variant="subtle"
                          color="red"
                          aria-label={`Remove ${nameOf(m.user_id)}`}
                          disabled={busy}
                          onClick={() => void replace(items.filter((x) => x.user_id !== m.user_id), "Member removed")}
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
        )}
        {mayManage && (
          <Group align="flex-end" gap="xs">
            <Select
              label="Add a member"
              placeholder="Choose a person"
              data={candidates}
              value={adding}
              onChange={setAdding}
              searchable
              style={{ flex: 1 }}
            />
            <Button
              disabled={!adding}
              loading={busy}
              onClick={() =>
                adding &&
                void replace([...items, { user_id: adding, role: "member" }], "Member added").then(() => setAdding(null))
              }
            >
              Add
            </Button>
          </Group>
        )}
      </Stack>
    </Paper>
  );
}
