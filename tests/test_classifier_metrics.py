"""classifier.metrics against values computed by hand on small cases."""

import json
import math

import numpy as np
import pytest

from classifier import metrics


def test_average_precision_by_hand():
  # Ranked: +, -, +, -  ->  precision at the hits 1/1 and 2/3.
  ap = metrics.average_precision([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1])
  assert ap == pytest.approx((1.0 + 2.0 / 3.0) / 2.0, abs=1e-12)


def test_average_precision_ties_are_one_operating_point():
  # The top two scores tie (one + one -): precision 1/2 at recall 1/2; then
  # the last + at rank 4 of 4: precision 2/4 at recall 1.
  ap = metrics.average_precision([0, 1, 0, 1], [0.9, 0.9, 0.5, 0.1])
  assert ap == pytest.approx(0.5 * 0.5 + 0.5 * 0.5, abs=1e-12)
  # Swapping the tied clips must not change AP.
  assert metrics.average_precision([1, 0, 0, 1], [0.9, 0.9, 0.5, 0.1]) == ap


def test_average_precision_without_positive_is_nan():
  assert math.isnan(metrics.average_precision([0, 0], [0.1, 0.2]))


def test_roc_auc_by_hand():
  # Positive/negative pairs: (0.9 > 0.8), (0.9 > 0.1), (0.7 < 0.8),
  # (0.7 > 0.1): 3 of 4.
  assert metrics.roc_auc([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]) == 0.75
  # A tie between a positive and a negative counts one half: pairs (0.9 >
  # 0.5), (0.9 > 0.6), (0.5 = 0.5), (0.5 < 0.6) give 2.5 of 4.
  assert metrics.roc_auc([1, 0, 1, 0], [0.9, 0.5, 0.5, 0.6]) == 0.625
  assert metrics.roc_auc([1, 0, 0], [0.5, 0.5, 0.1]) == 0.75
  assert math.isnan(metrics.roc_auc([1, 1], [0.1, 0.2]))


def test_d_prime_by_hand():
  assert metrics.d_prime(0.5) == 0.0
  # Phi^-1(0.9) = 1.2815515655446004 (standard normal tables).
  assert metrics.d_prime(0.9) == pytest.approx(
      math.sqrt(2) * 1.2815515655446004, abs=1e-9)
  assert math.isfinite(metrics.d_prime(1.0)) and metrics.d_prime(1.0) > 7
  assert math.isnan(metrics.d_prime(float('nan')))


def test_lwlrap_by_hand():
  labels = np.array([[1, 0, 1], [0, 1, 0]])
  scores = np.array([[0.9, 0.8, 0.1], [0.5, 0.4, 0.3]])
  overall, per_class = metrics.lwlrap(labels, scores)
  # Clip 0: class 0 at rank 1 -> 1/1; class 2 at rank 3 with 2 positives at
  # or above -> 2/3. Clip 1: class 1 at rank 2 -> 1/2. Mean over 3 pairs.
  assert overall == pytest.approx((1 + 2 / 3 + 1 / 2) / 3, abs=1e-12)
  np.testing.assert_allclose(per_class, [1.0, 0.5, 2 / 3], atol=1e-12)


def test_lwlrap_perfect_ranking_is_one():
  labels = np.eye(4)
  assert metrics.lwlrap(labels, labels * 0.9 + 0.05)[0] == 1.0


def test_best_f1_threshold_by_hand():
  # Predict the top 3 (0.9, 0.8, 0.7): tp 2, fp 1, fn 0 -> F1 = 4/5, better
  # than the top 1 (F1 2/3); threshold halfway between 0.7 and 0.1.
  threshold, f1 = metrics.best_f1_threshold([1, 0, 1, 0],
                                            [0.9, 0.8, 0.7, 0.1])
  assert f1 == pytest.approx(0.8)
  assert threshold == pytest.approx(0.4)


def test_f1_scores_by_hand():
  labels = np.array([[1, 0], [1, 1], [0, 0]])
  predictions = np.array([[1, 1], [0, 1], [0, 0]])
  result = metrics.f1_scores(labels, predictions)
  # Class 0: tp 1, fn 1 -> 2/3; class 1: tp 1, fp 1 -> 2/3.
  np.testing.assert_allclose(result['f1'], [2 / 3, 2 / 3])
  assert result['macro_f1'] == pytest.approx(2 / 3)
  # Micro: tp 2, fp 1, fn 1 -> 4 / 6.
  assert result['micro_f1'] == pytest.approx(2 / 3)


def test_tune_thresholds_falls_back_to_global_for_rare_classes():
  rng = np.random.default_rng(0)
  labels = np.zeros((40, 2))
  labels[:20, 0] = 1  # 20 positives: own threshold.
  labels[0, 1] = 1  # 1 positive: the global threshold.
  scores = rng.random((40, 2))
  scores[:20, 0] += 0.5
  thresholds = metrics.tune_thresholds(labels, scores, min_positives=10)
  assert thresholds.per_class[1] == thresholds.global_threshold
  own, _ = metrics.best_f1_threshold(labels[:, 0], scores[:, 0])
  assert thresholds.per_class[0] == own
  restored = metrics.Thresholds.from_json(
      json.loads(json.dumps(thresholds.to_json())))
  np.testing.assert_array_equal(restored.per_class, thresholds.per_class)


def test_evaluate_summary_by_hand():
  labels = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 0]])
  scores = np.array([[0.9, 0.2, 0.1], [0.3, 0.8, 0.2],
                     [0.6, 0.4, 0.3], [0.1, 0.7, 0.4]])
  summary, per_class = metrics.evaluate(labels, scores)
  # Class 0 ranks its positives 1st and 2nd: AP 1, AUC 1. Class 1 ranks
  # +, -, +, -: AP (1 + 2/3) / 2, AUC 3/4 (0.4 < 0.7 is the one wrong
  # pair). Class 2 has no positive: left out of both.
  np.testing.assert_allclose(per_class['average_precision'][:2],
                             [1.0, 5 / 6])
  assert math.isnan(per_class['average_precision'][2])
  assert summary['mAP'] == pytest.approx((1 + 5 / 6) / 2)
  np.testing.assert_allclose(per_class['auc'][:2], [1.0, 0.75])
  assert summary['AUC'] == pytest.approx(0.875)
  assert summary['d_prime'] == pytest.approx(metrics.d_prime(0.875))
  assert summary['num_classes_with_positives'] == 2
  # Thresholds 0.5: predictions [1,0,0], [0,1,0], [1,0,0], [0,1,0].
  # tp 3, fp 1, fn 1 -> micro F1 6/8. Class 0 F1 1, class 1 F1 1/2.
  assert summary['micro_f1'] == pytest.approx(0.75)
  assert summary['macro_f1'] == pytest.approx(0.75)
  assert summary['thresholds_tuned_on_validation'] is False
  # Exact match: clips 0, 1 right; 2 misses class 1; 3 predicts class 1.
  assert summary['exact_match'] == pytest.approx(0.5)
  # Top-1: clips 0, 1, 2 (class 0 is a label) right; clip 3 has no label.
  assert summary['top1_accuracy'] == pytest.approx(1.0)


def test_shape_mismatch_raises():
  with pytest.raises(ValueError, match='same shape'):
    metrics.evaluate(np.zeros((2, 3)), np.zeros((2, 2)))
  with pytest.raises(ValueError, match='NaN'):
    metrics.lwlrap(np.ones((1, 2)), np.array([[np.nan, 0.1]]))
