"""PCA whitening and 8-bit quantization of VGGish embeddings, as upstream.

The released AudioSet features are VGGish embeddings passed through this
postprocessor; a port must produce the same bytes. Three details matter:
the PCA is applied in float64 (float32 flips ~1e-5 of the bytes), as
`eigen_vectors @ (embeddings.T - means)`; values are clipped to
[quantize_min_val, quantize_max_val]; and the scaled values are cast to uint8 by
truncation, not rounding (rounding changes about a quarter of the bytes).
"""

import os
from typing import Tuple, Union

import numpy as np

from vggish.params import DEFAULT_PARAMS, Params

PcaParams = Tuple[np.ndarray, np.ndarray]


def _check_pca_arrays(eigen_vectors, means, params: Params,
                      source: str) -> PcaParams:
  """Validates PCA arrays and returns float64 ([d, d], [d, 1]) copies."""
  size = params.embedding_size
  eigen_vectors = np.array(eigen_vectors, dtype=np.float64)
  means = np.array(means, dtype=np.float64)
  if eigen_vectors.shape != (size, size):
    raise ValueError(
        f'{source}: PCA eigen vectors must have shape ({size}, {size}), got '
        f'{eigen_vectors.shape}')
  # The released vggish_pca_params.npz stores the means flat ([128]); upstream
  # reshapes them to a column, as we do.
  if means.shape not in ((size,), (size, 1)):
    raise ValueError(
        f'{source}: PCA means must have shape ({size},) or ({size}, 1), got '
        f'{means.shape}')
  return eigen_vectors, means.reshape(size, 1)


def load_pca_params(path: Union[str, os.PathLike],
                    params: Params = DEFAULT_PARAMS) -> PcaParams:
  """Loads the PCA parameters from a `vggish_pca_params.npz` file.

  Args:
    path: the .npz file, with keys `params.pca_eigen_vectors_name` and
      `params.pca_means_name`.
    params: hyperparameters (key names and embedding size).

  Returns:
    (eigen_vectors float64 [128, 128], means float64 [128, 1]). Means stored
    flat as [128] (as in the released file) are reshaped to a column.

  Raises:
    ValueError: if the file is missing or unreadable, lacks a key, or an array
      has the wrong shape.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise ValueError(
        f'PCA parameters file not found: {path!r}; download '
        f'vggish_pca_params.npz (python -m tools.download) or pass its path')
  keys = (params.pca_eigen_vectors_name, params.pca_means_name)
  try:
    data = np.load(path, allow_pickle=False)
  except (OSError, EOFError, ValueError) as e:  # Not a numpy file at all.
    raise ValueError(f'cannot read PCA parameters from {path}: {e}') from e
  if not isinstance(data, np.lib.npyio.NpzFile):  # A single .npy array.
    raise ValueError(f'cannot read PCA parameters from {path}: expected an '
                     f'.npz archive with keys {list(keys)}, got one array')
  try:
    with data:
      arrays = {key: data[key] for key in keys if key in data.files}
      found = sorted(data.files)
  except ValueError as e:  # E.g. an object array, refused without pickle.
    raise ValueError(f'cannot read PCA parameters from {path}: {e}') from e
  missing = [key for key in keys if key not in arrays]
  if missing:
    raise ValueError(
        f'{path}: missing key(s) {missing}; found {found}. Is this a '
        f'vggish_pca_params.npz file?')
  eigen_vectors, means = arrays[keys[0]], arrays[keys[1]]
  return _check_pca_arrays(eigen_vectors, means, params, path)


def quantize(values: np.ndarray, params: Params = DEFAULT_PARAMS) -> np.ndarray:
  """Clips to the quantization range and maps it onto 0..255 by truncation.

  Args:
    values: float array of any shape (PCA-applied embeddings).
    params: hyperparameters (`quantize_min_val`, `quantize_max_val`).

  Returns:
    uint8 array of the same shape.
  """
  lo, hi = params.quantize_min_val, params.quantize_max_val
  clipped = np.clip(np.asarray(values, dtype=np.float64), lo, hi)
  scaled = (clipped - lo) * (255.0 / (hi - lo))
  # Truncation (astype), as upstream: the released bytes depend on it.
  return scaled.astype(np.uint8)


def dequantize(quantized, params: Params = DEFAULT_PARAMS) -> np.ndarray:
  """Maps quantized bytes back to floats: `q * (max - min) / 255 + min`.

  With the defaults this is `q * 4/255 - 2`, the inverse a consumer of the
  released AudioSet features applies. Truncation makes the result up to one
  step (4/255) below the value that was quantized.

  Args:
    quantized: uint8 (or integer) array of any shape.
    params: hyperparameters (`quantize_min_val`, `quantize_max_val`).

  Returns:
    float32 array of the same shape. Computed in float32 with the same two
    operations as the TFRecord reader (`vggish.records`), so both agree.
  """
  lo, hi = params.quantize_min_val, params.quantize_max_val
  q = np.asarray(quantized).astype(np.float32)
  return q * np.float32((hi - lo) / 255.0) + np.float32(lo)


class Postprocessor:
  """Applies upstream's PCA whitening and 8-bit quantization to embeddings."""

  def __init__(self, pca_params: Union[str, os.PathLike, PcaParams],
               params: Params = DEFAULT_PARAMS):
    """Loads and checks the PCA parameters.

    Args:
      pca_params: path of `vggish_pca_params.npz`, or an (eigen_vectors
        [128, 128], means [128] or [128, 1]) tuple.
      params: hyperparameters.

    Raises:
      ValueError: if the parameters cannot be loaded or have wrong shapes.
    """
    self._params = params
    if isinstance(pca_params, (str, os.PathLike)):
      self._eigen_vectors, self._means = load_pca_params(pca_params, params)
    elif isinstance(pca_params, (tuple, list)) and len(pca_params) == 2:
      self._eigen_vectors, self._means = _check_pca_arrays(
          pca_params[0], pca_params[1], params, 'pca_params')
    else:
      raise ValueError(
          'pca_params must be a path to vggish_pca_params.npz or an '
          f'(eigen_vectors, means) tuple, got {type(pca_params).__name__}')

  @property
  def eigen_vectors(self) -> np.ndarray:
    """float64 [128, 128]."""
    return self._eigen_vectors

  @property
  def means(self) -> np.ndarray:
    """float64 [128, 1]."""
    return self._means

  def postprocess(self, embeddings: np.ndarray) -> np.ndarray:
    """PCA-whitens and quantizes embeddings to bytes.

    Args:
      embeddings: float [num_examples, 128] (num_examples may be 0), or one
        embedding [128].

    Returns:
      uint8 of the input's shape: [num_examples, 128] or [128].

    Raises:
      ValueError: if the last dimension is not 128 or the rank is not 1 or 2.
    """
    size = self._params.embedding_size
    embeddings = np.asarray(embeddings)
    if embeddings.ndim not in (1, 2) or embeddings.shape[-1] != size:
      raise ValueError(
          f'embeddings must have shape [num_examples, {size}] or [{size}], got '
          f'{embeddings.shape}')
    batch = np.atleast_2d(embeddings).astype(np.float64)  # [n, 128]
    # Upstream's formula and operand order, in float64: [128, n] -> [n, 128].
    pca_applied = (self._eigen_vectors @ (batch.T - self._means)).T
    return quantize(pca_applied, self._params).reshape(embeddings.shape)
