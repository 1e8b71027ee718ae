"""Multi-label metrics in numpy: AP/mAP, lwlrap, ROC AUC, d', thresholded F1.

Every function takes `labels` (0/1, [num_clips, num_classes]) and `scores`
(float, same shape, higher means more likely positive). Conventions, chosen so
the figures match the published AudioSet and Freesound results:

- `mAP` is the unweighted mean over classes of average precision, counting only
  classes with at least one positive (AP is undefined without positives).
  Average precision follows the usual step-wise definition
  `sum_k (R_k - R_{k-1}) * P_k` over distinct score thresholds, so tied scores
  are one operating point (the same figure as scikit-learn's
  `average_precision_score`).
- `AUC` is the area under the ROC curve with ties counted as one half (the
  Mann-Whitney statistic); it is averaged over classes having both positives
  and negatives.
- `d_prime` is `sqrt(2) * Phi^-1(AUC)` (the AudioSet papers' d'), computed from
  the macro AUC.
- `lwlrap` is the label-weighted label-ranking average precision of the
  Freesound Audio Tagging 2019 challenge: for each positive (clip, label) pair,
  the fraction of the labels ranked at or above it that are positive, averaged
  over all pairs. Tied scores are ordered by class index.

scipy is not a dependency: the inverse normal CDF comes from the standard
library's `statistics.NormalDist`.
"""

import dataclasses
import math
import statistics

import numpy as np

# AUC of exactly 0 or 1 gives an infinite d'; clipping keeps JSON finite
# (d' = +-7.6 at the clip, far beyond any realistic classifier).
_AUC_CLIP = 1e-7


def _check(labels, scores):
  labels = np.asarray(labels)
  scores = np.asarray(scores, dtype=np.float64)
  if labels.shape != scores.shape:
    raise ValueError(
        f'labels and scores must have the same shape, got {labels.shape} '
        f'and {scores.shape}')
  if labels.ndim != 2:
    raise ValueError(
        f'expected [num_clips, num_classes] arrays, got shape {labels.shape}')
  if not np.all(np.isfinite(scores)):
    raise ValueError('scores contain NaN or infinite values')
  return (labels > 0.5), scores


def _operating_points(labels, scores):
  """One operating point per distinct score, ranking clips by score.

  Args:
    labels: [n] 0/1 (or bool).
    scores: [n] float.

  Returns:
    (scores sorted descending, the last index of each run of tied scores,
    true positives predicted at each such cut, number of positives). Cutting
    only at run ends makes the order among tied clips irrelevant.
  """
  labels = np.asarray(labels).reshape(-1) > 0.5
  scores = np.asarray(scores, dtype=np.float64).reshape(-1)
  order = np.argsort(-scores, kind='stable')
  sorted_scores = scores[order]
  last_of_run = np.r_[np.flatnonzero(np.diff(sorted_scores)),
                      sorted_scores.size - 1] if scores.size else np.zeros(0, int)
  true_positives = np.cumsum(labels[order])[last_of_run]
  return sorted_scores, last_of_run, true_positives, int(labels.sum())


def average_precision(labels, scores):
  """Average precision of one class.

  Args:
    labels: [num_clips] 0/1 (or bool).
    scores: [num_clips] float.

  Returns:
    AP as a float, or NaN when there is no positive.
  """
  _, last_of_run, tp, num_positives = _operating_points(labels, scores)
  if num_positives == 0:
    return float('nan')
  precision = tp / (last_of_run + 1.0)
  recall = tp / num_positives
  recall_step = np.diff(np.r_[0.0, recall])
  return float(np.sum(recall_step * precision))


def roc_auc(labels, scores):
  """ROC AUC of one class (ties count one half); NaN with a single class."""
  labels = np.asarray(labels).reshape(-1) > 0.5
  scores = np.asarray(scores, dtype=np.float64).reshape(-1)
  num_pos = int(labels.sum())
  num_neg = labels.size - num_pos
  if num_pos == 0 or num_neg == 0:
    return float('nan')
  ranks = _average_ranks(scores)
  # Mann-Whitney U of the positives, normalized to [0, 1].
  u = ranks[labels].sum() - num_pos * (num_pos + 1) / 2.0
  return float(u / (num_pos * num_neg))


def _average_ranks(values):
  """1-based ranks in ascending order, tied values sharing their mean rank."""
  order = np.argsort(values, kind='stable')
  sorted_values = values[order]
  # Start index of each run of equal values.
  starts = np.r_[0, np.flatnonzero(np.diff(sorted_values)) + 1]
  ends = np.r_[starts[1:], sorted_values.size]
  mean_rank = (starts + ends + 1) / 2.0  # Mean of the 1-based ranks start+1..end.
  run_lengths = ends - starts
  ranks = np.empty(values.size, dtype=np.float64)
  ranks[order] = np.repeat(mean_rank, run_lengths)
  return ranks


def d_prime(auc):
  """The AudioSet papers' d' = sqrt(2) * Phi^-1(AUC), finite for AUC in [0, 1]."""
  if auc is None or math.isnan(auc):
    return float('nan')
  auc = min(max(float(auc), _AUC_CLIP), 1.0 - _AUC_CLIP)
  return math.sqrt(2.0) * statistics.NormalDist().inv_cdf(auc)


