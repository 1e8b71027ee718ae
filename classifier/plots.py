r"""Pictures of a model directory: training curves and per-class AP.

`classifier.train` draws them into every model directory it writes; for an
existing directory (or after editing its files) redraw them with

  python -m classifier.plots /tmp/audioset_attention [MORE_MODEL_DIRS]

- training.png: training and validation loss per epoch (top) and validation
  mAP per epoch (bottom), the chosen (best) epoch starred. With several
  models (k folds, refits) one colour per model: folds in blues, refits in
  oranges; refits train without validation, so they have no mAP and no
  chosen epoch (they keep their last).
- per_class_ap.png: the average precision of every class on the held-out
  split the directory has (test if present, else validation), sorted. With
  many classes (AudioSet's 527) the sorted AP of all of them, then labelled
  bars for the best and the worst `_EXTREMES`.

Everything is read back from the directory's files (history.json,
metrics.json, config.json, `<split>_per_class.csv`), never from memory, so
a redraw gives the same pictures. Needs matplotlib (the `analysis` extra);
it draws on its own figures through the Agg canvas, leaving pyplot's global
state and backend alone.
"""

import logging
import math
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from classifier import model_dir as model_dir_lib
from vggish import extras
from vggish import files as files_lib

TRAINING_PLOT = 'training.png'
PER_CLASS_PLOT = 'per_class_ap.png'
_FEATURE = 'classifier plots (training.png, per_class_ap.png)'
_EXTRA = 'analysis'
# Up to this many classes get one bar each; more get the sorted curve and
# the `_EXTREMES` best and worst as bars.
_ALL_BARS_MAX = 40
_EXTREMES = 15
_NAME_CHARS = 38  # Longer class names are cut, with an ellipsis.
_MARKERS_MAX_EPOCHS = 30  # More epochs: lines without per-epoch markers.
_DPI = 100


def _matplotlib():
  """(Figure, FigureCanvasAgg), or MissingExtraError naming the extra."""
  figure = extras.require('matplotlib.figure', _EXTRA, _FEATURE)
  backend = extras.require('matplotlib.backends.backend_agg', _EXTRA,
                           _FEATURE)
  return figure.Figure, backend.FigureCanvasAgg


def _float(value) -> float:
  """JSON's null (NaN/Inf when written) as NaN."""
  return float('nan') if value is None else float(value)


def _save(fig, canvas_class, path: str) -> None:
  """Writes `fig` as PNG to `path` atomically (temp file + rename)."""
  canvas_class(fig)
  files_lib.write_atomically(
      path, lambda f: fig.savefig(f, format='png', dpi=_DPI), 'the plot')


def _read_optional_json(directory: str, name: str) -> Dict[str, Any]:
  path = os.path.join(directory, name)
  return model_dir_lib.read_json(path) if os.path.isfile(path) else {}


# ------------------------------------------------------------ training.png

def _curves(history: Sequence[Dict[str, Any]]
            ) -> List[Tuple[Optional[str], Dict[str, np.ndarray]]]:
  """[(model name or None, {'epoch', 'loss', 'val_loss', 'val_mAP'})].

  In history order; records without a `model` key are one model (None).
  """
  by_model: Dict[Optional[str], List[Dict[str, Any]]] = {}
  for record in history:
    by_model.setdefault(record.get('model'), []).append(record)
  out = []
  for name, records in by_model.items():
    out.append((name, {
        key: np.array([_float(r.get(key)) for r in records], np.float64)
        for key in ('epoch', 'loss', 'val_loss', 'val_mAP')}))
  return out


def _chosen_epochs(names: Sequence[Optional[str]],
                   metrics: Dict[str, Any]) -> Dict[Optional[str], int]:
  """The epoch whose weights each validated model kept, from metrics.json."""
  chosen = {}
  for entry in metrics.get('fold_models') or ():
    chosen[f'fold{entry["fold"]}'] = int(entry['best_epoch'])
  if metrics.get('best_epoch') is not None:
    # One validated model: unnamed, or 'fold1' when refits follow it.
    validated = [n for n in names if n is None or n.startswith('fold')]
    if len(validated) == 1:
      chosen[validated[0]] = int(metrics['best_epoch'])
  return chosen


