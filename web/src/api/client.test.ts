import { describe, expect, it } from "vitest";
import { ApiError, call } from "./client";

describe("a failed API call", () => {
  it("throws the problem openapi-fetch read from the body, field errors included", async () => {
    const problem = {
      status: 422,
      code: "validation_failed",
      errors: [{ field: "key", message: "must be 2 to 10 capital letters" }],
    };
    const failed = call(Promise.resolve({ error: problem, response: new Response(null, { status: 422 }) }));
    await expect(failed).rejects.toBeInstanceOf(ApiError);
    const err = (await failed.catch((e: unknown) => e)) as ApiError;
    expect(err.code).toBe("validation_failed");
    expect(err.fieldErrors()).toEqual({ key: "Must be 2 to 10 capital letters" });
  });

  it("returns the data of a success", async () => {
    const ok = await call(Promise.resolve({ data: { id: "t1" }, response: new Response(null, { status: 200 }) }));
    expect(ok).toEqual({ id: "t1" });
  });
});
