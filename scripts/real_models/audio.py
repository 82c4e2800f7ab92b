"""Voice activity (silero-vad) and wake-word spotting (openwakeword) on espeak-ng speech."""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from . import corpus, speech
from .onnx_files import fix_shipped, run_onnx
from .spec import ModelData, ModelSpec, Source, split

# ---- silero-vad -------------------------------------------------------------------------------

# The 16 kHz opset-15 export (torch 2.3.1; still If nodes on sr). The wheel's main silero_vad.onnx
# (spox, an If over 8/16 kHz subgraphs) cannot have static dims: with input fixed to 1x576 ONNX
# Runtime 1.31 type-checks the 8 kHz branch too and rejects it ("LSTM: First input tensor must have
# rank 3"), so there would be no fp32 reference run. VAD_NOTE records that in meta.json.
VAD = Source("silero-vad", "silero_vad/data/silero_vad_16k_op15.onnx", "MIT")
VAD_NOTE = ("silero_vad/data/silero_vad.onnx was not used: with static input dims ONNX Runtime 1.31 rejects it "
            "(If_0 then-branch LSTM: 'First input tensor must have rank 3'); silero_vad_16k_op15.onnx is the "
            "same model exported for 16 kHz only")
CHUNK, CONTEXT = 512, 64  # at 16 kHz; silero_vad.OnnxWrapper prepends the previous 64 samples


def vad_stream(rec: speech.Recording) -> list[dict]:
    """Run the shipped model over a recording as OnnxWrapper does, keeping each step's real inputs:
    the 576 samples (64 of context + a 512 chunk), the recurrent state so far, and sr."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(VAD.path()), providers=["CPUExecutionProvider"])
    state, context, steps = np.zeros((2, 1, 128), np.float32), np.zeros((1, CONTEXT), np.float32), []
    for start in range(0, len(rec.audio) - CHUNK + 1, CHUNK):
        x = np.concatenate([context, rec.audio[None, start:start + CHUNK]], axis=1)
        feed = {"input": x, "state": state, "sr": np.array(16000, np.int64)}
        prob, state = session.run(None, feed)
        gap = min(max(a - (start + CHUNK), start - b, 0) for a, b in rec.speech) * 1000 // speech.RATE
        steps.append({"at": start, "feed": feed, "speech": rec.speech_fraction(start, start + CHUNK) > 0.5,
                      "ms_from_speech": int(gap), "prob": float(prob.ravel()[0])})
        context = x[:, -CONTEXT:]
    return steps


def vad_pick(steps: list[dict], n: int, rng: random.Random) -> list[dict]:
    """n steps, half speech and half not where the recording allows, in stream order."""
    speech_steps = [s for s in steps if s["speech"]]
    other = [s for s in steps if not s["speech"]]
    k = min(n // 2, len(speech_steps))
    picked = rng.sample(speech_steps, k) + rng.sample(other, min(n - k, len(other)))
    return sorted(picked, key=lambda s: s["at"])


def vad_arrays(steps: list[dict]) -> dict[str, np.ndarray]:
    return {"input": np.stack([s["feed"]["input"] for s in steps]),
            "state": np.stack([s["feed"]["state"] for s in steps]),
            "sr": np.array([16000] * len(steps), np.int64)}


def vad_data() -> ModelData:
    rng = random.Random(21)
    calib = vad_pick(vad_stream(speech.recording(1, corpus.SPOKEN[:8])), 64, rng)
    eval_ = vad_pick(vad_stream(speech.recording(2, corpus.SPOKEN[8:16])), 100, rng)
    truth = [{"speech": int(s["speech"]), "ms_from_speech": s["ms_from_speech"]} for s in eval_]
    return ModelData(vad_arrays(calib), vad_arrays(eval_), truth, {
        "audio": "espeak-ng sentences in 10 English voices at 130-190 wpm, separated by 0.4-1.5 s of silence, "
                 "white/pink noise or 50 Hz hum, over a -60 dB noise floor; 16 kHz",
        "state": "each sample's state is the model's own recurrent state after streaming the recording up to "
                 "that chunk (zeros for the first chunk); input = previous 64 samples + the 512-sample chunk",
        "calib": "recording 1 (sentences 1-8), 64 chunks", "eval": "recording 2 (sentences 9-16), 100 chunks",
        "truth": "speech: more than half of the chunk lies inside an utterance; ms_from_speech: how far the "
                 "chunk is from the nearest utterance (0 if it touches one)", "model_file": VAD_NOTE})


def vad_sanity(outputs: list, truth: list) -> dict:
    """Decisions against the truth; non-speech is also scored away from utterance edges, where a
    VAD's onset and hangover (silero keeps saying speech for ~100-200 ms) are by design."""
    said = np.array([float(o[0].ravel()[0]) >= 0.5 for o in outputs])
    speech_ = np.array([t["speech"] for t in truth], bool)
    far = np.array([t["ms_from_speech"] > 200 for t in truth]) & ~speech_
    return {"accuracy": float((said == speech_).mean()), "speech_recall": float(said[speech_].mean()),
            "non_speech_rejection": float(1 - said[~speech_].mean()),
            "non_speech_rejection_200ms_from_speech": float(1 - said[far].mean()) if far.any() else None,
            "speech_chunks": int(speech_.sum()), "non_speech_chunks": int((~speech_).sum())}