def _model_colours(names: Sequence[Optional[str]]):
  """A colour per model: folds in blues, refits in oranges, others cycled."""
  from matplotlib import colormaps  # pylint: disable=import-outside-toplevel
  folds = [n for n in names if n and n.startswith('fold')]
  refits = [n for n in names if n and n.startswith('refit')]
  colours = {}
  for group, cmap in ((folds, 'Blues'), (refits, 'Oranges')):
    for i, name in enumerate(group):
      # Light to dark, never so light as to vanish on white.
      colours[name] = colormaps[cmap](
          0.85 if len(group) == 1 else 0.45 + 0.5 * i / (len(group) - 1))
  others = [n for n in names if n not in colours]
  for i, name in enumerate(others):
    colours[name] = f'C{i % 10}'
  return colours


def _training_title(metrics: Dict[str, Any], config: Dict[str, Any]) -> str:
  what = config.get('head')
  if what:
    what = (f'fine-tuned VGGish + {what} head' if config.get('input') ==
            model_dir_lib.INPUT_EXAMPLES else f'{what} head')
  parts = [what] if what else []
  validation = (metrics.get('validation') or {}).get('mAP')
  folds = metrics.get('folds') or 1
  if folds > 1:
    parts.append(f'{folds} fold models')
    if validation is not None:
      parts.append(f'out-of-fold mAP {validation:.3f}')
  elif metrics.get('best_epoch') is not None:
    parts.append(f'best epoch {metrics["best_epoch"]} of '
                 f'{metrics.get("epochs_run", "?")}')
    if validation is not None:
      parts.append(f'validation mAP {validation:.3f}')
  if metrics.get('refit'):
    refits = len(metrics.get('refit_models') or ()) or folds
    parts.append(f'kept: {refits} model{"s" if refits > 1 else ""} refit on '
                 'all non-test clips')
  return ', '.join(parts) or 'training'


