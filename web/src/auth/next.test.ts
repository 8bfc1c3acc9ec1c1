import { describe, expect, it } from "vitest";
import { safeNext } from "./next";

describe("where sign-in goes next", () => {
  it("keeps a path of this app, with its query and fragment", () => {
    expect(safeNext("/tickets/OPS-1")).toBe("/tickets/OPS-1");
    expect(safeNext("/tickets?status=open&sort=-priority#top")).toBe("/tickets?status=open&sort=-priority#top");
    expect(safeNext("/projects/a%20b")).toBe("/projects/a%20b");
  });

  it("never leaves for another site, nor for a path the router cannot open", () => {
    for (const hostile of [
      null,
      "",
      "tickets",
      "https://evil.test/",
      "//evil.test",
      "/\\evil.test",
      "/%5Cevil.test",
      "/%09/evil.test",
      "/%2F/evil.test",
      "/%0d%0aSet-Cookie:x",
      "/\t/evil.test",
      "/%E0%A4%A",
    ]) {
      expect(safeNext(hostile), String(hostile)).toBe("/tickets");
    }
  });
});
