"""Drives the voice service with the official `openai` Python package,
unchanged except for base_url and api_key (a JWT): speech in every format
(probed and decoded with ffprobe/ffmpeg, then transcribed again),
transcription in every response format (word timestamps, streamed),
model listing, and errors. Prints
one JSON object for voice/tests/openai_client.rs to check.

    python3 openai_client.py BASE_URL TOKEN WORK_DIR
"""

import base64
import json
import os
import shutil
import subprocess
import sys

import openai

base_url, token, work = sys.argv[1:4]
client = openai.OpenAI(base_url=f"{base_url}/v1", api_key=token)
out = {"openai_version": openai.__version__, "ffmpeg": bool(shutil.which("ffprobe") and shutil.which("ffmpeg"))}
SAID = "Please call me back when you get home."

# OpenAI's default format (mp3) when none is asked for.
default = client.audio.speech.create(model="tts-1", voice="alloy", input=SAID)
out["default_content_type"] = default.response.headers.get("content-type")

# Every format, as a client asks for it; ffprobe says what it is, ffmpeg
# turns it back into a WAV that the service transcribes.
out["formats"] = {}
for fmt in ["mp3", "opus", "aac", "flac", "wav", "pcm"]:
    speech = client.audio.speech.create(model="tts-1", voice="alloy", input=SAID, response_format=fmt)
    path = os.path.join(work, f"speech.{fmt}")
    speech.write_to_file(path)
    entry = {"content_type": speech.response.headers.get("content-type"), "bytes": os.path.getsize(path)}
    with open(path, "rb") as f:
        entry["header"] = f.read(4).decode("latin1")
    if out["ffmpeg"]:
        raw = ["-f", "s16le", "-ar", "24000", "-ac", "1"] if fmt == "pcm" else []
        probe = subprocess.run(
            ["ffprobe", "-v", "error", *raw, "-show_entries", "stream=codec_name,sample_rate,channels:format=duration",
             "-of", "json", path], capture_output=True, text=True, check=True)
        info = json.loads(probe.stdout)
        stream = info["streams"][0]
        entry["codec"] = stream["codec_name"]
        entry["sample_rate"] = int(stream["sample_rate"])
        entry["channels"] = stream["channels"]
        entry["duration"] = float(info["format"]["duration"])
        wav = os.path.join(work, f"decoded-{fmt}.wav")
        subprocess.run(["ffmpeg", "-v", "error", "-y", *raw, "-i", path, "-ar", "16000", "-ac", "1", wav], check=True)
        with open(wav, "rb") as f:
            entry["heard"] = client.audio.transcriptions.create(model="whisper-1", file=f).text
    out["formats"][fmt] = entry

path = os.path.join(work, "speech.wav")
with open(path, "rb") as f:
    out["json"] = client.audio.transcriptions.create(model="whisper-1", file=f).text
with open(path, "rb") as f:
    verbose = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="verbose_json")
    out["verbose"] = {"language": verbose.language, "duration": verbose.duration, "segments": len(verbose.segments or [])}
with open(path, "rb") as f:
    out["srt"] = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="srt")
with open(path, "rb") as f:
    out["text"] = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="text")

# Word timestamps, and a streamed transcription (transcript.text.delta
# events, then transcript.text.done), as the client asks for them.
with open(path, "rb") as f:
    timed = client.audio.transcriptions.create(
        model="whisper-1", file=f, response_format="verbose_json", timestamp_granularities=["word", "segment"])
    out["words"] = {"text": timed.text, "duration": timed.duration,
                    "words": [{"word": w.word, "start": w.start, "end": w.end} for w in (timed.words or [])]}
with open(path, "rb") as f:
    events = list(client.audio.transcriptions.create(model="whisper-1", file=f, stream=True))
out["stream"] = {
    "types": [e.type for e in events],
    "deltas": "".join(e.delta for e in events if e.type == "transcript.text.delta"),
    "text": next((e.text for e in events if e.type == "transcript.text.done"), None),
}
with open(path, "rb") as f:
    try:
        client.audio.translations.create(model="whisper-1", file=f)
        out["translation_error"] = None
    except openai.BadRequestError as e:
        out["translation_error"] = {"status": e.status_code, "message": str(e)}

# Uploads in the containers people have, made by ffmpeg from the WAV:
# each transcribed through the client (the container found from the bytes:
# every file is sent under one neutral name).
out["uploads"] = {}
if out["ffmpeg"]:
    for name, args in [
        ("mp3", ["-c:a", "libmp3lame", "-b:a", "64k", "-f", "mp3"]),
        ("m4a", ["-c:a", "aac", "-b:a", "64k", "-f", "ipod"]),
        ("ogg-opus", ["-c:a", "libopus", "-b:a", "32k", "-f", "ogg"]),
        ("ogg-vorbis", ["-c:a", "libvorbis", "-q:a", "3", "-f", "ogg"]),
        ("webm", ["-c:a", "libopus", "-b:a", "32k", "-f", "webm"]),
        ("flac", ["-c:a", "flac", "-f", "flac"]),
        ("wav-stereo-48k", ["-ac", "2", "-ar", "48000", "-f", "wav"]),
    ]:
        made = os.path.join(work, f"upload-{name}")
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", path, *args, made], check=True)
        with open(made, "rb") as f:
            try:
                heard = client.audio.transcriptions.create(model="whisper-1", file=("upload.bin", f.read()))
                out["uploads"][name] = heard.text
            except openai.APIStatusError as e:
                out["uploads"][name] = f"HTTP {e.status_code}: {e}"

# Streamed speech through the client: SSE events, and chunked MP3.
LONG = "The first sentence comes first. Then the second one follows it. A third one ends the answer."
with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=LONG, response_format="pcm", extra_body={"stream_format": "sse"}) as r:
    events = [json.loads(line[len("data: "):]) for line in r.iter_lines() if line.startswith("data: ")]
pcm = b"".join(base64.b64decode(e["audio"]) for e in events if e["type"] == "speech.audio.delta")
out["sse"] = {"types": [e["type"] for e in events], "usage": events[-1].get("usage"), "pcm_bytes": len(pcm)}
with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=LONG, response_format="mp3", extra_body={"stream_format": "audio"}) as r:
    chunks = list(r.iter_bytes())
streamed = os.path.join(work, "streamed.mp3")
with open(streamed, "wb") as f:
    f.write(b"".join(chunks))
out["streamed_mp3"] = {"chunks": len(chunks)}
if out["ffmpeg"]:
    for name, path_in, raw in [("sse", None, ["-f", "s16le", "-ar", "24000", "-ac", "1"]), ("streamed_mp3", streamed, [])]:
        if path_in is None:
            path_in = os.path.join(work, "sse.pcm")
            with open(path_in, "wb") as f:
                f.write(pcm)
        wav = os.path.join(work, f"{name}.wav")
        subprocess.run(["ffmpeg", "-v", "error", "-y", *raw, "-i", path_in, "-ar", "16000", "-ac", "1", wav], check=True)
        with open(wav, "rb") as f:
            out[name]["heard"] = client.audio.transcriptions.create(model="whisper-1", file=f).text

out["models"] = sorted(m.id for m in client.models.list())

for fmt in ["ogg", "MP3"]:
    try:
        client.audio.speech.create(model="tts-1", voice="alloy", input="hi", response_format=fmt)
        out[f"{fmt}_error"] = None
    except openai.BadRequestError as e:
        out[f"{fmt}_error"] = {"status": e.status_code, "message": str(e)}

print(json.dumps(out))
