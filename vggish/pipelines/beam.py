"""Corpus extraction as an Apache Beam pipeline: `tools.extract`'s records, on many machines.

The same per-file steps as `vggish.extractor` (`vggish.pipelines.steps`), the
same batching (`vggish.embedder.BatchPacker`), the same output directory
(`vggish.manifest`): shards `embeddings-NNNNN.tfrecord`, `manifest.csv`,
`extract_config.json`. Only the driving differs:

  launcher   plan: read an earlier run's manifest and shards (--skip_existing),
             write the inputs still to do to `.beam-staging/RUN-inputs.jsonl`
  ReadFromText -> Reshuffle              the inputs, spread over the workers
  -> Decode (steps.prepare_input)        on the workers, remote files copied
                                         locally; failures -> dead letters
  -> Embed (BatchPacker + steps.finish)  one model per worker process (setup +
                                         `apache_beam.utils.shared.Shared`);
                                         examples of consecutive files in full
                                         batches; NaN/Inf -> dead letters
  -> Stage                               each bundle's records into staged
                                         shards `.beam-staging/RUN-*.tfrecord`
                                         (at most records_per_shard each,
                                         written to a temporary name, renamed)
  -> Flatten(staged shards, dead letters) -> ToList -> Finalize
                                         staged shards of successful bundles
                                         renamed to embeddings-NNNNN.tfrecord
                                         (an id already placed is dropped),
                                         manifest rewritten, staging cleared

A bundle that Beam retries writes new staged files; only those of the
attempt that succeeded reach Finalize, which deletes the rest, so no record is
written twice. A job that dies leaves complete staged shards behind: the next
run with `--skip_existing` adopts them (dropping ids already placed) and
extracts only what they lack.

Records are the bytes `tools.extract` writes for the same inputs and
settings (tests/test_extract_beam.py checks it); the grouping of records into
shards can differ (by bundles, and failed inputs leave no gap).
"""

import contextlib
import dataclasses
import functools
import json
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from vggish import corpus
from vggish import extras
from vggish import files
from vggish import manifest as manifest_lib
from vggish import workspace
from vggish.params import DEFAULT_BATCH_SIZE, DEFAULT_PARAMS, Params
from vggish.pipelines import filesystem
from vggish.pipelines import steps

beam = extras.require('apache_beam', 'beam', 'The Beam pipeline (tools.extract_beam)')
from apache_beam.options import pipeline_options as options_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from apache_beam.transforms import window  # pylint: disable=g-import-not-at-top,wrong-import-position
from apache_beam.utils import shared  # pylint: disable=g-import-not-at-top,wrong-import-position
from apache_beam.utils import windowed_value  # pylint: disable=g-import-not-at-top,wrong-import-position

STAGING_DIR = '.beam-staging'
DEFAULT_RECORDS_PER_SHARD = 1000
_FAILED = 'failed'
_PROGRESS_SECONDS = 30.0


@dataclasses.dataclass(frozen=True)
class Settings:
  """What every worker needs to know (pickled into the pipeline).

  Attributes:
    output_dir: the output directory (local path or URL).
    run_id: this run's prefix for staged files.
    checkpoint: checkpoint path or URL.
    pca_params: PCA file path or URL for uint8 embeddings, or None for raw.
    params: frontend settings.
    batch_size: examples per model call.
    nonfinite: NaN/Inf sample policy (`vggish.audio_io`).
    allow_tf32: see `vggish.embedder.Embedder.from_checkpoint`.
    records_per_shard: the most records per shard.
    total: inputs this run extracts (for the workers' progress lines).
  """
  output_dir: str
  run_id: str
  checkpoint: str
  pca_params: Optional[str]
  params: Params
  batch_size: int
  nonfinite: str
  allow_tf32: bool
  records_per_shard: int
  total: int

  @property
  def staging_dir(self) -> str:
    return filesystem.join(self.output_dir, STAGING_DIR)

  @property
  def model_tag(self) -> str:
    """Identifies the model a worker process may share between pipelines."""
    return repr((self.checkpoint, self.pca_params, self.batch_size, self.allow_tf32,
                 self.params))


class PipelineError(RuntimeError):
  """The Beam job failed (not one input: those are manifest rows)."""


# ---------------------------------------------------------------- the workers

