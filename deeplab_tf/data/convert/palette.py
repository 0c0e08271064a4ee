"""Palette PNG -> index array: what ``datasets/remove_gt_colormap.py`` does.

PASCAL VOC ships its labels as palette PNGs whose pixel values are already the
class ids; the palette only colours them. The indices are read from the PNG
chunks directly (no colour lookup), so the ids survive exactly.
"""
import struct
import zlib

import numpy as np
import tensorflow as tf

# The PNG readers are the semantic converter's; palette PNGs are one of the
# label kinds it reads.
from deeplab_tf.data.convert.semantic import _Bad
from deeplab_tf.data.convert.semantic import _decode_label_png
from deeplab_tf.data.convert.semantic import _PNG_COLOUR_TYPES
from deeplab_tf.data.convert.semantic import _PNG_MAGIC
from deeplab_tf.data.convert.semantic import png_header
from deeplab_tf.data.convert.shards import tf_error_text


def _png_chunks(data):
  pos = len(_PNG_MAGIC)
  while pos + 8 <= len(data):
    length, ctype = struct.unpack('>I4s', data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + length]
    if len(body) != length:
      raise ValueError('truncated PNG chunk %r' % ctype)
    yield ctype, body
    pos += 12 + length
    if ctype == b'IEND':
      return
  raise ValueError('PNG has no IEND chunk (truncated?)')


def palette_png_to_indices(data):
  """The palette indices of a colour-mapped PNG as a uint8 [H, W] array.

  Decoders expand palette PNGs to colours; the indices are what the original
  ``remove_gt_colormap.py`` keeps. Without PIL: the PNG is re-labelled as a
  grey image of the same bit depth (IHDR colour type 3 -> 0, PLTE/tRNS
  dropped), whose samples are exactly the indices, then decoded. A grey PNG is
  returned as is (already raw). Raises ValueError for other PNGs.
  """
  if not data.startswith(_PNG_MAGIC):
    raise ValueError('not a PNG file')
  header = png_header(data)
  if header is None:
    raise ValueError('corrupt PNG: no IHDR header')
  _, _, bit_depth, colour_type = header
  if colour_type == 0:
    try:
      values, _ = _decode_label_png('<png>', data)
    except _Bad as e:
      raise ValueError(e.reason) from None
    if values.size and values.max() > 255:
      raise ValueError('16-bit grey PNG with values above 255')
    return values.astype(np.uint8)
  if colour_type != 3:
    raise ValueError('PNG is %s, not palette or grey: no colour map to remove'
                     % _PNG_COLOUR_TYPES.get(colour_type, (0, 'unknown'))[1])
  parts = [_PNG_MAGIC]
  for ctype, body in _png_chunks(data):
    if ctype in (b'PLTE', b'tRNS'):
      continue
    if ctype == b'IHDR':
      body = body[:9] + b'\x00' + body[10:]
    parts.append(struct.pack('>I', len(body)) + ctype + body +
                 struct.pack('>I', zlib.crc32(ctype + body) & 0xffffffff))
  grey = b''.join(parts)
  try:
    indices = tf.io.decode_png(grey, channels=1).numpy()[..., 0]
  except tf.errors.OpError as e:
    raise ValueError('cannot decode PNG: %s' % tf_error_text(e)) from None
  if bit_depth < 8:
    indices = indices // (255 // ((1 << bit_depth) - 1))
  return indices.astype(np.uint8)
