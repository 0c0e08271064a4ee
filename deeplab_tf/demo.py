r"""Segments one image with a DeepLab checkpoint and writes the colour overlay.

Usage (an extracted model-zoo tarball; the image may have any size):
  python -m deeplab_tf.demo \
      --checkpoint_path=workspace/checkpoints/zoo/xception65_coco_voc_trainaug \
      --image=street.jpg --output_dir=workspace/demo \
      --model_variant=xception_65 --atrous_rates=6 --atrous_rates=12 \
      --atrous_rates=18 --output_stride=16 --decoder_output_stride=4

A converted checkpoint (``deeplab_tf.convert_checkpoint`` writes
``<prefix>_options.json``) or one of our training folders (the trainer writes
``model_options.json``) carries its model options, so there only
``--checkpoint_path`` and ``--image`` are needed; model flags given on the
command line still override single options (e.g. ``--output_stride=8
--atrous_rates=12 --atrous_rates=24 --atrous_rates=36``).

Writes into --output_dir, named after the image:
  <name>_overlay.png     the image blended with the coloured labels
                         (--overlay_alpha is the weight of the colours);
  <name>_prediction.png  the coloured labels (--colormap_type);
  <name>_labels.png      the label ids, one 8-bit value per pixel;
and prints every class found with its share of the pixels.

The segmentation is the export's serving path (``deeplab_tf.export``):
optional ``resize_to_range`` (--min_resize_value / --max_resize_value),
padding with the backbone's mean pixel to --crop_size (a larger image to the
next k * output_stride + 1), the predictor (--inference_scales,
--add_flipped_images), the dense CRF with --crf, then crop and resize back to
the image size. Nothing is downloaded.
"""
import dataclasses
import os
import sys
from typing import Dict, Optional, Sequence, Tuple

from absl import app
from absl import flags

from deeplab_tf.config import model_flags
from deeplab_tf.core.errors import DeeplabError

FLAGS = flags.FLAGS



@dataclasses.dataclass
class DemoResult:
  """What ``run_demo`` computed and wrote.

  Attributes:
    labels: uint8 [H, W] class ids at the image size.
    colours: uint8 [H, W, 3] the labels coloured.
    overlay: uint8 [H, W, 3] the image blended with ``colours``.
    shares: (class id, class name, fraction of the pixels) of every class
      found, largest first.
    files: 'overlay' / 'prediction' / 'labels' -> path written.
    loaded: what was loaded from the checkpoint (one line).
  """
  labels: object
  colours: object
  overlay: object
  shares: Tuple[Tuple[int, str, float], ...]
  files: Dict[str, str]
  loaded: str


def read_image(path):
  """uint8 [H, W, 3] RGB of a JPEG / PNG / BMP / GIF file (grey repeated,
  alpha dropped)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError('Image %s not found.' % path)
  data = tf.io.read_file(path)
  return tf.io.decode_image(data, channels=3, expand_animations=False).numpy()


def segment(image, options, checkpoint_path, settings=None,
            eval_scales=(1.0,), add_flipped_images=False):
  """Label map of one image with the weights of a checkpoint.

  Args:
    image: uint8 [H, W, 3] RGB, any size.
    options: ModelOptions of the checkpoint's model (crop_size is ignored).
    checkpoint_path: ours (a train_logdir or a ckpt-N prefix) or an original
      TF1 checkpoint (model.ckpt prefix, a converted checkpoint, or the
      extracted model-zoo folder).
    settings: deeplab_tf.export.ServingSettings (crop, resize, CRF); None:
      the original export defaults (513x513 crop, no resize).
    eval_scales: inference scales (probabilities averaged).
    add_flipped_images: also predict the left-right flipped image.

  Returns:
    ``(labels int32 [H, W], description of what was loaded)``.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from deeplab_tf import export  # pylint: disable=g-import-not-at-top
  settings = settings or export.ServingSettings()
  spec = export.PredictorSpec(options, tuple(eval_scales), add_flipped_images)
  serving_options = export.serving_model_options(options, settings.crop_size)
  predictor, loaded = export.build_and_restore(spec, checkpoint_path,
                                               serving_options.crop_size)
  module = export.ServingModule(predictor, settings)
  image = np.asarray(image)
  if image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError('Expected an RGB image [H, W, 3]; got shape %s.'
                     % (image.shape,))
  outputs = module.segment(tf.constant(image[None], tf.uint8))
  return outputs['semantic'][0].numpy(), loaded


