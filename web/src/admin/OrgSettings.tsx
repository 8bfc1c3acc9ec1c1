import { Alert, Button, Group, Paper, Stack, Text, TextInput, Title } from "@mantine/core";
import { useForm } from "@mantine/form";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect } from "react";
import { api, call } from "../api/client";
import { notifyDone, useSubmit } from "../ui/forms";
import { Failed, Loading } from "../ui/states";
import { dateTime } from "../ui/time";
import { useSession } from "../auth/useSession";
import { DeleteOrganization } from "../dataRights/DeleteOrganization";
import { Exports } from "../dataRights/Exports";
import { Retention } from "../dataRights/Retention";
import { PlanUsage } from "../billing/PlanUsage";
import { OrgSecurity } from "./OrgSecurity";

export function OrgSettings() {
  const client = useQueryClient();
  const session = useSession();
  const org = useQuery({ queryKey: ["org"], queryFn: () => call(api.GET("/api/v1/org")) });
  const form = useForm({
    initialValues: { name: "", slug: "" },
    validate: {
      name: (v) => (v.trim() ? null : "Name the organization"),
      slug: (v) => (/^[a-z0-9][a-z0-9-]*[a-z0-9]$/.test(v) ? null : "Lowercase letters, digits and dashes"),
    },
  });
  const { setValues, resetDirty } = form;
  useEffect(() => {
    if (org.data) {
      setValues({ name: org.data.name, slug: org.data.slug });
      resetDirty({ name: org.data.name, slug: org.data.slug });
    }
  }, [org.data, setValues, resetDirty]);

  const { submit, error } = useSubmit(form, async (v) => {
    const updated = await call(api.PATCH("/api/v1/org", { body: v }));
    client.setQueryData(["org"], updated);
    notifyDone("Organization saved");
  });

  if (org.isPending) return <Loading />;
  if (org.isError) return <Failed error={org.error} onRetry={() => void org.refetch()} />;
  return (
    <Stack maw={560}>
      <Title order={1} size="h2">
        Organization
      </Title>
      <Paper withBorder p="md" component="form" onSubmit={submit} noValidate>
        <Stack>
          {error && (
            <Alert color="red" role="alert">
              {error}
            </Alert>
          )}
          <TextInput label="Name" required {...form.getInputProps("name")} />
          <TextInput
            label="Short name"
            description="People type it to sign in when they belong to several organizations"
            required
            {...form.getInputProps("slug")}
          />
          <Text size="xs" c="dimmed">
            Created {dateTime(org.data.created_at)}
          </Text>
          <Group justify="flex-end">
            <Button type="submit" loading={form.submitting} disabled={!form.isDirty()}>
              Save
            </Button>
          </Group>
        </Stack>
      </Paper>
      <PlanUsage />
      <OrgSecurity org={org.data} />
      <Retention />
      <Exports
        scope="organization"
        title="Export the organization"
        description="Everything it holds as a zip: tickets, comments, files, people, projects, settings and the audit log, in JSON Lines with a manifest of checksums. No passwords, tokens or secrets."
      />
      {session?.role === "owner" && <DeleteOrganization org={org.data} />}
    </Stack>
  );
}
