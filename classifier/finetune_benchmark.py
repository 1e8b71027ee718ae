"""Fine-tuning speed and memory, streamed from the example store.

`python -m tools.benchmark --finetune` runs this. For each corpus size it
writes that many generated tone/noise clips (`classifier.synthetic`), and for
each `freeze` ('conv': the fully connected layers and the head train;
'none': the whole network) fine-tunes VGGish from the given checkpoint in a
fresh process (spawned, so that its peak resident memory is its own and
nothing is shared between sizes):

- the first process of a size builds the example store (files/s reported);
  the others reuse it;
- `classifier.training.fit` runs `epochs` epochs on the store; the training
  rate is the examples of the epochs after the first (which also traces the
  step) over their time. Validation runs on a few clips only, so the epoch
  time is nearly all training.
- the process's peak RSS (VmHWM) at the end.

Examples stream from disk, so the peak RSS should not grow with the corpus:
the report sets the growth between the smallest and largest size against
what their examples would take in memory.
"""

import dataclasses
import multiprocessing
import os
from typing import List, Optional, Sequence

import numpy as np

from vggish import benchmark as benchmark_lib

FREEZES = ('conv', 'none')
# Validation clips per run: enough for a mAP, too few to cost time.
_VALIDATION_CLIPS = 8


@dataclasses.dataclass(frozen=True)
class RunResult:
  """One fine-tuning process.

  Attributes:
    num_clips: corpus size.
    freeze: the frozen part of VGGish.
    store_files_per_second: rate of the store build (None: reused).
    store_megabytes: the store's shards on disk (the examples' size).
    train_examples: examples trained on in the timed epochs.
    train_seconds: their wall time.
    peak_rss_mb: the process's peak resident memory.
  """
  num_clips: int
  freeze: str
  store_files_per_second: Optional[float]
  store_megabytes: float
  train_examples: int
  train_seconds: float
  peak_rss_mb: float

  @property
  def examples_per_second(self) -> float:
    return self.train_examples / self.train_seconds


@dataclasses.dataclass
class FinetuneBenchmark:
  """All runs, and what they were run with."""
  runs: List[RunResult]
  device: str
  seconds: float
  batch_size: int
  max_examples: int

  def report(self) -> str:
    lines = [f'fine-tuning from the example store on {self.device}: '
             f'{self.seconds:g} s clips, batch {self.batch_size}, '
             f'max_examples {self.max_examples}',
             f'{"clips":>6} {"freeze":>6} {"train examples/s":>17} '
             f'{"peak RSS MB":>12} {"store MB":>9} {"store files/s":>14}']
    for run in self.runs:
      build = ('reused' if run.store_files_per_second is None else
               f'{run.store_files_per_second:.1f}')
      lines.append(f'{run.num_clips:>6} {run.freeze:>6} '
                   f'{run.examples_per_second:>17.1f} '
                   f'{run.peak_rss_mb:>12.0f} {run.store_megabytes:>9.1f} '
                   f'{build:>14}')
    sizes = sorted({run.num_clips for run in self.runs})
    if len(sizes) > 1:
      for freeze in dict.fromkeys(run.freeze for run in self.runs):
        small, large = (next(r for r in self.runs if r.num_clips == n and
                             r.freeze == freeze) for n in (sizes[0], sizes[-1]))
        lines.append(
            f'freeze {freeze}: peak RSS {large.peak_rss_mb - small.peak_rss_mb:+.0f} MB '
            f'from {sizes[0]} to {sizes[-1]} clips; in memory their examples '
            f'would add {large.store_megabytes - small.store_megabytes:.0f} MB')
    return '\n'.join(lines)


