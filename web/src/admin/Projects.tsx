import { Badge, Button, Group, Stack, Switch, Table, Text, TextInput, Textarea, Title } from "@mantine/core";
import { useForm } from "@mantine/form";
import { IconPlus } from "@tabler/icons-react";
import { useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { Link } from "react-router";
import { api, call, idempotencyKey } from "../api/client";
import { atLeast, useSession } from "../auth/useSession";
import { FormModal } from "../ui/FormModal";
import { notifyDone, useSubmit } from "../ui/forms";
import { useAction } from "../ui/useAction";
import { Empty, Failed, Loading } from "../ui/states";
import { useProjects } from "../tickets/reference";
import { modals } from "./confirm";

export function Projects() {
  const canManage = atLeast(useSession()?.role, "manager");
  const [archived, setArchived] = useState(false);
  const projects = useProjects(archived);
  const [creating, setCreating] = useState(false);
  const archive = useAction(
    (id: string) => call(api.DELETE("/api/v1/projects/{id}", { params: { path: { id } } })),
    { done: "Project archived", invalidate: [["projects"]] },
  );
  const restore = useAction(
    (id: string) => call(api.PATCH("/api/v1/projects/{id}", { params: { path: { id } }, body: { archived: false } })),
    { done: "Project restored", invalidate: [["projects"]] },
  );

  return (
    <Stack>
      <Group justify="space-between">
        <Title order={1} size="h2">
          Projects
        </Title>
        <Group>
          <Switch label="Show archived" checked={archived} onChange={(e) => setArchived(e.currentTarget.checked)} />
          {canManage && (
            <Button leftSection={<IconPlus size={16} aria-hidden />} onClick={() => setCreating(true)}>
              New project
            </Button>
          )}
        </Group>
      </Group>
      {projects.isPending ? (
        <Loading />
      ) : projects.isError ? (
        <Failed error={projects.error} onRetry={() => void projects.refetch()} />
      ) : projects.data.length === 0 ? (
        <Empty title="No projects yet">{canManage ? "Create one to start filing tickets." : undefined}</Empty>
      ) : (
        <Table.ScrollContainer minWidth={360}>
          <Table aria-label="Projects">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Key</Table.Th>
                <Table.Th>Name</Table.Th>
                <Table.Th visibleFrom="sm">Description</Table.Th>
                <Table.Th>
                  <span className="sr-only">Actions</span>
                </Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {projects.data.map((p) => (
                <Table.Tr key={p.id} data-testid="project-row">
                  <Table.Td ff="monospace">{p.key}</Table.Td>
                  <Table.Td>
                    <Group gap="xs">
                      <Text component={Link} to={`/tickets?project_id=${p.id}`} c="blue.9" size="sm">
                        {p.name}
                      </Text>
                      {p.archived_at && <Badge color="gray">Archived</Badge>}
                    </Group>
                  </Table.Td>
                  <Table.Td visibleFrom="sm">
                    <Text size="sm" c="dimmed" lineClamp={1}>
                      {p.description}
                    </Text>
                  </Table.Td>
                  <Table.Td>
                    {canManage &&
                      (p.archived_at ? (
                        <Button size="xs" variant="subtle" onClick={() => restore.mutate(p.id)}>
                          Restore
                        </Button>
                      ) : (
                        <Button
                          size="xs"
                          variant="subtle"
                          color="red"
                          onClick={() =>
                            modals.confirm({
                              title: `Archive ${p.name}?`,
                              body: "Its tickets stay readable; nobody can file new ones in it.",
                              confirm: "Archive",
                              onConfirm: () => archive.mutate(p.id),
                            })
                          }
                        >
                          Archive
                        </Button>
                      ))}
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
      <CreateProject opened={creating} onClose={() => setCreating(false)} />
      <modals.Host />
    </Stack>
  );
}

function CreateProject({ opened, onClose }: { opened: boolean; onClose: () => void }) {
  const client = useQueryClient();
  const form = useForm({
    initialValues: { name: "", key: "", description: "" },
    validate: {
      name: (v) => (v.trim() ? null : "Name the project"),
      key: (v) => (/^[A-Z]{2,10}$/.test(v) ? null : "2 to 10 capital letters, like OPS"),
    },
  });
  const { submit, error } = useSubmit(form, async (v) => {
    const p = await call(
      api.POST("/api/v1/projects", {
        body: { name: v.name, key: v.key, description: v.description || undefined },
        params: { header: { "Idempotency-Key": idempotencyKey() } },
      }),
    );
    notifyDone(`Created ${p.key}`);
    void client.invalidateQueries({ queryKey: ["projects"] });
    form.reset();
    onClose();
  });
  return (
    <FormModal
      opened={opened}
      onClose={onClose}
      title="New project"
      error={error}
      onSubmit={submit}
      submitLabel="Create project"
      submitting={form.submitting}
    >
      <TextInput label="Name" required data-autofocus {...form.getInputProps("name")} />
      <TextInput
        label="Key"
        description="Prefix of its ticket keys, like OPS-42"
        required
        {...form.getInputProps("key")}
        onChange={(e) => form.setFieldValue("key", e.currentTarget.value.toUpperCase())}
      />
      <Textarea label="Description" autosize minRows={2} {...form.getInputProps("description")} />
    </FormModal>
  );
}
