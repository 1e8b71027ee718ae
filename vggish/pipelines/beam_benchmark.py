"""Whole-job throughput of `tools.extract` against `tools.extract_beam` on local workers.

Each configuration runs as a user runs it, a fresh process per job (imports,
model build, worker start-up and all), on one synthetic corpus
(`vggish.benchmark.make_corpus`), in interleaved rounds so that a drifting
load weighs on all alike:

- `extract`: `python -m tools.extract` (decoding threads, one model);
- `beam in_memory`: the Beam pipeline in one process (FnApiRunner in memory);
- `beam N workers`: `--direct_running_mode multi_processing
  --direct_num_workers N`, each worker process with its own model.

A one-file job of `extract` and of each Beam configuration measures its fixed
cost (start-up and shutdown), so the report also gives the rate of the work
itself: examples / (job seconds - one-file job seconds).
"""

import dataclasses
import logging
import os
import subprocess
import sys
import time
from typing import List, Optional, Sequence, Tuple

from vggish import manifest as manifest_lib
from vggish.params import DEFAULT_BATCH_SIZE

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclasses.dataclass
class Job:
  """One configuration's totals over the rounds."""
  name: str
  command: Tuple[str, ...]
  examples: int = 0
  seconds: float = 0.0
  fixed_seconds: float = 0.0  # Wall time of the one-file job.
  runs: int = 0

  @property
  def rate(self) -> float:
    return self.examples / self.seconds if self.seconds else 0.0

  @property
  def work_rate(self) -> float:
    work = self.seconds - self.runs * self.fixed_seconds
    return self.examples / work if work > 0 else float('nan')


@dataclasses.dataclass
class BeamBenchmarkResult:
  num_files: int
  num_examples: int
  num_rounds: int
  jobs: List[Job]

  def report(self) -> str:
    base = self.jobs[0]
    lines = [f'corpus: {self.num_files} files, {self.num_examples} examples; '
             f'{self.num_rounds} interleaved rounds, a fresh process per job; '
             f'{os.cpu_count()} CPUs',
             f'{"job":24s} {"examples/s":>10s} {"vs extract":>10s} '
             f'{"1-file job":>10s} {"work only":>10s}']
    for job in self.jobs:
      lines.append(f'{job.name:24s} {job.rate:10.1f} {job.rate / base.rate:10.2f} '
                   f'{job.fixed_seconds:9.1f}s {job.work_rate:10.1f}')
    by_name = {job.name: job for job in self.jobs}
    one, two = by_name.get('beam 1 worker'), by_name.get('beam 2 workers')
    if one and two:
      lines.append(f'Beam scaling 1 -> 2 workers: {two.rate / one.rate:.2f}x whole '
                   f'job, {two.work_rate / one.work_rate:.2f}x work only')
    lines.append('"work only": examples / (job time - its one-file job time), the '
                 'rate a long job approaches')
    return '\n'.join(lines)


def _commands(checkpoint: str, batch_size: int,
              worker_counts: Sequence[int]) -> List[Tuple[str, Tuple[str, ...]]]:
  common = ('--checkpoint', checkpoint, '--batch_size', str(batch_size),
            '--short_clip_policy', 'pad')
  beam = (sys.executable, '-m', 'tools.extract_beam') + common
  jobs = [('extract', (sys.executable, '-m', 'tools.extract', '--noprogress') + common),
          ('beam in_memory', beam + ('--direct_running_mode=in_memory',
                                     '--direct_num_workers=1'))]
  for count in worker_counts:
    jobs.append((f'beam {count} worker{"s" if count > 1 else ""}',
                 beam + ('--direct_running_mode=multi_processing',
                         f'--direct_num_workers={count}')))
  return jobs


def _run(command: Sequence[str], inputs: Sequence[str], output: str) -> Tuple[int, float]:
  """Runs one job into a new `output`; returns (examples written, wall seconds)."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', OPENBLAS_NUM_THREADS='1')
  start = time.perf_counter()
  proc = subprocess.run(list(command) + ['--output', output] + list(inputs),
                        cwd=_REPO, env=env,
                        capture_output=True, text=True)
  seconds = time.perf_counter() - start
  if proc.returncode != 0:
    raise RuntimeError(f'{" ".join(command[:3])} failed ({proc.returncode}): '
                       f'{proc.stderr.strip().splitlines()[-1:]}')
  rows = manifest_lib.read_rows(os.path.join(output, manifest_lib.MANIFEST_NAME))
  return sum(row.examples for row in rows if row.status == manifest_lib.OK), seconds


def _random_weights(path: str) -> str:
  from vggish import model as model_lib  # pylint: disable=import-outside-toplevel
  model_lib.VGGish(weights=None, trainable=False).save_weights(path)
  return path


def run_beam_benchmark(work_dir: str, num_clips: int = 300, seconds: float = 5.0,
                       num_other: Optional[int] = None, num_rounds: int = 2,
                       batch_size: int = DEFAULT_BATCH_SIZE, worker_counts: Sequence[int] = (1, 2),
                       checkpoint_path: Optional[str] = None) -> BeamBenchmarkResult:
  """Builds the corpus in `work_dir` and times every configuration.

  Args:
    work_dir: an empty scratch directory.
    num_clips, seconds, num_other: the corpus (see `vggish.benchmark.make_corpus`).
    num_rounds: interleaved rounds; each runs every job on the whole corpus.
    batch_size: examples per model call, for every job.
    worker_counts: the multi_processing worker counts to time.
    checkpoint_path: weights (default: random ones, saved in `work_dir`;
      the weights do not change the cost).
  """
  from vggish import benchmark  # pylint: disable=import-outside-toplevel
  if num_rounds < 1:
    raise ValueError(f'num_rounds must be >= 1, got {num_rounds}')
  corpus_dir = os.path.join(work_dir, 'corpus')
  paths = benchmark.make_corpus(corpus_dir, num_clips, seconds, num_other)
  checkpoint = checkpoint_path or _random_weights(
      os.path.join(work_dir, 'random.weights.h5'))
  jobs = [Job(name, command)
          for name, command in _commands(checkpoint, batch_size, worker_counts)]
  outputs = 0

  def run(job: Job, inputs):
    nonlocal outputs
    outputs += 1
    return _run(job.command, inputs, os.path.join(work_dir, f'out-{outputs}'))

  for job in jobs:
    _, job.fixed_seconds = run(job, paths[:1])
    logging.info('%s: one-file job %.1f s', job.name, job.fixed_seconds)
  total = None
  for r in range(num_rounds):
    for job in jobs:
      examples, wall = run(job, [corpus_dir])
      if total is not None and examples != total:
        raise AssertionError(f'{job.name} wrote {examples} examples, not {total}')
      total = examples
      job.examples += examples
      job.seconds += wall
      job.runs += 1
      logging.info('round %d/%d: %s %.1f s (%.1f examples/s)', r + 1, num_rounds,
                   job.name, wall, examples / wall)
  return BeamBenchmarkResult(num_files=len(paths), num_examples=total or 0,
                             num_rounds=num_rounds, jobs=jobs)
