"""The Fréchet distance of two Gaussians of embeddings, with the reference FAD's numerics.

A set of embeddings becomes one Gaussian, `Stats`: the mean and covariance
(n - 1 normalization) accumulated in float64 over all embeddings, then
stored as float32, as the reference stores them. The distance of two
(`frechet_distance`) is computed in float64 from those float32 values:

  |mu_e - mu_b|^2 + tr(S_e) + tr(S_b) - 2 tr(sqrtm(S_e S_b))

with `scipy.linalg.sqrtm`; when the square root is not finite (singular
covariances: fewer embeddings than dimensions), it is retried with 1e-7 I
added to both covariances; an imaginary part above 1e-3 on its diagonal is
an error (`FadError`), a smaller one is dropped.

Statistics files (`save_stats`, `load_stats`) are .npz files holding mu and
sigma and what they were computed from (mode, checkpoint and audio digests),
so that `vggish.analysis.fad` can tell a cache that fits from a stale one.
This module needs numpy and, for the distance, scipy (the `fad` extra); not
TensorFlow.
"""

import dataclasses
import logging
import os
import zipfile

import numpy as np

from vggish import extras
from vggish import files as files_lib

SQRTM_OFFSET = 1e-7  # Added to both covariances when sqrtm is not finite.
MAX_IMAGINARY = 1e-3  # Largest |imaginary part| of sqrtm's diagonal that is dropped.

STATS_FORMAT = 'vggish-tf2 FAD statistics v1'


class FadError(ValueError):
  """The distance cannot be computed (too few embeddings, a complex square root, ...)."""


@dataclasses.dataclass(frozen=True)
class Stats:
  """The Gaussian of a set of embeddings, as stored by the reference.

  Attributes:
    mu: float32 [d], the mean.
    sigma: float32 [d, d], the covariance (n - 1 normalization).
    count: embeddings it was computed from.
    mode: 'reference' or 'resample' for statistics of audio files; '' for
      statistics of given embeddings.
    checkpoint_sha256: SHA-256 of the checkpoint file that embedded the
      audio ('' when unknown).
    inputs_sha256: digest of the audio files (paths, sizes, modification
      times) it was computed from ('' when unknown).
    num_files: audio files that gave embeddings.
  """
  mu: np.ndarray
  sigma: np.ndarray
  count: int
  mode: str = ''
  checkpoint_sha256: str = ''
  inputs_sha256: str = ''
  num_files: int = 0

  @property
  def dim(self) -> int:
    return int(self.mu.shape[0])


class StatsAccumulator:
  """Mean and covariance of embeddings given batch by batch, in float64.

  Batches are merged with Chan et al.'s pairwise update (count, mean,
  centred scatter), which stays accurate when the mean is large compared
  with the spread, unlike a running sum of squares.
  """

  def __init__(self):
    self.count = 0
    self._mean = None
    self._scatter = None

  def add(self, embeddings: np.ndarray) -> None:
    """Adds [k, d] embeddings (k may be 0)."""
    x = np.asarray(embeddings, np.float64)
    if x.ndim != 2:
      raise ValueError(f'embeddings must be [n, d], got shape {x.shape}')
    k = x.shape[0]
    if k == 0:
      return
    if self._mean is None:
      self._mean = np.zeros(x.shape[1])
      self._scatter = np.zeros((x.shape[1], x.shape[1]))
    elif x.shape[1] != self._mean.shape[0]:
      raise ValueError(f'embeddings of size {x.shape[1]} added to statistics of '
                       f'size {self._mean.shape[0]}')
    if not np.isfinite(x).all():
      raise FadError('some embeddings are NaN or infinite; the checkpoint is broken')
    batch_mean = x.mean(axis=0)
    centred = x - batch_mean
    delta = batch_mean - self._mean
    total = self.count + k
    self._scatter += centred.T @ centred + np.outer(delta, delta) * (self.count * k / total)
    self._mean += delta * (k / total)
    self.count = total

  def stats(self, **info) -> Stats:
    """The float32 statistics (keywords: the other `Stats` fields).

    Raises:
      FadError: fewer than 2 embeddings (no covariance).
    """
    if self.count < 2:
      raise FadError(f'{self.count} embedding(s): a covariance needs at least 2 '
                     '(at least 1.5 s of audio in all)')
    sigma = self._scatter / (self.count - 1)
    return Stats(mu=self._mean.astype(np.float32), sigma=sigma.astype(np.float32),
                 count=self.count, **info)


def compute_stats(embeddings: np.ndarray, **info) -> Stats:
  """`Stats` of embeddings [n, d] (float64 accumulation, float32 result)."""
  accumulator = StatsAccumulator()
  accumulator.add(embeddings)
  return accumulator.stats(**info)


