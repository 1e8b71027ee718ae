"""Throughput of corpus extraction against two references, measured in one process.

- (a) `sequential`: the upstream way to embed a corpus: per file, read the
  16-bit samples and divide by 32768, average channels, `resampy.resample` to
  16 kHz, the numpy frontend, and one model call for the file's examples.
- (b) `model ceiling`: the model alone on random examples at its best batch
  size (from a sweep); no pipeline on this machine can beat it.
- (c) `extract`: `vggish.extractor.extract` end to end (decode, resample,
  frontend, batching, model, TFRecord shards, manifest), from files to files.

The three are measured in interleaved rounds (see `run_benchmark`), since
the load of a shared machine drifts. All three use the same Keras model
(randomly initialised unless a checkpoint is given: the weights do not change
the cost) and report examples per second.
The corpus is synthetic (seeded noise and tones), written as 16-bit WAV files
in a temporary directory: mostly 44.1 kHz mono, plus clips at other rates and
channel counts so the resampler sees its usual mix.
"""

import dataclasses
import logging
import os
import resource
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
import soundfile
import tensorflow as tf

from vggish import embedder as embedder_lib
from vggish import extractor
from vggish import frontend
from vggish import workers
from vggish.params import DEFAULT_PARAMS, Params

MAIN_RATE = 44100
# (sample rate, channels) of the extra clips, cycled.
OTHER_FORMATS = ((48000, 2), (22050, 1), (16000, 1), (32000, 1), (8000, 1),
                 (96000, 1))


def make_corpus(directory: str, num_clips: int = 200, seconds: float = 5.0,
                num_other: Optional[int] = None, seed: int = 0) -> List[str]:
  """Writes a synthetic corpus of 16-bit WAV files.

  Args:
    directory: where to write (created if needed).
    num_clips: clips at 44.1 kHz mono.
    seconds: length of every clip.
    num_other: clips at other rates (see `OTHER_FORMATS`); default
      num_clips // 5.
    seed: seed of the noise and tone frequencies.

  Returns:
    The paths written, sorted.
  """
  os.makedirs(directory, exist_ok=True)
  rng = np.random.RandomState(seed)
  num_other = num_clips // 5 if num_other is None else num_other
  formats = [(MAIN_RATE, 1)] * num_clips + [
      OTHER_FORMATS[i % len(OTHER_FORMATS)] for i in range(num_other)]
  paths = []
  for i, (rate, channels) in enumerate(formats):
    n = int(seconds * rate)
    t = np.arange(n) / rate
    tone = np.sin(2 * np.pi * rng.uniform(100, 3000) * t)[:, None]
    data = 0.3 * tone + 0.2 * rng.standard_normal((n, channels))
    path = os.path.join(directory, f'clip_{i:05d}_{rate}.wav')
    soundfile.write(path, np.clip(data, -1, 1), rate, subtype='PCM_16')
    paths.append(path)
  return sorted(paths)


def upstream_examples(path: str, params: Params) -> np.ndarray:
  """Upstream's `wavfile_to_examples`: int16 / 32768, channel mean, resampy."""
  import resampy  # Only the reference pipeline uses resampy itself.
  data, rate = soundfile.read(path, dtype='int16')
  samples = data / 32768.0
  if samples.ndim > 1:
    samples = np.mean(samples, axis=1)
  if rate != params.sample_rate:
    samples = resampy.resample(samples, rate, params.sample_rate)
  return frontend.waveform_to_examples(samples, params.sample_rate, params)


class SequentialPipeline:
  """(a) Embeds each file in turn, one model call per file, as upstream did."""

  def __init__(self, model, params: Params = DEFAULT_PARAMS):
    self._params = params
    shape = [None, params.example_window_length, params.num_mel_bins]
    # Any number of examples per call, traced once (like upstream's
    # placeholder of shape [None, 96, 64]).
    self._call = tf.function(lambda x: model(x, training=False),
                             input_signature=[tf.TensorSpec(shape, tf.float32)])

  def __call__(self, paths: Sequence[str]) -> int:
    """Embeds the files; returns the number of examples."""
    total = 0
    for path in paths:
      examples = upstream_examples(path, self._params)
      if examples.shape[0]:
        self._call(examples.astype(np.float32)).numpy()
      total += examples.shape[0]
    return total


