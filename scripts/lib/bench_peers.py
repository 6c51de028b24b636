"""This project's speech engines against the peers users compare them with:
faster-whisper (what speaches and wyoming-faster-whisper run) and piper-tts
(what wyoming-piper runs). Run by scripts/bench-peers.sh, which installs
the peers and builds our side (voice/examples/peer_bench_worker.rs).

A/B runs are interleaved (the order alternates each round) and medians are
compared, so that a noisy neighbour hurts both sides alike. Ratios are
peer time / our time: above 1.0 we are faster.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
import wave

JFK_TEXT = ("And so my fellow Americans, ask not what your country can do for you, "
            "ask what you can do for your country.")
PIPER_CLIP_TEXT = ("Voice services turn text into speech and speech back into text. "
                   "The quick brown fox jumps over the lazy dog.")
SHORT_TEXT = "Sure, I can help with that."
PARAGRAPH = ("The quick brown fox jumps over the lazy dog. Voice services turn text into "
             "speech and speech back into text. This paragraph is long enough to take a "
             "few seconds to say, with a pause here, and a question at the end? Yes!")
PHONEME_TEXTS = [SHORT_TEXT, PARAGRAPH, "Wait: one; two, three... go!", "Dr. Smith said \"hi\".",
                 "Version 2.5 is out", "It costs $3.50, or 3 euros."]


def words(text):
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


def wer(reference, hypothesis):
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[len(hyp)] / max(1, len(ref))


class Ours:
    def __init__(self, worker):
        self.proc = subprocess.Popen([worker], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)

    def ask(self, **request):
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        if "error" in answer:
            sys.exit(f"our engine failed: {answer['error']} (request {request})")
        return answer

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


class Peers:
    def __init__(self, ct2_dir, piper_onnx):
        from faster_whisper import WhisperModel
        from piper import PiperVoice
        self.whisper_model = WhisperModel
        self.ct2_dir = ct2_dir
        self.whisper = {}
        self.piper = PiperVoice.load(piper_onnx)

    def stt(self, audio, threads, beam_size):
        if threads not in self.whisper:
            self.whisper[threads] = self.whisper_model(
                self.ct2_dir, device="cpu", compute_type="int8", cpu_threads=threads)
        started = time.perf_counter()
        segments, _ = self.whisper[threads].transcribe(audio, beam_size=beam_size, language="en")
        text = "".join(s.text for s in segments)
        return {"seconds": time.perf_counter() - started, "text": text.strip()}

    def tts(self, text, silence, wav_path=None):
        started = time.perf_counter()
        first, chunks = None, []
        for chunk in self.piper.synthesize(text):
            if first is None:
                first = time.perf_counter() - started
            chunks.append(chunk.audio_int16_bytes)
        seconds = time.perf_counter() - started
        rate = self.piper.config.sample_rate
        gap = b"\0\0" * int(rate * silence)
        audio = gap.join(chunks)
        if wav_path:
            with wave.open(wav_path, "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(rate)
                w.writeframes(audio)
        return {"seconds": seconds, "first_audio": first, "audio_seconds": len(audio) / 2 / rate}

    def phonemes(self, text):
        return ["".join(s) for s in self.piper.phonemize(text)]


def median(runs, key):
    return statistics.median(r[key] for r in runs)


def interleave(rounds, ours, peer):
    """Runs `ours` and `peer` `rounds` times each, alternating who goes first."""
    a, b = [], []
    for i in range(rounds):
        if i % 2 == 0:
            a.append(ours())
            b.append(peer())
        else:
            b.append(peer())
            a.append(ours())
    return a, b


def busy_core():
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--worker", required=True)
    p.add_argument("--ggml", required=True)
    p.add_argument("--ct2", required=True)
    p.add_argument("--voices", required=True)
    p.add_argument("--voice", default="en_US-joe-medium")
    p.add_argument("--jfk", required=True)
    p.add_argument("--piper-clip", required=True,
                   help="WAV of PIPER_CLIP_TEXT spoken by piper-tts; made once, then reused")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--silence", type=float, default=0.2)
    p.add_argument("--beam-size", type=int, default=1)
    p.add_argument("--parts", default="stt,tts,phonemes")
    p.add_argument("--variants", default="[{}]",
                   help="JSON list of Whisper settings for our side ({} = the service's defaults)")
    args = p.parse_args()
    variants = json.loads(args.variants)
    parts = args.parts.split(",")

    ours = Ours(args.worker)
    peers = Peers(args.ct2, os.path.join(args.voices, args.voice + ".onnx"))
    # Piper samples durations: one clip for every run keeps runs comparable.
    piper_clip = args.piper_clip
    if not os.path.exists(piper_clip):
        peers.tts(PIPER_CLIP_TEXT, 0.2, piper_clip + ".part")
        os.replace(piper_clip + ".part", piper_clip)
    clips = [("jfk.wav", args.jfk, JFK_TEXT), ("piper clip", piper_clip, PIPER_CLIP_TEXT)]

    if "stt" in parts:
        speech_to_text(args, ours, peers, clips, variants)
    if "tts" in parts:
        text_to_speech(args, ours, peers)
    mismatches = phonemes(args, ours, peers) if "phonemes" in parts else 0
    ours.close()
    return 1 if mismatches else 0


def speech_to_text(args, ours, peers, clips, variants):
    print(f"== speech-to-text: whisper.cpp ({os.path.basename(args.ggml)}) vs faster-whisper 1.2.1 "
          f"(CTranslate2 int8, same tiny.en weights), beam {args.beam_size}, "
          f"medians of {args.rounds} interleaved runs")
    print(f"{'clip':<11} {'threads':<9} {'load':<10} {'variant':<34} {'ours s':>7} {'peer s':>7} "
          f"{'ratio':>6} {'WER ours':>9} {'WER peer':>9}")
    for load in ("idle", "1 core busy"):
        for threads in ((1, 2) if load == "idle" else (2,)):
            for variant in variants:
                for name, path, reference in clips:
                    request = {"op": "stt", "model": args.ggml, "audio": path, "threads": threads,
                               "beam_size": args.beam_size, **variant}
                    ours.ask(**request)  # load and warm
                    peers.stt(path, threads, args.beam_size)
                    busy = busy_core() if load != "idle" else None
                    try:
                        a, b = interleave(args.rounds, lambda: ours.ask(**request),
                                          lambda: peers.stt(path, threads, args.beam_size))
                    finally:
                        if busy:
                            busy.kill()
                            busy.wait()
                    ta, tb = median(a, "seconds"), median(b, "seconds")
                    label = json.dumps(variant, separators=(",", ":")) if variant else "service defaults"
                    print(f"{name:<11} {threads:<9} {load:<10} {label:<34} {ta:7.3f} {tb:7.3f} "
                          f"{tb / ta:6.2f} {wer(reference, a[-1]['text']):9.3f} "
                          f"{wer(reference, b[-1]['text']):9.3f}", flush=True)



def text_to_speech(args, ours, peers):
    print(f"\n== text-to-speech: Piper ({args.voice}) vs piper-tts 1.8.0, sentence silence "
          f"{args.silence} s, medians of {args.rounds} interleaved runs")
    print(f"{'text':<11} {'ours s':>7} {'peer s':>7} {'ratio':>6} {'first ours':>11} "
          f"{'first peer':>11} {'audio ours':>11} {'audio peer':>11} {'length':>7}")
    for name, text in (("short", SHORT_TEXT), ("paragraph", PARAGRAPH)):
        request = {"op": "tts", "voices": args.voices, "text": text, "silence": args.silence}
        ours.ask(**request)
        peers.tts(text, args.silence)
        a, b = interleave(args.rounds, lambda: ours.ask(**request),
                          lambda: peers.tts(text, args.silence))
        ta, tb = median(a, "seconds"), median(b, "seconds")
        da, db = median(a, "audio_seconds"), median(b, "audio_seconds")
        print(f"{name:<11} {ta:7.3f} {tb:7.3f} {tb / ta:6.2f} {median(a, 'first_audio'):11.3f} "
              f"{median(b, 'first_audio'):11.3f} {da:11.3f} {db:11.3f} {da / db:7.3f}", flush=True)



def phonemes(args, ours, peers):
    print("\n== phonemes: ours vs piper-tts 1.8.0 (PiperVoice.phonemize)")
    mismatches = 0
    for text in PHONEME_TEXTS:
        mine = ours.ask(op="phonemes", voices=args.voices, voice=args.voice, text=text)["sentences"]
        theirs = peers.phonemes(text)
        same = mine == theirs
        mismatches += not same
        print(f"{'same' if same else 'DIFFERENT':<10} {text!r}")
        if not same:
            print(f"           ours: {mine}\n           peer: {theirs}")
    return mismatches


if __name__ == "__main__":
    sys.exit(main())
