"""Sample-rate conversion that reproduces `resampy.resample` (kaiser_best), fast.

Upstream VGGish resamples every non-16 kHz waveform with
`resampy.resample(x, sr, 16000)` and its default `kaiser_best` filter, and the
choice of resampler changes the embeddings measurably. So we must compute the
same numbers as resampy, not merely "a good resampler".

resampy evaluates, for every output sample, a bandlimited interpolation: the
output time `t * sr_orig / sr_new` (in input samples) is split into an integer
sample `n` and a fraction; the left wing of the filter is applied to
`x[n], x[n-1], ...` and the right wing to `x[n+1], x[n+2], ...`. The filter is
a tabulated half window (`precision` entries per zero crossing), read at table
positions `offset + i * step` with linear interpolation between table entries.
When downsampling, the window is scaled by the rate ratio and read with a step
of `int(ratio * precision)` (which stretches the filter to the new Nyquist).
Outside the signal the input counts as zero.

For integer rates with `g = gcd(sr_orig, sr_new)` the output positions repeat
with period `L = sr_new / g` outputs per `M = sr_orig / g` inputs: output
`q * L + p` uses the same taps as output `p`, shifted by `q * M` inputs. We
therefore tabulate the taps of each phase once (cached per rate pair), in
groups of consecutive phases that read overlapping inputs, and compute each
group's outputs as one matrix product of a strided window view of the
zero-padded signal ([blocks, width], no copy) with its taps ([width, phases]),
in float64. This is polyphase filtering with resampy's exact filter taps; it
agrees with resampy to ~1e-11 on signals in [-1, 1], at a few percent of its
cost.

resampy computes each output time in floating point (`t * sr_orig / sr_new`),
we take the phases from exact integer arithmetic. The times differ by rounding
only (~1e-8 samples for hour-long inputs, moving outputs by far below 1e-6),
except where a time that is exactly an integer comes out one ulp below it:
resampy then centers the filter on the previous sample, which (its tap step
being truncated to an integer) gives a different value by up to ~1e-4. Those
few outputs are recomputed the way resampy does.

Rate pairs whose tap table would be large (huge `L`) fall back to resampy.
"""

import functools
import importlib.util
import logging
import math
import os
from typing import NamedTuple, Optional

import numpy as np

_FILTER_NAME = 'kaiser_best'
# Above this many table entries (phases x taps) the plan costs more memory and
# setup time than it saves; such unusual rate pairs go to resampy itself.
_MAX_TABLE_ENTRIES = 4_000_000
# Input samples per chunk of products: every phase group re-reads the chunk, so
# keep it cache-sized (512 KiB of float64).
_INPUTS_PER_CHUNK = 1 << 16


class _Plan(NamedTuple):
  """Precomputed polyphase taps for one (sr_orig, sr_new) pair."""
  phases: int  # L': outputs per block (a multiple of the reduced L).
  stride: int  # M': inputs consumed per block.
  reduced_phases: int  # L = sr_new / gcd: the true period of the positions.
  pad_left: int  # Zeros before the signal so that every tap index is >= 0.
  reach: int  # Block 0 reads padded[:reach]; block b reads up to b*stride+reach.
  # One entry per group of consecutive phases: (first phase, first input,
  # taps float64 [width, group size]). Output q * phases + p, for p in the
  # group, is padded[q * stride + first input : ... + width] @ taps[:, p - first
  # phase]; width <= stride, so the rows are a BLAS-ready strided view.
  groups: tuple


@functools.lru_cache(maxsize=1)
def _filter_table():
  """resampy's kaiser_best half window and its precision (entries/crossing).

  Read from the data file resampy ships, without importing resampy: its
  package imports numba, ~0.4 s of every process's first resampled file.
  """
  spec = importlib.util.find_spec('resampy')  # Finds the package, runs nothing.
  path = None
  if spec is not None and spec.origin:
    path = os.path.join(os.path.dirname(spec.origin), 'data', _FILTER_NAME + '.npz')
  if path is not None and os.path.isfile(path):
    with np.load(path) as table:
      return (np.asarray(table['half_window'], dtype=np.float64),
              int(table['precision']))
  from resampy import filters  # A resampy that stores its filters elsewhere.
  half_window, precision, _ = filters.get_filter(_FILTER_NAME)
  return np.asarray(half_window, dtype=np.float64), int(precision)


