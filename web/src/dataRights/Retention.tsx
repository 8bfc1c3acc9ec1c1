import { Alert, Button, Group, NumberInput, Paper, Stack, Text, Title } from "@mantine/core";
import { useForm } from "@mantine/form";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect } from "react";
import { api, call } from "../api/client";
import { notifyDone, useSubmit } from "../ui/forms";
import { Failed, Loading } from "../ui/states";

/** A number of days, or "" for kept as long as the organisation lives. */
type Days = number | string;

const days = (v: Days) => (v === "" ? null : Number(v));
const shown = (v: number | null | undefined): Days => v ?? "";
const check = (v: Days) =>
  v === "" || (Number.isInteger(Number(v)) && Number(v) >= 1 && Number(v) <= 3650)
    ? null
    : "A number of days from 1 to 3650, or empty to keep them";

/** The settings, as the form shows them. */
const FIELDS = [
  [
    "closed_ticket_days",
    "Purge closed tickets after (days)",
    "Tickets closed or cancelled this long ago go for good, with their comments, files, timeline and mail records",
  ],
  [
    "mail_body_days",
    "Remove the text of inbound mail after (days)",
    "The tickets and replies stay; what the mail said is replaced by a notice, and the mail log of then is dropped",
  ],
] as const;

/**
 * How long the organisation keeps closed tickets and the text of inbound mail. The worker
 * applies it once a day and writes what it removed in the audit log.
 */
export function Retention() {
  const client = useQueryClient();
  const settings = useQuery({
    queryKey: ["org", "retention"],
    queryFn: () => call(api.GET("/api/v1/org/retention")),
  });
  const form = useForm<{ closed_ticket_days: Days; mail_body_days: Days }>({
    initialValues: { closed_ticket_days: "", mail_body_days: "" },
    validate: { closed_ticket_days: check, mail_body_days: check },
  });
  const { setValues, resetDirty } = form;
  useEffect(() => {
    if (settings.data) {
      const values = {
        closed_ticket_days: shown(settings.data.closed_ticket_days),
        mail_body_days: shown(settings.data.mail_body_days),
      };
      setValues(values);
      resetDirty(values);
    }
  }, [settings.data, setValues, resetDirty]);
  const { submit, error } = useSubmit(form, async (v) => {
    const saved = await call(
      api.PUT("/api/v1/org/retention", {
        body: { closed_ticket_days: days(v.closed_ticket_days), mail_body_days: days(v.mail_body_days) },
      }),
    );
    client.setQueryData(["org", "retention"], saved);
    notifyDone("Retention saved; it applies within a day");
  });

  if (settings.isPending) return <Loading label="Loading retention" />;
  if (settings.isError) return <Failed error={settings.error} onRetry={() => void settings.refetch()} />;
  return (
    <Paper withBorder p="md" component="form" onSubmit={submit} noValidate aria-labelledby="retention-title">
      <Stack>
        <Title order={2} size="h4" id="retention-title">
          Retention
        </Title>
        <Text size="sm" c="dimmed">
          Leave a field empty to keep everything for as long as the organization exists. Once a day
          Docket removes what is older and writes what it removed in the audit log.
        </Text>
        {error && (
          <Alert color="red" role="alert">
            {error}
          </Alert>
        )}
        {FIELDS.map(([field, label, description]) => (
          <NumberInput
            key={field}
            label={label}
            description={description}
            placeholder="Kept"
            min={1}
            max={3650}
            allowDecimal={false}
            clampBehavior="none"
            {...form.getInputProps(field)}
          />
        ))}
        <Group justify="flex-end">
          <Button type="submit" loading={form.submitting} disabled={!form.isDirty()}>
            Save retention
          </Button>
        </Group>
      </Stack>
    </Paper>
  );
}
