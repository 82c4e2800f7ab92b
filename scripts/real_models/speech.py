"""Speech synthesised with espeak-ng (Debian package), and the room sounds around it, at 16 kHz."""

from __future__ import annotations

import io
import random
import subprocess
import wave
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

RATE = 16000
# espeak-ng's English voices, with its built-in variants (+f2.. are female, +m3.. other male timbres).
VOICES = ["en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-us+f2", "en-us+f4", "en-gb+f3",
          "en-us+m3", "en-gb+m5"]


@lru_cache(maxsize=None)
def speak(text: str, voice: str = "en-us", speed: int = 160, pitch: int = 50) -> np.ndarray:
    """espeak-ng's rendering of text as float32 in [-1, 1] at 16 kHz (resampled from its 22050 Hz)."""
    from scipy.signal import resample_poly

    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text],
                         check=True, capture_output=True).stdout
    with wave.open(io.BytesIO(wav)) as f:
        rate, pcm = f.getframerate(), np.frombuffer(f.readframes(f.getnframes()), dtype=np.int16)
    audio = resample_poly(pcm.astype(np.float64) / 32768.0, RATE, rate)
    return trim(audio.astype(np.float32))


def trim(audio: np.ndarray, threshold: float = 1e-3) -> np.ndarray:
    """Cut espeak's leading and trailing silence, so segment boundaries are where speech is."""
    loud = np.nonzero(np.abs(audio) > threshold)[0]
    return audio[loud[0]:loud[-1] + 1] if len(loud) else audio


def noise(rng: np.random.Generator, seconds: float, kind: str, level: float) -> np.ndarray:
    """Room sounds: 'white' hiss, 'pink' (1/f, like fans and traffic), or 'hum' (50 Hz mains + harmonics)."""
    n = int(seconds * RATE)
    if kind == "hum":
        t = np.arange(n) / RATE
        x = sum(np.sin(2 * np.pi * 50 * k * t + rng.uniform(0, 6.3)) / k for k in (1, 2, 3))
    else:
        x = rng.standard_normal(n)
        if kind == "pink":
            spectrum = np.fft.rfft(x)
            spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))
            x = np.fft.irfft(spectrum, n)
    return (x / (np.std(x) + 1e-12) * level).astype(np.float32)


@dataclass
class Recording:
    """A stream of speech and non-speech, with where the speech is (sample ranges)."""

    audio: np.ndarray
    speech: list[tuple[int, int]]

    def speech_fraction(self, start: int, stop: int) -> float:
        covered = sum(max(0, min(stop, b) - max(start, a)) for a, b in self.speech)
        return covered / (stop - start)


def recording(seed: int, phrases: list[str], gaps: tuple[float, float] = (0.4, 1.5)) -> Recording:
    """Utterances in varied voices, separated by silence or noise, over a low noise floor."""
    py, rng = random.Random(seed), np.random.default_rng(seed)
    parts, speech, at = [], [], 0
    for text in phrases:
        gap_kind = py.choice(["silence", "silence", "white", "pink", "hum"])
        level = 0.0005 if gap_kind == "silence" else py.uniform(0.005, 0.03)
        gap = noise(rng, py.uniform(*gaps), "white" if gap_kind == "silence" else gap_kind, level)
        voice = speak(text, py.choice(VOICES), py.randint(130, 190), py.randint(30, 70)) * py.uniform(0.3, 0.9)
        parts += [gap, voice]
        speech.append((at + len(gap), at + len(gap) + len(voice)))
        at += len(gap) + len(voice)
    parts.append(noise(rng, py.uniform(*gaps), "pink", py.uniform(0.005, 0.02)))
    audio = np.concatenate(parts)
    audio += noise(rng, len(audio) / RATE, "white", 0.001)[:len(audio)]  # the microphone's own floor
    return Recording(np.clip(audio, -1, 1).astype(np.float32), speech)