def _time_model(embedder, min_seconds: float, params: Params, seed: int = 0):
  """Runs full batches for at least `min_seconds` (3 calls or more).

  Returns:
    (examples embedded, seconds taken).
  """
  rng = np.random.RandomState(seed)
  examples = rng.standard_normal(
      (embedder.batch_size, params.example_window_length,
       params.num_mel_bins)).astype(np.float32)
  embedder(examples)  # Trace and warm up.
  calls = 0
  start = time.perf_counter()
  while calls < 3 or time.perf_counter() - start < min_seconds:
    embedder(examples)
    calls += 1
  return calls * embedder.batch_size, time.perf_counter() - start


def side_by_side_rates(embedders: Sequence[embedder_lib.Embedder], rounds: int = 6,
                       calls: int = 4, params: Params = DEFAULT_PARAMS,
                       seed: int = 0) -> List[float]:
  """Examples/s of each embedder on the same random batch, calls interleaved."""
  rng = np.random.RandomState(seed)
  seconds = [0.0] * len(embedders)
  examples = [0] * len(embedders)
  batch = {e.batch_size: rng.standard_normal(
      (e.batch_size, params.example_window_length, params.num_mel_bins)).astype(np.float32)
           for e in embedders}
  for embedder in embedders:
    embedder(batch[embedder.batch_size])  # Trace and warm up.
  for _ in range(rounds):
    for i, embedder in enumerate(embedders):
      start = time.perf_counter()
      for _ in range(calls):
        embedder(batch[embedder.batch_size])
      seconds[i] += time.perf_counter() - start
      examples[i] += calls * embedder.batch_size
  return [n / s for n, s in zip(examples, seconds)]


def model_rate(model, batch_size: int, min_seconds: float = 3.0,
               params: Params = DEFAULT_PARAMS, seed: int = 0) -> float:
  """(b) Examples per second of the model alone at one batch size."""
  examples, seconds = _time_model(embedder_lib.Embedder(model, batch_size, params),
                                  min_seconds, params, seed)
  return examples / seconds


def peak_rss_mb() -> float:
  """Peak resident memory of this process so far (VmHWM), in MB."""
  try:
    with open('/proc/self/status') as f:
      for line in f:
        if line.startswith('VmHWM:'):
          return int(line.split()[1]) / 1024.0
  except OSError:
    pass
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _rss_mb() -> float:
  """Current resident memory of this process (VmRSS), in MB; 0 if unknown."""
  try:
    with open('/proc/self/status') as f:
      for line in f:
        if line.startswith('VmRSS:'):
          return int(line.split()[1]) / 1024.0
  except OSError:
    pass
  return 0.0


def _reset_peak_rss() -> bool:
  """Resets VmHWM to the current RSS (Linux >= 4.0); False if unsupported."""
  try:
    with open('/proc/self/clear_refs', 'w') as f:
      f.write('5')
    return True
  except OSError:
    return False


def gpu_name() -> str:
  """'CPU', or the GPUs TensorFlow sees (their names, as it reports them)."""
  gpus = tf.config.list_physical_devices('GPU')
  if not gpus:
    return 'CPU'
  names = []
  for gpu in gpus:
    details = tf.config.experimental.get_device_details(gpu)
    names.append(details.get('device_name', gpu.name))
  return f'{len(gpus)} GPU(s): ' + ', '.join(names)


def _load_average() -> str:
  try:
    return ' '.join(f'{x:.2f}' for x in os.getloadavg())
  except OSError:
    return 'n/a'


