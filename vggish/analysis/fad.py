"""Fréchet Audio Distance (Kilgour et al., 2019) of audio files, as the reference computes it.

Each set (the background, e.g. real recordings, and the eval set, e.g. a
model's outputs) becomes one Gaussian (`vggish.analysis.fad_stats.Stats`):
the mean and covariance of the raw VGGish fc2 embeddings (no PCA, no
quantization) of all its files' examples, the audio read and windowed as
the reference does (`vggish.analysis.fad_input`). The FAD is their Fréchet
distance (`vggish.analysis.fad_stats.frechet_distance`).

Files -> examples (background reading workers) -> embeddings (one
`vggish.embedder.Embedder`, batches packed across files) -> statistics:
`embed_set`. `fad()` does it for both sets from audio files, embedding
arrays, `Stats` or statistics files (.npz, written atomically and used as a
cache: a file computed from other audio, another checkpoint or another mode
is recomputed, never silently used). `tools.fad` is its command line.
"""

import collections
import csv
import dataclasses
import glob
import hashlib
import io
import logging
import os
from typing import Callable, List, Optional, Sequence, Union

import numpy as np

from vggish import audio_io
from vggish import corpus
from vggish import extras
from vggish import files as files_lib
from vggish import progress as progress_lib
from vggish import workers
from vggish.analysis import fad_input
from vggish.analysis import fad_stats
from vggish.analysis.fad_stats import FadError, Stats
from vggish.params import DEFAULT_BATCH_SIZE

REFERENCE = fad_input.REFERENCE
RESAMPLE = fad_input.RESAMPLE

PER_FILE_FIELDS = ('file', 'embeddings', 'seconds', 'fad', 'note')
_FEW_EMBEDDINGS = 'fewer than 2 embeddings (1.5 s of audio): no covariance, no FAD'


# --- Audio files -> statistics.


@dataclasses.dataclass
class FileResult:
  """One audio file of a set.

  Attributes:
    path: the file.
    embeddings: the examples (windows) it gave.
    seconds: audio read.
    fad: its own FAD against the background (`per_file`), else None.
    error: why it was skipped (not read, shorter than 1 s), else None.
    note: why a file that was used has no FAD of its own, else None.
  """
  path: str
  embeddings: int = 0
  seconds: float = 0.0
  fad: Optional[float] = None
  error: Optional[str] = None
  note: Optional[str] = None


@dataclasses.dataclass
class SetResult:
  """A set's statistics and, when its audio was embedded, its files.

  Attributes:
    stats: the set's `Stats`.
    files: every input file with what became of it (empty when the
      statistics were given or read from a file).
    stats_path: the statistics file read or written, if any.
    reused: True when `stats` were read from `stats_path` rather than computed.
  """
  stats: Stats
  files: List[FileResult] = dataclasses.field(default_factory=list)
  stats_path: Optional[str] = None
  reused: bool = False

  @property
  def skipped(self) -> List[FileResult]:
    return [f for f in self.files if f.error is not None]


@dataclasses.dataclass
class FadResult:
  """`fad()`'s answer: the distance and both sets."""
  fad: float
  background: SetResult
  eval: SetResult

  def summary(self) -> dict:
    """The JSON object of `tools.fad --json`."""
    skipped = [{'set': name, 'file': f.path, 'reason': f.error}
               for name, side in (('background', self.background), ('eval', self.eval))
               for f in side.skipped]
    return {
        'fad': self.fad,
        'background_embeddings': self.background.stats.count,
        'eval_embeddings': self.eval.stats.count,
        'background_files': self.background.stats.num_files,
        'eval_files': self.eval.stats.num_files,
        'mode': self.eval.stats.mode or self.background.stats.mode,
        'background_stats': self.background.stats_path,
        'eval_stats': self.eval.stats_path,
        'skipped': skipped,
    }


