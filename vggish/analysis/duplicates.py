"""Near-duplicate clips: pairs whose examples match, with the time offset.

A copy of a clip that was shifted, re-encoded, made louder or quieter, or cut
out of a longer recording still has examples (0.96 s windows) whose VGGish
embeddings lie close to the original's, one after the other at a constant
time offset. `find_duplicates` looks for exactly that:

1. Every example embedding is centred on the corpus mean and scaled to unit
   length; similarity is the cosine of two such vectors.
2. All example pairs of different clips with similarity >= `threshold` are
   found by blocked matrix products over the whole corpus (exact, no
   approximate index); their clips are the candidate pairs.
3. Generic examples (silence, hum, a background many clips share: an example
   similar to more than `max_neighbors` other clips) neither propose pairs
   nor count in a pair's score, so that clips sharing only silence are not
   called duplicates. A clip made only of generic examples pairs with none.
4. Each candidate pair is scored at every alignment (diagonal of the two
   clips' example similarity matrix) by the mean similarity of its
   overlapping example pairs; the best alignment is reported when its mean
   is >= `threshold` over at least `min_examples` pairs (or all of the
   shorter clip's).

A short clip inside a long one is a sub-clip match; `offset_seconds` says
where: the audio at time t of clip a is at t + offset_seconds of clip b
(resolution: the example hop, 0.96 s by default; extract with
`--example_hop_seconds 0.48` for finer offsets and for copies shifted by
about half an example, whose windows otherwise never line up).

The defaults (threshold 0.9, 2 examples, 20 neighbours) and what they find
are measured on AudioSet's released embeddings and, with
`vggish.analysis.duplicate_benchmark`, on generated duplicates (shifted,
MP3 re-encoded, gain-changed, cropped copies); README.md has the figures.
"""

import csv
import dataclasses
import io
import logging
import os
from typing import TYPE_CHECKING, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from vggish import files as files_lib
from vggish import progress as progress_lib
from vggish.params import DEFAULT_PARAMS, Params

if TYPE_CHECKING:  # The records reader imports TensorFlow, which this module does not need.
  from vggish.analysis import clips as clips_lib

DEFAULT_THRESHOLD = 0.9
DEFAULT_MIN_EXAMPLES = 2
DEFAULT_MAX_NEIGHBORS = 20

PAIR_FIELDS = ('id_a', 'id_b', 'similarity', 'offset_seconds', 'start_a',
               'start_b', 'matched_seconds', 'coverage_a', 'coverage_b')

# Rows of the corpus multiplied at once: [block, total_examples] float32.
_BLOCK_ELEMENTS = 64 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Pair:
  """Two clips with a matching stretch.

  Attributes:
    id_a, id_b: the clips (id_a sorts first).
    similarity: mean cosine similarity of the matched examples.
    offset_seconds: time of b minus time of a for the same audio.
    start_a, start_b: where the matched stretch starts in each clip
      (seconds from the clip's start).
    matched_seconds: length of the matched stretch (examples x hop).
    coverage_a, coverage_b: fraction of each clip's examples matched
      (1.0 for both: a full duplicate; 1.0 for one: it lies inside the other).
  """
  id_a: str
  id_b: str
  similarity: float
  offset_seconds: float
  start_a: float
  start_b: float
  matched_seconds: float
  coverage_a: float
  coverage_b: float


def normalized_examples(clips: 'clips_lib.Clips') -> np.ndarray:
  """float32 [total_examples, 128]: centred on the corpus mean, unit length."""
  values = clips.embeddings.astype(np.float32)
  if not len(values):
    return values
  values = values - values.mean(axis=0, dtype=np.float64).astype(np.float32)
  norms = np.linalg.norm(values, axis=1, keepdims=True)
  # An all-zero row (every example identical) matches nothing.
  return values / np.maximum(norms, 1e-12)


