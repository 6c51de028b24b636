"""A realtime transcription session on the voice service with the official
`openai` client (client.realtime.connect with ?intent=transcription), as
OpenAI's guide has it: a turn found by server VAD in 24 kHz PCM, then
push-to-talk in G.711 μ-law at 8 kHz. Prints one JSON object.

usage: realtime_client.py VOICE_URL TOKEN
"""

import asyncio
import audioop
import base64
import json
import sys

import openai
from openai import AsyncOpenAI

VOICE, TOKEN = sys.argv[1:3]
SAID = "Please call me back when you get home."
TIMEOUT = 120


async def main():
    client = AsyncOpenAI(api_key=TOKEN, base_url=f"{VOICE}/v1",
                         websocket_base_url=f"{VOICE.replace('http', 'ws', 1)}/v1")
    pcm = (await client.audio.speech.create(model="tts-1", voice="alloy", input=SAID,
                                            response_format="pcm")).content
    out = {"openai_version": openai.__version__, "events": []}
    async with client.realtime.connect(extra_query={"intent": "transcription"}) as conn:
        created = await asyncio.wait_for(conn.recv(), timeout=TIMEOUT)
        out["created"] = created.session.type
        await conn.session.update(session={"type": "transcription", "audio": {"input": {
            "format": {"type": "audio/pcm", "rate": 24000},
            "transcription": {"model": "whisper-1", "language": "en"},
            "turn_detection": {"type": "server_vad", "silence_duration_ms": 500}}}})
        audio = bytes(24000) + pcm + bytes(48000)
        for i in range(0, len(audio), 4800):
            await conn.input_audio_buffer.append(audio=base64.b64encode(audio[i:i + 4800]).decode())

        async def until_completed():
            while True:
                event = await asyncio.wait_for(conn.recv(), timeout=TIMEOUT)
                out["events"].append(event.type)
                if event.type == "conversation.item.input_audio_transcription.completed":
                    return event.transcript
                if event.type in ("error", "conversation.item.input_audio_transcription.failed"):
                    raise RuntimeError(event.model_dump_json())

        out["vad_transcript"] = await until_completed()
        # Push-to-talk, telephony audio.
        await conn.session.update(session={"type": "transcription", "audio": {"input": {
            "format": {"type": "audio/pcmu"}, "turn_detection": None}}})
        narrow, _ = audioop.ratecv(pcm, 2, 1, 24000, 8000, None)
        ulaw = audioop.lin2ulaw(narrow, 2)
        for i in range(0, len(ulaw), 1600):
            await conn.input_audio_buffer.append(audio=base64.b64encode(ulaw[i:i + 1600]).decode())
        await conn.input_audio_buffer.commit()
        out["ulaw_transcript"] = await until_completed()
        await conn.send({"type": "response.create", "event_id": "not-here"})
        refused = await asyncio.wait_for(conn.recv(), timeout=TIMEOUT)
        out["response_refused"] = {"type": refused.type, "code": refused.error.code,
                                   "event_id": refused.error.event_id}
    print(json.dumps(out))


asyncio.run(main())
