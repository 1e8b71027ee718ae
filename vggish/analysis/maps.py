"""2-D maps of a corpus: one point per clip, clips that sound alike close together.

clips (`clips.load_clips`) -> one vector per clip, the mean of its examples'
embeddings (`clip_vectors`) -> 2-D points (`project`: t-SNE by default, PCA,
or UMAP) -> a `ClipMap` with each clip's color (`build_map`) -> one
self-contained HTML page (`render_html`) and the same picture as a PNG
(`render_png`). `write_map` does all of it for `tools.map`.

Colors: a clip is drawn in the color of its label that is most frequent among
the mapped clips (ties: the lower class index), a choice that does not depend
on the order in which a record lists its labels; the legend names the
`max_legend` labels that color the most clips, the rest are drawn as "other",
and clips without labels as "no label" (grey).

The page fetches nothing when it is opened: its script, style and data are
inline, and its Content-Security-Policy forbids loading anything else except
the clips' audio, which must come from the page's own place (a file next to it,
or its own web server).
"""

import collections
import dataclasses
import html
import io
import json
import logging
import os
import pathlib
import time
import urllib.parse
from typing import Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from vggish import extras
from vggish import files as files_lib
from vggish.analysis import tables

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

METHODS = ('tsne', 'pca', 'umap')
METHOD_NAMES = {'tsne': 't-SNE', 'pca': 'PCA', 'umap': 'UMAP'}
DEFAULT_METHOD = 'tsne'

# t-SNE and UMAP first reduce to this many dimensions with PCA: the usual
# recipe, which drops noise and makes the neighbor search cheaper.
PCA_DIMS = 50
# Below 4 points t-SNE's perplexity ((n - 1) / 3) would be under one
# neighbor and UMAP's graph has almost no edges: both fall back to PCA.
MIN_NONLINEAR_POINTS = 4
_MAX_PERPLEXITY = 30.0
_MAX_UMAP_NEIGHBORS = 15

# Tableau's 10 colors without their grey for the 9 biggest labels, then their
# light versions, then two dark ones: distinguishable on white.
PALETTE = (
    '#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2',
    '#bcbd22', '#17becf', '#aec7e8', '#ffbb78', '#98df8a', '#ff9896', '#c5b0d5',
    '#c49c94', '#f7b6d2', '#dbdb8d', '#9edae5', '#393b79', '#637939')
OTHER_COLOR = '#cfcfcf'
NO_LABEL_COLOR = '#8a8a8a'
OTHER_NAME = 'other'
NO_LABEL_NAME = 'no label'
DEFAULT_MAX_LEGEND = len(PALETTE)


@dataclasses.dataclass(frozen=True)
class LegendEntry:
  """One color of a map.

  Attributes:
    name: the label's display name, `OTHER_NAME` or `NO_LABEL_NAME`.
    color: '#rrggbb'.
    count: how many clips are drawn in this color.
    kind: 'label', 'other' (labels outside the legend) or 'none' (no labels).
  """
  name: str
  color: str
  count: int
  kind: str = 'label'


@dataclasses.dataclass(frozen=True)
class ClipMap:
  """Clips placed in 2-D, with their colors.

  Attributes:
    ids: the clips' ids, [n] str.
    labels: each clip's label names (display names, or indices without a
      label map), n lists.
    xy: float32 [n, 2], the projection (arbitrary units).
    groups: int64 [n], each clip's entry in `legend`.
    legend: the colors: the top labels by clip count, then `OTHER_NAME` and
      `NO_LABEL_NAME` when some clip is drawn in them.
    method: the projection, one of `METHODS`.
    total_clips: clips in the records, before dropping those without
      examples and sampling.
    without_examples: clips left off because they have no example.
  """
  ids: Tuple[str, ...]
  labels: Tuple[Tuple[str, ...], ...]
  xy: np.ndarray
  groups: np.ndarray
  legend: Tuple[LegendEntry, ...]
  method: str
  total_clips: int
  without_examples: int = 0

  def __len__(self) -> int:
    return len(self.ids)

  def draw_order(self) -> np.ndarray:
    """int64 [n]: "no label" and "other" first (underneath), then by legend rank."""
    rank = np.array([{'none': -2, 'other': -1}.get(entry.kind, i)
                     for i, entry in enumerate(self.legend)], dtype=np.int64)
    if not len(self):
      return np.zeros(0, np.int64)
    return np.argsort(rank[self.groups], kind='stable')

  def describe(self) -> str:
    """One line: how many clips, which projection, what was left off."""
    text = f'{len(self):,} clips, {METHOD_NAMES[self.method]} of each clip\'s mean embedding'
    mappable = self.total_clips - self.without_examples
    if len(self) < mappable:
      text += f' (a random {len(self):,} of {mappable:,})'
    if self.without_examples:
      text += f'; {self.without_examples:,} clips without examples left off'
    return text