def frechet_distance(mu_e, sigma_e, mu_b, sigma_b) -> float:
  """|mu_e - mu_b|^2 + tr(S_e) + tr(S_b) - 2 tr(sqrtm(S_e S_b)), in float64.

  Raises:
    FadError: the shapes disagree, the square root is not finite even with
      1e-7 I added to both covariances, or its diagonal has an imaginary
      part above 1e-3.
    vggish.extras.MissingExtraError: scipy is not installed.
  """
  linalg = extras.require('scipy.linalg', 'fad', 'the Fréchet Audio Distance')
  mu_e, mu_b = (np.asarray(m, np.float64) for m in (mu_e, mu_b))
  sigma_e, sigma_b = (np.asarray(s, np.float64) for s in (sigma_e, sigma_b))
  d = mu_e.shape[0]
  if mu_b.shape != (d,) or sigma_e.shape != (d, d) or sigma_b.shape != (d, d):
    raise FadError(f'statistics of different sizes: mean {mu_e.shape} and {mu_b.shape}, '
                   f'covariance {sigma_e.shape} and {sigma_b.shape}')
  root = linalg.sqrtm(sigma_e @ sigma_b)
  if not np.isfinite(root).all():
    logging.warning('the square root of the covariance product is not finite; '
                    'adding %g I to both covariances', SQRTM_OFFSET)
    offset = np.eye(d) * SQRTM_OFFSET
    root = linalg.sqrtm((sigma_e + offset) @ (sigma_b + offset))
    if not np.isfinite(root).all():
      raise FadError('the square root of the covariance product is not finite, even '
                     f'with {SQRTM_OFFSET:g} I added to both covariances')
  if np.iscomplexobj(root):
    imaginary = float(np.max(np.abs(np.diagonal(root).imag)))
    if imaginary > MAX_IMAGINARY:
      raise FadError(f'the square root of the covariance product has an imaginary part '
                     f'of {imaginary:.3g} on its diagonal (more than {MAX_IMAGINARY:g}): '
                     'the covariances are not valid')
    root = root.real
  diff = mu_e - mu_b
  return float(diff @ diff + np.trace(sigma_e) + np.trace(sigma_b) - 2.0 * np.trace(root))


def distance(eval_stats: Stats, background_stats: Stats) -> float:
  """The FAD of two `Stats` (`frechet_distance` of their float32 values)."""
  return frechet_distance(eval_stats.mu, eval_stats.sigma,
                          background_stats.mu, background_stats.sigma)


def save_stats(stats: Stats, path) -> None:
  """Writes `stats` as an .npz (mu, sigma float32, and what they were computed from), atomically."""
  path = files_lib.check_output_file(path, 'the FAD statistics')

  def write(f):
    np.savez(f, format=np.str_(STATS_FORMAT), mu=stats.mu.astype(np.float32),
             sigma=stats.sigma.astype(np.float32), count=np.int64(stats.count),
             mode=np.str_(stats.mode), checkpoint_sha256=np.str_(stats.checkpoint_sha256),
             inputs_sha256=np.str_(stats.inputs_sha256), num_files=np.int64(stats.num_files))

  files_lib.write_atomically(path, write, what='the FAD statistics')


def _read_reference_stats(path: str) -> dict:
  """mu and sigma of the reference implementation's statistics file, or ValueError.

  That file is a TFRecord of one `tf.train.Example` whose float lists `mu`
  (d values) and `sigma` (d * d, row-major) are the float32 statistics.
  """
  import tensorflow as tf  # pylint: disable=import-outside-toplevel  (only for this format)
  try:
    record = next(iter(tf.data.TFRecordDataset(path)), None)
    if record is None:
      raise ValueError('an empty TFRecord file')
    example = tf.train.Example.FromString(record.numpy())
  except (tf.errors.OpError, ValueError, RuntimeError) as e:  # DecodeError is a RuntimeError.
    raise ValueError(f'{path}: not a FAD statistics file (an .npz of tools.fad, or the '
                     f'reference implementation\'s TFRecord): {" ".join(str(e).split())[:200]}'
                     ) from e
  features = example.features.feature
  if 'mu' not in features or 'sigma' not in features:
    raise ValueError(f'{path}: a TFRecord, but not of FAD statistics: its example has no mu '
                     f'and sigma (it has {", ".join(sorted(features)) or "nothing"})')
  mu = np.array(features['mu'].float_list.value, np.float32)
  sigma = np.array(features['sigma'].float_list.value, np.float32)
  if sigma.size != mu.size ** 2:
    raise ValueError(f'{path}: broken FAD statistics: {mu.size} means, {sigma.size} '
                     'covariance values')
  return {'mu': mu, 'sigma': sigma.reshape(mu.size, mu.size)}


def load_stats(path) -> Stats:
  """Reads a statistics file of `save_stats`, or of the reference implementation.

  The reference's (a TFRecord) records no mode, checkpoint or audio files,
  so nothing can check that it fits: it is used as it is.

  Raises:
    FileNotFoundError: no such file.
    ValueError: not a FAD statistics file, or broken.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f'FAD statistics {path!r}: no such file')
  with open(path, 'rb') as f:
    is_zip = f.read(4) == b'PK\x03\x04'
  if not is_zip:
    fields = _read_reference_stats(path)
    logging.info('%s: statistics of the reference implementation (%d dimensions)', path,
                 fields['mu'].size)
  else:
    try:
      with np.load(path, allow_pickle=False) as data:
        fields = {name: data[name] for name in data.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
      raise ValueError(f'{path}: not a FAD statistics file (.npz of tools.fad): {e}') from e
  if 'mu' not in fields or 'sigma' not in fields:
    raise ValueError(f'{path}: not a FAD statistics file: it has no mu and sigma arrays '
                     f'(it has {", ".join(sorted(fields)) or "nothing"})')
  mu = np.asarray(fields['mu'], np.float32)
  sigma = np.asarray(fields['sigma'], np.float32)
  if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
    raise ValueError(f'{path}: broken FAD statistics: mean {mu.shape}, covariance {sigma.shape}')
  if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
    raise ValueError(f'{path}: broken FAD statistics: NaN or infinite values')

  def text(name):
    return str(fields[name]) if name in fields else ''

  return Stats(mu=mu, sigma=sigma, count=int(fields.get('count', 0)), mode=text('mode'),
               checkpoint_sha256=text('checkpoint_sha256'),
               inputs_sha256=text('inputs_sha256'), num_files=int(fields.get('num_files', 0)))
