import { Alert, Anchor, Button, Paper, Stack, Text, Title } from "@mantine/core";
import { useState } from "react";
import { Link, useNavigate, useParams } from "react-router";
import { confirmSignUp } from "../api/session";
import { errorMessage } from "../api/problem";
import { AuthFrame } from "./AuthFrame";

/**
 * The page of a mailed sign-up link. It asks for a click rather than confirming on load, so a
 * mail scanner that opens links does not spend the link.
 */
export function ConfirmSignUp() {
  const { token = "" } = useParams();
  const navigate = useNavigate();
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function confirm() {
    setBusy(true);
    setError(null);
    try {
      await confirmSignUp(token);
      navigate("/tickets", { replace: true });
    } catch (err) {
      setError(errorMessage(err));
      setBusy(false);
    }
  }

  return (
    <AuthFrame>
      <Paper withBorder p="lg" radius="md">
        <Stack>
          <Title order={1} size="h2">
            Create your organization
          </Title>
          {error && (
            <Alert color="red" role="alert">
              {error}{" "}
              <Anchor component={Link} to="/signup">
                Sign up again
              </Anchor>
            </Alert>
          )}
          <Text>Your address is confirmed once you continue: the organization is created and you are signed in.</Text>
          <Button onClick={() => void confirm()} loading={busy}>
            Create organization and sign in
          </Button>
        </Stack>
      </Paper>
    </AuthFrame>
  );
}
