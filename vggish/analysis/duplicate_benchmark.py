r"""Precision and recall of `duplicates.find_duplicates` on generated duplicates.

  python -m vggish.analysis.duplicate_benchmark [--checkpoint PATH] \
      [--pca_params PATH] [--originals 150] [--thresholds 0.7,0.75,...] \
      [--example_hop_seconds 0.96] [--seed 0]

Generates a corpus of distinct 10 s clips from a few sound families (harmonic
note sequences, filtered noise bursts, chirps, click rhythms, hum over noise),
so that clips of one family sound alike without being copies; then gives each
original one copy made by a known transformation:

  shift    delayed by 0.05-0.9 s (and 2,550 samples, the case of the issue),
           cut to the same length
  mp3      re-encoded as MP3 (libsndfile) and decoded again
  gain     louder or quieter by 3-12 dB
  crop     a 3-6 s stretch starting anywhere (a sub-clip)
  combined shifted, made quieter and re-encoded as MP3

Every clip is embedded with VGGish (raw float32, and PCA + uint8 dequantized
when PCA parameters are given), `find_duplicates` runs at each threshold,
and a reported pair counts as right when it is an (original, its copy) pair.
Prints precision, recall and recall per transformation for each threshold.
Figures depend on the checkpoint: run it with the real one
(`tools.download`); the tests run a small corpus on the recipe checkpoint.
"""

import dataclasses
import io
import logging
from typing import Dict, List, Sequence, Tuple

import numpy as np

from vggish.analysis import clips as clips_lib
from vggish.analysis import duplicates as duplicates_lib
from vggish.params import DEFAULT_PARAMS, Params

RATE = 16000
SECONDS = 10.0
FAMILIES = ('notes', 'bursts', 'chirps', 'clicks', 'hum')
TRANSFORMS = ('shift', 'mp3', 'gain', 'crop', 'combined')


def _notes(rng, n):
  out = np.zeros(n)
  t0 = 0
  harmonics = rng.uniform(0.1, 1.0, 6) / np.arange(1, 7)
  while t0 < n:
    length = int(rng.uniform(0.15, 0.8) * RATE)
    f0 = 110.0 * 2 ** (rng.integers(0, 36) / 12.0)
    t = np.arange(min(length, n - t0)) / RATE
    note = sum(h * np.sin(2 * np.pi * f0 * (k + 1) * t) for k, h in enumerate(harmonics))
    out[t0:t0 + len(t)] = note * np.exp(-t * rng.uniform(2, 8))
    t0 += length
  return out


def _band_noise(rng, n, low, high):
  spectrum = np.fft.rfft(rng.standard_normal(n))
  freqs = np.fft.rfftfreq(n, 1.0 / RATE)
  spectrum[(freqs < low) | (freqs > high)] = 0
  return np.fft.irfft(spectrum, n)


def _bursts(rng, n):
  out = np.zeros(n)
  for _ in range(rng.integers(4, 12)):
    length = int(rng.uniform(0.1, 1.5) * RATE)
    start = rng.integers(0, n - length)
    low = rng.uniform(100, 3000)
    burst = _band_noise(rng, length, low, low * rng.uniform(1.5, 4))
    out[start:start + length] += burst * np.hanning(length)
  return out


def _chirps(rng, n):
  out = np.zeros(n)
  for _ in range(rng.integers(3, 8)):
    length = int(rng.uniform(0.3, 2.0) * RATE)
    start = rng.integers(0, n - length)
    f0, f1 = rng.uniform(200, 4000, 2)
    t = np.arange(length) / RATE
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * t[-1]))
    out[start:start + length] += np.sin(phase) * np.hanning(length)
  return out


def _clicks(rng, n):
  out = np.zeros(n)
  period = int(RATE * 60.0 / rng.uniform(60, 180))
  pattern = rng.random(8) < 0.6
  kernel = _band_noise(rng, 800, rng.uniform(500, 2000), 7000) * np.exp(
      -np.arange(800) / rng.uniform(50, 300))
  for k, start in enumerate(range(int(rng.integers(0, period)), n - 800, period // 2)):
    if pattern[k % 8]:
      out[start:start + 800] += kernel * rng.uniform(0.5, 1.0)
  return out


def _hum(rng, n):
  t = np.arange(n) / RATE
  f0 = rng.uniform(40, 400)
  hum = sum(rng.uniform(0.2, 1) / k * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6))
            for k in range(1, 5))
  level = 0.3 + 0.7 * np.abs(np.sin(2 * np.pi * t / rng.uniform(2, 6)))
  return hum * level + 0.3 * _band_noise(rng, n, 50, 7000)


