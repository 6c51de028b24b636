// Browser test of the web client, in headless Chromium (Debian's chromium,
// driven by playwright-core), against a running local stack; the page talks
// to the chat service's Realtime API (/v1/realtime):
//   open the page with the demo token → a typed message, answered in text
//   as it streams → a typed message answered aloud (the page plays the
//   answer's audio) → push-to-talk with a fake microphone playing
//   synthesized speech → the turn is transcribed and answered → hands-free:
//   the server finds the turn in the open microphone and answers it → the
//   session is listed. Saves a screenshot. Run by
//   `scripts/run-local.sh --smoke --browser`.
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

// The fake microphone loops this file: the question, then 8 s of silence
// (hands-free ends a turn after 0.5 s of it, and the answer is done before
// the question comes round again).
async function synthesizeMicrophoneInput(file) {
  const r = await fetch(`${VOICE_URL}/api/v1/tts`, {
    method: "POST",
    headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/json" },
    body: JSON.stringify({ text: SPOKEN, format: "pcm" }),
  });
  check(r.ok, `TTS for the fake microphone: HTTP ${r.status}`);
  const speech = Buffer.from(await r.arrayBuffer());
  const rate = 24000;
  const pcm = Buffer.concat([speech, Buffer.alloc(rate * 2 * 8)]);
  const header = Buffer.alloc(44);
  header.write("RIFF", 0, "latin1");
  header.writeUInt32LE(36 + pcm.length, 4);
  header.write("WAVEfmt ", 8, "latin1");
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20);
  header.writeUInt16LE(1, 22);
  header.writeUInt32LE(rate, 24);
  header.writeUInt32LE(rate * 2, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write("data", 36, "latin1");
  header.writeUInt32LE(pcm.length, 40);
  const wav = Buffer.concat([header, pcm]);
  check(isWav(wav) && speech.length > rate, "TTS for the fake microphone gave no speech");
  fs.writeFileSync(file, wav);
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
    const realtimeSockets = [];
    page.on("websocket", (ws) => {
      if (ws.url().includes("/v1/realtime")) realtimeSockets.push(ws.url());
    });

    await page.goto(`${CHAT_URL}/#token=${encodeURIComponent(TOKEN)}`);
    await page.waitForFunction(() => document.getElementById("connection").textContent.startsWith("connected"), null, { timeout: WAIT });
    check(!page.url().includes("token="), "the token is removed from the address bar");
    check(realtimeSockets.length === 1, `the page opened ${realtimeSockets.length} realtime sockets`);

    // Watch the answer grow: streamed, not delivered at once.
    await page.evaluate(() => {
      window.answerLengths = [];
      new MutationObserver(() => {
        const items = document.querySelectorAll("#messages li.assistant > span:first-child");
        const last = items[items.length - 1];
        if (last) window.answerLengths.push(last.textContent.length);
      }).observe(document.getElementById("messages"), { subtree: true, childList: true, characterData: true });
    });
    const answers = page.locator("#messages li.assistant[data-done=true]");

    // 1. A typed message answered in text, token by token.
    await page.uncheck("#speak");
    await page.fill("#message", "Write one short sentence about the sea.");
    await page.press("#message", "Enter");
    await answers.nth(0).waitFor({ timeout: WAIT });
    const answerText = (await answers.nth(0).locator("span").first().textContent()).trim();
    check(answerText.length > 0, "the answer is empty");
    const lengths = await page.evaluate(() => window.answerLengths);
    const distinct = new Set(lengths.filter((n) => n > 0));
    check(distinct.size >= 2, `the answer did not stream (lengths seen: ${[...distinct]})`);
    check(await answers.nth(0).locator(".timing").count() === 1, "the answer shows its timing");

    // 2. A typed message answered aloud: the page plays the answer's audio.
    await page.check("#speak");
    await page.fill("#message", SPOKEN);
    await page.press("#message", "Enter");
    await answers.nth(1).waitFor({ timeout: WAIT });
    await page.waitForFunction(() => Number(document.getElementById("player-status").dataset.playedMs) > 300, null, { timeout: WAIT });
    const spokenAnswer = (await answers.nth(1).locator("span").first().textContent()).trim();
    const playedMs = Number(await page.locator("#player-status").getAttribute("data-played-ms"));

    // 3. Push-to-talk: the fake microphone plays SPOKEN.
    const userMessages = page.locator("#messages li.user");
    const before = await userMessages.count();
    const talk = page.locator("#talk");
    await talk.hover();
    await page.mouse.down();
    await page.waitForFunction(() => document.getElementById("talk").getAttribute("aria-pressed") === "true");
    await page.waitForTimeout(4500);
    await page.mouse.up();
    await page.waitForFunction((n) => {
      const users = document.querySelectorAll("#messages li.user");
      return users.length > n && !users[n].classList.contains("listening") && users[n].textContent.trim().length > 0;
    }, before, { timeout: WAIT });
    const heard = (await userMessages.nth(before).textContent()).trim();
    const hasWords = (text) => {
      const words = text.toLowerCase().replace(/[^a-z ]/g, " ").split(/\s+/);
      return ["capital", "france"].some((w) => words.includes(w));
    };
    check(hasWords(heard), `push-to-talk heard ${JSON.stringify(heard)}, not "${SPOKEN}"`);
    await answers.nth(2).waitFor({ timeout: WAIT });

    // 4. Hands-free: the server finds the turn in the open microphone and
    // answers it without a button.
    const beforeHandsFree = await userMessages.count();
    const answersBefore = await answers.count();
    await page.click("#hands-free");
    await page.waitForFunction((n) => {
      const users = document.querySelectorAll("#messages li.user");
      return users.length > n && !users[n].classList.contains("listening") && users[n].textContent.trim().length > 0;
    }, beforeHandsFree, { timeout: WAIT });
    const handsFreeHeard = (await userMessages.nth(beforeHandsFree).textContent()).trim();
    check(hasWords(handsFreeHeard), `hands-free heard ${JSON.stringify(handsFreeHeard)}, not "${SPOKEN}"`);
    await answers.nth(answersBefore).waitFor({ timeout: WAIT });
    await page.click("#hands-free");

    // 5. The session is listed and marked current.
    await page.locator('#sessions button[aria-current="true"]').first().waitFor({ timeout: WAIT });

    fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    const notice = (await page.locator("#notice").textContent()).trim();
    check(failures.length === 0, failures.join("\n"));
    console.log("browser test passed");
    console.log(`  answer         ${JSON.stringify(answerText.slice(0, 120))} (streamed in ${distinct.size} steps)`);
    console.log(`  spoken answer  ${JSON.stringify(spokenAnswer.slice(0, 120))}; ${(playedMs / 1000).toFixed(2)} s played`);
    console.log(`  push-to-talk   heard ${JSON.stringify(heard)}`);
    console.log(`  hands-free     heard ${JSON.stringify(handsFreeHeard)}`);
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
