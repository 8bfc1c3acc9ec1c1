import "@mantine/charts/styles.css";
import { BarChart, DonutChart } from "@mantine/charts";
import { Button, Group, List, Paper, SegmentedControl, Select, SimpleGrid, Stack, Table, Text, Title } from "@mantine/core";
import { IconDownload } from "@tabler/icons-react";
import { useQuery } from "@tanstack/react-query";
import { useMemo, useState } from "react";
import { api, call } from "../api/client";
import type { components } from "../api/schema";
import { priorityInfo, statusInfo } from "../tickets/model";
import { usePersonName, useProjects } from "../tickets/reference";
import { notifyError } from "../ui/forms";
import { Failed, Loading } from "../ui/states";

type Which = "summary" | "throughput" | "sla";
type Query = { project_id?: string; from: string; to: string; interval?: "day" | "week" };
type SlaRow = components["schemas"]["SlaRow"];
// The reports also answer text/csv; as queried here they are JSON.
type SummaryReport = components["schemas"]["SummaryReport"];
type ThroughputReport = components["schemas"]["ThroughputReport"];
type SlaReport = components["schemas"]["SlaReport"];

const PERIODS = [
  { value: "7", label: "7 days" },
  { value: "30", label: "30 days" },
  { value: "90", label: "90 days" },
  { value: "365", label: "A year" },
];

const CLOCKS: Record<SlaRow["clock"], string> = {
  first_response: "First response",
  next_response: "Next response",
  resolution: "Resolution",
};

/** Downloads a report as CSV (the API streams it when asked for text/csv). */
async function download(which: Which, query: Query) {
  const path = `/api/v1/reports/${which}` as const;
  try {
    const { data, response } = await api.GET(path, {
      params: { query },
      headers: { Accept: "text/csv" },
      parseAs: "blob",
    });
    if (!response.ok || !(data instanceof Blob)) throw new Error(`The download failed (${response.status})`);
    const url = URL.createObjectURL(data);
    const a = document.createElement("a");
    a.href = url;
    a.download = `docket-${which}-${query.from.slice(0, 10)}-${query.to.slice(0, 10)}.csv`;
    a.click();
    URL.revokeObjectURL(url);
  } catch (err) {
    notifyError(err, "The CSV could not be downloaded");
  }
}

function Csv({ which, query }: { which: Which; query: Query }) {
  return (
    <Button
      size="xs"
      variant="default"
      leftSection={<IconDownload size={14} aria-hidden />}
      onClick={() => void download(which, query)}
    >
      CSV
    </Button>
  );
}

/** Reports for managers: open work, throughput and SLA attainment, with CSV downloads. */
export function Reports() {
  const [days, setDays] = useState("30");
  const [project, setProject] = useState<string | null>(null);
  const [interval, setInterval] = useState<"day" | "week">("day");
  const projects = useProjects();
  const query = useMemo<Query>(() => {
    const to = new Date();
    const from = new Date(to.getTime() - Number(days) * 86_400_000);
    return { from: from.toISOString(), to: to.toISOString(), ...(project ? { project_id: project } : {}) };
  }, [days, project]);
  return (
    <Stack>
      <Group justify="space-between" align="flex-end">
        <Title order={1} size="h2">
          Reports
        </Title>
        <Group align="flex-end">
          <Select
            label="Project"
            placeholder="All projects"
            clearable
            data={(projects.data ?? []).map((p) => ({ value: p.id, label: `${p.key} · ${p.name}` }))}
            value={project}
            onChange={setProject}
          />
          <SegmentedControl aria-label="Period" data={PERIODS} value={days} onChange={setDays} />
        </Group>
      </Group>
      <Summary query={query} />
      <Throughput query={query} interval={interval} setInterval={setInterval} />
      <SlaAttainment query={query} />
    </Stack>
  );
}

function Section({ title, which, query, children }: { title: string; which: Which; query: Query; children: React.ReactNode }) {
  return (
    <Paper withBorder p="md" component="section" aria-label={title}>
      <Stack>
        <Group justify="space-between">
          <Title order={2} size="h4">
            {title}
          </Title>
          <Csv which={which} query={query} />
        </Group>
        {children}
      </Stack>
    </Paper>
  );
}

