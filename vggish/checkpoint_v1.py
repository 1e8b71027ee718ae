"""A zero-copy reader of TF1 V1 checkpoints such as the released `vggish_model.ckpt`.

TensorFlow reads a V1 checkpoint with its TensorSliceReader, which decodes the
72 M floats of VGGish's 289 MB file from protocol buffers one by one: about 2 s
on a 2-core machine, more than half of what a one-file extraction spends after
importing TensorFlow. The format is simple, so this module reads it directly:

- The file is a LevelDB-style table: a 48-byte footer (two block handles and
  a magic number) points to an index block, whose values are the handles of
  the data blocks; a block is a run of prefix-compressed (key, value) entries
  followed by its restart offsets, and stored with a 5-byte trailer (type
  byte, checksum).
- The entry with the empty key is a `SavedTensorSlices` proto holding the
  metadata (name, shape, dtype and slices of every tensor); every other entry
  is a `SavedTensorSlices` holding one slice's data, a `TensorProto` whose
  floats are one packed field: exactly the little-endian float32 bytes.

`open_checkpoint` memory-maps the file and gives numpy views of those bytes:
nothing is parsed or copied until the caller copies the weights into the
model. Anything this reader does not expect (a compressed block, a
partitioned variable, a dtype other than float32, a truncated file) raises
`UnsupportedCheckpoint`, and the caller falls back to TensorFlow's reader,
which reports real damage with its own message.
"""

import contextlib
import mmap
import struct
from typing import Dict, Iterator, NamedTuple, Tuple

import numpy as np

_MAGIC = 0xdb4775248b80fb57
_FOOTER_SIZE = 48
_TRAILER_SIZE = 5  # One type byte (0: uncompressed) and a masked CRC32C.
_DT_FLOAT = 1  # tensorflow.DataType.DT_FLOAT
# Protocol buffer wire types.
_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5


class UnsupportedCheckpoint(ValueError):
  """The file is not a V1 checkpoint this reader handles (use TensorFlow's)."""


class TensorInfo(NamedTuple):
  """A tensor listed in the checkpoint's metadata."""
  shape: Tuple[int, ...]
  dtype: int  # tensorflow DataType enum (1 = float32).


def _varint(buf, pos: int) -> Tuple[int, int]:
  result = shift = 0
  while True:
    if pos >= len(buf) or shift > 63:
      raise UnsupportedCheckpoint('bad varint')
    byte = buf[pos]
    pos += 1
    result |= (byte & 0x7f) << shift
    if not byte & 0x80:
      return result, pos
    shift += 7


def _fields(buf, start: int, end: int) -> Iterator[Tuple[int, int, int, int]]:
  """(field number, wire type, value or start, end) of a message's fields.

  For a length-delimited field the value is its start offset and `end` its
  end; for the others the value is the number and `end` the next offset.
  """
  pos = start
  while pos < end:
    key, pos = _varint(buf, pos)
    number, wire = key >> 3, key & 7
    if wire == _VARINT:
      value, pos = _varint(buf, pos)
      yield number, wire, value, pos
    elif wire == _LEN:
      length, pos = _varint(buf, pos)
      if pos + length > end:
        raise UnsupportedCheckpoint('field runs past its message')
      yield number, wire, pos, pos + length
      pos += length
    elif wire == _FIXED64:
      pos += 8
      yield number, wire, 0, pos
    elif wire == _FIXED32:
      pos += 4
      yield number, wire, 0, pos
    else:
      raise UnsupportedCheckpoint(f'unexpected wire type {wire}')
  if pos != end:
    raise UnsupportedCheckpoint('message runs past its end')


def _field(buf, start: int, end: int, number: int, wire: int = _LEN):
  """(value or start, end) of the last occurrence of a field, or None."""
  found = None
  for n, w, value, stop in _fields(buf, start, end):
    if n == number:
      if w != wire:
        raise UnsupportedCheckpoint(f'field {number} has wire type {w}')
      found = (value, stop)
  return found


def _block_handle(buf, pos: int) -> Tuple[int, int, int]:
  offset, pos = _varint(buf, pos)
  size, pos = _varint(buf, pos)
  return offset, size, pos


def _block(buf, offset: int, size: int) -> Tuple[int, int]:
  """[start, end) of an uncompressed block's contents."""
  if offset + size + _TRAILER_SIZE > len(buf):
    raise UnsupportedCheckpoint('block past the end of the file (truncated?)')
  if buf[offset + size] != 0:
    raise UnsupportedCheckpoint('compressed table block')
  return offset, offset + size


def _entries(buf, start: int, end: int) -> Iterator[Tuple[bytes, int, int]]:
  """(key, value start, value end) of a block's entries, in order."""
  if end - start < 4:
    raise UnsupportedCheckpoint('block too short')
  num_restarts, = struct.unpack_from('<I', buf, end - 4)
  limit = end - 4 - 4 * num_restarts
  if limit < start:
    raise UnsupportedCheckpoint('bad restart array')
  pos, key = start, b''
  while pos < limit:
    shared, pos = _varint(buf, pos)
    non_shared, pos = _varint(buf, pos)
    value_length, pos = _varint(buf, pos)
    if shared > len(key) or pos + non_shared + value_length > limit:
      raise UnsupportedCheckpoint('bad block entry')
    key = key[:shared] + bytes(buf[pos:pos + non_shared])
    pos += non_shared
    yield key, pos, pos + value_length
    pos += value_length


