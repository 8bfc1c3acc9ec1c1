// Problem details (RFC 9457) as the API sends them, turned into what a person can act on.

export interface FieldError {
  field: string;
  message: string;
}

export interface Problem {
  type?: string;
  title?: string;
  status?: number;
  detail?: string;
  code?: string;
  errors?: FieldError[];
  /** Sent with 412: the resource's version now. */
  current_version?: number;
  [key: string]: unknown;
}

/** A failed API call: the HTTP status and the problem body (or what stood in for it). */
export class ApiError extends Error {
  readonly status: number;
  readonly problem: Problem;

  constructor(status: number, problem: Problem) {
    super(humanMessage(status, problem));
    this.name = "ApiError";
    this.status = status;
    this.problem = problem;
  }

  get code(): string | undefined {
    return this.problem.code;
  }

  /** Field errors by field name, for showing beside the inputs. */
  fieldErrors(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const e of this.problem.errors ?? []) {
      out[e.field] = out[e.field] ? `${out[e.field]}; ${e.message}` : capitalize(e.message);
    }
    return out;
  }
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

const BY_STATUS: Record<number, string> = {
  400: "The request could not be understood.",
  401: "Your session has ended. Please sign in again.",
  403: "Your role does not allow this.",
  404: "This no longer exists, or you cannot see it.",
  409: "This conflicts with the current state.",
  412: "Someone else changed this in the meantime.",
  413: "That is too large.",
  422: "Some fields need attention.",
  428: "This change needs the version it is based on.",
  429: "Too many requests. Please wait a moment and try again.",
  500: "Something went wrong on our side. Please try again.",
  503: "The server is busy. Please try again shortly.",
};

/** What each plan limit counts, as a person reads it. */
const LIMITS: Record<string, string> = {
  seats: "seats",
  projects: "active projects",
  storage_bytes: "of files",
  webhooks: "webhooks",
  api_requests_per_minute: "API requests a minute",
};

/** A limit's figure as a person reads it (storage in MB or GB). */
export function limitFigure(limit: string, n: number): string {
  if (limit !== "storage_bytes") return n.toLocaleString("en");
  return n >= 1e9 ? `${(n / 1e9).toFixed(1)} GB` : `${(n / 1e6).toFixed(1)} MB`;
}

/** One sentence for a person: the server's detail when it says something specific. */
export function humanMessage(status: number, problem: Problem): string {
  if (status === 422 && problem.errors?.length) {
    return BY_STATUS[422]!;
  }
  if (problem.code === "plan_limit_reached" && typeof problem.limit === "string") {
    const limit = problem.limit;
    const what = LIMITS[limit] ?? limit;
    const value = limitFigure(limit, Number(problem.value));
    const usage = limitFigure(limit, Number(problem.usage));
    return `Your plan allows ${value} ${what}, and ${usage} are in use. An owner can upgrade the plan in Organization settings.`;
  }
  if (status >= 500) {
    return BY_STATUS[status] ?? BY_STATUS[500]!;
  }
  const detail = problem.detail?.trim();
  if (detail) {
    return capitalize(detail.endsWith(".") ? detail : `${detail}.`);
  }
  return BY_STATUS[status] ?? `The request failed (${status}).`;
}

/** Reads a failed response into an ApiError, whatever its body. */
export async function problemOf(res: Response): Promise<ApiError> {
  let problem: Problem = {};
  try {
    const body: unknown = await res.clone().json();
    if (body && typeof body === "object") problem = body as Problem;
  } catch {
    // not JSON: the status speaks for itself
  }
  return new ApiError(res.status, problem);
}

/** Any thrown value as a sentence. */
export function errorMessage(err: unknown): string {
  if (err instanceof ApiError) return err.message;
  if (err instanceof TypeError) return "The server cannot be reached. Check your connection.";
  return "Something went wrong. Please try again.";
}
