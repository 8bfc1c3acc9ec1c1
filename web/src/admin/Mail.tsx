import {
  Alert,
  Badge,
  Button,
  Checkbox,
  Code,
  CopyButton,
  Group,
  NumberInput,
  Paper,
  PasswordInput,
  Select,
  Stack,
  Switch,
  Table,
  Tabs,
  Text,
  TextInput,
  Title,
} from "@mantine/core";
import { useForm } from "@mantine/form";
import { useInfiniteQuery, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { Link } from "react-router";
import { api, call } from "../api/client";
import type { components } from "../api/schema";
import { notifyDone, useSubmit } from "../ui/forms";
import { Empty, Failed, Loading, Paged } from "../ui/states";
import { dateTime } from "../ui/time";
import { useAction } from "../ui/useAction";
import { useProjects } from "../tickets/reference";
import { modals } from "./confirm";

type Settings = components["schemas"]["MailSettings"];
type MailStatus = components["schemas"]["MailStatus"];
type Outcome = components["schemas"]["IngestOutcomeKind"];

/** The organisation's mail: how mail comes in, and what went out and came in. */
export function Mail() {
  return (
    <Stack>
      <Title order={1} size="h2">
        Mail
      </Title>
      <Tabs defaultValue="settings" keepMounted={false}>
        <Tabs.List>
          <Tabs.Tab value="settings">Settings</Tabs.Tab>
          <Tabs.Tab value="sent">Sent mail</Tabs.Tab>
          <Tabs.Tab value="received">Received mail</Tabs.Tab>
          <Tabs.Tab value="bounces">Bounces</Tabs.Tab>
        </Tabs.List>
        <Tabs.Panel value="settings" pt="md">
          <MailSettings />
        </Tabs.Panel>
        <Tabs.Panel value="sent" pt="md">
          <SentMail />
        </Tabs.Panel>
        <Tabs.Panel value="received" pt="md">
          <ReceivedMail />
        </Tabs.Panel>
        <Tabs.Panel value="bounces" pt="md">
          <Bounces />
        </Tabs.Panel>
      </Tabs>
    </Stack>
  );
}

function MailSettings() {
  const client = useQueryClient();
  const settings = useQuery({ queryKey: ["mail-settings"], queryFn: () => call(api.GET("/api/v1/mail/settings")) });
  const projects = useProjects();
  const rotate = useAction(() => call(api.POST("/api/v1/mail/settings/rotate-inbound-token")), {
    done: "New inbound address made; the old one no longer works",
    invalidate: [["mail-settings"]],
  });
  const form = useForm({
    initialValues: {
      acknowledge: false,
      inbound_project_id: "" as string,
      imap_enabled: false,
      host: "",
      port: 993 as number | string,
      tls: true,
      allow_unencrypted: false,
      username: "",
      password: "",
      folder: "INBOX",
      authserv_id: "",
    },
    validate: {
      host: (v, all) => (!all.imap_enabled || v.trim() ? null : "Enter the mail server's host name"),
      username: (v, all) => (!all.imap_enabled || v.trim() ? null : "Enter the mailbox user"),
      port: (v, all) => (!all.imap_enabled || (Number(v) >= 1 && Number(v) <= 65535) ? null : "1 to 65535"),
    },
  });
  const { setValues, resetDirty } = form;
  useEffect(() => {
    const s = settings.data;
    if (!s) return;
    const values = {
      acknowledge: s.acknowledge,
      inbound_project_id: s.inbound_project_id ?? "",
      imap_enabled: s.imap !== null && s.imap !== undefined,
      host: s.imap?.host ?? "",
      port: s.imap?.port ?? 993,
      tls: s.imap?.tls ?? true,
      allow_unencrypted: s.imap?.allow_unencrypted ?? false,
      username: s.imap?.username ?? "",
      password: "",
      folder: s.imap?.folder ?? "INBOX",
      authserv_id: s.imap?.authserv_id ?? "",
    };
    setValues(values);
    resetDirty(values);
  }, [settings.data, setValues, resetDirty]);

  const { submit, error } = useSubmit(form, async (v) => {
    const saved = await call(
      api.PUT("/api/v1/mail/settings", {
        body: {
          acknowledge: v.acknowledge,
          inbound_project_id: v.inbound_project_id || null,
          imap: v.imap_enabled
            ? {
                host: v.host.trim(),
                port: Number(v.port),
                tls: v.tls,
                allow_unencrypted: !v.tls && v.allow_unencrypted,
                username: v.username.trim(),
                folder: v.folder.trim() || "INBOX",
                authserv_id: v.authserv_id.trim() || null,
                ...(v.password ? { password: v.password } : {}),
              }
            : null,
        },
      }),
    );
    client.setQueryData(["mail-settings"], saved);
    notifyDone("Mail settings saved");
  });

  if (settings.isPending) return <Loading />;
  if (settings.isError) return <Failed error={settings.error} onRetry={() => void settings.refetch()} />;
  const s: Settings = settings.data;
  const address = `${window.location.origin}${s.inbound_path}`;
  return (
    <Stack maw={640}>
      <Paper withBorder p="md">
        <Stack>
          <Title order={2} size="h4">
            Inbound address
          </Title>
          <Text size="sm">
            Have your mail server deliver raw messages to this address (an HTTP POST of <Code>message/rfc822</Code>), or
            pipe them to <Code>docket admin ingest-email --org …</Code>. Keep it secret: whoever knows it can file
            tickets.
          </Text>
          <Group gap="xs" wrap="nowrap">
            <Code style={{ overflowWrap: "anywhere" }} data-testid="inbound-address">
              {address}
            </Code>
            <CopyButton value={address}>
              {({ copied, copy }) => (
                <Button size="xs" variant="light" onClick={copy} style={{ flexShrink: 0 }}>
                  {copied ? "Copied" : "Copy"}
                </Button>
              )}
            </CopyButton>
          </Group>
          <Button
            size="xs"
            color="red"
            variant="subtle"
            style={{ alignSelf: "flex-start" }}
            onClick={() =>
              modals.confirm({
                title: "Make a new inbound address?",
                body: "The current address stops working at once; update your mail server to the new one.",
                confirm: "Make a new address",
                onConfirm: () => rotate.mutate(undefined),
              })
            }
          >
            Make a new address
          </Button>
        </Stack>
      </Paper>
      <Paper withBorder p="md" component="form" onSubmit={submit} noValidate>
        <Stack>
          <Title order={2} size="h4">
            Handling
          </Title>
          {error && (
            <Alert color="red" role="alert">
              {error}
            </Alert>
          )}
          <Select
            label="Project for new mail"
            description="Empty: a project “Mail” (key MAIL) made on first use"
            clearable
            data={(projects.data ?? []).map((p) => ({ value: p.id, label: `${p.key} · ${p.name}` }))}
            value={form.values.inbound_project_id || null}
            onChange={(v) => form.setFieldValue("inbound_project_id", v ?? "")}
          />
          <Switch
            label="Acknowledge new tickets by mail"
            description="Only to senders whose mail is authenticated (see below), at most a few a day each; never to automatic mail"
            {...form.getInputProps("acknowledge", { type: "checkbox" })}
          />
          <Checkbox
            label="Fetch mail from an IMAP mailbox"
            {...form.getInputProps("imap_enabled", { type: "checkbox" })}
          />
          {form.values.imap_enabled && (
            <Stack gap="sm" pl="md">
              {s.imap?.last_error && (
                <Alert color="red" title="The last look into the mailbox failed">
                  {s.imap.last_error}
                </Alert>
              )}
              {s.imap?.last_checked_at && !s.imap.last_error && (
                <Text size="sm" c="dimmed">
                  Last checked {dateTime(s.imap.last_checked_at)}
                </Text>
              )}
              <Group grow>
                <TextInput label="Server" required {...form.getInputProps("host")} />
                <NumberInput label="Port" min={1} max={65535} required {...form.getInputProps("port")} />
              </Group>
              <Switch label="TLS (imaps)" {...form.getInputProps("tls", { type: "checkbox" })} />
              {!form.values.tls && (
                <Checkbox
                  color="red"
                  label="Allow signing in without encryption"
                  description="The password then travels in clear: only for a server on a network you trust"
                  {...form.getInputProps("allow_unencrypted", { type: "checkbox" })}
                />
              )}
              <TextInput label="User" required autoComplete="off" {...form.getInputProps("username")} />
              <PasswordInput
                label="Password"
                description={
                  s.imap?.password_set
                    ? "Stored encrypted; leave empty to keep it (a new server, port or TLS setting needs it again)"
                    : "Stored encrypted"
                }
                autoComplete="new-password"
                {...form.getInputProps("password")}
              />
              <TextInput label="Folder" {...form.getInputProps("folder")} />
              <TextInput
                label="Mail system that authenticates senders"
                description="The authserv-id in this mailbox's Authentication-Results headers (e.g. mx.google.com). Mail it says passed DMARC may copy people into a conversation and gets acknowledgements; other mail's copied-in addresses wait for an agent."
                placeholder="none: no mail from this mailbox counts as authenticated"
                {...form.getInputProps("authserv_id")}
              />
            </Stack>
          )}
          <Button type="submit" loading={form.submitting} style={{ alignSelf: "flex-end" }}>
            Save
          </Button>
        </Stack>
      </Paper>
      <modals.Host />
    </Stack>
  );
}

const STATUS_COLOR: Record<MailStatus, string> = {
  queued: "yellow",
  sending: "blue",
  sent: "green",
  failed: "red",
  not_sent: "gray",
};

function SentMail() {
  const [status, setStatus] = useState<MailStatus | null>(null);
  const log = useInfiniteQuery({
    queryKey: ["mail-log", status],
    initialPageParam: undefined as string | undefined,
    queryFn: ({ pageParam }) =>
      call(api.GET("/api/v1/mail/log", { params: { query: { status: status ?? undefined, cursor: pageParam } } })),
    getNextPageParam: (page) => page.next_cursor ?? undefined,
  });
  const items = log.data?.pages.flatMap((p) => p.items) ?? [];
  return (
    <Stack>
      <Select
        label="Status"
        placeholder="Any"
        clearable
        w={200}
        data={Object.keys(STATUS_COLOR).map((s) => ({ value: s, label: s.replace("_", " ") }))}
        value={status}
        onChange={(v) => setStatus(v as MailStatus | null)}
      />
      <Paged
        query={log}
        count={items.length}
        empty={<Empty title="No mail">Mail Docket sends for this organization shows here.</Empty>}
      >
        <Table.ScrollContainer minWidth={700}>
          <Table aria-label="Sent mail">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>To</Table.Th>
                <Table.Th>Subject</Table.Th>
                <Table.Th>Status</Table.Th>
                <Table.Th>Attempts</Table.Th>
                <Table.Th>Server's answer</Table.Th>
                <Table.Th>Queued</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {items.map((m) => (
                <Table.Tr key={m.id} data-testid="mail-row">
                  <Table.Td>{m.to}</Table.Td>
                  <Table.Td>
                    <Text size="sm">{m.subject}</Text>
                    <Text size="xs" c="dimmed">
                      {m.kind.replace("_", " ")}
                    </Text>
                  </Table.Td>
                  <Table.Td>
                    <Badge color={STATUS_COLOR[m.status]} variant="light" style={{ minWidth: "max-content" }}>
                      {m.status.replace("_", " ")}
                    </Badge>
                    {m.next_attempt_at && (
                      <Text size="xs" c="dimmed">
                        next try {dateTime(m.next_attempt_at)}
                      </Text>
                    )}
                  </Table.Td>
                  <Table.Td>{m.attempts}</Table.Td>
                  <Table.Td>
                    <Text size="xs" style={{ overflowWrap: "anywhere" }}>
                      {m.last_response ?? "—"}
                    </Text>
                  </Table.Td>
                  <Table.Td>{dateTime(m.created_at)}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      </Paged>
    </Stack>
  );
}

const OUTCOMES: Record<Outcome, { label: string; color: string }> = {
  ticket_created: { label: "New ticket", color: "green" },
  comment_added: { label: "Comment", color: "green" },
  duplicate: { label: "Duplicate", color: "gray" },
  suppressed: { label: "Automatic (ignored)", color: "yellow" },
  bounce: { label: "Bounce", color: "orange" },
  rejected: { label: "Refused", color: "red" },
  failed: { label: "Failed (error)", color: "red" },
};

function ReceivedMail() {
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  const log = useInfiniteQuery({
    queryKey: ["ingest-log", outcome],
    initialPageParam: undefined as string | undefined,
    queryFn: ({ pageParam }) =>
      call(
        api.GET("/api/v1/mail/ingest-log", {
          params: { query: { outcome: outcome ?? undefined, cursor: pageParam } },
        }),
      ),
    getNextPageParam: (page) => page.next_cursor ?? undefined,
  });
  const items = log.data?.pages.flatMap((p) => p.items) ?? [];
  return (
    <Stack>
      <Select
        label="Outcome"
        placeholder="Any"
        clearable
        w={220}
        data={Object.entries(OUTCOMES).map(([value, o]) => ({ value, label: o.label }))}
        value={outcome}
        onChange={(v) => setOutcome(v as Outcome | null)}
      />
      <Paged
        query={log}
        count={items.length}
        empty={<Empty title="No mail received">Messages sent to the inbound address or fetched by IMAP show here.</Empty>}
      >
        <Table.ScrollContainer minWidth={700}>
          <Table aria-label="Received mail">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>From</Table.Th>
                <Table.Th>Subject</Table.Th>
                <Table.Th>Outcome</Table.Th>
                <Table.Th>Why</Table.Th>
                <Table.Th>Received</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {items.map((m) => (
                <Table.Tr key={m.id} data-testid="ingest-row">
                  <Table.Td>{m.sender ?? "—"}</Table.Td>
                  <Table.Td>
                    <Text size="sm">{m.subject ?? "—"}</Text>
                    <Text size="xs" c="dimmed">
                      via {m.route}
                    </Text>
                  </Table.Td>
                  <Table.Td>
                    <Badge color={OUTCOMES[m.outcome].color} variant="light" style={{ minWidth: "max-content" }}>
                      {OUTCOMES[m.outcome].label}
                    </Badge>
                    {m.ticket_id && (
                      <Text component={Link} to={`/tickets/${m.ticket_id}`} size="xs" c="blue.9" display="block">
                        open ticket
                      </Text>
                    )}
                  </Table.Td>
                  <Table.Td>
                    <Text size="xs">{m.reason ?? "—"}</Text>
                  </Table.Td>
                  <Table.Td>{dateTime(m.created_at)}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      </Paged>
    </Stack>
  );
}

/** Addresses Docket sends nothing to because their mail bounced, and clearing a mark. */
function Bounces() {
  const bounces = useInfiniteQuery({
    queryKey: ["mail-bounces"],
    initialPageParam: undefined as string | undefined,
    queryFn: ({ pageParam }) => call(api.GET("/api/v1/mail/bounces", { params: { query: { cursor: pageParam } } })),
    getNextPageParam: (page) => page.next_cursor ?? undefined,
  });
  const clear = useAction(
    (address: string) =>
      call(api.DELETE("/api/v1/mail/bounces/{address}", { params: { path: { address } } })),
    { done: "Cleared: Docket mails this address again", invalidate: [["mail-bounces"]] },
  );
  const items = bounces.data?.pages.flatMap((p) => p.items) ?? [];
  return (
    <Stack>
      <Text size="sm" c="dimmed" maw={640}>
        A delivery report that came back for a mail Docket sent marks its recipient as bouncing, and Docket sends them
        nothing more. Reports are believed only when they come back to the signed return address of that very mail.
        Clear a mark once the address works again.
      </Text>
      <Paged
        query={bounces}
        count={items.length}
        empty={<Empty title="No bouncing addresses">Addresses whose mail bounced show here.</Empty>}
      >
        <Table.ScrollContainer minWidth={600}>
          <Table aria-label="Bouncing addresses">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Address</Table.Th>
                <Table.Th>Why</Table.Th>
                <Table.Th>Since</Table.Th>
                <Table.Th />
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {items.map((b) => (
                <Table.Tr key={b.address} data-testid="bounce-row">
                  <Table.Td>{b.address}</Table.Td>
                  <Table.Td>
                    <Text size="xs">{b.reason ?? "—"}</Text>
                  </Table.Td>
                  <Table.Td>{dateTime(b.bounced_at)}</Table.Td>
                  <Table.Td>
                    <Button
                      size="xs"
                      variant="light"
                      loading={clear.isPending && clear.variables === b.address}
                      onClick={() => clear.mutate(b.address)}
                      aria-label={`Clear the bounce mark of ${b.address}`}
                    >
                      Clear
                    </Button>
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      </Paged>
    </Stack>
  );
}
