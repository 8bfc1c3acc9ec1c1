import { Select, SegmentedControl, Stack, Text, TextInput, Textarea } from "@mantine/core";
import { DateInput } from "@mantine/dates";
import { useForm } from "@mantine/form";
import { useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { api, call, idempotencyKey } from "../api/client";
import { FormModal } from "../ui/FormModal";
import { notifyDone, useSubmit } from "../ui/forms";
import { isAgent, personOptions, usePeople } from "../tickets/reference";
import { PROJECT_STATUSES, type Project, type ProjectStatus } from "./model";

interface Values {
  name: string;
  key: string;
  description: string;
  status: ProjectStatus;
  start_date: string | null;
  target_date: string | null;
  lead_id: string | null;
  visibility: Project["visibility"];
}

const staff = (p: Parameters<typeof isAgent>[0]) => p.role !== "requester";

/** A key suggested from a name: its first word's letters, up to four. */
export function suggestKey(name: string): string {
  const word = name.trim().split(/\s+/)[0] ?? "";
  return word.replace(/[^A-Za-z]/g, "").toUpperCase().slice(0, 4);
}

/**
 * Creates a project (`project` absent) or edits one: its name, description and plan (status,
 * dates, lead) and who may see it. The server's answer settles every field (a target before the
 * start is refused there too).
 */
export function ProjectForm({
  opened,
  onClose,
  project,
  onCreated,
}: {
  opened: boolean;
  onClose: () => void;
  project?: Project;
  onCreated?: (p: Project) => void;
}) {
  const client = useQueryClient();
  const people = usePeople();
  const [key, setKey] = useState(idempotencyKey);
  const form = useForm<Values>({
    initialValues: {
      name: project?.name ?? "",
      key: project?.key ?? "",
      description: project?.description ?? "",
      status: project?.status ?? "active",
      start_date: project?.start_date ?? null,
      target_date: project?.target_date ?? null,
      lead_id: project?.lead_id ?? null,
      visibility: project?.visibility ?? "org",
    },
    validate: {
      name: (v) => (v.trim() ? null : "Name the project"),
      key: (v) => (project || /^[A-Z]{2,10}$/.test(v) ? null : "2 to 10 capital letters, like OPS"),
      target_date: (v, all) =>
        v && all.start_date && v < all.start_date ? "The target cannot be before the start" : null,
    },
  });
  const { submit, error, limited } = useSubmit(form, async (v) => {
    const plan = {
      status: v.status,
      start_date: v.start_date || null,
      target_date: v.target_date || null,
      lead_id: v.lead_id || null,
      visibility: v.visibility,
    };
    const saved = project
      ? await call(
          api.PATCH("/api/v1/projects/{id}", {
            params: { path: { id: project.id } },
            body: { name: v.name, description: v.description || null, ...plan },
          }),
        )
      : await call(
          api.POST("/api/v1/projects", {
            body: {
              name: v.name,
              key: v.key,
              description: v.description || undefined,
              status: plan.status,
              start_date: plan.start_date ?? undefined,
              target_date: plan.target_date ?? undefined,
              lead_id: plan.lead_id ?? undefined,
              visibility: plan.visibility,
            },
            params: { header: { "Idempotency-Key": key } },
          }),
        );
    notifyDone(project ? `Saved ${saved.key}` : `Created ${saved.key}`);
    void client.invalidateQueries({ queryKey: ["projects"] });
    void client.invalidateQueries({ queryKey: ["project", saved.id] });
    if (!project) {
      setKey(idempotencyKey());
      form.reset();
      onCreated?.(saved);
    }
    onClose();
  });

  return (
    <FormModal
      opened={opened}
      onClose={onClose}
      title={project ? `Edit ${project.key}` : "New project"}
      error={error}
      limited={limited}
      onSubmit={submit}
      submitLabel={project ? "Save project" : "Create project"}
      submitting={form.submitting}
    >
      <TextInput
        label="Name"
        required
        data-autofocus
        {...form.getInputProps("name")}
        onChange={(e) => {
          const name = e.currentTarget.value;
          // Until the key is typed by hand, it follows the name.
          if (!project && form.getValues().key === suggestKey(form.getValues().name)) {
            form.setFieldValue("key", suggestKey(name));
          }
          form.setFieldValue("name", name);
        }}
      />
      {!project && (
        <TextInput
          label="Key"
          description="Prefix of its ticket keys, like OPS-42; it cannot change later"
          required
          {...form.getInputProps("key")}
          onChange={(e) => form.setFieldValue("key", e.currentTarget.value.toUpperCase())}
        />
      )}
      <Textarea label="Description" autosize minRows={2} {...form.getInputProps("description")} />
      <Select label="Status" data={PROJECT_STATUSES} allowDeselect={false} {...form.getInputProps("status")} />
      <DateInput label="Start" clearable valueFormat="YYYY-MM-DD" {...form.getInputProps("start_date")} />
      <DateInput label="Target" clearable valueFormat="YYYY-MM-DD" {...form.getInputProps("target_date")} />
      <Select
        label="Lead"
        data={personOptions(people.data, staff)}
        searchable
        clearable
        {...form.getInputProps("lead_id")}
      />
      <Stack gap={4}>
        <Text size="sm" fw={500} id="visibility-label">
          Who sees it
        </Text>
        <SegmentedControl
          aria-labelledby="visibility-label"
          data={[
            { value: "org", label: "Everyone in the organisation" },
            { value: "members", label: "Only its members" },
          ]}
          {...form.getInputProps("visibility")}
        />
        {form.getValues().visibility === "members" && (
          <Text size="xs" c="dimmed">
            Staff who are not members (owners and admins aside) will not see it or its tickets.
            Add members on the project's page.
          </Text>
        )}
      </Stack>
    </FormModal>
  );
}
