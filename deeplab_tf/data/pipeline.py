"""tf.data input pipeline: TFRecord shards (original schema) -> preprocessed batches.

The counterpart of the original ``data_generator.Dataset`` (read the shards
``<split>-*``, parse, ``input_preprocess.preprocess_image_and_label``,
shuffle, repeat, batch), rebuilt for throughput and tf.distribute:

    shard files (by input pipeline) -> shuffle files (training)
      -> parallel interleave of TFRecord readers
      -> hard-class duplication (training, ``hard_classes.py``)
      -> shuffle records (training; buffer 100 as the original)
      -> repeat -> parallel decode + preprocess (AUTOTUNE) -> batch -> prefetch

Records are shuffled while still encoded (the original shuffles decoded,
preprocessed samples): cheaper, and the same distribution of orders for a
given buffer. Preprocessing is ``deeplab_tf.data.preprocess`` unchanged:
resize_to_range, random scale, pad with the variant's mean pixel and the
ignore label, random crop, flip (training); pad only (eval), labels always
nearest neighbour.

Elements are dicts: ``image`` float32 [B, crop_h, crop_w, 3] in 0..255
(at eval with ``crop_size=None``: [B, k*m+1, l*m+1, 3], the smallest such
size holding the batch's images, ``m = pad_multiple``),
``label`` int32 [B, crop_h, crop_w, 1] (not for unlabeled splits),
``height``/``width`` int32 [B] (the decoded image's size), ``filename``
string [B], and at eval with ``keep_original_image`` ``original_image``
[B, H, W, 3] (zero-padded to the largest of the batch).

Evaluation reads in a fixed order (records interleaved round-robin over the
shards), so batches and results repeat run to run.
``deterministic=True`` (tests) makes the output a pure function of the seed
and of TensorFlow's global seed (``tf.random.set_seed``; stateful random ops
combine the two): ordered interleave and maps, fixed seeds, preprocessing run
sequentially (its random ops are stateful, so parallel calls would draw in a
racy order).
"""
import dataclasses
from typing import Optional, Tuple

import tensorflow as tf

from deeplab_tf.core import geometry
from deeplab_tf.core import pixels
from deeplab_tf.core.errors import DeeplabError
from deeplab_tf.data import datasets_info
from deeplab_tf.data import hard_classes as hard_classes_lib
from deeplab_tf.data import preprocess
from deeplab_tf.data import records

AUTOTUNE = tf.data.AUTOTUNE


class InputError(DeeplabError, ValueError):
  """The pipeline cannot be built from these shards / split / settings."""


