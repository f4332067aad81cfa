// A page of another origin on the same site (another port of 127.0.0.1) in a real headless Chromium that is
// signed in to the studio: node cross_site.mjs '<json config>' (from tests/e2e/test_sandbox.py). It tries
// what the audit did (a no-cors text/plain fetch, a plain form, framing the studio) and prints what the
// browser saw as JSON; the test judges it against the server's own record.
import { chromium } from "playwright-core";
import fs from "node:fs";
import path from "node:path";

const cfg = JSON.parse(process.argv[2]);
const home = fs.mkdtempSync(path.join(cfg.out, "chromium-"));
const context = await chromium.launchPersistentContext(path.join(home, "profile"), {
  executablePath: "/usr/bin/chromium",
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
const seen = {};
try {
  const page = context.pages()[0] ?? (await context.newPage());
  await page.goto(cfg.login); // signed in: the session cookie is the browser's now
  await page.waitForFunction(() => location.hash.startsWith("#/jobs"), null, { timeout: 15000 });
  await page.goto(cfg.attacker); // the other origin's page
  seen.fetch = await page.evaluate(async (server) => {
    try {
      await fetch(`${server}/api/v1/jobs/${"victim"}/cancel`, {
        method: "POST",
        mode: "no-cors",
        credentials: "include",
        headers: { "Content-Type": "text/plain" },
        body: "{}",
      });
      return "sent";
    } catch (e) {
      return "blocked: " + e.message;
    }
  }, cfg.server);
  // A form posts as a navigation: it lands on the server's answer.
  const landed = page.waitForURL((u) => u.toString().startsWith(cfg.server), {
    waitUntil: "load",
    timeout: 15000,
  });
  await page.evaluate((server) => {
    const f = document.createElement("form");
    f.method = "POST";
    f.action = `${server}/api/v1/jobs/victim/cancel`;
    f.enctype = "text/plain";
    document.body.appendChild(f);
    f.submit();
  }, cfg.server);
  await landed;
  seen.form_answer = (await page.content()).slice(0, 400);
  // Framing the signed-in studio.
  await page.goto(cfg.attacker);
  await page.evaluate((server) => {
    const f = document.createElement("iframe");
    f.src = `${server}/#/jobs`;
    document.body.appendChild(f);
  }, cfg.server);
  const frame = await (await page.waitForSelector("iframe")).contentFrame();
  await frame.waitForLoadState("load").catch(() => {});
  seen.framed = `${frame.url()} | ${await frame.title().catch(() => "?")}`;
  // The studio itself, for contrast: its own page may cancel.
  await page.goto(`${cfg.server}/#/jobs`);
  seen.own = await page.evaluate(async () => {
    const r = await fetch("/api/v1/jobs/own_victim/cancel", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Cairn-Studio": "1" },
      body: "{}",
    });
    return r.status;
  });
} catch (e) {
  seen.error = String(e);
} finally {
  await context.close();
}
console.log(JSON.stringify(seen));
