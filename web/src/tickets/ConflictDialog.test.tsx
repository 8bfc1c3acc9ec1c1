import { MantineProvider } from "@mantine/core";
import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import { ConflictDialog } from "./ConflictDialog";
import type { Ticket } from "./model";

const base = {
  id: "t1",
  key: "OPS-1",
  project_id: "p1",
  number: 1,
  title: "Printer on fire",
  description: null,
  status: "open",
  priority: "medium",
  assignee_ids: [],
  requester_id: null,
  labels: [],
  due_at: null,
  first_response_due_at: null,
  resolution_due_at: null,
  version: 3,
  created_by: null,
  created_at: "2026-11-30T10:00:00Z",
  updated_at: "2026-11-30T10:00:00Z",
  resolved_at: null,
  closed_at: null,
  deleted_at: null,
  parent_id: null,
  merged_into_id: null,
  subtasks: { total: 0, done: 0 },
} as Ticket;

describe("the conflict dialog", () => {
  it("shows what changed meanwhile beside the person's own change, and lets them choose", async () => {
    const current = { ...base, title: "Printer fixed", status: "resolved", version: 5 } as Ticket;
    const reapply = vi.fn();
    const discard = vi.fn();
    render(
      <MantineProvider>
        <ConflictDialog
          conflict={{ patch: { title: "Printer on fire again" }, base, current }}
          onReapply={reapply}
          onDiscard={discard}
        />
      </MantineProvider>,
    );
    const dialog = await screen.findByRole("dialog", { name: "Someone else changed this ticket" });
    expect(within(dialog).getByText(/now at version 5/)).toBeInTheDocument();
    const rows = within(dialog).getAllByRole("row").map((r) => r.textContent);
    expect(rows).toContain("TitlePrinter on firePrinter fixedPrinter on fire again");
    expect(rows).toContain("Statusopenresolved—");
    await userEvent.click(within(dialog).getByRole("button", { name: "Apply my change again" }));
    expect(reapply).toHaveBeenCalledOnce();
    await userEvent.click(within(dialog).getByRole("button", { name: "Keep their version" }));
    expect(discard).toHaveBeenCalledOnce();
  });

  it("renders nothing without a conflict", () => {
    render(
      <MantineProvider>
        <ConflictDialog conflict={null} onReapply={() => {}} onDiscard={() => {}} />
      </MantineProvider>,
    );
    expect(screen.queryByRole("dialog")).toBeNull();
  });
});
