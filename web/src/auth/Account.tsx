import { Button, Paper, PasswordInput, Stack, Text, Title } from "@mantine/core";
import { useForm } from "@mantine/form";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useNavigate } from "react-router";
import { api, call } from "../api/client";
import { forgetSession } from "../api/session";
import { MailPreferences } from "../notifications/MailPreferences";
import { notifyDone, notifyError, useSubmit } from "../ui/forms";
import { Exports } from "../dataRights/Exports";
import { ApiTokens } from "./ApiTokens";
import { SecondFactors } from "./security/SecondFactors";
import { ActiveSessions } from "./security/Sessions";
import { useSession } from "./useSession";

/**
 * The person's own account: their password, second factors, notification mail, API tokens,
 * and signing out of every device.
 */
export function Account() {
  const session = useSession();
  const navigate = useNavigate();
  const client = useQueryClient();
  const form = useForm({
    initialValues: { current_password: "", new_password: "" },
    validate: {
      current_password: (v) => (v ? null : "Enter your current password"),
      new_password: (v) => (v.length >= 10 ? null : "At least 10 characters"),
    },
  });
  const { submit, error } = useSubmit(form, async (values) => {
    await call(api.POST("/api/v1/auth/password/change", { body: values }));
    form.reset();
    notifyDone("Password changed. Your other sessions were signed out.");
  });
  // The server has ended every session, this tab's too: forget it here without asking again.
  const everywhere = useMutation({
    mutationFn: () =>
      call(api.POST("/api/v1/auth/logout-all", { params: { header: { "X-Docket-Refresh": "cookie" } } })),
    onSuccess: () => {
      forgetSession();
      client.clear();
      navigate("/signin", { replace: true });
    },
    onError: (err) => notifyError(err),
  });

  return (
    <Stack maw={560}>
      <Title order={1} size="h2">
        Your account
      </Title>
      <Text c="dimmed">
        {session?.user.name} · {session?.user.email}
      </Text>
      <Paper withBorder p="md" component="form" onSubmit={submit} noValidate>
        <Stack>
          <Title order={2} size="h4">
            Change password
          </Title>
          {error && (
            <Text c="red" role="alert" size="sm">
              {error}
            </Text>
          )}
          <PasswordInput
            label="Current password"
            autoComplete="current-password"
            required
            {...form.getInputProps("current_password")}
          />
          <PasswordInput
            label="New password"
            description="At least 10 characters; avoid common words"
            autoComplete="new-password"
            required
            {...form.getInputProps("new_password")}
          />
          <Button type="submit" loading={form.submitting} style={{ alignSelf: "flex-end" }}>
            Change password
          </Button>
        </Stack>
      </Paper>
      <SecondFactors />
      <MailPreferences />
      <LinkMail />
      <ApiTokens />
      <Exports
        scope="me"
        title="Export your data"
        description="Your profile, memberships, the tickets you asked for or work on and their comments you can see, notifications, preferences, sessions and the audit entries about you, as a zip."
      />
      <Paper withBorder p="md">
        <Stack align="flex-start">
          <Title order={2} size="h4">
            Sessions
          </Title>
          <ActiveSessions />
          <Text size="sm">Signs you out on every device and browser, this one included.</Text>
          <Button color="red" variant="light" onClick={() => everywhere.mutate()} loading={everywhere.isPending}>
            Sign out everywhere
          </Button>
        </Stack>
      </Paper>
    </Stack>
  );
}

/**
 * Organisations know someone who wrote to them by mail as a contact of theirs, not by their
 * account: the person links those tickets to their account here, through a mailed link.
 */
function LinkMail() {
  const ask = useMutation({
    mutationFn: () => call(api.POST("/api/v1/me/contact-links")),
    onSuccess: () =>
      notifyDone("If your address wrote to an organization by mail, a link to join those tickets is on its way."),
    onError: (err) => notifyError(err),
  });
  return (
    <Paper withBorder p="md">
      <Stack align="flex-start">
        <Title order={2} size="h4">
          Tickets you sent by mail
        </Title>
        <Text size="sm">
          Organizations you wrote to by mail know you by that mail only. To see those tickets here, we send a link to your
          address; follow it while signed in.
        </Text>
        <Button variant="light" onClick={() => ask.mutate()} loading={ask.isPending}>
          Link tickets I sent by mail
        </Button>
      </Stack>
    </Paper>
  );
}
