"""The original's resize kernels and size arithmetic, written once.

Every DeepLab resize is TF1's: ``align_corners=True`` and no half-pixel
centres (source coordinate ``y * (in - 1) / (out - 1)``), nearest neighbour
rounding with C ``roundf`` (ties away from zero), which ``tf.image.resize``
does not reproduce. Feature sizes follow ``utils.scale_dimension``. The model
layers, the input pipeline, losses, export and vis all call these.
"""
import tensorflow as tf


def _batched(images):
  images = tf.convert_to_tensor(images)
  if images.shape.rank == 3:
    return images[tf.newaxis], True
  if images.shape.rank == 4:
    return images, False
  raise ValueError('resize expects a [H, W, C] image or a [B, H, W, C] batch; '
                   'got shape %s.' % (images.shape,))


def resize_bilinear(images, size, align_corners=True, output_dtype='same'):
  """TF1 ``resize_bilinear`` of [B, H, W, C] or [H, W, C].

  The kernel computes in float32; the result is cast to ``output_dtype``:
  ``'same'`` (the input's, so float16 / bfloat16 features stay so), a dtype,
  or None (float32).
  """
  batch, single = _batched(images)
  out = tf.raw_ops.ResizeBilinear(images=batch, size=size,
                                  align_corners=align_corners,
                                  half_pixel_centers=False)
  if output_dtype == 'same':
    output_dtype = batch.dtype
  if output_dtype is not None:
    out = tf.cast(out, output_dtype)
  return out[0] if single else out


def resize_nearest(images, size, align_corners=True):
  """TF1 ``resize_nearest_neighbor`` of [B, H, W, C] or [H, W, C]; dtype
  kept. With align_corners the kernel takes ``min(roundf(y * scale), in - 1)``:
  ties round away from zero, which the label fixtures depend on."""
  batch, single = _batched(images)
  out = tf.raw_ops.ResizeNearestNeighbor(images=batch, size=size,
                                         align_corners=align_corners,
                                         half_pixel_centers=False)
  return out[0] if single else out


def scale_dimension(dim, scale):
  """The original ``utils.scale_dimension``: ``int((dim - 1) * scale + 1)``.

  Used for every feature size DeepLab derives from a crop size (logits size,
  image-pooling kernel, decoder size, multi-scale input sizes). For a tensor
  ``dim`` the same arithmetic is done in float32 and truncated.
  """
  if isinstance(dim, (tf.Tensor, tf.Variable)):
    return tf.cast((tf.cast(dim, tf.float32) - 1.0) * scale + 1.0, tf.int32)
  return int((float(dim) - 1.0) * scale + 1.0)


def next_aligned_size(size, multiple):
  """Smallest ``k * multiple + 1 >= size`` (k >= 0): a size every stride up to
  ``multiple`` divides evenly, so features stay aligned with the image corners
  as at the usual 513 = 32 * 16 + 1. Python ints or int tensors."""
  return (size - 1 + multiple - 1) // multiple * multiple + 1


def padded_size(size, crop_size, output_stride):
  """Height and width an image of ``size`` is padded to (int32 [2] tensor):
  the crop size where the image fits (as the original), else
  ``next_aligned_size`` at the output stride.

  Args:
    size: int32 [2] tensor (or pair) of the (resized) image height, width.
    crop_size: (height, width) python ints.
    output_stride: the model's output stride.
  """
  size = tf.cast(size, tf.int32)
  crop = tf.constant(crop_size, tf.int32)
  return tf.where(size <= crop, crop, next_aligned_size(size, output_stride))