def clip_vectors(clips) -> Tuple[np.ndarray, np.ndarray]:
  """One vector per clip: the mean of its examples' embeddings.

  Args:
    clips: a `vggish.analysis.clips.Clips`.

  Returns:
    (vectors float32 [m, 128], kept int64 [m]): the means and the indices of
    their clips; clips without examples are left out (with a warning).
  """
  counts = clips.num_examples
  kept = np.flatnonzero(counts > 0).astype(np.int64)
  if len(kept) < len(counts):
    shown = ', '.join(repr(str(i)) for i in clips.ids[counts == 0][:3])
    logger.warning('%d of %d clips have no examples and are left off the map (%s%s)',
                   len(counts) - len(kept), len(counts), shown,
                   ', ...' if len(counts) - len(kept) > 3 else '')
  means = tables.pool(clips.embeddings, clips.splits, 'mean')  # NaN: no examples.
  return means[kept], kept


def _pca(x: np.ndarray, k: int) -> np.ndarray:
  """float64 [n, k]: the centered rows on their top k principal axes.

  Each axis' sign is fixed (its largest loading positive) so that results do
  not depend on the LAPACK build; missing axes (rank < k, singular values at
  rounding level) are zeros rather than noise.
  """
  centered = x - x.mean(axis=0)
  _, s, vt = np.linalg.svd(centered, full_matrices=False)  # vt: [min(n, d), d]
  rank = int((s > s[:1].max(initial=0) * max(x.shape) * np.finfo(s.dtype).eps).sum())
  axes = vt[:min(k, rank)]
  signs = np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])
  axes = axes * np.where(signs == 0, 1.0, signs)[:, None]
  out = np.zeros((len(x), k))
  out[:, :len(axes)] = centered @ axes.T
  return out


def _require_method(method: str):
  """The module a projection needs (None for PCA), or MissingExtraError."""
  if method not in METHODS:
    raise ValueError(f'unknown projection {method!r}; use one of {", ".join(METHODS)}')
  if method == 'tsne':
    return extras.require('sklearn.manifold', 'analysis', 'a t-SNE map')
  if method == 'umap':
    return extras.require('umap', 'umap', 'a UMAP map')
  return None


def project(vectors: np.ndarray, method: str = DEFAULT_METHOD, seed: int = 0) -> np.ndarray:
  """Places vectors in 2-D.

  Args:
    vectors: float [n, d], n >= 1.
    method: 'tsne' (scikit-learn's Barnes-Hut t-SNE, PCA init, perplexity
      min(30, (n - 1) / 3)), 'pca' (numpy, no extra needed) or 'umap'
      (umap-learn, the `umap` extra). t-SNE and UMAP reduce to 50 dimensions
      with PCA first, and fall back to PCA (with a warning) for fewer than 4
      points or when all points are the same.
    seed: the random seed of t-SNE and UMAP; the same seed and vectors give
      the same points.

  Returns:
    float32 [n, 2].

  Raises:
    ValueError: an unknown method, no vectors, or vectors that are not a
      finite 2-D array.
    vggish.extras.MissingExtraError: the method's package is not installed.
  """
  module = _require_method(method)
  x = np.asarray(vectors, dtype=np.float64)
  if x.ndim != 2:
    raise ValueError(f'vectors must be [n, d], not of shape {x.shape}')
  if not len(x):
    raise ValueError('there is nothing to map: no vectors')
  if not np.isfinite(x).all():
    raise ValueError(f'{int((~np.isfinite(x)).any(axis=1).sum())} vectors hold NaN or Inf')
  if method == 'pca':
    return _pca(x, 2).astype(np.float32)
  if len(x) < MIN_NONLINEAR_POINTS:
    logger.warning('%s needs at least %d points; %d given: using PCA',
                   METHOD_NAMES[method], MIN_NONLINEAR_POINTS, len(x))
    return _pca(x, 2).astype(np.float32)
  if not (x != x[0]).any():
    # scikit-learn's t-SNE crashes the process on these (its PCA init divides
    # by a zero spread); PCA puts them all at the origin.
    logger.warning('all %d points are the same: using PCA', len(x))
    return _pca(x, 2).astype(np.float32)
  if x.shape[1] > PCA_DIMS:
    x = _pca(x, PCA_DIMS)
  start = time.monotonic()
  if method == 'tsne':
    tsne = module.TSNE(n_components=2, perplexity=min(_MAX_PERPLEXITY, (len(x) - 1) / 3),
                       init='pca', learning_rate='auto', random_state=seed)
    out = tsne.fit_transform(x)
  else:
    # A seeded UMAP runs on one thread; saying so spares its warning.
    out = module.UMAP(n_components=2, n_neighbors=min(_MAX_UMAP_NEIGHBORS, len(x) - 1),
                      random_state=seed, n_jobs=1).fit_transform(x)
  logger.info('%s of %d points took %.1f s', METHOD_NAMES[method], len(x),
              time.monotonic() - start)
  return np.asarray(out, dtype=np.float32)