# ---- openwakeword: melspectrogram -> speech embedding -> wake-word classifier -------------------

OWW_LICENSE = "Apache-2.0 (code); the pretrained models are CC BY-NC-SA 4.0 per the openwakeword README"
MELSPEC = Source("openwakeword", "openwakeword/resources/models/melspectrogram.onnx", OWW_LICENSE)
EMBEDDING = Source("openwakeword", "openwakeword/resources/models/embedding_model.onnx", OWW_LICENSE)
HEY_JARVIS = Source("openwakeword", "openwakeword/resources/models/hey_jarvis_v0.1.onnx", OWW_LICENSE)
MEL_CHUNK = 1760  # openwakeword streams 1280-sample (80 ms) frames plus 480 samples of overlap: 8 mel frames
WINDOW, STEP, FEATURES = 76, 8, 16  # mel frames per embedding, frames between embeddings, embeddings per decision




@dataclass
class Clip:
    """One spoken phrase with padding, and openwakeword's features of it."""

    text: str
    wake: bool
    pcm: np.ndarray  # int16 sample values as float32, as openwakeword feeds its melspectrogram model
    speech: tuple[int, int]  # samples
    spec: np.ndarray  # (frames, 32) mel frames after openwakeword's x / 10 + 2
    embeddings: np.ndarray  # (n, 96): one per 76-frame window, every 8 frames

    def window_end(self, k: int) -> int:
        """Mel frame just past the 16-embedding window that ends with embedding k."""
        return STEP * k + WINDOW

    def speech_frames(self) -> tuple[int, int]:
        return self.speech[0] // 160, self.speech[1] // 160


def speak_clip(seed: int, text: str, voice: str, speed: int) -> tuple[np.ndarray, tuple[int, int]]:
    """1.5 s of room noise, the phrase, 0.5-1 s more noise; int16-valued float32 samples."""
    rng, py = np.random.default_rng(seed), random.Random(seed)
    voice_audio = speech.speak(text, voice, speed, py.randint(35, 65)) * py.uniform(0.3, 0.8)
    before, after = int(1.5 * speech.RATE), int(py.uniform(0.5, 1.0) * speech.RATE)
    audio = np.concatenate([np.zeros(before, np.float32), voice_audio, np.zeros(after, np.float32)])
    audio += speech.noise(rng, len(audio) / speech.RATE, py.choice(["white", "pink"]), py.uniform(0.001, 0.01))[:len(audio)]
    pcm = np.round(np.clip(audio, -1, 1) * 32767).astype(np.float32)
    return pcm, (before, before + len(voice_audio))


