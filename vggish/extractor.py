"""Corpus-scale extraction: audio files -> sharded AudioSet-layout TFRecords.

`extract(inputs, output_dir, ...)` streams a corpus through VGGish:

  frontend workers (num_workers, `vggish.workers`, at background priority):
                                 read -> mono -> resample to 16 kHz -> short-clip
                                 policy -> float64 numpy frontend -> float32
                                 (`vggish.pipelines.steps.prepare_input`)
  main thread:                   examples of consecutive files packed into
                                 batches of batch_size (`embedder.BatchPacker`)
                                 -> model (one traced tf.function) -> per-file
                                 embeddings -> [PCA + 8-bit] -> SequenceExample
                                 (`steps.finish`) -> shard

The decoding, resampling and frontend of the next files run in the frontend
workers (at background priority, see `vggish.workers`) while the model
works, and at most `prefetch` files are in flight, so memory does not grow
with the corpus. The model function is traced once. The numpy frontend is
upstream's float64 computation, so the bytes written equal the original code's.

Robustness and resuming (see `vggish.manifest` for the directory layout): an
input that cannot be read fails alone, with its reason in the manifest (so do
NaN/Inf samples, unless `nonfinite='zero'`); what is doubtful about an input
that is still extracted (a truncated file) is its row's `warning`; no record
with a NaN/Inf embedding is written. A shard is renamed into place only when
complete, and its inputs are recorded `ok` only after that; a rerun skips ids
already `ok` and writes new shards. A write that fails (disk full,
permissions) raises `vggish.manifest.OutputWriteError` and loses nothing
completed.
"""

import collections
import contextlib
import dataclasses
import logging
import os
import time
from typing import Callable, List, Optional, Sequence, Union

import tensorflow as tf

from vggish import audio_io
from vggish import corpus
from vggish import manifest as manifest_lib
from vggish import progress as progress_lib
from vggish import records
from vggish import workers
from vggish import workspace
from vggish.embedder import DEFAULT_BATCH_SIZE, BatchPacker, Embedder
from vggish.params import DEFAULT_PARAMS, FLOAT32, Params, check_precision
from vggish.pipelines import steps
from vggish.pipelines.steps import ExtractResult, prepare_input, record_settings  # pylint: disable=unused-import

DEFAULT_RECORDS_PER_SHARD = 1000


def default_prefetch(num_workers: int) -> int:
  """Decoded files held ahead of the model.

  Enough short clips to fill more than one batch (a 32-example batch takes
  seven 5 s clips), so the next batch is ready when the model returns; each
  held file costs about 25 kB per second of audio.
  """
  return max(16, 2 * num_workers + 2)


@contextlib.contextmanager
def writing(path: str):
  """Turns a failed write of `path` (disk full, permissions) into `OutputWriteError`."""
  try:
    yield
  except manifest_lib.OutputWriteError:
    raise
  except OSError as e:
    raise manifest_lib.OutputWriteError.from_os_error(e, path) from e
  except tf.errors.OpError as e:
    # TensorFlow's file errors read 'PATH; No space left on device'.
    reason = e.message.rsplit('; ', 1)[-1]
    raise manifest_lib.OutputWriteError(
        path, reason, isinstance(e, tf.errors.ResourceExhaustedError)) from e


def _open_record_writer(path: str):
  """A TFRecord writer (a seam for tests that simulate a full disk)."""
  return tf.io.TFRecordWriter(path)


