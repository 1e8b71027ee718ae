"""The model directory: everything needed to evaluate and use a trained model.

  model.keras        the best model (Keras format; `keras.models.load_model`
                     reloads it once `classifier.heads` is imported)
  config.json        how it was trained, and which input it expects:
                       input: 'embeddings' (a head) or 'examples' (log-mel,
                         fine-tuned VGGish + head)
                       embedding_format: 'uint8' (PCA + 8-bit quantized, fed
                         dequantized) or 'float32' (raw VGGish), for heads
                       example_hop_seconds, short_clip_policy: the frontend
                       pca_params: file name of the PCA parameters copied here
                         (heads on uint8 embeddings), or null
  labels.csv         the label map (index,mid,display_name)
  thresholds.json    per-class and global decision thresholds tuned on the
                     validation data (for F1)
  history.json       per-epoch loss and validation mAP
  metrics.json       validation (and held-out test) metrics of the best model
  *_per_class.csv    per-class metrics
  training.png       loss and validation mAP per epoch, chosen epoch marked
                     (`classifier.plots`; needs the `analysis` extra)
  per_class_ap.png   per-class AP of the held-out split (test, else
                     validation), sorted
  duplicate_groups.csv  with --group_duplicates: id,group of the clips that
                     were kept in one split (the same split on evaluation)
  logs/              TensorBoard logs

Prediction reproduces the training input exactly from this record: the same
frontend hop, VGGish, and for uint8 heads the same PCA and quantization.
Loading a fine-tuned model switches TensorFloat-32 off (`vggish.device`), as
building VGGish does, even when it was trained with `--allow_tf32`.
"""

import csv
import dataclasses
import json
import math
import os
from typing import Any, Dict, Optional, Tuple

import numpy as np

from classifier import metrics as metrics_lib
from vggish import labels as labels_lib
from vggish.params import DEFAULT_PARAMS, Params

MODEL_FILE = 'model.keras'
CONFIG_FILE = 'config.json'
LABELS_FILE = 'labels.csv'
THRESHOLDS_FILE = 'thresholds.json'
HISTORY_FILE = 'history.json'
METRICS_FILE = 'metrics.json'
PCA_FILE = 'pca_params.npz'
LOG_DIR = 'logs'
GROUPS_FILE = 'duplicate_groups.csv'
FORMAT_VERSION = 1

INPUT_EMBEDDINGS = 'embeddings'
INPUT_EXAMPLES = 'examples'


def _jsonable(value):
  """NaN and infinities become null (strict JSON); numpy becomes Python."""
  if isinstance(value, dict):
    return {str(k): _jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_jsonable(v) for v in value]
  if isinstance(value, np.ndarray):
    return _jsonable(value.tolist())
  if isinstance(value, (np.integer,)):
    return int(value)
  if isinstance(value, (float, np.floating)):
    value = float(value)
    return value if math.isfinite(value) else None
  return value


def write_json(path, value) -> None:
  with open(path, 'w', encoding='utf-8') as f:
    json.dump(_jsonable(value), f, indent=2, allow_nan=False)
    f.write('\n')


def read_json(path) -> Any:
  with open(path, encoding='utf-8') as f:
    return json.load(f)


def write_per_class_csv(path, label_map: labels_lib.LabelMap,
                        per_class: Dict[str, np.ndarray]) -> None:
  """One row per class: index, mid, display_name, then each metric."""
  keys = list(per_class)
  with open(path, 'w', newline='', encoding='utf-8') as f:
    writer = csv.writer(f)
    writer.writerow(['index', 'mid', 'display_name'] + keys)
    for i in range(len(label_map)):
      row = [i, label_map.mids[i], label_map.display_names[i]]
      for key in keys:
        value = per_class[key][i]
        if isinstance(value, (float, np.floating)):
          row.append('' if not np.isfinite(value) else f'{float(value):.6g}')
        else:
          row.append(int(value))
      writer.writerow(row)


