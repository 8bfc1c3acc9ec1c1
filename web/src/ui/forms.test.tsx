import { useForm } from "@mantine/form";
import { renderHook, act } from "@testing-library/react";
import { describe, expect, it } from "vitest";
import { ApiError } from "../api/problem";
import { showSubmitError } from "./forms";

describe("a failed submit", () => {
  it("puts the API's field errors beside the form's fields and the rest above", () => {
    const { result } = renderHook(() =>
      useForm({ initialValues: { current_password: "", new_password: "" } }),
    );
    let message: string | null = "";
    act(() => {
      message = showSubmitError(
        result.current,
        new ApiError(422, {
          errors: [
            { field: "current_password", message: "is not your current password" },
            { field: "organization", message: "is archived" },
          ],
        }),
      );
    });
    expect(result.current.errors).toEqual({ current_password: "Is not your current password" });
    expect(message).toBe("organization: Is archived");
  });
});
