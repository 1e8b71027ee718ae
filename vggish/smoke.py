"""The installation smoke test: a known signal through the whole pipeline.

As upstream's `vggish_smoke_test.py`: a 3 s, 1 kHz sine at 16 kHz gives 3
examples; with the released checkpoint and PCA file the raw embedding's mean
and standard deviation and the postprocessed bytes' mean and standard deviation
must lie within 10 % (relative) of known values. It also checks that the
resampler works, as upstream checks that resampy imports and runs.

  result = smoke.run_smoke_test()  # The files in workspace.checkpoint_dir().
  print(result.report())
"""

import dataclasses
import os
from typing import Optional, Tuple, Union

import numpy as np

from vggish import frontend
from vggish import model as vggish_model
from vggish import postprocess
from vggish import resample as resample_lib
from vggish import workspace
from vggish.params import DEFAULT_PARAMS, Params

PathLike = Union[str, os.PathLike]

# The smoke signal is fixed by upstream, independently of `Params`.
SIGNAL_SAMPLE_RATE = 16000
SIGNAL_SECONDS = 3
SIGNAL_FREQUENCY_HZ = 1000.0
EXPECTED_NUM_EXAMPLES = 3

# The resampling check: a 1 kHz sine from 44.1 kHz to 16 kHz must match the
# analytic sine away from the edges (where the filter sees zero padding).
# resampy's kaiser_best gives 3.5e-5 there; 1e-3 catches any real breakage.
_RESAMPLE_FROM_HZ = 44100
_RESAMPLE_EDGE_SECONDS = 0.1
_RESAMPLE_MAX_ERROR = 1e-3


@dataclasses.dataclass(frozen=True)
class SmokeExpectation:
  """Expected statistics of the smoke signal's embeddings.

  Attributes:
    embedding_mean: mean of the raw embeddings [3, 128].
    embedding_std: standard deviation of the raw embeddings.
    postprocessed_mean: mean of the postprocessed uint8 embeddings.
    postprocessed_std: standard deviation of the postprocessed embeddings.
    rtol: relative tolerance: |measured - expected| <= rtol * |expected|.
  """
  embedding_mean: float
  embedding_std: float
  postprocessed_mean: float
  postprocessed_std: float
  rtol: float = 0.1


# Upstream's expectations for the released checkpoint and PCA parameters (since
# the final ReLU was removed in 2020), with upstream's 10 % relative check.
UPSTREAM_EXPECTED = SmokeExpectation(
    embedding_mean=0.000657, embedding_std=0.343,
    postprocessed_mean=126.0, postprocessed_std=89.3)


@dataclasses.dataclass(frozen=True)
class SmokeMeasurement:
  """What the pipeline produced for the smoke signal.

  Attributes:
    num_examples: examples the frontend made (3 expected).
    embedding_mean: mean of the raw float32 embeddings.
    embedding_std: standard deviation of the raw embeddings.
    postprocessed_mean: mean of the uint8 postprocessed embeddings.
    postprocessed_std: standard deviation of the postprocessed embeddings.
    resampled_length: output length of the resampling check.
    expected_resampled_length: the length it must have.
    resample_max_error: max |resampled - analytic sine| away from the edges.
  """
  num_examples: int
  embedding_mean: float
  embedding_std: float
  postprocessed_mean: float
  postprocessed_std: float
  resampled_length: int
  expected_resampled_length: int
  resample_max_error: float


@dataclasses.dataclass(frozen=True)
class Check:
  """One quantity compared with its expectation."""
  name: str
  measured: float
  requirement: str  # E.g. 'within 10% of 0.343'.
  passed: bool

  def describe(self) -> str:
    status = 'ok' if self.passed else 'FAILED'
    return (f'{self.name}: measured {self.measured:.6g}, expected '
            f'{self.requirement} [{status}]')


@dataclasses.dataclass(frozen=True)
class SmokeResult:
  """The outcome of the smoke test: every check, and the measurement."""
  checks: Tuple[Check, ...]
  measurement: SmokeMeasurement

  @property
  def passed(self) -> bool:
    return all(check.passed for check in self.checks)

  @property
  def failures(self) -> Tuple[Check, ...]:
    return tuple(check for check in self.checks if not check.passed)

  def report(self) -> str:
    """One line per check: measured vs expected, ok or FAILED."""
    return '\n'.join(check.describe() for check in self.checks)


def smoke_signal() -> np.ndarray:
  """The smoke test's input: sin(2*pi*1000*t) for 3 s at 16 kHz.

  Returns:
    float64 [48000], t = 0, 1/16000, ... < 3 as upstream.
  """
  t = np.arange(0, SIGNAL_SECONDS, 1 / SIGNAL_SAMPLE_RATE)  # [48000]
  return np.sin(2 * np.pi * SIGNAL_FREQUENCY_HZ * t)


