"""Frontend workers: the files ahead of the model, decoded in the background.

`tools.extract` reads, resamples and turns into log-mel examples the next
files (`vggish.pipelines.steps.prepare_input`) in a pool of workers while the
main thread runs the model. On a CPU the model's own thread pool already
keeps every core busy, and frontend work at the same priority takes a core
away in the middle of the model's parallel ops, which then wait for their
slowest thread: measured on a 2-core machine, a frontend thread that never
rests cut the model's rate by 40 % at normal priority and by 10 % at nice 19.
So the workers run at background priority (nice 19, Linux), and when the
model waits for input they get the whole machine, so nothing starves. In
`tools.extract` itself, where the workers rest once `prefetch` files are
ready, long runs measured the same rate at nice 0 and 19, with 1 or 2 workers
(README "Performance": what limits a 2-core machine is the frontend's CPU
time, not its scheduling).

Threads suffice on a small machine (numpy, libsndfile and the resampler's
matrix products release the GIL). With a GPU the model no longer needs the
cores, and the frontend must keep up with it on all of them: past a few
threads the Python glue of each file (the GIL) limits threads, so a larger
pool runs in worker processes (`kind='process'`), each with one thread for
its matrix products.
"""

import concurrent.futures
import logging
import multiprocessing
import os
import signal
import sys
import threading

# Lowest CFS weight short of SCHED_IDLE: background work that still gets a
# share when other processes, not our model, fill the machine.
BACKGROUND_NICE = 19
THREAD = 'thread'
PROCESS = 'process'
AUTO = 'auto'
KINDS = (AUTO, THREAD, PROCESS)
# Above this many workers `auto` uses processes (see the module doc).
MAX_AUTO_THREADS = 4


def usable_cores() -> int:
  """Cores this process may run on (`taskset`, container CPU sets), at least 1."""
  try:
    return max(1, len(os.sched_getaffinity(0)))
  except (AttributeError, OSError):  # Not Linux.
    return max(1, os.cpu_count() or 1)


def default_num_workers() -> int:
  """One worker per usable core: at background priority they only use what the model leaves."""
  return usable_cores()


def resolve_kind(kind: str, num_workers: int) -> str:
  """`thread` or `process` for a requested kind ('auto' decides by pool size)."""
  if kind not in KINDS:
    raise ValueError(f'worker kind must be one of {", ".join(KINDS)}, got {kind!r}')
  if kind == AUTO:
    return PROCESS if num_workers > MAX_AUTO_THREADS else THREAD
  return kind


def lower_priority() -> None:
  """Puts the calling thread at background priority (nice 19); no-op off Linux.

  On Linux a thread is a task of its own, so this leaves the model's threads
  (and the rest of the process) as they were. Elsewhere `setpriority` would
  change the whole process, so nothing is done.
  """
  if not sys.platform.startswith('linux'):
    return
  try:
    os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)
  except (OSError, AttributeError) as e:  # A sandbox may refuse; still correct.
    logging.debug('could not lower the priority of a frontend worker: %s', e)


def _init_process() -> None:
  """A worker process: background priority; Ctrl-C is the parent's to handle."""
  signal.signal(signal.SIGINT, signal.SIG_IGN)
  lower_priority()


def make_pool(num_workers: int, kind: str = AUTO) -> concurrent.futures.Executor:
  """An executor of `num_workers` frontend workers at background priority.

  Args:
    num_workers: >= 1.
    kind: 'thread', 'process' or 'auto' (see `resolve_kind`).

  Returns:
    A `concurrent.futures.Executor` (use it as a context manager). Process
    workers are started with `spawn` (never fork a process that runs
    TensorFlow) and each uses one OpenBLAS thread unless the environment says
    otherwise; tasks and results must be picklable.
  """
  if num_workers < 1:
    raise ValueError(f'num_workers must be >= 1, got {num_workers}')
  if resolve_kind(kind, num_workers) == THREAD:
    return concurrent.futures.ThreadPoolExecutor(
        max_workers=num_workers, thread_name_prefix='vggish-frontend',
        initializer=lower_priority)
  # Inherited by the spawned workers, read by numpy's OpenBLAS when it loads.
  os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')
  return concurrent.futures.ProcessPoolExecutor(
      max_workers=num_workers, mp_context=multiprocessing.get_context('spawn'),
      initializer=_init_process)