def _read_list(path: str) -> List[str]:
  """The paths of a list file: one per line, relative to the list's folder; # comments."""
  try:
    with open(path, encoding='utf-8') as f:
      lines = f.read().splitlines()
  except UnicodeDecodeError as e:
    raise ValueError(f'{path}: neither audio nor a text list of audio files ({e})') from e
  base = os.path.dirname(path)
  entries = []
  for line in lines:
    line = line.strip()
    if line and not line.startswith('#'):
      entries.append(line if os.path.isabs(line) else os.path.join(base, line))
  if not entries:
    raise ValueError(f'{path}: the list of audio files is empty')
  return entries


def list_inputs(args: Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]
                ) -> List[corpus.AudioInput]:
  """The audio files of a set: files, folders (recursive), globs, or list files.

  A list file is any file that is not audio by its extension (`.txt`,
  `.lst`, `.csv`, ...): one path per line (a file, folder or glob; relative
  to the list's folder), blank lines and `#` comments ignored, as the
  reference's input lists. A file reached twice is used once; a missing one
  is an input with `error` set (skipped and reported).

  Raises:
    ValueError: nothing given, a glob matches nothing, a list is empty, or
      no input exists.
  """
  if isinstance(args, (str, os.PathLike)):
    args = [args]
  extensions = corpus.normalized_extensions(audio_io.AUDIO_EXTENSIONS)
  expanded = []
  for arg in args:
    arg = os.fspath(arg)
    if os.path.isfile(arg) and not corpus.has_audio_extension(arg, extensions):
      expanded.extend(_read_list(arg))
    else:
      expanded.append(arg)
  if not expanded:
    raise ValueError('no audio given: name files, folders, globs or list files')
  found, seen = [], set()
  for arg in expanded:
    # One argument at a time: ids (relative paths) may repeat across folders.
    if os.path.isdir(arg) or (corpus.is_glob(arg) and not os.path.lexists(arg)):
      items = corpus.discover_inputs([arg])
    else:  # A file, or a missing one: that input's failure, not the command's.
      items = [corpus.AudioInput(video_id=arg, path=arg, error=audio_io.why_not_a_file(arg))]
    for item in items:
      real = os.path.realpath(item.path)
      if real not in seen:
        seen.add(real)
        found.append(item)
  corpus.check_some_exist(found)
  if not found:
    raise ValueError(f'no audio files in {", ".join(expanded)} (looked for '
                     f'{", ".join(sorted(extensions))})')
  return found


def inputs_digest(inputs: Sequence[corpus.AudioInput]) -> str:
  """SHA-256 of the inputs' absolute paths, sizes and modification times (order-free)."""
  lines = []
  for item in inputs:
    path = os.path.abspath(item.path)
    try:
      status = os.stat(path)
      lines.append(f'{path}\t{status.st_size}\t{status.st_mtime_ns}')
    except OSError:
      lines.append(f'{path}\tmissing')
  return hashlib.sha256('\n'.join(sorted(lines)).encode('utf-8')).hexdigest()


def checkpoint_sha256(path) -> str:
  """SHA-256 of a checkpoint's file(s) (a TF2 prefix: its .index and .data files), '' if none."""
  from vggish import download  # pylint: disable=import-outside-toplevel
  path = os.fspath(path)
  if os.path.isfile(path):
    return download.file_sha256(path)
  parts = sorted(p for p in glob.glob(glob.escape(path) + '.*') if os.path.isfile(p))
  if not parts:
    return ''
  digest = hashlib.sha256()
  for part in parts:
    digest.update(os.path.basename(part).encode('utf-8'))
    digest.update(download.file_sha256(part).encode('ascii'))
  return digest.hexdigest()


def _prepare(path: str, mode: str):
  """Worker: (examples, seconds, None) or (None, 0, reason)."""
  try:
    examples, seconds = fad_input.file_examples(path, mode)
  except (ValueError, OSError) as e:
    return None, 0.0, ' '.join(str(e).split())
  except MemoryError:
    return None, 0.0, f'{path}: too long to hold in memory'
  if examples.shape[0] == 0:
    samples = int(round(seconds * fad_input.SAMPLE_RATE))
    return None, seconds, (f'{path}: {seconds:.3f} s ({samples} samples) is shorter than '
                           f'one 1 s window ({fad_input.WINDOW_SAMPLES} samples): no embedding')
  return examples, seconds, None


