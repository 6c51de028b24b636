"""Drives the chat service's /v1/realtime with the official `openai` Python
client (client.realtime.connect), unchanged but for its base URLs and API
key (a JWT of the stack). One scenario per run; prints one JSON object with
what it saw, for the Rust test (realtime.rs) to assert on. At a
checkpoint it prints {"checkpoint": name} and waits for a line on stdin
(the Rust side makes a fault happen, then answers).

usage: realtime_client.py SCENARIO CHAT_URL VOICE_URL TOKEN
"""

import asyncio
import base64
import json
import sys
import time

import openai
from openai import AsyncOpenAI

TIMEOUT = 180
SCENARIO, CHAT, VOICE, TOKEN = sys.argv[1:5]
SILENCE = bytes(48_000)  # 1 s of 24 kHz 16-bit silence


def client() -> AsyncOpenAI:
    return AsyncOpenAI(
        api_key=TOKEN,
        base_url=f"{VOICE}/v1",
        websocket_base_url=f"{CHAT.replace('http', 'ws', 1)}/v1",
    )


async def checkpoint(name: str) -> str:
    print(json.dumps({"checkpoint": name}), flush=True)
    return (await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)).strip()


async def speech(text: str) -> bytes:
    """The voice service speaks `text` as 24 kHz PCM (OpenAI's `pcm`)."""
    r = await client().audio.speech.create(model="tts-1", voice="alloy", input=text, response_format="pcm")
    return r.content


async def feed(conn, pcm: bytes, pace: float = 0.02) -> None:
    """Appends audio in 100 ms pieces, faster than real time by default."""
    for i in range(0, len(pcm), 4800):
        await conn.input_audio_buffer.append(audio=base64.b64encode(pcm[i : i + 4800]).decode())
        await asyncio.sleep(pace)


async def events_until(conn, stop, log: list, audio: dict | None = None):
    """Reads events into `log` (types; audio deltas counted in `audio`) until
    `stop(event)` is true; returns that event."""
    while True:
        event = await asyncio.wait_for(conn.recv(), timeout=TIMEOUT)
        if event.type == "response.output_audio.delta":
            if audio is not None:
                audio["bytes"] = audio.get("bytes", 0) + len(base64.b64decode(event.delta))
                audio.setdefault("item_id", event.item_id)
            if not log or log[-1] != event.type:
                log.append(event.type)
        else:
            log.append(event.type)
        if stop(event):
            return event


def done(event) -> bool:
    return event.type == "response.done"


def summary(event) -> dict:
    r = event.response
    return {
        "status": r.status,
        "reason": getattr(r.status_details, "reason", None) if r.status_details else None,
        "error_code": (r.status_details.error.code if r.status_details and r.status_details.error else None),
        "output": [c.model_dump() for item in (r.output or []) for c in (item.content or [])],
        "timing": (r.model_extra or {}).get("voicechat_timing"),
    }


async def session_id(conn) -> str:
    created = await asyncio.wait_for(conn.recv(), timeout=TIMEOUT)
    assert created.type == "session.created", created.type
    return created.session.id


async def text_turn(conn, text: str, log: list) -> dict:
    await conn.conversation.item.create(
        item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    )
    await conn.response.create(response={"output_modalities": ["text"]})
    deltas = []

    def stop(event):
        if event.type == "response.output_text.delta":
            deltas.append(event.delta)
        return done(event)

    end = await events_until(conn, stop, log)
    return {**summary(end), "text": "".join(deltas)}


async def spoken() -> dict:
    question = await speech("What is the capital of France?")
    log, audio = [], {}
    async with client().realtime.connect(model="gpt-realtime") as conn:
        sid = await session_id(conn)
        await conn.session.update(session={"type": "realtime", "output_modalities": ["audio"]})
        await feed(conn, SILENCE[:24_000] + question + SILENCE)
        transcript = {}

        def stop(event):
            if event.type == "conversation.item.input_audio_transcription.completed":
                transcript["user"] = event.transcript
            if event.type == "response.output_audio_transcript.delta":
                transcript["answer"] = transcript.get("answer", "") + event.delta
            return done(event)

        end = await events_until(conn, stop, log, audio)
    return {"session_id": sid, "events": log, "audio_secs": audio.get("bytes", 0) / 48_000,
            "user": transcript.get("user"), "answer": transcript.get("answer"), **summary(end)}


async def text() -> dict:
    log = []
    async with client().realtime.connect(model="gpt-realtime") as conn:
        sid = await session_id(conn)
        result = await text_turn(conn, "What is the capital of France?", log)
    return {"session_id": sid, "events": log, **result}


async def push_to_talk() -> dict:
    question = await speech("What is the capital of France?")
    log, audio = [], {}
    async with client().realtime.connect(model="gpt-realtime") as conn:
        sid = await session_id(conn)
        await conn.session.update(session={"type": "realtime", "output_modalities": ["audio"],
                                           "audio": {"input": {"turn_detection": None}}})
        await feed(conn, question + SILENCE)
        await conn.input_audio_buffer.commit()
        heard = {}

        def transcribed(event):
            if event.type == "conversation.item.input_audio_transcription.completed":
                heard["user"] = event.transcript
                return True
            return False

        await events_until(conn, transcribed, log)
        await conn.response.create()
        end = await events_until(conn, done, log, audio)
    return {"session_id": sid, "events": log, "user": heard.get("user"),
            "audio_secs": audio.get("bytes", 0) / 48_000, **summary(end)}


