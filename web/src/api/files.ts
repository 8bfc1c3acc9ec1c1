// Attachments over the wire: uploads with progress (fetch cannot report upload progress, so they
// go through XMLHttpRequest) and downloads through the signed-in fetch (a link cannot carry the
// bearer token, so the bytes come as a blob).

import type { components } from "./schema";
import { ApiError, type Problem } from "./problem";
import { accessToken, refresh } from "./session";

export type Attachment = components["schemas"]["Attachment"];
type Uploaded = components["schemas"]["Uploaded"];

export interface UploadOptions {
  /** For an internal note: staff only from the start. */
  internal?: boolean;
  /** Called with the share of the bytes sent so far (0 to 1). */
  onProgress?: (sent: number) => void;
  /** The same key for a retry of the same upload. */
  idempotencyKey: string;
}

function send(url: string, form: FormData, token: string | null, opts: UploadOptions): Promise<XMLHttpRequest> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    if (token) xhr.setRequestHeader("Authorization", `Bearer ${token}`);
    xhr.setRequestHeader("Idempotency-Key", opts.idempotencyKey);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) opts.onProgress?.(e.loaded / e.total);
    };
    xhr.onload = () => resolve(xhr);
    xhr.onerror = () => reject(new ApiError(0, { detail: "The upload was interrupted; check the connection and retry." }));
    xhr.send(form);
  });
}

function parse(xhr: XMLHttpRequest): unknown {
  try {
    return JSON.parse(xhr.responseText);
  } catch {
    return {};
  }
}

/** Uploads `files` to a ticket; resolves with the stored attachments, in order. */
export async function uploadFiles(ticketId: string, files: File[], opts: UploadOptions): Promise<Attachment[]> {
  const form = new FormData();
  for (const f of files) form.append("file", f, f.name);
  const query = opts.internal ? "?internal=true" : "";
  const url = `/api/v1/tickets/${encodeURIComponent(ticketId)}/attachments${query}`;
  let xhr = await send(url, form, await accessToken(), opts);
  if (xhr.status === 401) {
    const renewed = await refresh();
    if (renewed) xhr = await send(url, form, renewed.accessToken, opts);
  }
  const body = parse(xhr);
  if (xhr.status !== 201) throw new ApiError(xhr.status, body as Problem);
  const uploaded = body as Uploaded;
  return "items" in uploaded ? uploaded.items : [uploaded];
}

/** The bytes at an API path that needs the session's token (a link cannot carry it). */
export async function fetchAuthed(path: string): Promise<Blob> {
  let token = await accessToken();
  const get = (t: string | null) => fetch(path, { headers: t ? { Authorization: `Bearer ${t}` } : {} });
  let res = await get(token);
  if (res.status === 401) {
    token = (await refresh())?.accessToken ?? null;
    if (token) res = await get(token);
  }
  if (!res.ok) {
    const problem = (await res.json().catch(() => ({}))) as Problem;
    throw new ApiError(res.status, problem);
  }
  return res.blob();
}

/** The bytes of an attachment, fetched with the session's token. */
export function fetchFile(id: string): Promise<Blob> {
  return fetchAuthed(`/api/v1/attachments/${encodeURIComponent(id)}`);
}

/** Saves `blob` the way a download link would, as `filename`. */
export function saveBlob(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** Saves an attachment the way a download link would. */
export async function saveFile(a: Attachment): Promise<void> {
  saveBlob(await fetchFile(a.id), a.filename);
}

/** Image types the server lets a browser show inline: the ones previews are made of. */
export function isPreviewable(a: Attachment): boolean {
  return ["image/png", "image/jpeg", "image/gif", "image/webp"].includes(a.content_type);
}

/** `1.4 MB`, `312 KB`, `20 bytes`. */
export function fileSize(bytes: number): string {
  if (bytes < 1000) return `${bytes} bytes`;
  const units = ["KB", "MB", "GB"];
  let value = bytes / 1000;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}