def measure_run(corpus_dir: str, store_dir: str, freeze: str,
                checkpoint_path: str, batch_size: int, max_examples: int,
                epochs: int) -> RunResult:
  """One run (see the module doc); call it in a fresh process."""
  # Imported here: the parent process needs none of TensorFlow.
  import keras  # pylint: disable=g-import-not-at-top
  from classifier import data as data_lib  # pylint: disable=g-import-not-at-top
  from classifier import example_store  # pylint: disable=g-import-not-at-top
  from classifier import finetune  # pylint: disable=g-import-not-at-top
  from classifier import training  # pylint: disable=g-import-not-at-top
  from vggish import labels as labels_lib  # pylint: disable=g-import-not-at-top
  from vggish.params import DEFAULT_PARAMS  # pylint: disable=g-import-not-at-top

  label_map = labels_lib.read_classes(os.path.join(corpus_dir, 'labels.csv'))
  params = dataclasses.replace(DEFAULT_PARAMS, short_clip_policy='pad')
  ids, paths, label_lists = data_lib.read_audio_csv(
      os.path.join(corpus_dir, 'train.csv'), corpus_dir, label_map)
  built = example_store.build(store_dir, ids, paths, label_lists, label_map,
                              params, show_progress=False)
  store = built.store
  files_per_second = (built.num_computed / built.seconds
                      if built.num_computed else None)
  validation = np.arange(len(store)) < min(_VALIDATION_CLIPS, len(store) // 2)
  train_set, val_set = store.subset(~validation), store.subset(validation)

  keras.utils.set_random_seed(0)
  model, backbone = finetune.build_model(
      len(label_map), checkpoint_path, head='mean_mlp', freeze=freeze,
      params=params)
  options = training.TrainOptions(
      epochs=epochs, batch_size=batch_size, learning_rate=1e-3,
      backbone_learning_rate=1e-4, max_examples=max_examples,
      patience=epochs, verbose=False)
  result = training.fit(model, train_set, val_set, 'examples', options,
                        backbone_variables=backbone.trainable_variables)
  timed = result.history[1:] or result.history
  per_epoch = int(np.minimum(train_set.num_examples, max_examples).sum())
  shards = [os.path.join(store_dir, name) for name in os.listdir(store_dir)
            if name.endswith(example_store.SHARD_SUFFIX)]
  return RunResult(
      num_clips=len(store), freeze=freeze,
      store_files_per_second=files_per_second,
      store_megabytes=sum(os.path.getsize(p) for p in shards) / 1e6,
      train_examples=per_epoch * len(timed),
      train_seconds=sum(record['seconds'] for record in timed),
      peak_rss_mb=benchmark_lib.peak_rss_mb())


def run_finetune_benchmark(work_dir: str, checkpoint_path: str,
                           corpus_sizes: Sequence[int] = (100, 400),
                           freezes: Sequence[str] = FREEZES,
                           seconds: float = 10.0, batch_size: int = 32,
                           max_examples: int = 10,
                           epochs: int = 2) -> FinetuneBenchmark:
  """Runs every (corpus size, freeze) in its own process; see the module doc.

  Args:
    work_dir: where the corpora and stores are written.
    checkpoint_path: the VGGish weights to fine-tune (the cost does not
      depend on their values).
    corpus_sizes: clips per corpus, each >= 2 * 8 (validation takes 8).
    freezes: `classifier.finetune` freeze choices to time.
    seconds: length of each clip (one example per 0.96 s).
    batch_size: clips per step.
    max_examples: examples per training clip, at most.
    epochs: >= 2; the first is not timed.

  Returns:
    A FinetuneBenchmark.

  Raises:
    ValueError: bad sizes or epochs.
  """
  from classifier import synthetic  # pylint: disable=g-import-not-at-top
  if epochs < 2:
    raise ValueError(f'epochs must be >= 2 (the first is not timed), got {epochs}')
  if min(corpus_sizes) < 2 * _VALIDATION_CLIPS:
    raise ValueError(f'corpus sizes must be >= {2 * _VALIDATION_CLIPS}, got '
                     f'{list(corpus_sizes)}')
  runs = []
  context = multiprocessing.get_context('spawn')  # Never fork TensorFlow.
  for num_clips in corpus_sizes:
    corpus_dir = os.path.join(work_dir, f'corpus_{num_clips}')
    synthetic.tone_noise_task(corpus_dir, num_clips, seed=0,
                              csv_name='train.csv', seconds=seconds)
    store_dir = os.path.join(work_dir, f'store_{num_clips}')
    for freeze in freezes:
      with context.Pool(1) as pool:
        runs.append(pool.apply(measure_run, (
            corpus_dir, store_dir, freeze, os.fspath(checkpoint_path),
            batch_size, max_examples, epochs)))
  return FinetuneBenchmark(runs=runs, device=_device(), seconds=seconds,
                           batch_size=batch_size, max_examples=max_examples)


def _device() -> str:
  """'CPU' or the GPUs' names, as TensorFlow reports them."""
  from vggish import benchmark  # pylint: disable=g-import-not-at-top
  return benchmark.gpu_name()
