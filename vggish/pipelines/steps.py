"""The per-file steps of every extraction pipeline, and where a file fails.

Both front doors run exactly these functions, so their records are the same
bytes and their manifests give the same reasons:

  prepare_input:  AudioInput -> Prepared (float32 examples [n, 96, 64], the
                  clip's duration and warnings), or Prepared.error
  (the pipeline batches examples of several files through `vggish.embedder`)
  finish:         Prepared + float32 embeddings [n, 128] -> Finished (the
                  serialized SequenceExample and its `ok` manifest row), or a
                  `failed` row
  failed_row:     Prepared with an error -> its `failed` manifest row
  ExtractResult:  what a run did (the counts both front doors report)

`vggish.extractor` drives them with threads on one machine,
`vggish.pipelines.beam` with an Apache Beam pipeline.
"""

import contextlib
import dataclasses
import logging
from typing import Callable, ContextManager, List, Optional, Tuple

import numpy as np

from vggish import audio_io
from vggish import corpus
from vggish import files
from vggish import frontend as frontend_lib
from vggish import manifest as manifest_lib
from vggish.params import DEFAULT_PARAMS, FLOAT32, Params, check_precision

# path -> a context manager giving a local file with that path's bytes.
LocalOpener = Callable[[str], ContextManager[str]]


@dataclasses.dataclass
class Prepared:
  """A decoded input: its examples, or why it failed.

  Attributes:
    item: the input.
    examples: float32 [n, 96, 64] (None when failed, or once handed to the
      model).
    duration: seconds of audio decoded (before any short-clip padding).
    error: why the input failed, or None.
    warnings: what is doubtful about an input that still gave examples.
  """
  item: corpus.AudioInput
  examples: Optional[np.ndarray] = None
  duration: float = 0.0
  error: Optional[str] = None
  warnings: Tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Finished:
  """A file's outcome: its manifest row, and its record when `ok`.

  Attributes:
    row: the manifest row (`ok` with an empty `shard`, which the writer of
      the shard fills in; or `failed` with the reason).
    record: the serialized `SequenceExample` (None when failed).
  """
  row: manifest_lib.Row
  record: Optional[bytes] = None


@dataclasses.dataclass
class ExtractResult:
  """What a run did.

  Attributes:
    output_dir: where the shards and manifest are.
    num_inputs: inputs given.
    num_skipped: inputs already `ok` from an earlier run (not redone).
    num_ok: inputs extracted by this run.
    num_failed: inputs that failed in this run.
    num_examples: embeddings written by this run.
    audio_seconds: audio extracted by this run.
    wall_seconds: duration of the run.
    shards: names of the shards this run wrote.
    failures: (id, error) of this run's failures.
    warnings: (id, warning) of this run's `ok` inputs with a warning (a
      truncated file, NaN/Inf samples replaced with zeros, ...).
    interrupted: the run was stopped (`should_stop`) before every input was
      done; what it finished is saved.
  """
  output_dir: str
  num_inputs: int = 0
  num_skipped: int = 0
  num_ok: int = 0
  num_failed: int = 0
  num_examples: int = 0
  audio_seconds: float = 0.0
  wall_seconds: float = 0.0
  shards: List[str] = dataclasses.field(default_factory=list)
  failures: List[Tuple[str, str]] = dataclasses.field(default_factory=list)
  warnings: List[Tuple[str, str]] = dataclasses.field(default_factory=list)
  interrupted: bool = False

  @property
  def all_ok(self) -> bool:
    """Every input is extracted (now or earlier)."""
    return self.num_failed == 0 and not self.interrupted


# The log-mel frontends: upstream's float64 numpy computation (the faithful
# default), or `vggish.tf_frontend` in float32, in-graph on the default device.
NUMPY_FRONTEND = 'numpy'
TF_FRONTEND = 'tf'
FRONTENDS = (NUMPY_FRONTEND, TF_FRONTEND)


def check_frontend(frontend: str) -> str:
  if frontend not in FRONTENDS:
    raise ValueError(f'frontend must be one of {", ".join(FRONTENDS)}, got {frontend!r}')
  return frontend


def record_settings(postprocess: bool, params: Params,
                    frontend: str = NUMPY_FRONTEND, precision: str = FLOAT32) -> dict:
  """The settings that shape the records; a resumed run must keep them.

  The frontend and precision are listed only when they are not the faithful
  defaults, so that output directories written before these choices existed
  resume as they are.
  """
  settings = {
      'embedding': 'uint8_pca' if postprocess else 'float32',
      'hop_seconds': params.example_hop_length / params.features_sample_rate,
      'short_clip_policy': params.short_clip_policy,
  }
  if check_frontend(frontend) != NUMPY_FRONTEND:
    settings['frontend'] = frontend
  if check_precision(precision) != FLOAT32:
    settings['precision'] = precision
  return settings


@contextlib.contextmanager
def _as_is(path: str):
  yield path


