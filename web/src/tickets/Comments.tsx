import { Badge, Button, Card, Group, Stack, Switch, Text, Textarea, Title } from "@mantine/core";
import { useForm } from "@mantine/form";
import { IconLock } from "@tabler/icons-react";
import { useInfiniteQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api, call, idempotencyKey } from "../api/client";
import { atLeast, useSession } from "../auth/useSession";
import { showSubmitError } from "../ui/forms";
import { Empty, Failed, Loading } from "../ui/states";
import { dateTime } from "../ui/time";
import type { Ticket } from "./model";
import { usePersonName } from "./reference";

/** The conversation: public replies, and for staff the internal notes, marked as such. */
export function Comments({ ticket }: { ticket: Ticket }) {
  const role = useSession()?.role;
  const canNote = atLeast(role, "agent");
  const nameOf = usePersonName();
  const client = useQueryClient();
  const key = ["comments", ticket.id];
  const comments = useInfiniteQuery({
    queryKey: key,
    initialPageParam: undefined as string | undefined,
    queryFn: ({ pageParam }) =>
      call(
        api.GET("/api/v1/tickets/{id}/comments", {
          params: { path: { id: ticket.id }, query: { cursor: pageParam, limit: 100 } },
        }),
      ),
    getNextPageParam: (page) => page.next_cursor ?? undefined,
  });
  const [error, setError] = useState<string | null>(null);
  const [idempotency, setKey] = useState(idempotencyKey);
  const form = useForm({
    initialValues: { body: "", internal: false },
    validate: { body: (v) => (v.trim() ? null : "Write something first") },
  });
  const submit = form.onSubmit(async ({ body, internal }) => {
    setError(null);
    try {
      await call(
        api.POST("/api/v1/tickets/{id}/comments", {
          params: { path: { id: ticket.id }, header: { "Idempotency-Key": idempotency } },
          body: { body, internal },
        }),
      );
      setKey(idempotencyKey());
      form.reset();
      void client.invalidateQueries({ queryKey: key });
      void client.invalidateQueries({ queryKey: ["timeline", ticket.id] });
    } catch (err) {
      setError(showSubmitError(form, err));
    }
  });
  const items = comments.data?.pages.flatMap((p) => p.items) ?? [];
  const internal = form.getValues().internal;

  return (
    <Stack component="section" aria-labelledby="conversation">
      <Title order={2} size="h4" id="conversation">
        Conversation
      </Title>
      {comments.isPending ? (
        <Loading label="Loading comments" />
      ) : comments.isError ? (
        <Failed error={comments.error} onRetry={() => void comments.refetch()} />
      ) : items.length === 0 ? (
        <Empty title="No replies yet" />
      ) : (
        <Stack gap="xs" component="ol" p={0} style={{ listStyle: "none" }}>
          {items.map((c) => (
            <Card
              key={c.id}
              component="li"
              withBorder
              padding="sm"
              className={c.internal ? "internal-note" : undefined}
              data-testid={c.internal ? "internal-note" : "comment"}
              aria-label={c.internal ? "Internal note" : "Reply"}
            >
              <Group justify="space-between" mb={4}>
                <Group gap="xs">
                  <Text fw={500} size="sm">
                    {nameOf(c.author_id)}
                  </Text>
                  {c.internal && (
                    <Badge color="yellow" variant="filled" leftSection={<IconLock size={12} aria-hidden />}>
                      Internal note · not visible to the requester
                    </Badge>
                  )}
                </Group>
                <Text size="xs" c="dimmed">
                  {dateTime(c.created_at)}
                </Text>
              </Group>
              <Text size="sm" className="pre-wrap">
                {c.body}
              </Text>
            </Card>
          ))}
        </Stack>
      )}
      {comments.hasNextPage && (
        <Button variant="default" onClick={() => void comments.fetchNextPage()}>
          Older replies
        </Button>
      )}
      <form onSubmit={submit} noValidate>
        <Stack gap="xs" className={internal ? "internal-note" : undefined} p={internal ? "xs" : 0}>
          {error && (
            <Text c="red" size="sm" role="alert">
              {error}
            </Text>
          )}
          <Textarea
            label={internal ? "Internal note (staff only)" : "Reply"}
            placeholder={internal ? "Only your team sees this" : "Write a reply"}
            autosize
            minRows={3}
            {...form.getInputProps("body")}
          />
          <Group justify="space-between">
            {canNote ? (
              <Switch label="Internal note" {...form.getInputProps("internal", { type: "checkbox" })} />
            ) : (
              <span />
            )}
            <Button type="submit" color={internal ? "yellow" : undefined} loading={form.submitting}>
              {internal ? "Add internal note" : "Send reply"}
            </Button>
          </Group>
        </Stack>
      </form>
    </Stack>
  );
}