def lwlrap(labels, scores):
  """Label-weighted label-ranking average precision (Freesound 2019).

  Args:
    labels: [num_clips, num_classes] 0/1.
    scores: [num_clips, num_classes] float.

  Returns:
    (overall lwlrap, per-class lwlrap [num_classes] with NaN for classes
    without positives). The overall figure equals the per-class figures
    weighted by each class's share of all positive labels.
  """
  labels, scores = _check(labels, scores)
  num_clips, num_classes = labels.shape
  precision_sum = np.zeros(num_classes)
  for i in range(num_clips):
    positives = np.flatnonzero(labels[i])
    if positives.size == 0:
      continue
    order = np.argsort(-scores[i], kind='stable')
    rank = np.empty(num_classes, dtype=np.int64)
    rank[order] = np.arange(1, num_classes + 1)
    # How many positives sit at or above each rank, in rank order.
    positive_at_rank = np.zeros(num_classes + 1, dtype=np.int64)
    positive_at_rank[rank[positives]] = 1
    hits_so_far = np.cumsum(positive_at_rank)
    positive_ranks = rank[positives]
    precision_sum[positives] += hits_so_far[positive_ranks] / positive_ranks
  positives_per_class = labels.sum(axis=0)
  total = positives_per_class.sum()
  if total == 0:
    return float('nan'), np.full(num_classes, np.nan)
  with np.errstate(invalid='ignore', divide='ignore'):
    per_class = np.where(positives_per_class > 0,
                         precision_sum / np.maximum(positives_per_class, 1),
                         np.nan)
  return float(precision_sum.sum() / total), per_class


def best_f1_threshold(labels, scores):
  """The threshold maximizing F1 when predicting `score >= threshold`.

  Args:
    labels: [n] 0/1, flattened over whatever is being pooled (one class for a
      per-class threshold, all classes for a global one).
    scores: [n] float.

  Returns:
    (threshold, best F1). The threshold sits halfway between the lowest score
    predicted positive and the next lower score, so it generalizes better
    than the training score itself. Without positives, (0.5, NaN).
  """
  sorted_scores, last_of_run, tp, num_pos = _operating_points(labels, scores)
  if num_pos == 0:
    return 0.5, float('nan')
  predicted = last_of_run + 1.0
  f1 = 2.0 * tp / (predicted + num_pos)
  best = int(np.argmax(f1))
  cut = last_of_run[best]
  if cut + 1 < sorted_scores.size:
    threshold = 0.5 * (sorted_scores[cut] + sorted_scores[cut + 1])
  else:
    threshold = sorted_scores[cut] - 1e-6
  return float(threshold), float(f1[best])


@dataclasses.dataclass(frozen=True)
class Thresholds:
  """Decision thresholds tuned on validation data.

  Attributes:
    per_class: [num_classes] float, each class's F1-optimal threshold; classes
      with fewer than `min_positives` validation positives get
      `global_threshold` (a threshold fit to a handful of positives does not
      generalize: on AudioSet's balanced data, with about 6 positives per
      class in a 10 % validation split, per-class thresholds lose a quarter
      of the test micro F1).
    global_threshold: one threshold for all classes, maximizing micro F1.
  """
  per_class: np.ndarray
  global_threshold: float

  def to_json(self):
    return {'per_class': [float(t) for t in self.per_class],
            'global': float(self.global_threshold)}

  @classmethod
  def from_json(cls, data):
    return cls(per_class=np.asarray(data['per_class'], dtype=np.float64),
               global_threshold=float(data['global']))


def tune_thresholds(labels, scores, min_positives=10):
  """Per-class and global F1-optimal thresholds (see `Thresholds`).

  Args:
    labels: [num_clips, num_classes] 0/1 validation labels.
    scores: [num_clips, num_classes] validation scores.
    min_positives: classes with fewer positives use the global threshold.

  Returns:
    A `Thresholds`.
  """
  labels, scores = _check(labels, scores)
  global_threshold, _ = best_f1_threshold(labels.ravel(), scores.ravel())
  per_class = np.full(labels.shape[1], global_threshold)
  for c in range(labels.shape[1]):
    if labels[:, c].sum() >= max(1, min_positives):
      per_class[c], _ = best_f1_threshold(labels[:, c], scores[:, c])
  return Thresholds(per_class=per_class, global_threshold=global_threshold)


