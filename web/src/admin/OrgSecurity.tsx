import { Alert, Button, Group, Paper, PasswordInput, Select, Stack, Switch, Text, TagsInput, TextInput, Title } from "@mantine/core";
import { useForm } from "@mantine/form";
import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { api, call } from "../api/client";
import { ApiError } from "../api/problem";
import { notifyDone, notifyError, useSubmit } from "../ui/forms";

type Org = { require_mfa: boolean };

/** The organisation's sign-in rules: a second factor for staff, and single sign-on (OIDC). */
export function OrgSecurity({ org }: { org: Org }) {
  const client = useQueryClient();
  const requireMfa = useMutation({
    mutationFn: (on: boolean) => call(api.PATCH("/api/v1/org", { body: { require_mfa: on } })),
    onSuccess: (updated) => {
      client.setQueryData(["org"], updated);
      notifyDone(updated.require_mfa ? "Staff now need a second factor" : "A second factor is now optional");
    },
    onError: (err) => notifyError(err),
  });
  return (
    <Paper withBorder p="md">
      <Stack>
        <Title order={2} size="h4">
          Sign-in security
        </Title>
        <Switch
          label="Require a second factor for staff"
          description="Staff without an authenticator app or passkey set one up at their next sign-in. Requesters and API tokens are not affected."
          checked={org.require_mfa}
          disabled={requireMfa.isPending}
          onChange={(e) => requireMfa.mutate(e.currentTarget.checked)}
        />
        <SingleSignOn />
      </Stack>
    </Paper>
  );
}

const ROLES = ["admin", "manager", "agent", "viewer", "requester"] as const;

function SingleSignOn() {
  const client = useQueryClient();
  const settings = useQuery({
    queryKey: ["org-sso"],
    queryFn: async () => {
      try {
        return await call(api.GET("/api/v1/org/sso"));
      } catch (err) {
        if (err instanceof ApiError && err.status === 404) return null;
        throw err;
      }
    },
  });
  const [tested, setTested] = useState<string | null>(null);
  const form = useForm({
    initialValues: {
      issuer: "",
      client_id: "",
      client_secret: "",
      allowed_domains: [] as string[],
      default_role: "agent" as (typeof ROLES)[number],
      enforce: false,
    },
    validate: {
      issuer: (v) => (/^https?:\/\/\S+$/.test(v.trim()) ? null : "The provider's issuer URL"),
      client_id: (v) => (v.trim() ? null : "The client id the provider gave"),
    },
  });
  const { setValues } = form;
  useEffect(() => {
    if (settings.data) {
      setValues({
        issuer: settings.data.issuer,
        client_id: settings.data.client_id,
        client_secret: "",
        allowed_domains: settings.data.allowed_domains,
        default_role: settings.data.default_role as (typeof ROLES)[number],
        enforce: settings.data.enforce,
      });
    }
  }, [settings.data, setValues]);
  const { submit, error } = useSubmit(form, async (v) => {
    const saved = await call(
      api.PUT("/api/v1/org/sso", {
        body: { ...v, client_secret: v.client_secret ? v.client_secret : null },
      }),
    );
    client.setQueryData(["org-sso"], saved);
    notifyDone("Single sign-on saved");
  });
  const test = useMutation({
    mutationFn: () => call(api.POST("/api/v1/org/sso/test")),
    onSuccess: (r) => setTested(`Connected to ${r.issuer}: ${r.signing_keys} signing key(s).`),
    onError: (err) => {
      setTested(null);
      notifyError(err);
    },
  });
  const remove = useMutation({
    mutationFn: () => call(api.DELETE("/api/v1/org/sso")),
    onSuccess: () => {
      client.setQueryData(["org-sso"], null);
      form.reset();
      notifyDone("Single sign-on turned off");
    },
    onError: (err) => notifyError(err),
  });

  return (
    <form onSubmit={submit} noValidate>
      <Stack>
        <Title order={3} size="h5">
          Single sign-on (OpenID Connect)
        </Title>
        {settings.data && (
          <Text size="sm">
            Register this redirect URI with your provider: <code>{settings.data.callback_url}</code>
          </Text>
        )}
        {error && (
          <Alert color="red" role="alert">
            {error}
          </Alert>
        )}
        {tested && (
          <Alert color="green" role="status">
            {tested}
          </Alert>
        )}
        <TextInput label="Issuer URL" placeholder="https://login.example.com" {...form.getInputProps("issuer")} />
        <TextInput label="Client id" {...form.getInputProps("client_id")} />
        <PasswordInput
          label="Client secret"
          description={settings.data ? "Leave empty to keep the current secret" : undefined}
          autoComplete="off"
          {...form.getInputProps("client_secret")}
        />
        <TagsInput
          label="Allowed email domains"
          description="People with an address in these domains may sign in; new ones join. Empty: any domain."
          {...form.getInputProps("allowed_domains")}
        />
        <Select
          label="Role of people who join by signing in"
          data={ROLES.map((r) => ({ value: r, label: r }))}
          allowDeselect={false}
          {...form.getInputProps("default_role")}
        />
        <Switch
          label="Only single sign-on"
          description="Password and passkey sign-in are refused to everybody but owners."
          {...form.getInputProps("enforce", { type: "checkbox" })}
        />
        <Group justify="flex-end">
          {settings.data && (
            <>
              <Button variant="subtle" color="red" onClick={() => remove.mutate()} loading={remove.isPending}>
                Turn off
              </Button>
              <Button variant="default" onClick={() => test.mutate()} loading={test.isPending}>
                Test connection
              </Button>
            </>
          )}
          <Button type="submit" loading={form.submitting}>
            Save single sign-on
          </Button>
        </Group>
      </Stack>
    </form>
  );
}