def color_groups(clip_labels: Sequence[Sequence[int]], names: Mapping[int, str],
                 max_legend: int = DEFAULT_MAX_LEGEND
                 ) -> Tuple[np.ndarray, Tuple[LegendEntry, ...]]:
  """Each clip's color: its label most frequent in `clip_labels` (see module doc).

  Args:
    clip_labels: each clip's class indices.
    names: class index -> display name (an index without one shows as itself).
    max_legend: how many labels get their own color, 0 to len(PALETTE).

  Returns:
    (groups int64 [n], legend): each clip's index into the legend.

  Raises:
    ValueError: max_legend out of range.
  """
  if not 0 <= max_legend <= len(PALETTE):
    raise ValueError(f'max_legend must be between 0 and {len(PALETTE)}, not {max_legend}')
  label_sets = [sorted({int(k) for k in labels}) for labels in clip_labels]
  frequency = collections.Counter(k for labels in label_sets for k in labels)
  # Most frequent first; ties: the lower index.
  best = [min(labels, key=lambda k: (-frequency[k], k)) if labels else None
          for labels in label_sets]
  colored = collections.Counter(k for k in best if k is not None)
  top = sorted(colored, key=lambda k: (-colored[k], -frequency[k], k))[:max_legend]
  rank = {k: i for i, k in enumerate(top)}
  legend = [LegendEntry(names.get(k, str(k)), PALETTE[i], colored[k]) for i, k in enumerate(top)]
  other = sum(count for k, count in colored.items() if k not in rank)
  unlabeled = sum(k is None for k in best)
  other_group = len(legend)
  if other:
    legend.append(LegendEntry(OTHER_NAME, OTHER_COLOR, other, 'other'))
  no_label_group = len(legend)
  if unlabeled:
    legend.append(LegendEntry(NO_LABEL_NAME, NO_LABEL_COLOR, unlabeled, 'none'))
  groups = np.array([no_label_group if k is None else rank.get(k, other_group) for k in best],
                    dtype=np.int64)
  return groups, tuple(legend)


def build_map(clips, method: str = DEFAULT_METHOD, seed: int = 0,
              max_clips: Optional[int] = None,
              max_legend: int = DEFAULT_MAX_LEGEND) -> ClipMap:
  """Projects the clips' mean embeddings and colors them by label.

  Args:
    clips: a `vggish.analysis.clips.Clips`.
    method: the projection (`project`).
    seed: seeds the sample (`max_clips`) and the projection.
    max_clips: map a random sample of this many clips (drawn with `seed`,
      kept in record order) when there are more; None: all. t-SNE's time
      grows a little faster than the number of clips.
    max_legend: labels with their own color (`color_groups`).

  Returns:
    The map; clips without examples are left off (with a warning).

  Raises:
    ValueError: no clip has an example, or an argument is out of range.
    vggish.extras.MissingExtraError: the method's package is not installed.
  """
  if max_clips is not None and max_clips < 1:
    raise ValueError(f'max_clips must be at least 1, not {max_clips}')
  _require_method(method)
  vectors, kept = clip_vectors(clips)
  if not len(kept):
    raise ValueError(f'there is nothing to map: none of the {len(clips)} clips has an example')
  if max_clips is not None and len(kept) > max_clips:
    logger.info('mapping a random %d of %d clips (seed %d)', max_clips, len(kept), seed)
    chosen = np.sort(np.random.default_rng(seed).choice(len(kept), max_clips, replace=False))
    vectors, kept = vectors[chosen], kept[chosen]
  xy = project(vectors, method, seed)
  names = {}
  if clips.label_map is not None:
    names = dict(zip(clips.label_map.indices, clips.label_map.display_names))
  clip_labels = [clips.clip_labels(i) for i in kept]
  groups, legend = color_groups(clip_labels, names, max_legend)
  return ClipMap(
      ids=tuple(str(clips.ids[i]) for i in kept),
      labels=tuple(tuple(names.get(int(k), str(int(k))) for k in labels)
                   for labels in clip_labels),
      xy=xy, groups=groups, legend=legend, method=method, total_clips=len(clips),
      without_examples=int((clips.num_examples == 0).sum()))


