r"""Speed of `fad.embed_set` against the reference's way of embedding a FAD set.

  python -m vggish.analysis.fad_benchmark [--checkpoint PATH] [--files 60] \
      [--seconds 10] [--rounds 2] [--batch_size 32]

Generates a corpus of 16 kHz mono int16 WAVs (tones, chirps and noise) and
times, in one process and interleaved rounds:

  reference  the reference's chain one file after another: scipy's reader,
             the normalization, VGGish's input chain on each 1 s window
             separately, one model call per file;
  embed_set  `vggish.analysis.fad.embed_set`: frames shared by overlapping
             windows, files read by background workers, batches packed
             across files;

and the frontends alone (per-window log-mel against shared frames). Prints
seconds, files/s, windows/s and the ratios, and how far the two sets'
statistics are apart (they must agree to float32 rounding). Speed does not
depend on the weights: the tests run it on the recipe checkpoint.
"""

import dataclasses
import os
import tempfile
import time
from typing import Dict, List

import numpy as np

from vggish import frontend
from vggish.analysis import fad as fad_lib
from vggish.analysis import fad_input
from vggish.analysis import fad_stats

RATE = fad_input.SAMPLE_RATE


@dataclasses.dataclass
class Measurement:
  """Best-of-rounds seconds of each job, the corpus size and the statistics' agreement."""
  files: int
  windows: int
  audio_seconds: float
  seconds: Dict[str, float]
  max_mu_difference: float
  max_sigma_difference: float
  fad_between: float

  def lines(self) -> List[str]:
    out = [f'corpus: {self.files} files, {self.audio_seconds:.0f} s of audio, '
           f'{self.windows} windows']
    for name, seconds in self.seconds.items():
      out.append(f'{name:<20} {seconds:8.2f} s  {self.files / seconds:7.1f} files/s  '
                 f'{self.windows / seconds:8.1f} windows/s  '
                 f'{self.audio_seconds / seconds:6.1f}x real time')
    s = self.seconds
    out.append(f'embed_set / reference: {s["reference"] / s["embed_set"]:.2f}x faster')
    out.append(f'shared frames / per-window log-mel: '
               f'{s["frontend per window"] / s["frontend shared"]:.2f}x faster')
    out.append(f'statistics agree: max |mu difference| {self.max_mu_difference:.2e}, max '
               f'|sigma difference| {self.max_sigma_difference:.2e}, FAD between them '
               f'{self.fad_between:.2e}')
    return out


def write_corpus(directory: str, files: int, seconds: float, seed: int = 0) -> List[str]:
  """Tones, chirps and noise as 16 kHz mono int16 WAVs; returns the paths."""
  import soundfile  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(seed)
  t = np.arange(int(seconds * RATE)) / RATE
  paths = []
  for i in range(files):
    f0, f1 = rng.uniform(100, 3000, 2)
    wave = (0.5 * np.sin(2 * np.pi * (f0 + (f1 - f0) * t / (2 * seconds)) * t)
            + rng.uniform(0.01, 0.3) * rng.standard_normal(t.shape))
    path = os.path.join(directory, f'clip_{i:04d}.wav')
    soundfile.write(path, np.clip(wave, -1, 1), RATE, subtype='PCM_16')
    paths.append(path)
  return paths


def _reference_examples(path: str) -> np.ndarray:
  samples = fad_input.read_reference_wav(path)
  samples = samples / max(0.1, max(samples))
  windows = [samples[s:s + fad_input.WINDOW_SAMPLES]
             for s in range(0, len(samples) - fad_input.WINDOW_SAMPLES + 1,
                            fad_input.HOP_SAMPLES)]
  return np.concatenate([frontend.waveform_to_examples(w, RATE) for w in windows])


def _model_function(model, example_shape):
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  call = tf.function(lambda x: model(x, training=False),
                     input_signature=[tf.TensorSpec((None,) + example_shape, tf.float32)])
  return lambda examples: call(examples).numpy()