def _check_resampler() -> Tuple[int, int, float]:
  """Resamples a 1 s, 1 kHz sine from 44.1 kHz to 16 kHz.

  Returns:
    (output length, expected length, max |error| away from the edges).
  """
  sine = np.sin(2 * np.pi * SIGNAL_FREQUENCY_HZ *
                np.arange(_RESAMPLE_FROM_HZ) / _RESAMPLE_FROM_HZ)  # [44100]
  resampled = resample_lib.resample(sine, _RESAMPLE_FROM_HZ, SIGNAL_SAMPLE_RATE)
  expected_length = int(sine.shape[0] * SIGNAL_SAMPLE_RATE / _RESAMPLE_FROM_HZ)
  reference = np.sin(2 * np.pi * SIGNAL_FREQUENCY_HZ *
                     np.arange(resampled.shape[0]) / SIGNAL_SAMPLE_RATE)
  edge = int(_RESAMPLE_EDGE_SECONDS * SIGNAL_SAMPLE_RATE)
  error = np.abs(resampled - reference)[edge:-edge]
  # NaN must fail the check, so it is reported as an infinite error.
  max_error = float(np.max(error)) if np.all(np.isfinite(error)) else np.inf
  return int(resampled.shape[0]), expected_length, max_error


def measure(checkpoint_path: PathLike,
            pca_params_path: PathLike,
            params: Params = DEFAULT_PARAMS) -> SmokeMeasurement:
  """Runs the smoke signal through frontend, Keras VGGish and postprocessor.

  Args:
    checkpoint_path: slim checkpoint (or `.weights.h5`) for `VGGish(weights=)`.
    pca_params_path: the PCA parameters `.npz`.
    params: hyperparameters (upstream's defaults for a meaningful result).

  Returns:
    The statistics that `evaluate` compares with expectations.

  Raises:
    vggish.checkpoint.CheckpointError: the checkpoint cannot be loaded.
  """
  examples = frontend.waveform_to_examples(
      smoke_signal(), SIGNAL_SAMPLE_RATE, params)  # [3, 96, 64] float64
  model = vggish_model.VGGish(weights=str(checkpoint_path), trainable=False,
                              params=params)
  embedding = np.asarray(
      model(examples.astype(np.float32), training=False))  # [3, 128] float32
  postprocessor = postprocess.Postprocessor(str(pca_params_path), params)
  postprocessed = postprocessor.postprocess(embedding)  # [3, 128] uint8
  resampled_length, expected_length, resample_error = _check_resampler()
  # Statistics in float64 so that they do not depend on summation order.
  embedding = embedding.astype(np.float64)
  postprocessed = postprocessed.astype(np.float64)
  return SmokeMeasurement(
      num_examples=int(examples.shape[0]),
      embedding_mean=float(np.mean(embedding)),
      embedding_std=float(np.std(embedding)),
      postprocessed_mean=float(np.mean(postprocessed)),
      postprocessed_std=float(np.std(postprocessed)),
      resampled_length=resampled_length,
      expected_resampled_length=expected_length,
      resample_max_error=resample_error)


def _relative_check(name: str, measured: float, expected: float,
                    rtol: float) -> Check:
  # Upstream's check (numpy's assert_allclose with atol=0).
  passed = bool(abs(measured - expected) <= rtol * abs(expected))
  return Check(name, measured, f'within {100 * rtol:g}% of {expected:.6g}',
               passed)


def evaluate(measurement: SmokeMeasurement,
             expected: SmokeExpectation = UPSTREAM_EXPECTED) -> SmokeResult:
  """Compares a measurement with expectations; see `SmokeResult.passed`."""
  m = measurement
  checks = (
      Check('number of examples', m.num_examples,
            f'{EXPECTED_NUM_EXAMPLES}',
            m.num_examples == EXPECTED_NUM_EXAMPLES),
      Check('resampled length (44.1 -> 16 kHz)', m.resampled_length,
            f'{m.expected_resampled_length}',
            m.resampled_length == m.expected_resampled_length),
      Check('resampled sine max |error|', m.resample_max_error,
            f'<= {_RESAMPLE_MAX_ERROR:g}',
            m.resample_max_error <= _RESAMPLE_MAX_ERROR),
      _relative_check('embedding mean', m.embedding_mean,
                      expected.embedding_mean, expected.rtol),
      _relative_check('embedding std', m.embedding_std,
                      expected.embedding_std, expected.rtol),
      _relative_check('postprocessed mean', m.postprocessed_mean,
                      expected.postprocessed_mean, expected.rtol),
      _relative_check('postprocessed std', m.postprocessed_std,
                      expected.postprocessed_std, expected.rtol),
  )
  return SmokeResult(checks=checks, measurement=measurement)


def run_smoke_test(checkpoint_path: Optional[PathLike] = None,
                   pca_params_path: Optional[PathLike] = None,
                   expected: SmokeExpectation = UPSTREAM_EXPECTED,
                   params: Params = DEFAULT_PARAMS) -> SmokeResult:
  """Runs the smoke test.

  Args:
    checkpoint_path: the checkpoint; None means
      `workspace.default_checkpoint_path()`.
    pca_params_path: the PCA parameters; None means
      `workspace.default_pca_params_path()`.
    expected: the statistics to compare with; the default is upstream's for
      the released files.
    params: hyperparameters.

  Returns:
    A `SmokeResult`; `result.passed` says whether every check held.

  Raises:
    vggish.workspace.MissingModelFileError: a file does not exist (the
      message names `python -m tools.download`).
    vggish.checkpoint.CheckpointError: the checkpoint cannot be loaded.
  """
  checkpoint_path = workspace.require_model_file(
      checkpoint_path, workspace.CHECKPOINT_NAME)
  pca_params_path = workspace.require_model_file(
      pca_params_path, workspace.PCA_PARAMS_NAME)
  return evaluate(measure(checkpoint_path, pca_params_path, params), expected)