def find_audio(ids: Sequence[str], audio_dir: PathLike) -> Dict[str, str]:
  """The audio file of each clip id that has one under `audio_dir`.

  A clip's file is the one whose path relative to `audio_dir`, without its
  extension, is the id: how tools.extract names the clips of a directory.

  Returns:
    id -> path (as found under `audio_dir`), for the ids that have a file.

  Raises:
    ValueError: `audio_dir` is not a directory, two files have the same id,
      or no file matches any id.
  """
  from vggish import corpus  # pylint: disable=import-outside-toplevel
  audio_dir = os.fspath(audio_dir)
  if not os.path.isdir(audio_dir):
    raise ValueError(f'the audio directory {audio_dir!r} does not exist or is not a directory')
  files = {item.video_id: item.path for item in corpus.discover_inputs([audio_dir])
           if item.error is None}
  found = {i: files[i] for i in ids if i in files}
  if ids and not found:
    raise ValueError(
        f'none of the {len(files)} audio files under {audio_dir!r} belongs to a clip of '
        f'the map (clip ids such as {ids[0]!r}; a clip\'s file is its id plus an audio '
        f'extension, relative to the audio directory, as tools.extract names clips)')
  logger.info('audio for %d of %d clips under %s', len(found), len(ids), audio_dir)
  return found


def audio_url(path: PathLike, page_dir: PathLike) -> str:
  """How a page in `page_dir` refers to the audio file `path`: a relative URL.

  Relative, so that the page and its audio can move together (or be served
  by one web server); a file:// URL where no relative path exists (another
  Windows drive).
  """
  try:
    relative = os.path.relpath(os.path.abspath(path), os.path.abspath(page_dir))
  except ValueError:
    return pathlib.Path(os.path.abspath(path)).as_uri()
  return urllib.parse.quote(pathlib.Path(relative).as_posix())


def png_path(html_path: PathLike) -> str:
  """The PNG written beside a map's HTML: `map.png` for `map.html`."""
  return os.path.splitext(os.fspath(html_path))[0] + '.png'


def _script_json(value) -> str:
  """JSON that cannot end its <script> element: '<', '>' and '&' as escapes.

  They occur only inside JSON strings, where \\u003c is the same character.
  """
  text = json.dumps(value, ensure_ascii=False, separators=(',', ':'))
  return text.replace('<', '\\u003c').replace('>', '\\u003e').replace('&', '\\u0026')


def _unit_square(xy: np.ndarray) -> np.ndarray:
  """float64 [n, 2] in [0, 1], one scale for both axes (distances keep their meaning)."""
  if not len(xy):
    return np.zeros((0, 2))
  low, high = xy.min(axis=0), xy.max(axis=0)
  span = float((high - low).max())
  if span == 0:
    return np.full(xy.shape, 0.5)
  return (xy - low) / span + (1 - (high - low) / span) / 2


def page_data(clip_map: ClipMap, title: str,
              audio_urls: Optional[Sequence[Optional[str]]] = None) -> dict:
  """What the page's script reads (the JSON in the page)."""
  label_names = sorted({name for labels in clip_map.labels for name in labels})
  number = {name: i for i, name in enumerate(label_names)}
  xy = np.round(_unit_square(clip_map.xy), 5)
  data = {
      'title': title,
      'description': clip_map.describe(),
      'ids': list(clip_map.ids),
      'xy': [float(v) for v in xy.reshape(-1)],
      'groups': [int(g) for g in clip_map.groups],
      'order': [int(i) for i in clip_map.draw_order()],
      'labelNames': label_names,
      'labels': [[number[name] for name in labels] for labels in clip_map.labels],
      'legend': [dataclasses.asdict(entry) for entry in clip_map.legend],
  }
  if audio_urls is not None:
    data['audio'] = list(audio_urls)
  return data


