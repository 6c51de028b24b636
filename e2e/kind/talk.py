"""The kind e2e conversation: a WebSocket chat with the stack's real LLM,
then the answer spoken (TTS) and transcribed back (STT). Exits non-zero on
any failure. Needs JWT_SECRET and the port-forwards of run.sh."""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import sys
import time
import urllib.request

import websockets

CHAT = "127.0.0.1:18007"
VOICE = "127.0.0.1:18006"


def token() -> str:
    key = os.environ["JWT_SECRET"].encode()
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=")
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps({"sub": "kind-e2e", "exp": int(time.time()) + 600}).encode())
    sig = b64(hmac.new(key, head + b"." + body, hashlib.sha256).digest())
    return (head + b"." + body + b"." + sig).decode()


async def chat(jwt: str) -> str:
    async with websockets.connect(f"ws://{CHAT}/ws/chat?token={jwt}") as ws:
        await ws.send(json.dumps({"type": "message", "content": "Say hello in five words."}))
        answer = ""
        while True:
            event = json.loads(await asyncio.wait_for(ws.recv(), 120))
            if event["type"] == "token":
                answer += event.get("content", "")
            elif event["type"] == "done":
                return answer
            elif event["type"] == "error":
                sys.exit(f"chat error: {event}")


def post(url: str, body: bytes, content_type: str, jwt: str) -> bytes:
    req = urllib.request.Request(url, data=body, method="POST")
    req.add_header("Authorization", f"Bearer {jwt}")
    req.add_header("Content-Type", content_type)
    with urllib.request.urlopen(req, timeout=120) as resp:
        return resp.read()


def main() -> None:
    jwt = token()
    answer = asyncio.run(chat(jwt))
    print(f"LLM answered: {answer!r}")
    if not answer.strip():
        sys.exit("empty answer")
    wav = post(f"http://{VOICE}/api/v1/tts", json.dumps({"text": "The quick test is working."}).encode(), "application/json", jwt)
    if wav[:4] != b"RIFF":
        sys.exit("TTS did not return WAV")
    text = json.loads(post(f"http://{VOICE}/api/v1/stt", wav, "audio/wav", jwt))["text"]
    print(f"TTS -> STT: {text!r}")
    if "test" not in text.lower():
        sys.exit("the transcript does not match the spoken text")


main()
