import { describe, expect, it } from "vitest";
import { ApiError, errorMessage, humanMessage } from "./problem";

describe("problem details as sentences", () => {
  it("uses the server's detail when it says something specific", () => {
    expect(humanMessage(409, { detail: "another project already uses the key OPS" })).toBe(
      "Another project already uses the key OPS.",
    );
  });

  it("never shows a server error's internals", () => {
    expect(humanMessage(500, { detail: "connection reset by peer" })).toBe(
      "Something went wrong on our side. Please try again.",
    );
  });

  it("puts field errors beside their fields", () => {
    const err = new ApiError(422, {
      code: "validation_failed",
      errors: [
        { field: "title", message: "must not be blank" },
        { field: "title", message: "must be at most 200 characters" },
        { field: "key", message: "must be 2 to 10 capital letters" },
      ],
    });
    expect(err.message).toBe("Some fields need attention.");
    expect(err.fieldErrors()).toEqual({
      title: "Must not be blank; must be at most 200 characters",
      key: "Must be 2 to 10 capital letters",
    });
  });

  it("explains a network failure", () => {
    expect(errorMessage(new TypeError("Failed to fetch"))).toMatch(/cannot be reached/);
  });
  it("says which plan limit stopped a change, and who can lift it", () => {
    const problem = { code: "plan_limit_reached", detail: "…", limit: "seats", value: 3, usage: 3 };
    expect(humanMessage(402, problem)).toBe(
      "Your plan allows 3 seats, and 3 are in use. An owner can upgrade the plan in Organization settings.",
    );
    const storage = { code: "plan_limit_reached", limit: "storage_bytes", value: 100_000_000, usage: 99_500_000 };
    expect(humanMessage(402, storage)).toMatch(/^Your plan allows 100\.0 MB of files, and 99\.5 MB are in use\./);
  });
});
