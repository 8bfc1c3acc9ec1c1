const FALLBACK = "/tickets";
const ORIGIN = "https://docket.invalid";

/**
 * Only a path of this app, and one the router can open: never another site (`//evil.test`,
 * `/\evil.test`, which browsers read as `//evil.test`), never a path that hides a slash,
 * backslash or control character behind percent-encoding (`/%09/evil.test`).
 */
export function safeNext(next: string | null): string {
  if (!next || !next.startsWith("/") || next.includes("\\")) return FALLBACK;
  let decoded: string;
  try {
    decoded = decodeURIComponent(next);
  } catch {
    return FALLBACK;
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f\\]/.test(decoded) || /^\/[\s/]/.test(decoded)) return FALLBACK;
  const url = new URL(next, ORIGIN);
  if (url.origin !== ORIGIN) return FALLBACK;
  return url.pathname + url.search + url.hash;
}