def render_html(clip_map: ClipMap, path: PathLike, title: Optional[str] = None,
                audio_files: Optional[Mapping[str, str]] = None) -> str:
  """Writes the map as one self-contained HTML page (atomically).

  The page draws the clips on a canvas (drag to pan, wheel to zoom,
  double-click to reset), shows a clip's id and labels on hover, dims all
  but one color when its legend entry is clicked, and plays a clip's audio on
  click when `audio_files` is given. Its body gets `data-points-drawn` (the
  points drawn) once drawn, and `data-map-error` if a script error happens.

  Args:
    clip_map: the map.
    path: the .html file to write.
    title: the page's title; None: a default naming the clip count.
    audio_files: clip id -> audio file (`find_audio`), referred to by URLs
      relative to the page; None: no audio.

  Returns:
    The path written.
  """
  path = os.fspath(path)
  title = title or default_title(clip_map)
  audio_urls = None
  if audio_files is not None:
    page_dir = os.path.dirname(os.path.abspath(path))
    audio_urls = [audio_url(audio_files[i], page_dir) if i in audio_files else None
                  for i in clip_map.ids]
  page = (_PAGE.replace('{{TITLE}}', html.escape(title))
          .replace('{{STYLE}}', _STYLE)
          .replace('{{SCRIPT}}', _SCRIPT)
          .replace('{{DATA}}', _script_json(page_data(clip_map, title, audio_urls))))
  files_lib.write_atomically(path, lambda f: f.write(page.encode('utf-8')), 'the map')
  return path


def default_title(clip_map: ClipMap) -> str:
  return f'VGGish map of {len(clip_map):,} clips'


def render_png(clip_map: ClipMap, path: PathLike, title: Optional[str] = None,
               dpi: int = 100) -> str:
  """Writes the map as a PNG scatter with the page's colors and legend (atomically).

  Uses matplotlib's Agg canvas directly: no display, no pyplot state. The
  file has a 256-color palette (Pillow, which matplotlib needs anyway): a
  scatter of a few colors keeps its look at about a quarter of the size.

  Returns:
    The path written.

  Raises:
    vggish.extras.MissingExtraError: matplotlib is not installed.
  """
  extras.require('matplotlib', 'analysis', "the map's PNG")
  # pylint: disable=import-outside-toplevel
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  # pylint: enable=import-outside-toplevel
  path = os.fspath(path)
  figure = Figure(figsize=(9, 6.4), dpi=dpi)
  FigureCanvasAgg(figure)
  axes = figure.add_axes((0.01, 0.02, 0.6, 0.88))
  size = 2 if len(clip_map) > 5000 else 6 if len(clip_map) > 500 else 16
  order = clip_map.draw_order()
  xy, groups = clip_map.xy[order], clip_map.groups[order]
  colors = np.array([entry.color for entry in clip_map.legend] or ['#000000'])
  axes.scatter(xy[:, 0], xy[:, 1], s=size, c=colors[groups], linewidths=0, rasterized=True)
  axes.set_aspect('equal', adjustable='datalim')
  axes.set_xticks([])
  axes.set_yticks([])
  for spine in axes.spines.values():
    spine.set_visible(False)
  handles = [axes.scatter([], [], s=30, c=entry.color, linewidths=0,
                          label=f'{entry.name} ({entry.count:,})')
             for entry in clip_map.legend]
  figure.legend(handles=handles, loc='center left', bbox_to_anchor=(0.63, 0.47),
                frameon=False, fontsize=8, handletextpad=0.3, labelspacing=0.35)
  figure.suptitle(title or default_title(clip_map), x=0.01, y=0.985, ha='left', fontsize=12)
  figure.text(0.01, 0.935, clip_map.describe(), fontsize=8, color='#555555')
  from PIL import Image  # pylint: disable=import-outside-toplevel
  rendered = io.BytesIO()
  figure.savefig(rendered, format='png', dpi=dpi)
  rendered.seek(0)
  quantize = getattr(Image, 'Quantize', Image)  # Enums since Pillow 9.1.
  dither = getattr(Image, 'Dither', Image)
  image = Image.open(rendered).convert('RGB').quantize(
      256, method=quantize.FASTOCTREE, dither=dither.NONE)
  files_lib.write_atomically(path, lambda f: image.save(f, format='PNG', optimize=True),
                             'the map picture')
  return path


def check_output(output: PathLike) -> str:
  """The map's HTML path, or ValueError when it does not end in .html."""
  output = os.fspath(output)
  if not output.lower().endswith('.html'):
    raise ValueError(f'the map is written as an .html file (and a .png beside it); '
                     f'--output {output!r} does not end in .html')
  return files_lib.check_output_file(output, 'the map')