def embed_set(inputs: Sequence[corpus.AudioInput], embedder, mode: str = REFERENCE, *,
              against: Optional[Stats] = None, num_workers: Optional[int] = None,
              show_progress: bool = True, desc: str = '', **info) -> SetResult:
  """Embeds a set's audio files in batches across files; returns its statistics.

  Files are read and turned into examples by background workers while the
  model runs; a file that cannot be used is skipped with its reason (logged
  and in `SetResult.skipped`).

  Args:
    inputs: from `list_inputs`.
    embedder: a `vggish.embedder.Embedder` (raw fc2 embeddings).
    mode: 'reference' or 'resample' (`vggish.analysis.fad_input`).
    against: background `Stats`: each file gets its own FAD against them.
    num_workers: reading workers (default one per core).
    show_progress: files, examples/s and ETA on stderr.
    desc: the progress label ('background', 'eval').
    **info: `Stats` fields to record (checkpoint_sha256, inputs_sha256).

  Raises:
    FadError: no file gave two embeddings.
  """
  from vggish.embedder import BatchPacker  # pylint: disable=import-outside-toplevel
  fad_input.check_mode(mode)
  if mode == REFERENCE:  # Once, rather than as every file's failure.
    extras.require('scipy.io.wavfile', 'fad', 'the Fréchet Audio Distance')
  num_workers = num_workers or workers.default_num_workers()
  prefetch = 2 * num_workers + 2
  results = [FileResult(path=item.path, error=item.error) for item in inputs]
  accumulator = fad_stats.StatsAccumulator()
  packer = BatchPacker(embedder)
  num_files = 0

  def finish(index: int, embeddings: np.ndarray) -> None:
    nonlocal num_files
    result = results[index]
    accumulator.add(embeddings)
    num_files += 1
    if against is not None:
      if embeddings.shape[0] < 2:
        result.note = _FEW_EMBEDDINGS
      else:
        try:
          result.fad = fad_stats.distance(fad_stats.compute_stats(embeddings), against)
        except FadError as e:
          result.note = str(e)
    bar.update(1, examples=result.embeddings, audio_seconds=result.seconds)

  todo = [i for i, item in enumerate(inputs) if item.error is None]
  for item in inputs:
    if item.error is not None:
      logging.warning('skipped: %s', item.error)
  with progress_lib.Progress(total=len(todo), unit='files', desc=desc,
                             enabled=show_progress) as bar, \
      workers.make_pool(num_workers, workers.THREAD) as pool:
    pending = iter(todo)
    queue = collections.deque()

    def refill() -> None:
      while len(queue) < prefetch:
        index = next(pending, None)
        if index is None:
          return
        queue.append((index, pool.submit(_prepare, inputs[index].path, mode)))

    refill()
    while queue:
      index, future = queue.popleft()
      refill()
      examples, seconds, error = future.result()
      results[index].seconds = seconds
      if error is not None:
        results[index].error = error
        logging.warning('skipped: %s', error)
        bar.update(1)
        continue
      results[index].embeddings = examples.shape[0]
      for done, embeddings in packer.add(index, examples):
        finish(done, embeddings)
    for done, embeddings in packer.flush():
      finish(done, embeddings)
  if num_files == 0:
    shown = '; '.join(r.error for r in results[:3] if r.error)
    raise FadError(f'{desc or "the set"}: none of the {len(results)} file(s) gave an '
                   f'embedding: {shown}')
  try:
    stats = accumulator.stats(mode=mode, num_files=num_files, **info)
  except FadError as e:
    raise FadError(f'{desc or "the set"}: {e}') from e
  return SetResult(stats=stats, files=results)