function Summary({ query }: { query: Query }) {
  const nameOf = usePersonName();
  const summary = useQuery({
    queryKey: ["reports", "summary", query],
    queryFn: () => call(api.GET("/api/v1/reports/summary", { params: { query } })) as Promise<SummaryReport>,
  });
  return (
    <Section title="Open work" which="summary" query={query}>
      {summary.isPending ? (
        <Loading label="Loading the summary" />
      ) : summary.isError ? (
        <Failed error={summary.error} onRetry={() => void summary.refetch()} />
      ) : (
        <>
          <SimpleGrid cols={{ base: 1, sm: 3 }}>
            <Stat label="Open now" value={summary.data.open} testId="stat-open" />
            <Stat label="Created in the period" value={summary.data.created} testId="stat-created" />
            <Stat label="Resolved in the period" value={summary.data.resolved} testId="stat-resolved" />
          </SimpleGrid>
          <SimpleGrid cols={{ base: 1, md: 3 }}>
            <div>
              <Text size="sm" fw={500} mb="xs">
                By status
              </Text>
              <Group align="center" wrap="nowrap">
                {/* The chart draws the list beside it, which is what assistive technology reads. */}
                <div inert>
                  <DonutChart
                    size={120}
                    thickness={20}
                    data={summary.data.open_by_status.map((s) => ({
                      name: statusInfo(s.status).label,
                      value: s.count,
                      color: `${statusInfo(s.status).color}.6`,
                    }))}
                  />
                </div>
                <List size="sm" listStyleType="none">
                  {summary.data.open_by_status.map((s) => (
                    <List.Item key={s.status}>
                      {statusInfo(s.status).label}: {s.count}
                    </List.Item>
                  ))}
                </List>
              </Group>
            </div>
            <div>
              <Text size="sm" fw={500} mb="xs">
                By priority
              </Text>
              <BarChart
                h={160}
                dataKey="priority"
                data={summary.data.open_by_priority.map((p) => ({ priority: priorityInfo(p.priority).label, open: p.count }))}
                series={[{ name: "open", color: "blue.6", label: "Open" }]}
              />
            </div>
            <Table>
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Assignee</Table.Th>
                  <Table.Th>Open</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {summary.data.open_by_assignee.slice(0, 10).map((a) => (
                  <Table.Tr key={a.assignee_id ?? "nobody"}>
                    <Table.Td>{a.assignee_id ? nameOf(a.assignee_id) : "Unassigned"}</Table.Td>
                    <Table.Td>{a.count}</Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </SimpleGrid>
        </>
      )}
    </Section>
  );
}

function Stat({ label, value, testId }: { label: string; value: number; testId: string }) {
  return (
    <Paper withBorder p="sm">
      <Text size="xs" c="dimmed">
        {label}
      </Text>
      <Text size="xl" fw={700} data-testid={testId}>
        {value.toLocaleString()}
      </Text>
    </Paper>
  );
}

function Throughput({
  query,
  interval,
  setInterval,
}: {
  query: Query;
  interval: "day" | "week";
  setInterval: (v: "day" | "week") => void;
}) {
  const withInterval = { ...query, interval };
  const throughput = useQuery({
    queryKey: ["reports", "throughput", withInterval],
    queryFn: () =>
      call(api.GET("/api/v1/reports/throughput", { params: { query: withInterval } })) as Promise<ThroughputReport>,
  });
  return (
    <Section title="Throughput" which="throughput" query={withInterval}>
      <SegmentedControl
        aria-label="Buckets"
        w="fit-content"
        size="xs"
        data={[
          { value: "day", label: "Per day" },
          { value: "week", label: "Per week" },
        ]}
        value={interval}
        onChange={(v) => setInterval(v as "day" | "week")}
      />
      {throughput.isPending ? (
        <Loading label="Loading throughput" />
      ) : throughput.isError ? (
        <Failed error={throughput.error} onRetry={() => void throughput.refetch()} />
      ) : (
        <BarChart
          h={220}
          dataKey="start"
          data={throughput.data.buckets}
          withLegend
          series={[
            { name: "created", color: "blue.6", label: "Created" },
            { name: "resolved", color: "teal.6", label: "Resolved" },
          ]}
        />
      )}
    </Section>
  );
}

function SlaAttainment({ query }: { query: Query }) {
  const sla = useQuery({
    queryKey: ["reports", "sla", query],
    queryFn: () => call(api.GET("/api/v1/reports/sla", { params: { query } })) as Promise<SlaReport>,
  });
  return (
    <Section title="SLA attainment" which="sla" query={query}>
      {sla.isPending ? (
        <Loading label="Loading SLA attainment" />
      ) : sla.isError ? (
        <Failed error={sla.error} onRetry={() => void sla.refetch()} />
      ) : sla.data.rows.length === 0 ? (
        <Text c="dimmed">No SLA clocks started in this period.</Text>
      ) : (
        <Table.ScrollContainer minWidth={720}>
          <Table data-testid="sla-report">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Priority</Table.Th>
                <Table.Th>Clock</Table.Th>
                <Table.Th>Clocks</Table.Th>
                <Table.Th>Met</Table.Th>
                <Table.Th>Breached</Table.Th>
                <Table.Th>Running</Table.Th>
                <Table.Th>Attainment</Table.Th>
                <Table.Th>Median / p90 (business min)</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {sla.data.rows.map((r) => (
                <Table.Tr key={`${r.policy_id}-${r.clock}`}>
                  <Table.Td>{priorityInfo(r.priority).label}</Table.Td>
                  <Table.Td>{CLOCKS[r.clock]}</Table.Td>
                  <Table.Td>{r.clocks}</Table.Td>
                  <Table.Td>{r.met}</Table.Td>
                  <Table.Td>{r.breached}</Table.Td>
                  <Table.Td>{r.running}</Table.Td>
                  <Table.Td>{r.attainment == null ? "—" : `${r.attainment}%`}</Table.Td>
                  <Table.Td>
                    {r.p50_minutes ?? "—"} / {r.p90_minutes ?? "—"}
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
    </Section>
  );
}
