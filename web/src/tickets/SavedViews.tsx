import { ActionIcon, Button, Group, Menu, Text, TextInput } from "@mantine/core";
import { useForm } from "@mantine/form";
import { IconBookmark, IconTrash } from "@tabler/icons-react";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { useNavigate } from "react-router";
import { api, call, idempotencyKey } from "../api/client";
import { FormModal } from "../ui/FormModal";
import { notifyDone, useSubmit } from "../ui/forms";
import { useAction } from "../ui/useAction";

/** The person's saved views of the ticket list: open one, save the current one, delete. */
export function SavedViews({ query }: { query: string }) {
  const client = useQueryClient();
  const navigate = useNavigate();
  const [saving, setSaving] = useState(false);
  const views = useQuery({ queryKey: ["views"], queryFn: () => call(api.GET("/api/v1/views")) });
  const remove = useAction((id: string) => call(api.DELETE("/api/v1/views/{id}", { params: { path: { id } } })), {
    invalidate: [["views"]],
  });
  const form = useForm({
    initialValues: { name: "" },
    validate: { name: (v) => (v.trim() ? null : "Name the view") },
  });
  const { submit: save, error } = useSubmit(form, async ({ name }) => {
    await call(
      api.POST("/api/v1/views", {
        body: { name, query },
        params: { header: { "Idempotency-Key": idempotencyKey() } },
      }),
    );
    void client.invalidateQueries({ queryKey: ["views"] });
    notifyDone(`Saved view “${name}”`);
    form.reset();
    setSaving(false);
  });
  const items = views.data?.items ?? [];

  return (
    <>
      <Menu position="bottom-end" width={280}>
        <Menu.Target>
          <Button variant="default" leftSection={<IconBookmark size={16} aria-hidden />}>
            Views
          </Button>
        </Menu.Target>
        <Menu.Dropdown>
          <Menu.Item onClick={() => navigate("/tickets")}>All tickets</Menu.Item>
          <Menu.Item onClick={() => navigate("/tickets?assignee=me&status=open,in_progress,pending")}>
            Assigned to me
          </Menu.Item>
          {items.length > 0 && <Menu.Divider />}
          {items.map((v) => (
            <Group key={v.id} gap={0} wrap="nowrap">
              <Menu.Item onClick={() => navigate(`/tickets?${v.query}`)} style={{ flex: 1 }}>
                {v.name}
              </Menu.Item>
              <ActionIcon
                variant="subtle"
                color="red"
                aria-label={`Delete view ${v.name}`}
                onClick={() => remove.mutate(v.id)}
              >
                <IconTrash size={14} aria-hidden />
              </ActionIcon>
            </Group>
          ))}
          <Menu.Divider />
          <Menu.Item onClick={() => setSaving(true)}>Save current view…</Menu.Item>
        </Menu.Dropdown>
      </Menu>
      <FormModal
        opened={saving}
        onClose={() => setSaving(false)}
        title="Save this view"
        error={error}
        onSubmit={save}
        submitLabel="Save view"
        submitting={form.submitting}
      >
        <TextInput label="Name" required data-autofocus {...form.getInputProps("name")} />
        <Text size="xs" c="dimmed">
          Filters: {query || "none (all tickets)"}
        </Text>
      </FormModal>
    </>
  );
}
