// Drives one client page in headless Debian Chromium and reports what the client did, as JSON on stdout:
// every request it made (method, URL, form body), every response (status, content type, size), console
// errors, page errors, the page's own ready report, and a screenshot of the map element.
// Usage: node drive.mjs '<json config>'  with {pageUrl, screenshot, userDataDir, timeoutMs, viewport}
import { chromium } from "playwright-core";

const config = JSON.parse(process.argv[2]);
const CHROMIUM_FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

const report = { requests: [], console: [], pageErrors: [], failed: [], ready: null };
const context = await chromium.launchPersistentContext(config.userDataDir, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: CHROMIUM_FLAGS,
  viewport: config.viewport,
  deviceScaleFactor: 1,
});
try {
  const page = context.pages()[0] ?? (await context.newPage());
  const entries = new Map();
  page.on("request", (request) => {
    const entry = { method: request.method(), url: request.url(), resourceType: request.resourceType(),
                    postData: request.postData(), contentType: request.headers()["content-type"] ?? null };
    entries.set(request, entry);
    report.requests.push(entry);
  });
  page.on("response", async (response) => {
    const entry = entries.get(response.request());
    if (!entry) return;
    entry.status = response.status();
    entry.responseContentType = response.headers()["content-type"] ?? null;
    // Bodies of requests made from the SDK's workers are not readable here: their declared length stands in.
    entry.contentLength = Number(response.headers()["content-length"] ?? -1);
    try {
      const body = await response.body();
      entry.bodyLength = body.length;
      entry.bodyHead = body.subarray(0, 8).toString("hex");
    } catch (error) {
      entry.bodyError = String(error);
    }
  });
  page.on("requestfailed", (request) => {
    report.failed.push({ url: request.url(), error: request.failure()?.errorText ?? "" });
  });
  page.on("console", (message) => {
    report.console.push({ type: message.type(), text: message.text(), location: message.location() });
  });
  page.on("pageerror", (error) => report.pageErrors.push(String(error.stack ?? error)));

  await page.goto(config.pageUrl, { waitUntil: "load", timeout: config.timeoutMs });
  // Each page sets window.harnessReady to {ok: true, ...} once its client has drawn, or {ok: false, error}.
  await page.waitForFunction(() => window.harnessReady !== undefined, null, { timeout: config.timeoutMs });
  report.ready = await page.evaluate(() => window.harnessReady);
  // Bodies of the last responses are read asynchronously; let them settle before the report is written.
  await page.waitForTimeout(100);
  await page.locator("#map").screenshot({ path: config.screenshot, animations: "disabled" });
} catch (error) {
  report.driverError = String(error.stack ?? error);
} finally {
  await context.close();
}
process.stdout.write(JSON.stringify(report));