def _is_int(value):
  return isinstance(value, int) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class InputSettings:
  """Input settings; defaults are the original train.py / common.py flags.

  ``crop_size`` is ``train_crop_size`` (training) or ``eval_crop_size``
  (evaluation: every image, after the optional resize, must fit in it, as
  in the original). The scale settings only act when training.
  """
  crop_size: Optional[Tuple[int, int]] = (513, 513)
  min_resize_value: Optional[int] = None
  max_resize_value: Optional[int] = None
  resize_factor: Optional[int] = None
  min_scale_factor: float = 0.5
  max_scale_factor: float = 2.0
  scale_factor_step_size: float = 0.25
  model_variant: Optional[str] = 'mobilenet_v2'
  # Hard-class duplication (DeepLabv3): 1 means off.
  hard_classes: Tuple[int, ...] = ()
  hard_class_repeat: int = 1
  # Where the class-presence index is cached (default: the record folder).
  class_presence_index_dir: Optional[str] = None
  # Shuffle buffer of the original data_generator (records, training only).
  shuffle_buffer: int = 100
  # Shards read concurrently (interleave cycle length).
  num_parallel_reads: int = 4
  # Parallel decode + preprocess calls (AUTOTUNE or a positive int).
  num_parallel_calls: int = AUTOTUNE
  # Eval only: also return the (resized) image before padding.
  keep_original_image: bool = False
  # Fail on a label value outside [0, num_classes) and the ignore label.
  check_label_values: bool = True
  # Eval with crop_size=None: each image (after the optional resize) is
  # padded to the smallest k * pad_multiple + 1 holding it, and a batch to
  # its largest member (also of that form). Give the output stride, so that
  # every feature map aligns as at a k * output_stride + 1 crop.
  pad_multiple: int = 1

  def __post_init__(self):
    if self.crop_size is None:
      crop = None
    else:
      crop = tuple(self.crop_size) if isinstance(self.crop_size,
                                                 (list, tuple)) else ()
      if len(crop) != 2 or not all(_is_int(c) and c > 0 for c in crop):
        raise InputError('crop_size must be (height, width) positive ints, '
                         'or None (eval: whole images, see pad_multiple); got '
                         '%r.' % (self.crop_size,))
    object.__setattr__(self, 'crop_size', crop)
    if not _is_int(self.pad_multiple) or self.pad_multiple < 1:
      raise InputError('pad_multiple must be a positive int (the output '
                       'stride); got %r.' % (self.pad_multiple,))
    hard = tuple(self.hard_classes)
    if not all(_is_int(c) and 0 <= c <= 255 for c in hard):
      raise InputError('hard_classes must be class ids (ints in [0, 255]); '
                       'got %r.' % (self.hard_classes,))
    object.__setattr__(self, 'hard_classes', hard)
    if not _is_int(self.hard_class_repeat) or self.hard_class_repeat < 1:
      raise InputError('hard_class_repeat must be an int >= 1 (1: no '
                       'duplication); got %r.' % (self.hard_class_repeat,))
    if not _is_int(self.shuffle_buffer) or self.shuffle_buffer < 1:
      raise InputError('shuffle_buffer must be a positive int; got %r.'
                       % (self.shuffle_buffer,))
    if not _is_int(self.num_parallel_reads) or self.num_parallel_reads < 1:
      raise InputError('num_parallel_reads must be a positive int; got %r.'
                       % (self.num_parallel_reads,))
    if not _is_int(self.num_parallel_calls) or (
        self.num_parallel_calls < 1 and self.num_parallel_calls != AUTOTUNE):
      raise InputError('num_parallel_calls must be a positive int or '
                       'tf.data.AUTOTUNE; got %r.' % (self.num_parallel_calls,))
    # Validates the resize and scale arguments with the preprocess messages.
    self.preprocess_settings(ignore_label=255)

  @property
  def duplicates_hard_classes(self):
    return bool(self.hard_classes) and self.hard_class_repeat > 1

  def preprocess_settings(self, ignore_label):
    """The ``PreprocessSettings`` of these settings for one dataset."""
    # Without a crop (whole-image eval) the padding is done by the
    # pipeline; 1x1 keeps PreprocessSettings' validation of the rest.
    crop = self.crop_size or (1, 1)
    return preprocess.PreprocessSettings(
        crop_height=crop[0], crop_width=crop[1],
        min_resize_value=self.min_resize_value,
        max_resize_value=self.max_resize_value,
        resize_factor=self.resize_factor,
        min_scale_factor=self.min_scale_factor,
        max_scale_factor=self.max_scale_factor,
        scale_factor_step_size=self.scale_factor_step_size,
        ignore_label=ignore_label, model_variant=self.model_variant)


# ---------------------------------------------------------------------------
# Per-sample functions (shared with tfds_sources).
# ---------------------------------------------------------------------------

def decode_record(serialized, decode_label=True):
  """A serialized record -> {'image' uint8, 'label' uint8 (if any), 'filename'}."""
  example = records.parse_example(serialized, decode_label=decode_label)
  sample = {'image': example.image, 'filename': example.filename}
  if decode_label:
    sample['label'] = example.label
  return sample


def _check_label_values(label, filename, num_classes, ignore_label):
  """Fails, naming the file and the value, on a label outside the class set."""
  if label.dtype != tf.uint8:
    label = tf.cast(label, tf.int32)
  elif num_classes >= 256:
    return label   # every uint8 value is a class
  # Compared in the label's own dtype: one cheap pass per sample.
  valid = tf.logical_or(label < tf.cast(num_classes, label.dtype),
                        tf.equal(label, tf.cast(ignore_label, label.dtype)))

  def fail():
    # Only computed for a bad record: the offending value for the message.
    worst = tf.reduce_max(tf.boolean_mask(label, tf.logical_not(valid)))
    check = tf.debugging.Assert(
        False, ['label value out of range in', filename, 'value',
                tf.cast(worst, tf.int32), 'accepted: 0 ..', num_classes - 1,
                'or the ignore label', ignore_label])
    with tf.control_dependencies([check]):
      return tf.identity(label)

  return tf.cond(tf.reduce_all(valid), lambda: label, fail)