def _encode_input(position: int, item: corpus.AudioInput) -> str:
  return json.dumps({'position': position, 'id': item.video_id, 'path': item.path,
                     'labels': list(item.labels),
                     'label_indices': list(item.label_indices),
                     'error': item.error}, ensure_ascii=False)


def _decode_input(line: str) -> Tuple[int, corpus.AudioInput]:
  fields = json.loads(line)
  return fields['position'], corpus.AudioInput(
      video_id=fields['id'], path=fields['path'], labels=tuple(fields['labels']),
      label_indices=tuple(fields['label_indices']), error=fields['error'])


class _DecodeFn(beam.DoFn):
  """(position, AudioInput) -> (position, Prepared), or a dead-letter row."""

  def __init__(self, settings: Settings):
    super().__init__()
    self._settings = settings
    self._failed = beam.metrics.Metrics.counter('vggish', 'files_failed')

  def process(self, element):
    position, item = element
    prepared = steps.prepare_input(item, self._settings.params, self._settings.nonfinite,
                                   open_local=filesystem.local_copy)
    if prepared.error is not None:
      logging.warning('failed: %s', prepared.error)
      self._failed.inc()
      yield beam.pvalue.TaggedOutput(_FAILED, (position, steps.failed_row(prepared)))
      return
    yield position, prepared


class _Model:
  """A worker process's model: the embedder and the postprocessor."""

  def __init__(self, embedder, postprocessor):
    self.embedder = embedder
    self.postprocessor = postprocessor


def _load_model(settings: Settings) -> _Model:
  from vggish.embedder import Embedder  # pylint: disable=import-outside-toplevel
  start = time.monotonic()
  # TensorFlow keeps its default threads: with its Eigen kernels (oneDNN
  # off) the float32 results depend on the number of intra-op threads, and
  # the records must be the bytes tools.extract writes.
  directory = tempfile.mkdtemp(prefix='vggish-model-')
  try:
    checkpoint = filesystem.local_model_file(settings.checkpoint, directory)
    embedder = Embedder.from_checkpoint(checkpoint, settings.batch_size, settings.params,
                                        allow_tf32=settings.allow_tf32)
    postprocessor = None
    if settings.pca_params:
      from vggish import postprocess  # pylint: disable=import-outside-toplevel
      postprocessor = postprocess.Postprocessor(
          filesystem.local_model_file(settings.pca_params, directory), settings.params)
  finally:
    shutil.rmtree(directory, ignore_errors=True)
  logging.info('worker %d: VGGish loaded in %.1f s', os.getpid(),
               time.monotonic() - start)
  return _Model(embedder, postprocessor)


class _EmbedFn(beam.DoFn):
  """(position, Prepared) -> (position, ok row, record), or a dead-letter row.

  The model is built once per worker process (`setup`, shared between the
  DoFn instances of that process); the examples of consecutive files of a
  bundle fill full batches, the last partial one at the end of the bundle.
  """

  def __init__(self, settings: Settings, model_handle: 'shared.Shared'):
    super().__init__()
    self._settings = settings
    self._handle = model_handle
    self._ok = beam.metrics.Metrics.counter('vggish', 'files_ok')
    self._failed = beam.metrics.Metrics.counter('vggish', 'files_failed')
    self._examples = beam.metrics.Metrics.counter('vggish', 'examples')

  def setup(self):
    self._model = self._handle.acquire(
        functools.partial(_load_model, self._settings), tag=self._settings.model_tag)
    self._files = 0
    self._examples_done = 0
    self._start = time.monotonic()
    self._last_log = self._start

  def start_bundle(self):
    from vggish.embedder import BatchPacker  # pylint: disable=import-outside-toplevel
    self._packer = BatchPacker(self._model.embedder)

  def process(self, element):
    position, prepared = element
    # Beam's inputs are not to be modified: the packer copies the examples.
    yield from self._finish(self._packer.add(
        (position, dataclasses.replace(prepared, examples=None)), prepared.examples))

  def finish_bundle(self):
    for output in self._finish(self._packer.flush()):
      yield windowed_value.WindowedValue(
          output, window.GlobalWindow().max_timestamp(), [window.GlobalWindow()])

  def _finish(self, done):
    for (position, prepared), embeddings in done:
      finished = steps.finish(prepared, embeddings, self._model.postprocessor,
                              self._settings.params)
      if finished.record is None:
        logging.warning('failed: %s', prepared.error)
        self._failed.inc()
        yield beam.pvalue.TaggedOutput(_FAILED, (position, finished.row))
        continue
      self._ok.inc()
      self._examples.inc(finished.row.examples)
      self._files += 1
      self._examples_done += finished.row.examples
      self._log_progress()
      yield position, finished.row, finished.record

  def _log_progress(self):
    now = time.monotonic()
    if now - self._last_log < _PROGRESS_SECONDS:
      return
    self._last_log = now
    rate = self._examples_done / max(now - self._start, 1e-9)
    logging.info('worker %d: %d files, %d examples, %.1f examples/s (the job has '
                 '%d files)', os.getpid(), self._files, self._examples_done, rate,
                 self._settings.total)


