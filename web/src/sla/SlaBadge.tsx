import { Badge, Group, List, Stack, Text, Tooltip } from "@mantine/core";
import { useInterval } from "@mantine/hooks";
import { useQuery } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { api, call } from "../api/client";
import type { components } from "../api/schema";
import { dateTime } from "../ui/time";

type TicketSla = components["schemas"]["TicketSla"];
type SlaClock = components["schemas"]["SlaClock"];
type ClockName = keyof TicketSla;

const NAMES: Record<ClockName, { short: string; long: string }> = {
  first_response: { short: "First reply", long: "First response" },
  next_response: { short: "Next reply", long: "Next response" },
  resolution: { short: "Resolve", long: "Resolution" },
};

/** The clock that matters most now: a breached one, else the running one due first. */
export function mostUrgent(sla: TicketSla): [ClockName, SlaClock] | null {
  const clocks = (Object.keys(NAMES) as ClockName[])
    .map((name) => [name, sla[name]] as const)
    .filter((c): c is [ClockName, SlaClock] => !!c[1]);
  const breached = clocks.find(([, c]) => c.state === "breached" && !c.met_at);
  if (breached) return breached;
  const running = clocks
    .filter(([, c]) => c.state === "running" && c.due_at)
    .sort(([, a], [, b]) => (a.due_at ?? "").localeCompare(b.due_at ?? ""));
  return running[0] ?? clocks.find(([, c]) => c.state === "paused") ?? clocks[0] ?? null;
}

/** Calendar names by id, for explanations (staff read calendars). */
export function useCalendarNames(enabled: boolean): Map<string, string> | undefined {
  const q = useQuery({
    queryKey: ["calendars"],
    queryFn: () => call(api.GET("/api/v1/calendars")),
    enabled,
  });
  return q.data ? new Map(q.data.items.map((c) => [c.id, `${c.name} (${c.time_zone})`])) : undefined;
}

/** "2h 05m" until (or, negative, since) `iso`. */
export function countdown(iso: string, now: number): string {
  const minutes = Math.round((new Date(iso).getTime() - now) / 60000);
  const abs = Math.abs(minutes);
  const days = Math.floor(abs / 1440);
  const hours = Math.floor((abs % 1440) / 60);
  const mins = abs % 60;
  const text = days > 0 ? `${days}d ${hours}h` : hours > 0 ? `${hours}h ${String(mins).padStart(2, "0")}m` : `${mins}m`;
  return minutes < 0 ? `${text} over` : text;
}

function useNow(): number {
  const [now, setNow] = useState(() => Date.now());
  const tick = useInterval(() => setNow(Date.now()), 30_000);
  useEffect(() => {
    tick.start();
    return tick.stop;
  }, [tick]);
  return now;
}

function color(clock: SlaClock, now: number): string {
  if (clock.state === "breached") return "red";
  if (clock.state === "met") return "green";
  if (clock.state === "paused") return "gray";
  return clock.warn_at && new Date(clock.warn_at).getTime() <= now ? "orange" : "blue";
}

function label(clock: SlaClock, now: number): string {
  switch (clock.state) {
    case "met":
      return "met";
    case "paused":
      return "paused";
    case "breached":
      return clock.met_at ? "late" : clock.due_at ? countdown(clock.due_at, now) : "breached";
    default:
      return clock.due_at ? countdown(clock.due_at, now) : "running";
  }
}

/** How the due time was computed: target, calendar, start and pauses. */
export function Explanation({ clock, calendars }: { clock: SlaClock; calendars?: Map<string, string> }) {
  const e = clock.explanation;
  const hours = e.target_minutes >= 60 ? `${(e.target_minutes / 60).toLocaleString()} h` : `${e.target_minutes} min`;
  const calendar = e.calendar_id ? (calendars?.get(e.calendar_id) ?? "a business calendar") : "around the clock (UTC)";
  return (
    <Stack gap={2}>
      <Text size="xs">
        Target {hours} of business time on {calendar}, from {dateTime(e.started_at)}; warns at {e.warning_percent}%.
      </Text>
      {e.pauses.length > 0 && (
        <>
          <Text size="xs">Paused while waiting on the customer:</Text>
          <List size="xs">
            {e.pauses.slice(-5).map((p) => (
              <List.Item key={p.from}>
                {dateTime(p.from)} – {p.to ? dateTime(p.to) : "now"}
              </List.Item>
            ))}
          </List>
        </>
      )}
      {clock.due_at && <Text size="xs">Due {dateTime(clock.due_at)}.</Text>}
      {clock.met_at && (
        <Text size="xs">
          Met {dateTime(clock.met_at)}
          {clock.business_minutes != null ? ` after ${clock.business_minutes} business minutes` : ""}.
        </Text>
      )}
    </Stack>
  );
}

/** One clock as a badge with a countdown; the explanation on hover or focus. */
export function ClockBadge({ name, clock, calendars }: { name: ClockName; clock: SlaClock; calendars?: Map<string, string> }) {
  const now = useNow();
  return (
    <Tooltip label={<Explanation clock={clock} calendars={calendars} />} multiline w={320} withArrow>
      <Badge
        color={color(clock, now)}
        variant="light"
        tabIndex={0}
        data-testid="sla-badge"
        data-state={clock.state}
        style={{ cursor: "help" }}
      >
        {NAMES[name].short}: {label(clock, now)}
      </Badge>
    </Tooltip>
  );
}

/** The most urgent clock of a ticket (lists and board). */
export function SlaBadge({ sla }: { sla?: TicketSla | null }) {
  if (!sla) return null;
  const urgent = mostUrgent(sla);
  return urgent ? <ClockBadge name={urgent[0]} clock={urgent[1]} /> : null;
}

/** Every clock of a ticket (its page). */
export function SlaClocks({ sla, calendars }: { sla?: TicketSla | null; calendars?: Map<string, string> }) {
  if (!sla) return null;
  return (
    <Group gap="xs" data-testid="sla-clocks">
      {(Object.keys(NAMES) as ClockName[]).map((name) => {
        const clock = sla[name];
        return clock ? <ClockBadge key={name} name={name} clock={clock} calendars={calendars} /> : null;
      })}
    </Group>
  );
}