def _whole_image_sample(image, label, settings, ignore_label):
  """Eval without a crop: resize (if asked), pad to k * pad_multiple + 1.

  The image is padded with the variant's mean pixel and the label with the
  ignore label, as the original pads to eval_crop_size; ``valid`` marks the
  image pixels so that the batch padding can be filled the same way.
  """
  image = tf.cast(image, tf.float32)
  if label is not None:
    label = tf.cast(label, tf.int32)
  if settings.min_resize_value or settings.max_resize_value:
    image, label = preprocess.resize_to_range(
        image=image, label=label, min_size=settings.min_resize_value,
        max_size=settings.max_resize_value, factor=settings.resize_factor,
        align_corners=True)
  original = image
  shape = tf.shape(image)
  target_h = geometry.next_aligned_size(shape[0], settings.pad_multiple)
  target_w = geometry.next_aligned_size(shape[1], settings.pad_multiple)
  mean = tf.reshape(tf.constant(pixels.mean_pixel(settings.model_variant),
                                tf.float32), [1, 1, 3])
  image = preprocess.pad_to_bounding_box(image, 0, 0, target_h, target_w, mean)
  valid = tf.pad(tf.ones(shape[:2], tf.bool),
                 [[0, target_h - shape[0]], [0, target_w - shape[1]]])
  if label is not None:
    label = preprocess.pad_to_bounding_box(label, 0, 0, target_h, target_w,
                                           ignore_label)
  return original, image, label, valid


def _fill_batch_padding(batch, model_variant):
  """padded_batch pads with zeros: give those pixels the mean pixel."""
  if 'valid' not in batch:
    return batch
  batch = dict(batch)
  mean = tf.constant(pixels.mean_pixel(model_variant), tf.float32)
  valid = batch.pop('valid')[..., tf.newaxis]
  batch['image'] = tf.where(valid, batch['image'], mean)
  return batch


def _check_fits_eval_crop(image, filename, settings):
  """Eval keeps whole images: each must fit the crop (after the resize)."""
  shape = tf.shape(image)
  size = shape[:2]
  if settings.min_resize_value or settings.max_resize_value:
    size = preprocess.resize_to_range_size(
        shape[0], shape[1], settings.min_resize_value,
        settings.max_resize_value, settings.resize_factor)
  crop_h, crop_w = settings.crop_size
  fits = tf.logical_and(size[0] <= crop_h, size[1] <= crop_w)
  check = tf.debugging.Assert(
      fits, ['eval keeps whole images: image', filename, 'is', size[0], 'x',
             size[1], '(after resize) and does not fit crop_size', crop_h,
             'x', crop_w, '; use a crop_size at least as large as the largest '
             'image, as the original eval_crop_size'])
  with tf.control_dependencies([check]):
    return tf.identity(image)


def make_sample_fn(settings: InputSettings, num_classes, ignore_label,
                   is_training, seed=None):
  """{'image', 'label'?, 'filename'} (decoded) -> one preprocessed sample dict."""
  prep = settings.preprocess_settings(ignore_label)

  def sample_fn(sample):
    image = sample['image']
    label = sample.get('label')
    filename = sample['filename']
    if label is not None and settings.check_label_values:
      label = _check_label_values(label, filename, num_classes, ignore_label)
    shape = tf.shape(image)
    valid = None
    if not is_training and settings.crop_size is None:
      original, processed, label, valid = _whole_image_sample(
          image, label, settings, ignore_label)
    else:
      if not is_training:
        image = _check_fits_eval_crop(image, filename, settings)
      original, processed, label = prep(image, label, is_training=is_training,
                                        seed=seed)
    out = {'image': processed, 'height': shape[0], 'width': shape[1],
           'filename': filename}
    if valid is not None:
      out['valid'] = valid
    if label is not None:
      out['label'] = label
    if not is_training and settings.keep_original_image:
      out['original_image'] = original
    return out

  return sample_fn


