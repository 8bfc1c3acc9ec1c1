import { MantineProvider } from "@mantine/core";
import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { render, screen } from "@testing-library/react";
import { MemoryRouter } from "react-router";
import { beforeEach, describe, expect, it, vi } from "vitest";
import type { components } from "../api/schema";
import { Billing } from "./Billing";

const role = vi.hoisted(() => ({ current: "owner" }));
vi.mock("../auth/useSession", () => ({
  useSession: () => ({ role: role.current }),
  atLeast: () => true,
}));

type PlanView = components["schemas"]["PlanView"];

const free = { key: "free", label: "Free", limits: {}, purchasable: false, is_default: true };
const team = { key: "team", label: "Team", limits: { seats: 25 }, purchasable: true, is_default: false };
const business = { key: "business", label: "Business", limits: {}, purchasable: true, is_default: false };

function view(billing: Partial<PlanView["billing"]>, plan = free): PlanView {
  return {
    plan,
    limits: plan.limits,
    usage: { seats: 1, projects: 0, storage_bytes: 0, webhooks: 0 },
    plans: [free, business, team],
    billing: { enabled: true, has_account: false, ...billing },
  } as PlanView;
}

function show(v: PlanView, url = "/admin/settings") {
  render(
    <MantineProvider>
      <QueryClientProvider client={new QueryClient()}>
        <MemoryRouter initialEntries={[url]}>
          <Billing view={v} />
        </MemoryRouter>
      </QueryClientProvider>
    </MantineProvider>,
  );
}

describe("paying for the plan", () => {
  beforeEach(() => {
    role.current = "owner";
  });

  it("offers owners every plan they can buy but the one they are on", () => {
    show(view({}, team));
    expect(screen.getByRole("button", { name: "Upgrade to Business" })).toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Upgrade to Team" })).not.toBeInTheDocument();
    expect(screen.queryByRole("button", { name: /payment method/ })).not.toBeInTheDocument();
  });

  it("sends a paying owner to the portal instead, and says when a cancelled plan ends", () => {
    show(view({ has_account: true, subscription_status: "active", cancel_at: "2027-01-31T10:00:00Z" }, team));
    expect(screen.queryByRole("button", { name: /Upgrade/ })).not.toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Change plan or payment method" })).toBeInTheDocument();
    expect(screen.getByText(/The paid plan ends on/)).toBeInTheDocument();
  });

  it("shows admins what is paid but no button", () => {
    role.current = "admin";
    show(view({ has_account: true, subscription_status: "active" }));
    expect(screen.getByText("Owners change the plan and what it costs.")).toBeInTheDocument();
    expect(screen.queryByRole("button")).not.toBeInTheDocument();
  });

  it("thanks an owner back from checkout", () => {
    show(view({}), "/admin/settings?billing=done");
    expect(screen.getByRole("status")).toHaveTextContent("as soon as Stripe confirms the payment");
  });

  it("shows nothing where the server takes no payment", () => {
    show(view({ enabled: false }));
    expect(screen.queryByTestId("billing")).not.toBeInTheDocument();
  });
});
