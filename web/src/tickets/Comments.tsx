import { Button, CloseButton, FileButton, Group, Stack, Switch, Text, Textarea, Title } from "@mantine/core";
import { IconPaperclip } from "@tabler/icons-react";
import { useForm } from "@mantine/form";
import { useInfiniteQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api, call, idempotencyKey } from "../api/client";
import { atLeast, useSession } from "../auth/useSession";
import { notifyError, useSubmit } from "../ui/forms";
import { Empty, Failed, Loading } from "../ui/states";
import type { Attachment } from "../api/files";
import { pastedFiles, UploadProgress, useAttachments, useUploader } from "./Attachments";
import { CommentItem } from "./CommentItem";
import type { Ticket } from "./model";
import { usePeople, usePersonName } from "./reference";

/** The conversation: public replies, and for staff the internal notes, marked as such. */
export function Comments({ ticket }: { ticket: Ticket }) {
  const role = useSession()?.role;
  const canNote = atLeast(role, "agent");
  const canReply = role === "requester" || canNote;
  const nameOf = usePersonName();
  const people = usePeople();
  // A customer's message: the ticket's requester, or any requester copied in.
  const fromCustomer = (authorId: string) =>
    authorId === ticket.requester_id || people.data?.find((p) => p.id === authorId)?.role === "requester";
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
  const files = useAttachments(ticket.id);
  const { upload, progress } = useUploader(ticket.id);
  // Files uploaded for the reply being written; the reply carries them when it is sent.
  const [pending, setPending] = useState<Attachment[]>([]);
  async function attach(chosen: File[]) {
    const stored = await upload(chosen, form.getValues().internal);
    setPending((p) => [...p, ...stored]);
  }
  async function unattach(a: Attachment) {
    try {
      await call(api.DELETE("/api/v1/attachments/{id}", { params: { path: { id: a.id } } }));
      setPending((p) => p.filter((x) => x.id !== a.id));
      void client.invalidateQueries({ queryKey: ["attachments", ticket.id] });
    } catch (err) {
      notifyError(err, `Could not remove ${a.filename}`);
    }
  }
  const form = useForm({
    initialValues: { body: "", internal: false },
    validate: { body: (v) => (v.trim() ? null : "Write something first") },
  });
  const { submit, error } = useSubmit(form, async ({ body, internal }) => {
    await call(
      api.POST("/api/v1/tickets/{id}/comments", {
        params: { path: { id: ticket.id }, header: { "Idempotency-Key": idempotency } },
        body: { body, internal, attachment_ids: pending.map((a) => a.id) },
      }),
    );
    setKey(idempotencyKey());
    setPending([]);
    form.reset();
    void client.invalidateQueries({ queryKey: ["attachments", ticket.id] });
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
        <Empty title="No replies yet">{canReply ? "Write the first reply below." : undefined}</Empty>
      ) : (
        <Stack gap="xs" component="ol" p={0} style={{ listStyle: "none" }}>
          {items.map((c) => (
            <CommentItem
              key={c.id}
              comment={c}
              author={nameOf(c.author_id)}
              fromCustomer={fromCustomer(c.author_id)}
              listKey={key}
              files={(files.data ?? []).filter((a) => a.comment_id === c.id)}
            />
          ))}
        </Stack>
      )}
      {comments.hasNextPage && (
        <Button variant="default" onClick={() => void comments.fetchNextPage()}>
          Older replies
        </Button>
      )}
      <form
        onSubmit={submit}
        noValidate
        onDragOver={(e) => e.preventDefault()}
        onDrop={(e) => {
          e.preventDefault();
          void attach(Array.from(e.dataTransfer.files));
        }}
      >
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
            onPaste={(e) => {
              const pasted = pastedFiles(e);
              if (pasted.length) {
                e.preventDefault();
                void attach(pasted);
              }
            }}
            {...form.getInputProps("body")}
          />
          {pending.length > 0 && (
            <Group gap="xs" aria-label="Files to send with the reply">
              {pending.map((a) => (
                <Group key={a.id} gap={2} wrap="nowrap" className="pending-file">
                  <Text size="xs">{a.filename}</Text>
                  <CloseButton
                    size="xs"
                    aria-label={`Do not send ${a.filename}`}
                    onClick={() => void unattach(a)}
                  />
                </Group>
              ))}
            </Group>
          )}
          <UploadProgress progress={progress} />
          <Group justify="space-between">
            <Group gap="sm">
              {canNote && <Switch label="Internal note" {...form.getInputProps("internal", { type: "checkbox" })} />}
              {canReply && (
                <FileButton
                  onChange={(chosen) => void attach(chosen)}
                  multiple
                  inputProps={{ "aria-label": "Choose files to attach" }}
                >
                  {(props) => (
                    <Button {...props} variant="subtle" size="xs" leftSection={<IconPaperclip size={14} />}>
                      Attach files
                    </Button>
                  )}
                </FileButton>
              )}
            </Group>
            <Button type="submit" color={internal ? "yellow" : undefined} loading={form.submitting}>
              {internal ? "Add internal note" : "Send reply"}
            </Button>
          </Group>
        </Stack>
      </form>
    </Stack>
  );
}
