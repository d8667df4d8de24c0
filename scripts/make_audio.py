#!/usr/bin/env python3
"""Rebuild the lobby's audio: one Vietnamese clip per word or short phrase, and the call chime.

    .venv/bin/python scripts/make_audio.py [--out static/audio] [--speed 135]

Writes static/audio/vi/<name>.ogg for every name in displays.speech.CLIPS (espeak-ng, Northern
Vietnamese voice `vi`, silence trimmed with sox, Ogg Opus mono at a speech bitrate) and
static/audio/chime.ogg (a two-note bell written by this script as WAV, then encoded). The output
is committed; the project's tests and pages never run this script.

Needs Debian's espeak-ng, sox and opus-tools (`apt-get install espeak-ng sox opus-tools`).
"""
from __future__ import annotations

import argparse
import math
import shutil
import struct
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from displays.speech import CLIP_NAMES  # noqa: E402

TOOLS = ("espeak-ng", "sox", "opusenc")
PHRASES = {"moi-cong-dan-co-so", "den-quay-so"}
RATE = 48000


def run(*args: str) -> None:
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def speak(text: str, name: str, out: Path, tmp: Path, speed: int, bitrate: int) -> None:
    raw, trimmed = tmp / f"{name}.raw.wav", tmp / f"{name}.wav"
    run("espeak-ng", "-v", "vi", "-s", str(speed), "-a", "160", "-w", str(raw), text)
    # Trim the leading and trailing silence, even out the level, then leave a short gap after the
    # clip so that words played one after another sound like one sentence (a longer gap after a phrase).
    gap = "0.12" if name in PHRASES else "0.02"
    run("sox", str(raw), "-r", str(RATE), "-c", "1", str(trimmed),
        "silence", "1", "0.01", "0.5%", "reverse", "silence", "1", "0.01", "0.5%", "reverse",
        "norm", "-3", "pad", "0", gap)
    encode(trimmed, out / f"{name}.ogg", bitrate)


def encode(wav: Path, ogg: Path, bitrate: int) -> None:
    run("opusenc", "--quiet", "--bitrate", str(bitrate), "--downmix-mono", "--music" if "chime" in ogg.name else "--speech",
        "--comp", "10", "--discard-comments", str(wav), str(ogg))


def chime_wav(path: Path) -> None:
    """Two bell notes (E6 then C6), each a decaying fundamental with soft partials."""
    notes = ((1318.5, 0.0), (1046.5, 0.42))
    length = 1.5
    n = int(RATE * length)
    samples = [0.0] * n
    for freq, start in notes:
        s0 = int(start * RATE)
        for i in range(n - s0):
            t = i / RATE
            attack = min(1.0, t / 0.004)
            env = attack * math.exp(-t * 3.2)
            v = (math.sin(2 * math.pi * freq * t) + 0.35 * math.sin(2 * math.pi * freq * 2.01 * t) * math.exp(-t * 4)
                 + 0.15 * math.sin(2 * math.pi * freq * 3.02 * t) * math.exp(-t * 7))
            samples[s0 + i] += 0.45 * env * v
    fade = int(0.05 * RATE)
    for i in range(fade):
        samples[n - 1 - i] *= i / fade
    peak = max(abs(s) for s in samples) or 1.0
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(b"".join(struct.pack("<h", int(32767 * 0.8 * s / peak)) for s in samples))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "static" / "audio")
    ap.add_argument("--speed", type=int, default=135, help="espeak-ng words per minute (default 135)")
    ap.add_argument("--bitrate", type=int, default=20, help="Opus kbit/s for speech (default 20)")
    args = ap.parse_args(argv)
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        print(f"make_audio: missing {', '.join(missing)} (apt-get install espeak-ng sox opus-tools)", file=sys.stderr)
        return 2
    vi = args.out / "vi"
    vi.mkdir(parents=True, exist_ok=True)
    wanted = {name: text for text, name in CLIP_NAMES.items()}
    for old in vi.glob("*.ogg"):                 # a word no longer spoken leaves no stale clip
        if old.stem not in wanted:
            old.unlink()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for name, text in wanted.items():
            speak(text, name, vi, tmp, args.speed, args.bitrate)
        chime_wav(tmp / "chime.wav")
        encode(tmp / "chime.wav", args.out / "chime.ogg", 32)
    files = sorted(vi.glob("*.ogg")) + [args.out / "chime.ogg"]
    total = sum(f.stat().st_size for f in files)
    for f in files:
        print(f"{f.relative_to(args.out)}\t{f.stat().st_size} B")
    print(f"{len(files)} files, {total / 1024:.1f} KiB in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