class _ShardWriter:
  """Writes records into `embeddings-NNNNN.tfrecord.tmp`, renames full shards."""

  def __init__(self, output_dir: str, manifest: manifest_lib.Manifest,
               records_per_shard: int):
    self._dir = output_dir
    self._manifest = manifest
    self._per_shard = records_per_shard
    self._index = manifest_lib.next_shard_index(output_dir)
    self._writer = None
    self._rows: List[manifest_lib.Row] = []
    self.written: List[str] = []

  @property
  def _final_path(self) -> str:
    return os.path.join(self._dir, manifest_lib.shard_name(self._index))

  def add(self, serialized: bytes, row: manifest_lib.Row) -> None:
    tmp = self._final_path + manifest_lib.TEMP_SUFFIX
    with writing(tmp):
      if self._writer is None:
        self._writer = _open_record_writer(tmp)
      self._writer.write(serialized)
    self._rows.append(dataclasses.replace(
        row, shard=manifest_lib.shard_name(self._index)))
    if len(self._rows) >= self._per_shard:
      self.commit()

  def commit(self) -> None:
    """Completes the current shard: close, fsync, rename, then record its rows."""
    if self._writer is None:
      return
    final = self._final_path
    tmp = final + manifest_lib.TEMP_SUFFIX
    with writing(tmp):
      # Closing flushes the last records: the write most likely to find the
      # disk full.
      writer, self._writer = self._writer, None
      writer.close()
      fd = os.open(tmp, os.O_RDONLY)
      try:
        os.fsync(fd)
      finally:
        os.close(fd)
      os.replace(tmp, final)
    manifest_lib.fsync_dir(self._dir)
    # Only now are these inputs done: a kill (or a full disk) before the rows
    # are appended leaves a complete shard that `Manifest.reconcile` recovers.
    with writing(self._manifest.path):
      self._manifest.append(self._rows)
    self.written.append(os.path.basename(final))
    self._rows = []
    self._index += 1

  def abort(self) -> None:
    """Drops the incomplete shard (its inputs stay undone).

    Best effort and silent: it runs while another error (a full disk, Ctrl-C)
    propagates, which must not be masked; a `.tmp` it cannot remove is
    deleted by the next run.
    """
    writer, self._writer = self._writer, None
    self._rows = []
    if writer is not None:
      try:
        writer.close()
      except (OSError, tf.errors.OpError):
        pass
    try:  # Also after a commit that failed before its rename.
      os.remove(self._final_path + manifest_lib.TEMP_SUFFIX)
    except OSError:
      pass


