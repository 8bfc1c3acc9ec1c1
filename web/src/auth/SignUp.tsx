import { Alert, Anchor, Button, Paper, PasswordInput, Stack, Text, TextInput, Title } from "@mantine/core";
import { useForm } from "@mantine/form";
import { useState } from "react";
import { Link, useNavigate } from "react-router";
import { signUp } from "../api/session";
import { useSubmit } from "../ui/forms";
import { AuthFrame } from "./AuthFrame";

export function SignUp() {
  const navigate = useNavigate();
  const [sentTo, setSentTo] = useState<string | null>(null);
  const form = useForm({
    initialValues: { organization_name: "", organization_slug: "", name: "", email: "", password: "" },
    validate: {
      organization_name: (v) => (v.trim() ? null : "Name your organization"),
      organization_slug: (v) =>
        !v || /^[a-z0-9-]+$/.test(v) ? null : "Lowercase letters, digits and dashes only",
      name: (v) => (v.trim() ? null : "Enter your name"),
      email: (v) => (/^\S+@\S+$/.test(v) ? null : "Enter your email address"),
      password: (v) => (v.length >= 10 ? null : "At least 10 characters"),
    },
  });

  const { submit, error } = useSubmit(form, async (values) => {
    const done = await signUp({ ...values, organization_slug: values.organization_slug || undefined });
    if ("confirmationSentTo" in done) setSentTo(done.confirmationSentTo);
    else navigate("/tickets", { replace: true });
  });

  if (sentTo) {
    return (
      <AuthFrame>
        <Paper withBorder p="lg" radius="md">
          <Stack>
            <Title order={1} size="h2">
              Check your mail
            </Title>
            <Text data-testid="signup-sent">
              We sent a link to <b>{sentTo}</b>. Follow it within a day to create your organization and sign in.
            </Text>
            <Text size="sm" c="dimmed">
              Nothing arrived? Look in the spam folder, or{" "}
              <Anchor component="button" type="button" onClick={() => setSentTo(null)}>
                sign up again
              </Anchor>
              .
            </Text>
          </Stack>
        </Paper>
      </AuthFrame>
    );
  }

  return (
    <AuthFrame>
      <Paper withBorder p="lg" radius="md" component="form" onSubmit={submit} noValidate>
        <Stack>
          <Title order={1} size="h2">
            Create your organization
          </Title>
          {error && (
            <Alert color="red" role="alert">
              {error}
            </Alert>
          )}
          <TextInput label="Organization name" required {...form.getInputProps("organization_name")} />
          <TextInput
            label="Short name"
            description="Used to sign in and in links; leave empty to derive it from the name"
            {...form.getInputProps("organization_slug")}
          />
          <TextInput label="Your name" autoComplete="name" required {...form.getInputProps("name")} />
          <TextInput label="Email" type="email" autoComplete="email" required {...form.getInputProps("email")} />
          <PasswordInput
            label="Password"
            description="At least 10 characters; avoid common words"
            autoComplete="new-password"
            required
            {...form.getInputProps("password")}
          />
          <Button type="submit" loading={form.submitting}>
            Create organization
          </Button>
          <Text size="sm">
            Already have an account?{" "}
            <Anchor component={Link} to="/signin">
              Sign in
            </Anchor>
          </Text>
        </Stack>
      </Paper>
    </AuthFrame>
  );
}
