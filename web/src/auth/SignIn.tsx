import { Alert, Anchor, Button, Paper, PasswordInput, Stack, Text, TextInput, Title } from "@mantine/core";
import { useForm } from "@mantine/form";
import { Link, useNavigate, useSearchParams } from "react-router";
import { signIn } from "../api/session";
import { useSubmit } from "../ui/forms";
import { AuthFrame } from "./AuthFrame";
import { safeNext } from "./next";

export function SignIn() {
  const navigate = useNavigate();
  const [params] = useSearchParams();
  const form = useForm({
    initialValues: { email: "", password: "", organization: "" },
    validate: {
      email: (v) => (/^\S+@\S+$/.test(v) ? null : "Enter your email address"),
      password: (v) => (v ? null : "Enter your password"),
    },
  });

  const { submit, error } = useSubmit(form, async (values) => {
    await signIn(values.email, values.password, values.organization.trim() || undefined);
    navigate(safeNext(params.get("next")), { replace: true });
  });

  return (
    <AuthFrame>
      <Paper withBorder p="lg" radius="md" component="form" onSubmit={submit} noValidate>
        <Stack>
          <Title order={1} size="h2">
            Sign in to Docket
          </Title>
          {error && (
            <Alert color="red" role="alert">
              {error}
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
