"""The realtime latency benchmark's client (scripts/bench-realtime.sh runs
it): the official openai client speaks a question in real time into the
chat service's /v1/realtime and times, per turn, the end of the speech to
the first answer audio, with the breakdown; then opens idle sessions and
reads the chat service's memory per session from /proc.

usage: bench_realtime.py CHAT_URL VOICE_URL TOKEN CHAT_PID
"""

import asyncio
import base64
import os
import statistics
import sys
import time

from openai import AsyncOpenAI

CHAT, VOICE, TOKEN, CHAT_PID = sys.argv[1:5]
TURNS = int(os.environ.get("BENCH_TURNS", "20"))
IDLE = int(os.environ.get("BENCH_IDLE_SESSIONS", "200"))
SILENCE_MS = int(os.environ.get("BENCH_SILENCE_MS", "500"))
QUESTION = os.environ.get("BENCH_QUESTION", "What is the capital of France?")
CHUNK = 4800  # 100 ms of 24 kHz 16-bit audio


def client():
    return AsyncOpenAI(api_key=TOKEN, base_url=f"{VOICE}/v1",
                       websocket_base_url=f"{CHAT.replace('http', 'ws', 1)}/v1")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def turn(speech):
    """One turn on a fresh session; returns the times in ms."""
    async with client().realtime.connect(model="voicechat") as conn:
        await conn.session.update(session={"type": "realtime", "output_modalities": ["audio"], "audio": {
            "input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": SILENCE_MS}}}})
        marks = {}
        audio = bytes(12000) + speech
        silence = bytes(CHUNK)

        async def speak():
            # In real time: the VAD sees the audio as a microphone sends it.
            start = time.monotonic()
            for n, i in enumerate(range(0, len(audio), CHUNK)):
                await conn.input_audio_buffer.append(audio=base64.b64encode(audio[i:i + CHUNK]).decode())
                await asyncio.sleep(max(0.0, start + (n + 1) * 0.1 - time.monotonic()))
            marks["speech_end"] = time.monotonic()
            while "first_audio" not in marks:
                await conn.input_audio_buffer.append(audio=base64.b64encode(silence).decode())
                await asyncio.sleep(0.1)

        speaking = asyncio.create_task(speak())
        server = {}
        async for event in conn:
            now = time.monotonic()
            if event.type == "input_audio_buffer.speech_stopped":
                marks["stopped"] = now
            elif event.type == "conversation.item.input_audio_transcription.completed":
                marks["transcribed"] = now
            elif event.type == "response.output_audio.delta" and "first_audio" not in marks:
                marks["first_audio"] = now
            elif event.type == "response.done":
                server = (event.response.model_extra or {}).get("voicechat_timing") or {}
                status = event.response.status
                break
        await speaking
    ms = lambda a, b: (marks[b] - marks[a]) * 1000
    total = ms("speech_end", "first_audio")
    vad = ms("speech_end", "stopped")
    stt = ms("stopped", "transcribed")
    llm = server.get("llm_first_token_ms") or 0
    sentence = server.get("first_sentence_ms") or 0
    first_audio = server.get("first_audio_ms") or 0
    return {
        "status": status,
        "total": total,
        "vad": vad,
        "stt": stt,
        # From the end of the transcription (the server's commit clock
        # includes it) to the LLM's first token, its first sentence, the
        # voice service's first audio.
        "llm_first_token": llm - stt,
        "llm_first_sentence": sentence - llm,
        "tts_first_audio": first_audio - sentence,
        "transport": total - vad - first_audio,
    }


def p(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


async def main():
    speech = (await client().audio.speech.create(model="tts-1", voice="alloy", input=QUESTION,
                                                 response_format="pcm")).content
    print(f"question: {QUESTION!r}, {len(speech) / 48000:.2f} s of speech; silence window {SILENCE_MS} ms; {TURNS} turns")
    results = []
    for _ in range(TURNS):
        results.append(await turn(speech))
    statuses = {r["status"] for r in results}
    print(f"  statuses: {statuses}")
    print(f"  {'step':<22} {'p50 ms':>8} {'p95 ms':>8}")
    for key in ["total", "vad", "stt", "llm_first_token", "llm_first_sentence", "tts_first_audio", "transport"]:
        values = [r[key] for r in results]
        print(f"  {key:<22} {p(values, 0.5):8.0f} {p(values, 0.95):8.0f}")

    # Idle sessions: memory per session in the chat service.
    before = rss_kib(CHAT_PID)
    connections = []
    for _ in range(IDLE):
        manager = client().realtime.connect(model="voicechat")
        conn = await manager.__aenter__()
        await asyncio.wait_for(conn.recv(), timeout=30)  # session.created
        connections.append((manager, conn))
    await asyncio.sleep(1)
    during = rss_kib(CHAT_PID)
    print(f"  {IDLE} idle sessions: chat RSS {before / 1024:.1f} -> {during / 1024:.1f} MiB, "
          f"{(during - before) / IDLE:.1f} KiB per session")
    for manager, _ in connections:
        await manager.__aexit__(None, None, None)


asyncio.run(main())
