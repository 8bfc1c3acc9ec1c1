import { Alert, Anchor, Button, List, Paper, Stack, Text, Title } from "@mantine/core";
import { useMutation } from "@tanstack/react-query";
import { Link, useParams } from "react-router";
import { api, call } from "../api/client";
import { errorMessage } from "../api/problem";

/** The page of a mailed link that joins the tickets an address sent by mail to this account. */
export function LinkContacts() {
  const { token = "" } = useParams();
  const link = useMutation({
    mutationFn: () => call(api.POST("/api/v1/me/contact-links/confirm", { body: { token } })),
  });
  return (
    <Stack maw={560}>
      <Title order={1} size="h2">
        Link the tickets you sent by mail
      </Title>
      <Paper withBorder p="md">
        {link.isSuccess ? (
          <Stack>
            <Text>These organizations now know you by your account; their tickets from your mail are yours:</Text>
            <List>
              {link.data.organizations.map((o) => (
                <List.Item key={o.id}>{o.name}</List.Item>
              ))}
            </List>
            <Text size="sm">Switch to one of them from the account menu.</Text>
          </Stack>
        ) : (
          <Stack align="flex-start">
            {link.isError && (
              <Alert color="red" role="alert">
                {errorMessage(link.error)}{" "}
                <Anchor component={Link} to="/account">
                  Ask again
                </Anchor>
              </Alert>
            )}
            <Text>The tickets your address sent by mail become your account&apos;s, in every organization you wrote to.</Text>
            <Button onClick={() => link.mutate()} loading={link.isPending}>
              Link them to my account
            </Button>
          </Stack>
        )}
      </Paper>
    </Stack>
  );
}
