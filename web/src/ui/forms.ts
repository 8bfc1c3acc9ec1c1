import { useState } from "react";
import type { UseFormReturnType } from "@mantine/form";
import { notifications } from "@mantine/notifications";
import { ApiError, errorMessage } from "../api/problem";

/**
 * Shows a failed submit where a person looks: field errors beside their fields (the API names
 * them as the form does), anything else as a message. Returns the message for a form-level
 * alert, or null when every error found its field.
 */
export function showSubmitError<T extends object>(
  form: UseFormReturnType<T>,
  err: unknown,
): string | null {
  if (err instanceof ApiError) {
    const fields = err.fieldErrors();
    const known = Object.keys(fields).filter((f) => f in form.getValues());
    if (known.length) {
      form.setErrors(Object.fromEntries(known.map((f) => [f, fields[f]])));
      const rest = Object.keys(fields).filter((f) => !known.includes(f));
      return rest.length ? rest.map((f) => `${f}: ${fields[f]}`).join("; ") : null;
    }
  }
  return errorMessage(err);
}

export function notifyError(err: unknown, title = "That did not work") {
  notifications.show({ color: "red", title, message: errorMessage(err) });
}

export function notifyDone(message: string) {
  notifications.show({ color: "green", message });
}

/**
 * A form's submit handler around `action`: clears the last error, runs it, and shows a failure
 * beside the fields or as the returned form-level `error`.
 */
export function useSubmit<T extends object>(form: UseFormReturnType<T>, action: (values: T) => Promise<void>) {
  const [error, setError] = useState<string | null>(null);
  const submit = form.onSubmit(async (values) => {
    setError(null);
    try {
      await action(values);
    } catch (err) {
      setError(showSubmitError(form, err));
    }
  });
  return { submit, error };
}
