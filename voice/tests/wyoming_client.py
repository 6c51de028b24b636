"""Drives the voice service's Wyoming port with the `wyoming` package's own
client (wyoming.client.AsyncTcpClient and its event classes), as Home
Assistant does. Prints one JSON object with what it saw; the Rust test
(wyoming.rs) asserts on it.

usage: wyoming_client.py HOST PORT
"""

import asyncio
import json
import sys
import time

import wyoming
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.info import Describe, Info
from wyoming.tts import (
    Synthesize,
    SynthesizeChunk,
    SynthesizeStart,
    SynthesizeStop,
    SynthesizeStopped,
    SynthesizeVoice,
)

TIMEOUT = 120
SAID = "Please call me back when you get home."


async def read(client):
    event = await asyncio.wait_for(client.read_event(), timeout=TIMEOUT)
    if event is None:
        raise RuntimeError("the server closed the connection")
    return event


async def describe(host, port):
    async with AsyncTcpClient(host, port) as client:
        await client.write_event(Describe().event())
        event = await read(client)
        assert Info.is_type(event.type), event.type
        info = Info.from_event(event)
    return {
        "asr_models": [
            {"name": m.name, "languages": m.languages, "installed": m.installed}
            for p in info.asr
            for m in p.models
        ],
        "voices": [
            {"name": v.name, "languages": v.languages, "installed": v.installed}
            for p in info.tts
            for v in p.voices
        ],
        "supports_synthesize_streaming": any(
            p.supports_synthesize_streaming for p in info.tts
        ),
    }


async def collect_audio(client):
    """One synthesis: audio-start, chunks, audio-stop (errors raise)."""
    start, pcm, chunks = None, bytearray(), 0
    while True:
        event = await read(client)
        if Error.is_type(event.type):
            raise RuntimeError(Error.from_event(event).text)
        if AudioStart.is_type(event.type):
            start = AudioStart.from_event(event)
        elif AudioChunk.is_type(event.type):
            chunk = AudioChunk.from_event(event)
            assert (chunk.rate, chunk.width, chunk.channels) == (
                start.rate,
                start.width,
                start.channels,
            )
            pcm += chunk.audio
            chunks += 1
        elif AudioStop.is_type(event.type):
            return start, bytes(pcm), chunks


async def synthesize(host, port, text, voice):
    async with AsyncTcpClient(host, port) as client:
        await client.write_event(
            Synthesize(text=text, voice=SynthesizeVoice(name=voice)).event()
        )
        return await collect_audio(client)


async def transcribe(host, port, start, pcm, language):
    """Sends the audio as Home Assistant does: 1,024-sample chunks."""
    async with AsyncTcpClient(host, port) as client:
        await client.write_event(Transcribe(language=language).event())
        await client.write_event(start.event())
        step = 1024 * start.width * start.channels
        for i in range(0, len(pcm), step):
            chunk = AudioChunk(
                rate=start.rate,
                width=start.width,
                channels=start.channels,
                audio=pcm[i : i + step],
            )
            await client.write_event(chunk.event())
        await client.write_event(AudioStop().event())
        while True:
            event = await read(client)
            if Error.is_type(event.type):
                raise RuntimeError(Error.from_event(event).text)
            if Transcript.is_type(event.type):
                t = Transcript.from_event(event)
                return {"text": t.text, "language": t.language}


async def streamed(host, port, voice):
    """Home Assistant's streaming synthesis: the first sentence's audio must
    come before the text ends; the whole text sent again as `synthesize`
    (as Home Assistant does for older servers) must not be spoken twice."""
    first, second = "Sure, I can help with that. ", "The lights are off now."
    result = {"audio_starts": 0, "chunks": 0, "bytes": 0}
    async with AsyncTcpClient(host, port) as client:
        started = time.monotonic()
        await client.write_event(
            SynthesizeStart(voice=SynthesizeVoice(name=voice)).event()
        )
        await client.write_event(SynthesizeChunk(text=first).event())
        # Nothing more is sent until audio arrives.
        while True:
            event = await read(client)
            if AudioStart.is_type(event.type):
                result["audio_starts"] += 1
                result["rate"] = AudioStart.from_event(event).rate
            elif AudioChunk.is_type(event.type):
                result["chunks"] += 1
                result["bytes"] += len(AudioChunk.from_event(event).audio)
                result["first_audio_secs"] = time.monotonic() - started
                break
            elif Error.is_type(event.type):
                raise RuntimeError(Error.from_event(event).text)
        result["first_audio_before_stop"] = True
        await client.write_event(SynthesizeChunk(text=second).event())
        await client.write_event(Synthesize(text=first + second).event())
        await client.write_event(SynthesizeStop().event())
        while True:
            event = await read(client)
            if AudioStart.is_type(event.type):
                result["audio_starts"] += 1
            elif AudioChunk.is_type(event.type):
                result["chunks"] += 1
                result["bytes"] += len(AudioChunk.from_event(event).audio)
            elif Error.is_type(event.type):
                raise RuntimeError(Error.from_event(event).text)
            elif SynthesizeStopped.is_type(event.type):
                result["stopped"] = True
                break
    return result


async def main():
    host, port = sys.argv[1], int(sys.argv[2])
    out = {"wyoming_version": wyoming.__version__}
    out["describe"] = await describe(host, port)
    voice = "en_US-joe-medium"
    start, pcm, chunks = await synthesize(host, port, SAID, voice)
    out["synthesize"] = {
        "rate": start.rate,
        "width": start.width,
        "channels": start.channels,
        "bytes": len(pcm),
        "chunks": chunks,
    }
    out["round_trip"] = await transcribe(host, port, start, pcm, "en")
    out["streamed"] = await streamed(host, port, voice)
    print(json.dumps(out))


asyncio.run(main())