def write_per_file(results: Sequence[FileResult], path) -> None:
  """Writes each eval file's FAD as CSV (file, embeddings, seconds, fad, note), atomically."""
  buffer = io.StringIO()
  writer = csv.writer(buffer, lineterminator='\n')
  writer.writerow(PER_FILE_FIELDS)
  for r in results:
    note = r.error or r.note or ''
    writer.writerow([r.path, r.embeddings, f'{r.seconds:.3f}',
                     '' if r.fad is None else repr(r.fad), note])
  data = buffer.getvalue().encode('utf-8')
  files_lib.write_atomically(path, lambda f: f.write(data), what='the per-file FADs')


# --- Both sets -> the distance.


def _stale_reason(stats: Stats, mode: str, checkpoint: str, inputs: str) -> Optional[str]:
  """Why cached statistics do not fit this run, or None when they do."""
  if stats.mode and stats.mode != mode:
    return f'computed in {stats.mode} mode, this run is in {mode} mode'
  if stats.checkpoint_sha256 and checkpoint and stats.checkpoint_sha256 != checkpoint:
    return 'computed with another checkpoint'
  if inputs and stats.inputs_sha256 != inputs:
    return 'computed from other audio files (or the files changed since)'
  return None


def _plan(name: str, given, stats_path, mode: str, per_file: bool,
          checkpoint_sha: Callable[[], str]):
  """('ready', SetResult) for a set known without embedding, else ('embed', (inputs, stats_path))."""
  if stats_path is not None:
    stats_path = os.fspath(stats_path)
  if given is None and stats_path is None:
    raise ValueError(f'give the {name} set: audio files or folders, or a statistics file')
  if isinstance(given, (Stats, np.ndarray)):
    stats = given if isinstance(given, Stats) else fad_stats.compute_stats(given)
    return 'ready', SetResult(stats=stats)
  inputs = None if given is None else list_inputs(given)
  cached = None
  if stats_path is not None and os.path.exists(stats_path):
    cached = fad_stats.load_stats(stats_path)
    if inputs is not None and not cached.inputs_sha256:
      raise ValueError(f'{name} statistics {stats_path} record no audio files (the reference '
                       'implementation\'s, or computed from embeddings), so they cannot be '
                       f'checked against the {name} audio or rewritten: give one or the other')
    digest = inputs_digest(inputs) if inputs is not None else ''
    stale = _stale_reason(cached, mode, checkpoint_sha() if cached.checkpoint_sha256 else '',
                          digest)
    if stale and inputs is None:
      raise ValueError(f'{name} statistics {stats_path} do not fit this run ({stale}); give '
                       f'the {name} audio to recompute them, or delete the file')
    if stale:
      logging.warning('%s statistics %s: %s; recomputing them', name, stats_path, stale)
      cached = None
    elif name == 'eval' and per_file:
      cached = None  # Embedded again for the per-file FADs (and the cache rewritten).
    elif inputs is not None:
      logging.info('%s: reusing statistics %s (%d embeddings of %d files)', name,
                   stats_path, cached.count, cached.num_files)
  elif stats_path is not None and inputs is None:
    raise FileNotFoundError(f'{name} statistics {stats_path!r}: no such file; give the '
                            f'{name} audio to compute them')
  if cached is not None:
    return 'ready', SetResult(stats=cached, stats_path=stats_path, reused=True)
  if stats_path is not None:
    files_lib.check_output_file(stats_path, f'the {name} statistics')
  return 'embed', (inputs, stats_path)


