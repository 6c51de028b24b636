"""Clients of the stack as an application developer writes them: an HS256
token, the chat WebSocket (the `websockets` package), REST over plain HTTP
(a new connection per request, as a load balancer's client sees it), and
speech through the official `openai` client."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect


def mint_token(secret: bytes, user: str, ttl: int = 3600) -> str:
    def b64(raw: bytes) -> bytes:
        return base64.urlsafe_b64encode(raw).rstrip(b"=")

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"sub": user, "exp": int(time.time()) + ttl}).encode())
    sig = b64(hmac.new(secret, head + b"." + body, hashlib.sha256).digest())
    return (head + b"." + body + b"." + sig).decode()


def http_get(url: str, token: str | None = None, timeout: float = 10) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def http_json(url: str, token: str | None = None, timeout: float = 10) -> dict:
    status, body = http_get(url, token, timeout)
    assert status == 200, f"GET {url}: HTTP {status} {body[:300]!r}"
    return json.loads(body)


@dataclass
class Answer:
    session_id: str
    user_message_id: str
    persisted: bool
    content: str
    events: list[dict] = field(default_factory=list)


class ChatSocket:
    """One /ws/chat connection: the session and history events on connect,
    then one answer per `ask`."""

    def __init__(self, base_url: str, token: str, session_id: str | None = None, timeout: float = 120):
        url = base_url.replace("http://", "ws://") + f"/ws/chat?token={token}"
        if session_id:
            url += f"&session_id={session_id}"
        self.timeout = timeout
        self.ws = connect(url, open_timeout=20, close_timeout=5)
        first = self.recv()
        assert first["type"] == "session", f"first event: {first}"
        self.session_id = first["session_id"]

    def recv(self) -> dict:
        return json.loads(self.ws.recv(timeout=self.timeout))

    def ask(self, content: str) -> Answer:
        self.ws.send(json.dumps({"type": "message", "content": content}))
        events = []
        ack = None
        while True:
            event = self.recv()
            events.append(event)
            kind = event["type"]
            if kind == "ack":
                ack = event
            elif kind == "done":
                assert ack is not None, f"done before ack: {events}"
                return Answer(self.session_id, ack["message_id"], ack["persisted"] and event["persisted"],
                              event["content"], events)
            elif kind == "error":
                raise AssertionError(f"chat error: {event}")

    def close(self) -> None:
        self.ws.close()

    def wait_closed(self, seconds: float) -> int | None:
        """Reads until the server closes; the close code."""
        deadline = time.monotonic() + seconds
        try:
            while time.monotonic() < deadline:
                self.ws.recv(timeout=max(0.1, deadline - time.monotonic()))
        except ConnectionClosed as e:
            return e.rcvd.code if e.rcvd else None
        except TimeoutError:
            return None
        return None


def openai_client(voice_url: str, token: str, retries: int = 2):
    import openai

    return openai.OpenAI(base_url=f"{voice_url}/v1", api_key=token, max_retries=retries, timeout=120)


def speak(client, text: str) -> bytes:
    """OpenAI's speech endpoint, as WAV."""
    response = client.audio.speech.create(model="tts-1", voice="alloy", input=text, response_format="wav")
    return response.read()


def transcribe(client, wav: bytes) -> str:
    result = client.audio.transcriptions.create(model="whisper-1", file=("speech.wav", wav, "audio/wav"))
    return result.text


async def wyoming_round_trip(host: str, port: int, text: str, timeout: float = 120) -> dict:
    """Home Assistant's side of Wyoming, with the `wyoming` package's client:
    describe, synthesize `text` with the default voice, transcribe that audio
    in 1,024-sample chunks. Returns the info's names and the transcript."""
    import asyncio

    from wyoming.asr import Transcribe, Transcript
    from wyoming.audio import AudioChunk, AudioStart, AudioStop
    from wyoming.client import AsyncTcpClient
    from wyoming.error import Error
    from wyoming.info import Describe, Info
    from wyoming.tts import Synthesize

    async def events(client):
        while True:
            event = await asyncio.wait_for(client.read_event(), timeout=timeout)
            if event is None:
                raise RuntimeError("the server closed the connection")
            if Error.is_type(event.type):
                raise RuntimeError(Error.from_event(event).text)
            yield event

    async with AsyncTcpClient(host, port) as client:
        await client.write_event(Describe().event())
        info = Info.from_event(await anext(events(client)))
    async with AsyncTcpClient(host, port) as client:
        await client.write_event(Synthesize(text=text).event())
        start, pcm = None, bytearray()
        async for event in events(client):
            if AudioStart.is_type(event.type):
                start = AudioStart.from_event(event)
            elif AudioChunk.is_type(event.type):
                pcm += AudioChunk.from_event(event).audio
            elif AudioStop.is_type(event.type):
                break
    async with AsyncTcpClient(host, port) as client:
        await client.write_event(Transcribe(language="en").event())
        await client.write_event(start.event())
        step = 2048
        for i in range(0, len(pcm), step):
            chunk = AudioChunk(rate=start.rate, width=start.width, channels=start.channels, audio=bytes(pcm[i:i + step]))
            await client.write_event(chunk.event())
        await client.write_event(AudioStop().event())
        async for event in events(client):
            if Transcript.is_type(event.type):
                transcript = Transcript.from_event(event)
                break
    return {
        "models": [m.name for p in info.asr for m in p.models],
        "voices": [v.name for p in info.tts for v in p.voices],
        "rate": start.rate,
        "seconds": len(pcm) / 2 / start.rate,
        "text": transcript.text,
        "language": transcript.language,
    }


async def realtime_spoken_turn(chat_url: str, voice_url: str, token: str, question: str, timeout: float = 180) -> dict:
    """A spoken turn on the chat service's Realtime API with the official
    `openai` client: the voice service speaks `question` (24 kHz PCM), the
    client streams it with trailing silence, server VAD ends the turn, and
    the answer comes back as audio. Returns the user's transcript, the
    answer's transcript, its audio seconds and the response status."""
    import asyncio
    import base64

    from openai import AsyncOpenAI

    client = AsyncOpenAI(api_key=token, base_url=f"{voice_url}/v1",
                         websocket_base_url=f"{chat_url.replace('http', 'ws', 1)}/v1", max_retries=2)
    speech = (await client.audio.speech.create(model="tts-1", voice="alloy", input=question,
                                               response_format="pcm")).content
    result = {"audio_bytes": 0, "answer": ""}
    async with client.realtime.connect(model="voicechat") as conn:
        await conn.session.update(session={"type": "realtime", "output_modalities": ["audio"]})
        audio = bytes(24000) + speech + bytes(48000)
        for i in range(0, len(audio), 4800):
            await conn.input_audio_buffer.append(audio=base64.b64encode(audio[i:i + 4800]).decode())
        while True:
            event = await asyncio.wait_for(conn.recv(), timeout=timeout)
            if event.type == "session.created":
                result["session_id"] = event.session.id
            elif event.type == "conversation.item.input_audio_transcription.completed":
                result["user"] = event.transcript
            elif event.type == "response.output_audio_transcript.delta":
                result["answer"] += event.delta
            elif event.type == "response.output_audio.delta":
                result["audio_bytes"] += len(base64.b64decode(event.delta))
            elif event.type == "error":
                result.setdefault("errors", []).append(event.error.message)
            elif event.type == "response.done":
                result["status"] = event.response.status
                return result