def f1_scores(labels, predictions):
  """Micro F1, macro F1 and per-class precision, recall, F1 of 0/1 predictions.

  Macro F1 averages over classes with at least one positive label (as mAP
  does); a class never predicted has precision 0.
  """
  labels = np.asarray(labels) > 0.5
  predictions = np.asarray(predictions) > 0.5
  tp = np.sum(labels & predictions, axis=0).astype(np.float64)
  fp = np.sum(~labels & predictions, axis=0).astype(np.float64)
  fn = np.sum(labels & ~predictions, axis=0).astype(np.float64)
  with np.errstate(invalid='ignore', divide='ignore'):
    precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
    recall = np.where(tp + fn > 0, tp / (tp + fn), np.nan)
    f1 = np.where(tp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
  denom = 2 * tp.sum() + fp.sum() + fn.sum()
  micro = float(2 * tp.sum() / denom) if denom > 0 else float('nan')
  macro = float(np.nanmean(f1)) if np.any(np.isfinite(f1)) else float('nan')
  return {'micro_f1': micro, 'macro_f1': macro, 'precision': precision,
          'recall': recall, 'f1': f1}


def per_class_metrics(labels, scores):
  """AP and AUC of every class: two [num_classes] arrays (NaN where undefined)."""
  labels, scores = _check(labels, scores)
  num_classes = labels.shape[1]
  ap = np.array([average_precision(labels[:, c], scores[:, c])
                 for c in range(num_classes)])
  auc = np.array([roc_auc(labels[:, c], scores[:, c])
                  for c in range(num_classes)])
  return ap, auc


def mean_average_precision(labels, scores):
  """Macro mAP over classes with positives (the early-stopping criterion)."""
  labels, scores = _check(labels, scores)
  ap = [average_precision(labels[:, c], scores[:, c])
        for c in range(labels.shape[1]) if labels[:, c].any()]
  return float(np.mean(ap)) if ap else float('nan')


def _nanmean(values):
  values = np.asarray(values, dtype=np.float64)
  return float(np.nanmean(values)) if np.any(np.isfinite(values)) else float('nan')


def evaluate(labels, scores, thresholds=None):
  """All summary metrics, plus per-class arrays.

  Args:
    labels: [num_clips, num_classes] 0/1.
    scores: [num_clips, num_classes] float probabilities.
    thresholds: a `Thresholds` tuned on validation data, for the F1 figures
      (none: F1 is computed at 0.5 and flagged as such).

  Returns:
    (summary dict of floats, per-class dict of [num_classes] arrays).
  """
  labels, scores = _check(labels, scores)
  ap, auc = per_class_metrics(labels, scores)
  overall_lwlrap, class_lwlrap = lwlrap(labels, scores)
  macro_auc = _nanmean(auc)
  if thresholds is None:
    thresholds = Thresholds(per_class=np.full(labels.shape[1], 0.5),
                            global_threshold=0.5)
    tuned = False
  else:
    tuned = True
  per_class_pred = scores >= thresholds.per_class[None, :]
  tuned_f1 = f1_scores(labels, per_class_pred)
  global_f1 = f1_scores(labels, scores >= thresholds.global_threshold)
  top1 = np.argmax(scores, axis=1)
  has_positive = labels.any(axis=1)
  summary = {
      'mAP': _nanmean(ap),
      'lwlrap': overall_lwlrap,
      'AUC': macro_auc,
      'd_prime': d_prime(macro_auc),
      'micro_f1': tuned_f1['micro_f1'],
      'macro_f1': tuned_f1['macro_f1'],
      'micro_f1_global_threshold': global_f1['micro_f1'],
      'macro_f1_global_threshold': global_f1['macro_f1'],
      'global_threshold': float(thresholds.global_threshold),
      'thresholds_tuned_on_validation': tuned,
      # Share of clips whose predicted label set (per-class thresholds) is
      # exactly right: strict, and low for 527 classes.
      'exact_match': float(np.mean(np.all(per_class_pred == labels, axis=1))),
      # Share of clips whose top-scoring class is one of its labels.
      'top1_accuracy': float(np.mean(labels[np.arange(len(top1)), top1][has_positive]))
                       if has_positive.any() else float('nan'),
      'num_clips': int(labels.shape[0]),
      'num_classes_with_positives': int(np.sum(labels.any(axis=0))),
  }
  per_class = {
      'num_positives': labels.sum(axis=0).astype(np.int64),
      'average_precision': ap,
      'auc': auc,
      'd_prime': np.array([d_prime(a) for a in auc]),
      'lwlrap': class_lwlrap,
      'threshold': thresholds.per_class,
      'precision': tuned_f1['precision'],
      'recall': tuned_f1['recall'],
      'f1': tuned_f1['f1'],
  }
  return summary, per_class


def summarize_runs(summaries):
  """Mean and spread of each metric over runs (e.g. the models of k folds).

  Args:
    summaries: `evaluate` summaries, one per run.

  Returns:
    {metric: {'mean': float, 'std': float, 'min': float, 'max': float}} for
    every float metric the runs share; `std` is the sample standard
    deviation (n - 1), NaN for a single run. NaN values (undefined metrics)
    are left out of their metric's statistics.
  """
  summaries = list(summaries)
  if not summaries:
    return {}
  out = {}
  for key, value in summaries[0].items():
    if not isinstance(value, float) or not all(
        isinstance(s.get(key), float) for s in summaries):
      continue
    values = np.array([s[key] for s in summaries], np.float64)
    values = values[np.isfinite(values)]
    if not len(values):
      continue
    out[key] = {'mean': float(values.mean()),
                'std': float(values.std(ddof=1)) if len(values) > 1
                       else float('nan'),
                'min': float(values.min()), 'max': float(values.max())}
  return out