def class_shares(labels, class_names=None):
  """(id, name, fraction of the pixels) of each class present, largest first."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  labels = np.asarray(labels)
  ids, counts = np.unique(labels, return_counts=True)
  total = float(labels.size)
  names = list(class_names or ())
  shares = []
  for class_id, count in zip(ids.tolist(), counts.tolist()):
    name = names[class_id] if class_id < len(names) else 'class %d' % class_id
    shares.append((class_id, name, count / total))
  return tuple(sorted(shares, key=lambda s: (-s[2], s[0])))


def run_demo(checkpoint_path, image_path, output_dir, options,
             class_names: Optional[Sequence[str]] = None, colormap='pascal',
             settings=None, eval_scales=(1.0,), add_flipped_images=False,
             overlay_alpha=0.5):
  """Segments ``image_path``, writes the three PNGs, returns a DemoResult.

  ``colormap`` is a name of ``visualization.get_colormap`` or RGB colours,
  one per class id; ``class_names`` names the ids in ``shares``.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  from deeplab_tf import visualization  # pylint: disable=g-import-not-at-top
  from deeplab_tf.visualization import vis_lib  # pylint: disable=g-import-not-at-top
  if options.num_classes > 256:
    raise ValueError('%d classes do not fit the 8-bit label PNG.'
                     % options.num_classes)
  image = read_image(image_path)
  labels, loaded = segment(image, options, checkpoint_path, settings,
                           eval_scales, add_flipped_images)
  labels = labels.astype(np.uint8)
  colours = visualization.colorize(labels, colormap)
  overlay = visualization.overlay(image, colours, overlay_alpha)
  os.makedirs(output_dir, exist_ok=True)
  stem = os.path.splitext(os.path.basename(image_path))[0]
  files = {}
  for kind, array in (('overlay', overlay), ('prediction', colours),
                      ('labels', labels)):
    files[kind] = vis_lib.write_png(
        os.path.join(output_dir, '%s_%s.png' % (stem, kind)), array)
  return DemoResult(labels=labels, colours=colours, overlay=overlay,
                    shares=class_shares(labels, class_names), files=files,
                    loaded=loaded)


def format_shares(shares, num_pixels):
  lines = ['classes found (share of the %d pixels):' % num_pixels]
  width = max([len(name) for _, name, _ in shares] + [5])
  for class_id, name, share in shares:
    lines.append('  %3d  %-*s  %6.2f%%' % (class_id, width, name,
                                           100.0 * share))
  return '\n'.join(lines)


# --- Script ------------------------------------------------------------------