@lru_cache(maxsize=1)
def clips() -> list[Clip]:
    """"hey jarvis" in 10 voices x 3 speeds, and 10 other phrases in 4 voices each; features from
    the package's own (dynamic-shape) melspectrogram and embedding models, as openwakeword does."""
    import onnxruntime as ort

    mel = ort.InferenceSession(str(MELSPEC.path()), providers=["CPUExecutionProvider"])
    emb = ort.InferenceSession(str(EMBEDDING.path()), providers=["CPUExecutionProvider"])
    plan = [(corpus.WAKE_PHRASE, True, v, s) for v in speech.VOICES for s in (130, 160, 190)]
    plan += [(t, False, speech.VOICES[(i * 3 + j) % len(speech.VOICES)], 150 + 10 * j)
             for i, t in enumerate(corpus.NOT_WAKE) for j in range(4)]
    out = []
    for seed, (text, wake, voice, speed) in enumerate(plan):
        pcm, span = speak_clip(seed, text, voice, speed)
        spec = mel.run(None, {"input": pcm[None]})[0].squeeze() / 10 + 2
        windows = np.stack([spec[i:i + WINDOW] for i in range(0, len(spec) - WINDOW + 1, STEP)])[..., None]
        embeddings = emb.run(None, {"input_1": windows.astype(np.float32)})[0].reshape(-1, 96)
        out.append(Clip(text, wake, pcm, span, spec.astype(np.float32), embeddings))
    return out


def halves() -> tuple[list[Clip], list[Clip]]:
    """Calibration clips and evaluation clips: alternate ones, so both hold every phrase and voice mix."""
    return clips()[0::2], clips()[1::2]