def finish_pipeline(elements, decode_fn, settings: InputSettings, num_classes,
                    ignore_label, batch_size, is_training, deterministic=False,
                    seed=None, num_epochs=None, post_fn=None,
                    ignore_padded_keys=('label',)):
  """Shuffle, repeat, decode + preprocess, batch, prefetch.

  Args:
    elements: dataset of undecoded elements (serialized records, or encoded
      TFDS features).
    decode_fn: element -> {'image' uint8 [H, W, 3], 'label' [H, W, 1]
      (optional), 'filename'}.
    num_epochs: None repeats forever when training and reads once at eval.
    post_fn: optional per-sample function applied after preprocessing
      (e.g. the panoptic pipeline splits its label and computes targets).
    ignore_padded_keys: keys that an eval batch pads with the ignore label
      (the others with zeros).
  """
  if not _is_int(batch_size) or batch_size < 1:
    raise InputError('batch_size (per replica) must be a positive int; got '
                     '%r.' % (batch_size,))
  if is_training and settings.crop_size is None:
    raise InputError('Training needs a crop_size (train_crop_size); None '
                     '(whole images) is for evaluation only.')
  if num_epochs is not None and (not _is_int(num_epochs) or num_epochs < 1):
    raise InputError('num_epochs must be None or a positive int; got %r.'
                     % (num_epochs,))
  if deterministic and seed is None:
    seed = 0
  if is_training:
    elements = elements.shuffle(settings.shuffle_buffer, seed=seed,
                                reshuffle_each_iteration=True)
  if num_epochs is None:
    num_epochs = -1 if is_training else 1
  if num_epochs != 1:
    elements = elements.repeat(num_epochs)
  sample_fn = make_sample_fn(settings, num_classes, ignore_label, is_training,
                             seed=seed)
  if post_fn is not None:
    per_sample = lambda e: post_fn(sample_fn(decode_fn(e)))
  else:
    per_sample = lambda e: sample_fn(decode_fn(e))
  dataset = elements.map(per_sample,
                         num_parallel_calls=(1 if deterministic
                                             else settings.num_parallel_calls),
                         # Eval keeps the record order (parallel still):
                         # results and batch composition are repeatable.
                         deterministic=deterministic or not is_training)
  if is_training:
    # Static batch shapes (as the original, which repeats forever).
    dataset = dataset.batch(batch_size, drop_remainder=True)
  else:
    # original_image sizes differ (and, without a crop, every image's):
    # pad them; labels with the ignore label, images then get the mean pixel.
    padding = {k: (tf.constant(ignore_label, spec.dtype)
                   if k in ignore_padded_keys else tf.zeros([], spec.dtype))
               for k, spec in dataset.element_spec.items()}
    dataset = dataset.padded_batch(batch_size, padding_values=padding)
    if settings.crop_size is None:
      dataset = dataset.map(
          lambda b: _fill_batch_padding(b, settings.model_variant))
  dataset = dataset.prefetch(AUTOTUNE)
  options = tf.data.Options()
  options.deterministic = deterministic or not is_training
  # We shard ourselves (input contexts); tf.distribute must not re-shard.
  options.experimental_distribute.auto_shard_policy = (
      tf.data.experimental.AutoShardPolicy.OFF)
  return dataset.with_options(options)


# ---------------------------------------------------------------------------
# TFRecord shards.
# ---------------------------------------------------------------------------

def list_shards(record_dir, split_name):
  """Sorted shard paths of a split (original pattern ``<split>-*``)."""
  pattern = records.shard_pattern(record_dir, split_name)
  files = sorted(f for f in tf.io.gfile.glob(pattern)
                 if not f.endswith('.json'))
  if not files:
    raise InputError('No TFRecord shard matches %s (split %r in %s). Convert '
                     'the dataset first (datasets/*.py) or check record_dir.'
                     % (pattern, split_name, record_dir))
  if all(tf.io.gfile.stat(f).length == 0 for f in files):
    raise InputError('Split %r has zero records: every shard matching %s is '
                     'empty (%s).' % (split_name, pattern,
                                      ', '.join(files)))
  return files


def _read_records(files, settings, is_training, input_context, deterministic,
                  seed, repeat_table):
  """Interleaved records of this input pipeline.

  Elements are serialized records, or (record, repeat count) pairs when a
  ``repeat_table`` (hard-class index) is given.
  """
  num_pipelines = input_context.num_input_pipelines if input_context else 1
  pipeline_id = input_context.input_pipeline_id if input_context else 0
  shard_by_record = num_pipelines > 1 and len(files) < num_pipelines
  file_ids = list(range(len(files)))
  if num_pipelines > 1 and not shard_by_record:
    file_ids = file_ids[pipeline_id::num_pipelines]
  filenames = tf.constant([files[i] for i in file_ids])
  file_ds = tf.data.Dataset.from_tensor_slices(
      (filenames, tf.constant(file_ids, tf.int64)))
  if is_training and not shard_by_record and len(file_ids) > 1:
    file_ds = file_ds.shuffle(len(file_ids), seed=seed,
                              reshuffle_each_iteration=True)

  def read(path, file_id):
    dataset = tf.data.TFRecordDataset(path, buffer_size=1 << 20)
    if repeat_table is None:
      return dataset
    counts, offsets = repeat_table
    return dataset.enumerate().map(
        lambda i, r: (r, tf.gather(counts, offsets[file_id] + i)))

  cycle = max(1, min(settings.num_parallel_reads, len(file_ids)))
  if cycle > 1:
    dataset = file_ds.interleave(
        read, cycle_length=cycle, block_length=1, num_parallel_calls=AUTOTUNE,
        # Record-level sharding needs the same order in every pipeline.
        deterministic=deterministic or shard_by_record or not is_training)
  else:
    dataset = file_ds.interleave(read, cycle_length=1, block_length=1)
  if shard_by_record:
    dataset = dataset.shard(num_pipelines, pipeline_id)
  return dataset