@dataclasses.dataclass
class BenchmarkResult:
  """Examples per second of the three pipelines, and memory.

  `sequential_rate`, `ceiling_rate` and `extract_rate` are totals over the
  interleaved rounds (examples / seconds); `model_rates` is the batch-size
  sweep that chose the ceiling's batch size.
  """
  num_files: int
  num_examples: int
  num_rounds: int
  sequential_rate: float  # (a)
  model_rates: Dict[int, float]  # (b) sweep: batch size -> rate
  ceiling_batch_size: int
  ceiling_rate: float  # (b) at ceiling_batch_size, during the rounds
  extract_rate: float  # (c)
  extract_batch_size: int
  extract_peak_rss_mb: float  # Peak RSS during (c) (process-wide if no reset).
  extract_start_rss_mb: float  # RSS when (c) first started (model, TF runtime).
  peak_rss_mb: float  # Peak RSS of the whole benchmark process.
  load_before: str
  load_after: str
  device: str = 'CPU'
  frontend: str = 'numpy'
  num_workers: int = 0

  def report(self) -> str:
    lines = [
        f'device: {self.device}; {workers.usable_cores()} usable CPU(s)',
        f'corpus: {self.num_files} files, {self.num_examples} examples; '
        f'{self.num_rounds} interleaved rounds of (a), (b), (c)',
        f'(a) sequential upstream-style: {self.sequential_rate:8.2f} examples/s',
    ]
    for batch_size, rate in sorted(self.model_rates.items()):
      lines.append(f'    model sweep, batch {batch_size:3d}:  {rate:8.2f} examples/s')
    lines += [
        f'(b) model alone, batch {self.ceiling_batch_size:3d}:   '
        f'{self.ceiling_rate:8.2f} examples/s',
        f'(c) extract end to end (batch {self.extract_batch_size}, {self.frontend} '
        f'frontend, {self.num_workers} workers): {self.extract_rate:8.2f} examples/s',
        f'c/a = {self.extract_rate / self.sequential_rate:.2f}   '
        f'c/b = {self.extract_rate / self.ceiling_rate:.2f}',
        f'peak RSS: extract {self.extract_peak_rss_mb:.0f} MB (+'
        f'{self.extract_peak_rss_mb - self.extract_start_rss_mb:.0f} MB over its '
        f'start), whole benchmark {self.peak_rss_mb:.0f} MB',
        f'load average (1, 5, 15 min): before {self.load_before}, after '
        f'{self.load_after}',
    ]
    return '\n'.join(lines)


class _Timer:
  """Sums examples and seconds over several measurements."""

  def __init__(self):
    self.examples = 0
    self.seconds = 0.0

  def add(self, examples: int, seconds: float) -> None:
    self.examples += examples
    self.seconds += seconds

  @property
  def rate(self) -> float:
    return self.examples / self.seconds if self.seconds else 0.0


