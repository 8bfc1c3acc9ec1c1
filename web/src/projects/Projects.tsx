import { Badge, Button, Group, Progress, Select, Stack, Switch, Table, Text, Title, Tooltip } from "@mantine/core";
import { IconLock, IconPlus } from "@tabler/icons-react";
import { useState } from "react";
import { Link, useNavigate, useSearchParams } from "react-router";
import { api, call } from "../api/client";
import { atLeast, useSession } from "../auth/useSession";
import { modals } from "../admin/confirm";
import { useAction } from "../ui/useAction";
import { Empty, Failed, Loading } from "../ui/states";
import { usePersonName, useProjects } from "../tickets/reference";
import { PROJECT_STATUSES, dateRange, percentDone, projectStatusInfo, type Project } from "./model";
import { ProjectForm } from "./ProjectForm";

/** Projects with their plan and progress, filtered by status. */
export function Projects() {
  const canManage = atLeast(useSession()?.role, "manager");
  const [params, setParams] = useSearchParams();
  const status = params.get("status");
  const [archived, setArchived] = useState(false);
  const projects = useProjects(archived);
  const [creating, setCreating] = useState(false);
  const navigate = useNavigate();
  const nameOf = usePersonName();
  const archive = useAction(
    (id: string) => call(api.DELETE("/api/v1/projects/{id}", { params: { path: { id } } })),
    { done: "Project archived", invalidate: [["projects"]] },
  );
  const restore = useAction(
    (id: string) => call(api.PATCH("/api/v1/projects/{id}", { params: { path: { id } }, body: { archived: false } })),
    { done: "Project restored", invalidate: [["projects"]] },
  );
  const shown = (projects.data ?? []).filter((p) => !status || p.status === status);

  return (
    <Stack>
      <Group justify="space-between">
        <Title order={1} size="h2">
          Projects
        </Title>
        <Group>
          <Select
            aria-label="Status"
            placeholder="Any status"
            data={PROJECT_STATUSES}
            value={status}
            onChange={(v) => setParams(v ? { status: v } : {})}
            clearable
            w={160}
          />
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
      ) : shown.length === 0 ? (
        <Empty
          title={status ? `No ${projectStatusInfo(status as Project["status"]).label.toLowerCase()} projects` : "No projects yet"}
          action={
            status ? (
              <Button variant="light" onClick={() => setParams({})}>
                Show every project
              </Button>
            ) : canManage ? (
              <Button variant="light" onClick={() => setCreating(true)}>
                Create a project
              </Button>
            ) : undefined
          }
        >
          {status ? undefined : canManage ? "Tickets are filed into projects: make the first one." : "Ask a manager to create one."}
        </Empty>
      ) : (
        <Table.ScrollContainer minWidth={360}>
          <Table aria-label="Projects" highlightOnHover>
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Key</Table.Th>
                <Table.Th>Name</Table.Th>
                <Table.Th>Status</Table.Th>
                <Table.Th visibleFrom="sm">Lead</Table.Th>
                <Table.Th visibleFrom="md">Dates</Table.Th>
                <Table.Th>Progress</Table.Th>
                <Table.Th>
                  <span className="sr-only">Actions</span>
                </Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {shown.map((p) => (
                <Table.Tr key={p.id} data-testid="project-row">
                  <Table.Td ff="monospace">{p.key}</Table.Td>
                  <Table.Td>
                    <Group gap="xs" wrap="nowrap">
                      <Text component={Link} to={`/projects/${p.id}`} c="blue.9" size="sm">
                        {p.name}
                      </Text>
                      {p.visibility === "members" && (
                        <Tooltip label="Only its members see it">
                          <IconLock size={14} aria-label="Private" role="img" />
                        </Tooltip>
                      )}
                      {p.archived_at && <Badge color="gray">Archived</Badge>}
                    </Group>
                  </Table.Td>
                  <Table.Td>
                    <Badge color={projectStatusInfo(p.status).color} variant="light" data-testid="project-status">
                      {projectStatusInfo(p.status).label}
                    </Badge>
                  </Table.Td>
                  <Table.Td visibleFrom="sm">
                    <Text size="sm">{p.lead_id ? nameOf(p.lead_id) : "—"}</Text>
                  </Table.Td>
                  <Table.Td visibleFrom="md">
                    <Text size="sm" c="dimmed">
                      {dateRange(p.start_date, p.target_date) || "—"}
                    </Text>
                  </Table.Td>
                  <Table.Td miw={120}>
                    <ProgressBar project={p} />
                  </Table.Td>
                  <Table.Td>
                    <Group gap={4} wrap="nowrap" justify="flex-end">
                      <Button size="xs" variant="subtle" onClick={() => navigate(`/tickets?project_id=${p.id}`)}>
                        Tickets
                      </Button>
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
                    </Group>
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
      <ProjectForm opened={creating} onClose={() => setCreating(false)} onCreated={(p) => navigate(`/projects/${p.id}`)} />
      <modals.Host />
    </Stack>
  );
}

/** Done of total, as a bar with its numbers. */
export function ProgressBar({ project: p }: { project: Project }) {
  const pct = percentDone(p.progress);
  return (
    <Stack gap={2}>
      <Progress
        value={pct}
        size="sm"
        aria-label={`${p.key}: ${p.progress.done} of ${p.progress.total} tickets done`}
      />
      <Text size="xs" c="dimmed" data-testid="project-progress">
        {p.progress.done}/{p.progress.total} done
      </Text>
    </Stack>
  );
}
