// A team server's studio in a real headless Chromium, signed in as one person through their one-time
// link: node team.mjs '<json config>' (from tests/e2e/test_team.py). Prints a JSON line of what it saw;
// exits non-zero, naming the step, when one fails.
import { chromium } from "playwright-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const cfg = JSON.parse(process.argv[2]);
const home = fs.mkdtempSync(path.join(os.tmpdir(), "cairn-team-chromium-"));
const context = await chromium.launchPersistentContext(path.join(home, "profile"), {
  executablePath: "/usr/bin/chromium",
  viewport: { width: 1400, height: 900 },
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
  env: { ...process.env, HOME: home, XDG_CONFIG_HOME: home, XDG_CACHE_HOME: home },
});
const page = context.pages()[0] ?? (await context.newPage());
const results = {};
let step = "sign in";
try {
  await page.goto(cfg.login);
  await page.waitForSelector(`[data-job="${cfg.mine}"]`);
  await page.waitForSelector(`[data-job="${cfg.theirs}"]`);
  step = "who is signed in";
  results.whoami = await page.evaluate(() => fetch("/api/v1/whoami").then((r) => r.json()));
  step = "the mine filter";
  await page.check("#mine-filter");
  await page.waitForSelector(`[data-job="${cfg.theirs}"]`, { state: "detached" });
  results.mine_rows = await page.$$eval("[data-job]", (rows) => rows.map((r) => r.dataset.job));
  results.url = page.url();
  step = "cancel another's job from the studio";
  results.cancel_theirs = await page.evaluate(
    (name) =>
      fetch(`/api/v1/jobs/${name}/cancel`, {
        method: "POST",
        headers: { "X-Cairn-Studio": "1" },
      }).then(async (r) => ({ status: r.status, body: await r.text() })),
    cfg.theirs,
  );
  console.log(JSON.stringify(results));
} catch (e) {
  console.error(`step "${step}" failed at ${page.url()}: ${e.stack ?? e}`);
  console.error((await page.content()).slice(0, 1500));
  process.exitCode = 1;
} finally {
  await context.close();
  fs.rmSync(home, { recursive: true, force: true });
}