def _open_record_writer(path: str):
  """A TFRecord writer (a seam for tests that simulate a full disk)."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  return tf.io.TFRecordWriter(path)


class _StagedShard:
  """One staged shard being written: records to a temporary file, then renamed.

  A write that fails (disk full, permissions) raises
  `vggish.manifest.OutputWriteError`, which the launcher reports as such.
  """

  def __init__(self, path: str):
    from vggish.extractor import writing  # pylint: disable=import-outside-toplevel
    self._guard = writing
    self.path = path
    self.rows: List[Tuple[int, manifest_lib.Row]] = []
    self._ids = set()
    self._writing = filesystem.atomic_local_write(path)
    local = self._writing.__enter__()
    with self._guard(path):
      self._writer = _open_record_writer(local)

  def __len__(self) -> int:
    return len(self.rows)

  def add(self, position: int, row: manifest_lib.Row, record: bytes) -> None:
    if row.id in self._ids:  # Deduplicated where records are written.
      return
    self._ids.add(row.id)
    with self._guard(self.path):
      self._writer.write(record)
    self.rows.append((position, row))

  def close(self) -> Tuple[str, List[Tuple[int, manifest_lib.Row]]]:
    with self._guard(self.path):
      self._writer.close()
    self._writing.__exit__(None, None, None)
    return self.path, self.rows

  def abort(self) -> None:
    try:
      self._writer.close()
    finally:
      self._writing.__exit__(RuntimeError, RuntimeError('aborted'), None)


class _StageFn(beam.DoFn):
  """(position, row, record) -> (staged shard path, [(position, row)]) per full shard."""

  def __init__(self, settings: Settings):
    super().__init__()
    self._settings = settings

  def start_bundle(self):
    self._shard = None

  def process(self, element):
    position, row, record = element
    if self._shard is None:
      name = f'{self._settings.run_id}-{uuid.uuid4().hex}{manifest_lib.SHARD_SUFFIX}'
      self._shard = _StagedShard(filesystem.join(self._settings.staging_dir, name))
    self._shard.add(position, row, record)
    if len(self._shard) >= self._settings.records_per_shard:
      shard, self._shard = self._shard, None
      yield shard.close()

  def finish_bundle(self):
    if self._shard is not None:
      shard, self._shard = self._shard, None
      yield windowed_value.WindowedValue(
          shard.close(), window.GlobalWindow().max_timestamp(), [window.GlobalWindow()])

  def teardown(self):
    shard = getattr(self, '_shard', None)
    if shard is not None:
      self._shard = None
      try:
        shard.abort()
      except Exception:  # pylint: disable=broad-except
        pass


# ------------------------------------------------------ placing staged shards

def adopt_staged(staged: Sequence[Tuple[str, Sequence[manifest_lib.Row]]],
                 placed: set, output_dir: str, first_index: int
                 ) -> List[manifest_lib.Row]:
  """Turns staged shards into `embeddings-NNNNN.tfrecord`, each id once.

  Args:
    staged: (staged file path, its records' ok rows) in the order to number
      them.
    placed: ids whose records are already in a shard (updated).
    output_dir: where the shards go.
    first_index: the number of the first new shard.

  Returns:
    The ok rows of the records placed, with their shard names. A staged file
    whose ids are all placed already is deleted; one with some is copied
    without them.
  """
  from vggish import records  # pylint: disable=import-outside-toplevel
  index = first_index
  rows_out = []
  for path, rows in staged:
    keep = [row for row in rows if row.id not in placed]
    if not keep:
      filesystem.delete([path])
      continue
    name = manifest_lib.shard_name(index)
    final = filesystem.join(output_dir, name)
    if len(keep) == len(rows):
      filesystem.rename(path, final)
    else:
      keep_ids = {row.id for row in keep}
      with filesystem.local_copy(path) as local, \
          filesystem.atomic_local_write(final) as tmp:
        records.copy_records(local, tmp, keep_ids.__contains__)
      filesystem.delete([path])
    placed.update(row.id for row in keep)
    rows_out.extend(dataclasses.replace(row, shard=name) for row in keep)
    index += 1
  return rows_out


def _read_manifest(output_dir: str) -> List[manifest_lib.Row]:
  path = filesystem.join(output_dir, manifest_lib.MANIFEST_NAME)
  if not filesystem.exists(path):
    return []
  return manifest_lib.parse_rows(filesystem.read_bytes(path).decode('utf-8'), path)


def _write_manifest(output_dir: str, rows: Iterable[manifest_lib.Row]) -> None:
  filesystem.write_atomic(filesystem.join(output_dir, manifest_lib.MANIFEST_NAME),
                          manifest_lib.format_rows(rows, header=True))


def _finalize(entries, settings: Settings) -> Dict[str, int]:
  """Places this run's staged shards, writes the manifest, clears the staging."""
  staged = sorted((entry[1] for entry in entries if entry[0] == 'staged'),
                  key=lambda shard: min(position for position, _ in shard[1]))
  failed = [entry[1] for entry in entries if entry[0] == _FAILED]
  latest = manifest_lib.latest_rows(_read_manifest(settings.output_dir))
  placed = {row.id for row in latest.values() if row.status == manifest_lib.OK}
  first = manifest_lib.next_index(filesystem.list_names(settings.output_dir))
  positions = {}
  adopted = []
  for path, rows in staged:
    if not filesystem.exists(path):
      # A retried Finalize whose first attempt placed it already: the next
      # --skip_existing run records its records from the shard itself.
      logging.warning('staged shard %s is gone; its %d record(s) are recorded by the '
                      'next run with --skip_existing', path, len(rows))
      continue
    for position, row in rows:
      positions[row.id] = position
    adopted.append((path, [row for _, row in rows]))
  new_rows = adopt_staged(adopted, placed, settings.output_dir, first)
  ok_ids = {row.id for row in new_rows}
  for position, row in failed:
    if row.id not in ok_ids and row.id not in positions:
      positions[row.id] = position
      new_rows.append(row)
  new_rows.sort(key=lambda row: positions[row.id])
  for row in new_rows:
    latest[row.id] = row
  _write_manifest(settings.output_dir, latest.values())
  # Staged files of retried bundles (their successful attempt was adopted)
  # and this run's list of inputs.
  leftovers = [filesystem.join(settings.staging_dir, name)
               for name in filesystem.list_names(settings.staging_dir)
               if name.startswith(settings.run_id)]
  filesystem.delete(leftovers)
  _remove_empty_local_dir(settings.staging_dir)
  return {'ok': len(ok_ids), 'failed': len(new_rows) - len(ok_ids)}


def _remove_empty_local_dir(path: str) -> None:
  if not files.has_scheme(path):
    try:
      os.rmdir(path)
    except OSError:
      pass  # Not empty (another run's staged files), or already gone.


# ------------------------------------------------------------- the launcher

def _is_staged_shard(name: str) -> bool:
  return name.endswith(manifest_lib.SHARD_SUFFIX) and '.tmp-' not in name


def _summaries(path: str) -> List[Tuple[str, int, float]]:
  from vggish import records  # pylint: disable=import-outside-toplevel
  with filesystem.local_copy(path) as local:
    return list(records.summarize_records(local))


def _holds_extraction(names: Sequence[str], staged_names: Sequence[str]) -> bool:
  return bool(manifest_lib.MANIFEST_NAME in names or manifest_lib.complete_shards(names)
              or any(_is_staged_shard(name) for name in staged_names))


def _existing_output_error(output_dir: str) -> ValueError:
  return ValueError(
      f'{output_dir} already holds an extraction (a manifest, shards, or staged '
      f'shards of an interrupted job); rerun with --skip_existing to extend or '
      f'finish it (inputs already ok are skipped), or use a new --output directory')


def check_output(output_dir: str, skip_existing: bool) -> None:
  """Refuses an output directory that holds an extraction, unless skip_existing.

  `run_extraction` checks this itself; a front door calls it before it writes
  anything there (a label map).

  Raises:
    ValueError: it holds one and `skip_existing` is False.
  """
  if skip_existing:
    return
  if _holds_extraction(filesystem.list_names(output_dir),
                       filesystem.list_names(filesystem.join(output_dir, STAGING_DIR))):
    raise _existing_output_error(output_dir)


def _prepare_output(output_dir: str, config: Mapping[str, object],
                    paths: Mapping[str, str], skip_existing: bool
                    ) -> Dict[str, manifest_lib.Row]:
  """Checks (and with skip_existing, repairs) an output directory.

  Returns:
    id -> latest manifest row.

  Raises:
    ValueError: the directory holds an extraction and skip_existing is off,
      or it holds one made with other settings.
  """
  names = filesystem.list_names(output_dir)
  staging = filesystem.join(output_dir, STAGING_DIR)
  staged_names = filesystem.list_names(staging)
  shards = manifest_lib.complete_shards(names)
  has_state = _holds_extraction(names, staged_names)
  config_path = filesystem.join(output_dir, manifest_lib.CONFIG_NAME)
  if has_state and not skip_existing:
    raise _existing_output_error(output_dir)
  if has_state and manifest_lib.CONFIG_NAME in names:
    manifest_lib.compare_config(
        json.loads(filesystem.read_bytes(config_path).decode('utf-8')), config,
        output_dir)
  else:
    filesystem.write_atomic(config_path,
                            manifest_lib.format_config(config).encode('utf-8'))
  # Temporary files of killed writes are never complete: delete them.
  filesystem.delete([filesystem.join(output_dir, name) for name in names
                     if name.startswith(manifest_lib.SHARD_PREFIX) and '.tmp' in name])
  filesystem.delete([filesystem.join(staging, name) for name in staged_names
                     if not _is_staged_shard(name)])
  all_rows = _read_manifest(output_dir)
  latest = manifest_lib.latest_rows(all_rows)
  changed = manifest_lib.recover_rows(
      latest, manifest_lib.last_ok_shard(all_rows), shards,
      lambda name: _summaries(filesystem.join(output_dir, name)), paths)
  for row in changed:
    latest[row.id] = row
  placed = manifest_lib.done_ids(latest, shards)
  # Staged shards of a job that died before placing them.
  staged = []
  for name in sorted(n for n in staged_names if _is_staged_shard(n)):
    path = filesystem.join(staging, name)
    staged.append((path, [
        manifest_lib.Row(id=video_id, path=paths.get(video_id, ''),
                         status=manifest_lib.OK, examples=examples, duration=duration)
        for video_id, examples, duration in _summaries(path)]))
  adopted = adopt_staged(staged, placed, output_dir, manifest_lib.next_index(names))
  for row in adopted:
    latest[row.id] = row
  if changed or adopted:
    logging.info('recovered %d record(s) of an interrupted run', len(changed) + len(adopted))
  if changed or adopted or manifest_lib.MANIFEST_NAME in names:
    _write_manifest(output_dir, latest.values())
  _remove_empty_local_dir(staging)
  return latest


def _is_local(options) -> bool:
  runner = options.view_as(options_lib.StandardOptions).runner
  return runner is None or runner.lower() in ('direct', 'directrunner')


def make_pipeline(pipeline_options=None):
  """A `beam.Pipeline` for the options; the DirectRunner without Prism.

  Beam's DirectRunner first tries its Prism runner, which downloads a binary
  (and fails offline); without --runner, or with --runner DirectRunner, the
  DirectRunner's in-process FnApiRunner runs the pipeline, honouring
  --direct_running_mode and --direct_num_workers.
  """
  options = pipeline_options or options_lib.PipelineOptions([])
  if _is_local(options):
    # As the DirectRunner builds it, so that its worker processes get the
    # options too (log levels).
    from apache_beam.portability.api import beam_provision_api_pb2  # pylint: disable=import-outside-toplevel
    from apache_beam.runners.portability import portable_runner  # pylint: disable=import-outside-toplevel
    from apache_beam.runners.portability.fn_api_runner import fn_runner  # pylint: disable=import-outside-toplevel
    encoded = portable_runner.JobServiceHandle.encode_pipeline_options(
        options.get_all_options())
    provision_info = fn_runner.ExtendedProvisionInfo(
        beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
    return beam.Pipeline(runner=fn_runner.FnApiRunner(provision_info=provision_info),
                         options=options)
  return beam.Pipeline(options=options)


def build(pipeline, inputs_path: str, settings: Settings) -> None:
  """Adds the extraction to `pipeline` (see the module docstring)."""
  model_handle = shared.Shared()
  items = (pipeline
           | 'ReadInputs' >> beam.io.ReadFromText(inputs_path)
           | 'ParseInputs' >> beam.Map(_decode_input)
           | 'Spread' >> beam.Reshuffle())
  decoded = items | 'Decode' >> beam.ParDo(_DecodeFn(settings)).with_outputs(
      _FAILED, main='ok')
  embedded = decoded.ok | 'Embed' >> beam.ParDo(
      _EmbedFn(settings, model_handle)).with_outputs(_FAILED, main='ok')
  staged = embedded.ok | 'Stage' >> beam.ParDo(_StageFn(settings))
  entries = (
      (staged | 'TagStaged' >> beam.Map(lambda shard: ('staged', shard)),
       decoded[_FAILED] | 'TagDecodeFailed' >> beam.Map(lambda row: (_FAILED, row)),
       embedded[_FAILED] | 'TagEmbedFailed' >> beam.Map(lambda row: (_FAILED, row)))
      | 'Outcomes' >> beam.Flatten())
  _ = (entries
       | 'Gather' >> beam.combiners.ToList()
       | 'Finalize' >> beam.Map(_finalize, settings))


def run_extraction(inputs: Sequence[corpus.AudioInput], output_dir: str, *,
                   checkpoint_path: Optional[str] = None,
                   postprocess: bool = False,
                   pca_params_path: Optional[str] = None,
                   params: Params = DEFAULT_PARAMS,
                   records_per_shard: int = DEFAULT_RECORDS_PER_SHARD,
                   batch_size: int = DEFAULT_BATCH_SIZE,
                   nonfinite: str = 'fail',
                   allow_tf32: bool = False,
                   skip_existing: bool = False,
                   pipeline_options=None) -> steps.ExtractResult:
  """Extracts a corpus with Beam into `output_dir` (local or a URL).

  Args:
    inputs: the inputs (`vggish.pipelines.filesystem.discover_inputs`,
      `vggish.corpus.read_input_csv` with `filesystem.BEAM_FILES`).
    output_dir: the output directory (created if local).
    checkpoint_path, postprocess, pca_params_path, params, records_per_shard,
      batch_size, nonfinite, allow_tf32: as `vggish.extractor.extract`'s
      (model files may be URLs: each worker copies them).
    skip_existing: extend or finish an earlier extraction in `output_dir`:
      inputs it has `ok` are skipped. Without it, a directory that holds an
      extraction is refused.
    pipeline_options: `apache_beam.options.pipeline_options.PipelineOptions`
      (runner, workers); default: the local DirectRunner (without Prism).

  Returns:
    A `vggish.pipelines.steps.ExtractResult`: this run's counts, read back
    from the manifest once the pipeline is done (`interrupted` stays False:
    a Beam job has no graceful stop).

  Raises:
    ValueError: bad settings, or an output directory that holds an extraction
      without `skip_existing`, or one made with other settings.
    vggish.workspace.MissingModelFileError: a local model file is missing.
    vggish.manifest.OutputWriteError: the output cannot be written.
    PipelineError: the Beam job failed (what was completed is kept in
      staging; rerun with `skip_existing`).
  """
  if records_per_shard < 1:
    raise ValueError(f'records_per_shard must be >= 1, got {records_per_shard}')
  if batch_size < 1:
    raise ValueError(f'batch_size must be >= 1, got {batch_size}')
  from vggish import audio_io  # pylint: disable=import-outside-toplevel
  audio_io.check_nonfinite_policy(nonfinite)
  inputs = list(inputs)
  if not inputs:
    raise ValueError('no inputs to extract')
  ids = [item.video_id for item in inputs]
  if len(set(ids)) != len(ids):
    raise ValueError('inputs must have distinct video_ids')
  output_dir = os.fspath(output_dir)
  if not files.has_scheme(output_dir):
    output_dir = os.path.abspath(output_dir)
  checkpoint = filesystem.check_model_file(checkpoint_path, workspace.CHECKPOINT_NAME)
  pca_params = (filesystem.check_model_file(pca_params_path, workspace.PCA_PARAMS_NAME)
                if postprocess else None)

  filesystem.makedirs(output_dir)
  # Object stores have no `flock`: one job per output prefix is the user's rule.
  lock = (manifest_lib.OutputLock(output_dir) if not files.has_scheme(output_dir)
          else contextlib.nullcontext())
  start = time.monotonic()
  with lock:
    paths = {item.video_id: files.manifest_path(item.path) for item in inputs}
    rows = _prepare_output(
        output_dir, steps.record_settings(postprocess, params), paths, skip_existing)
    done = {row.id for row in rows.values() if row.status == manifest_lib.OK}
    todo = [item for item in inputs if item.video_id not in done]
    result = steps.ExtractResult(output_dir=output_dir, num_inputs=len(inputs),
                                 num_skipped=len(inputs) - len(todo))
    if result.num_skipped:
      logging.info('%d of %d inputs already extracted in %s; skipping them',
                   result.num_skipped, len(inputs), output_dir)
    if todo:
      settings = Settings(
          output_dir=output_dir, run_id=f'run-{time.strftime("%Y%m%d-%H%M%S")}-'
          f'{uuid.uuid4().hex[:8]}', checkpoint=checkpoint, pca_params=pca_params,
          params=params, batch_size=batch_size, nonfinite=nonfinite,
          allow_tf32=allow_tf32, records_per_shard=records_per_shard, total=len(todo))
      _run_pipeline(todo, settings, pipeline_options)
    _summarize(result, todo, output_dir)
  result.wall_seconds = time.monotonic() - start
  logging.info('extracted %d files (%d embeddings, %.1f s of audio) in %.1f s; '
               '%d failed, %d skipped', result.num_ok, result.num_examples,
               result.audio_seconds, result.wall_seconds, result.num_failed,
               result.num_skipped)
  return result


def _run_pipeline(todo: Sequence[corpus.AudioInput], settings: Settings,
                  pipeline_options) -> None:
  filesystem.makedirs(settings.staging_dir)
  inputs_path = filesystem.join(settings.staging_dir, f'{settings.run_id}-inputs.jsonl')
  filesystem.write_atomic(inputs_path, ''.join(
      _encode_input(position, item) + '\n' for position, item in enumerate(todo)
  ).encode('utf-8'))
  pipeline = make_pipeline(pipeline_options)
  build(pipeline, inputs_path, settings)
  logging.info('Beam: extracting %d inputs with %s into %s', len(todo),
               type(pipeline.runner).__name__, settings.output_dir)
  try:
    pipeline.run().wait_until_finish()
  except (KeyboardInterrupt, manifest_lib.OutputWriteError):
    raise
  except Exception as e:  # pylint: disable=broad-except
    # A worker's exception arrives wrapped (and its traceback was logged):
    # name its last line and how to go on.
    text = str(e)
    # A worker that could not write (disk full, permissions) raised
    # OutputWriteError: the environment's fault, reported as such.
    written = re.search(r'cannot write (\S+): ([^;\n]+);', text)
    if written:
      reason = written.group(2).strip()
      raise manifest_lib.OutputWriteError(
          written.group(1), reason, 'No space left' in reason or 'quota' in reason.lower()
      ) from e
    lines = [line for line in text.splitlines() if line.strip()]
    cause = lines[-1].strip() if lines else type(e).__name__
    raise PipelineError(
        f'the Beam job failed: {cause}; records already staged are kept: rerun '
        f'with --skip_existing to finish the job') from e


def _summarize(result: steps.ExtractResult, todo: Sequence[corpus.AudioInput],
               output_dir: str) -> None:
  rows = manifest_lib.latest_rows(_read_manifest(output_dir))
  shards = set()
  for item in todo:
    row = rows.get(item.video_id)
    if row is None:
      continue
    if row.status == manifest_lib.OK:
      result.num_ok += 1
      result.num_examples += row.examples
      result.audio_seconds += row.duration
      shards.add(row.shard)
      if row.warning:
        result.warnings.append((row.id, row.warning))
    else:
      result.num_failed += 1
      result.failures.append((row.id, row.error))
  result.shards = manifest_lib.complete_shards(shards)
