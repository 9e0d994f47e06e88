/**
 * The phone page in a real browser: Debian's Chromium, headless, driven by
 * playwright-core, against `npm start`'s broker and virtual board (scripts/demo/start.ts).
 * The board runs the built script on the real clock with a short keep-alive (5 s),
 * so the browser and the board share one time.
 *
 * tap → the board's LED pin goes high and the page shows "on" (after "pending");
 * reload → the retained state shows; the board loses power → the page shows
 * "offline" within 1.5 × keep-alive; a tap while the board is offline stays pending
 * and is applied when the board is back (QoS 1, persistent session); the broker
 * restarts → the page reconnects by itself; the query string sets prefix, topic
 * and broker.
 *
 * Chromium: /usr/bin/chromium (apt-get install chromium; .ci/run does it), or
 * CHROMIUM_BIN. Without it the file is skipped, except in CI (CI=true), where it fails.
 * PAGE_SCREENSHOT=docs/phone-page.png saves the page as the README shows it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import mqtt from "mqtt";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { ROOT } from "../../scripts/build/bundle";
import { startDemo, type Demo } from "../../scripts/demo/start";
import { startBroker, type PhoneBroker } from "../../scripts/demo/broker";
import { until } from "../support/wait";

// The page's globals, for the functions run inside it by page.evaluate (tsconfig has no DOM types).
declare const document: any, window: any, MutationObserver: any;
type HTMLLinkElement = { href: string };

const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium && !process.env.CI) console.log(`phone page tests skipped: no Chromium at ${CHROMIUM} (apt-get install chromium)`);
const KEEPALIVE = 5;


/** The page's view: the switch's state and pending command, the board's presence, the broker connection. */
async function view(page: Page) {
  return page.evaluate(() => {
    const sw = document.getElementById("switch")!;
    return {
      state: sw.dataset.state,
      pending: sw.dataset.pending ?? null,
      presence: document.getElementById("board")!.dataset.presence,
      conn: document.getElementById("conn")!.dataset.conn,
      text: document.getElementById("switch-text")!.textContent,
      hint: document.getElementById("hint")!.textContent,
      checked: sw.getAttribute("aria-checked"),
    };
  });
}
type View = Awaited<ReturnType<typeof view>>;

async function waitView(page: Page, want: Partial<View>, ms: number, what: string): Promise<View> {
  let last: View | undefined;
  try {
    await until(async () => {
      last = await view(page);
      return Object.entries(want).every(([k, v]) => last![k as keyof View] === v);
    }, ms, what);
  } catch (e) {
    throw new Error(`${(e as Error).message}; the page shows ${JSON.stringify(last)}`);
  }
  return last!;
}

/** Starts recording every change of the switch: [state, pending] in order, in window.__history. */
async function record(page: Page): Promise<void> {
  await page.evaluate(() => {
    const sw = document.getElementById("switch")!;
    const w = window as unknown as { __history: [string | undefined, string | null][] };
    w.__history = [[sw.dataset.state, sw.dataset.pending ?? null]];
    new MutationObserver(() => {
      const last = w.__history[w.__history.length - 1];
      const now: [string | undefined, string | null] = [sw.dataset.state, sw.dataset.pending ?? null];
      if (last[0] !== now[0] || last[1] !== now[1]) w.__history.push(now);
    }).observe(sw, { attributes: true });
  });
}
const history = (page: Page) => page.evaluate(() => (window as unknown as { __history: [string, string | null][] }).__history);