def write_map(inputs: Union[PathLike, Sequence[PathLike]], output: PathLike,
              method: str = DEFAULT_METHOD, audio_dir: Optional[PathLike] = None,
              label_map: Optional[PathLike] = None, max_clips: Optional[int] = None,
              seed: int = 0, title: Optional[str] = None) -> Tuple[str, str, ClipMap]:
  """Reads records and writes their map: `output` (.html) and a PNG beside it.

  Args:
    inputs: TFRecord files, globs or directories (`clips.load_clips`).
    output: the .html file; the PNG gets the same name ending in .png.
    method: the projection (`project`).
    audio_dir: the clips' audio (`find_audio`); a click on a point plays it.
    label_map: `class_labels_indices.csv` for label names; None: the one
      beside the records, if any.
    max_clips: map a random sample of this many clips (`build_map`).
    seed: seeds the sample and the projection.
    title: the page's and the PNG's title.

  Returns:
    (html path, png path, the map).

  Raises:
    ValueError: bad arguments, unreadable records, nothing to map, or no
      audio for any clip.
    vggish.extras.MissingExtraError: a needed package is not installed.
  """
  # Everything that can be checked is checked before seconds of reading.
  output = check_output(output)
  if max_clips is not None and max_clips < 1:
    raise ValueError(f'--max_clips must be at least 1, not {max_clips}')
  _require_method(method)
  extras.require('matplotlib', 'analysis', "the map's PNG")
  if audio_dir is not None and not os.path.isdir(audio_dir):
    raise ValueError(f'the audio directory {os.fspath(audio_dir)!r} does not exist or is '
                     f'not a directory')
  from vggish.analysis import clips as clips_lib  # pylint: disable=import-outside-toplevel
  clips = clips_lib.load_clips(inputs, label_map=label_map)
  logger.info('read %d clips', len(clips))
  clip_map = build_map(clips, method=method, seed=seed, max_clips=max_clips)
  audio_files = find_audio(clip_map.ids, audio_dir) if audio_dir is not None else None
  html_path = render_html(clip_map, output, title=title, audio_files=audio_files)
  png = render_png(clip_map, png_path(output), title=title)
  return html_path, png, clip_map


_PAGE = '''<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; media-src 'self' file: blob:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{{TITLE}}</title>
<style>{{STYLE}}</style>
<script>
window.addEventListener('error', function (event) {
  var message = String(event.message || event.error || 'error');
  document.documentElement.setAttribute('data-map-error', message);
  if (document.body) {
    document.body.setAttribute('data-map-error', message);
    var box = document.getElementById('errors');
    if (box) { box.textContent = 'Error: ' + message; box.hidden = false; }
  }
});
</script>
</head>
<body>
<header>
  <h1>{{TITLE}}</h1>
  <p id="description"></p>
  <p id="help">Hover a point for its clip; drag to pan, wheel to zoom, double-click to reset; click a legend entry to pick out its clips.</p>
</header>
<div id="errors" hidden></div>
<main>
  <div id="plot"><canvas id="map"></canvas><div id="tooltip" hidden></div></div>
  <aside><h2>Colored by label</h2><ul id="legend"></ul></aside>
</main>
<footer id="player" hidden><span id="now-playing"></span><audio id="audio" controls preload="none"></audio></footer>
<script type="application/json" id="map-data">{{DATA}}</script>
<script>{{SCRIPT}}</script>
</body>
</html>
'''

_STYLE = '''
[hidden] { display: none !important; }
html, body { margin: 0; height: 100%; }
body { display: flex; flex-direction: column; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; background: #fff; }
header { padding: 8px 16px 4px; }
h1 { font-size: 18px; margin: 0; }
h2 { font-size: 13px; margin: 0 0 6px; color: #555; font-weight: 600; }
header p { margin: 2px 0; color: #555; font-size: 12px; }
#errors { background: #fdecea; color: #8a1c13; padding: 6px 16px; font-family: monospace; }
main { flex: 1; display: flex; min-height: 0; }
#plot { flex: 1; position: relative; min-width: 0; }
canvas { position: absolute; inset: 0; width: 100%; height: 100%; cursor: crosshair; touch-action: none; }
canvas.dragging { cursor: grabbing; }
aside { width: 250px; overflow-y: auto; padding: 4px 12px; border-left: 1px solid #eee; }
#legend { list-style: none; margin: 0; padding: 0; }
#legend button { display: flex; align-items: center; gap: 6px; width: 100%; border: 0; background: none; padding: 2px 4px; font: inherit; font-size: 12px; text-align: left; cursor: pointer; border-radius: 3px; color: inherit; }
#legend button:hover { background: #f2f2f2; }
#legend button[aria-pressed="true"] { background: #e4ecf7; }
#legend .swatch { flex: none; width: 11px; height: 11px; border-radius: 50%; }
#legend .name { flex: 1; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
#legend .count { color: #777; font-variant-numeric: tabular-nums; }
#tooltip { position: absolute; pointer-events: none; background: rgba(255, 255, 255, 0.96); border: 1px solid #ccc; border-radius: 4px; padding: 4px 8px; font-size: 12px; max-width: 320px; box-shadow: 0 1px 4px rgba(0, 0, 0, 0.15); }
#tooltip .id { font-weight: 600; word-break: break-all; }
#tooltip .hint { color: #777; }
footer { display: flex; align-items: center; gap: 12px; padding: 6px 16px; border-top: 1px solid #eee; font-size: 12px; }
footer audio { height: 32px; }
'''

