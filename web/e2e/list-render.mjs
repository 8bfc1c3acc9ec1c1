// Benchmark: how long the ticket list of the largest organisation takes to show in a real
// browser, from navigation to the first row on screen (a full page load each time: the app's
// scripts, the session resumed from the refresh cookie, the list query, rendering).
//
//   BASE_URL=http://127.0.0.1:8080 MANIFEST=target/bench/sqlite-1000000/manifest.json \
//     node web/e2e/list-render.mjs
//
// MANIFEST is the demo dataset's manifest (`docket admin seed-demo --manifest`, or the one the
// benchmark harness keeps under target/bench). Prints JSON: per-run milliseconds, median, max.
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const base = process.env.BASE_URL ?? "http://127.0.0.1:8080";
const manifest = JSON.parse(readFileSync(process.env.MANIFEST, "utf8"));
const runs = Number(process.env.RUNS ?? 10);
const password = process.env.DEMO_PASSWORD ?? "docket-demo-password";
const org = manifest.organizations[0];
const person = org.people.find((p) => ["owner", "admin", "manager", "agent"].includes(p.role));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
});
const page = await (await browser.newContext({ baseURL: base, viewport: { width: 1280, height: 800 } })).newPage();
await page.goto("/signin");
await page.getByLabel("Email").fill(person.email);
await page.getByLabel("Password").fill(password);
await page.getByLabel("Organization").fill(org.slug);
await page.getByRole("button", { name: "Sign in" }).click();
await page.getByTestId("ticket-row").first().waitFor({ timeout: 60_000 });

// Warm: the app's files in the browser cache (a returning person). Cold: cache emptied first
// (a first visit, which also downloads and compiles the scripts).
const cdp = await page.context().newCDPSession(page);
async function measure(cold) {
  const times = [];
  for (let i = 0; i < runs; i++) {
    if (cold) await cdp.send("Network.clearBrowserCache");
    const started = performance.now();
    await page.goto("/tickets");
    await page.getByTestId("ticket-row").first().waitFor({ timeout: 60_000 });
    times.push(Math.round(performance.now() - started));
  }
  const sorted = [...times].sort((a, b) => a - b);
  return { runs: times, median_ms: sorted[Math.floor(sorted.length / 2)], max_ms: sorted[sorted.length - 1] };
}
const warm = await measure(false);
const cold = await measure(true);
await browser.close();
console.log(
  JSON.stringify({ organization: org.slug, organization_tickets: org.tickets, rows: 50, warm, cold }),
);
