// The web app end to end, in a real browser against a real server (started by run.mjs).
// Tests run in order and build on each other, as a team's first day would.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { chromium } from "playwright-core";
import AxeBuilder from "@axe-core/playwright";

const BASE = process.env.BASE_URL;
const BACKEND = process.env.E2E_BACKEND ?? "sqlite";
const SHOTS = new URL("./out/screenshots/", import.meta.url).pathname;
const PASSWORD = "correct horse battery 9";
const owner = { name: "Olivia Owner", email: "olivia@example.com" };
const agent = { name: "Bob Agent", email: "bob@example.com" };
const customer = { name: "Carol Customer", email: "carol@example.com" };

let browser;
const state = {};

async function api(path, { method = "GET", token, body, headers = {} } = {}) {
  const res = await fetch(`${BASE}/api/v1${path}`, {
    method,
    headers: {
      ...(body ? { "Content-Type": "application/json" } : {}),
      ...(token ? { Authorization: `Bearer ${token}` } : {}),
      ...headers,
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return data;
}

/** The mails the SMTP server received for `to`, oldest first (raw text). */
function mailsTo(to) {
  const dir = join(process.env.MAILDIR, "new");
  let files;
  try {
    files = readdirSync(dir).map((f) => join(dir, f));
  } catch {
    return [];
  }
  return files
    .sort((a, b) => statSync(a).mtimeMs - statSync(b).mtimeMs)
    .map((f) => readFileSync(f, "utf8"))
    .filter((raw) => /^X-RcptTo: (.*)$/m.exec(raw)?.[1].includes(to));
}

/** The first link under `path` in the newest mail to `to` (waiting for it to arrive). */
async function mailedLink(to, path) {
  let link;
  await eventually(async () => {
    for (const raw of mailsTo(to).reverse()) {
      // Undo quoted-printable: soft line breaks and escaped characters.
      const text = raw.replace(/=\r?\n/g, "").replace(/=([0-9A-F]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16)));
      const found = new RegExp(`${BASE.replace(/[.:/]/g, "\\$&")}${path}[A-Za-z0-9_\\-]+`).exec(text);
      if (found) {
        link = found[0];
        return true;
      }
    }
    return false;
  }, `a mail to ${to} with a ${path} link`);
  return link;
}

/** Invites `who` by mail and accepts through the mailed link (the API part of the flow). */
async function invite(who, role) {
  await api("/invitations", { method: "POST", token: state.ownerToken, body: { email: who.email, name: who.name, role } });
  const link = await mailedLink(who.email, "/invite/");
  const token = link.split("/invite/")[1];
  return api(`/invitations/${token}/accept`, { method: "POST", body: { name: who.name, password: PASSWORD } });
}

/** The authenticator app's code for `secret` (base32) now (RFC 6238: SHA-1, 6 digits, 30 s). */
function totp(secret) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of secret.replace(/=+$/, "")) bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 30_000)));
  const mac = createHmac("sha1", key).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, "0");
}

/** Gives the page's browser a platform authenticator that holds passkeys and verifies its user. */
async function virtualAuthenticator(page) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
    },
  });
}

/** Enrols the authenticator app on the open account page (or set-up step); its recovery codes. */
async function enrolApp(page) {
  await page.getByRole("button", { name: "Set up an authenticator app" }).click();
  await page.getByRole("img", { name: "QR code for your authenticator app" }).waitFor();
  const secret = await page.getByTestId("totp-secret").innerText();
  await page.getByLabel("Code from the app").fill(totp(secret));
  await page.getByRole("button", { name: "Turn on" }).click();
  const codes = (await page.getByTestId("recovery-codes").innerText()).split("\n").filter(Boolean);
  assert.equal(codes.length, 10);
  return codes;
}

const login = async (who) => (await api("/auth/login", { method: "POST", body: { email: who.email, password: PASSWORD } })).access_token;

async function ticket(key) {
  return api(`/tickets/${key}`, { token: state.ownerToken });
}

async function newPage(viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ viewport, baseURL: BASE });
  const page = await context.newPage();
  page.on("pageerror", (err) => console.error(`page error: ${err.message}`));
  return page;
}

async function shot(page, name) {
  await page.screenshot({ path: `${SHOTS}${BACKEND}-${name}.png` });
}

async function signIn(page, who, organization) {
  await page.goto("/signin");
  await page.getByLabel("Email").fill(who.email);
  await page.getByLabel("Password").fill(PASSWORD);
  if (organization) await page.getByLabel("Organization", { exact: true }).fill(organization);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.waitForURL("**/tickets");
}

/** Picks `option` in the select labelled `label` inside `scope` (options open in a portal). */
async function choose(page, label, option, scope = page) {
  // Forced: a multi-select's pill box lies over its input and takes the click, as for a person.
  await scope.getByRole("textbox", { name: label, exact: true }).click({ force: true });
  await page.getByRole("option", { name: option, exact: true }).click();
}

