"""Drives the voice service with the official `openai` Python package,
unchanged except for base_url and api_key (a JWT): speech, transcription
in every response format, model listing, and an error. Prints one JSON
object for voice/tests/openai_client.rs to check.

    python3 openai_client.py BASE_URL TOKEN WORK_DIR
"""

import json
import os
import sys

import openai

base_url, token, work = sys.argv[1:4]
client = openai.OpenAI(base_url=f"{base_url}/v1", api_key=token)
out = {"openai_version": openai.__version__}

speech = client.audio.speech.create(model="tts-1", voice="alloy", input="Please call me back when you get home.")
path = os.path.join(work, "speech.wav")
speech.write_to_file(path)
with open(path, "rb") as f:
    out["speech_header"] = f.read(4).decode("latin1")

with open(path, "rb") as f:
    out["json"] = client.audio.transcriptions.create(model="whisper-1", file=f).text
with open(path, "rb") as f:
    verbose = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="verbose_json")
    out["verbose"] = {"language": verbose.language, "duration": verbose.duration, "segments": len(verbose.segments or [])}
with open(path, "rb") as f:
    out["srt"] = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="srt")
with open(path, "rb") as f:
    out["text"] = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="text")

out["models"] = sorted(m.id for m in client.models.list())

try:
    client.audio.speech.create(model="tts-1", voice="alloy", input="hi", response_format="mp3")
    out["mp3_error"] = None
except openai.BadRequestError as e:
    out["mp3_error"] = {"status": e.status_code, "message": str(e)}

print(json.dumps(out))
