import { Alert, Anchor, Button, Paper, PasswordInput, Stack, Text, TextInput, Title } from "@mantine/core";
import { useForm } from "@mantine/form";
import { useState } from "react";
import { Link, useParams } from "react-router";
import { api, call } from "../api/client";
import { ApiError } from "../api/problem";
import { useSubmit } from "../ui/forms";
import { AuthFrame } from "./AuthFrame";

/** Asks for a reset link. The answer is the same whether or not the address has an account. */
export function ForgotPassword() {
  const [sentTo, setSentTo] = useState<string | null>(null);
  const form = useForm({
    initialValues: { email: "" },
    validate: { email: (v) => (/^\S+@\S+$/.test(v) ? null : "Enter your email address") },
  });
  const { submit, error } = useSubmit(form, async (values) => {
    await call(api.POST("/api/v1/auth/password/forgot", { body: values }));
    setSentTo(values.email);
  });
  return (
    <AuthFrame>
      <Paper withBorder p="lg" radius="md" component="form" onSubmit={submit} noValidate>
        <Stack>
          <Title order={1} size="h2">
            Forgot your password?
          </Title>
          {sentTo ? (
            <Alert color="green" role="status" title="Check your mail">
              If {sentTo} has a Docket account, a link to choose a new password is on its way. It works once, for one
              hour. If you only ever wrote to an organization by mail, the link makes your account instead.
            </Alert>
          ) : (
            <>
              <Text size="sm">We will mail you a link to choose a new one.</Text>
              {error && (
                <Alert color="red" role="alert">
                  {error}
                </Alert>
              )}
              <TextInput label="Email" type="email" autoComplete="email" required {...form.getInputProps("email")} />
              <Button type="submit" loading={form.submitting}>
                Send the link
              </Button>
            </>
          )}
          <Anchor component={Link} to="/signin" size="sm">
            Back to sign in
          </Anchor>
        </Stack>
      </Paper>
    </AuthFrame>
  );
}

/** The reset link's page: a new password, then sign in with it (every session was ended). */
export function ResetPassword() {
  const { token = "" } = useParams();
  const [done, setDone] = useState(false);
  const [spent, setSpent] = useState(false);
  const form = useForm({
    initialValues: { password: "" },
    validate: { password: (v) => (v.length >= 10 ? null : "At least 10 characters") },
  });
  const { submit, error } = useSubmit(form, async (values) => {
    try {
      await call(api.POST("/api/v1/auth/password/reset", { body: { token, password: values.password } }));
      setDone(true);
    } catch (err) {
      if (err instanceof ApiError && "token" in err.fieldErrors()) setSpent(true);
      else throw err;
    }
  });
  return (
    <AuthFrame>
      <Paper withBorder p="lg" radius="md" component="form" onSubmit={submit} noValidate>
        <Stack>
          <Title order={1} size="h2">
            Choose a new password
          </Title>
          {spent ? (
            <Alert color="red" role="alert" title="This link cannot be used">
              <Text size="sm">It was already used, or it expired (links last one hour).</Text>
              <Button component={Link} to="/forgot-password" mt="sm" size="xs">
                Ask for a new link
              </Button>
            </Alert>
          ) : done ? (
            <>
              <Alert color="green" role="status" title="Password set">
                You were signed out everywhere.
              </Alert>
              <Button component={Link} to="/signin">
                Sign in with your new password
              </Button>
            </>
          ) : (
            <>
              {error && (
                <Alert color="red" role="alert">
                  {error}
                </Alert>
              )}
              <PasswordInput
                label="New password"
                description="At least 10 characters; avoid common words"
                autoComplete="new-password"
                required
                {...form.getInputProps("password")}
              />
              <Button type="submit" loading={form.submitting}>
                Set password
              </Button>
            </>
          )}
        </Stack>
      </Paper>
    </AuthFrame>
  );
}
