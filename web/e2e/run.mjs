// End-to-end tests: starts a real `docket serve` per backend (SQLite, then PostgreSQL on a fresh
// database) with a real SMTP server (aiosmtpd, writing what it receives into a maildir the spec
// reads links from), and runs app.spec.mjs against it in Debian's Chromium through
// playwright-core.
//
//   DOCKET_BIN          the docket binary (default ../target/debug/docket)
//   E2E_BACKENDS        "sqlite,postgres" (default; postgres needs DOCKET_TEST_PG_URL reachable)
//   DOCKET_TEST_PG_URL  PostgreSQL URL of a role that may create databases
//   CHROMIUM            browser executable (default /usr/bin/chromium)
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const here = new URL(".", import.meta.url).pathname;
const bin = process.env.DOCKET_BIN ?? join(here, "../../target/debug/docket");
const pgUrl = process.env.DOCKET_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const backends = (process.env.E2E_BACKENDS ?? "sqlite,postgres").split(",").filter(Boolean);

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
    srv.on("error", reject);
  });
}

function psql(sql) {
  const r = spawnSync("psql", [pgUrl, "-Atqc", sql], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`psql failed: ${r.stderr}`);
}

async function waitReady(url, server) {
  for (let i = 0; i < 300; i++) {
    if (server.exitCode !== null) throw new Error("docket serve exited early");
    try {
      const res = await fetch(`${url}/readyz`);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("docket serve did not become ready");
}

async function waitListening(port, child, what) {
  const { connect } = await import("node:net");
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`${what} exited early (is it installed?)`);
    const ok = await new Promise((resolve) => {
      const socket = connect(port, "127.0.0.1", () => {
        socket.destroy();
        resolve(true);
      });
      socket.on("error", () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not start`);
}

const STRIPE_WEBHOOK_SECRET = "whsec_e2e";

/**
 * Stripe's API as far as the browser run needs it (localstripe, which the HTTP suite uses, has
 * no Checkout or Billing Portal): the objects of Stripe's API reference for a customer, a
 * Checkout Session and a portal session, whose URLs lead to a page standing in for Stripe's.
 * The customer is `cus_e2e_<organisation id>`, so the run can sign events for it.
 */
async function stripeFixture() {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const server = createHttpServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      const form = new URLSearchParams(body);
      const json = (object) => {
        res.writeHead(200, { "Content-Type": "application/json" });
        res.end(JSON.stringify(object));
      };
      if (req.method === "POST" && req.url === "/v1/customers") {
        return json({ id: `cus_e2e_${form.get("metadata[docket_org_id]")}`, object: "customer" });
      }
      if (req.method === "POST" && req.url === "/v1/checkout/sessions") {
        return json({ id: "cs_test_e2e", object: "checkout.session", mode: "subscription", url: `${base}/pay/checkout` });
      }
      if (req.method === "POST" && req.url === "/v1/billing_portal/sessions") {
        return json({ id: "bps_e2e", object: "billing_portal.session", url: `${base}/pay/portal` });
      }
      if (req.method === "GET" && req.url?.startsWith("/pay/")) {
        res.writeHead(200, { "Content-Type": "text/html" });
        return res.end(`<!doctype html><title>Stripe (fixture)</title><h1>Stripe ${req.url.slice(5)}</h1>`);
      }
      res.writeHead(404, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ error: { message: "no such route" } }));
    });
  });
  await new Promise((resolve) => server.listen(port, "127.0.0.1", resolve));
  return { base, server };
}

async function runOn(backend) {
  const dataDir = mkdtempSync(join(tmpdir(), "docket-e2e-"));
  const port = await freePort();
  // A name, not an address: passkeys are bound to a domain (browsers refuse them on an IP).
  const url = `http://localhost:${port}`;
  const smtpPort = await freePort();
  const maildir = join(dataDir, "maildir");
  const smtp = spawn(
    "python3",
    ["-m", "aiosmtpd", "-n", "-l", `127.0.0.1:${smtpPort}`, "-c", "aiosmtpd.handlers.Mailbox", maildir],
    { stdio: "ignore" },
  );
  await waitListening(smtpPort, smtp, "aiosmtpd");
  // The organisation's identity provider for the single sign-on step (tests/oidc).
  const oidcPort = await freePort();
  const oidc = spawn(process.execPath, ["provider.mjs"], {
    cwd: join(here, "../../tests/oidc"),
    env: {
      ...process.env,
      PORT: String(oidcPort),
      CLIENT_ID: "docket",
      CLIENT_SECRET: "e2e client secret",
      REDIRECT_URI: `${url}/api/v1/auth/sso/callback`,
      ACCOUNTS: JSON.stringify({ erin: { email: "erin@example.com", email_verified: true, name: "Erin Sso" } }),
    },
    stdio: "ignore",
  });
  await waitListening(oidcPort, oidc, "the OpenID provider (npm ci in tests/oidc)");
  const stripe = await stripeFixture();
  // Plans, as a server sold as a service has them: room enough for every step, and a second plan
  // to upgrade to.
  const plansFile = join(dataDir, "plans.toml");
  writeFileSync(
    plansFile,
    '[plans.standard]\nlabel = "Standard"\nseats = 50\nprojects = 20\nwebhooks = 10\n\n' +
      '[plans.business]\nlabel = "Business"\nstripe_price_id = "price_business"\n',
  );
  const env = {
    ...process.env,
    DOCKET_PLANS_FILE: plansFile,
    DOCKET_DEFAULT_PLAN: "standard",
    DOCKET_STRIPE_SECRET_KEY: "sk_test_e2e",
    DOCKET_STRIPE_WEBHOOK_SECRET: STRIPE_WEBHOOK_SECRET,
    DOCKET_STRIPE_API_BASE: stripe.base,
    DOCKET_ADDR: `127.0.0.1:${port}`,
    DOCKET_DATA_DIR: dataDir,
    DOCKET_SMTP_URL: `smtp://127.0.0.1:${smtpPort}`,
    DOCKET_MAIL_FROM: "Acme Help <help@docket.test>",
    // The mail system in front of Docket whose Authentication-Results it believes.
    DOCKET_MAIL_TRUSTED_AUTHSERV_IDS: "mx.docket.test",
    DOCKET_PUBLIC_URL: url,
    // The webhook step's receiver listens on loopback.
    DOCKET_WEBHOOK_ALLOWED_NETS: "127.0.0.0/8",
    RUST_LOG: process.env.RUST_LOG ?? "warn",
  };
  let database;
  if (backend === "postgres") {
    database = `docket_e2e_${process.pid}_${Date.now()}`;
    psql(`CREATE DATABASE ${database}`);
    env.DATABASE_URL = pgUrl.replace(/\/[^/]*$/, `/${database}`);
  }
  const server = spawn(bin, ["serve"], { env, stdio: ["ignore", "ignore", "inherit"] });
  try {
    await waitReady(url, server);
    // Not spawnSync: the Stripe stand-in answers from this process while the spec runs.
    const spec = spawn(
      process.execPath,
      ["--test", "--test-reporter=spec", "--test-concurrency=1", join(here, "app.spec.mjs")],
      {
        env: {
          ...process.env,
          BASE_URL: url,
          E2E_BACKEND: backend,
          MAILDIR: maildir,
          OIDC_ISSUER: `http://127.0.0.1:${oidcPort}`,
          STRIPE_WEBHOOK_SECRET,
        },
        stdio: "inherit",
      },
    );
    const status = await new Promise((resolve) => spec.once("exit", resolve));
    return status === 0;
  } finally {
    server.kill("SIGTERM");
    await new Promise((r) => (server.exitCode === null ? server.once("exit", r) : r()));
    smtp.kill("SIGTERM");
    oidc.kill("SIGTERM");
    stripe.server.close();
    rmSync(dataDir, { recursive: true, force: true });
    if (database) psql(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  }
}

const summary = [];
let ok = true;
for (const backend of backends) {
  console.log(`\n==== end-to-end on ${backend}`);
  const passed = await runOn(backend);
  summary.push(`e2e ${backend}: ${passed ? "passed" : "FAILED"}`);
  ok &&= passed;
}
console.log(`\n${summary.join("\n")}`);
process.exit(ok ? 0 : 1);
