import { Alert, Anchor, Button, Divider, Group, Paper, PasswordInput, Stack, Text, TextInput, Title } from "@mantine/core";
import { useForm } from "@mantine/form";
import { useState } from "react";
import { Link, useNavigate, useSearchParams } from "react-router";
import {
  endNotice,
  isSecondStep,
  type SecondStep as Step,
  signIn,
  signInWithPasskey,
  ssoStartUrl,
} from "../api/session";
import { useSubmit } from "../ui/forms";
import { AuthFrame } from "./AuthFrame";
import { useSession } from "./useSession";
import { safeNext } from "./next";
import { SecondStep } from "./security/SecondStep";

/** Why single sign-on sent the person back (`?sso_error=`). */
const SSO_ERRORS: Record<string, string> = {
  sso_not_configured: "That organization does not offer single sign-on.",
  sso_unavailable: "The organization's identity provider could not be reached. Try again later.",
  sso_state_mismatch: "That sign-in was not started here, or was already used. Start again.",
  sso_expired: "That sign-in took too long. Start again.",
  sso_denied: "The identity provider did not sign you in.",
  sso_exchange_failed: "The identity provider did not accept the sign-in. Start again.",
  sso_invalid_token: "The identity provider's answer could not be verified.",
  sso_email_unverified: "Your identity provider has not verified your email address.",
  sso_domain_not_allowed: "Addresses of your domain may not sign in to this organization.",
  sso_not_member: "Your account is not a member of this organization. Ask an admin to invite you.",
  sso_failed: "Single sign-on failed. Try again.",
};

export function SignIn() {
  const navigate = useNavigate();
  const [params] = useSearchParams();
  const [step, setStep] = useState<Step | null>(null);
  const [ssoSlug, setSsoSlug] = useState("");
  const [passkeyError, setPasskeyError] = useState<string | null>(null);
  const next = safeNext(params.get("next"));
  const done = () => navigate(next, { replace: true });
  const ssoError = params.get("sso_error");
  // Subscribed: the session may end under this page (its notice then arrives).
  useSession();
  const ended = endNotice();
  const form = useForm({
    initialValues: { email: "", password: "", organization: "" },
    validate: {
      email: (v) => (/^\S+@\S+$/.test(v) ? null : "Enter your email address"),
      password: (v) => (v ? null : "Enter your password"),
    },
  });

  const { submit, error } = useSubmit(form, async (values) => {
    const outcome = await signIn(values.email, values.password, values.organization.trim() || undefined);
    if (isSecondStep(outcome)) setStep(outcome);
    else done();
  });
  async function withPasskey() {
    setPasskeyError(null);
    try {
      await signInWithPasskey({ organization: form.values.organization.trim() || undefined });
      done();
    } catch (err) {
      setPasskeyError(err instanceof Error ? err.message : String(err));
    }
  }

  if (step) {
    return (
      <AuthFrame>
        <Paper withBorder p="lg" radius="md">
          <SecondStep step={step} onSignedIn={done} />
        </Paper>
      </AuthFrame>
    );
  }

  return (
    <AuthFrame>
      <Paper withBorder p="lg" radius="md" component="form" onSubmit={submit} noValidate>
        <Stack>
          <Title order={1} size="h2">
            Sign in to Docket
          </Title>
          {ended && (
            <Alert color="blue" role="status">
              {ended}
            </Alert>
          )}
          {(error || passkeyError || ssoError) && (
            <Alert color="red" role="alert">
              {error ?? passkeyError ?? SSO_ERRORS[ssoError ?? ""] ?? SSO_ERRORS.sso_failed}
            </Alert>
          )}
          <TextInput label="Email" type="email" autoComplete="email" required {...form.getInputProps("email")} />
          <PasswordInput label="Password" autoComplete="current-password" required {...form.getInputProps("password")} />
          <TextInput
            label="Organization"
            description="Its short name, if you belong to more than one"
            autoComplete="organization"
            {...form.getInputProps("organization")}
          />
          <Button type="submit" loading={form.submitting}>
            Sign in
          </Button>
          <Button variant="light" onClick={() => void withPasskey()}>
            Sign in with a passkey
          </Button>
          <Divider label="or with your organization's identity provider" />
          <Group align="flex-end" wrap="nowrap">
            <TextInput
              label="Organization short name"
              value={ssoSlug}
              onChange={(e) => setSsoSlug(e.currentTarget.value)}
              style={{ flex: 1 }}
            />
            <Button
              variant="default"
              disabled={!ssoSlug.trim()}
              onClick={() => window.location.assign(ssoStartUrl(ssoSlug.trim(), next))}
            >
              Sign in with SSO
            </Button>
          </Group>
          <Anchor component={Link} to="/forgot-password" size="sm">
            Forgot your password?
          </Anchor>
          <Text size="sm">
            New here?{" "}
            <Anchor component={Link} to="/signup">
              Create an organization
            </Anchor>
          </Text>
        </Stack>
      </Paper>
    </AuthFrame>
  );
}