def fad(background=None, eval=None, *,  # pylint: disable=redefined-builtin
        background_stats=None, eval_stats=None, checkpoint_path=None, mode: str = REFERENCE,
        per_file: bool = False, batch_size: int = DEFAULT_BATCH_SIZE,
        num_workers: Optional[int] = None, show_progress: bool = True,
        embedder=None) -> FadResult:
  """The FAD of an eval set against a background set.

  Each set is given as audio (a path or a list of files, folders, globs and
  list files; see `list_inputs`), as embeddings [n, d], as `Stats`, or only
  by its statistics file. A statistics file (`background_stats`,
  `eval_stats`) is a cache: read when it fits the run (same mode,
  checkpoint, and audio files when they are given), else (re)computed and
  written.

  Args:
    background, eval: the sets (None: read from the statistics file).
    background_stats, eval_stats: .npz statistics files, or None.
    checkpoint_path: VGGish checkpoint (default: the workspace's).
    mode: 'reference' (the reference's conventions) or 'resample' (any rate
      and channel count; not comparable with published FADs).
    per_file: also give each eval file its own FAD against the background
      (`FadResult.eval.files[i].fad`); the eval audio is then embedded even
      when its statistics file fits.
    batch_size: examples per model call.
    num_workers: reading workers.
    show_progress: progress on stderr.
    embedder: a `vggish.embedder.Embedder` to use instead of loading
      `checkpoint_path` (many FADs in one process, e.g. every epoch of a
      generative model); `checkpoint_path` still names its checkpoint for
      the statistics files.

  Raises:
    ValueError: a set is missing, a path does not exist, a statistics file
      does not fit and no audio is given to recompute it.
    FadError: a set gives fewer than 2 embeddings, or the distance fails.
    vggish.workspace.MissingModelFileError: no checkpoint.
  """
  from vggish import workspace  # pylint: disable=import-outside-toplevel
  fad_input.check_mode(mode)
  if per_file and (eval is None or isinstance(eval, (Stats, np.ndarray))):
    raise ValueError('per-file FADs need the eval audio files, not only their statistics')
  checkpoint = os.fspath(checkpoint_path or workspace.default_checkpoint_path())
  checkpoint_digest = None

  def checkpoint_sha() -> str:
    nonlocal checkpoint_digest
    if checkpoint_digest is None:
      checkpoint_digest = checkpoint_sha256(checkpoint)
    return checkpoint_digest

  def get_embedder():
    nonlocal embedder
    if embedder is None:
      from vggish.embedder import Embedder  # pylint: disable=import-outside-toplevel
      embedder = Embedder.from_checkpoint(checkpoint_path, batch_size=batch_size)
    return embedder

  plans = {name: _plan(name, given, stats_path, mode, per_file, checkpoint_sha)
           for name, given, stats_path in (('background', background, background_stats),
                                           ('eval', eval, eval_stats))}
  sides = {}
  for name in ('background', 'eval'):
    kind, plan = plans[name]
    if kind == 'ready':
      sides[name] = plan
      continue
    inputs, stats_path = plan
    logging.info('%s: embedding %d file(s) (%s mode)', name, len(inputs), mode)
    info = {'inputs_sha256': inputs_digest(inputs)}
    if stats_path is not None or any(k == 'ready' and p.reused for k, p in plans.values()):
      info['checkpoint_sha256'] = checkpoint_sha()
    against = sides['background'].stats if name == 'eval' and per_file else None
    result = embed_set(inputs, get_embedder(), mode, against=against,
                       num_workers=num_workers, show_progress=show_progress, desc=name, **info)
    if stats_path is not None:
      try:
        fad_stats.save_stats(result.stats, stats_path)
      except OSError as e:  # Disk full, permissions: the FAD is still computed.
        logging.warning('%s: %s; the FAD is computed without caching the statistics', name, e)
      else:
        result.stats_path = stats_path
        logging.info('%s: wrote statistics %s', name, stats_path)
    sides[name] = result

  back, ev = sides['background'].stats, sides['eval'].stats
  if back.dim != ev.dim:
    raise FadError(f'background embeddings have {back.dim} dimensions, eval {ev.dim}')
  if back.mode and ev.mode and back.mode != ev.mode:
    raise FadError(f'background statistics are in {back.mode} mode, eval in {ev.mode} mode')
  if (back.checkpoint_sha256 and ev.checkpoint_sha256
      and back.checkpoint_sha256 != ev.checkpoint_sha256):
    raise FadError('background and eval statistics were computed with different checkpoints')
  for name, side in sides.items():
    logging.info('%s: %d embeddings of %d file(s)%s', name, side.stats.count,
                 side.stats.num_files,
                 f', {len(side.skipped)} skipped' if side.skipped else '')
  return FadResult(fad=fad_stats.distance(ev, back), background=sides['background'],
                   eval=sides['eval'])