def _candidate_examples(vectors: np.ndarray, example_clip: np.ndarray,
                        threshold: float, show_progress: bool = False
                        ) -> Tuple[np.ndarray, np.ndarray]:
  """Example pairs (i, j) of different clips, clip(i) < clip(j), sim >= threshold."""
  n = len(vectors)
  block = max(1, min(n, _BLOCK_ELEMENTS // max(n, 1)))
  rows, cols = [], []
  # Block k compares its rows with the later rows only: work ~ (n - start).
  progress = progress_lib.Progress(total=n * (n + 1) / 2e6, unit='M pairs',
                                   desc='comparing examples', enabled=show_progress)
  for start in range(0, n, block):
    stop = min(n, start + block)
    # Only later clips: each clip pair is seen once, never with itself.
    first = int(np.searchsorted(example_clip, example_clip[start], side='right'))
    if first >= n:
      break
    sims = vectors[start:stop] @ vectors[first:].T  # [b, n - first]
    i, j = np.nonzero(sims >= threshold)
    i, j = i + start, j + first
    # Rows of the block's later clips also see their own clip's columns.
    later = example_clip[j] > example_clip[i]
    rows.append(i[later])
    cols.append(j[later])
    # Rows start..stop meet the later rows: about (n - start + n - stop) / 2 each.
    progress.update((2 * n - start - stop) * (stop - start) / 2e6)
  progress.close()
  if not rows:
    return np.zeros(0, np.int64), np.zeros(0, np.int64)
  return np.concatenate(rows).astype(np.int64), np.concatenate(cols).astype(np.int64)


def _generic_examples(rows, cols, example_clip, num_examples: int,
                      max_neighbors: int) -> np.ndarray:
  """bool [total_examples]: examples matching more than max_neighbors clips."""
  if max_neighbors <= 0 or not len(rows):
    return np.zeros(num_examples, bool)
  # Distinct (example, other clip) pairs, counted from both sides.
  ex = np.concatenate([rows, cols])
  other = np.concatenate([example_clip[cols], example_clip[rows]])
  keys = np.unique(ex * (int(example_clip.max()) + 1) + other)
  counts = np.bincount(keys // (int(example_clip.max()) + 1),
                       minlength=num_examples)
  return counts > max_neighbors


def best_alignment(sims: np.ndarray, min_overlap: int,
                   usable_a: Optional[np.ndarray] = None,
                   usable_b: Optional[np.ndarray] = None) -> Tuple[float, int, int, int]:
  """The alignment of two clips whose overlapping examples agree best.

  Args:
    sims: [n_a, n_b] cosine similarities of the two clips' examples.
    min_overlap: fewest overlapping usable example pairs an alignment needs.
    usable_a, usable_b: bool [n_a], [n_b]: examples that may count (not
      generic); default all.

  Returns:
    (mean similarity of the overlapping usable example pairs, overlap in
    examples, first example of a, first example of b) of the best alignment
    (diagonal of `sims`); ties go to the longer overlap. (-inf, 0, 0, 0)
    when no alignment has `min_overlap` usable pairs.
  """
  n_a, n_b = sims.shape
  if usable_a is None:
    usable_a = np.ones(n_a, bool)
  if usable_b is None:
    usable_b = np.ones(n_b, bool)
  usable = usable_a[:, None] & usable_b[None, :]
  best = (-np.inf, 0, 0, 0)
  for d in range(-(n_a - 1), n_b):  # Example i of a meets example i + d of b.
    keep = np.diagonal(usable, offset=d)
    if keep.sum() < max(min_overlap, 1):
      continue
    mean = float(np.mean(np.diagonal(sims, offset=d)[keep]))
    if (mean, len(keep)) > best[:2]:
      best = (mean, len(keep), max(0, -d), max(0, d))
  return best


def find_duplicates(clips: 'clips_lib.Clips',
                    threshold: float = DEFAULT_THRESHOLD,
                    min_examples: int = DEFAULT_MIN_EXAMPLES,
                    max_neighbors: int = DEFAULT_MAX_NEIGHBORS,
                    params: Params = DEFAULT_PARAMS,
                    show_progress: bool = False) -> List[Pair]:
  """Pairs of clips with a matching stretch of examples.

  Args:
    clips: the corpus (`vggish.analysis.clips.load_clips`), any embedding
      format (one format and one hop for the whole corpus).
    threshold: cosine similarity at which two examples match (see the module
      docstring for what it means and how it was measured).
    min_examples: consecutive matching examples a pair needs (a clip shorter
      than that needs all of its examples to match).
    max_neighbors: an example that matches more than this many other clips is
      generic (silence, hum) and proposes no pair; 0: no limit.
    params: for the example window (`matched_seconds`).
    show_progress: report the comparisons done, their rate and the ETA on
      stderr (about 3 minutes for 22,160 AudioSet clips on two cores).

  Returns:
    Pairs, most similar first (ties: longest match, then ids).

  Raises:
    ValueError: for a threshold outside (0, 1], min_examples < 1, or records
      of more than one example hop.
  """
  if not 0 < threshold <= 1:
    raise ValueError(f'the similarity threshold must lie in (0, 1], got {threshold}')
  if min_examples < 1:
    raise ValueError(f'min_examples must be at least 1, got {min_examples}')
  if max_neighbors < 0:
    raise ValueError(f'max_neighbors must be >= 0, got {max_neighbors}')
  hops = np.unique(np.round(clips.hop_seconds.astype(np.float64), 4))
  if len(hops) > 1:
    raise ValueError(f'the records mix example hops {hops.tolist()}; compare '
                     'clips extracted with one hop')
  if not len(clips.embeddings):
    return []
  hop = float(hops[0])
  vectors = normalized_examples(clips)
  example_clip = clips.example_clip
  rows, cols = _candidate_examples(vectors, example_clip, threshold,
                                   show_progress)
  generic = _generic_examples(rows, cols, example_clip, len(vectors), max_neighbors)
  if generic.any():
    logging.info('duplicates: %d of %d examples match more than %d clips and '
                 'are treated as generic (silence, hum)', int(generic.sum()),
                 len(vectors), max_neighbors)
  # Generic examples neither propose candidates nor count in a pair's score.
  keep = ~generic[rows] & ~generic[cols]
  pairs = np.unique(np.stack([example_clip[rows[keep]],
                              example_clip[cols[keep]]], axis=1), axis=0)
  logging.info('duplicates: %d candidate clip pairs from %d matching example '
               'pairs', len(pairs), int(keep.sum()))
  counts = clips.num_examples
  window = params.example_window_seconds
  found = []
  for a, b in pairs:
    need = int(min(min_examples, counts[a], counts[b]))
    sa = slice(clips.splits[a], clips.splits[a + 1])
    sb = slice(clips.splits[b], clips.splits[b + 1])
    mean, length, start_a, start_b = best_alignment(
        vectors[sa] @ vectors[sb].T, need, ~generic[sa], ~generic[sb])
    if mean < threshold:
      continue
    # Report with id_a sorting first.
    if clips.ids[b] < clips.ids[a]:
      a, b, start_a, start_b = b, a, start_b, start_a
    found.append(Pair(
        id_a=str(clips.ids[a]), id_b=str(clips.ids[b]), similarity=mean,
        offset_seconds=(start_b - start_a) * hop,
        start_a=start_a * hop, start_b=start_b * hop,
        matched_seconds=(length - 1) * hop + window,
        coverage_a=length / counts[a], coverage_b=length / counts[b]))
  found.sort(key=lambda p: (-p.similarity, -p.matched_seconds, p.id_a, p.id_b))
  return found


def check_output(path: Union[str, os.PathLike]) -> str:
  """Refuses a pairs path that cannot be written (see `vggish.files`)."""
  return files_lib.check_output_file(path, 'the pairs')


def write_pairs(pairs: Sequence[Pair], path: Union[str, os.PathLike]) -> None:
  """Writes pairs as CSV (`PAIR_FIELDS`), atomically."""

  def write(f):
    text = io.TextIOWrapper(f, encoding='utf-8', newline='')
    writer = csv.writer(text)
    writer.writerow(PAIR_FIELDS)
    for p in pairs:
      writer.writerow([p.id_a, p.id_b, f'{p.similarity:.6f}',
                       f'{p.offset_seconds:.3f}', f'{p.start_a:.3f}',
                       f'{p.start_b:.3f}', f'{p.matched_seconds:.3f}',
                       f'{p.coverage_a:.4f}', f'{p.coverage_b:.4f}'])
    text.flush()
    text.detach()  # Leaves `f` open for the fsync.

  files_lib.write_atomically(path, write, 'the pairs')


def read_pair_ids(path: Union[str, os.PathLike]) -> List[Tuple[str, str]]:
  """(id_a, id_b) of a pairs CSV (ours, or any CSV with those two columns).

  Raises:
    FileNotFoundError: no such file.
    ValueError: the file lacks an id_a or id_b column.
  """
  path = os.fspath(path)
  with open(path, newline='', encoding='utf-8') as f:
    reader = csv.DictReader(f)
    fields = reader.fieldnames or []
    if 'id_a' not in fields or 'id_b' not in fields:
      raise ValueError(f'{path}: a duplicate-pairs CSV needs the columns id_a '
                       f'and id_b (tools.duplicates writes them), got {fields}')
    return [(row['id_a'], row['id_b']) for row in reader]


def group_ids(pairs: Iterable[Tuple[str, str]]) -> Dict[str, str]:
  """Connected components of duplicate pairs: id -> its group's smallest id.

  Clips linked through any chain of pairs share one group, so a split by
  group keeps every copy of a clip on one side.
  """
  parent: Dict[str, str] = {}

  def root(x: str) -> str:
    parent.setdefault(x, x)
    while parent[x] != x:
      parent[x] = parent[parent[x]]
      x = parent[x]
    return x

  for a, b in pairs:
    ra, rb = root(a), root(b)
    if ra != rb:
      # The smaller id is the root: a group's name does not depend on order.
      parent[max(ra, rb)] = min(ra, rb)
  return {x: root(x) for x in list(parent)}


def load_groups(path: Optional[Union[str, os.PathLike]]) -> Optional[Dict[str, str]]:
  """`group_ids` of a pairs CSV, or None without one."""
  if path is None:
    return None
  return group_ids(read_pair_ids(path))


GROUP_FIELDS = ('id', 'group')


def write_groups(groups: Dict[str, str], path: Union[str, os.PathLike]) -> None:
  """Writes id -> group as CSV (`GROUP_FIELDS`), sorted by group then id, atomically."""

  def write(f):
    text = io.TextIOWrapper(f, encoding='utf-8', newline='')
    writer = csv.writer(text)
    writer.writerow(GROUP_FIELDS)
    for clip_id, group in sorted(groups.items(), key=lambda kv: (kv[1], kv[0])):
      writer.writerow([clip_id, group])
    text.flush()
    text.detach()

  files_lib.write_atomically(path, write, 'the duplicate groups')


def read_groups(path: Union[str, os.PathLike]) -> Dict[str, str]:
  """id -> group of a `write_groups` CSV."""
  with open(os.fspath(path), newline='', encoding='utf-8') as f:
    return {row['id']: row['group'] for row in csv.DictReader(f)}
