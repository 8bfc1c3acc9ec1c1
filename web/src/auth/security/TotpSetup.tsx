import { Button, Code, Group, Image, Stack, Text, TextInput } from "@mantine/core";
import { useForm } from "@mantine/form";
import QRCode from "qrcode";
import { useState } from "react";
import { api, call } from "../../api/client";
import { useSubmit } from "../../ui/forms";

/**
 * Request options for an enrolment: as the signed-in person, or with the token of a sign-in's
 * set-up step (before the sign-in is finished).
 */
export function enrolling(setupToken?: string) {
  return setupToken ? { headers: { Authorization: `Bearer ${setupToken}` } } : {};
}

/**
 * Enrols an authenticator app: a QR code (and the secret to type in), then a code of the app
 * confirms it and the recovery codes come back.
 */
export function TotpSetup({ setupToken, onEnabled }: { setupToken?: string; onEnabled: (codes: string[]) => void }) {
  const [pending, setPending] = useState<{ secret: string; qr: string } | null>(null);
  const [starting, setStarting] = useState(false);
  const [startError, setStartError] = useState<string | null>(null);
  const form = useForm({
    initialValues: { code: "" },
    validate: { code: (v) => (/^\d{6}$/.test(v.trim()) ? null : "Enter the 6-digit code your app shows") },
  });
  const { submit, error } = useSubmit(form, async ({ code }) => {
    const done = await call(api.POST("/api/v1/auth/mfa/totp/confirm", { body: { code: code.trim() }, ...enrolling(setupToken) }));
    onEnabled(done.recovery_codes);
  });

  async function start() {
    setStarting(true);
    setStartError(null);
    try {
      const started = await call(api.POST("/api/v1/auth/mfa/totp", enrolling(setupToken)));
      setPending({ secret: started.secret, qr: await QRCode.toDataURL(started.otpauth_uri, { margin: 1, width: 200 }) });
    } catch (err) {
      setStartError(err instanceof Error ? err.message : String(err));
    } finally {
      setStarting(false);
    }
  }

  if (!pending) {
    return (
      <Stack align="flex-start" gap="xs">
        {startError && (
          <Text c="red" size="sm" role="alert">
            {startError}
          </Text>
        )}
        <Button variant="light" onClick={() => void start()} loading={starting}>
          Set up an authenticator app
        </Button>
      </Stack>
    );
  }
  return (
    <form onSubmit={submit} noValidate>
<Stack>
      <Text size="sm">Scan this code with your authenticator app, or type the key in, then enter the code it shows.</Text>
      <Image src={pending.qr} alt="QR code for your authenticator app" w={200} h={200} />
      <Text size="sm">
        Key: <Code data-testid="totp-secret">{pending.secret}</Code>
      </Text>
      {error && (
        <Text c="red" size="sm" role="alert">
          {error}
        </Text>
      )}
      <Group align="flex-end">
        <TextInput
          label="Code from the app"
          inputMode="numeric"
          autoComplete="one-time-code"
          required
          {...form.getInputProps("code")}
        />
        <Button type="submit" loading={form.submitting}>
          Turn on
        </Button>
      </Group>
    </Stack>
</form>
  );
}