def measure(paths: List[str], checkpoint_path=None, batch_size: int = 32,
            rounds: int = 2, model=None) -> Measurement:
  """Times both jobs and both frontends on `paths` (best of `rounds`)."""
  from vggish.embedder import Embedder  # pylint: disable=import-outside-toplevel
  if model is None:
    ours = Embedder.from_checkpoint(checkpoint_path, batch_size=batch_size)
  else:
    ours = Embedder(model, batch_size=batch_size)
  inputs = fad_lib.list_inputs(paths)
  lengths = [len(fad_input.read_reference_wav(p)) for p in paths]
  windows = sum(fad_input.num_windows(n) for n in lengths)
  per_file = max(fad_input.num_windows(n) for n in lengths)
  # One call per file: the reference's batch is the file's windows, any number
  # (not an Embedder, which pads every call to its batch size).
  whole_file = _model_function(ours.model, ours.example_shape)
  ours(np.zeros((batch_size,) + ours.example_shape, np.float32))  # Trace outside the timing.
  whole_file(np.zeros((per_file,) + ours.example_shape, np.float32))

  def reference_job():
    accumulated = [whole_file(_reference_examples(p).astype(np.float32)) for p in paths]
    x = np.concatenate(accumulated).astype(np.float64)
    return fad_stats.Stats(mu=x.mean(axis=0).astype(np.float32),
                           sigma=np.cov(x, rowvar=False).astype(np.float32), count=len(x))

  def embed_set_job():
    return fad_lib.embed_set(inputs, ours, show_progress=False).stats

  def frontend_per_window():
    for p in paths:
      _reference_examples(p)

  def frontend_shared():
    for p in paths:
      fad_input.file_examples(p)

  jobs = {'reference': reference_job, 'embed_set': embed_set_job,
          'frontend per window': frontend_per_window, 'frontend shared': frontend_shared}
  best = {name: float('inf') for name in jobs}
  results = {}
  for _ in range(rounds):
    for name, job in jobs.items():
      start = time.perf_counter()
      results[name] = job()
      best[name] = min(best[name], time.perf_counter() - start)
  reference, ours_stats = results['reference'], results['embed_set']
  return Measurement(
      files=len(paths), windows=windows,
      audio_seconds=sum(lengths) / RATE,
      seconds=best,
      max_mu_difference=float(np.max(np.abs(reference.mu - ours_stats.mu))),
      max_sigma_difference=float(np.max(np.abs(reference.sigma - ours_stats.sigma))),
      fad_between=fad_stats.distance(ours_stats, reference))


def main(argv):
  from absl import flags  # pylint: disable=import-outside-toplevel
  del argv
  values = flags.FLAGS
  from vggish import workers  # pylint: disable=import-outside-toplevel
  with tempfile.TemporaryDirectory(prefix='fad_benchmark_') as directory:
    paths = write_corpus(directory, values.files, values.seconds)
    measurement = measure(paths, values.checkpoint, values.batch_size, values.rounds)
  print(f'cores: {workers.usable_cores()}; best of {values.rounds} interleaved rounds')
  for line in measurement.lines():
    print(line)


def _define_flags():
  from absl import flags  # pylint: disable=import-outside-toplevel
  flags.DEFINE_string('checkpoint', None, "VGGish checkpoint (default: the workspace's).")
  flags.DEFINE_integer('files', 60, 'Files in the generated corpus.', lower_bound=1)
  flags.DEFINE_float('seconds', 10.0, 'Seconds per file.', lower_bound=1.0)
  flags.DEFINE_integer('rounds', 2, 'Interleaved rounds (the best is kept).', lower_bound=1)
  flags.DEFINE_integer('batch_size', 32, 'Examples per model call of embed_set.', lower_bound=1)


if __name__ == '__main__':
  os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')  # As tools.fad.
  from vggish import cli  # pylint: disable=g-import-not-at-top
  cli.run(main, _define_flags)