@functools.lru_cache(maxsize=4)
def _scaled_filter(sample_ratio: float):
  """The half window as resampy uses it for this ratio, its slopes, and step."""
  window, precision = _filter_table()
  scale = min(1.0, sample_ratio)
  if sample_ratio < 1:
    # Downsampling: the gain drops with the bandwidth, as in resampy.
    window = sample_ratio * window
  # Slope to the next entry; the last entry has none (zero), as in resampy.
  delta = np.diff(window, append=window[-1])
  step = int(scale * precision)
  window.setflags(write=False)
  delta.setflags(write=False)
  return window, delta, step, scale, precision


def _wing_weights(index_frac: np.ndarray, window: np.ndarray,
                  delta: np.ndarray, step: int) -> np.ndarray:
  """Filter weights of one wing for a batch of starting table positions.

  Args:
    index_frac: float64 [k], table position of each wing's first tap (>= 0).
    window: float64 [w], the (scaled) half window.
    delta: float64 [w], slope from each entry to the next.
    step: table entries between consecutive taps.

  Returns:
    float64 [k, max_taps]: weight i applies to the i-th sample away from the
    center; entries past a row's own tap count are zero.
  """
  offset = index_frac.astype(np.int64)  # Truncation, as resampy's int().
  eta = index_frac - offset  # Linear interpolation between table entries.
  count = (window.shape[0] - offset) // step  # Taps that fit in the table.
  i = np.arange(int(count.max()))
  valid = i[None, :] < count[:, None]
  pos = np.where(valid, offset[:, None] + i[None, :] * step, 0)
  weights = window[pos] + eta[:, None] * delta[pos]
  return np.where(valid, weights, 0.0)


def _direct(padded: np.ndarray, pad: int, time_register: np.ndarray,
            sample_ratio: float) -> np.ndarray:
  """resampy's interpolation evaluated output by output (vectorized).

  Used for the few outputs whose float time lands just below an integer, where
  resampy's truncation picks the previous input sample as the center.

  Args:
    padded: float64 [pad + n + pad], the signal with `pad` zeros each side.
    pad: zeros on each side; must exceed the filter's half length in samples.
    time_register: float64 [k], output times in input samples.
    sample_ratio: sr_new / sr_orig.

  Returns:
    float64 [k] outputs.
  """
  window, delta, step, scale, precision = _scaled_filter(sample_ratio)
  center = np.floor(time_register).astype(np.int64)
  frac = scale * (time_register - center)
  left = _wing_weights(frac * precision, window, delta, step)
  right = _wing_weights((scale - frac) * precision, window, delta, step)
  left_idx = pad + center[:, None] - np.arange(left.shape[1])[None, :]
  right_idx = pad + center[:, None] + 1 + np.arange(right.shape[1])[None, :]
  return (np.sum(left * padded[left_idx], axis=1) +
          np.sum(right * padded[right_idx], axis=1))


