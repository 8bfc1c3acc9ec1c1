// Prints the gzip size of the JavaScript a first visit loads (the entry script and the chunks
// index.html preloads) and fails the build when it is over the budget.
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { join } from "node:path";

const BUDGET = 350 * 1024;
const dist = new URL("../dist/", import.meta.url).pathname;
const html = readFileSync(join(dist, "index.html"), "utf8");
const scripts = [...html.matchAll(/(?:src|href)="\/(assets\/[^"]+\.js)"/g)].map((m) => m[1]);
let total = 0;
for (const file of new Set(scripts)) {
  const size = gzipSync(readFileSync(join(dist, file)), { level: 9 }).length;
  total += size;
  console.error(`  ${file}: ${(size / 1024).toFixed(1)} kB gzip`);
}
console.error(`initial JavaScript: ${(total / 1024).toFixed(1)} kB gzip (budget ${BUDGET / 1024} kB)`);
if (total > BUDGET) {
  console.error("over the budget: split a route or drop a dependency");
  process.exit(1);
}