def define_flags():
  """The demo's flags, defined when the script runs (not at import), so the
  module can be imported beside deeplab_tf.export_model / vis, which define
  flags of the same names."""
  from deeplab_tf import visualization  # pylint: disable=g-import-not-at-top
  model_flags.define_model_flags(output_stride_default=16)
  model_flags.define_resize_flags()
  model_flags.define_dataset_flags()
  model_flags.define_crf_flags()
  flags.DEFINE_string('checkpoint_path', None,
                      'Checkpoint: one of ours (train_logdir or ckpt-N '
                      'prefix), a converted one, or an original TF1 / model-'
                      'zoo checkpoint (model.ckpt prefix or the extracted '
                      'tarball folder); told apart automatically.')
  flags.DEFINE_string('image', None, 'Image file to segment (JPEG, PNG, '
                      'BMP, GIF; grey and RGBA become RGB), any size.')
  flags.DEFINE_string('output_dir', 'workspace/demo',
                      'Folder for <name>_overlay.png, <name>_prediction.png '
                      'and <name>_labels.png.')
  flags.DEFINE_string('options_json', None,
                      'Model options JSON (ModelOptions.to_dict(); e.g. the '
                      '<prefix>_options.json of convert_checkpoint). Unset: '
                      'the one beside the checkpoint if any, else the model '
                      'flags. Model flags given explicitly override it.')
  flags.DEFINE_list('crop_size', '513,513',
                    'Crop "h,w" the image is padded to (larger images: the '
                    'next k * output_stride + 1), as export_model.')
  flags.DEFINE_multi_float('inference_scales', [1.0],
                           'Input scales (probabilities averaged), e.g. 0.5 '
                           '... 1.75 for the multi-scale test.')
  flags.DEFINE_boolean('add_flipped_images', False,
                       'Also predict the left-right flipped image.')
  flags.DEFINE_enum('colormap_type', visualization.DATASET_COLORMAP,
                    list(visualization.COLORMAP_NAMES)
                    + [visualization.DATASET_COLORMAP],
                    'Label colours: a palette, or "dataset" for the colours '
                    'of --dataset.')
  flags.DEFINE_float('overlay_alpha', 0.5,
                     'Weight of the label colours in the overlay (0: the '
                     'image, 1: the colours).')
  flags.mark_flags_as_required(['checkpoint_path', 'image'])


def options_from_flags(descriptor):
  """(ModelOptions, where they came from): the options JSON (--options_json,
  else the one beside the checkpoint) under the model flags given, else the
  model flags (``checkpoints.model_options``, the rule of every script)."""
  num_classes = (FLAGS.num_classes if FLAGS['num_classes'].present
                 else descriptor.num_classes)
  return model_flags.checkpoint_options(
      FLAGS.checkpoint_path,
      model_flags.model_options_from_flags(num_classes=num_classes),
      script_fields=(), json_path=FLAGS.options_json)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError('Unexpected arguments: %s' % ' '.join(argv[1:]))
  from deeplab_tf.data import datasets_info  # pylint: disable=g-import-not-at-top
  from deeplab_tf.visualization import vis_lib  # pylint: disable=g-import-not-at-top
  from deeplab_tf.export import ServingSettings  # pylint: disable=g-import-not-at-top
  try:
    crop = model_flags.parse_crop_size(FLAGS.crop_size, 'crop_size')
    if crop is None:
      raise ValueError('--crop_size must be "height,width" (the serving path '
                       'pads to it); "auto" is not accepted here.')
    descriptor = datasets_info.get_descriptor(FLAGS.dataset)
    options, source = options_from_flags(descriptor)
    settings = ServingSettings(
        crop_size=crop, min_resize_value=FLAGS.min_resize_value or None,
        max_resize_value=FLAGS.max_resize_value or None,
        resize_factor=FLAGS.resize_factor or None,
        crf=model_flags.crf_params_from_flags())
    class_names = descriptor.class_names
    if class_names and len(class_names) != options.num_classes:
      print('note: --dataset=%s names %d classes, the model has %d: classes '
            'are shown by id.' % (FLAGS.dataset, len(class_names),
                                  options.num_classes))
      class_names = None
    print('model: %s, %d classes (options from %s)'
          % (options.model_variant, options.num_classes, source))
    result = run_demo(
        FLAGS.checkpoint_path, FLAGS.image, FLAGS.output_dir, options,
        class_names=class_names,
        colormap=vis_lib.colormap_for(FLAGS.colormap_type, descriptor),
        settings=settings, eval_scales=tuple(FLAGS.inference_scales),
        add_flipped_images=FLAGS.add_flipped_images,
        overlay_alpha=FLAGS.overlay_alpha)
  except (DeeplabError, FileNotFoundError, ValueError) as e:
    print('ERROR: %s' % e, file=sys.stderr)
    return 1
  print(result.loaded)
  height, width = result.labels.shape
  print('image %s: %dx%d' % (FLAGS.image, height, width))
  print(format_shares(result.shares, height * width))
  for kind in ('overlay', 'prediction', 'labels'):
    print('wrote %s' % result.files[kind])
  return 0


def run():
  define_flags()
  app.run(main)


if __name__ == '__main__':
  sys.exit(run())
