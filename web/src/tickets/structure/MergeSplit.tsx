import { Alert, Anchor, Button, Checkbox, Group, Stack, Text, TextInput } from "@mantine/core";
import { useForm } from "@mantine/form";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { Link, useNavigate } from "react-router";
import { api, call, idempotencyKey } from "../../api/client";
import { FormModal } from "../../ui/FormModal";
import { notifyDone, notifyError, useSubmit } from "../../ui/forms";
import type { Ticket } from "../model";
import { usePersonName } from "../reference";

/** Merge this ticket into another: everything moves there, this one is closed. */
export function MergeDialog({ ticket: t, opened, onClose }: { ticket: Ticket; opened: boolean; onClose: () => void }) {
  const client = useQueryClient();
  const navigate = useNavigate();
  const [key] = useState(idempotencyKey);
  const form = useForm({
    initialValues: { into: "" },
    validate: { into: (v) => (v.trim() ? null : "Name the ticket to merge into, like OPS-42") },
  });
  const { submit, error } = useSubmit(form, async ({ into }) => {
    const target = await call(
      api.POST("/api/v1/tickets/{id}/merge", {
        params: { path: { id: t.id }, header: { "Idempotency-Key": key } },
        body: { into: into.trim().toUpperCase() },
      }),
    );
    notifyDone(`Merged ${t.key} into ${target.key}; undo it from ${t.key} within 10 minutes`);
    void client.invalidateQueries({ queryKey: ["ticket"] });
    void client.invalidateQueries({ queryKey: ["tickets"] });
    onClose();
    navigate(`/tickets/${target.key}`);
  });
  return (
    <FormModal
      opened={opened}
      onClose={onClose}
      title={`Merge ${t.key} into another ticket`}
      error={error}
      onSubmit={submit}
      submitLabel="Merge"
      submitting={form.submitting}
    >
      <Text size="sm">
        Its replies, files and watchers move to the other ticket, it is closed, and mail answering it
        lands there. You can undo this for 10 minutes, while nothing is added to the other ticket.
      </Text>
      <TextInput label="Merge into" placeholder="OPS-42" required data-autofocus {...form.getInputProps("into")} />
    </FormModal>
  );
}

/** Move chosen replies into a new ticket of the same project and requester. */
export function SplitDialog({ ticket: t, opened, onClose }: { ticket: Ticket; opened: boolean; onClose: () => void }) {
  const client = useQueryClient();
  const navigate = useNavigate();
  const nameOf = usePersonName();
  const [key] = useState(idempotencyKey);
  const comments = useQuery({
    queryKey: ["comments", t.id, "split"],
    queryFn: () =>
      call(api.GET("/api/v1/tickets/{id}/comments", { params: { path: { id: t.id }, query: { limit: 100 } } })),
    enabled: opened,
  });
  const form = useForm({
    initialValues: { title: "", comment_ids: [] as string[] },
    validate: {
      title: (v) => (v.trim() ? null : "Give the new ticket a title"),
      comment_ids: (v) => (v.length ? null : "Choose the replies to move"),
    },
  });
  const { submit, error } = useSubmit(form, async ({ title, comment_ids }) => {
    const created = await call(
      api.POST("/api/v1/tickets/{id}/split", {
        params: { path: { id: t.id }, header: { "Idempotency-Key": key } },
        body: { title, comment_ids },
      }),
    );
    notifyDone(`Split into ${created.key}`);
    void client.invalidateQueries({ queryKey: ["comments", t.id] });
    void client.invalidateQueries({ queryKey: ["tickets"] });
    onClose();
    navigate(`/tickets/${created.key}`);
  });
  const items = comments.data?.items ?? [];
  return (
    <FormModal
      opened={opened}
      onClose={onClose}
      title={`Split replies off ${t.key}`}
      size="lg"
      error={error}
      onSubmit={submit}
      submitLabel="Split into a new ticket"
      submitting={form.submitting}
    >
      <TextInput label="New ticket's title" required data-autofocus {...form.getInputProps("title")} />
      <Checkbox.Group label="Replies to move" required {...form.getInputProps("comment_ids")}>
        <Stack gap="xs" mt="xs">
          {items.length === 0 && (
            <Text size="sm" c="dimmed">
              {comments.isPending ? "Loading replies…" : "This ticket has no replies to split off."}
            </Text>
          )}
          {items.map((c) => (
            <Checkbox
              key={c.id}
              value={c.id}
              label={
                <Text size="sm" lineClamp={2}>
                  <b>{nameOf(c.author_id)}:</b> {c.body}
                </Text>
              }
            />
          ))}
        </Stack>
      </Checkbox.Group>
    </FormModal>
  );
}

/** Said on a merged ticket: where it went, and (for agents) the undo. */
export function MergedNotice({ ticket: t, canEdit }: { ticket: Ticket; canEdit: boolean }) {
  const client = useQueryClient();
  const [busy, setBusy] = useState(false);
  const target = useQuery({
    queryKey: ["ticket", t.merged_into_id],
    queryFn: () => call(api.GET("/api/v1/tickets/{id}", { params: { path: { id: t.merged_into_id ?? "" } } })),
    enabled: Boolean(t.merged_into_id),
  });
  if (!t.merged_into_id) return null;
  async function undo() {
    setBusy(true);
    try {
      await call(
        api.POST("/api/v1/tickets/{id}/unmerge", {
          params: { path: { id: t.id }, header: { "Idempotency-Key": idempotencyKey() } },
        }),
      );
      notifyDone("Merge undone");
      void client.invalidateQueries({ queryKey: ["ticket"] });
      void client.invalidateQueries({ queryKey: ["comments", t.id] });
    } catch (err) {
      notifyError(err, "Could not undo the merge");
    } finally {
      setBusy(false);
    }
  }
  const key = target.data?.key;
  return (
    <Alert color="gray" title="Merged" data-testid="merged-notice">
      <Group justify="space-between">
        <Text size="sm">
          This ticket was merged into{" "}
          {key ? (
            <Anchor component={Link} to={`/tickets/${key}`}>
              {key}
            </Anchor>
          ) : (
            "another ticket"
          )}
          ; its replies are there now.
        </Text>
        {canEdit && (
          <Button size="xs" variant="default" onClick={() => void undo()} loading={busy}>
            Undo merge
          </Button>
        )}
      </Group>
    </Alert>
  );
}
