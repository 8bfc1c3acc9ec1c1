import { Button, Group, Stack, Switch, Text, Textarea, Title } from "@mantine/core";
import { useForm } from "@mantine/form";
import { useInfiniteQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api, call, idempotencyKey } from "../api/client";
import { atLeast, useSession } from "../auth/useSession";
import { useSubmit } from "../ui/forms";
import { Empty, Failed, Loading } from "../ui/states";
import { CommentItem } from "./CommentItem";
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
  const [idempotency, setKey] = useState(idempotencyKey);
  const form = useForm({
    initialValues: { body: "", internal: false },
    validate: { body: (v) => (v.trim() ? null : "Write something first") },
  });
  const { submit, error } = useSubmit(form, async ({ body, internal }) => {
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
            <CommentItem key={c.id} comment={c} author={nameOf(c.author_id)} listKey={key} />
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
