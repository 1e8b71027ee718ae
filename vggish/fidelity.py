"""How far the opt-in fast modes move what `tools.extract` writes.

The fast modes are `--frontend tf` (the log-mel in float32, in-graph) and
`--precision bfloat16` (the model's math in bfloat16). `compare` runs the
faithful path (numpy frontend, float32 model) and a fast mode on the same
inputs (`vggish.pipelines.steps.prepare_input`), quantizes both with the same
PCA, and reports over all examples:

- log-mel examples: max |fast - faithful| (0 when only the model differs);
- raw embeddings: max and median of |fast - faithful| / max |faithful| per
  example, and the smallest cosine similarity;
- postprocessed uint8 bytes: the share identical, the share within +-1, and
  the largest difference.

`python -m tools.benchmark --compare_fast_modes` prints them for the golden
inputs' audio and a generated corpus; the README quotes a run.
"""

import dataclasses
from typing import List, Sequence

import numpy as np

from vggish import corpus
from vggish import postprocess as postprocess_lib
from vggish.embedder import BatchPacker, Embedder
from vggish.params import DEFAULT_PARAMS, Params
from vggish.pipelines import steps


@dataclasses.dataclass
class Agreement:
  """Agreement of a fast mode's outputs with the faithful path's, over `num_examples` examples."""
  num_files: int
  num_examples: int
  max_example_diff: float
  max_embedding_rel: float
  median_embedding_rel: float
  min_cosine: float
  bytes_equal: float  # Share of uint8 values identical.
  bytes_within_one: float  # Share within +-1.
  max_byte_diff: int

  def report(self, name: str) -> str:
    return (f'{name}: {self.num_files} files, {self.num_examples} examples; '
            f'log-mel max |diff| {self.max_example_diff:.2e}; raw embeddings '
            f'|diff|/max|e| max {self.max_embedding_rel:.2e}, median '
            f'{self.median_embedding_rel:.2e}, cosine >= {self.min_cosine:.6f}; '
            f'uint8 bytes identical '
            f'{100 * self.bytes_equal:.3f} %, within +-1 '
            f'{100 * self.bytes_within_one:.3f} %, max diff {self.max_byte_diff}')


def _embed(embedder: Embedder, examples: Sequence[np.ndarray]) -> List[np.ndarray]:
  packer = BatchPacker(embedder)
  done = []
  for i, block in enumerate(examples):
    done.extend(packer.add(i, block))
  done.extend(packer.flush())
  return [embeddings for _, embeddings in sorted(done, key=lambda pair: pair[0])]


def compare(paths: Sequence[str], pca_params_path: str, embedder: Embedder,
            fast_embedder: Embedder, fast_frontend: str = steps.NUMPY_FRONTEND,
            params: Params = DEFAULT_PARAMS) -> Agreement:
  """Compares a fast mode with the faithful path on `paths` (see module doc).

  Args:
    paths: audio files or directories.
    pca_params_path: the PCA file for the uint8 comparison.
    embedder: the faithful model (float32).
    fast_embedder: the fast mode's model (`embedder` again to compare
      frontends only).
    fast_frontend: the fast mode's frontend.
    params: frontend settings.

  Raises:
    ValueError: no input gave examples.
  """
  postprocessor = postprocess_lib.Postprocessor(pca_params_path, params)
  numpy_examples, tf_examples = [], []
  for item in corpus.discover_inputs(list(paths)):
    a = steps.prepare_input(item, params, frontend=steps.NUMPY_FRONTEND)
    b = (a if fast_frontend == steps.NUMPY_FRONTEND
         else steps.prepare_input(item, params, frontend=fast_frontend))
    if a.error is None and b.error is None and a.examples.shape[0]:
      numpy_examples.append(a.examples)
      tf_examples.append(b.examples)
  if not numpy_examples:
    raise ValueError('no input gave examples')
  reference = np.concatenate(_embed(embedder, numpy_examples))
  other = np.concatenate(_embed(fast_embedder, tf_examples))
  scale = np.abs(reference).max(axis=1, keepdims=True)
  relative = np.abs(other - reference) / scale
  cosine = np.sum(reference * other, axis=1) / (
      np.linalg.norm(reference, axis=1) * np.linalg.norm(other, axis=1))
  byte_diff = np.abs(postprocessor.postprocess(other).astype(np.int16) -
                     postprocessor.postprocess(reference).astype(np.int16))
  return Agreement(
      num_files=len(numpy_examples), num_examples=reference.shape[0],
      max_example_diff=float(max(np.abs(t - n).max()
                                 for t, n in zip(tf_examples, numpy_examples))),
      max_embedding_rel=float(relative.max()),
      median_embedding_rel=float(np.median(relative)),
      min_cosine=float(cosine.min()),
      bytes_equal=float(np.mean(byte_diff == 0)),
      bytes_within_one=float(np.mean(byte_diff <= 1)),
      max_byte_diff=int(byte_diff.max()))