_SCRIPT = r'''
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('map-data').textContent);
  var n = data.ids.length;
  var canvas = document.getElementById('map');
  var context = canvas.getContext('2d');
  var tooltip = document.getElementById('tooltip');
  var audio = document.getElementById('audio');
  var nowPlaying = document.getElementById('now-playing');
  var hasAudio = Array.isArray(data.audio);
  var radius = n > 5000 ? 1.7 : n > 1000 ? 2.5 : n > 100 ? 3.5 : 5;
  var margin = 12;
  // Screen position = view.x + view.scale * base position (see basePosition).
  var view = {scale: 1, x: 0, y: 0};
  var width = 0, height = 0;
  var hovered = -1, picked = -1;
  var drag = null;

  document.getElementById('description').textContent = data.description;
  if (hasAudio) {
    document.getElementById('help').textContent += ' Click a point to play its clip.';
  }

  function basePosition(i) {
    var side = Math.max(1, Math.min(width, height) - 2 * margin);
    var left = (width - side) / 2, top = (height - side) / 2;
    return [left + data.xy[2 * i] * side, top + (1 - data.xy[2 * i + 1]) * side];
  }

  function screenPosition(i) {
    var p = basePosition(i);
    return [view.x + view.scale * p[0], view.y + view.scale * p[1]];
  }

  function resize() {
    var ratio = window.devicePixelRatio || 1;
    var box = canvas.getBoundingClientRect();
    width = box.width;
    height = box.height;
    canvas.width = Math.max(1, Math.round(width * ratio));
    canvas.height = Math.max(1, Math.round(height * ratio));
    context.setTransform(ratio, 0, 0, ratio, 0, 0);
    draw();
  }

  function draw() {
    context.clearRect(0, 0, width, height);
    var drawn = 0;
    var current = -2;
    for (var k = 0; k < data.order.length; k++) {
      var i = data.order[k];
      var group = data.groups[i];
      if (group !== current) {
        if (current !== -2) { context.fill(); }
        current = group;
        context.globalAlpha = picked < 0 || picked === group ? 1 : 0.12;
        context.fillStyle = data.legend[group].color;
        context.beginPath();
      }
      var p = screenPosition(i);
      context.moveTo(p[0] + radius, p[1]);
      context.arc(p[0], p[1], radius, 0, 2 * Math.PI);
      drawn++;
    }
    if (current !== -2) { context.fill(); }
    context.globalAlpha = 1;
    if (hovered >= 0) {
      var h = screenPosition(hovered);
      context.beginPath();
      context.arc(h[0], h[1], radius + 3, 0, 2 * Math.PI);
      context.lineWidth = 2;
      context.strokeStyle = '#111';
      context.stroke();
    }
    document.body.setAttribute('data-points-drawn', String(drawn));
  }

  // The point nearest to (x, y) within a few pixels, or -1.
  function nearest(x, y) {
    var best = -1, bestDistance = Math.pow(Math.max(8, radius + 4), 2);
    for (var i = 0; i < n; i++) {
      if (picked >= 0 && data.groups[i] !== picked) { continue; }
      var p = screenPosition(i);
      var d = (p[0] - x) * (p[0] - x) + (p[1] - y) * (p[1] - y);
      if (d < bestDistance) { bestDistance = d; best = i; }
    }
    return best;
  }

  function line(tag, className, text) {
    var element = document.createElement(tag);
    element.className = className;
    element.textContent = text;
    return element;
  }

  function showTooltip(i, x, y) {
    tooltip.replaceChildren();
    tooltip.appendChild(line('div', 'id', data.ids[i]));
    var names = data.labels[i].map(function (k) { return data.labelNames[k]; });
    tooltip.appendChild(line('div', 'labels', names.length ? names.join('; ') : '(no labels)'));
    if (hasAudio) {
      tooltip.appendChild(line('div', 'hint', data.audio[i] ? 'click to play' : 'no audio file'));
    }
    tooltip.hidden = false;
    var left = x + 14, top = y + 14;
    if (left + tooltip.offsetWidth > width) { left = Math.max(0, x - 14 - tooltip.offsetWidth); }
    if (top + tooltip.offsetHeight > height) { top = Math.max(0, y - 14 - tooltip.offsetHeight); }
    tooltip.style.left = left + 'px';
    tooltip.style.top = top + 'px';
  }

  function hover(x, y) {
    var i = nearest(x, y);
    if (i !== hovered) { hovered = i; draw(); }
    if (i >= 0) { showTooltip(i, x, y); } else { tooltip.hidden = true; }
  }

  function play(i) {
    if (!hasAudio || !data.audio[i]) { return; }
    document.getElementById('player').hidden = false;
    nowPlaying.textContent = data.ids[i];
    audio.src = data.audio[i];
    var started = audio.play();
    if (started && started.catch) {
      started.catch(function (error) { nowPlaying.textContent = data.ids[i] + ' (' + error.message + ')'; });
    }
  }

  function local(event) {
    var box = canvas.getBoundingClientRect();
    return [event.clientX - box.left, event.clientY - box.top];
  }

  canvas.addEventListener('pointerdown', function (event) {
    var p = local(event);
    drag = {x: p[0], y: p[1], viewX: view.x, viewY: view.y, moved: false};
    try {
      canvas.setPointerCapture(event.pointerId);
    } catch (error) {
      // A synthetic event's pointer cannot be captured; dragging still works.
    }
  });
  canvas.addEventListener('pointermove', function (event) {
    var p = local(event);
    if (drag) {
      if (Math.abs(p[0] - drag.x) + Math.abs(p[1] - drag.y) > 3) { drag.moved = true; }
      if (drag.moved) {
        canvas.classList.add('dragging');
        tooltip.hidden = true;
        view.x = drag.viewX + p[0] - drag.x;
        view.y = drag.viewY + p[1] - drag.y;
        draw();
        return;
      }
    }
    hover(p[0], p[1]);
  });
  canvas.addEventListener('pointerup', function (event) {
    var p = local(event);
    if (drag && !drag.moved) {
      var i = nearest(p[0], p[1]);
      if (i >= 0) { play(i); }
    }
    drag = null;
    canvas.classList.remove('dragging');
  });
  canvas.addEventListener('pointerleave', function () {
    tooltip.hidden = true;
    if (hovered >= 0) { hovered = -1; draw(); }
  });
  canvas.addEventListener('wheel', function (event) {
    event.preventDefault();
    var p = local(event);
    var factor = Math.exp(-event.deltaY * (event.deltaMode === 1 ? 0.05 : 0.0015));
    var scale = Math.min(200, Math.max(0.2, view.scale * factor));
    factor = scale / view.scale;
    view.x = p[0] - (p[0] - view.x) * factor;
    view.y = p[1] - (p[1] - view.y) * factor;
    view.scale = scale;
    draw();
    hover(p[0], p[1]);
  }, {passive: false});
  canvas.addEventListener('dblclick', function () {
    view = {scale: 1, x: 0, y: 0};
    draw();
  });

  var buttons = [];
  data.legend.forEach(function (entry, group) {
    var button = document.createElement('button');
    button.type = 'button';
    button.setAttribute('aria-pressed', 'false');
    var swatch = document.createElement('span');
    swatch.className = 'swatch';
    swatch.style.background = entry.color;
    button.appendChild(swatch);
    button.appendChild(line('span', 'name', entry.name));
    button.lastChild.title = entry.name;
    button.appendChild(line('span', 'count', entry.count.toLocaleString('en-US')));
    button.addEventListener('click', function () {
      picked = picked === group ? -1 : group;
      buttons.forEach(function (b, g) { b.setAttribute('aria-pressed', String(g === picked)); });
      draw();
    });
    var item = document.createElement('li');
    item.appendChild(button);
    document.getElementById('legend').appendChild(item);
    buttons.push(button);
  });

  // For scripts driving the page (and its tests): where point i is on the
  // canvas, in CSS pixels, and the clip playing a point's audio.
  window.clipMap = {count: n, screenPosition: screenPosition, play: play};
  window.addEventListener('resize', resize);
  resize();
})();
'''