def melspec_data() -> ModelData:
    rng = random.Random(31)

    def chunks(group: list[Clip], n: int):
        picked = []
        for i in range(n):
            clip = group[i % len(group)]
            centre = rng.choice([rng.randint(*clip.speech), rng.randint(0, len(clip.pcm) - 1)])
            start = int(np.clip(centre - MEL_CHUNK // 2, 0, len(clip.pcm) - MEL_CHUNK))
            inside = max(0, min(start + MEL_CHUNK, clip.speech[1]) - max(start, clip.speech[0])) / MEL_CHUNK
            picked.append((clip.pcm[None, start:start + MEL_CHUNK], int(inside > 0.5)))
        return {"input": np.stack([p[0] for p in picked])}, [p[1] for p in picked]

    calib_clips, eval_clips = halves()
    calib, _ = chunks(calib_clips, 48)
    eval_, truth = chunks(eval_clips, 64)
    return ModelData(calib, eval_, truth, {
        "audio": "1760-sample chunks (openwakeword's streaming frame: 1280 new samples + 480 of overlap) of "
                 "espeak-ng phrases with room noise, int16 sample values as float32; half centred on speech",
        "calib": "48 chunks from even-numbered clips", "eval": "64 chunks from odd-numbered clips",
        "truth": "1 if more than half of the chunk is speech"})


def melspec_sanity(outputs: list, truth: list) -> dict:
    energy = np.array([float(o[0].mean()) for o in outputs])
    truth = np.array(truth, bool)
    return {"finite": bool(all(np.isfinite(o[0]).all() for o in outputs)),
            "mean_log_mel_speech": float(energy[truth].mean()), "mean_log_mel_non_speech": float(energy[~truth].mean())}


def embedding_data() -> ModelData:
    rng = random.Random(32)

    def windows(group: list[Clip], n: int):
        picked = []
        for i in range(n):
            clip = group[i % len(group)]
            first, last = clip.speech_frames()
            # A window that covers the middle of the phrase: what the classifier's decision rests on.
            middle = (first + last) // 2
            start = int(np.clip(middle - rng.randint(20, WINDOW - 20), 0, len(clip.spec) - WINDOW))
            picked.append((clip.spec[start:start + WINDOW, :, None], clip.text))
        return {"input_1": np.stack([p[0] for p in picked])[:, None].astype(np.float32)}, [p[1] for p in picked]

    calib_clips, eval_clips = halves()
    calib, _ = windows(calib_clips, 48)
    eval_, truth = windows(eval_clips, 80)
    return ModelData(calib, eval_, truth, {
        "input": "76 mel frames x 32 bins from the package's melspectrogram model on espeak-ng phrases, after "
                 "openwakeword's x / 10 + 2, each covering the middle of a phrase",
        "calib": "48 windows from even-numbered clips", "eval": "80 windows from odd-numbered clips",
        "truth": "the phrase each window comes from"})


def embedding_sanity(outputs: list, truth: list) -> dict:
    """Do windows of the same phrase (other voices, speeds) embed closest to each other?"""
    e = np.stack([o[0].ravel() for o in outputs])
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    sim = e @ e.T
    np.fill_diagonal(sim, -np.inf)
    nearest = sim.argmax(axis=1)
    same = np.mean([truth[i] == truth[j] for i, j in enumerate(nearest)])
    texts = np.array(truth)
    chance = np.mean([(texts == t).sum() - 1 for t in texts]) / (len(texts) - 1)
    return {"nearest_neighbour_same_phrase": float(same), "chance_level": float(chance)}


def wake_data() -> ModelData:
    rng = random.Random(33)

    def features(group: list[Clip], per_clip: int):
        arrays, truth = [], []
        for clip in group:
            _, last = clip.speech_frames()
            # Windows that end 0.2-0.44 s after the phrase: where the detector's score peaks (measured
            # on these clips: 80% of 'hey jarvis' windows score >= 0.5 there, under 30% before it).
            ks = [k for k in range(FEATURES - 1, len(clip.embeddings)) if 20 <= clip.window_end(k) - last <= 44]
            for k in rng.sample(ks, min(per_clip, len(ks))):
                arrays.append(clip.embeddings[k - FEATURES + 1:k + 1])
                truth.append(int(clip.wake))
        return {"x.1": np.stack(arrays)[:, None].astype(np.float32)}, truth

    calib_clips, eval_clips = halves()
    calib, _ = features(calib_clips, 1)
    eval_, truth = features(eval_clips, 2)
    return ModelData(calib, eval_, truth, {
        "input": "16 consecutive speech embeddings (1.28 s) from the package's melspectrogram + embedding models "
                 "on espeak-ng clips: 'hey jarvis' in 10 voices x 3 speeds, and 10 other phrases "
                 "(near misses: hey marvin, hey travis, jarvis) x 4 voices, with room noise",
        "calib": "1 window per even-numbered clip", "eval": "2 windows per odd-numbered clip",
        "truth": "1 for windows ending just after 'hey jarvis', 0 for the other phrases"})


def wake_sanity(outputs: list, truth: list) -> dict:
    said = np.array([float(o[0].ravel()[0]) >= 0.5 for o in outputs])
    truth = np.array(truth, bool)
    return {"accuracy": float((said == truth).mean()), "wake_recall": float(said[truth].mean()),
            "false_accepts": int(said[~truth].sum()), "negatives": int((~truth).sum())}


def _shipped(shapes: dict[str, list[int]]):
    return lambda src, dest, feed: fix_shipped(src, dest, shapes, feed)


SPECS = [
    ModelSpec("silero_vad", "voice activity detector (LSTM, state in/out)",
              "speech probability of each 32 ms chunk at 16 kHz, carrying a recurrent state between chunks",
              VAD, {"input": [1, CHUNK + CONTEXT], "state": [2, 1, 128], "sr": []},
              _shipped({"input": [1, CHUNK + CONTEXT], "state": [2, 1, 128], "sr": []}), vad_data, vad_sanity),
    ModelSpec("oww_melspec", "audio feature extractor (STFT as Conv, mel filterbank)",
              "log-mel spectrogram (32 bins, 10 ms hop) of 16 kHz audio, openwakeword's first stage",
              MELSPEC, {"input": [1, MEL_CHUNK]}, _shipped({"input": [1, MEL_CHUNK]}), melspec_data, melspec_sanity),
    ModelSpec("oww_embedding", "speech embedding CNN (tf2onnx)",
              "Google's speech_embedding: 96-d features of 76 mel frames, openwakeword's second stage",
              EMBEDDING, {"input_1": [1, WINDOW, 32, 1]}, _shipped({"input_1": [1, WINDOW, 32, 1]}),
              embedding_data, embedding_sanity),
    ModelSpec("oww_hey_jarvis", "keyword spotter (MLP on embeddings)",
              "probability that the last 1.28 s of speech embeddings hold the wake phrase 'hey jarvis'",
              HEY_JARVIS, {"x.1": [1, FEATURES, 96]}, _shipped({"x.1": [1, FEATURES, 96]}), wake_data, wake_sanity),
]
