import { Alert, Anchor, Button, Stack, Text, TextInput, Title } from "@mantine/core";
import { useForm } from "@mantine/form";
import { useState } from "react";
import { finishSecondStep, type SecondStep as Step, type Session, signInWithPasskey } from "../../api/session";
import { useSubmit } from "../../ui/forms";
import { registerPasskey } from "./Passkeys";
import { RecoveryCodes } from "./RecoveryCodes";
import { TotpSetup } from "./TotpSetup";

/**
 * The second step of a sign-in: a code of the authenticator app, a passkey or a recovery code;
 * or, where the organisation requires a second factor and the account has none, enrolling one.
 */
export function SecondStep({ step, onSignedIn }: { step: Step; onSignedIn: (s: Session) => void }) {
  return step.mfa_setup_required ? (
    <Enrol step={step} onSignedIn={onSignedIn} />
  ) : (
    <Verify step={step} onSignedIn={onSignedIn} />
  );
}

function Verify({ step, onSignedIn }: { step: Step; onSignedIn: (s: Session) => void }) {
  const [recovery, setRecovery] = useState(!step.methods.includes("totp") && !step.methods.includes("passkey"));
  const [passkeyError, setPasskeyError] = useState<string | null>(null);
  const form = useForm({
    initialValues: { code: "" },
    validate: { code: (v) => (v.trim() ? null : recovery ? "Enter a recovery code" : "Enter the code from your app") },
  });
  const { submit, error } = useSubmit(form, async ({ code }) => {
    onSignedIn(
      await finishSecondStep(step.mfa_token, recovery ? { recovery_code: code.trim() } : { code: code.trim() }),
    );
  });
  async function withPasskey() {
    setPasskeyError(null);
    try {
      onSignedIn(await signInWithPasskey({ mfaToken: step.mfa_token }));
    } catch (err) {
      setPasskeyError(err instanceof Error ? err.message : String(err));
    }
  }
  return (
    <form onSubmit={submit} noValidate>
<Stack>
      <Title order={1} size="h2">
        Confirm it is you
      </Title>
      {(error || passkeyError) && (
        <Alert color="red" role="alert">
          {error ?? passkeyError}
        </Alert>
      )}
      {(recovery || step.methods.includes("totp")) && (
        <>
          <TextInput
            label={recovery ? "Recovery code" : "Code from your authenticator app"}
            autoComplete="one-time-code"
            inputMode={recovery ? "text" : "numeric"}
            autoFocus
            {...form.getInputProps("code")}
          />
          <Button type="submit" loading={form.submitting}>
            Continue
          </Button>
        </>
      )}
      {step.methods.includes("passkey") && (
        <Button variant="light" onClick={() => void withPasskey()}>
          Use a passkey
        </Button>
      )}
      {step.methods.includes("recovery_code") && (
        <Anchor component="button" type="button" size="sm" onClick={() => setRecovery((r) => !r)}>
          {recovery ? "Use your authenticator app" : "Use a recovery code"}
        </Anchor>
      )}
    </Stack>
</form>
  );
}

function Enrol({ step, onSignedIn }: { step: Step; onSignedIn: (s: Session) => void }) {
  const [codes, setCodes] = useState<string[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const finish = async () => {
    try {
      onSignedIn(await finishSecondStep(step.mfa_token, {}));
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  };
  async function addPasskey() {
    setError(null);
    try {
      const fresh = await registerPasskey("Passkey", step.mfa_token);
      if (fresh) setCodes(fresh);
      else await finish();
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  }
  return (
    <Stack>
      <Title order={1} size="h2">
        Set up a second factor
      </Title>
      <Text size="sm">
        Your organization requires a second factor. Set up an authenticator app or a passkey to finish signing in.
      </Text>
      {error && (
        <Alert color="red" role="alert">
          {error}
        </Alert>
      )}
      {codes ? (
        <RecoveryCodes codes={codes} onDone={() => void finish()} />
      ) : (
        <>
          <TotpSetup setupToken={step.mfa_token} onEnabled={setCodes} />
          <Button variant="light" onClick={() => void addPasskey()}>
            Add a passkey instead
          </Button>
        </>
      )}
    </Stack>
  );
}
