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
});