def _shape(buf, start: int, end: int) -> Tuple[int, ...]:
  """TensorShapeProto: repeated Dim dim = 2 {int64 size = 1}."""
  dims = []
  for number, wire, value, stop in _fields(buf, start, end):
    if number == 3 and value:  # unknown_rank
      raise UnsupportedCheckpoint('tensor of unknown rank')
    if number == 2 and wire == _LEN:
      size = _field(buf, value, stop, 1, _VARINT)
      dims.append(0 if size is None else size[0])
  return tuple(dims)


def _is_full_slice(buf, start: int, end: int) -> bool:
  """TensorSliceProto: every extent (field 1) without a length means 'all'."""
  for number, wire, value, stop in _fields(buf, start, end):
    if number == 1 and wire == _LEN and _field(buf, value, stop, 2, _VARINT):
      return False
  return True


def _read_meta(buf, start: int, end: int) -> Dict[str, TensorInfo]:
  """SavedTensorSlices.meta (1) -> SavedTensorSliceMeta.tensor (1, repeated)."""
  meta = _field(buf, start, end, 1)
  if meta is None:
    raise UnsupportedCheckpoint('no metadata entry')
  tensors = {}
  for number, wire, value, stop in _fields(buf, *meta):
    if number != 1 or wire != _LEN:
      continue
    name = shape = None
    dtype, slices = 0, []
    for n, w, v, s in _fields(buf, value, stop):
      if n == 1 and w == _LEN:
        name = bytes(buf[v:s]).decode('utf-8')
      elif n == 2 and w == _LEN:
        shape = _shape(buf, v, s)
      elif n == 3 and w == _VARINT:
        dtype = v
      elif n == 4 and w == _LEN:
        slices.append((v, s))
    if name is None or shape is None:
      raise UnsupportedCheckpoint('tensor metadata without a name or shape')
    if len(slices) != 1 or not _is_full_slice(buf, *slices[0]):
      raise UnsupportedCheckpoint(f'{name} is partitioned into slices')
    tensors[name] = TensorInfo(shape, dtype)
  return tensors


def _read_slice(buf, start: int, end: int, tensors, arrays) -> None:
  """SavedTensorSlices.data (2) -> SavedSlice {name 1, slice 2, data 3}."""
  data = _field(buf, start, end, 2)
  if data is None:
    raise UnsupportedCheckpoint('entry without data')
  name = _field(buf, *data, 1)
  proto = _field(buf, *data, 3)
  if name is None or proto is None:
    raise UnsupportedCheckpoint('slice without a name or data')
  name = bytes(buf[name[0]:name[1]]).decode('utf-8')
  info = tensors.get(name)
  if info is None:
    raise UnsupportedCheckpoint(f'data of {name}, which the metadata does not list')
  if info.dtype != _DT_FLOAT:
    return  # Not VGGish's (global_step, ...): the caller validates dtypes.
  # TensorProto: float_val = 5 (packed) or tensor_content = 4, raw float32.
  values = _field(buf, *proto, 5) or _field(buf, *proto, 4)
  count = int(np.prod(info.shape, dtype=np.int64))
  if values is None:
    if count:
      raise UnsupportedCheckpoint(f'{name}: no packed float values')
    values = (proto[0], proto[0])
  if values[1] - values[0] != 4 * count:
    raise UnsupportedCheckpoint(f'{name}: {values[1] - values[0]} bytes for '
                                f'{count} floats')
  arrays[name] = np.frombuffer(buf, dtype='<f4', count=count,
                               offset=values[0]).reshape(info.shape)


@contextlib.contextmanager
def open_checkpoint(path: str):
  """Memory-maps a V1 checkpoint; yields (tensors metadata, float32 arrays).

  Yields:
    (name -> `TensorInfo` for every tensor listed, name -> float32 numpy
    view for every float32 tensor; the mapping is copy-on-write, so a write
    to a view never reaches the file). The views are valid inside the `with`
    block only: copy what must outlive it.

  Raises:
    UnsupportedCheckpoint: not a V1 checkpoint this reader handles; the
      caller should use TensorFlow's reader (which explains real damage).
    OSError: the file cannot be opened.
  """
  with open(path, 'rb') as f:
    try:
      # Copy-on-write: no view can ever write to the file.
      mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    except ValueError as e:  # An empty file cannot be mapped.
      raise UnsupportedCheckpoint(str(e)) from e
  buf = memoryview(mapped)
  arrays: Dict[str, np.ndarray] = {}
  try:
    if len(buf) < _FOOTER_SIZE:
      raise UnsupportedCheckpoint('file too short for a table footer')
    footer = len(buf) - _FOOTER_SIZE
    magic, = struct.unpack_from('<Q', buf, len(buf) - 8)
    if magic != _MAGIC:
      raise UnsupportedCheckpoint('no table magic number (not a V1 checkpoint?)')
    _, _, pos = _block_handle(buf, footer)  # The metaindex block (unused).
    index_offset, index_size, _ = _block_handle(buf, pos)
    tensors = None
    data_entries = []
    for _, start, end in _entries(buf, *_block(buf, index_offset, index_size)):
      offset, size, _ = _block_handle(buf, start)
      for key, value_start, value_end in _entries(buf, *_block(buf, offset, size)):
        if key == b'':
          tensors = _read_meta(buf, value_start, value_end)
        else:
          data_entries.append((value_start, value_end))
    if tensors is None:
      raise UnsupportedCheckpoint('no metadata entry')
    for start, end in data_entries:
      _read_slice(buf, start, end, tensors, arrays)
    missing = [name for name, info in tensors.items()
               if info.dtype == _DT_FLOAT and name not in arrays]
    if missing:
      raise UnsupportedCheckpoint(f'no data for {", ".join(missing)}')
    yield tensors, arrays
  finally:
    arrays.clear()
    try:
      buf.release()
      mapped.close()
    except BufferError:
      pass  # A caller kept a view; the mapping closes when it is freed.
