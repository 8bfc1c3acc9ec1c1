import { Alert, MultiSelect, Select, TagsInput, Text, TextInput, Textarea } from "@mantine/core";
import { DateTimePicker } from "@mantine/dates";
import { useForm } from "@mantine/form";
import { useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import { useNavigate } from "react-router";
import { api, call, idempotencyKey } from "../api/client";
import { atLeast, useSession } from "../auth/useSession";
import { FormModal } from "../ui/FormModal";
import { notifyDone, useSubmit } from "../ui/forms";
import { ProjectForm } from "../projects/ProjectForm";
import { PRIORITIES, type Priority } from "./model";
import { isAgent, personOptions, usePeople, useProjects } from "./reference";

interface Values {
  project_id: string;
  title: string;
  description: string;
  priority: Priority;
  assignee_ids: string[];
  labels: string[];
  due_at: string | null;
  requester_id: string | null;
}

/**
 * The create dialog: staff fill every field, requesters the essentials. `projectId` chooses the
 * project (a project's page). Without a project to
 * file into, it says so and (for managers) offers to make one.
 */
export function CreateTicket({
  opened,
  onClose,
  projectId,
}: {
  opened: boolean;
  onClose: () => void;
  projectId?: string;
}) {
  const role = useSession()?.role;
  const staff = atLeast(role, "agent");
  const canMakeProjects = atLeast(role, "manager");
  const [makingProject, setMakingProject] = useState(false);
  const projects = useProjects();
  const people = usePeople();
  const client = useQueryClient();
  const navigate = useNavigate();
  // One key per dialog: a retried submit (a lost answer) files the ticket once.
  const [key, setKey] = useState(idempotencyKey);
  const form = useForm<Values>({
    initialValues: {
      project_id: projectId ?? "",
      title: "",
      description: "",
      priority: "medium",
      assignee_ids: [],
      labels: [],
      due_at: null,
      requester_id: null,
    },
    validate: {
      project_id: (v) => (v ? null : "Choose a project"),
      title: (v) => (v.trim() ? null : "Give the ticket a title"),
    },
  });
  const projectOptions = (projects.data ?? []).map((p) => ({ value: p.id, label: `${p.key} · ${p.name}` }));
  const { submit, error } = useSubmit(form, async (v) => {
    const body = staff
      ? {
          project_id: v.project_id,
          title: v.title,
          description: v.description || undefined,
          priority: v.priority,
          assignee_ids: v.assignee_ids,
          labels: v.labels,
          due_at: v.due_at ? new Date(v.due_at).toISOString() : undefined,
          requester_id: v.requester_id ?? undefined,
        }
      : { project_id: v.project_id, title: v.title, description: v.description || undefined, priority: v.priority };
    const ticket = await call(
      api.POST("/api/v1/tickets", { body, params: { header: { "Idempotency-Key": key } } }),
    );
    setKey(idempotencyKey());
    form.reset();
    void client.invalidateQueries({ queryKey: ["tickets"] });
    notifyDone(`Created ${ticket.key}`);
    onClose();
    navigate(`/tickets/${ticket.key}`);
  });

  const noProjects = projects.isSuccess && projects.data.length === 0;
  if (noProjects || makingProject) {
    return (
      <>
        <FormModal
          opened={opened && !makingProject}
          onClose={onClose}
          title="New ticket"
          error={null}
          onSubmit={(e) => {
            e.preventDefault();
            if (canMakeProjects) setMakingProject(true);
            else onClose();
          }}
          submitLabel={canMakeProjects ? "Create a project" : "Close"}
          submitting={false}
        >
          <Alert color="blue" title="There is no project to file into yet">
            <Text size="sm">
              Every ticket belongs to a project.{" "}
              {canMakeProjects ? "Create the first one, then file the ticket." : "Ask a manager to create one."}
            </Text>
          </Alert>
        </FormModal>
        <ProjectForm
          opened={opened && makingProject}
          onClose={() => setMakingProject(false)}
          onCreated={(p) => {
            form.setFieldValue("project_id", p.id);
            setMakingProject(false);
          }}
        />
      </>
    );
  }
  return (
    <FormModal
      opened={opened}
      onClose={onClose}
      title="New ticket"
      size="lg"
      error={error}
      onSubmit={submit}
      submitLabel="Create ticket"
      submitting={form.submitting}
    >
      <Select
        label="Project"
        required
        data={projectOptions}
        searchable
        nothingFoundMessage="No such project"
        {...form.getInputProps("project_id")}
      />
      <TextInput label="Title" required data-autofocus {...form.getInputProps("title")} />
      <Textarea label="Description" autosize minRows={3} maxRows={12} {...form.getInputProps("description")} />
      <Select label="Priority" data={PRIORITIES} allowDeselect={false} {...form.getInputProps("priority")} />
      {staff && (
        <>
          <MultiSelect
            label="Assignees"
            data={personOptions(people.data, isAgent)}
            searchable
            {...form.getInputProps("assignee_ids")}
          />
          <Select
            label="Requester"
            description="Leave empty to file it as yourself"
            data={personOptions(people.data)}
            searchable
            clearable
            {...form.getInputProps("requester_id")}
          />
          <TagsInput label="Labels" {...form.getInputProps("labels")} />
          <DateTimePicker label="Due" clearable valueFormat="YYYY-MM-DD HH:mm" {...form.getInputProps("due_at")} />
        </>
      )}
    </FormModal>
  );
}
