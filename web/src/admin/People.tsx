import { Badge, Button, Group, Menu, Select, Stack, Table, Text, TextInput, Title } from "@mantine/core";
import { useForm } from "@mantine/form";
import { modals } from "./confirm";
import { IconDots, IconPlus } from "@tabler/icons-react";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api, call } from "../api/client";
import type { Role } from "../api/session";
import { useSession } from "../auth/useSession";
import { FormModal } from "../ui/FormModal";
import { notifyDone, useSubmit } from "../ui/forms";
import { useAction } from "../ui/useAction";
import { Empty, Failed, Loading } from "../ui/states";
import { usePeople, type Person } from "../tickets/reference";
import { dateTime } from "../ui/time";

export const ROLES: { value: Role; label: string }[] = [
  { value: "owner", label: "Owner" },
  { value: "admin", label: "Admin" },
  { value: "manager", label: "Manager" },
  { value: "agent", label: "Agent" },
  { value: "viewer", label: "Viewer" },
  { value: "requester", label: "Requester (customer)" },
];

export function People() {
  const people = usePeople();
  const me = useSession()?.user.id;
  const [adding, setAdding] = useState(false);
  const change = useAction(
    ({ id, patch }: { id: string; patch: { role?: Role; active?: boolean } }) =>
      call(api.PATCH("/api/v1/users/{id}", { params: { path: { id } }, body: patch })),
    { done: (p) => `Updated ${p.name}`, invalidate: [["people"]] },
  );
  const remove = useAction(
    (id: string) => call(api.DELETE("/api/v1/users/{id}", { params: { path: { id } } })),
    { done: "Removed", invalidate: [["people"]] },
  );

  const confirmRemove = (p: Person) =>
    modals.confirm({
      title: `Remove ${p.name}?`,
      body: "They lose access to this organization at once. Their tickets and comments stay.",
      confirm: "Remove",
      onConfirm: () => remove.mutate(p.id),
    });

  return (
    <Stack>
      <Group justify="space-between">
        <Title order={1} size="h2">
          People
        </Title>
        <Button leftSection={<IconPlus size={16} aria-hidden />} onClick={() => setAdding(true)}>
          Invite person
        </Button>
      </Group>
      {people.isPending ? (
        <Loading />
      ) : people.isError ? (
        <Failed error={people.error} onRetry={() => void people.refetch()} />
      ) : people.data.length === 0 ? (
        <Empty
          title="Nobody here yet"
          action={
            <Button variant="light" onClick={() => setAdding(true)}>
              Invite your team
            </Button>
          }
        />
      ) : (
        <Table.ScrollContainer minWidth={360}>
          <Table aria-label="People">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Name</Table.Th>
                <Table.Th visibleFrom="sm">Email</Table.Th>
                <Table.Th>Role</Table.Th>
                <Table.Th>Status</Table.Th>
                <Table.Th>
                  <span className="sr-only">Actions</span>
                </Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {people.data.map((p) => (
                <Table.Tr key={p.id} data-testid="person-row">
                  <Table.Td>
                    {p.name}
                    {p.contact && (
                      <Badge ml="xs" size="xs" color="gray" variant="outline" title="Known only by mail: no account">
                        by mail
                      </Badge>
                    )}
                  </Table.Td>
                  <Table.Td visibleFrom="sm">{p.email}</Table.Td>
                  <Table.Td>
                    <Select
                      aria-label={`Role of ${p.name}`}
                      data={ROLES}
                      value={p.role}
                      allowDeselect={false}
                      disabled={p.id === me}
                      onChange={(role) => role && change.mutate({ id: p.id, patch: { role: role as Role } })}
                      w={200}
                    />
                  </Table.Td>
                  <Table.Td>
                    <Badge color={p.active ? "green" : "gray"} variant="light">
                      {p.active ? "Active" : "Deactivated"}
                    </Badge>
                  </Table.Td>
                  <Table.Td>
                    {p.id !== me && (
                      <Menu position="bottom-end">
                        <Menu.Target>
                          <Button variant="subtle" size="xs" aria-label={`Actions for ${p.name}`}>
                            <IconDots size={16} aria-hidden />
                          </Button>
                        </Menu.Target>
                        <Menu.Dropdown>
                          <Menu.Item onClick={() => change.mutate({ id: p.id, patch: { active: !p.active } })}>
                            {p.active ? "Deactivate" : "Reactivate"}
                          </Menu.Item>
                          <Menu.Item color="red" onClick={() => confirmRemove(p)}>
                            Remove from organization
                          </Menu.Item>
                        </Menu.Dropdown>
                      </Menu>
                    )}
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
      <PendingInvitations />
      <InvitePerson opened={adding} onClose={() => setAdding(false)} />
      <modals.Host />
    </Stack>
  );
}

function InvitePerson({ opened, onClose }: { opened: boolean; onClose: () => void }) {
  const client = useQueryClient();
  const form = useForm({
    initialValues: { name: "", email: "", role: "agent" as Role },
    validate: {
      email: (v) => (/^\S+@\S+$/.test(v) ? null : "Enter their email address"),
    },
  });
  const { submit, error, limited } = useSubmit(form, async (values) => {
    const invited = await call(
      api.POST("/api/v1/invitations", {
        body: { email: values.email, role: values.role, ...(values.name.trim() ? { name: values.name } : {}) },
      }),
    );
    notifyDone(`Invitation mailed to ${invited.email}`);
    void client.invalidateQueries({ queryKey: ["invitations"] });
    form.reset();
    onClose();
  });
  return (
    <FormModal
      opened={opened}
      onClose={onClose}
      title="Invite a person"
      error={error}
      limited={limited}
      onSubmit={submit}
      submitLabel="Send invitation"
      submitting={form.submitting}
    >
      <TextInput label="Email" type="email" required data-autofocus {...form.getInputProps("email")} />
      <TextInput label="Name" description="How the mail greets them" {...form.getInputProps("name")} />
      <Select label="Role" data={ROLES} allowDeselect={false} {...form.getInputProps("role")} />
      <Text size="xs" c="dimmed">
        They get a link to join (valid 7 days) and choose their own password; someone who already has a Docket
        account joins by signing in. Requesters are customers: they see only the tickets they asked for.
      </Text>
    </FormModal>
  );
}

/** Invitations not yet accepted, with a way to withdraw them. */
function PendingInvitations() {
  const invitations = useQuery({
    queryKey: ["invitations"],
    queryFn: () => call(api.GET("/api/v1/invitations", { params: { query: { limit: 200 } } })),
  });
  const withdraw = useAction(
    (id: string) => call(api.DELETE("/api/v1/invitations/{id}", { params: { path: { id } } })),
    { done: "Invitation withdrawn", invalidate: [["invitations"]] },
  );
  if (invitations.isPending) return <Loading />;
  if (invitations.isError) return <Failed error={invitations.error} onRetry={() => void invitations.refetch()} />;
  const items = invitations.data.items;
  if (items.length === 0) return null;
  return (
    <Stack gap="xs">
      <Title order={2} size="h4">
        Invitations
      </Title>
      <Table.ScrollContainer minWidth={360}>
        <Table aria-label="Invitations">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Email</Table.Th>
              <Table.Th>Role</Table.Th>
              <Table.Th>Status</Table.Th>
              <Table.Th visibleFrom="sm">Expires</Table.Th>
              <Table.Th>
                <span className="sr-only">Actions</span>
              </Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {items.map((i) => (
              <Table.Tr key={i.id} data-testid="invitation-row">
                <Table.Td>{i.email}</Table.Td>
                <Table.Td>{ROLES.find((r) => r.value === i.role)?.label ?? i.role}</Table.Td>
                <Table.Td>
                  <Badge color={i.status === "pending" ? "blue" : "gray"} variant="light">
                    {i.status === "pending" ? "Pending" : "Expired"}
                  </Badge>
                </Table.Td>
                <Table.Td visibleFrom="sm">{dateTime(i.expires_at)}</Table.Td>
                <Table.Td>
                  <Button size="xs" variant="subtle" color="red" onClick={() => withdraw.mutate(i.id)}>
                    Withdraw
                  </Button>
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </Table.ScrollContainer>
    </Stack>
  );
}