def pipeline_seed(seed, deterministic, input_context):
  """The seed of this input pipeline: 0 when deterministic and unset, and
  distinct per pipeline (shuffles and augmentation) under tf.distribute."""
  if deterministic and seed is None:
    seed = 0
  if seed is not None and input_context is not None:
    seed = seed + 1009 * input_context.input_pipeline_id
  return seed


def build_dataset(descriptor, split_name, record_dir,
                  settings: InputSettings, batch_size, is_training,
                  input_context: Optional[tf.distribute.InputContext] = None,
                  deterministic=False, seed=None, num_epochs=None):
  """Batches of preprocessed samples from the TFRecord shards of a split.

  Args:
    descriptor: a ``DatasetDescriptor``, a registered dataset name or the
      path of a JSON description (``datasets_info.get_descriptor``).
    split_name: a split of the descriptor (e.g. ``train_aug``).
    record_dir: folder of the shards ``<split>-*``.
    settings: ``InputSettings``.
    batch_size: batch size of this input pipeline (per replica).
    is_training: augment (scale, crop, flip), shuffle, duplicate hard
      classes, repeat forever (by default) and drop the last partial batch.
    input_context: a ``tf.distribute.InputContext``: this pipeline reads
      shards ``id::num_input_pipelines`` (or every n-th record when there are
      fewer shards than pipelines).
    deterministic: identical output for an identical seed (tests).
    seed: seed of shuffles and augmentation (0 when deterministic and None).
    num_epochs: epochs to read; None means forever (training) / once (eval).

  Returns:
    A ``tf.data.Dataset`` of dicts (see the module docstring).

  Raises:
    InputError / DescriptorError: unknown split, no shard, empty split,
      training on an unlabeled split.
  """
  descriptor = datasets_info.get_descriptor(descriptor)
  descriptor.check_split(split_name)
  if not isinstance(settings, InputSettings):
    raise InputError('settings must be an InputSettings; got %r.'
                     % (settings,))
  has_labels = descriptor.has_labels(split_name)
  if is_training and not has_labels:
    raise InputError('Split %r of dataset %r has no labels; it cannot be '
                     'used for training.' % (split_name, descriptor.name))
  bad = [c for c in settings.hard_classes
         if c >= descriptor.num_classes or c == descriptor.ignore_label]
  if bad:
    raise InputError('hard_classes %s are not classes of dataset %r (ids 0..%d '
                     'without the ignore label %d).'
                     % (bad, descriptor.name, descriptor.num_classes - 1,
                        descriptor.ignore_label))
  files = list_shards(record_dir, split_name)
  seed = pipeline_seed(seed, deterministic, input_context)

  duplicate = is_training and settings.duplicates_hard_classes
  repeat_table = None
  if duplicate:
    presence = hard_classes_lib.presence_by_file(
        files, record_dir, split_name, settings.class_presence_index_dir)
    if presence is not None:
      repeat_table = hard_classes_lib.repeat_table(
          files, presence, settings.hard_classes, settings.hard_class_repeat)
  elements = _read_records(files, settings, is_training, input_context,
                           deterministic, seed, repeat_table)
  if duplicate:
    if repeat_table is None:   # The records carry their class presence.
      elements = elements.map(
          lambda r: (r, hard_classes_lib.repeat_count_from_key(
              r, settings.hard_classes, settings.hard_class_repeat)))
    elements = hard_classes_lib.duplicate(elements)

  return finish_pipeline(
      elements, lambda r: decode_record(r, decode_label=has_labels), settings,
      descriptor.num_classes, descriptor.ignore_label, batch_size, is_training,
      deterministic=deterministic, seed=seed, num_epochs=num_epochs)