def run_benchmark(work_dir: str, num_clips: int = 200, seconds: float = 5.0,
                  num_other: Optional[int] = None,
                  batch_sizes: Sequence[int] = (8, 16, 32, 64),
                  extract_batch_size: int = embedder_lib.DEFAULT_BATCH_SIZE,
                  num_workers: Optional[int] = None,
                  num_rounds: int = 4,
                  checkpoint_path: Optional[str] = None,
                  model=None,
                  params: Params = DEFAULT_PARAMS,
                  frontend: str = 'numpy') -> BenchmarkResult:
  """Builds the corpus in `work_dir` and measures (a), (b) and (c).

  The corpus is split into `num_rounds` parts with the same mix of formats;
  each round runs (a) and (c) on its part and (b) for about as long, so a load
  that drifts during the run (a shared machine) weighs on all three alike.
  (c) extracts every part into the same output directory, as a resumed run
  would, paying its pipeline start-up once per round.

  Args:
    work_dir: an empty scratch directory (corpus and extract output go here).
    num_clips: 44.1 kHz clips; `num_other` clips at other rates are added.
    seconds: clip length.
    num_other: see `make_corpus`.
    batch_sizes: candidates for the model ceiling (b), swept once first.
    extract_batch_size: the batch size `extract` uses in (c).
    num_workers: decoding threads of (c); default `extract`'s.
    num_rounds: interleaved rounds (at most the number of files).
    checkpoint_path: weights to load; default random initialisation.
    model: a ready Keras VGGish to use instead (then `checkpoint_path` is
      ignored).
    params: frontend parameters (upstream's by default).
    frontend: the log-mel frontend of (c), 'numpy' or 'tf'.

  Returns:
    A `BenchmarkResult`.
  """
  from vggish import model as model_lib  # pylint: disable=g-import-not-at-top
  if not batch_sizes or min(batch_sizes) < 1:
    raise ValueError(f'batch_sizes must be positive, got {batch_sizes}')
  if num_rounds < 1:
    raise ValueError(f'num_rounds must be >= 1, got {num_rounds}')
  load_before = _load_average()
  paths = make_corpus(os.path.join(work_dir, 'corpus'), num_clips, seconds,
                      num_other)
  num_rounds = min(num_rounds, len(paths))
  device = gpu_name()
  if device != 'CPU':
    # A GPU's best batch is far larger than a CPU's.
    batch_sizes = sorted(set(batch_sizes) | {128, 256, 512})
  if model is None:
    model = model_lib.VGGish(weights=checkpoint_path, trainable=False, params=params)

  sequential = SequentialPipeline(model, params)
  sequential(paths[-1:])  # Compiles resampy's numba kernels, traces the model.
  model_rates = {b: model_rate(model, b, min_seconds=2.0, params=params)
                 for b in batch_sizes}
  logging.info('model sweep: %s', model_rates)
  best = max(model_rates, key=model_rates.get)
  ceiling = embedder_lib.Embedder(model, best, params)
  embedder = embedder_lib.Embedder(model, extract_batch_size, params)
  embedder(np.zeros((1, params.example_window_length, params.num_mel_bins),
                    np.float32))  # Trace once, as a long run would amortise it.

  timers = {name: _Timer() for name in 'abc'}
  output_dir = os.path.join(work_dir, 'output')
  start_rss = _rss_mb()
  reset = _reset_peak_rss()
  extract_peak = 0.0
  for r in range(num_rounds):
    part = paths[r::num_rounds]  # Every format in every part.
    start = time.perf_counter()
    timers['a'].add(sequential(part), time.perf_counter() - start)

    start = time.perf_counter()
    result = extractor.extract(part, output_dir, embedder=embedder, params=params,
                               num_workers=num_workers, show_progress=False,
                               frontend=frontend)
    timers['c'].add(result.num_examples, time.perf_counter() - start)
    extract_peak = max(extract_peak, peak_rss_mb())
    if result.num_failed:
      raise AssertionError(f'extract failed on {result.failures}')

    # About as long as this round's (c), so each round weighs alike.
    timers['b'].add(*_time_model(ceiling, timers['c'].seconds / (r + 1), params))
    logging.info('after round %d/%d: (a) %.2f, (b) %.2f, (c) %.2f examples/s',
                 r + 1, num_rounds, timers['a'].rate, timers['b'].rate,
                 timers['c'].rate)
  if not reset:
    logging.info('cannot reset the peak RSS; the extract figure is the process peak')
  if timers['c'].examples != timers['a'].examples:
    raise AssertionError(
        f'extract gave {timers["c"].examples} examples, the sequential pipeline '
        f'{timers["a"].examples}')
  return BenchmarkResult(
      num_files=len(paths), num_examples=timers['a'].examples,
      num_rounds=num_rounds, sequential_rate=timers['a'].rate,
      model_rates=model_rates, ceiling_batch_size=best,
      ceiling_rate=timers['b'].rate, extract_rate=timers['c'].rate,
      extract_batch_size=extract_batch_size, extract_peak_rss_mb=extract_peak,
      extract_start_rss_mb=start_rss,
      peak_rss_mb=max(extract_peak,
                      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0),
      load_before=load_before, load_after=_load_average(), device=device,
      frontend=frontend,
      num_workers=num_workers or workers.default_num_workers())
