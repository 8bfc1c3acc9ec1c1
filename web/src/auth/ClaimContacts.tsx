import { Alert, Button, Paper, PasswordInput, Stack, Text, TextInput, Title } from "@mantine/core";
import { useForm } from "@mantine/form";
import { useNavigate, useParams } from "react-router";
import { claimContacts } from "../api/session";
import { useSubmit } from "../ui/forms";
import { AuthFrame } from "./AuthFrame";

/**
 * The page of a mailed claim link: someone who wrote in by mail, with no account, chooses a
 * password; the account is made, the tickets they sent become theirs, and they are signed in.
 */
export function ClaimContacts() {
  const { token = "" } = useParams();
  const navigate = useNavigate();
  const form = useForm({
    initialValues: { name: "", password: "" },
    validate: { password: (v) => (v.length >= 10 ? null : "At least 10 characters") },
  });
  const { submit, error } = useSubmit(form, async (values) => {
    await claimContacts(token, { password: values.password, ...(values.name.trim() ? { name: values.name } : {}) });
    navigate("/tickets", { replace: true });
  });
  return (
    <AuthFrame>
      <Paper withBorder p="lg" radius="md" component="form" onSubmit={submit} noValidate>
        <Stack>
          <Title order={1} size="h2">
            See the tickets you sent by mail
          </Title>
          <Text size="sm">Choose a password for your address: your account is made and your tickets are there.</Text>
          {error && (
            <Alert color="red" role="alert">
              {error}
            </Alert>
          )}
          <TextInput
            label="Your name"
            description="Leave empty to keep the name of your first mail"
            autoComplete="name"
            {...form.getInputProps("name")}
          />
          <PasswordInput
            label="Password"
            description="At least 10 characters; avoid common words"
            autoComplete="new-password"
            required
            {...form.getInputProps("password")}
          />
          <Button type="submit" loading={form.submitting}>
            Make my account
          </Button>
        </Stack>
      </Paper>
    </AuthFrame>
  );
}
