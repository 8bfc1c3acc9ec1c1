// The typed API client. Paths, parameters and bodies are checked against `schema.d.ts`, which
// is generated from the server's own OpenAPI document (scripts/api-types.mjs).

import createClient from "openapi-fetch";
import type { paths } from "./schema";
import { accessToken, refresh } from "./session";
import { ApiError, type Problem } from "./problem";

/** Sends the bearer token; a 401 gets one refresh and one retry. */
async function authedFetch(request: Request): Promise<Response> {
  const retry = request.clone();
  const token = await accessToken();
  if (token) request.headers.set("Authorization", `Bearer ${token}`);
  const res = await fetch(request);
  if (res.status !== 401 || !token) return res;
  const renewed = await refresh();
  if (!renewed) return res;
  retry.headers.set("Authorization", `Bearer ${renewed.accessToken}`);
  return fetch(retry);
}

export const api = createClient<paths>({ baseUrl: "", fetch: authedFetch });

/**
 * The data of a call, or its problem thrown as an ApiError. openapi-fetch has already read the
 * body (into `error`), so the problem comes from there, not from the response.
 */
export async function call<T>(
  pending: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<T> {
  const { data, error, response } = await pending;
  if (!response.ok) {
    throw new ApiError(response.status, error && typeof error === "object" ? (error as Problem) : {});
  }
  return data as T;
}

/** The ETag of a versioned resource, for If-Match. */
export function ifMatch(version: number): { "If-Match": string } {
  return { "If-Match": `"${version}"` };
}

/** A fresh Idempotency-Key for one user action (a retry of the same action reuses it). */
export function idempotencyKey(): string {
  return crypto.randomUUID();
}

export { ApiError };
