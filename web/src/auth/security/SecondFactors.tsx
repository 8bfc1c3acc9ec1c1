import { Badge, Button, Group, Paper, PasswordInput, Stack, Text, Title } from "@mantine/core";
import { useForm } from "@mantine/form";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api, call } from "../../api/client";
import { notifyDone, useSubmit } from "../../ui/forms";
import { Passkeys } from "./Passkeys";
import { RecoveryCodes } from "./RecoveryCodes";
import { TotpSetup } from "./TotpSetup";

/**
 * The account's second factors: an authenticator app, passkeys and recovery codes. Removing
 * the app, or renewing the codes, asks for the password again.
 */
export function SecondFactors() {
  const client = useQueryClient();
  const me = useQuery({ queryKey: ["me"], queryFn: () => call(api.GET("/api/v1/auth/me")) });
  const [codes, setCodes] = useState<string[] | null>(null);
  const [confirming, setConfirming] = useState<"disable" | "renew" | null>(null);
  const mfa = me.data?.mfa;
  const refreshStatus = () => client.invalidateQueries({ queryKey: ["me"] });

  return (
    <Paper withBorder p="md">
      <Stack>
        <Group justify="space-between">
          <Title order={2} size="h4">
            Second factors
          </Title>
          {mfa && (
            <Badge color={mfa.totp || mfa.passkeys > 0 ? "green" : "gray"} variant="light">
              {mfa.totp || mfa.passkeys > 0 ? "On" : "Off"}
            </Badge>
          )}
        </Group>
        <Text size="sm">
          A second factor keeps your account yours even if your password leaks: signing in then also takes a code of your
          authenticator app, or a passkey.
        </Text>
        {codes && <RecoveryCodes codes={codes} onDone={() => setCodes(null)} />}
        <Title order={3} size="h5">
          Authenticator app
        </Title>
        {mfa?.totp ? (
          <Group>
            <Text size="sm">An authenticator app is set up.</Text>
            <Button size="xs" color="red" variant="light" onClick={() => setConfirming("disable")}>
              Remove the app
            </Button>
          </Group>
        ) : (
          <TotpSetup
            onEnabled={(fresh) => {
              setCodes(fresh);
              void refreshStatus();
              notifyDone("Authenticator app turned on");
            }}
          />
        )}
        <Title order={3} size="h5">
          Passkeys
        </Title>
        <Passkeys onRecoveryCodes={setCodes} />
        {mfa && (mfa.totp || mfa.passkeys > 0) && (
          <>
            <Title order={3} size="h5">
              Recovery codes
            </Title>
            <Group>
              <Text size="sm">{mfa.recovery_codes} unused</Text>
              <Button size="xs" variant="light" onClick={() => setConfirming("renew")}>
                New recovery codes
              </Button>
            </Group>
          </>
        )}
        {confirming && (
          <ConfirmWithPassword
            action={confirming}
            onDone={(fresh) => {
              setConfirming(null);
              if (fresh) setCodes(fresh);
              void refreshStatus();
            }}
          />
        )}
      </Stack>
    </Paper>
  );
}

function ConfirmWithPassword({
  action,
  onDone,
}: {
  action: "disable" | "renew";
  onDone: (codes?: string[]) => void;
}) {
  const form = useForm({
    initialValues: { password: "" },
    validate: { password: (v) => (v ? null : "Enter your password") },
  });
  const { submit, error } = useSubmit(form, async ({ password }) => {
    if (action === "disable") {
      await call(api.DELETE("/api/v1/auth/mfa/totp", { body: { password } }));
      notifyDone("Authenticator app removed");
      onDone();
    } else {
      const renewed = await call(api.POST("/api/v1/auth/mfa/recovery-codes", { body: { password } }));
      onDone(renewed.recovery_codes);
    }
  });
  return (
    <form onSubmit={submit} noValidate>
<Group align="flex-end">
      <PasswordInput
        label={action === "disable" ? "Your password, to remove the app" : "Your password, for new codes"}
        autoComplete="current-password"
        error={error}
        {...form.getInputProps("password")}
      />
      <Button type="submit" color={action === "disable" ? "red" : undefined} loading={form.submitting}>
        {action === "disable" ? "Remove" : "Renew"}
      </Button>
      <Button variant="subtle" onClick={() => onDone()}>
        Cancel
      </Button>
    </Group>
</form>
  );
}