def draw_training(history: Sequence[Dict[str, Any]], metrics: Dict[str, Any],
                  config: Dict[str, Any], path: str) -> str:
  """Writes the loss and validation-mAP curves of `history` as a PNG.

  Args:
    history: history.json's records (`epoch`, `loss`, `val_loss`, `val_mAP`,
      and `model` when several models trained).
    metrics: metrics.json (for the chosen epochs and the title; {} if none).
    config: config.json (for the title; {} if none).
    path: the PNG to write.

  Returns:
    `path`.

  Raises:
    ValueError: an empty history.
    vggish.extras.MissingExtraError: matplotlib is not installed.
  """
  figure_class, canvas_class = _matplotlib()
  from matplotlib import lines  # pylint: disable=import-outside-toplevel
  from matplotlib import ticker  # pylint: disable=import-outside-toplevel
  curves = _curves(history)
  if not curves:
    raise ValueError('the history holds no epoch')
  names = [name for name, _ in curves]
  colours = _model_colours(names)
  chosen = _chosen_epochs(names, metrics)
  single = len(curves) == 1
  most_epochs = max(len(c['epoch']) for _, c in curves)
  marker_size = 4 if most_epochs <= _MARKERS_MAX_EPOCHS else 0

  fig = figure_class(figsize=(9, 7), layout='constrained')
  loss_ax, map_ax = fig.subplots(2, 1, sharex=True,
                                 gridspec_kw={'height_ratios': [1, 1]})
  for name, c in curves:
    colour = colours[name]
    is_refit = bool(name and name.startswith('refit'))
    marker = 's' if is_refit else 'o'
    label = (name + (' (no validation)' if is_refit else '')) if name else None
    loss_ax.plot(c['epoch'], c['loss'], color=colour, marker=marker,
                 markersize=marker_size,
                 label='training loss' if single else label)
    if np.isfinite(c['val_loss']).any():
      loss_ax.plot(c['epoch'], c['val_loss'], color=colour, linestyle='--',
                   marker=marker, markersize=marker_size,
                   markerfacecolor='none',
                   label='validation loss' if single else None)
    if np.isfinite(c['val_mAP']).any():
      map_ax.plot(c['epoch'], c['val_mAP'], color=colour, marker=marker,
                  markersize=marker_size,
                  label='validation mAP' if single else label)
    epoch = chosen.get(name)
    if epoch is None and not is_refit and np.isfinite(c['val_mAP']).any():
      # No metrics.json: early stopping keeps the first best epoch.
      epoch = int(c['epoch'][int(np.nanargmax(c['val_mAP']))])
    if epoch is not None and epoch in c['epoch']:
      i = int(np.flatnonzero(c['epoch'] == epoch)[0])
      map_ax.plot([epoch], [c['val_mAP'][i]], linestyle='none', marker='*',
                  markersize=15, color=colour, markeredgecolor='black',
                  zorder=5)
      if single:
        for ax in (loss_ax, map_ax):
          ax.axvline(epoch, color='0.5', linestyle=':', linewidth=1)
        map_ax.annotate(f'epoch {epoch}: {c["val_mAP"][i]:.3f}',
                        (epoch, c['val_mAP'][i]), textcoords='offset points',
                        xytext=(8, -14), fontsize='small')

  star = lines.Line2D([], [], linestyle='none', marker='*', markersize=12,
                      color='0.6', markeredgecolor='black',
                      label='chosen epoch (best validation mAP)')
  if single:
    loss_ax.legend(fontsize='small')
  else:
    handles, _ = loss_ax.get_legend_handles_labels()
    styles = [lines.Line2D([], [], color='0.3', label='training loss'),
              lines.Line2D([], [], color='0.3', linestyle='--',
                           label='validation loss')]
    loss_ax.legend(handles=styles + handles, fontsize='small',
                   ncol=2 if len(handles) > 4 else 1)
  map_handles, _ = map_ax.get_legend_handles_labels()
  if single:
    map_handles = map_handles + [star]
  elif any(n in chosen for n in names) or map_handles:
    map_handles = [star]
  if map_handles:
    map_ax.legend(handles=map_handles, fontsize='small', loc='lower right')
  else:
    map_ax.text(0.5, 0.5, 'no validation mAP recorded', ha='center',
                va='center', transform=map_ax.transAxes, color='0.4')
  loss_ax.set_ylabel('binary cross-entropy')
  loss_ax.set_title('loss')
  map_ax.set_ylabel('mAP')
  map_ax.set_title('validation mAP')
  map_ax.set_xlabel('epoch')
  map_ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
  for ax in (loss_ax, map_ax):
    ax.grid(True, alpha=0.3)
  fig.suptitle(_training_title(metrics, config))
  _save(fig, canvas_class, path)
  return path


# ---------------------------------------------------------- per_class_ap.png

def _short(name: str) -> str:
  return name if len(name) <= _NAME_CHARS else name[:_NAME_CHARS - 1] + '\u2026'


def _bars(ax, names, ap, positives, colour, title):
  """Horizontal bars, first row on top, with the AP at each bar's end."""
  y = np.arange(len(names))
  ax.barh(y, ap, color=colour)
  ax.set_yticks(y, [f'{_short(n)} ({p})' for n, p in zip(names, positives)],
                fontsize='small')
  ax.invert_yaxis()
  ax.set_xlim(0.0, 1.08)
  for yi, value in zip(y, ap):
    ax.text(value + 0.01, yi, f'{value:.2f}', va='center', fontsize='x-small')
  ax.set_xlabel('average precision')
  ax.set_title(title, fontsize='medium')
  ax.grid(True, axis='x', alpha=0.3)