async def barge_in() -> dict:
    first = await speech("Tell me about the weather.")
    second = await speech("Stop. That is enough, thank you.")
    log, audio = [], {}
    async with client().realtime.connect(model="gpt-realtime") as conn:
        sid = await session_id(conn)
        await conn.session.update(session={"type": "realtime", "output_modalities": ["audio"]})
        await feed(conn, SILENCE[:24_000] + first + SILENCE)

        def enough_audio(event):
            return audio.get("bytes", 0) >= 48_000 * 1.5

        await events_until(conn, enough_audio, log, audio)
        answer_item = audio["item_id"]
        # The user talks over the answer, in real time.
        talking = asyncio.create_task(feed(conn, second + SILENCE, pace=0.1))
        cancelled = await events_until(conn, done, log, audio)
        played_ms = 1000
        await conn.conversation.item.truncate(item_id=answer_item, content_index=0, audio_end_ms=played_ms)
        truncated = await events_until(conn, lambda e: e.type in ("conversation.item.truncated", "error"), log)
        second_answer = await events_until(conn, done, log)
        await talking
    return {"session_id": sid, "events": log, "answer_item": answer_item, "played_ms": played_ms,
            "cancelled": summary(cancelled), "truncated": truncated.model_dump(),
            "second": summary(second_answer)}


async def hostile() -> dict:
    """Bad events, each with an event_id: every one is answered with an
    `error` naming it; the socket stays, and a text turn still works."""
    log, errors = [], {}
    bad = {
        "bad_base64": {"type": "input_audio_buffer.append", "audio": "@@not base64@@"},
        "unknown": {"type": "conversation.teleport"},
        "huge": {"type": "input_audio_buffer.append", "audio": "A" * (20 * 1024 * 1024)},
        "odd_pcm": {"type": "input_audio_buffer.append", "audio": base64.b64encode(b"\x01\x02\x03").decode()},
        "bad_rate": {"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
            "format": {"type": "audio/pcm", "rate": 16000}}}}},
        "empty_commit": {"type": "input_audio_buffer.commit"},
        "nothing_to_cancel": {"type": "response.cancel"},
        "unknown_item": {"type": "conversation.item.truncate", "item_id": "item_nope", "content_index": 0,
                         "audio_end_ms": 10},
        "missing_field": {"type": "conversation.item.truncate", "item_id": "x"},
        "bad_item": {"type": "conversation.item.create", "item": {"type": "message", "role": "user",
                                                                   "content": "not a list"}},
    }
    async with client().realtime.connect(model="gpt-realtime") as conn:
        sid = await session_id(conn)
        for event_id, event in bad.items():
            await conn.send({**event, "event_id": event_id})
        while len(errors) < len(bad):
            event = await asyncio.wait_for(conn.recv(), timeout=TIMEOUT)
            log.append(event.type)
            if event.type == "error":
                errors[event.error.event_id] = {"code": event.error.code, "param": event.error.param,
                                                "message": event.error.message}
        result = await text_turn(conn, "What is the capital of France?", log)
    return {"session_id": sid, "errors": errors, "events": log, **result}


async def voice_down() -> dict:
    log, errors = [], []
    async with client().realtime.connect(model="gpt-realtime") as conn:
        sid = await session_id(conn)
        await conn.session.update(session={"type": "realtime", "output_modalities": ["audio"]})
        await conn.conversation.item.create(
            item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hello!"}]})
        await conn.response.create()

        def stop(event):
            if event.type == "error":
                errors.append({"code": event.error.code, "message": event.error.message})
            return done(event)

        spoken = await events_until(conn, stop, log)
        typed = await text_turn(conn, "What is the capital of France?", log)
    return {"session_id": sid, "events": log, "errors": errors, "spoken": summary(spoken), "typed": typed}


async def llm_killed() -> dict:
    log, errors = [], []
    async with client().realtime.connect(model="gpt-realtime") as conn:
        sid = await session_id(conn)
        await conn.conversation.item.create(
            item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Count slowly."}]})
        await conn.response.create(response={"output_modalities": ["text"]})

        def stop(event):
            if event.type == "error":
                errors.append({"code": event.error.code, "message": event.error.message})
            return done(event)

        failed = await events_until(conn, stop, log)
        await checkpoint("failed")
        again = await text_turn(conn, "Are you back?", log)
    return {"session_id": sid, "events": log, "errors": errors, "failed": summary(failed), "again": again}


async def bad_token() -> dict:
    bad = AsyncOpenAI(api_key="not-a-jwt", base_url=f"{VOICE}/v1",
                      websocket_base_url=f"{CHAT.replace('http', 'ws', 1)}/v1")
    try:
        async with bad.realtime.connect(model="gpt-realtime") as conn:
            event = await asyncio.wait_for(conn.recv(), timeout=TIMEOUT)
            return {"refused": False, "first_event": event.type}
    except Exception as e:  # websockets' ConnectionClosedError, as the client raises it
        rcvd = getattr(e, "rcvd", None)
        return {"refused": True, "code": getattr(rcvd, "code", None), "reason": getattr(rcvd, "reason", None),
                "error": type(e).__name__}


async def main():
    result = await globals()[SCENARIO]()
    result["openai_version"] = openai.__version__
    print(json.dumps(result), flush=True)


asyncio.run(main())
