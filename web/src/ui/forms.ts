import { createElement, Fragment, useState } from "react";
import type { UseFormReturnType } from "@mantine/form";
import { notifications } from "@mantine/notifications";
import { ApiError, errorMessage } from "../api/problem";
import { session } from "../api/session";

/** Whether `err` is a refusal for a limit of the organisation's plan. */
export function isPlanLimit(err: unknown): boolean {
  return err instanceof ApiError && err.code === "plan_limit_reached";
}

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
  const message = errorMessage(err);
  // Owners may take a bigger plan: say where.
  const upgrade =
    isPlanLimit(err) && session()?.role === "owner"
      ? createElement(Fragment, null, message, " ", createElement("a", { href: "/admin/settings#plan" }, "See plans and upgrade."))
      : message;
  notifications.show({ color: "red", title, message: upgrade });
}

export function notifyDone(message: string) {
  notifications.show({ color: "green", message });
}

/**
 * A form's submit handler around `action`: clears the last error, runs it, and shows a failure
 * beside the fields or as the returned form-level `error` (`limited` when a plan limit stopped it).
 */
export function useSubmit<T extends object>(form: UseFormReturnType<T>, action: (values: T) => Promise<void>) {
  const [error, setError] = useState<string | null>(null);
  const [limited, setLimited] = useState(false);
  const submit = form.onSubmit(async (values) => {
    setError(null);
    setLimited(false);
    try {
      await action(values);
    } catch (err) {
      setError(showSubmitError(form, err));
      setLimited(isPlanLimit(err));
    }
  });
  return { submit, error, limited };
}