def extract(inputs: Sequence[Union[corpus.AudioInput, str, os.PathLike]],
            output_dir: Union[str, os.PathLike],
            *,
            embedder: Optional[Embedder] = None,
            checkpoint_path: Optional[Union[str, os.PathLike]] = None,
            postprocess: bool = False,
            pca_params_path: Optional[Union[str, os.PathLike]] = None,
            params: Params = DEFAULT_PARAMS,
            records_per_shard: int = DEFAULT_RECORDS_PER_SHARD,
            batch_size: int = DEFAULT_BATCH_SIZE,
            num_workers: Optional[int] = None,
            worker_kind: str = workers.AUTO,
            frontend: str = steps.NUMPY_FRONTEND,
            precision: str = FLOAT32,
            prefetch: Optional[int] = None,
            nonfinite: str = 'fail',
            allow_tf32: bool = False,
            show_progress: bool = True,
            should_stop: Optional[Callable[[], bool]] = None) -> ExtractResult:
  """Embeds a corpus into sharded TFRecords with a manifest; resumes a previous run.

  Args:
    inputs: `corpus.AudioInput`s (see `corpus.discover_inputs`,
      `corpus.read_input_csv`, `corpus.prepare_labels`), or paths, directories
      and globs to discover.
    output_dir: where shards, `manifest.csv` and `extract_config.json` go
      (created if needed). A directory from an earlier run with the same
      settings is resumed: its `ok` inputs are skipped.
    embedder: a ready `Embedder` (reused across calls, e.g. by tests and the
      benchmark); default: VGGish from `checkpoint_path`.
    checkpoint_path: slim checkpoint or `.weights.h5`; default the workspace's
      `vggish_model.ckpt`. Ignored when `embedder` is given.
    postprocess: write PCA-whitened uint8 embeddings (AudioSet's format)
      instead of the raw float32 ones.
    pca_params_path: the PCA file for `postprocess`; default the workspace's.
    params: frontend settings (`example_hop_seconds`, `short_clip_policy`).
    records_per_shard: inputs per shard file.
    batch_size: examples per model call (ignored when `embedder` is given).
    num_workers: frontend workers; default `vggish.workers.default_num_workers()`
      (one per core, at background priority).
    worker_kind: 'thread', 'process' or 'auto' (processes for large pools,
      see `vggish.workers`; always threads with `frontend='tf'`).
    frontend: 'numpy' (upstream's float64 log-mel: the faithful default) or
      'tf' (`vggish.tf_frontend` in float32 on TensorFlow's device, a GPU when
      present; embeddings differ slightly, see the README).
    precision: 'float32' (faithful) or 'bfloat16' (faster where the hardware
      has it; see `vggish.model.VGGish`). Ignored when `embedder` is given.
    prefetch: decoded files held ahead of the model (this bounds memory:
      about 25 kB per second of audio held); default `default_prefetch`.
    nonfinite: a file with NaN/Inf samples fails ('fail', the default: its
      reason gives their count and first position) or is extracted with them
      replaced by zeros and a warning in the manifest ('zero').
    allow_tf32: see `Embedder.from_checkpoint` (ignored when `embedder` is
      given).
    show_progress: report files, examples/s, real-time factor and ETA on
      stderr.
    should_stop: polled between files; when it returns True the run finishes
      the files it holds, saves their shard and returns with `interrupted`.

  Returns:
    An `ExtractResult`.

  Raises:
    ValueError: a bad argument, the directory was made with other settings, or
      another run is writing to it.
    vggish.manifest.OutputWriteError: the output cannot be written (disk full,
      permissions); what was completed is kept, and a rerun resumes.
    vggish.workspace.MissingModelFileError: the checkpoint or PCA file is missing.
    vggish.checkpoint.CheckpointError: the checkpoint cannot be loaded.
  """
  if records_per_shard < 1:
    raise ValueError(f'records_per_shard must be >= 1, got {records_per_shard}')
  num_workers = workers.default_num_workers() if num_workers is None else num_workers
  if num_workers < 1:
    raise ValueError(f'num_workers must be >= 1, got {num_workers}')
  steps.check_frontend(frontend)
  check_precision(precision)
  kind = workers.resolve_kind(worker_kind, num_workers)  # Fails before any write.
  if frontend == steps.TF_FRONTEND:
    if worker_kind == workers.PROCESS:
      raise ValueError("frontend 'tf' runs in worker threads (TensorFlow releases "
                       "the GIL and owns the device); use worker_kind 'thread' or 'auto'")
    kind = workers.THREAD
  prefetch = default_prefetch(num_workers) if prefetch is None else prefetch
  if prefetch < 1:
    raise ValueError(f'prefetch must be >= 1, got {prefetch}')
  audio_io.check_nonfinite_policy(nonfinite)
  output_dir = os.fspath(output_dir)
  inputs = _as_inputs(inputs)

  # Model files are checked before anything is written, so that a missing
  # download leaves no half-made output directory behind.
  postprocessor = None
  if postprocess:
    from vggish import postprocess as postprocess_lib  # Not needed otherwise.
    pca_path = workspace.require_model_file(pca_params_path, workspace.PCA_PARAMS_NAME)
    postprocessor = postprocess_lib.Postprocessor(str(pca_path), params)
  if embedder is None:
    embedder = Embedder.from_checkpoint(checkpoint_path, batch_size, params,
                                        allow_tf32=allow_tf32, precision=precision)

  with writing(output_dir):
    os.makedirs(output_dir, exist_ok=True)
  with manifest_lib.OutputLock(output_dir):
    with writing(output_dir):
      manifest_lib.check_config(output_dir,
                                record_settings(postprocess, params, frontend,
                                                precision))
      manifest_lib.remove_temp_shards(output_dir)
      manifest = manifest_lib.Manifest(output_dir)
      manifest.reconcile(records.summarize_records,
                         {item.video_id: os.path.abspath(item.path) for item in inputs})
    done = manifest.done_ids()
    todo = [item for item in inputs if item.video_id not in done]
    result = ExtractResult(output_dir=output_dir, num_inputs=len(inputs),
                           num_skipped=len(inputs) - len(todo))
    if result.num_skipped:
      logging.info('%d of %d inputs already extracted in %s; skipping them',
                   result.num_skipped, len(inputs), output_dir)
    start = time.monotonic()
    writer = _ShardWriter(output_dir, manifest, records_per_shard)
    try:
      with progress_lib.Progress(total=len(todo), unit='files', desc='extract',
                                 enabled=show_progress) as bar:
        _run(todo, embedder, postprocessor, params, nonfinite, writer, manifest,
             result, bar, workers.make_pool(num_workers, kind), prefetch,
             should_stop, frontend)
      writer.commit()
    except BaseException:
      # KeyboardInterrupt, a full disk or an unexpected error: the open shard
      # may lack records whose rows are not written; drop it, keep what is
      # committed (the append-only manifest already records it).
      writer.abort()
      try:
        manifest.compact()
      except OSError:
        pass  # The error on its way out says more; the next run compacts.
      raise
    else:
      with writing(manifest.path):
        manifest.compact()
    finally:
      result.shards = list(writer.written)
      result.wall_seconds = time.monotonic() - start
  logging.info('extracted %d files (%d embeddings, %.1f s of audio) in %.1f s; '
               '%d failed, %d skipped, %d with warnings', result.num_ok,
               result.num_examples, result.audio_seconds, result.wall_seconds,
               result.num_failed, result.num_skipped, len(result.warnings))
  return result