@functools.lru_cache(maxsize=32)
def _plan(sr_orig: int, sr_new: int) -> Optional[_Plan]:
  """Tabulates the taps of every output phase, or None if the table is large."""
  g = math.gcd(sr_orig, sr_new)
  period_out, period_in = sr_new // g, sr_orig // g  # L, M
  sample_ratio = float(sr_new) / sr_orig
  window, delta, step, scale, precision = _scaled_filter(sample_ratio)
  # Inputs one output reads: two wings of (table length / step) taps.
  span = 2 * (window.shape[0] // step + 1)
  # Consecutive phases read overlapping inputs: a group of G phases reads
  # about G * M / L + span of them. Groups reading ~1.5 spans keep the wasted
  # multiplies (zeros in a group's dense tap matrix) at ~1.5x while the
  # products stay large enough for BLAS to be efficient.
  group = max(1, round(span * period_out / (2 * period_in)))
  width = math.ceil(group * period_in / period_out) + span + 2
  # Take b periods per block so that a block's stride covers a group's width:
  # then each group's input rows are a strided view BLAS can read in place.
  blocks = max(1, math.ceil(width / period_in))
  phases, stride = blocks * period_out, blocks * period_in
  group = min(group, phases)
  if phases * width > _MAX_TABLE_ENTRIES:
    return None

  p = np.arange(phases, dtype=np.int64)
  center = (p * period_in) // period_out
  # The fraction is computed exactly from integers; resampy's float times
  # differ by rounding only (far below 1e-6 on the output, see the module doc).
  frac = scale * ((p * period_in) % period_out / period_out)
  left = _wing_weights(frac * precision, window, delta, step)
  right = _wing_weights((scale - frac) * precision, window, delta, step)
  # Left wing tap i reads x[center - i]; right wing tap k reads x[center+1+k].
  first = center - (left.shape[1] - 1)  # [phases]
  pad_left = int(max(0, -first.min()))

  groups = []
  for p0 in range(0, phases, group):
    p1 = min(phases, p0 + group)
    g_first = int(first[p0:p1].min())
    g_width = int((center[p0:p1] + right.shape[1]).max()) - g_first + 1
    if g_width > stride:  # Cannot happen with the sizes chosen above.
      raise AssertionError(f'group width {g_width} > stride {stride}')
    taps = np.zeros((g_width, p1 - p0), dtype=np.float64)
    cols = np.arange(p1 - p0)[None, :]
    left_rows = (center[p0:p1, None] - g_first -
                 np.arange(left.shape[1])[None, :])
    right_rows = (center[p0:p1, None] - g_first + 1 +
                  np.arange(right.shape[1])[None, :])
    taps[left_rows.T, cols] += left[p0:p1].T
    taps[right_rows.T, cols] += right[p0:p1].T
    taps.setflags(write=False)
    groups.append((p0, g_first + pad_left, taps))
  reach = max(first + taps.shape[0] for _, first, taps in groups)
  return _Plan(phases=phases, stride=stride, reduced_phases=period_out,
               pad_left=pad_left, reach=reach, groups=tuple(groups))


def _as_int_rate(rate, name: str) -> Optional[int]:
  rate = float(rate)
  if not rate > 0 or not math.isfinite(rate):
    raise ValueError(f'{name} must be a positive sample rate, got {rate}')
  return int(rate) if rate.is_integer() else None


def output_length(num_samples: int, sr_orig, sr_new) -> int:
  """Number of output samples, computed exactly as resampy does."""
  return int(num_samples * float(sr_new) / float(sr_orig))


def resample(x, sr_orig, sr_new) -> np.ndarray:
  """Resamples a mono waveform exactly like `resampy.resample` (kaiser_best).

  Args:
    x: [num_samples] waveform (any real dtype; computed in float64).
    sr_orig: its sample rate in Hz (> 0).
    sr_new: the target sample rate in Hz (> 0).

  Returns:
    float64 [int(num_samples * sr_new / sr_orig)]. Equal to
    `resampy.resample(x, sr_orig, sr_new)` within 1e-6 for |x| <= 1 (in
    practice ~1e-12). Unlike resampy, an input too short to give one output
    sample returns an empty array instead of raising, so callers can apply
    their own short-clip policy. `sr_orig == sr_new` returns a copy.

  Raises:
    ValueError: if `x` is not one-dimensional or a rate is not positive.
  """
  x = np.asarray(x)
  if x.ndim != 1:
    raise ValueError(
        f'resample expects a mono waveform of shape [num_samples], got shape '
        f'{x.shape}; average the channels first')
  int_orig = _as_int_rate(sr_orig, 'sr_orig')
  int_new = _as_int_rate(sr_new, 'sr_new')
  if float(sr_orig) == float(sr_new):
    return x.astype(np.float64)  # Always a copy, as resampy.
  x = np.asarray(x, dtype=np.float64)
  num_out = output_length(x.shape[0], sr_orig, sr_new)
  if num_out < 1:
    return np.zeros((0,), dtype=np.float64)

  plan = None
  if int_orig is not None and int_new is not None:
    plan = _plan(int_orig, int_new)
  if plan is None:
    logging.info('resample %s -> %s Hz: no compact polyphase table; '
                 'using resampy', sr_orig, sr_new)
    import resampy  # Lazy: only this rare path needs numba.
    return resampy.resample(x, sr_orig, sr_new, filter=_FILTER_NAME)
  return _resample_polyphase(x, int_orig, int_new, num_out, plan)


def _copy_zero_padded(x: np.ndarray, start: int, window: np.ndarray) -> None:
  """window[:] = x[start : start + len(window)], zeros outside x."""
  stop = start + window.shape[0]
  lo, hi = max(start, 0), min(stop, x.shape[0])
  if lo >= hi:
    window[:] = 0.0
    return
  window[:lo - start] = 0.0
  window[lo - start:hi - start] = x[lo:hi]
  window[hi - start:] = 0.0


def _resample_polyphase(x: np.ndarray, sr_orig: int, sr_new: int,
                        num_out: int, plan: _Plan) -> np.ndarray:
  """All outputs as strided block products with the cached phase taps."""
  phases, stride = plan.phases, plan.stride
  num_blocks = -(-num_out // phases)
  blocks_per_chunk = max(1, _INPUTS_PER_CHUNK // stride)
  # One cache-sized, zero-padded window of the signal per chunk of blocks (the
  # zeros stand for resampy's implicit zeros outside the signal), instead of a
  # padded copy of the whole signal.
  buffer = np.empty((blocks_per_chunk - 1) * stride + plan.reach, np.float64)
  item = buffer.itemsize
  out = np.empty((num_blocks, phases), dtype=np.float64)
  for b0 in range(0, num_blocks, blocks_per_chunk):
    b1 = min(num_blocks, b0 + blocks_per_chunk)
    # Block b reads padded[b * stride : b * stride + reach], and padded[i] is
    # x[i - pad_left]; `window` bounds every strided view below (as_strided
    # does not check bounds).
    start = b0 * stride - plan.pad_left
    window = buffer[:(b1 - b0 - 1) * stride + plan.reach]
    _copy_zero_padded(x, start, window)
    for p0, first, taps in plan.groups:
      # [b1 - b0, width]: row b is the group's input window of block b.
      # width <= stride, so the rows do not overlap and BLAS reads them in
      # place (leading dimension = stride), with no copy.
      rows = np.lib.stride_tricks.as_strided(
          window[first:], shape=(b1 - b0, taps.shape[0]),
          strides=(stride * item, item), writeable=False)
      out[b0:b1, p0:p0 + taps.shape[1]] = rows @ taps
  y = out.reshape(-1)[:num_out]

  # resampy's float output times t * (sr_orig / sr_new) can land one ulp below
  # an exact integer (only at phase 0, every L outputs: elsewhere the exact
  # time is at least 1/L from an integer). resampy then truncates to the
  # previous input sample and reads the filter from the other end, which is
  # not the same as our exact taps (its tap step is truncated to an integer),
  # so recompute exactly those outputs as resampy does.
  time_increment = 1.0 / (float(sr_new) / sr_orig)
  t0 = np.arange(0, num_out, plan.reduced_phases, dtype=np.int64)
  exact = (t0 * sr_orig) // sr_new
  time_register = t0 * time_increment
  low = np.floor(time_register) < exact
  if np.any(low):
    window, _, step, _, _ = _scaled_filter(float(sr_new) / sr_orig)
    pad = window.shape[0] // step + 2
    padded_direct = np.pad(x, pad)
    y[t0[low]] = _direct(padded_direct, pad, time_register[low],
                         float(sr_new) / sr_orig)
  return y
