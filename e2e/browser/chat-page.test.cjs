// Browser test of the web client, in headless Chromium (Debian's chromium,
// driven by playwright-core), against a running local stack:
//   open the page with the demo token → send a message → the answer streams
//   in → it is spoken (the audio element gets a real WAV and plays it) →
//   push-to-talk with a fake microphone playing synthesized speech → the
//   transcript is sent and answered → the session is listed. Saves a
//   screenshot. Run by `scripts/run-local.sh --smoke --browser`.
//
// Environment: CHAT_URL, VOICE_URL, TOKEN, CHROMIUM (default
// /usr/bin/chromium), SCREENSHOT (default target/browser/chat-page.png);
// NODE_PATH must reach playwright-core.
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");

const CHAT_URL = (process.env.CHAT_URL || "http://127.0.0.1:8007").replace(/\/+$/, "");
const VOICE_URL = (process.env.VOICE_URL || "http://127.0.0.1:8006").replace(/\/+$/, "");
const TOKEN = process.env.TOKEN;
const SCREENSHOT = process.env.SCREENSHOT || "target/browser/chat-page.png";
const SPOKEN = "What is the capital of France?";
const WAIT = 120_000;

function check(condition, message) {
  if (!condition) throw new Error(message);
}

function isWav(bytes) {
  return bytes.length > 44 &&
    bytes.subarray(0, 4).toString("latin1") === "RIFF" &&
    bytes.subarray(8, 12).toString("latin1") === "WAVE";
}

async function synthesizeMicrophoneInput(file) {
  const r = await fetch(`${VOICE_URL}/api/v1/tts`, {
    method: "POST",
    headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/json" },
    body: JSON.stringify({ text: SPOKEN }),
  });
  check(r.ok, `TTS for the fake microphone: HTTP ${r.status}`);
  const bytes = Buffer.from(await r.arrayBuffer());
  check(isWav(bytes), "TTS for the fake microphone is not a WAV");
  fs.writeFileSync(file, bytes);
}

async function main() {
  check(TOKEN, "TOKEN is required");
  const started = Date.now();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "vcs-browser-"));
  const mic = path.join(tmp, "microphone.wav");
  await synthesizeMicrophoneInput(mic);

  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: [
      // Root in CI containers cannot use the setuid sandbox.
      ...(process.getuid && process.getuid() === 0 ? ["--no-sandbox"] : []),
      "--use-fake-ui-for-media-stream",
      "--use-fake-device-for-media-stream",
      `--use-file-for-fake-audio-capture=${mic}`,
      "--autoplay-policy=no-user-gesture-required",
    ],
  });
  const failures = [];
  try {
    const page = await browser.newPage();
    page.on("pageerror", (e) => failures.push(`page error: ${e.message}`));
    page.on("console", (m) => {
      if (m.type() === "error") failures.push(`console error: ${m.text()}`);
    });
    const ttsAnswers = [];
    page.on("response", async (r) => {
      if (r.url().endsWith("/api/v1/tts") && r.request().method() === "POST") {
// The bytes are checked where they end up, in the audio element: the
        // DevTools protocol reports an empty body once the page read it as a blob.
        ttsAnswers.push({ status: r.status(), type: r.headers()["content-type"] });
      }
    });

    await page.goto(`${CHAT_URL}/#token=${encodeURIComponent(TOKEN)}&voice=${encodeURIComponent(VOICE_URL)}`);
    await page.waitForFunction(() => document.getElementById("connection").textContent === "connected", null, { timeout: WAIT });
    check(!page.url().includes("token="), "the token is removed from the address bar");

    // Watch the answer grow: streamed, not delivered at once.
    await page.evaluate(() => {
      window.answerLengths = [];
      new MutationObserver(() => {
        const items = document.querySelectorAll("#messages li.assistant > span:first-child");
        const last = items[items.length - 1];
        if (last) window.answerLengths.push(last.textContent.length);
      }).observe(document.getElementById("messages"), { subtree: true, childList: true, characterData: true });
    });

    // 1. A typed message, answered while streaming, then spoken.
    await page.fill("#message", "Write one short sentence about the sea.");
    await page.press("#message", "Enter");
    const answer = page.locator("#messages li.assistant[data-done=true]").first();
    await answer.waitFor({ timeout: WAIT });
    const answerText = (await answer.locator("span").first().textContent()).trim();
    check(answerText.length > 0, "the answer is empty");
    const lengths = await page.evaluate(() => window.answerLengths);
    const distinct = new Set(lengths.filter((n) => n > 0));
    check(distinct.size >= 2, `the answer did not stream (lengths seen: ${[...distinct]})`);
    check(await answer.locator(".timing").count() === 1, "the answer shows its timing");

    await page.waitForFunction(() => Number(document.getElementById("player").dataset.played || 0) >= 1, null, { timeout: WAIT });
    check(ttsAnswers.length >= 1, "no TTS request was made");
    for (const t of ttsAnswers) {
      check(t.status === 200, `TTS answered ${t.status}`);
      check((t.type || "").startsWith("audio/wav"), `TTS content type ${t.type}`);
    }
    const played = await page.evaluate(async () => {
      const player = document.getElementById("player");
      const bytes = new Uint8Array(await (await fetch(player.src)).arrayBuffer());
      return {
        head: String.fromCharCode(...bytes.slice(0, 4)) + String.fromCharCode(...bytes.slice(8, 12)),
        duration: player.duration,
      };
    });
    check(played.head === "RIFFWAVE", `the audio element holds ${played.head}, not a WAV`);
    check(played.duration > 0.2, `the spoken clip lasts ${played.duration} s`);

    // 2. Push-to-talk: the fake microphone plays SPOKEN in a loop.
    const userMessages = page.locator("#messages li.user");
    const before = await userMessages.count();
    const talk = page.locator("#talk");
    await talk.hover();
    await page.mouse.down();
    await page.waitForFunction(() => document.getElementById("talk").getAttribute("aria-pressed") === "true");
    await page.waitForTimeout(4500);
    await page.mouse.up();
    await page.waitForFunction((n) => document.querySelectorAll("#messages li.user").length > n, before, { timeout: WAIT });
    const heard = (await userMessages.nth(before).textContent()).trim();
    const words = heard.toLowerCase().replace(/[^a-z ]/g, " ").split(/\s+/);
    check(["capital", "france"].some((w) => words.includes(w)), `push-to-talk heard ${JSON.stringify(heard)}, not "${SPOKEN}"`);
    await page.locator("#messages li.assistant[data-done=true]").nth(1).waitFor({ timeout: WAIT });

    // 3. The session is listed and marked current.
    await page.locator('#sessions button[aria-current="true"]').first().waitFor({ timeout: WAIT });

    fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    const notice = (await page.locator("#notice").textContent()).trim();
    check(failures.length === 0, failures.join("\n"));
    console.log("browser test passed");
    console.log(`  answer         ${JSON.stringify(answerText.slice(0, 120))}`);
    console.log(`  streamed in    ${distinct.size} steps; ${ttsAnswers.length} spoken clip(s), last ${played.duration.toFixed(2)} s`);
    console.log(`  push-to-talk   heard ${JSON.stringify(heard)}`);
    if (notice) console.log(`  page notice    ${notice}`);
    console.log(`  screenshot     ${SCREENSHOT}`);
    console.log(`  took           ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    await browser.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(`browser test FAILED: ${e.message}`);
  process.exit(1);
});
