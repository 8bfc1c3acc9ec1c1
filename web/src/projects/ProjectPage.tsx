import { Anchor, Badge, Breadcrumbs, Button, Grid, Group, Paper, Stack, Table, Text, Title } from "@mantine/core";
import { IconLock, IconPlus } from "@tabler/icons-react";
import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import { Link, useNavigate, useParams } from "react-router";
import { api, call } from "../api/client";
import { atLeast, useSession } from "../auth/useSession";
import { Empty, Failed, Loading } from "../ui/states";
import { relative } from "../ui/time";
import { PriorityBadge, StatusBadge } from "../tickets/badges";
import { CreateTicket } from "../tickets/CreateTicket";
import { usePersonName } from "../tickets/reference";
import { dateRange, projectStatusInfo, type Project } from "./model";
import { Members } from "./Members";
import { ProjectForm } from "./ProjectForm";
import { ProgressBar } from "./Projects";
import { useMayManage, useProject } from "./useProject";

/** One project: its plan, progress, members and tickets. */
export function ProjectPage() {
  const { id = "" } = useParams();
  const project = useProject(id);
  if (project.isPending) return <Loading label="Loading project" />;
  if (project.isError) return <Failed error={project.error} onRetry={() => void project.refetch()} />;
  return <ProjectView project={project.data} />;
}

function ProjectView({ project: p }: { project: Project }) {
  const role = useSession()?.role;
  const staff = atLeast(role, "viewer");
  const canFile = atLeast(role, "agent");
  const mayManage = useMayManage(p.id);
  const nameOf = usePersonName();
  const [editing, setEditing] = useState(false);
  const [filing, setFiling] = useState(false);
  const status = projectStatusInfo(p.status);
  const dates = dateRange(p.start_date, p.target_date);
  return (
    <Stack>
      <Breadcrumbs>
        <Anchor component={Link} to="/projects">
          Projects
        </Anchor>
        <Text ff="monospace">{p.key}</Text>
      </Breadcrumbs>
      <Group justify="space-between" align="flex-start">
        <Stack gap={4} style={{ minWidth: 0 }}>
          <Title order={1} size="h2" className="pre-wrap">
            {p.name}
          </Title>
          <Group gap="xs">
            <Badge color={status.color} variant="light" data-testid="project-status">
              {status.label}
            </Badge>
            {p.visibility === "members" && (
              <Badge color="gray" variant="outline" leftSection={<IconLock size={12} aria-hidden />}>
                Members only
              </Badge>
            )}
            {p.archived_at && <Badge color="gray">Archived</Badge>}
          </Group>
        </Stack>
        <Group gap="xs">
          {canFile && !p.archived_at && (
            <Button leftSection={<IconPlus size={16} aria-hidden />} onClick={() => setFiling(true)}>
              New ticket
            </Button>
          )}
          {mayManage && (
            <Button variant="default" onClick={() => setEditing(true)}>
              Edit project
            </Button>
          )}
        </Group>
      </Group>
      <Grid gutter="lg">
        <Grid.Col span={{ base: 12, md: 8 }}>
          <Stack>
            <Paper withBorder p="md">
              <Stack gap="xs">
                <Group gap="xl">
                  <Fact label="Lead">{p.lead_id ? nameOf(p.lead_id) : "Nobody yet"}</Fact>
                  <Fact label="Dates">{dates || "Not planned"}</Fact>
                </Group>
                <ProgressBar project={p} />
                {p.description && (
                  <Text size="sm" className="pre-wrap">
                    {p.description}
                  </Text>
                )}
              </Stack>
            </Paper>
            <ProjectTickets project={p} onFile={canFile && !p.archived_at ? () => setFiling(true) : undefined} />
          </Stack>
        </Grid.Col>
        <Grid.Col span={{ base: 12, md: 4 }}>{staff && <Members project={p} />}</Grid.Col>
      </Grid>
      {mayManage && <ProjectForm key={p.updated_at} opened={editing} onClose={() => setEditing(false)} project={p} />}
      <CreateTicket opened={filing} onClose={() => setFiling(false)} projectId={p.id} />
    </Stack>
  );
}

function Fact({ label, children }: { label: string; children: React.ReactNode }) {
  return (
    <div>
      <Text size="xs" c="dimmed">
        {label}
      </Text>
      <Text size="sm">{children}</Text>
    </div>
  );
}

/** The project's newest tickets, and the way to all of them. */
function ProjectTickets({ project: p, onFile }: { project: Project; onFile?: () => void }) {
  const navigate = useNavigate();
  const tickets = useQuery({
    queryKey: ["tickets", "project", p.id],
    queryFn: () => call(api.GET("/api/v1/tickets", { params: { query: { project_id: p.id, limit: 25 } } })),
  });
  return (
    <Stack component="section" aria-labelledby="project-tickets" gap="xs">
      <Group justify="space-between">
        <Title order={2} size="h4" id="project-tickets">
          Tickets
        </Title>
        <Anchor component={Link} to={`/tickets?project_id=${p.id}`} size="sm">
          All of this project's tickets
        </Anchor>
      </Group>
      {tickets.isPending ? (
        <Loading label="Loading tickets" />
      ) : tickets.isError ? (
        <Failed error={tickets.error} onRetry={() => void tickets.refetch()} />
      ) : tickets.data.items.length === 0 ? (
        <Empty
          title="No tickets in this project yet"
          action={
            onFile && (
              <Button variant="light" onClick={onFile}>
                File the first ticket
              </Button>
            )
          }
        />
      ) : (
        <Table.ScrollContainer minWidth={320}>
          <Table highlightOnHover aria-label={`Tickets of ${p.name}`}>
            <Table.Tbody>
              {tickets.data.items.map((t) => (
                <Table.Tr key={t.id} className="ticket-row" onClick={() => navigate(`/tickets/${t.key}`)}>
                  <Table.Td ff="monospace">
                    <Anchor component={Link} to={`/tickets/${t.key}`} size="sm" onClick={(e) => e.stopPropagation()}>
                      {t.key}
                    </Anchor>
                  </Table.Td>
                  <Table.Td>
                    <Text size="sm" lineClamp={1}>
                      {t.title}
                    </Text>
                  </Table.Td>
                  <Table.Td>
                    <StatusBadge status={t.status} />
                  </Table.Td>
                  <Table.Td visibleFrom="sm">
                    <PriorityBadge priority={t.priority} />
                  </Table.Td>
                  <Table.Td visibleFrom="sm">
                    <Text size="sm" c="dimmed">
                      {relative(t.updated_at)}
                    </Text>
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
    </Stack>
  );
}