def read_per_class_csv(path) -> Tuple[labels_lib.LabelMap,
                                      Dict[str, np.ndarray]]:
  """Reads a file of `write_per_class_csv`.

  Returns:
    (the label map of its rows, {metric: [num_classes] array}): int64 where
    every value of the column is an integer, else float64 with NaN for the
    undefined (empty) values.
  """
  with open(path, newline='', encoding='utf-8') as f:
    rows = list(csv.reader(f))
  if not rows or rows[0][:3] != ['index', 'mid', 'display_name']:
    raise ValueError(f'{path} is not a per-class metrics CSV (expected the '
                     'header index,mid,display_name,...)')
  header, rows = rows[0], rows[1:]
  label_map = labels_lib.LabelMap(tuple(
      (int(row[0]), row[1], row[2]) for row in rows))
  columns = {}
  for j, key in enumerate(header[3:], start=3):
    cells = [row[j] for row in rows]
    if all(c.lstrip('-').isdigit() for c in cells):
      columns[key] = np.array([int(c) for c in cells], np.int64)
    else:
      columns[key] = np.array([float(c) if c else np.nan for c in cells],
                              np.float64)
  return label_map, columns


def frontend_params(config: Dict[str, Any],
                    short_clip_policy: Optional[str] = None) -> Params:
  """The frontend `Params` a model was trained with.

  Args:
    config: the model's config.json.
    short_clip_policy: override of the recorded policy (None: recorded).
  """
  return dataclasses.replace(
      DEFAULT_PARAMS,
      example_hop_seconds=float(config.get(
          'example_hop_seconds', DEFAULT_PARAMS.example_hop_seconds)),
      short_clip_policy=short_clip_policy or config.get(
          'short_clip_policy', DEFAULT_PARAMS.short_clip_policy))


@dataclasses.dataclass
class LoadedModel:
  """A model directory, loaded.

  Attributes:
    model: the Keras model.
    config: config.json.
    label_map: the classes.
    thresholds: the validation-tuned thresholds, or None if absent.
    directory: where it was loaded from.
  """
  model: Any
  config: Dict[str, Any]
  label_map: labels_lib.LabelMap
  thresholds: Optional[metrics_lib.Thresholds]
  directory: str

  @property
  def input_name(self) -> str:
    return self.config['input']

  def pca_params_path(self) -> Optional[str]:
    name = self.config.get('pca_params')
    return os.path.join(self.directory, name) if name else None


def load(directory) -> LoadedModel:
  """Loads a model directory written by `classifier.train`.

  Raises:
    ValueError: the directory or one of its files is missing.
  """
  import keras  # Slow to import; only loading needs it.
  from classifier import heads  # pylint: disable=unused-import  (registers layers)

  directory = os.fspath(directory)
  for name in (MODEL_FILE, CONFIG_FILE, LABELS_FILE):
    if not os.path.isfile(os.path.join(directory, name)):
      raise ValueError(f'{directory!r} is not a model directory: {name} is '
                       'missing (train one with python -m classifier.train)')
  config = read_json(os.path.join(directory, CONFIG_FILE))
  if config.get('format_version') != FORMAT_VERSION:
    raise ValueError(f'{directory}: unsupported model directory format '
                     f'{config.get("format_version")!r}')
  label_map = labels_lib.read_classes(os.path.join(directory, LABELS_FILE))
  thresholds_path = os.path.join(directory, THRESHOLDS_FILE)
  thresholds = (metrics_lib.Thresholds.from_json(read_json(thresholds_path))
                if os.path.isfile(thresholds_path) else None)
  if config.get('input') == INPUT_EXAMPLES:
    from vggish import device  # pylint: disable=g-import-not-at-top
    # Deserializing rebuilds VGGish without `vggish.model.VGGish`.
    device.configure_tf32(False)
  model = keras.models.load_model(os.path.join(directory, MODEL_FILE),
                                  compile=False)
  return LoadedModel(model=model, config=config, label_map=label_map,
                     thresholds=thresholds, directory=directory)
