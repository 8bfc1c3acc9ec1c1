import { Alert, Badge, Button, Card, Group, Stack, Text, Textarea } from "@mantine/core";
import { IconLock } from "@tabler/icons-react";
import { useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api, call, ifMatch } from "../api/client";
import { ApiError } from "../api/problem";
import type { components } from "../api/schema";
import { atLeast, useSession } from "../auth/useSession";
import { notifyError } from "../ui/forms";
import { dateTime } from "../ui/time";
import type { Attachment } from "../api/files";
import { CommentFiles } from "./Attachments";

type Comment = components["schemas"]["Comment"];

/**
 * One comment or internal note. Its author (and admins, who moderate) may edit or delete it;
 * both send If-Match with the version the person saw, and a 412 shows the newer text instead of
 * replacing it.
 */
export function CommentItem({
  comment: c,
  author,
  listKey,
  files,
  fromCustomer,
}: {
  comment: Comment;
  author: string;
  /** Written by a customer (the requester, or one copied in), not by the support team. */
  fromCustomer: boolean;
  listKey: unknown[];
  /** The files the comment carries. */
  files: Attachment[];
}) {
  const session = useSession();
  const client = useQueryClient();
  const mayChange = c.author_id === session?.user.id || atLeast(session?.role, "admin");
  const [draft, setDraft] = useState<{ base: Comment; body: string } | null>(null);
  const [conflict, setConflict] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function current(): Promise<Comment | undefined> {
    await client.invalidateQueries({ queryKey: listKey });
    const pages = client.getQueryData<{ pages: { items: Comment[] }[] }>(listKey);
    return pages?.pages.flatMap((p) => p.items).find((x) => x.id === c.id);
  }

  async function save() {
    if (!draft) return;
    setBusy(true);
    try {
      await call(
        api.PATCH("/api/v1/comments/{id}", {
          params: { path: { id: c.id }, header: ifMatch(draft.base.version) },
          body: { body: draft.body },
        }),
      );
      setDraft(null);
      setConflict(null);
      void client.invalidateQueries({ queryKey: listKey });
    } catch (err) {
      if (err instanceof ApiError && err.status === 412) {
        const now = await current();
        if (now) {
          // Keep the person's text; the next save goes on top of the version they have now seen.
          setConflict(now.body);
          setDraft({ base: now, body: draft.body });
        }
      } else {
        notifyError(err, "Could not save the comment");
      }
    } finally {
      setBusy(false);
    }
  }

  async function remove() {
    setBusy(true);
    try {
      await call(api.DELETE("/api/v1/comments/{id}", { params: { path: { id: c.id }, header: ifMatch(c.version) } }));
      void client.invalidateQueries({ queryKey: listKey });
    } catch (err) {
      if (err instanceof ApiError && err.status === 412) {
        await current();
        notifyError(err, "It was edited meanwhile: read it again before deleting");
      } else {
        notifyError(err, "Could not delete the comment");
      }
    } finally {
      setBusy(false);
    }
  }

  return (
    <Card
      component="li"
      withBorder
      padding="sm"
      className={c.internal ? "internal-note" : fromCustomer ? "from-customer" : "from-team"}
      data-testid={c.internal ? "internal-note" : "comment"}
      data-from={fromCustomer ? "customer" : "team"}
      aria-label={c.internal ? "Internal note" : fromCustomer ? "Customer's message" : "Team's reply"}
    >
      <Group justify="space-between" mb={4}>
        <Group gap="xs">
          <Text fw={500} size="sm">
            {author}
          </Text>
          {!c.internal && (
            <Badge color={fromCustomer ? "gray" : "blue"} variant="light" size="sm">
              {fromCustomer ? "Customer" : "Team"}
            </Badge>
          )}
          {c.internal && (
            <Badge color="yellow" variant="filled" leftSection={<IconLock size={12} aria-hidden />}>
              Internal note · not visible to the requester
            </Badge>
          )}
        </Group>
        <Text size="xs" c="dimmed">
          {dateTime(c.created_at)}
          {c.version > 1 ? " · edited" : ""}
        </Text>
      </Group>
      {draft ? (
        <Stack gap="xs">
          {conflict !== null && (
            <Alert color="yellow" role="alert" title="Edited by someone else meanwhile">
              <Text size="sm">It now reads:</Text>
              <Text size="sm" className="pre-wrap">
                {conflict}
              </Text>
              <Text size="sm">Your text is kept below: save again to replace it, or cancel.</Text>
            </Alert>
          )}
          <Textarea
            label="Edit comment"
            autosize
            minRows={2}
            value={draft.body}
            onChange={(e) => setDraft({ ...draft, body: e.currentTarget.value })}
          />
          <Group justify="flex-end">
            <Button
              variant="default"
              size="xs"
              onClick={() => {
                setDraft(null);
                setConflict(null);
              }}
            >
              Cancel
            </Button>
            <Button size="xs" onClick={() => void save()} loading={busy}>
              Save comment
            </Button>
          </Group>
        </Stack>
      ) : (
        <Text size="sm" className="pre-wrap">
          {c.body}
        </Text>
      )}
      <CommentFiles items={files} />
      {mayChange && !draft && (
        <Group gap="xs" mt={4} justify="flex-end">
          <Button size="compact-xs" variant="subtle" onClick={() => setDraft({ base: c, body: c.body })}>
            Edit
          </Button>
          <Button size="compact-xs" variant="subtle" color="red" onClick={() => void remove()} loading={busy}>
            Delete
          </Button>
        </Group>
      )}
    </Card>
  );
}