def prepare_input(item: corpus.AudioInput, params: Params = DEFAULT_PARAMS,
                  nonfinite: str = 'fail',
                  open_local: Optional[LocalOpener] = None,
                  frontend: str = NUMPY_FRONTEND) -> Prepared:
  """Reads one input into float32 examples.

  Never raises for a bad file: any error becomes `Prepared.error`, so that one
  file cannot stop a corpus. What is doubtful about a file that still gives
  examples (truncated, repaired NaN/Inf samples, padded from no samples at all)
  becomes `Prepared.warnings`.

  Args:
    item: the input.
    params: frontend settings.
    nonfinite: NaN/Inf samples fail the file ('fail') or become zeros ('zero');
      see `vggish.audio_io.decode_audio`.
    open_local: item.path -> a context manager giving a local file with its
      bytes (the Beam pipeline copies remote files); default: the path itself.
      It may raise `vggish.audio_io.AudioReadError`.
    frontend: 'numpy' (upstream's float64 log-mel, the default) or 'tf'
      (`vggish.tf_frontend`, float32, on TensorFlow's default device: a GPU
      when there is one). Reading and resampling are numpy either way.
  """
  if item.error is not None:
    return Prepared(item, error=item.error)
  try:
    with (open_local or _as_is)(item.path) as local_path:
      decoded = audio_io.decode_audio(local_path, nonfinite, name=item.path)
    duration = decoded.duration
    warnings = list(decoded.warnings)
    waveform = audio_io.prepare_waveform(decoded.data, decoded.sample_rate, params)
    del decoded
    if waveform.shape[0] < params.min_samples_per_example:
      if params.short_clip_policy == 'drop':
        return Prepared(item, duration=duration, error=(
            f'{item.path}: the clip ({duration:.3f} s) is shorter than one example '
            f'({params.min_samples_per_example / params.sample_rate:.3f} s) and '
            f'short_clip_policy is drop; use pad or repeat to keep it'))
      if waveform.shape[0] == 0:
        # Less than one output sample's worth: nothing to repeat, so the one
        # example is the padding alone (silence), as `pad` promises.
        warnings.append(
            f'{duration * 1e3:.3f} ms of audio give no sample at '
            f'{params.sample_rate} Hz; the example is silence')
    waveform = frontend_lib.apply_short_clip_policy(waveform, params)
    if frontend == TF_FRONTEND:
      from vggish import tf_frontend  # pylint: disable=import-outside-toplevel
      examples = tf_frontend.waveform_to_examples_tf(
          waveform.astype(np.float32), params).numpy()
    else:
      examples = frontend_lib.waveform_to_examples(waveform, params.sample_rate, params)
    # The model's input is float32, as upstream fed its float64 examples to a
    # float32 placeholder.
    return Prepared(item, examples=examples.astype(np.float32), duration=duration,
                    warnings=tuple(warnings))
  except audio_io.AudioReadError as e:
    return Prepared(item, error=str(e))
  except Exception as e:  # pylint: disable=broad-except
    # Anything else a strange file triggers (libsndfile, numpy) is also that
    # file's failure, not the run's; the traceback goes to the debug log.
    logging.debug('failed to prepare %s', item.path, exc_info=True)
    return Prepared(item, error=f'{item.path}: {type(e).__name__}: {e}')


def failed_row(prepared: Prepared) -> manifest_lib.Row:
  """The `failed` manifest row of an input with `prepared.error` set."""
  item = prepared.item
  return manifest_lib.Row(
      id=item.video_id, path=files.manifest_path(item.path), status=manifest_lib.FAILED,
      duration=prepared.duration, error=prepared.error)


def finish(prepared: Prepared, embeddings: np.ndarray, postprocessor=None,
           params: Params = DEFAULT_PARAMS) -> Finished:
  """Turns one file's embeddings into its record and `ok` row (or a failure).

  Args:
    prepared: the file, as `prepare_input` gave it (without error).
    embeddings: float32 [n, 128], the model's output for its n examples.
    postprocessor: a `vggish.postprocess.Postprocessor` for uint8 PCA
      embeddings, or None for raw float32.
    params: for the hop between examples.

  Returns:
    `Finished` with the record, or with a `failed` row (and `prepared.error`
    set) when the model gave NaN/Inf embeddings.
  """
  bad = np.flatnonzero(~np.isfinite(embeddings).all(axis=1))
  if bad.size:
    # Finite examples cannot give NaN/Inf through finite weights, so this is
    # a broken checkpoint or numerics; the PCA would quantize it to 0/255.
    prepared.error = (
        f'{prepared.item.path}: the model gave NaN/Inf embeddings for '
        f'{bad.size} of its {embeddings.shape[0]} example(s) (first: example '
        f'{int(bad[0])}); check the checkpoint (python -m tools.smoke_test)')
    return Finished(failed_row(prepared))
  # TensorFlow (for the protocol buffers) is imported when the first record
  # is made, so that the front doors report usage errors without waiting for it.
  from vggish import records  # pylint: disable=import-outside-toplevel
  if postprocessor is not None:
    embeddings = postprocessor.postprocess(embeddings)  # uint8 [n, 128]
  hop_seconds = params.example_hop_length / params.features_sample_rate
  item = prepared.item
  example = records.make_sequence_example(
      item.video_id, embeddings, labels=item.label_indices,
      start_time_seconds=0.0, end_time_seconds=prepared.duration,
      example_hop_seconds=hop_seconds)
  row = manifest_lib.Row(
      id=item.video_id, path=files.manifest_path(item.path), status=manifest_lib.OK,
      examples=embeddings.shape[0], duration=prepared.duration,
      warning='; '.join(prepared.warnings))
  return Finished(row, records.serialize(example))