def draw_per_class_ap(display_names: Sequence[str], average_precision,
                      num_positives, path: str, split: str = 'test',
                      num_clips: Optional[int] = None,
                      mean_ap: Optional[float] = None) -> str:
  """Writes the sorted per-class AP as a PNG.

  Args:
    display_names: [num_classes] class names.
    average_precision: [num_classes] float AP; NaN for classes without
      positives (left out).
    num_positives: [num_classes] positives per class (shown beside names).
    path: the PNG to write.
    split: the split's name, for the title.
    num_clips: clips of the split, for the title (None: not shown).
    mean_ap: the split's mAP (None: the mean of the defined APs).

  Returns:
    `path`.

  Raises:
    ValueError: no class has an AP (no positives), or mismatched lengths.
    vggish.extras.MissingExtraError: matplotlib is not installed.
  """
  figure_class, canvas_class = _matplotlib()
  ap = np.asarray(average_precision, np.float64)
  positives = np.asarray(num_positives)
  if not len(display_names) == len(ap) == len(positives):
    raise ValueError(f'{len(display_names)} names, {len(ap)} APs and '
                     f'{len(positives)} positive counts')
  defined = np.flatnonzero(np.isfinite(ap))
  if not defined.size:
    raise ValueError(f'no class has positives in the {split} split, so '
                     'there is no AP to draw')
  # Best first; ties by name, so the picture is the same on every run.
  order = sorted(defined, key=lambda i: (-ap[i], display_names[i]))
  names = [display_names[i] for i in order]
  sorted_ap, sorted_pos = ap[order], positives[order].astype(np.int64)
  if mean_ap is None or not math.isfinite(mean_ap):
    mean_ap = float(np.mean(sorted_ap))
  title = (f'Per-class AP, {split} split'
           + (f' ({num_clips} clips)' if num_clips is not None else '')
           + f': mAP {mean_ap:.3f} over {len(order)} classes'
           + (f' ({len(ap) - len(order)} without positives left out)'
              if len(order) < len(ap) else ''))

  if len(order) <= _ALL_BARS_MAX:
    fig = figure_class(figsize=(8, max(2.5, 0.28 * len(order) + 1.4)),
                       layout='constrained')
    ax = fig.subplots()
    _bars(ax, names, sorted_ap, sorted_pos, 'C0',
          'class (positives)')
    ax.axvline(mean_ap, color='C3', linestyle='--', linewidth=1,
               label=f'mAP {mean_ap:.3f}')
    ax.legend(fontsize='small', loc='lower right')
  else:
    fig = figure_class(figsize=(13, 10), layout='constrained')
    grid = fig.add_gridspec(2, 2, height_ratios=[1, 1.7])
    curve_ax = fig.add_subplot(grid[0, :])
    rank = np.arange(1, len(order) + 1)
    curve_ax.fill_between(rank, sorted_ap, color='C0', alpha=0.35,
                          linewidth=0)
    curve_ax.plot(rank, sorted_ap, color='C0', linewidth=1.2)
    curve_ax.axhline(mean_ap, color='C3', linestyle='--', linewidth=1,
                     label=f'mAP {mean_ap:.3f}')
    k = min(_EXTREMES, len(order) // 2)
    curve_ax.axvspan(0.5, k + 0.5, color='C2', alpha=0.12,
                     label=f'best {k}')
    curve_ax.axvspan(len(order) - k + 0.5, len(order) + 0.5, color='C1',
                     alpha=0.15, label=f'worst {k}')
    curve_ax.set_xlim(0.5, len(order) + 0.5)
    curve_ax.set_ylim(0.0, 1.02)
    curve_ax.set_xlabel('class rank (by AP)')
    curve_ax.set_ylabel('average precision')
    curve_ax.set_title(f'all {len(order)} classes, sorted', fontsize='medium')
    curve_ax.grid(True, alpha=0.3)
    curve_ax.legend(fontsize='small', loc='upper right')
    _bars(fig.add_subplot(grid[1, 0]), names[:k], sorted_ap[:k],
          sorted_pos[:k], 'C2', f'best {k} (positives)')
    _bars(fig.add_subplot(grid[1, 1]), names[-k:], sorted_ap[-k:],
          sorted_pos[-k:], 'C1', f'worst {k} (positives)')
  fig.suptitle(title)
  _save(fig, canvas_class, path)
  return path


# ------------------------------------------------------------- the directory

def _held_out_split(directory: str) -> Optional[str]:
  for split in ('test', 'validation'):
    if os.path.isfile(os.path.join(directory, f'{split}_per_class.csv')):
      return split
  return None


def _split_title(split: str, metrics: Dict[str, Any]) -> str:
  folds = metrics.get('folds') or 1
  if split == 'validation' and folds > 1:
    return 'validation (out of fold)'
  if split == 'test' and metrics.get('refit'):
    return 'test (models refit on all non-test clips)'
  if split == 'test' and folds > 1:
    return 'test (fold ensemble)'
  return split


def write_model_plots(model_dir) -> List[str]:
  """Draws training.png and per_class_ap.png into a model directory.

  From the directory's history.json, metrics.json, config.json and its
  held-out per-class CSV (test_per_class.csv, else validation_per_class.csv);
  a picture whose input is missing is skipped with a warning.

  Args:
    model_dir: a directory written by `classifier.train`.

  Returns:
    The paths written.

  Raises:
    ValueError: neither picture's input is there (not a model directory).
    vggish.extras.MissingExtraError: matplotlib (the `analysis` extra) is
      not installed.
  """
  directory = os.fspath(model_dir)
  _matplotlib()  # Fails first, before reading anything.
  metrics = _read_optional_json(directory, model_dir_lib.METRICS_FILE)
  config = _read_optional_json(directory, model_dir_lib.CONFIG_FILE)
  history_path = os.path.join(directory, model_dir_lib.HISTORY_FILE)
  split = _held_out_split(directory)
  if not os.path.isfile(history_path) and split is None:
    raise ValueError(f'{directory!r} has neither {model_dir_lib.HISTORY_FILE} '
                     'nor a per-class CSV to draw: is it a model directory '
                     'of python -m classifier.train?')
  written = []
  if os.path.isfile(history_path):
    written.append(draw_training(
        model_dir_lib.read_json(history_path), metrics, config,
        os.path.join(directory, TRAINING_PLOT)))
  else:
    logging.warning('%s: no %s, so no %s', directory,
                    model_dir_lib.HISTORY_FILE, TRAINING_PLOT)
  if split is not None:
    label_map, per_class = model_dir_lib.read_per_class_csv(
        os.path.join(directory, f'{split}_per_class.csv'))
    summary = metrics.get(split) or {}
    written.append(draw_per_class_ap(
        label_map.display_names, per_class['average_precision'],
        per_class['num_positives'], os.path.join(directory, PER_CLASS_PLOT),
        split=_split_title(split, metrics),
        num_clips=summary.get('num_clips'),
        mean_ap=None if summary.get('mAP') is None else summary['mAP']))
  else:
    logging.warning('%s: no test_per_class.csv or validation_per_class.csv, '
                    'so no %s', directory, PER_CLASS_PLOT)
  return written


def write_model_plots_or_warn(model_dir) -> List[str]:
  """`write_model_plots` for the end of training: never fails it.

  The model directory is complete when this runs; a missing matplotlib (or
  a picture that cannot be drawn) costs the pictures, not the training, and
  says so in one warning.

  Returns:
    The paths written ([] when none could be).
  """
  try:
    return write_model_plots(model_dir)
  except extras.MissingExtraError as e:
    logging.warning('no training.png / per_class_ap.png: %s', e)
  except Exception as e:  # pylint: disable=broad-except
    logging.warning('could not draw the plots of %s (%s: %s); the model '
                    'directory is complete without them', model_dir,
                    type(e).__name__, e)
  return []


# ---------------------------------------------------------------- the CLI

def _define_flags():
  """No flags: the arguments are model directories."""


def main(argv):
  directories = argv[1:]
  if not directories:
    raise ValueError('give one or more model directories: python -m '
                     'classifier.plots MODEL_DIR [MODEL_DIR ...]')
  from vggish import cli  # pylint: disable=import-outside-toplevel
  for directory in directories:
    try:
      paths = write_model_plots(directory)
    except extras.MissingExtraError as e:
      return cli.report_error(e)
    for path in paths:
      print(f'wrote {path}')
  return 0


if __name__ == '__main__':
  from vggish import cli
  cli.run(main, _define_flags)
