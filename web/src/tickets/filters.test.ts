import { describe, expect, it } from "vitest";
import { DEFAULT_SORT, apiQuery, isFiltered, paramsFromView, viewFromParams } from "./filters";

describe("the ticket list view in the URL", () => {
  it("reads filters with the API's names and spellings", () => {
    const view = viewFromParams(
      new URLSearchParams("status=open,%20pending&priority=high&assignee=me&label=vpn&sort=-priority"),
    );
    expect(view).toEqual({
      status: ["open", "pending"],
      priority: ["high"],
      assignee: "me",
      label: "vpn",
      sort: "-priority",
    });
    expect(isFiltered(view)).toBe(true);
  });

  it("writes a stable query without defaults, and reads it back the same", () => {
    const view = viewFromParams(new URLSearchParams("sort=-created_at&priority=low,urgent&project_id=p1"));
    const query = paramsFromView(view).toString();
    expect(query).toBe("project_id=p1&priority=low%2Curgent");
    expect(viewFromParams(new URLSearchParams(query))).toEqual(view);
    expect(apiQuery(view)).toEqual({ project_id: "p1", priority: "low,urgent" });
  });

  it("treats an empty address as the unfiltered default", () => {
    const view = viewFromParams(new URLSearchParams(""));
    expect(view).toEqual({ status: [], priority: [], sort: DEFAULT_SORT });
    expect(isFiltered(view)).toBe(false);
    expect(paramsFromView(view).toString()).toBe("");
  });
});
