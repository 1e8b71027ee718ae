"""Small synthetic, learnable multi-label tasks for tests and smoke runs.

- `embedding_task`: clips of 128-d "embeddings" in which each class present
  in a clip shows up, as its own prototype direction, in a random subset of
  the clip's examples (a multiple-instance task: the clip label is the union
  of the example labels). Written as TFRecords through `vggish.records`, as
  raw float32 or PCA-style uint8.
- `tone_noise_task`: short audio clips mixing a low tone, a high tone and
  noise bursts, with a Freesound-style `fname,labels` CSV.

Everything is seeded, so a task is the same on every run.
"""

import csv
import os
from typing import List, Sequence, Tuple

import numpy as np

from vggish import labels as labels_lib

EMBEDDING_SIZE = 128


def embedding_task(num_clips: int, num_classes: int = 6, seed: int = 0,
                   max_examples: int = 6, signal: float = 0.8,
                   noise: float = 0.5
                   ) -> Tuple[List[str], List[np.ndarray], List[List[int]]]:
  """A learnable multi-label task on embeddings.

  Args:
    num_clips: clips to make.
    num_classes: classes (each clip gets 1 or 2).
    seed: seed of everything, the class prototypes included.
    max_examples: clips have 1..max_examples examples.
    signal: norm scale of a class's prototype in an example showing it.
    noise: std of the Gaussian noise in every example.

  Returns:
    (ids, embeddings float32 [n_i, 128] each, label index lists).
  """
  rng = np.random.default_rng(seed)
  prototypes = rng.standard_normal((num_classes, EMBEDDING_SIZE))
  prototypes *= signal / np.sqrt(EMBEDDING_SIZE) * 4.0
  ids, clips, label_lists = [], [], []
  for i in range(num_clips):
    n = int(rng.integers(1, max_examples + 1))
    k = int(rng.integers(1, 3))
    classes = sorted(rng.choice(num_classes, size=k, replace=False).tolist())
    x = noise * rng.standard_normal((n, EMBEDDING_SIZE))
    for c in classes:
      # Present in at least one example, often in only some of them.
      present = rng.random(n) < 0.5
      present[rng.integers(n)] = True
      x[present] += prototypes[c]
    ids.append(f'clip{i:05d}')
    clips.append(x.astype(np.float32))
    label_lists.append(classes)
  return ids, clips, label_lists


def quantize(embeddings: np.ndarray) -> np.ndarray:
  """Clip to [-2, 2] and truncate to uint8, as VGGish's postprocessor does."""
  clipped = np.clip(embeddings, -2.0, 2.0)
  return ((clipped + 2.0) * (255.0 / 4.0)).astype(np.uint8)


def write_embedding_records(path, ids, clips, label_lists,
                            embedding_format: str = 'float32') -> str:
  """Writes clips as one AudioSet-layout TFRecord file via `vggish.records`."""
  from vggish import records  # Imports TensorFlow.
  examples = []
  for clip_id, clip, labels in zip(ids, clips, label_lists):
    values = quantize(clip) if embedding_format == 'uint8' else clip
    examples.append(records.make_sequence_example(clip_id, values, labels))
  records.write_records(path, examples)
  return os.fspath(path)


def write_label_map(path, names: Sequence[str]) -> labels_lib.LabelMap:
  """A label map with mids `/m/synthetic<i>` and the given display names."""
  label_map = labels_lib.LabelMap(tuple(
      (i, f'/m/synthetic{i}', name) for i, name in enumerate(names)))
  labels_lib.write_label_map(label_map, path)
  return label_map


TONE_NOISE_CLASSES = ('Low tone', 'High tone', 'Noise burst')


def tone_noise_clip(classes: Sequence[int], rng: np.random.Generator,
                    seconds: float = 0.98,
                    sample_rate: int = 16000) -> np.ndarray:
  """A float32 waveform mixing the given TONE_NOISE_CLASSES."""
  n = int(seconds * sample_rate)
  t = np.arange(n) / sample_rate
  wave = 0.01 * rng.standard_normal(n)  # A faint noise floor.
  if 0 in classes:
    wave += 0.3 * np.sin(2 * np.pi * rng.uniform(300, 500) * t)
  if 1 in classes:
    wave += 0.3 * np.sin(2 * np.pi * rng.uniform(2500, 3500) * t)
  if 2 in classes:
    # Bursts of white noise, a quarter to half of the clip.
    length = int(rng.uniform(0.25, 0.5) * n)
    start = int(rng.integers(0, n - length))
    wave[start:start + length] += 0.3 * rng.standard_normal(length)
  return np.clip(wave, -1.0, 1.0).astype(np.float32)


def tone_noise_task(directory, num_clips: int, seed: int = 0,
                    csv_name: str = 'train.csv',
                    seconds: float = 0.98) -> Tuple[str, str]:
  """Writes 16 kHz WAV clips and their `fname,labels` CSV.

  Each clip has 1 or 2 of TONE_NOISE_CLASSES.

  Returns:
    (csv path, label map path), both in `directory`.
  """
  import soundfile  # pylint: disable=g-import-not-at-top
  directory = os.fspath(directory)
  os.makedirs(directory, exist_ok=True)
  rng = np.random.default_rng(seed)
  label_map_path = os.path.join(directory, 'labels.csv')
  write_label_map(label_map_path, TONE_NOISE_CLASSES)
  csv_path = os.path.join(directory, csv_name)
  with open(csv_path, 'w', newline='', encoding='utf-8') as f:
    writer = csv.writer(f)
    writer.writerow(['fname', 'labels'])
    for i in range(num_clips):
      k = int(rng.integers(1, 3))
      classes = sorted(rng.choice(3, size=k, replace=False).tolist())
      name = f'{os.path.splitext(csv_name)[0]}_{i:04d}.wav'
      soundfile.write(os.path.join(directory, name),
                      tone_noise_clip(classes, rng, seconds), 16000,
                      subtype='PCM_16')
      writer.writerow([name, ','.join(TONE_NOISE_CLASSES[c] for c in classes)])
  return csv_path, label_map_path
