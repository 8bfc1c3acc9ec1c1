import { describe, expect, it } from "vitest";
import { dateRange, percentDone } from "./model";

describe("project model", () => {
  it("counts progress as a whole percentage", () => {
    expect(percentDone({ total: 0, done: 0 })).toBe(0);
    expect(percentDone({ total: 3, done: 1 })).toBe(33);
    expect(percentDone({ total: 4, done: 4 })).toBe(100);
  });

  it("names a plan's dates however many there are", () => {
    expect(dateRange(null, null)).toBe("");
    expect(dateRange("2027-01-04", null)).toMatch(/^from /);
    expect(dateRange(null, "2027-03-31")).toMatch(/^until /);
    expect(dateRange("2027-01-04", "2027-03-31")).toContain("→");
  });
});
