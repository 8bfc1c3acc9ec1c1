// The browser session: the access token lives in memory only; the refresh token is an
// HttpOnly cookie the server sets on the auth paths (`X-Docket-Refresh: cookie`), which no
// script can read. Tabs share the cookie, and refreshing rotates it, so refreshes are
// serialised across tabs with the Web Locks API: a tab never presents a token another tab has
// just rotated (the server would take that for theft and end the session).

import { ApiError, problemOf } from "./problem";

export type Role = "owner" | "admin" | "manager" | "agent" | "viewer" | "requester";

export interface Session {
  accessToken: string;
  /** Epoch milliseconds when the access token stops working. */
  expiresAt: number;
  user: { id: string; email: string; name: string };
  /** `purge_at` is set when the organisation was deleted: only restoring it is open. */
  organization: { id: string; name: string; slug: string; purge_at?: string | null };
  role: Role;
}

interface AuthResponse {
  access_token: string;
  expires_in: number;
  user: Session["user"];
  organization: Session["organization"];
  role: Role;
}

const AUTH = "/api/v1/auth";
const COOKIE_MODE = { "X-Docket-Refresh": "cookie" };
/** Refresh this long before the access token expires. */
const REFRESH_AHEAD_MS = 60_000;

let current: Session | null = null;
/** Why the last session ended, when the sign-in page should say so (read by `endNotice`). */
let notice: string | null = null;
let timer: ReturnType<typeof setTimeout> | undefined;
const listeners = new Set<(s: Session | null) => void>();
const channel = typeof BroadcastChannel === "undefined" ? null : new BroadcastChannel("docket-session");

export function session(): Session | null {
  return current;
}

export function subscribe(fn: (s: Session | null) => void): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function set(next: Session | null): void {
  current = next;
  if (next) notice = null;
  clearTimeout(timer);
  if (next) {
    const wait = Math.max(5_000, next.expiresAt - Date.now() - REFRESH_AHEAD_MS);
    timer = setTimeout(() => void refresh().catch(() => set(null)), wait);
  }
  for (const fn of listeners) fn(next);
}

function fromResponse(body: AuthResponse): Session {
  return {
    accessToken: body.access_token,
    expiresAt: Date.now() + body.expires_in * 1000,
    user: body.user,
    organization: body.organization,
    role: body.role,
  };
}

