import { Button, Paper, PasswordInput, Stack, Text, Title } from "@mantine/core";
import { useForm } from "@mantine/form";
import { useDisclosure } from "@mantine/hooks";
import { useQueryClient } from "@tanstack/react-query";
import { useNavigate } from "react-router";
import { api, call } from "../api/client";
import { forgetSession } from "../api/session";
import type { components } from "../api/schema";
import { FormModal } from "../ui/FormModal";
import { useSubmit } from "../ui/forms";

type Organization = components["schemas"]["Organization"];

/**
 * The owner's way out: deleting closes the organisation at once and purges it after the grace
 * period, unless an owner restores it first. Every session ends, this one too.
 */
export function DeleteOrganization({ org }: { org: Organization }) {
  const [opened, { open, close }] = useDisclosure(false);
  const navigate = useNavigate();
  const client = useQueryClient();
  const form = useForm({
    initialValues: { password: "" },
    validate: { password: (v) => (v ? null : "Enter your password") },
  });
  const { submit, error } = useSubmit(form, async (v) => {
    const scheduled = await call(api.DELETE("/api/v1/org", { body: v }));
    const when = new Date(scheduled.purge_at).toLocaleDateString();
    forgetSession(
      `The organization was deleted. It will be removed for good on ${when}; until then an owner can sign in and restore it.`,
    );
    client.clear();
    await navigate("/signin", { replace: true });
  });
  return (
    <Paper withBorder p="md" style={{ borderColor: "var(--mantine-color-red-4)" }}>
      <Stack>
        <Title order={2} size="h4">
          Delete this organization
        </Title>
        <Text size="sm" c="dimmed">
          It closes at once: everyone is signed out, API tokens, mail and webhooks stop. After the
          grace period every ticket, comment, file and person’s membership in it is removed for
          good; until then an owner can sign in and restore it.
        </Text>
        <Button color="red" variant="light" onClick={open} w="fit-content">
          Delete {org.name}…
        </Button>
      </Stack>
      <FormModal
        opened={opened}
        onClose={close}
        title={`Delete ${org.name}`}
        error={error}
        onSubmit={submit}
        submitLabel="Delete the organization"
        submitting={form.submitting}
      >
        <Text size="sm">Confirm with your password. Everyone, you included, is signed out.</Text>
        <PasswordInput label="Your password" autoComplete="current-password" data-autofocus {...form.getInputProps("password")} />
      </FormModal>
    </Paper>
  );
}
