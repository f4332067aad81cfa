// The studio's performance in a real headless Chromium (bench/studio.py prepares the workspace):
// node bench/studio.mjs '<json config>'. Prints one JSON object of timings in milliseconds.
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";

const require = createRequire(new URL("../tests/browser/package.json", import.meta.url));
const { chromium } = require("playwright-core");
const cfg = JSON.parse(process.argv[2]);
const home = fs.mkdtempSync("/tmp/cairn-studio-bench-");
const context = await chromium.launchPersistentContext(path.join(home, "profile"), {
  executablePath: "/usr/bin/chromium",
  viewport: { width: 1400, height: 900 },
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  env: { ...process.env, HOME: home, XDG_CONFIG_HOME: home, XDG_CACHE_HOME: home },
});
const page = context.pages()[0] ?? (await context.newPage());
const out = {};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const rounds = cfg.rounds ?? 5;

// Time from starting a navigation to a selector being visible, in the page's own clock.
async function visit(hash, selector, state = "visible") {
  const t0 = Date.now();
  await page.goto(`${cfg.server}/${hash}`);
  await page.waitForSelector(selector, { state, timeout: 60000 });
  return Date.now() - t0;
}
// Time of an interaction until the page has painted its result (two animation frames).
async function interact(fn) {
  return page.evaluate(async (body) => {
    const t0 = performance.now();
    new Function(body)();
    await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
    return performance.now() - t0;
  }, fn);
}

await page.goto(cfg.login);
await page.waitForSelector("[data-job]", { timeout: 60000 });

const jobs = [], filters = [], sorts = [];
for (let i = 0; i < rounds; i++) {
  await page.goto("about:blank");
  jobs.push(await visit("#/jobs", "[data-job]"));
  const n = await page.$eval(".count", (e) => e.textContent);
  out.jobs_count = n;
  filters.push(await interact(`const f = document.getElementById("job-filter"); f.value = "bench_4"; f.dispatchEvent(new Event("input"));`));
  await interact(`const f = document.getElementById("job-filter"); f.value = ""; f.dispatchEvent(new Event("input"));`);
  sorts.push(await interact(`document.querySelector(".row.head .c-name").click();`));
}
out.jobs_page_first_rows_ms = median(jobs);
out.jobs_filter_ms = median(filters);
out.jobs_sort_ms = median(sorts);

const chart = [];
for (let i = 0; i < rounds; i++) {
  await page.goto("about:blank");
  chart.push(await visit(`#/jobs/${cfg.million}/metrics`, ".chart canvas"));
}
out.million_point_chart_ms = median(chart);

const compare = [];
for (let i = 0; i < rounds; i++) {
  await page.goto("about:blank");
  compare.push(await visit(`#/compare?jobs=${cfg.compare.join(",")}`, `.chart:nth-child(${cfg.compare_keys}) canvas`));
}
out.compare_20x5x10k_ms = median(compare);

// A running job prints "tick <ms since epoch>" every 300 ms: how long until each line shows in the page.
await page.goto(`${cfg.server}/#/jobs/${cfg.ticker}/logs`);
await page.waitForFunction(() => document.getElementById("log")?.textContent.includes("tick"), null, { timeout: 30000 });
const lags = await page.evaluate(async () => {
  const pre = document.getElementById("log");
  const seen = new Set(), lags = [];
  const done = new Promise((resolve) => {
    new MutationObserver(() => {
      const now = Date.now();
      for (const m of pre.textContent.matchAll(/tick (\d+)/g)) {
        if (seen.has(m[1])) continue;
        seen.add(m[1]);
        lags.push(now - Number(m[1]));
      }
      if (lags.length >= 25) resolve();
    }).observe(pre, { childList: true, characterData: true, subtree: true });
  });
  for (const m of pre.textContent.matchAll(/tick (\d+)/g)) seen.add(m[1]);  // already there: not timed
  await Promise.race([done, new Promise((r) => setTimeout(r, 20000))]);
  return lags;
});
out.log_line_lag_ms = { median: median(lags), max: Math.max(...lags), n: lags.length };
console.log(JSON.stringify(out));
await context.close();