_GENERATORS = {'notes': _notes, 'bursts': _bursts, 'chirps': _chirps,
               'clicks': _clicks, 'hum': _hum}


def generate_clip(family: str, seed: int, seconds: float = SECONDS) -> np.ndarray:
  """float32 [seconds * 16000] of one family, peak 0.5, seeded."""
  rng = np.random.default_rng(seed)
  n = int(seconds * RATE)
  wave = _GENERATORS[family](rng, n) + 0.003 * rng.standard_normal(n)
  return (0.5 * wave / np.max(np.abs(wave))).astype(np.float32)


def _mp3(wave: np.ndarray) -> np.ndarray:
  import soundfile  # pylint: disable=import-outside-toplevel
  buffer = io.BytesIO()
  soundfile.write(buffer, wave, RATE, format='MP3')
  buffer.seek(0)
  decoded, _ = soundfile.read(buffer, dtype='float32')
  return decoded


def _shift(wave, samples, rng):
  pad = 0.003 * rng.standard_normal(samples).astype(np.float32)
  return np.concatenate([pad, wave])[:len(wave)]


def transform(wave: np.ndarray, kind: str, rng) -> np.ndarray:
  """A copy of `wave` made by one transformation (see the module docstring)."""
  if kind == 'shift':
    return _shift(wave, int(rng.uniform(0.05, 0.9) * RATE), rng)
  if kind == 'mp3':
    return _mp3(wave)
  if kind == 'gain':
    db = rng.uniform(3, 12) * rng.choice([-1, 1])
    return (wave * 10 ** (db / 20)).astype(np.float32)
  if kind == 'crop':
    length = int(rng.uniform(3, 6) * RATE)
    start = int(rng.integers(0, len(wave) - length))
    return wave[start:start + length]
  if kind == 'combined':
    shifted = _shift(wave, 2550, rng)
    return _mp3(shifted * 10 ** (-rng.uniform(3, 9) / 20)).astype(np.float32)
  raise ValueError(f'unknown transformation {kind!r}; one of {TRANSFORMS}')


@dataclasses.dataclass(frozen=True)
class Corpus:
  """Generated clips: ids, waveforms, and the true (original, copy) pairs."""
  ids: List[str]
  waveforms: List[np.ndarray]
  pairs: Dict[Tuple[str, str], str]  # (sorted id pair) -> transformation


def generate_corpus(num_originals: int, seed: int = 0) -> Corpus:
  """Originals (families in turn) and one transformed copy of each."""
  rng = np.random.default_rng(seed)
  ids, waves, pairs = [], [], {}
  for k in range(num_originals):
    family = FAMILIES[k % len(FAMILIES)]
    wave = generate_clip(family, seed * 100003 + k)
    kind = TRANSFORMS[k % len(TRANSFORMS)]
    original, copy = f'{family}_{k:04d}', f'{family}_{k:04d}_{kind}'
    ids += [original, copy]
    waves += [wave, transform(wave, kind, rng)]
    pairs[tuple(sorted((original, copy)))] = kind
  return Corpus(ids, waves, pairs)


def embed_corpus(corpus: Corpus, embedder, postprocessor=None,
                 params: Params = DEFAULT_PARAMS) -> Dict[str, clips_lib.Clips]:
  """Clips of the corpus: 'float32' (raw), and 'uint8' with a postprocessor."""
  from vggish import frontend  # pylint: disable=import-outside-toplevel
  from vggish import postprocess  # pylint: disable=import-outside-toplevel
  per_clip = []
  for wave in corpus.waveforms:
    examples = frontend.waveform_to_examples(wave, RATE, params).astype(np.float32)
    rows = [embedder(examples[i:i + embedder.batch_size])
            for i in range(0, len(examples), embedder.batch_size)]
    per_clip.append(np.concatenate(rows) if rows else np.zeros((0, 128), np.float32))
  spaces = {'float32': per_clip}
  if postprocessor is not None:
    spaces['uint8'] = [postprocess.dequantize(postprocessor.postprocess(e), params)
                       for e in per_clip]
  lengths = np.array([len(e) for e in per_clip], np.int64)
  n = len(corpus.ids)
  common = dict(
      ids=np.array(corpus.ids, dtype=object), labels=np.zeros(0, np.int64),
      label_splits=np.zeros(n + 1, np.int64),
      splits=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
      start_seconds=np.zeros(n, np.float32),
      end_seconds=np.array([len(w) / RATE for w in corpus.waveforms], np.float32),
      hop_seconds=np.full(n, params.example_hop_seconds, np.float32))
  return {name: clips_lib.Clips(embeddings=np.concatenate(values).astype(np.float32),
                                embedding_format=name, **common)
          for name, values in spaces.items()}