describe.skipIf(!haveChromium && !process.env.CI)("the phone page in Chromium, against npm start's broker and virtual board", () => {
  let demo: Demo;
  let context: BrowserContext;
  let page: Page;
  let userData: string;
  const lines: string[] = [];
  const led = () => demo.vb.pin(demo.board.led);

  beforeAll(async () => {
    demo = await startDemo({ port: 0, wsPort: 0, keepAlive: KEEPALIVE, baud: 0, print: (s) => lines.push(s) });
    userData = mkdtempSync(path.join(os.tmpdir(), "phone-page-chromium-"));
    context = await chromium.launchPersistentContext(userData, {
      executablePath: CHROMIUM,
      headless: true,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"],
      viewport: { width: 390, height: 760 },
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
      timeout: 30_000,
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(10_000);
  }, 60_000);

  afterAll(async () => {
    await context?.close();
    await demo?.stop();
    if (userData) rmSync(userData, { recursive: true, force: true });
  });

  it("shows what the board reported: connected, board online, LED off; MQTT.js from this server", async () => {
    const requests: string[] = [];
    page.on("request", (r) => requests.push(r.url()));
    await page.goto(demo.pageUrl);
    const v = await waitView(page, { conn: "connected", presence: "online", state: "off" }, 15_000, "the board's retained state");
    expect(v).toMatchObject({ pending: null, text: "off", checked: "false" });
    // nothing from anywhere but this server
    expect(requests.filter((u) => !u.startsWith(demo.pageUrl))).toEqual([]);
    expect(requests).toContain(demo.pageUrl + "mqtt.min.js");
    expect(await page.evaluate(() => (document.querySelector('link[rel="manifest"]') as HTMLLinkElement).href)).toBe(demo.pageUrl + "manifest.webmanifest");
  }, 30_000);

  it("tap → \"pending\" until the board confirms → the LED pin is high and the page shows on", async () => {
    await record(page);
    await page.tap("#switch");
    await until(() => led() === 1, 10_000, "the LED pin to go high");
    await waitView(page, { state: "on", pending: null, text: "on", checked: "true" }, 10_000, "the page to show on");
    // the page said "pending" first, and only the board's report made it "on"
    expect(await history(page)).toEqual([["off", null], ["off", "on"], ["on", null]]);
  }, 30_000);

  it("reload → the retained state shows at once, with no command", async () => {
    await page.reload();
    await waitView(page, { conn: "connected", state: "on", presence: "online", pending: null }, 10_000, "the retained state after reload");
    // back off, so that the board's boot report ("off") cannot be mistaken for the command below
    await page.tap("#switch");
    await until(() => led() === 0, 10_000, "the LED pin to go low");
    await waitView(page, { state: "off", pending: null }, 10_000, "off confirmed");
  }, 30_000);

  it(`the board loses power → the page shows "offline" within 1.5 × keep-alive (${1.5 * KEEPALIVE} s)`, async () => {
    const t0 = Date.now();
    demo.stopBoard();
    await waitView(page, { presence: "offline" }, 1.5 * KEEPALIVE * 1000 + 3000, "the board to show offline");
    const took = Date.now() - t0;
    // The broker gives up 1.5 × keep-alive after the board's last packet, which came at or before
    // the power cut; 1 s more for the last will to reach the browser on a busy machine.
    expect(took, `offline after ${took} ms`).toBeLessThanOrEqual(1.5 * KEEPALIVE * 1000 + 1000);
    expect((await view(page)).text, "the last reported state stays shown").toBe("off");
  }, 30_000);

  it("a tap while the board is offline stays pending, and is applied when the board is back (QoS 1, persistent session)", async () => {
    await record(page);
    await page.tap("#switch");
    let v = await waitView(page, { pending: "on" }, 5000, "pending");
    expect(v.hint).toMatch(/board is offline: the command waits on the broker/);
    await new Promise((r) => setTimeout(r, 2000));
    v = await view(page);
    expect([v.state, v.pending, v.presence], "still pending after 2 s, nothing claimed").toEqual(["off", "on", "offline"]);

    demo.startBoard();
    await until(() => led() === 1, 20_000, "the returning board to apply the waiting command");
    v = await waitView(page, { state: "on", pending: null, presence: "online" }, 10_000, "on, confirmed by the returning board");
    // its boot report "off" did not end the wait: only "on" did
    const h = await history(page);
    expect(h[0]).toEqual(["off", null]);
    expect(h.at(-1)).toEqual(["on", null]);
    expect(h.slice(1, -1).every(([, pending]) => pending === "on"), JSON.stringify(h)).toBe(true);
    expect(lines.filter((l) => l.startsWith("board   powered"))).toEqual(["board   powered off (its TCP link left open and silent)", "board   powered on"]);
    expect(demo.vb.uncaught).toBe(0);

    await new Promise((r) => setTimeout(r, 500)); // the switch's colour transition
    const shot = path.join(ROOT, "tmp", "phone-page.png");
    mkdirSync(path.dirname(shot), { recursive: true });
    await page.screenshot({ path: shot });
    if (process.env.PAGE_SCREENSHOT) await page.screenshot({ path: path.resolve(ROOT, process.env.PAGE_SCREENSHOT) });
  }, 45_000);

  it("?prefix=…&topic=…&broker=… drive another board's topics through another broker, and the page reconnects when that broker comes back", async () => {
    let other: PhoneBroker | undefined = await startBroker({ port: 0, wsPort: 0 });
    const wsPort = other.wsPort;
    const phone = await mqtt.connectAsync(`mqtt://127.0.0.1:${other.port}`, { reconnectPeriod: 0 });
    const seen: string[] = [];
    try {
      await phone.subscribeAsync("kitchen/lamp", { qos: 1 });
      phone.on("message", (t, p) => seen.push(`${t}=${p}`));
      const p2 = await context.newPage();
      await p2.goto(`${demo.pageUrl}?prefix=kitchen&topic=lamp&broker=${encodeURIComponent(`ws://127.0.0.1:${wsPort}/`)}`);
      // nothing reported yet: the page claims nothing
      let v = await waitView(p2, { conn: "connected" }, 10_000, "connected to the other broker");
      expect([v.state, v.presence, v.text]).toEqual(["unknown", "unknown", "unknown"]);
      expect(await p2.textContent("h1")).toBe("kitchen/lamp");
      await phone.publishAsync("kitchen/lamp/status", "online", { retain: true, qos: 1 });
      await phone.publishAsync("kitchen/lamp/state", "off", { retain: true, qos: 1 });
      await waitView(p2, { presence: "online", state: "off" }, 10_000, "the other board's reports");
      await p2.tap("#switch");
      await until(() => seen.includes("kitchen/lamp=on"), 10_000, "the command on kitchen/lamp");
      expect((await view(p2)).pending).toBe("on");

      // the broker goes away: the page says so; it comes back on the same port: the page reconnects by itself
      phone.end(true);
      await other.stop();
      other = undefined;
      await waitView(p2, { conn: "reconnecting" }, 10_000, "the page to notice the broker is gone");
      other = await startBroker({ port: 0, wsPort });
      await waitView(p2, { conn: "connected" }, 15_000, "the page to reconnect");
      await p2.close();
    } finally {
      phone.end(true);
      await other?.stop();
    }
  }, 60_000);

  it("a broker that asks for a user name and password: the page says it was refused, asks, and connects with them", async () => {
    const secured = await startBroker({ port: 0, wsPort: 0, auth: { username: "phone", password: "Ph0ne-pw" } });
    try {
      const p3 = await context.newPage();
      await p3.goto(`${demo.pageUrl}?broker=${encodeURIComponent(`ws://127.0.0.1:${secured.wsPort}/`)}`);
      const v = await waitView(p3, { conn: "refused" }, 10_000, "the refusal");
      expect(v.hint).toBe("The broker refused this page: bad user name or password.");
      expect(await p3.isVisible("#login")).toBe(true);
      await p3.fill("#user", "phone");
      await p3.fill("#password", "Ph0ne-pw");
      await p3.tap("#login button[type=submit]");
      await waitView(p3, { conn: "connected" }, 10_000, "connected with the credentials");
      expect(await p3.isVisible("#login")).toBe(false);
      expect(await p3.inputValue("#password"), "the password field is cleared").toBe("");
      await p3.close();
    } finally {
      await secured.stop();
    }
  }, 30_000);
});