/** POSTs to an auth path (`/login`), or to a full API path (`/api/v1/…`). */
async function post(path: string, body?: unknown, token?: string): Promise<Response> {
  const headers: Record<string, string> = { ...COOKIE_MODE };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(path.startsWith("/api/") ? path : `${AUTH}${path}`, {
    method: "POST",
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw await problemOf(res);
  return res;
}

async function start(path: string, body: unknown, token?: string): Promise<Session> {
  return begin(await post(path, body, token));
}

/** Takes the tokens of an auth answer: the session starts, in this tab and the others. */
async function begin(res: Response): Promise<Session> {
  const next = fromResponse((await res.json()) as AuthResponse);
  set(next);
  channel?.postMessage({ type: "signed-in", org: next.organization.id });
  return next;
}

/** A sign-in that stopped at its second step: no tokens yet. */
export interface SecondStep {
  /** Give a second factor. */
  mfa_required?: boolean;
  /** The organisation requires a second factor, and the account has none: enrol one. */
  mfa_setup_required?: boolean;
  mfa_token: string;
  methods: ("totp" | "passkey" | "recovery_code")[];
}

export function isSecondStep(v: Session | SecondStep): v is SecondStep {
  return "mfa_token" in v;
}

/** Signs in with a password: a session, or the second step to take first. */
export async function signIn(email: string, password: string, organization?: string): Promise<Session | SecondStep> {
  const res = await post("/login", { email, password, ...(organization ? { organization } : {}) });
  const body = (await res.clone().json()) as AuthResponse | SecondStep;
  if ("mfa_token" in body) return body;
  return begin(res);
}

/**
 * Finishes a sign-in's second step with a code of the authenticator app or a recovery code;
 * after a set-up step, with nothing once a second factor is enrolled.
 */
export function finishSecondStep(mfaToken: string, answer: { code?: string; recovery_code?: string }): Promise<Session> {
  return start("/login/mfa", { mfa_token: mfaToken, ...answer });
}

/**
 * Signs in with a passkey: on its own (the browser offers this site's passkeys), or as the
 * second step of a password sign-in.
 */
export async function signInWithPasskey(opts: { mfaToken?: string; organization?: string } = {}): Promise<Session> {
  const started = (await (
    await post("/passkeys/login/start", {
      ...(opts.mfaToken ? { mfa_token: opts.mfaToken } : {}),
      ...(opts.organization ? { organization: opts.organization } : {}),
    })
  ).json()) as { ceremony_id: string; options: { publicKey: unknown } };
  const credential = await getPasskey(started.options.publicKey);
  return start("/passkeys/login/finish", { ceremony_id: started.ceremony_id, credential });
}

/** The browser's WebAuthn calls, with the JSON forms of their options and answers. */
interface JsonCredentials {
  parseCreationOptionsFromJSON(o: unknown): PublicKeyCredentialCreationOptions;
  parseRequestOptionsFromJSON(o: unknown): PublicKeyCredentialRequestOptions;
}

function webAuthn(): JsonCredentials {
  const pkc = (typeof window === "undefined" ? undefined : window.PublicKeyCredential) as unknown as
    | Partial<JsonCredentials>
    | undefined;
  if (!pkc?.parseCreationOptionsFromJSON || !pkc.parseRequestOptionsFromJSON) {
    throw new Error("This browser does not support passkeys");
  }
  return pkc as JsonCredentials;
}

function asJson(credential: Credential | null): unknown {
  if (!credential) throw new Error("No passkey was chosen");
  return (credential as PublicKeyCredential & { toJSON(): unknown }).toJSON();
}

export async function createPasskey(publicKey: unknown): Promise<unknown> {
  const options = webAuthn().parseCreationOptionsFromJSON(publicKey);
  return asJson(await navigator.credentials.create({ publicKey: options }));
}

async function getPasskey(publicKey: unknown): Promise<unknown> {
  const options = webAuthn().parseRequestOptionsFromJSON(publicKey);
  return asJson(await navigator.credentials.get({ publicKey: options }));
}

/** Where single sign-on through organisation `slug`'s identity provider starts (a page load). */
export function ssoStartUrl(slug: string, next: string): string {
  return `${AUTH}/sso/${encodeURIComponent(slug)}/start?next=${encodeURIComponent(next)}`;
}

/**
 * Signs up: signed in at once (a server without mail), or `{ confirmationSentTo }` when the
 * server mailed a link that finishes the sign-up (the same answer whether or not the address
 * already has an account).
 */
export async function signUp(req: {
  organization_name: string;
  organization_slug?: string;
  name: string;
  email: string;
  password: string;
}): Promise<Session | { confirmationSentTo: string }> {
  const res = await post("/signup", req);
  if (res.status === 202) {
    const pending = (await res.json()) as { email: string };
    return { confirmationSentTo: pending.email };
  }
  return begin(res);
}

/** Claims the tickets an address sent by mail with a mailed link: makes the account, signs in. */
export function claimContacts(token: string, body: { password: string; name?: string }): Promise<Session> {
  return start("/claim", { token, ...body });
}

/** Follows a mailed sign-up link: the organisation is created and its owner signed in. */
export function confirmSignUp(token: string): Promise<Session> {
  return start("/signup/confirm", { token });
}

/**
 * Joins the organisation of an invitation and signs in there: a new account with a password
 * (and name), or the signed-in account as it is.
 */
export function acceptInvitation(token: string, body: { password?: string; name?: string }): Promise<Session> {
  return start(`/api/v1/invitations/${encodeURIComponent(token)}/accept`, body, current?.accessToken);
}

export function switchOrganization(organization: string): Promise<Session> {
  return start("/switch", { organization }, current?.accessToken);
}

async function withRefreshLock<T>(fn: () => Promise<T>): Promise<T> {
  if (typeof navigator !== "undefined" && navigator.locks) {
    return navigator.locks.request("docket-refresh", fn);
  }
  return fn();
}

let inFlight: Promise<Session | null> | null = null;

/**
 * New tokens from the refresh cookie; null when there is no session to continue. Concurrent
 * callers in this tab share one request.
 */
export function refresh(): Promise<Session | null> {
  inFlight ??= withRefreshLock(async () => {
    try {
      const res = await post("/refresh");
      const next = fromResponse((await res.json()) as AuthResponse);
      set(next);
      return next;
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        set(null);
        return null;
      }
      throw err;
    }
  }).finally(() => {
    inFlight = null;
  });
  return inFlight;
}

/** A usable access token, refreshed first when it is about to expire. */
export async function accessToken(): Promise<string | null> {
  if (current && current.expiresAt - Date.now() > 10_000) return current.accessToken;
  return (await refresh())?.accessToken ?? null;
}

export async function signOut(): Promise<void> {
  const token = current?.accessToken;
  try {
    if (token) await post("/logout", undefined, token);
  } finally {
    forgetSession();
  }
}

/** What the sign-in page says of how the last session ended, if anything. */
export function endNotice(): string | null {
  return current ? null : notice;
}

/**
 * Drops this tab's session (and the other tabs') without asking the server: it already ended.
 * `why` is shown on the sign-in page, whenever it comes (the session may have ended under a
 * page already, its stream refused).
 */
export function forgetSession(why?: string): void {
  notice = why ?? null;
  set(null);
  channel?.postMessage({ type: "signed-out" });
}

// Another tab signed out, or moved to another organisation: follow it.
channel?.addEventListener("message", (e: MessageEvent<{ type: string; org?: string }>) => {
  if (e.data.type === "signed-out") set(null);
  else if (e.data.type === "signed-in" && e.data.org !== current?.organization.id) {
    void refresh().catch(() => set(null));
  }
});