/** Waits until `fn` returns true (or throws after `ms`). */
async function eventually(fn, what, ms = 15_000) {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function axe(page, where) {
  // Half-faded elements (a toast arriving, a dialog leaving) would fail the contrast check for
  // what is only a moment of an animation: judge the page once transitions have settled.
  await page.waitForFunction(() => document.getAnimations().every((a) => a.playState !== "running"));
  const result = await new AxeBuilder({ page }).analyze();
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(
    bad.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`),
    [],
    `accessibility violations on ${where}`,
  );
}

/** Delivers a Stripe event of `type` about `object`, signed as Stripe signs them. */
async function stripeEvent(type, object) {
  const body = JSON.stringify({ id: `evt_e2e_${Date.now()}`, object: "event", type, created: Math.floor(Date.now() / 1000), data: { object } });
  const t = Math.floor(Date.now() / 1000);
  const v1 = createHmac("sha256", process.env.STRIPE_WEBHOOK_SECRET).update(`${t}.${body}`).digest("hex");
  const res = await fetch(`${BASE}/api/v1/billing/stripe/webhook`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "Stripe-Signature": `t=${t},v1=${v1}` },
    body,
  });
  assert.equal(res.status, 200, await res.text());
}

/** A step of the story: once one fails, the later ones (which build on it) are skipped. */
function step(name, fn) {
  test(name, async (t) => {
    if (state.broken) return t.skip(`skipped: "${state.broken}" failed`);
    try {
      await fn();
    } catch (err) {
      state.broken = name;
      throw err;
    }
  });
}

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});

after(async () => {
  await browser?.close();
});

describe(`Docket in the browser (${BACKEND})`, () => {
  step("the app is served with its security headers, and unknown pages fall back to it", async () => {
    const res = await fetch(`${BASE}/tickets/OPS-1`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-security-policy"), /script-src 'self';/);
    assert.equal(res.headers.get("cache-control"), "no-cache");
    const html = await res.text();
    const asset = html.match(/\/assets\/[^"]+\.js/)[0];
    const js = await fetch(`${BASE}${asset}`);
    assert.match(js.headers.get("cache-control"), /immutable/);
    assert.equal((await fetch(`${BASE}/api/v1/no-such-thing`)).status, 404);
  });

  step("sign up, sign out, sign in", async () => {
    const page = await newPage();
    state.owner = page;
    await page.goto("/signup");
    await axe(page, "sign-up");
    await page.getByLabel("Organization name").fill("Acme Support");
    await page.getByLabel("Your name").fill(owner.name);
    await page.getByLabel("Email").fill(owner.email);
    // A password the server finds guessable: its reason shows beside the field.
    await page.getByLabel("Password").fill("password123");
    await page.getByRole("button", { name: "Create organization" }).click();
    const passwordError = async () => {
      const described = (await page.getByLabel("Password").getAttribute("aria-describedby")) ?? "";
      const id = described.split(" ").find((d) => d.endsWith("-error"));
      return id ? page.locator(`[id="${id}"]`).innerText() : "";
    };
    await eventually(async () => /too easy to guess/.test(await passwordError()), "the field error beside the password");
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Create organization" }).click();
    // The server sends mail: the address is proven by a mailed link before anything exists.
    await page.getByTestId("signup-sent").waitFor();
    await axe(page, "sign-up sent");
    const confirm = await mailedLink(owner.email, "/signup/confirm/");
    await page.goto(confirm);
    await axe(page, "sign-up confirm");
    await page.getByRole("button", { name: "Create organization and sign in" }).click();
    await page.waitForURL("**/tickets");
    await page.getByRole("heading", { name: "Tickets" }).waitFor();
    // The link worked once.
    const again = await fetch(`${BASE}/api/v1/auth/signup/confirm`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token: confirm.split("/signup/confirm/")[1] }),
    });
    assert.equal(again.status, 422);
    // The refresh token is an HttpOnly cookie on the auth paths, never readable by scripts.
    const cookies = await page.context().cookies();
    const refresh = cookies.find((c) => c.name === "docket_refresh");
    assert.ok(refresh, "refresh cookie set");
    assert.equal(refresh.httpOnly, true);
    assert.equal(refresh.sameSite, "Strict");
    assert.equal(refresh.path, "/api/v1/auth");
    assert.equal(await page.evaluate(() => document.cookie), "");
    // A reload keeps the person signed in (silent refresh from the cookie).
    await page.reload();
    await page.getByRole("heading", { name: "Tickets" }).waitFor();

    await page.getByRole("button", { name: /Account menu/ }).click();
    await page.getByRole("menuitem", { name: "Sign out" }).click();
    await page.waitForURL("**/signin**");
    await axe(page, "sign-in");
    await shot(page, "signin");
    // Signed out: the app's pages send you back to sign in.
    await page.goto("/tickets");
    await page.waitForURL("**/signin**");
    await signIn(page, owner);
    state.ownerToken = await login(owner);
  });

  step("create a project and tickets", async () => {
    const page = state.owner;
    // A new organisation starts with a first project, named and keyed from it.
    await page.goto("/projects");
    await page.getByTestId("project-row").filter({ hasText: "ACME" }).getByText("Acme Support").waitFor();
    await page.getByRole("button", { name: "New project" }).click();
    const form = page.getByRole("dialog", { name: "New project" });
    await form.getByLabel("Name").fill("Operations");
    // The key follows the name until typed by hand.
    assert.equal(await form.getByLabel("Key").inputValue(), "OPER");
    await form.getByLabel("Key").fill("ops");
    await form.getByRole("button", { name: "Create project" }).click();
    // Made: its page opens.
    await page.waitForURL(/\/projects\/[0-9a-f-]+$/);
    await page.getByRole("heading", { name: "Operations" }).waitFor();
    await page.getByText("No tickets in this project yet").waitFor();
    await axe(page, "project page");
    await page.goto("/projects");
    await page.getByTestId("project-row").filter({ hasText: "OPS" }).waitFor();

    await page.goto("/tickets");
    await page.getByText("No tickets yet").waitFor();
    await page.keyboard.press("c");
    const dialog = page.getByRole("dialog", { name: "New ticket" });
    await dialog.waitFor();
    await choose(page, "Project", "OPS · Operations", dialog);
    await dialog.getByLabel("Title").fill("Printer on fire");
    await dialog.getByLabel("Description").fill("Smoke from tray 2.");
    await page.getByRole("button", { name: "Create ticket" }).click();
    await page.waitForURL("**/tickets/OPS-1");
    await page.getByTestId("ticket-title").getByText("Printer on fire").waitFor();

    const projects = await api("/projects", { token: state.ownerToken });
    state.projectId = projects.items.find((p) => p.key === "OPS").id;
    for (const [title, priority] of [
      ["VPN drops every hour", "high"],
      ["New laptop for Dan", "low"],
      ["Payroll export fails", "urgent"],
    ]) {
      await api("/tickets", { method: "POST", token: state.ownerToken, body: { project_id: state.projectId, title, priority } });
    }
  });

  step("filter the list, keep the view in the URL, save it", async () => {
    const page = state.owner;
    await page.goto("/tickets");
    await eventually(async () => (await page.getByTestId("ticket-row").count()) === 4, "four tickets");
    await choose(page, "Priority", "High", page.getByRole("region", { name: "Filters" }));
    await page.keyboard.press("Escape");
    await page.waitForURL(/priority=high/);
    await eventually(async () => (await page.getByTestId("ticket-row").count()) === 1, "one high ticket");
    await page.getByTestId("ticket-row").getByText("VPN drops every hour").waitFor();
    // The view survives a reload: it lives in the address.
    await page.reload();
    await page.getByTestId("ticket-row").getByText("VPN drops every hour").waitFor();
    assert.equal(await page.getByTestId("ticket-row").count(), 1);

    await page.getByRole("button", { name: "Views" }).click();
    await page.getByRole("menuitem", { name: "Save current view…" }).click();
    await page.getByRole("dialog").getByLabel("Name").fill("Hot ones");
    await page.getByRole("button", { name: "Save view" }).click();
    await page.getByRole("dialog").waitFor({ state: "hidden" });
    await page.goto("/tickets");
    await eventually(async () => (await page.getByTestId("ticket-row").count()) === 4, "all tickets again");
    await page.getByRole("button", { name: "Views" }).click();
    await page.getByRole("menuitem", { name: "Hot ones" }).click();
    await page.waitForURL(/priority=high/);
    await eventually(async () => (await page.getByTestId("ticket-row").count()) === 1, "the saved view's tickets");
    const views = await api("/views", { token: state.ownerToken });
    assert.deepEqual(views.items.map((v) => [v.name, v.query]), [["Hot ones", "priority=high"]]);
    await shot(page, "tickets-filtered");
  });

  step("keyboard: ? shows help, j/k and Enter open a ticket", async () => {
    const page = state.owner;
    await page.goto("/tickets");
    await eventually(async () => (await page.getByTestId("ticket-row").count()) === 4, "tickets");
    await page.keyboard.press("Shift+?");
    await page.getByRole("dialog", { name: "Keyboard shortcuts" }).waitFor();
    await page.keyboard.press("Escape");
    await page.getByRole("dialog").waitFor({ state: "hidden" });
    await page.keyboard.press("j");
    await page.keyboard.press("j");
    await page.keyboard.press("k");
    const second = await page.getByTestId("ticket-row").nth(1).getAttribute("data-active");
    assert.equal(second, "true");
    await page.keyboard.press("Enter");
    await page.waitForURL(/\/tickets\/OPS-\d+$/);
    await axe(page, "ticket page");
    await page.goto("/tickets");
    await page.getByTestId("ticket-row").first().waitFor();
    await axe(page, "ticket list");
    await shot(page, "tickets");
  });

  step("drag a card on the board to change its status", async () => {
    const page = state.owner;
    await page.goto("/board");
    const card = page.getByTestId("column-open").getByTestId("board-card").filter({ hasText: "Printer on fire" });
    const target = page.getByTestId("column-in_progress");
    await card.waitFor();
    await axe(page, "board");
    const from = await card.getByRole("button", { name: /^Move OPS-1/ }).boundingBox();
    const to = await target.boundingBox();
    await page.mouse.move(from.x + from.width / 2, from.y + from.height / 2);
    await page.mouse.down();
    await page.mouse.move(from.x + from.width / 2 + 10, from.y + from.height / 2 + 10, { steps: 5 });
    await page.mouse.move(to.x + to.width / 2, to.y + 80, { steps: 15 });
    await page.mouse.up();
    await target.getByTestId("board-card").filter({ hasText: "Printer on fire" }).waitFor();
    await eventually(async () => (await ticket("OPS-1")).status === "in_progress", "the status saved");
    await shot(page, "board");
  });

  step("comment and add an internal note", async () => {
    const page = state.owner;
    await page.goto("/tickets/OPS-1");
    await page.getByLabel("Reply").fill("We are on it.");
    await page.getByRole("button", { name: "Send reply" }).click();
    await page.getByTestId("comment").filter({ hasText: "We are on it." }).waitFor();
    await page.getByLabel("Internal note", { exact: true }).check();
    await page.getByLabel("Internal note (staff only)").fill("Toner vendor is Xerox.");
    await page.getByRole("button", { name: "Add internal note" }).click();
    const note = page.getByTestId("internal-note").filter({ hasText: "Toner vendor is Xerox." });
    await note.waitFor();
    await note.getByText("Internal note · not visible to the requester").waitFor();
    // Its author edits a reply (with If-Match under the hood).
    const reply = page.getByTestId("comment").first();
    await reply.getByText("We are on it.").waitFor();
    await reply.getByRole("button", { name: "Edit" }).click();
    await reply.getByLabel("Edit comment").fill("We are on it: a technician is coming.");
    await reply.getByRole("button", { name: "Save comment" }).click();
    await page.getByTestId("comment").filter({ hasText: "a technician is coming" }).getByText(/edited/).waitFor();
    await shot(page, "ticket");
  });

  step("files: pick, drop and paste them, attach them to a reply, preview and download them", async () => {
    const page = state.owner;
    await page.goto("/tickets/OPS-1");
    // The ticket has loaded (its files section renders before, and re-renders then): a file
    // chosen earlier could land in an input that is about to be replaced.
    await page.getByTestId("ticket-title").waitFor();
    await page.getByTestId("comment").first().waitFor();
    const png = Buffer.from(
      "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==",
      "base64",
    );
    // Chosen through the drop area's file picker.
    const files = page.locator("section[aria-labelledby=files]");
    await files.locator("input[type=file]").setInputFiles({ name: "toner.log", mimeType: "text/plain", buffer: Buffer.from("E-204 toner low\n") });
    await files.getByRole("button", { name: "toner.log", exact: true }).waitFor();
    // Dropped onto the drop area, and pasted into the section (a screenshot from the clipboard).
    const dropOrPaste = async (selector, type, name) => {
      await page.evaluate(
        ({ selector, type, name, bytes }) => {
          const dt = new DataTransfer();
          dt.items.add(new File([new Uint8Array(bytes)], name, { type: "image/png" }));
          const target = document.querySelector(selector);
          const event =
            type === "paste"
              ? new ClipboardEvent("paste", { clipboardData: dt, bubbles: true })
              : new DragEvent(type, { dataTransfer: dt, bubbles: true });
          target.dispatchEvent(event);
        },
        { selector, type, name, bytes: [...png] },
      );
    };
    await dropOrPaste("section[aria-labelledby=files]", "paste", "pasted.png");
    await files.getByAltText("Preview of pasted.png").waitFor();
    await files.getByText("image/png").first().waitFor();
    // A reply carries a file dropped onto the reply box.
    await dropOrPaste("form textarea", "drop", "screen.png");
    await page.getByLabel("Files to send with the reply").getByText("screen.png").waitFor();
    await page.getByRole("textbox", { name: "Reply", exact: true }).fill("Here is what the panel shows.");
    await page.getByRole("button", { name: "Send reply" }).click();
    const reply = page.getByTestId("comment").filter({ hasText: "Here is what the panel shows." });
    await reply.getByRole("button", { name: "screen.png", exact: true }).waitFor();
    await reply.getByAltText("Preview of screen.png").waitFor();
    // Downloaded byte for byte.
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      files.getByRole("button", { name: "toner.log", exact: true }).click(),
    ]);
    assert.equal(download.suggestedFilename(), "toner.log");
    assert.equal(readFileSync(await download.path(), "utf8"), "E-204 toner low\n");
    const listed = await api(`/tickets/${(await ticket("OPS-1")).id}/attachments`, { token: state.ownerToken });
    assert.deepEqual(
      listed.items.map((a) => a.filename).sort(),
      ["pasted.png", "screen.png", "toner.log"],
    );
    await axe(page, "ticket with files");
    await shot(page, "ticket-files");
    // Removed from the list: gone from the ticket.
    await files.getByRole("button", { name: "Remove pasted.png" }).click();
    await eventually(async () => (await files.getByText("pasted.png").count()) === 0, "the file to go");
  });

  step("structure: a project's plan and members, subtasks, links, merge and its undo, split, bulk changes", async () => {
    const page = state.owner;
    // The project page: edit the plan; the list shows it.
    await page.goto(`/projects/${state.projectId}`);
    await page.getByRole("button", { name: "Edit project" }).click();
    const form = page.getByRole("dialog", { name: "Edit OPS" });
    await choose(page, "Status", "Planned", form);
    await form.getByLabel("Lead").click();
    await page.getByRole("option", { name: owner.name }).click();
    await form.getByRole("button", { name: "Save project" }).click();
    await form.waitFor({ state: "hidden" });
    await page.getByTestId("project-status").getByText("Planned").waitFor();
    const planned = await api(`/projects/${state.projectId}`, { token: state.ownerToken });
    assert.equal(planned.status, "planned");
    assert.equal(planned.progress.total, 4);
    // Members: the owner adds herself.
    await choose(page, "Add a member", owner.name);
    await page.getByRole("button", { name: "Add", exact: true }).click();
    await page.getByTestId("member-row").filter({ hasText: owner.name }).waitFor();
    await axe(page, "project page with its plan");
    await shot(page, "project");
    await page.goto("/projects?status=planned");
    await page.getByTestId("project-row").filter({ hasText: "OPS" }).getByTestId("project-progress").getByText("0/4 done").waitFor();
    assert.equal(await page.getByTestId("project-row").count(), 1);

    // Subtasks, added inline.
    await page.goto("/tickets/OPS-2");
    await page.getByLabel("New subtask").fill("Replace the router");
    await page.getByRole("button", { name: "Add subtask" }).click();
    await page.getByTestId("subtask-row").filter({ hasText: "Replace the router" }).waitFor();
    await eventually(async () => (await ticket("OPS-2")).subtasks.total === 1, "one subtask");
    // Links: OPS-2 blocks OPS-3, seen from both sides.
    const links = page.locator("section[aria-labelledby=links]");
    await choose(page, "This ticket", "blocks", links);
    await links.getByLabel("Ticket", { exact: true }).fill("ops-3");
    await links.getByRole("button", { name: "Link" }).click();
    await links.getByTestId("link-row").filter({ hasText: "OPS-3" }).waitFor();
    await axe(page, "ticket with subtasks and links");
    await page.goto("/tickets/OPS-3");
    await page.getByTestId("link-row").filter({ hasText: "is blocked by" }).filter({ hasText: "OPS-2" }).waitFor();

    // Merge a duplicate into OPS-2, then undo it.
    const dup = await api("/tickets", {
      method: "POST",
      token: state.ownerToken,
      body: { project_id: state.projectId, title: "VPN is down again", priority: "high" },
    });
    await api(`/tickets/${dup.id}/comments`, { method: "POST", token: state.ownerToken, body: { body: "Third time today." } });
    await page.goto(`/tickets/${dup.key}`);
    await page.getByRole("button", { name: "More" }).click();
    await page.getByRole("menuitem", { name: "Merge into another ticket…" }).click();
    const merge = page.getByRole("dialog", { name: `Merge ${dup.key} into another ticket` });
    await merge.getByLabel("Merge into").fill("OPS-2");
    await merge.getByRole("button", { name: "Merge" }).click();
    await page.waitForURL("**/tickets/OPS-2");
    await page.getByTestId("comment").filter({ hasText: "Third time today." }).waitFor();
    await page.goto(`/tickets/${dup.key}`);
    await page.getByTestId("merged-notice").getByText("OPS-2").waitFor();
    await page.getByRole("button", { name: "Undo merge" }).click();
    await page.getByTestId("merged-notice").waitFor({ state: "hidden" });
    await page.getByTestId("comment").filter({ hasText: "Third time today." }).waitFor();
    assert.equal((await ticket(dup.key)).merged_into_id, null);

    // Split a reply off OPS-1 into a new ticket.
    await page.goto("/tickets/OPS-1");
    await page.getByRole("button", { name: "More" }).click();
    await page.getByRole("menuitem", { name: "Split replies into a new ticket…" }).click();
    const split = page.getByRole("dialog", { name: "Split replies off OPS-1" });
    await split.getByLabel("New ticket's title").fill("Panel readout");
    await split.getByText("Here is what the panel shows.").click();
    await split.getByRole("button", { name: "Split into a new ticket" }).click();
    await page.waitForURL(/\/tickets\/OPS-\d+$/);
    await page.getByTestId("ticket-title").getByText("Panel readout").waitFor();
    await page.getByTestId("comment").filter({ hasText: "Here is what the panel shows." }).waitFor();
    await page.getByTestId("link-row").filter({ hasText: "OPS-1" }).waitFor();

    // Bulk: choose rows (click, shift-click, x) and change them at once.
    await page.goto("/tickets?sort=created_at");
    await page.getByTestId("ticket-row").nth(3).waitFor();
    await page.getByRole("checkbox", { name: "Choose OPS-2" }).click();
    await page.getByRole("checkbox", { name: "Choose OPS-4" }).click({ modifiers: ["Shift"] });
    await page.getByTestId("bulk-count").getByText("3 chosen").waitFor();
    await page.keyboard.press("x");
    await page.getByTestId("bulk-count").getByText("2 chosen").waitFor();
    await axe(page, "ticket list with a bulk change");
    const bar = page.getByRole("region", { name: "Change the chosen tickets" });
    await choose(page, "Priority", "Low", bar);
    await bar.getByRole("button", { name: "Apply to 2" }).click();
    await eventually(
      async () => (await ticket("OPS-2")).priority === "low" && (await ticket("OPS-3")).priority === "low",
      "both chosen tickets changed",
    );
    assert.equal((await ticket("OPS-4")).priority, "urgent", "the unchosen one is as it was");
    await shot(page, "bulk");
  });

  step("a requester sees the public reply live, never the internal note or others' tickets", async () => {
    // Invited from the people page; the mailed link opens the accept page.
    const admin = state.owner;
    await admin.goto("/admin/people");
    await admin.getByRole("button", { name: "Invite person" }).click();
    const dialog = admin.getByRole("dialog");
    await dialog.getByLabel("Email").fill(customer.email);
    await dialog.getByLabel("Name").fill(customer.name);
    await choose(admin, "Role", "Requester (customer)", dialog);
    await dialog.getByRole("button", { name: "Send invitation" }).click();
    await admin.getByTestId("invitation-row").filter({ hasText: customer.email }).waitFor();
    await dialog.waitFor({ state: "hidden" });
    await axe(admin, "people with an invitation");
    const link = await mailedLink(customer.email, "/invite/");
    const join = await newPage();
    await join.goto(link.replace(BASE, ""));
    await join.getByRole("heading", { name: "Join your team on Docket" }).waitFor();
    await axe(join, "accept invitation");
    await shot(join, "accept-invitation");
    await join.getByLabel("Your name").fill(customer.name);
    await join.getByLabel("Choose a password").fill(PASSWORD);
    await join.getByRole("button", { name: "Accept and sign in" }).click();
    await join.waitForURL("**/tickets");
    await join.context().close();
    const carol = (await api("/users", { token: state.ownerToken })).items.find((p) => p.email === customer.email);
    assert.equal(carol.role, "requester");
    const t = await api("/tickets", {
      method: "POST",
      token: state.ownerToken,
      body: { project_id: state.projectId, title: "Invoice shows the wrong address", requester_id: carol.id },
    });
    const page = await newPage();
    await signIn(page, customer);
    await page.getByRole("heading", { name: "My tickets" }).waitFor();
    await eventually(async () => (await page.getByTestId("ticket-row").count()) === 1, "only her ticket");
    await page.getByTestId("ticket-row").getByText("Invoice shows the wrong address").waitFor();
    await axe(page, "requester list");
    await page.getByTestId("ticket-row").first().click();
    await page.waitForURL(`**/tickets/${t.key}`);
    await page.getByTestId("live-indicator").and(page.locator('[data-live="true"]')).waitFor();

    await api(`/tickets/${t.id}/comments`, {
      method: "POST",
      token: state.ownerToken,
      body: { body: "Internal: customer is on the legacy plan.", internal: true },
    });
    await api(`/tickets/${t.id}/comments`, {
      method: "POST",
      token: state.ownerToken,
      body: { body: "Fixed: the next invoice shows your new address." },
    });
    // Arrives without a reload; the note was posted first, so it would have arrived first.
    await page.getByTestId("comment").filter({ hasText: "Fixed: the next invoice" }).waitFor();
    // The team's reply reads as the team's; her own message as the customer's.
    assert.equal(
      await page.getByTestId("comment").filter({ hasText: "Fixed: the next invoice" }).getAttribute("data-from"),
      "team",
    );
    await page.getByRole("textbox", { name: "Reply", exact: true }).fill("Thank you!");
    await page.getByRole("button", { name: "Send reply" }).click();
    const mine = page.getByTestId("comment").filter({ hasText: "Thank you!" });
    await mine.waitFor();
    assert.equal(await mine.getAttribute("data-from"), "customer");
    const text = await page.locator("body").innerText();
    assert.ok(!text.includes("legacy plan"), "the requester never sees the internal note");
    assert.equal(await page.getByTestId("internal-note").count(), 0);
    assert.equal(await page.getByLabel("Internal note", { exact: true }).count(), 0);
    await axe(page, "requester ticket");
    await shot(page, "requester-ticket");
    // Another customer's ticket (OPS-1) is not found for her.
    await page.goto("/tickets/OPS-1");
    await page.getByRole("alert").getByText("Ticket not found.").waitFor();
    await page.context().close();
  });

  step("two agents edit one ticket: the second gets the conflict flow, never a silent overwrite", async () => {
    await invite(agent, "agent");
    const bob = await newPage();
    state.bob = bob;
    await signIn(bob, agent);
    await bob.goto("/tickets/OPS-1");
    // The title's own Edit button: the comments' Edit buttons share its name, and Olivia wrote
    // some of them, so an unscoped click would depend on whether they had rendered yet.
    const editTitle = (page) =>
      page.getByTestId("ticket-title").locator("..").getByRole("button", { name: "Edit" });
    await editTitle(bob).click();

    const olivia = state.owner;
    await olivia.goto("/tickets/OPS-1");
    await editTitle(olivia).click();
    await olivia.getByLabel("Title").fill("Printer on fire (Olivia)");
    await olivia.getByRole("button", { name: "Save" }).click();
    await olivia.getByTestId("ticket-title").getByText("Printer on fire (Olivia)").waitFor();

    await bob.getByLabel("Title").fill("Printer on fire (Bob)");
    await bob.getByRole("button", { name: "Save" }).click();
    const dialog = bob.getByRole("dialog", { name: "Someone else changed this ticket" });
    await dialog.waitFor();
    await dialog.getByText("Printer on fire (Olivia)").waitFor();
    assert.equal((await ticket("OPS-1")).title, "Printer on fire (Olivia)", "nothing was overwritten");
    await axe(bob, "conflict dialog");
    await shot(bob, "conflict");
    await dialog.getByRole("button", { name: "Apply my change again" }).click();
    await bob.getByTestId("ticket-title").getByText("Printer on fire (Bob)").waitFor();
    assert.equal((await ticket("OPS-1")).title, "Printer on fire (Bob)");
    // Olivia's open page follows along live.
    await olivia.getByTestId("ticket-title").getByText("Printer on fire (Bob)").waitFor();
  });

  step("the unread count moves live", async () => {
    const page = state.owner;
    await page.goto("/tickets");
    const bell = page.getByTestId("bell");
    await bell.waitFor();
    await page.getByTestId("live-indicator").and(page.locator('[data-live="true"]')).waitFor();
    const before = Number(await bell.getAttribute("data-count"));
    const bobToken = await login(agent);
    await api("/tickets/OPS-1/comments", { method: "POST", token: bobToken, body: { body: "Replaced the fuser." } });
    await eventually(async () => Number(await bell.getAttribute("data-count")) > before, "the bell to count up");
    await page.getByTestId("bell").click();
    await page.waitForURL("**/notifications");
    await page.getByTestId("notification").first().waitFor();
    await axe(page, "notifications");
    await shot(page, "notifications");
    await page.getByRole("button", { name: "Mark all read" }).click();
    await eventually(async () => Number(await bell.getAttribute("data-count")) === 0, "the bell to clear");
  });

  step("admin pages: people, organization, dead events", async () => {
    const page = state.owner;
    await page.goto("/admin/people");
    const bob = page.getByTestId("person-row").filter({ hasText: agent.email });
    await bob.waitFor();
    await axe(page, "people");
    await shot(page, "people");
    await choose(page, `Role of ${agent.name}`, "Manager");
    await eventually(async () => {
      const people = await api("/users", { token: state.ownerToken });
      return people.items.find((p) => p.email === agent.email)?.role === "manager";
    }, "the role change");
    await bob.getByRole("button", { name: `Actions for ${agent.name}` }).click();
    await page.getByRole("menuitem", { name: "Deactivate" }).click();
    await bob.getByText("Deactivated").waitFor();

    await page.goto("/admin/settings");
    await page.getByRole("textbox", { name: "Name", exact: true }).fill("Acme Helpdesk");
    await page.getByRole("button", { name: "Save", exact: true }).click();
    await eventually(async () => (await api("/org", { token: state.ownerToken })).name === "Acme Helpdesk", "the rename");
    await axe(page, "organization");

    await page.goto("/admin/events");
    await page.getByText("No dead events").waitFor();
    await axe(page, "dead events");
  });

  step("switch organization", async () => {
    // The same person signs up a second organisation: an existing account gives its password,
    // and the mailed link creates it for that account.
    const mailsBefore = mailsTo(owner.email).length;
    const sent = await api("/auth/signup", {
      method: "POST",
      body: { organization_name: "Beta Works", name: owner.name, email: owner.email, password: PASSWORD },
    });
    assert.equal(sent.status, "confirmation_sent");
    await eventually(async () => mailsTo(owner.email).length > mailsBefore, "the second sign-up's mail");
    const link = await mailedLink(owner.email, "/signup/confirm/");
    await api("/auth/signup/confirm", { method: "POST", body: { token: link.split("/signup/confirm/")[1] } });
    const page = state.owner;
    await page.goto("/tickets");
    await page.getByRole("button", { name: /Account menu/ }).click();
    await page.getByRole("menuitem", { name: "Beta Works" }).click();
    await page.getByRole("banner").getByText("Beta Works").waitFor();
    await page.getByText("No tickets yet").waitFor();
    await page.getByRole("button", { name: /Account menu/ }).click();
    await page.getByRole("menuitem", { name: "Acme Helpdesk" }).click();
    await page.getByRole("banner").getByText("Acme Helpdesk").waitFor();
    await eventually(async () => (await page.getByTestId("ticket-row").count()) > 0, "Acme's tickets again");
  });

  step("change password, then sign out everywhere", async () => {
    const page = await newPage();
    await signIn(page, customer);
    await page.getByRole("button", { name: /Account menu/ }).click();
    await page.getByRole("menuitem", { name: "Your account" }).click();
    await page.waitForURL("**/account");
    await axe(page, "account");
    await page.getByLabel("Current password").fill("not the password at all");
    await page.getByLabel("New password").fill("another fine passphrase 8");
    await page.getByRole("button", { name: "Change password" }).click();
    await page.getByText("Is not your current password").waitFor();
    await page.getByLabel("Current password").fill(PASSWORD);
    await page.getByRole("button", { name: "Change password" }).click();
    await page.getByText("Password changed. Your other sessions were signed out.").waitFor();
    await page.getByRole("button", { name: "Sign out everywhere" }).click();
    await page.waitForURL("**/signin**");
    const fresh = await login({ ...customer }).catch((err) => err);
    assert.ok(fresh instanceof Error, "the old password no longer signs in");
    await api("/auth/login", {
      method: "POST",
      body: { email: customer.email, password: "another fine passphrase 8" },
    });
    await page.context().close();
  });

  step("forgot password: the mailed link sets a new one", async () => {
    const page = await newPage();
    await page.goto("/signin");
    await page.getByRole("link", { name: "Forgot your password?" }).click();
    await page.getByRole("heading", { name: "Forgot your password?" }).waitFor();
    await page.getByLabel("Email").fill(customer.email);
    await page.getByRole("button", { name: "Send the link" }).click();
    await page.getByText("Check your mail").waitFor();
    await axe(page, "forgot password");
    const link = await mailedLink(customer.email, "/reset-password/");
    await page.goto(link.replace(BASE, ""));
    await page.getByRole("heading", { name: "Choose a new password" }).waitFor();
    await page.getByLabel("New password").fill("a third fine passphrase 7");
    await page.getByRole("button", { name: "Set password" }).click();
    await page.getByText("Password set").waitFor();
    await axe(page, "reset password");
    await page.getByRole("link", { name: "Sign in with your new password" }).click();
    await page.getByRole("heading", { name: "Sign in to Docket" }).waitFor();
    await page.getByLabel("Email").fill(customer.email);
    await page.getByLabel("Password").fill("a third fine passphrase 7");
    await page.getByRole("button", { name: "Sign in", exact: true }).click();
    await page.waitForURL("**/tickets");
    // The link was single use.
    await page.goto(link.replace(BASE, ""));
    await page.getByLabel("New password").fill("a fourth fine passphrase 6");
    await page.getByRole("button", { name: "Set password" }).click();
    await page.getByText("This link cannot be used").waitFor();
    await axe(page, "spent reset link");
    await page.context().close();
  });

  step("mail: notification preferences, the inbound address, and the mail logs", async () => {
    const page = state.owner;
    await page.goto("/account");
    const comments = page.getByRole("radiogroup", { name: "New comments on your tickets" });
    await comments.getByText("Off").click();
    await eventually(async () => {
      const prefs = await api("/me/notification-preferences", { token: state.ownerToken });
      return prefs.preferences.find((p) => p.kind === "comment").delivery === "off";
    }, "the preference saved");
    await axe(page, "account with mail preferences");

    await page.goto("/admin/mail");
    const address = await page.getByTestId("inbound-address").innerText();
    assert.ok(address.includes("/api/v1/inbound/email/"), address);
    await page.getByLabel("Acknowledge new tickets by mail").check();
    await page.getByRole("button", { name: "Save" }).click();
    await page.getByText("Mail settings saved").waitFor();
    await axe(page, "mail settings");
    await shot(page, "mail-settings");
    // A customer writes in (the mail system in front of Docket vouches for the sender); the
    // acknowledgement goes out.
    const mail = (raw) => fetch(address, { method: "POST", headers: { "Content-Type": "message/rfc822" }, body: raw });
    const res = await mail(
      "Authentication-Results: mx.docket.test; dmarc=pass header.from=customer.test\r\nFrom: Dan Customer <dan@customer.test>\r\nTo: help@acme.test\r\nSubject: Where is my order?\r\nMessage-ID: <dan-1@customer.test>\r\n\r\nIt was due on Monday.\r\n",
    );
    assert.equal(res.status, 202);
    const dansTicket = (await res.json()).ticket_id;
    await page.getByRole("tab", { name: "Received mail" }).click();
    await page.getByTestId("ingest-row").filter({ hasText: "Where is my order?" }).getByText("New ticket").waitFor();
    await axe(page, "received mail");
    await eventually(async () => mailsTo("dan@customer.test").length === 1, "the acknowledgement");
    await page.getByRole("tab", { name: "Sent mail" }).click();
    await page.getByTestId("mail-row").filter({ hasText: "dan@customer.test" }).getByText("sent").waitFor();
    await axe(page, "sent mail");
    await shot(page, "mail-log");

    // A reply nobody vouches for copies someone in: held on the ticket until an agent adds them.
    const reply = await mail(
      `From: Dan Customer <dan@customer.test>\r\nTo: help@acme.test\r\nCc: Erin <erin@customer.test>\r\nSubject: Re: Where is my order?\r\nIn-Reply-To: <dan-1@customer.test>\r\nMessage-ID: <dan-2@customer.test>\r\n\r\nCopying Erin.\r\n`,
    );
    assert.equal((await reply.json()).outcome, "comment_added");
    await page.goto(`/tickets/${dansTicket}`);
    const copied = page.getByTestId("mail-participants");
    await copied.getByTestId("held-address").filter({ hasText: "erin@customer.test" }).waitFor();
    await axe(page, "ticket with held addresses");
    await shot(page, "mail-participants");
    await copied.getByRole("button", { name: "Add erin@customer.test to the mail conversation" }).click();
    await copied.getByRole("button", { name: "Take erin@customer.test out of the mail conversation" }).waitFor();

    // A delivery report about the acknowledgement, to its signed return path, marks Dan's
    // address; the admin clears the mark.
    const returnPath = /^X-MailFrom: (.*)$/m.exec(mailsTo("dan@customer.test")[0])[1].trim();
    assert.match(returnPath, /^help\+b/);
    const report = await mail(
      `From: MAILER-DAEMON@mx.customer.test\r\nTo: ${returnPath}\r\nSubject: Undelivered\r\nContent-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nFailed.\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.customer.test\r\n\r\nFinal-Recipient: rfc822; dan@customer.test\r\nAction: failed\r\nStatus: 5.1.1\r\n--b--\r\n`,
    );
    assert.equal((await report.json()).outcome, "bounce");
    await page.goto("/admin/mail");
    await page.getByRole("tab", { name: "Bounces" }).click();
    const bounce = page.getByTestId("bounce-row").filter({ hasText: "dan@customer.test" });
    await bounce.waitFor();
    await axe(page, "bounces");
    await bounce.getByRole("button", { name: "Clear the bounce mark of dan@customer.test" }).click();
    await page.getByText("No bouncing addresses").waitFor();
  });

  step("API tokens: created on the account page, shown once, usable, revoked", async () => {
    const page = state.owner;
    await page.goto("/account");
    await page.getByRole("button", { name: "New token" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByLabel("Name").fill("Nightly export");
    await dialog.getByRole("button", { name: "Create token" }).click();
    const token = (await page.getByTestId("new-token").innerText()).trim();
    assert.ok(token.startsWith("dkt_"), token);
    const row = page.getByTestId("api-token-row").filter({ hasText: "Nightly export" });
    await row.waitFor();
    // It works as its owner, within its scopes.
    const listed = await api("/tickets?limit=1", { token });
    assert.equal(listed.items.length, 1);
    await axe(page, "account with an API token");
    await shot(page, "api-tokens");
    await page.getByRole("button", { name: "Done" }).click();
    await row.getByRole("button", { name: "Revoke Nightly export" }).click();
    await row.waitFor({ state: "detached" });
    const res = await fetch(`${BASE}/api/v1/tickets`, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(res.status, 401);
  });

  step("webhooks: subscribe, secret shown once, test, deliveries with attempts, redeliver, rotate", async () => {
    const page = state.owner;
    // A real receiver on loopback that records what it gets.
    const got = [];
    const receiver = createServer((req, res) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        got.push({ headers: req.headers, body });
        res.writeHead(204).end();
      });
    });
    await new Promise((r) => receiver.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${receiver.address().port}/docket`;
    try {
      await page.goto("/admin/webhooks");
      await page.getByRole("button", { name: "New webhook" }).click();
      const dialog = page.getByRole("dialog");
      await dialog.getByLabel("Endpoint URL").fill(url);
      await dialog.getByLabel("Description").fill("CRM sync");
      await dialog.getByLabel("comment.created").check();
      await dialog.getByRole("button", { name: "Create webhook" }).click();
      const secret = (await page.getByTestId("webhook-secret").innerText()).trim();
      assert.ok(secret.startsWith("whsec_"), secret);
      const card = page.getByTestId("webhook").filter({ hasText: url });
      await card.getByText("comment.created").waitFor();
      await axe(page, "webhooks with a new secret");
      await page.getByRole("button", { name: "Done" }).click();
      // A test delivery arrives, signed with the secret.
      await card.getByRole("button", { name: "Send test" }).click();
      await eventually(async () => got.length === 1, "the test delivery");
      const [first] = got;
      const key = Buffer.from(secret.slice("whsec_".length), "base64");
      const signed = `${first.headers["webhook-id"]}.${first.headers["webhook-timestamp"]}.${first.body}`;
      const expected = `v1,${createHmac("sha256", key).update(signed).digest("base64")}`;
      assert.equal(first.headers["webhook-signature"], expected);
      assert.equal(JSON.parse(first.body).type, "webhook.test");
      // The delivery log shows it with its attempt; redelivering keeps its webhook-id.
      await card.getByRole("button", { name: "Deliveries" }).click();
      const delivery = card.getByTestId("delivery").filter({ hasText: "webhook.test" });
      await eventually(async () => {
        await card.getByRole("button", { name: "Refresh" }).click();
        return (await delivery.getByText("succeeded").count()) === 1;
      }, "the delivery's success in the log");
      await delivery.getByRole("button", { name: /webhook\.test/ }).click();
      await delivery.getByTestId("attempt").first().getByText("204").waitFor();
      await axe(page, "webhook deliveries");
      await shot(page, "webhooks");
      await delivery.getByRole("button", { name: "Redeliver" }).click();
      await eventually(async () => got.length === 2, "the redelivery");
      assert.equal(got[1].headers["webhook-id"], first.headers["webhook-id"]);
      // Rotation shows a new secret once.
      await card.getByRole("button", { name: "Rotate secret" }).click();
      await page.getByRole("dialog").getByRole("button", { name: "Rotate" }).click();
      await eventually(
        async () => ((await page.getByTestId("webhook-secret").innerText()).trim() !== secret),
        "the new secret",
      );
      await card.getByText(/The previous secret also signs until/).waitFor();
    } finally {
      receiver.close();
    }
  });

  step("SLA: a calendar and a policy, clocks on the ticket; search with highlights; reports with a CSV", async () => {
    const page = state.owner;
    await page.goto("/admin/sla");
    await page.getByRole("button", { name: "New calendar" }).click();
    const dialog = page.getByRole("dialog");
    await dialog.getByLabel("Name").fill("Support hours");
    await dialog.getByLabel("Monday").fill("08:00-12:00, 13:00-17:00");
    await dialog.getByLabel("Holidays").fill("2026-12-25 yearly Christmas");
    await dialog.getByRole("button", { name: "Create calendar" }).click();
    await page.getByTestId("calendar").filter({ hasText: "Support hours" }).waitFor();
    await page.getByRole("button", { name: "Add policy" }).click();
    const policy = page.getByTestId("policy").first();
    await choose(page, "Priority", "urgent", policy);
    await page.getByRole("button", { name: "Save policies" }).click();
    await page.getByText("Policies saved; open tickets recomputed").waitFor();
    await axe(page, "SLA settings");
    await shot(page, "sla");
    // The urgent ticket now has clocks, with how their due times were computed.
    await page.goto("/tickets/OPS-4");
    const clocks = page.getByTestId("sla-clocks");
    await clocks.getByTestId("sla-badge").first().waitFor();
    assert.equal(await clocks.getByTestId("sla-badge").first().getAttribute("data-state"), "running");
    await clocks.getByTestId("sla-badge").first().hover();
    await page.getByText(/Target 4 h of business time on around the clock/).waitFor();
    await page.goto("/tickets");
    await page.getByTestId("ticket-row").filter({ hasText: "Payroll export fails" }).getByTestId("sla-badge").waitFor();

    await page.goto("/search");
    await page.getByLabel("Search tickets and comments").fill("payroll");
    await page.keyboard.press("Enter");
    const hit = page.getByTestId("search-hit").filter({ hasText: "Payroll export fails" });
    await hit.locator("mark").first().waitFor();
    await axe(page, "search results");
    await shot(page, "search");

    await page.goto("/reports");
    await eventually(async () => Number(await page.getByTestId("stat-created").innerText()) >= 4, "the summary");
    await page.getByTestId("sla-report").waitFor();
    const [file] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("region", { name: "Open work" }).getByRole("button", { name: "CSV" }).click(),
    ]);
    const csv = readFileSync(await file.path(), "utf8");
    assert.ok(csv.startsWith("section,key,count\r\n"), csv);
    await axe(page, "reports");
    await shot(page, "reports");
  });

  step("on a phone", async () => {
    const page = await newPage({ width: 390, height: 844 });
    // Olivia now belongs to two organisations: without naming one, the form asks beside the field.
    await page.goto("/signin");
    await page.getByLabel("Email").fill(owner.email);
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByRole("button", { name: "Sign in", exact: true }).click();
    await page.getByText(/you belong to several organizations/i).waitFor();
    await signIn(page, owner, "acme-support");
    await page.getByTestId("ticket-row").first().waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page fits the phone's width (overflows by ${overflow}px)`);
    await shot(page, "phone-tickets");
    await page.getByRole("button", { name: "Toggle navigation" }).click();
    await page.getByRole("link", { name: "Board" }).click();
    await page.waitForURL("**/board");
    await page.goto("/tickets/OPS-1");
    await page.getByTestId("ticket-title").waitFor();
    // The title's buttons stay on screen, whatever the title's length.
    const edit = await page.getByTestId("ticket-title").locator("..").getByRole("button", { name: "Edit" }).boundingBox();
    assert.ok(edit && edit.x >= 0 && edit.x + edit.width <= 390, `the Edit button is on screen: ${JSON.stringify(edit)}`);
    await shot(page, "phone-ticket");
    await axe(page, "phone ticket");
    await page.context().close();
  });

  step("second factors: an authenticator app, passkeys, and an organization that requires one", async () => {
    // Dave joins before the organization requires a second factor.
    const dave = { name: "Dave Agent", email: "dave@example.com" };
    state.ownerToken = (
      await api("/auth/login", {
        method: "POST",
        body: { email: owner.email, password: PASSWORD, organization: "acme-support" },
      })
    ).access_token;
    await invite(dave, "agent");
    const page = await newPage();
    await virtualAuthenticator(page);
    await signIn(page, owner, "acme-support");
    await page.goto("/account");
    // The app: a QR code, a code from it turns it on, and the recovery codes are shown once.
    await enrolApp(page);
    await shot(page, "account-second-factors");
    await page.getByRole("button", { name: "Done" }).click();
    // A passkey on this device.
    await page.getByPlaceholder("Laptop").fill("Laptop");
    await page.getByRole("button", { name: "Add a passkey" }).click();
    await page.getByRole("cell", { name: "Laptop", exact: true }).waitFor();
    await axe(page, "account second factors");

    // The password alone now stops at the second step; the passkey finishes it.
    await page.context().clearCookies();
    await page.goto("/signin");
    await page.getByLabel("Email").fill(owner.email);
    await page.getByLabel("Password").fill(PASSWORD);
    await page.getByLabel("Organization", { exact: true }).fill("acme-support");
    await page.getByRole("button", { name: "Sign in", exact: true }).click();
    await page.getByRole("heading", { name: "Confirm it is you" }).waitFor();
    await shot(page, "sign-in-second-step");
    await axe(page, "sign-in second step");
    await page.getByRole("button", { name: "Use a passkey" }).click();
    await page.waitForURL("**/tickets");

    // A passkey alone signs in (the browser offers it).
    await page.context().clearCookies();
    await page.goto("/signin");
    await page.getByLabel("Organization", { exact: true }).fill("acme-support");
    await page.getByRole("button", { name: "Sign in with a passkey" }).click();
    await page.waitForURL("**/tickets");
    await page.goto("/account");
    await page.getByRole("cell", { name: "Laptop", exact: true }).waitFor();
    assert.notEqual(await page.getByRole("row", { name: /Laptop/ }).getByRole("cell").nth(2).innerText(), "Never");

    // The organization requires a second factor: Dave, who has none, must set one up to get in.
    await page.goto("/admin/settings");
    await page.getByRole("switch", { name: "Require a second factor for staff" }).click();
    await page.getByText("Staff now need a second factor").waitFor();
    await shot(page, "org-sign-in-security");
    // Olivia stays signed in here (her passkey lives in this browser) for the next step.
    state.oliviaWithPasskey = page;

    const davePage = await newPage();
    await davePage.goto("/signin");
    await davePage.getByLabel("Email").fill(dave.email);
    await davePage.getByLabel("Password").fill(PASSWORD);
    await davePage.getByRole("button", { name: "Sign in", exact: true }).click();
    await davePage.getByRole("heading", { name: "Set up a second factor" }).waitFor();
    await shot(davePage, "sign-in-set-up-step");
    await enrolApp(davePage);
    await davePage.getByRole("button", { name: "Done" }).click();
    await davePage.waitForURL("**/tickets");
    await davePage.context().close();
  });

  step("single sign-on: set up with a test connection, then a new person signs in through the provider", async () => {
    const page = state.oliviaWithPasskey;
    await page.goto("/admin/settings");
    await page.getByLabel("Issuer URL").fill(process.env.OIDC_ISSUER);
    await page.getByLabel("Client id").fill("docket");
    await page.getByLabel("Client secret").fill("e2e client secret");
    await page.getByRole("textbox", { name: "Allowed email domains" }).fill("example.com");
    await page.getByRole("textbox", { name: "Allowed email domains" }).press("Enter");
    await page.getByRole("button", { name: "Save single sign-on" }).click();
    await page.getByText("Register this redirect URI with your provider").waitFor();
    await page.getByRole("button", { name: "Test connection" }).click();
    await page.getByText(/Connected to .*: 1 signing key/).waitFor();
    await axe(page, "organization sign-in security");
    await page.context().close();

    // Erin is new: the provider signs her in, and she joins as an agent. (The organization
    // requires a second factor: her provider answers for it.)
    const erin = await newPage();
    await erin.goto("/signin");
    await erin.getByLabel("Organization short name").fill("acme-support");
    await erin.getByRole("button", { name: "Sign in with SSO" }).click();
    await erin.locator("input[name=login]").fill("erin");
    await erin.locator("input[name=password]").fill("anything");
    await erin.locator("button[type=submit]").click();
    await erin.getByRole("button", { name: "Continue" }).click();
    await erin.waitForURL("**/tickets");
    await erin.getByRole("button", { name: /Account menu for Erin Sso/ }).waitFor();
    await erin.context().close();

    // A refusal comes back to the sign-in page with its reason.
    const stranger = await newPage();
    await stranger.goto("/signin");
    await stranger.getByLabel("Organization short name").fill("no-such-org");
    await stranger.getByRole("button", { name: "Sign in with SSO" }).click();
    await stranger.getByText("That organization does not offer single sign-on.").waitFor();
    await stranger.context().close();
  });
  step("data rights: the audit log, the plan, an export, retention, and deleting an organization then restoring it", async () => {
    const gina = { email: "gina@example.com", name: "Gina Gamma" };
    await api("/auth/signup", {
      method: "POST",
      body: { organization_name: "Gamma Co", name: gina.name, email: gina.email, password: PASSWORD },
    });
    await eventually(async () => mailsTo(gina.email).length > 0, "Gina's sign-up mail");
    const link = await mailedLink(gina.email, "/signup/confirm/");
    await api("/auth/signup/confirm", { method: "POST", body: { token: link.split("/signup/confirm/")[1] } });
    const page = await newPage();
    await signIn(page, gina);

    await page.goto("/admin/audit");
    await page.getByTestId("audit-entry").first().waitFor();
    await page.getByRole("button", { name: "Verify the chain" }).click();
    await page.getByText(/The chain holds: \d+ entr(y|ies) checked/).waitFor();
    await axe(page, "audit log");
    await shot(page, "audit-log");

    await page.goto("/admin/settings");
    await page.getByRole("button", { name: "Export", exact: true }).click();
    const ready = page.getByRole("button", { name: "Download", exact: true });
    await ready.waitFor({ timeout: 20_000 });
    const [file] = await Promise.all([page.waitForEvent("download"), ready.click()]);
    assert.match(file.suggestedFilename(), /^docket-export-.*\.zip$/);
    // The plan, and how much of each limit the organisation uses.
    const plan = page.getByRole("region", { name: "Plan" });
    await plan.getByText("Standard").waitFor();
    await plan.getByTestId("plan-seats").getByText("1 of 50").waitFor();
    await plan.getByTestId("plan-projects").getByText("1 of 20").waitFor();
    await plan.getByTestId("plan-storage_bytes").getByText(/· unlimited$/).waitFor();

    // Paying for a bigger plan: the owner goes to Stripe's checkout (run.mjs stands in for it)
    // and comes back to a word of thanks.
    await plan.getByRole("button", { name: "Upgrade to Business" }).click();
    await page.waitForURL("**/pay/checkout");
    await page.getByRole("heading", { name: "Stripe checkout" }).waitFor();
    await page.goto("/admin/settings?billing=done#plan");
    await plan.getByText("Thank you. The plan changes as soon as Stripe confirms the payment.").waitFor();
    // Stripe says a payment failed: owners and admins see it on every page, and may fix it.
    const { organization } = await api("/auth/me", { token: await login(gina) });
    await stripeEvent("invoice.payment_failed", {
      id: "in_e2e",
      object: "invoice",
      customer: `cus_e2e_${organization.id}`,
    });
    await page.goto("/tickets");
    const due = page.getByTestId("past-due");
    await due.getByText(/Unless it is paid by .+, the organization moves to Standard/).waitFor();
    await axe(page, "a payment overdue");
    await shot(page, "payment-overdue");
    await due.getByRole("button", { name: "Update payment" }).click();
    await page.waitForURL("**/pay/portal");
    await page.goto("/admin/settings");

    // Retention: a bad value is named beside its field, a good one is kept.
    const closedDays = page.getByLabel("Purge closed tickets after (days)");
    await closedDays.fill("0");
    await page.getByRole("button", { name: "Save retention" }).click();
    await page.getByText("A number of days from 1 to 3650, or empty to keep them").waitFor();
    await closedDays.fill("365");
    await page.getByRole("button", { name: "Save retention" }).click();
    await page.getByText("Retention saved; it applies within a day").waitFor();
    const kept = await api("/org/retention", { token: await login(gina) });
    assert.equal(kept.closed_ticket_days, 365);
    assert.equal(kept.mail_body_days, null);
    await axe(page, "organization data rights");

    await page.getByRole("button", { name: "Delete Gamma Co…" }).click();
    await page.getByLabel("Your password").fill("not the password");
    await page.getByRole("button", { name: "Delete the organization" }).click();
    await page.getByText("Is not your password").waitFor();
    await page.getByLabel("Your password").fill(PASSWORD);
    await page.getByRole("button", { name: "Delete the organization" }).click();
    await page.waitForURL("**/signin**");
    await page.getByText(/The organization was deleted\. It will be removed for good on/).waitFor();

    // Its owner may still sign in, and only to restore it.
    await signIn(page, gina);
    await page.getByRole("heading", { name: "Gamma Co was deleted" }).waitFor();
    await axe(page, "closed organization");
    await shot(page, "closed-organization");
    await page.getByRole("button", { name: "Restore Gamma Co" }).click();
    await page.getByRole("banner").getByText("Gamma Co").waitFor();
    await page.context().close();
  });
});