def _as_inputs(inputs) -> List[corpus.AudioInput]:
  if isinstance(inputs, (str, os.PathLike)):
    raise ValueError('inputs must be a sequence of inputs or paths, not one path')
  items = [item for item in inputs if isinstance(item, corpus.AudioInput)]
  paths = [item for item in inputs if not isinstance(item, corpus.AudioInput)]
  if paths:
    items.extend(corpus.discover_inputs(paths))
  if not items:
    raise ValueError('no inputs to extract')
  ids = [item.video_id for item in items]
  if len(set(ids)) != len(ids):
    raise ValueError('inputs must have distinct video_ids')
  return items


def _run(todo, embedder, postprocessor, params, nonfinite, writer, manifest, result,
         bar, pool, prefetch, should_stop, frontend) -> None:
  """The streaming loop: decode ahead in `pool`, embed in batches, write in order."""
  packer = BatchPacker(embedder)

  def write_files(done) -> None:
    for prepared, embeddings in done:
      finished = steps.finish(prepared, embeddings, postprocessor, params)
      if finished.record is None:
        fail(prepared)
        continue
      row = finished.row
      writer.add(finished.record, row)
      if row.warning:
        result.warnings.append((row.id, row.warning))
      result.num_ok += 1
      result.num_examples += row.examples
      result.audio_seconds += row.duration
      bar.update(1, examples=row.examples, audio_seconds=row.duration)

  def fail(prepared: steps.Prepared) -> None:
    logging.warning('failed: %s', prepared.error)
    with writing(manifest.path):
      manifest.append([steps.failed_row(prepared)])
    result.num_failed += 1
    result.failures.append((prepared.item.video_id, prepared.error))
    bar.update(1)

  with pool:
    queue = collections.deque()
    todo_iter = iter(todo)

    def refill() -> None:
      while len(queue) < prefetch:
        item = next(todo_iter, None)
        if item is None:
          return
        queue.append(pool.submit(prepare_input, item, params, nonfinite, None,
                                 frontend))

    try:
      refill()
      while queue:
        if should_stop is not None and should_stop():
          result.interrupted = True
          logging.warning('stop requested: finishing the %d file(s) in the model '
                          'queue and saving the shard', len(packer))
          break
        prepared = queue.popleft().result()
        refill()
        if prepared.error is not None:
          fail(prepared)
          continue
        examples = prepared.examples
        prepared.examples = None  # Copied into batches; free it early.
        write_files(packer.add(prepared, examples))
      write_files(packer.flush())
    finally:
      for future in queue:
        future.cancel()
