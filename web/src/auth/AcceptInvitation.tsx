import { Alert, Anchor, Button, Paper, PasswordInput, Stack, Text, TextInput, Title } from "@mantine/core";
import { useForm } from "@mantine/form";
import { useEffect, useState } from "react";
import { Link, useNavigate, useParams } from "react-router";
import { ApiError, errorMessage } from "../api/problem";
import { acceptInvitation, refresh } from "../api/session";
import { useSubmit } from "../ui/forms";
import { Loading } from "../ui/states";
import { AuthFrame } from "./AuthFrame";
import { useSession } from "./useSession";

/**
 * The invitation link's page. Someone new chooses a name and password; someone with a Docket
 * account accepts while signed in to it (their password is never asked for here).
 */
export function AcceptInvitation() {
  const { token = "" } = useParams();
  const navigate = useNavigate();
  const session = useSession();
  const [checking, setChecking] = useState(session === null);
  const [problem, setProblem] = useState<ApiError | null>(null);
  const [accepting, setAccepting] = useState(false);
  const here = `/invite/${encodeURIComponent(token)}`;

  // Resume a signed-in session, if there is one, before offering anything.
  useEffect(() => {
    if (session !== null) return;
    refresh()
      .catch(() => null)
      .finally(() => setChecking(false));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  const form = useForm({
    initialValues: { name: "", password: "" },
    validate: { password: (v) => (v.length >= 10 ? null : "At least 10 characters") },
  });
  const { submit, error } = useSubmit(form, async (values) => {
    try {
      await acceptInvitation(token, { password: values.password, ...(values.name.trim() ? { name: values.name } : {}) });
      navigate("/tickets", { replace: true });
    } catch (err) {
      if (err instanceof ApiError && (err.status === 404 || err.code === "sign_in_to_accept")) setProblem(err);
      else throw err;
    }
  });

  const acceptSignedIn = async () => {
    setAccepting(true);
    try {
      await acceptInvitation(token, {});
      navigate("/tickets", { replace: true });
    } catch (err) {
      setProblem(err instanceof ApiError ? err : null);
    } finally {
      setAccepting(false);
    }
  };

  if (checking) return <Loading label="Opening your invitation" />;
  return (
    <AuthFrame>
      <Paper withBorder p="lg" radius="md">
        <Stack>
          <Title order={1} size="h2">
            Join your team on Docket
          </Title>
          {problem?.status === 404 ? (
            <Alert color="red" role="alert" title="This invitation cannot be used">
              It was already accepted, withdrawn, or it expired (invitations last 7 days). Ask whoever invited you to
              send a new one.
            </Alert>
          ) : problem?.code === "sign_in_to_accept" ? (
            <Alert color="blue" role="alert" title="You already have a Docket account">
              <Text size="sm">Sign in to it, and you will come back here to accept.</Text>
              <Button component={Link} to={`/signin?next=${encodeURIComponent(here)}`} mt="sm">
                Sign in to accept
              </Button>
            </Alert>
          ) : problem ? (
            <Alert color="red" role="alert">
              {errorMessage(problem)}
            </Alert>
          ) : session ? (
            <Stack>
              <Text>
                You are signed in as <strong>{session.user.email}</strong>. Accepting adds this account to the
                organization that invited you.
              </Text>
              <Button onClick={() => void acceptSignedIn()} loading={accepting}>
                Accept invitation
              </Button>
              <Text size="sm" c="dimmed">
                Invited at another address? Sign out first, then open the link again.
              </Text>
            </Stack>
          ) : (
            <form onSubmit={submit} noValidate>
              <Stack>
              {error && (
                <Alert color="red" role="alert">
                  {error}
                </Alert>
              )}
              <TextInput label="Your name" autoComplete="name" {...form.getInputProps("name")} />
              <PasswordInput
                label="Choose a password"
                description="At least 10 characters; avoid common words"
                autoComplete="new-password"
                required
                {...form.getInputProps("password")}
              />
              <Button type="submit" loading={form.submitting}>
                Accept and sign in
              </Button>
              <Text size="sm">
                Already have an account?{" "}
                <Anchor component={Link} to={`/signin?next=${encodeURIComponent(here)}`}>
                  Sign in to accept
                </Anchor>
              </Text>
              </Stack>
            </form>
          )}
        </Stack>
      </Paper>
    </AuthFrame>
  );
}
