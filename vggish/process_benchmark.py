"""Whole-process timings: start-up by phase, and a corpus job against upstream's way.

What a user waits for is a whole command, imports and shutdown included, so
these jobs each run in a fresh Python process:

- `startup`: the phases of `tools.extract`'s start, timed inside one fresh
  process: `import tensorflow`, the model build with the checkpoint's weights
  (checkpoint read included), the first model call (the trace), and the whole
  one-file `tools.extract --postprocess` command from outside;
- `upstream`: the original release's pipeline as its inference demo runs it,
  one file after another: a TF1 graph of slim layers
  (`vggish.slim_compat.slim_session`), the checkpoint restored by a
  `tf.train.Saver`, per file resampy + the numpy frontend + one
  `session.run`, PCA, one record each;
- `extract`: `python -m tools.extract --postprocess` on the same files.

`python -m tools.benchmark --whole_process` runs them (upstream and extract
alternated, twice) and prints the ratios. This module's command line is the
`upstream` job itself:

  python -m vggish.process_benchmark upstream CHECKPOINT PCA OUTPUT FILE...
  python -m vggish.process_benchmark startup CHECKPOINT
"""

import dataclasses
import os
import subprocess
import sys
import time
from typing import Dict, List, Sequence

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _upstream_job(checkpoint: str, pca: str, output: str, paths: Sequence[str]) -> None:
  """The upstream pipeline over `paths` (run in a fresh process)."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from vggish import benchmark, postprocess, records, slim_compat  # pylint: disable=import-outside-toplevel
  from vggish.params import DEFAULT_PARAMS  # pylint: disable=import-outside-toplevel
  postprocessor = postprocess.Postprocessor(pca)
  with slim_compat.slim_session(checkpoint) as embed, \
       tf.io.TFRecordWriter(output) as writer:
    for path in paths:
      examples = benchmark.upstream_examples(path, DEFAULT_PARAMS)
      if not examples.shape[0]:
        continue
      example = records.make_sequence_example(
          os.path.basename(path), postprocessor.postprocess(embed(examples).astype(np.float32)),
          start_time_seconds=0.0, end_time_seconds=0.0, example_hop_seconds=0.96)
      writer.write(example.SerializeToString())


def _startup_phases(checkpoint: str) -> Dict[str, float]:
  """Seconds of each start-up phase, in this (fresh) process."""
  start = time.perf_counter()
  phases = {}
  import tensorflow  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  del tensorflow
  phases['import tensorflow (with keras)'] = time.perf_counter() - start
  mark = time.perf_counter()
  import numpy as np  # pylint: disable=import-outside-toplevel
  from vggish import embedder  # pylint: disable=import-outside-toplevel
  phases['import vggish'] = time.perf_counter() - mark
  mark = time.perf_counter()
  model = embedder.Embedder.from_checkpoint(checkpoint)
  phases['model build with checkpoint weights'] = time.perf_counter() - mark
  mark = time.perf_counter()
  model(np.zeros((5, 96, 64), np.float32))
  phases['first model call (trace)'] = time.perf_counter() - mark
  return phases


@dataclasses.dataclass
class WholeProcessResult:
  """Seconds of the whole-process jobs (totals over the rounds)."""
  num_files: int
  num_examples: int
  num_rounds: int
  upstream_seconds: float
  extract_seconds: float
  one_file_seconds: List[float]
  phases: Dict[str, float]

  def report(self) -> str:
    per_round = [self.upstream_seconds / self.num_rounds,
                 self.extract_seconds / self.num_rounds]
    lines = [
        f'whole process, {self.num_files} files ({self.num_examples} examples), '
        f'{self.num_rounds} alternated rounds:',
        '  upstream pipeline (TF1 slim, resampy, one run per file): '
        f'{per_round[0]:7.2f} s per run',
        '  tools.extract --postprocess:                          '
        f'{per_round[1]:7.2f} s per run   ({per_round[0] / per_round[1]:.2f}x)',
        'one-file tools.extract --postprocess: '
        + ', '.join(f'{s:.2f} s' for s in self.one_file_seconds)
        + f' (best {min(self.one_file_seconds):.2f} s); its start-up, in a fresh process:',
    ]
    lines += [f'  {name:40s} {seconds:6.2f} s' for name, seconds in self.phases.items()]
    return '\n'.join(lines)


def _run(command: Sequence[str], env: Dict[str, str]) -> float:
  start = time.perf_counter()
  subprocess.run(list(command), check=True, cwd=_REPO, env=env,
                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
  return time.perf_counter() - start


def _count_examples(output_dir: str) -> int:
  from vggish import records  # pylint: disable=import-outside-toplevel
  return sum(examples for name in sorted(os.listdir(output_dir))
             if name.endswith('.tfrecord')
             for _, examples, _ in records.summarize_records(os.path.join(output_dir, name)))


def run_whole_process(work_dir: str, paths: Sequence[str], checkpoint: str, pca: str,
                      num_rounds: int = 2) -> WholeProcessResult:
  """Times the jobs of the module doc on `paths` (fresh processes, alternated)."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=_REPO)
  python = sys.executable
  upstream = extract = 0.0
  for r in range(num_rounds):
    upstream += _run([python, '-m', 'vggish.process_benchmark', 'upstream', checkpoint,
                      pca, os.path.join(work_dir, f'upstream_{r}.tfrecord'), *paths], env)
    extract += _run([python, '-m', 'tools.extract', '--postprocess', '--noprogress',
                     '--checkpoint', checkpoint, '--pca_params', pca,
                     '--output', os.path.join(work_dir, f'extract_{r}'), *paths], env)
  one_file = [_run([python, '-m', 'tools.extract', '--postprocess', '--noprogress',
                    '--checkpoint', checkpoint, '--pca_params', pca,
                    '--output', os.path.join(work_dir, f'one_{r}'), paths[0]], env)
              for r in range(3)]
  out = subprocess.run([python, '-m', 'vggish.process_benchmark', 'startup', checkpoint],
                       check=True, cwd=_REPO, env=env, capture_output=True, text=True)
  phases = {}
  for line in out.stdout.splitlines():
    name, _, seconds = line.rpartition('\t')
    phases[name] = float(seconds)
  return WholeProcessResult(num_files=len(paths),
                            num_examples=_count_examples(os.path.join(work_dir, 'extract_0')),
                            num_rounds=num_rounds, upstream_seconds=upstream,
                            extract_seconds=extract, one_file_seconds=one_file,
                            phases=phases)


def main(argv: Sequence[str]) -> int:
  if len(argv) >= 5 and argv[0] == 'upstream':
    _upstream_job(argv[1], argv[2], argv[3], argv[4:])
    return 0
  if len(argv) == 2 and argv[0] == 'startup':
    for name, seconds in _startup_phases(argv[1]).items():
      print(f'{name}\t{seconds:.3f}')
    return 0
  print(__doc__, file=sys.stderr)
  return 2


if __name__ == '__main__':
  os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')
  sys.exit(main(sys.argv[1:]))