@dataclasses.dataclass(frozen=True)
class Score:
  threshold: float
  reported: int
  precision: float
  recall: float
  recall_by_transform: Dict[str, float]


def score(clips: clips_lib.Clips, truth: Dict[Tuple[str, str], str],
          thresholds: Sequence[float], **kwargs) -> List[Score]:
  """Precision and recall of find_duplicates at each threshold."""
  out = []
  for threshold in thresholds:
    found = {(p.id_a, p.id_b) for p in
             duplicates_lib.find_duplicates(clips, threshold=threshold, **kwargs)}
    right = found & set(truth)
    by_kind = {}
    for kind in TRANSFORMS:
      pairs = [p for p, k in truth.items() if k == kind]
      if pairs:
        by_kind[kind] = sum(p in right for p in pairs) / len(pairs)
    out.append(Score(threshold, len(found),
                     len(right) / len(found) if found else 1.0,
                     len(right) / len(truth), by_kind))
  return out


def format_scores(name: str, scores: Sequence[Score]) -> str:
  lines = [f'{name}: threshold  pairs  precision  recall  ' +
           '  '.join(f'{k:>8}' for k in TRANSFORMS)]
  for s in scores:
    lines.append(f'{"":{len(name)}}  {s.threshold:9.3f}  {s.reported:5d}  '
                 f'{s.precision:9.3f}  {s.recall:6.3f}  ' + '  '.join(
                     f'{s.recall_by_transform.get(k, float("nan")):8.3f}'
                     for k in TRANSFORMS))
  return '\n'.join(lines)


def main(argv):
  from absl import flags  # pylint: disable=import-outside-toplevel
  from vggish import embedder as embedder_lib  # pylint: disable=import-outside-toplevel
  from vggish import postprocess  # pylint: disable=import-outside-toplevel
  del argv
  values = flags.FLAGS
  params = dataclasses.replace(DEFAULT_PARAMS,
                               example_hop_seconds=values.example_hop_seconds)
  embedder = embedder_lib.Embedder.from_checkpoint(values.checkpoint, params=params)
  postprocessor = (postprocess.Postprocessor(values.pca_params, params)
                   if values.pca_params else None)
  corpus = generate_corpus(values.originals, values.seed)
  logging.info('embedding %d generated clips', len(corpus.ids))
  spaces = embed_corpus(corpus, embedder, postprocessor, params)
  thresholds = [float(t) for t in values.thresholds]
  for name, clips in spaces.items():
    print(format_scores(f'{name} (hop {values.example_hop_seconds} s)',
                        score(clips, corpus.pairs, thresholds)))


def _define_flags():
  from absl import flags  # pylint: disable=import-outside-toplevel
  flags.DEFINE_string('checkpoint', None, 'VGGish checkpoint (default: the workspace\'s).')
  flags.DEFINE_string('pca_params', None, 'PCA parameters: also measure uint8 embeddings.')
  flags.DEFINE_integer('originals', 150, 'Original clips (each gets one copy).')
  flags.DEFINE_list('thresholds', ['0.6', '0.7', '0.75', '0.8', '0.85', '0.9', '0.95'],
                    'Similarity thresholds to measure.')
  flags.DEFINE_float('example_hop_seconds', DEFAULT_PARAMS.example_hop_seconds,
                     'Seconds between examples.')
  flags.DEFINE_integer('seed', 0, 'Seed of the generated corpus.')


if __name__ == '__main__':
  from vggish import cli  # pylint: disable=g-import-not-at-top
  cli.run(main, _define_flags)
