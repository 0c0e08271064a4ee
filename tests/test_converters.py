"""Dataset converters: tiny self-made data, ../shared/camvid, bad inputs, scripts."""
import json
import os
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
import tensorflow as tf

from deeplab_tf.data import convert
from deeplab_tf.data import records

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATASETS = os.path.join(REPO, 'datasets')
CAMVID = os.path.join(os.path.dirname(REPO), 'shared', 'camvid')
H, W = 17, 23


def _png(array):
  array = np.asarray(array, np.uint8)
  if array.ndim == 2:
    array = array[..., None]
  return tf.io.encode_png(array).numpy()


def _jpeg(array):
  return tf.io.encode_jpeg(np.asarray(array, np.uint8), quality=90).numpy()


def _write(path, data):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'wb') as f:
    f.write(data)
  return path


def _palette_png(indices, bit_depth=8):
  """A colour-mapped PNG whose pixels are ``indices`` (no PIL needed)."""
  height, width = indices.shape
  per_byte = 8 // bit_depth
  rows = []
  for row in indices.astype(np.uint8):
    if bit_depth == 8:
      packed = row.tobytes()
    else:
      padded = np.zeros(-(-width // per_byte) * per_byte, np.uint8)
      padded[:width] = row
      groups = padded.reshape(-1, per_byte)
      shifts = bit_depth * np.arange(per_byte - 1, -1, -1)
      packed = np.bitwise_or.reduce(groups << shifts, axis=1).astype(
          np.uint8).tobytes()
    rows.append(b'\x00' + packed)

  def chunk(ctype, body):
    return (struct.pack('>I', len(body)) + ctype + body +
            struct.pack('>I', zlib.crc32(ctype + body) & 0xffffffff))
  palette = bytes(np.random.default_rng(1).integers(
      0, 256, 3 * (1 << bit_depth), dtype=np.uint8))
  return (b'\x89PNG\r\n\x1a\n' +
          chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, bit_depth, 3,
                                     0, 0, 0)) +
          chunk(b'PLTE', palette) + chunk(b'IDAT', zlib.compress(b''.join(rows))) +
          chunk(b'IEND', b''))


def _read_records(output_dir, split, decode_label=True):
  files = sorted(tf.io.gfile.glob(records.shard_pattern(output_dir, split)))
  out = []
  for path in files:
    for serialized in tf.data.TFRecordDataset(path):
      raw = tf.train.Example.FromString(serialized.numpy()).features.feature
      decoded = records.parse_example(serialized, decode_label=decode_label)
      out.append((os.path.basename(path), raw, decoded))
  return files, out


def _run_script(name, *args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  return subprocess.run([sys.executable, os.path.join(DATASETS, name)] +
                        list(args), capture_output=True, text=True, env=env,
                        cwd=REPO, timeout=120)


@pytest.fixture()
def tiny(tmp_path):
  """5 pairs, 17x23: RGB PNGs, a JPEG, a grey PNG; labels 0..3, 255 and 9."""
  rng = np.random.default_rng(0)
  root = tmp_path / 'tiny'
  pairs = []
  for i in range(5):
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    if i == 1:
      image_path = _write(str(root / 'img' / ('im%d.jpg' % i)), _jpeg(image))
    elif i == 3:
      image_path = _write(str(root / 'img' / ('im%d.png' % i)),
                          _png(image[..., 0]))
    else:
      image_path = _write(str(root / 'img' / ('im%d.png' % i)), _png(image))
    label = rng.integers(0, 4 if i != 2 else 3, (H, W), dtype=np.uint8)
    label[0, :3] = 255
    if i in (0, 4):
      label[5:7, 5:9] = 9      # remapped to 255 with {9: 255}
    label_path = _write(str(root / 'lab' / ('im%d.png' % i)), _png(label))
    pairs.append((image_path, label_path))
  list_path = root / 'train.txt'
  list_path.write_text(''.join(
      '%s %s\n' % (os.path.relpath(a, root), os.path.relpath(b, root))
      for a, b in pairs))
  return root, str(list_path), pairs


def _settings(out, **kw):
  base = dict(output_dir=str(out), split_name='train', num_shards=2,
              num_classes=4, ignore_label=255, label_remap={9: 255},
              log_every=2)
  base.update(kw)
  return convert.ConvertSettings(**base)


# ---------------------------------------------------------------------------
# Writing and reading back.
# ---------------------------------------------------------------------------

def test_tiny_round_trip(tiny, tmp_path):
  root, list_path, pairs = tiny
  samples = convert.read_pair_list(list_path, str(root))
  assert [s[:2] for s in samples] == [tuple(p) for p in pairs]
  summary = convert.write_split(samples, _settings(tmp_path / 'out'))
  assert summary.num_written == 5 and summary.num_skipped == 0
  assert summary.shard_counts == [3, 2]   # ceil(5/2) per shard, in order
  assert [os.path.basename(p) for p in summary.shard_files] == [
      'train-00000-of-00002.tfrecord', 'train-00001-of-00002.tfrecord']
  assert summary.converted_at_read == {'grey': 1}
  assert summary.labels_reencoded == 2     # only the two labels holding 9
  assert sorted(os.listdir(tmp_path / 'out')) == [
      'train-00000-of-00002.tfrecord', 'train-00001-of-00002.tfrecord']

  files, recs = _read_records(str(tmp_path / 'out'), 'train')
  assert [r[0] for r in recs] == ['train-00000-of-00002.tfrecord'] * 3 + [
      'train-00001-of-00002.tfrecord'] * 2
  expected_pixels = np.zeros(256, np.int64)
  expected_images = np.zeros(256, np.int64)
  for i, ((image_path, label_path), (_, raw, dec)) in enumerate(
      zip(pairs, recs)):
    image_bytes = open(image_path, 'rb').read()
    label_bytes = open(label_path, 'rb').read()
    # Image bytes always stored unchanged; format from the contents.
    assert raw['image/encoded'].bytes_list.value[0] == image_bytes
    assert raw['image/format'].bytes_list.value[0] == (
        b'jpeg' if i == 1 else b'png')
    assert raw['image/channels'].int64_list.value[0] == 3
    assert raw['image/height'].int64_list.value[0] == H
    assert raw['image/width'].int64_list.value[0] == W
    assert raw['image/segmentation/class/format'].bytes_list.value[0] == b'png'
    assert dec.filename.numpy() == ('im%d' % i).encode()
    source = tf.io.decode_png(label_bytes).numpy()[..., 0]
    want = np.where(source == 9, 255, source)
    np.testing.assert_array_equal(dec.label.numpy()[..., 0], want)
    if i in (0, 4):
      assert raw['image/segmentation/class/encoded'].bytes_list.value[0] != \
          label_bytes
    else:   # untouched labels keep their original bytes
      assert raw['image/segmentation/class/encoded'].bytes_list.value[0] == \
          label_bytes
    np.testing.assert_array_equal(
        dec.classes_present, sorted(set(np.unique(want)) - {255}))
    expected_pixels += np.bincount(want.ravel(), minlength=256)
    expected_images[np.unique(want)] += 1
    if i == 3:   # grey PNG -> RGB at read time, as the original reader does
      grey = tf.io.decode_png(image_bytes).numpy()
      np.testing.assert_array_equal(dec.image.numpy(),
                                    np.repeat(grey, 3, axis=-1))
  np.testing.assert_array_equal(summary.class_pixels, expected_pixels)
  np.testing.assert_array_equal(summary.class_images, expected_images)
  assert summary.class_images[3] == 4   # label 2 has no class 3


def test_shards_as_the_original(tiny, tmp_path):
  assert convert.shard_assignment(10, 4) == [(0, 3), (3, 6), (6, 9), (9, 10)]
  assert convert.shard_assignment(3, 4) == [(0, 1), (1, 2), (2, 3), (3, 3)]
  root, list_path, _ = tiny
  samples = convert.read_pair_list(list_path, str(root))[:3]
  out = tmp_path / 'out'
  # A stale shard of an earlier run with another shard count goes away.
  _write(str(out / 'train-00000-of-00007.tfrecord'), b'old')
  _write(str(out / 'val-00000-of-00007.tfrecord'), b'other split')
  summary = convert.write_split(samples, _settings(out, num_shards=4))
  assert summary.shard_counts == [1, 1, 1, 0]
  assert sorted(os.listdir(out)) == [
      'train-0000%d-of-00004.tfrecord' % i for i in range(4)] + [
          'val-00000-of-00007.tfrecord']
  assert os.path.getsize(out / 'train-00003-of-00004.tfrecord') == 0
  assert len(summary.stale_shards_removed) == 1


def test_camvid_subset(tmp_path):
  if not os.path.isdir(CAMVID):
    pytest.fail('../shared/camvid not found beside the repository')
  with open(os.path.join(CAMVID, 'train.txt')) as f:
    lines = f.read().splitlines()[:12]
  list_path = tmp_path / 'train12.txt'
  list_path.write_text('\n'.join(lines) + '\n')
  samples = convert.read_pair_list(str(list_path), CAMVID)
  start = time.time()
  summary = convert.write_split(samples, convert.ConvertSettings(
      output_dir=str(tmp_path / 'rec'), split_name='train', num_shards=4,
      num_classes=11, ignore_label=255, label_remap={11: 255}))
  elapsed = time.time() - start
  print('camvid 12 images: %.1f images/s (%.2f s)' % (12 / elapsed, elapsed))
  assert summary.num_written == 12 and summary.shard_counts == [3, 3, 3, 3]
  files, recs = _read_records(str(tmp_path / 'rec'), 'train')
  assert [os.path.basename(f) for f in files] == [
      'train-%05d-of-00004.tfrecord' % i for i in range(4)]
  assert len(recs) == 12
  for line, (_, raw, dec) in zip(lines, recs):
    image_rel, label_rel = line.split()
    image_bytes = open(os.path.join(CAMVID, image_rel), 'rb').read()
    label_bytes = open(os.path.join(CAMVID, label_rel), 'rb').read()
    assert raw['image/encoded'].bytes_list.value[0] == image_bytes
    assert dec.filename.numpy().decode() == os.path.splitext(
        os.path.basename(image_rel))[0]
    source = tf.io.decode_png(label_bytes).numpy()
    assert source.shape == (360, 480, 1)
    label = dec.label.numpy()
    # Identical to the source PNG except void 11 -> 255.
    np.testing.assert_array_equal(label, np.where(source == 11, 255, source))
    if not (source == 11).any():
      assert raw['image/segmentation/class/encoded'].bytes_list.value[
          0] == label_bytes
    present = sorted(set(np.unique(source).tolist()) - {11})
    assert dec.classes_present.numpy().tolist() == present
    assert dec.image.shape == (360, 480, 3)


# ---------------------------------------------------------------------------
# Bad inputs.
# ---------------------------------------------------------------------------

def _make_bad(kind, root):
  """A (image, label) pair that is bad in one way, and the expected words."""
  rng = np.random.default_rng(5)
  image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
  label = rng.integers(0, 4, (H, W), dtype=np.uint8)
  img = str(root / ('%s.png' % kind))
  lab = str(root / ('%s_label.png' % kind))
  _write(img, _png(image))
  _write(lab, _png(label))
  if kind == 'corrupt_image':
    _write(img, bytes(rng.integers(0, 256, 300, dtype=np.uint8)))
    return img, lab, img, 'not a JPEG or PNG'
  if kind == 'corrupt_png_data':
    data = bytearray(_png(image))
    data[60] ^= 0xff
    _write(img, bytes(data))
    return img, lab, img, 'cannot decode PNG image'
  if kind == 'truncated_image':
    img = str(root / ('%s.jpg' % kind))
    data = _jpeg(image)
    _write(img, data[:len(data) // 2])
    return img, lab, img, 'cannot decode JPEG image (corrupt or truncated?)'
  if kind == 'truncated_label':
    data = _png(label)
    _write(lab, data[:len(data) // 2])
    return img, lab, lab, 'cannot decode PNG label (corrupt or truncated?)'
  if kind == 'size_mismatch':
    _write(lab, _png(label[:-1]))
    return img, lab, lab, 'label size 16x23 (HxW) differs from image size 17x23'
  if kind == 'out_of_range':
    label[3, 4] = 7
    label[0, 0] = 200
    _write(lab, _png(label))
    return img, lab, lab, ('label values [7, 200] are outside [0, 4) and are '
                           'not the ignore label 255')
  if kind == 'missing_image':
    os.remove(img)
    return img, lab, img, 'image file not found'
  if kind == 'missing_label':
    os.remove(lab)
    return img, lab, lab, 'label file not found'
  if kind == 'empty_file':
    _write(img, b'')
    return img, lab, img, 'image file is empty'
  if kind == 'rgb_label':
    _write(lab, _png(np.stack([label] * 3, -1)))
    return img, lab, lab, 'label must have a single channel, this PNG is RGB'
  if kind == 'palette_label':
    _write(lab, _palette_png(label))
    return img, lab, lab, 'palette (colour-mapped) PNG'
  if kind == 'jpeg_label':
    _write(lab, _jpeg(np.stack([label] * 3, -1)))
    return img, lab, lab, 'label is a JPEG'
  raise ValueError(kind)


BAD_KINDS = ['corrupt_image', 'corrupt_png_data', 'truncated_image',
             'truncated_label', 'size_mismatch', 'out_of_range',
             'missing_image', 'missing_label', 'empty_file', 'rgb_label',
             'palette_label', 'jpeg_label']


@pytest.mark.parametrize('kind', BAD_KINDS)
def test_bad_pair_raises_naming_file_and_reason(kind, tiny, tmp_path):
  root, list_path, _ = tiny
  good = convert.read_pair_list(list_path, str(root))
  img, lab, culprit, words = _make_bad(kind, tmp_path)
  out = tmp_path / 'out'
  # An earlier complete run of the split stays untouched by the failed one.
  convert.write_split(good[:2], _settings(out))
  before = {n: open(out / n, 'rb').read() for n in os.listdir(out)}
  with pytest.raises(convert.ConversionError) as info:
    convert.write_split(good[:2] + [(img, lab)] + good[2:], _settings(out))
  assert info.value.path == culprit
  assert culprit in str(info.value) and words in str(info.value)
  after = {n: open(out / n, 'rb').read() for n in os.listdir(out)}
  assert after == before   # no temp leftovers, no half-written shard


def test_empty_inputs(tmp_path):
  empty = tmp_path / 'empty.txt'
  empty.write_text('\n# only a comment\n')
  with pytest.raises(convert.ConversionError, match='empty.txt: list is empty'):
    convert.read_pair_list(str(empty), str(tmp_path))
  with pytest.raises(convert.ConversionError, match='missing.txt: list file '
                     'not found'):
    convert.read_pair_list(str(tmp_path / 'missing.txt'), str(tmp_path))
  bad = tmp_path / 'bad.txt'
  bad.write_text('a.png b.png c.png\n')
  with pytest.raises(convert.ConversionError, match='line 1'):
    convert.read_pair_list(str(bad), str(tmp_path))
  with pytest.raises(convert.ConversionError, match="'train': nothing to "
                     'convert'):
    convert.write_split([], _settings(tmp_path / 'out'))
  assert not (tmp_path / 'out').exists()


def test_skip_bad_counts_and_lists(tiny, tmp_path):
  root, list_path, _ = tiny
  good = convert.read_pair_list(list_path, str(root))
  bad = [_make_bad(k, tmp_path) for k in BAD_KINDS]
  samples = good[:2] + [b[:2] for b in bad] + good[2:]
  summary = convert.write_split(samples, _settings(tmp_path / 'out',
                                                   skip_bad=True))
  assert summary.num_written == 5
  assert summary.num_skipped == len(BAD_KINDS)
  for skipped, (_, _, culprit, words) in zip(summary.skipped, bad):
    assert skipped.path == culprit and words in skipped.reason
  assert [s.index for s in summary.skipped] == list(range(2, 2 + len(bad)))
  # Shards follow the input positions, as the original: ceil(17/2) = 9.
  assert summary.shard_counts == [2, 3]
  _, recs = _read_records(str(tmp_path / 'out'), 'train')
  assert [r[2].filename.numpy() for r in recs] == [
      b'im0', b'im1', b'im2', b'im3', b'im4']
  with pytest.raises(convert.ConversionError, match='all 2 pairs were bad'):
    convert.write_split([b[:2] for b in bad[:2]],
                        _settings(tmp_path / 'out2', skip_bad=True))
  assert not os.listdir(tmp_path / 'out2')


def test_label_remap_parsing():
  assert convert.parse_label_remap(['11:255', '3:1,4:2']) == {
      11: 255, 3: 1, 4: 2}
  for bad in (['11'], ['11:256'], ['a:b'], ['1:2', '1:3']):
    with pytest.raises(ValueError):
      convert.parse_label_remap(bad)


def test_unlabelled_split_and_sixteen_bit_label(tiny, tmp_path):
  root, _, pairs = tiny
  summary = convert.write_split([(p[0], None) for p in pairs[:2]],
                                _settings(tmp_path / 'test', split_name='test'))
  _, recs = _read_records(str(tmp_path / 'test'), 'test', decode_label=False)
  assert summary.num_written == 2
  assert recs[0][1]['image/segmentation/class/encoded'].bytes_list.value[
      0] == b''
  with pytest.raises(convert.ConversionError, match='has no label'):
    convert.write_split([pairs[0], (pairs[1][0], None)],
                        _settings(tmp_path / 'mix'))
  label = np.random.default_rng(2).integers(0, 4, (H, W)).astype(np.uint16)
  lab16 = _write(str(tmp_path / 'l16.png'),
                 tf.io.encode_png(label[..., None]).numpy())
  convert.write_split([(pairs[0][0], lab16)], _settings(tmp_path / 'o16'))
  _, recs = _read_records(str(tmp_path / 'o16'), 'train')
  np.testing.assert_array_equal(recs[0][2].label.numpy()[..., 0], label)


# ---------------------------------------------------------------------------
# The generic script, as a subprocess.
# ---------------------------------------------------------------------------

def test_custom_script(tiny, tmp_path):
  root, list_path, pairs = tiny
  out = tmp_path / 'rec'
  args = ['--root=%s' % root, '--list=%s' % list_path, '--output_dir=%s' % out,
          '--num_shards=2', '--num_classes=4', '--label_remap=9:255',
          '--log_every=2']
  ok = _run_script('build_custom_data.py', *args)
  assert ok.returncode == 0, ok.stderr
  lines = ok.stdout.strip().splitlines()
  assert lines[-1].startswith('summary: split=train written=5 skipped=0 '
                              'shards=2 counts=3,2')
  assert 'images/s' in ok.stderr and 'ETA' in ok.stderr   # progress lines
  assert sorted(os.listdir(out)) == ['train-00000-of-00002.tfrecord',
                                     'train-00001-of-00002.tfrecord']

  # A bad pair: exit 1, file and reason on stderr, earlier shards untouched.
  img, lab, culprit, words = _make_bad('out_of_range', tmp_path)
  with open(list_path, 'a') as f:
    f.write('%s %s\n' % (img, lab))
  before = {n: open(out / n, 'rb').read() for n in os.listdir(out)}
  bad = _run_script('build_custom_data.py', *args)
  assert bad.returncode == 1
  assert 'ERROR: %s: %s' % (culprit, words) in bad.stderr
  assert {n: open(out / n, 'rb').read() for n in os.listdir(out)} == before

  skip = _run_script('build_custom_data.py', *(args + ['--skip_bad',
                                                       '--split_name=trainx']))
  assert skip.returncode == 0, skip.stderr
  assert skip.stdout.strip().splitlines()[-1].startswith(
      'summary: split=trainx written=5 skipped=1 ')
  assert culprit in skip.stderr and 'skipped 1 bad pair' in skip.stderr


# ---------------------------------------------------------------------------
# Cityscapes, VOC + SBD, ADE20K, remove_gt_colormap.
# ---------------------------------------------------------------------------

def test_cityscapes_label_ids_to_train_ids():
  ids = np.array([[0, 1, 6, 7, 8], [11, 17, 18, 23, 24], [26, 31, 32, 33, 29]])
  want = np.array([[255, 255, 255, 0, 1], [2, 5, 255, 10, 11],
                   [13, 16, 17, 18, 255]])
  np.testing.assert_array_equal(convert.cityscapes_label_ids_to_train_ids(ids),
                                want)
  lut = convert.cityscapes_id_to_train_id_lut()
  assert sorted(set(lut[:34].tolist()) - {255}) == list(range(19))
  with pytest.raises(ValueError, match=r'\[34, 40\]'):
    convert.cityscapes_label_ids_to_train_ids(np.array([[34, 40, 7]]))


def _tiny_polygons():
  return {
      'imgHeight': 6, 'imgWidth': 8,
      'objects': [
          {'label': 'road', 'polygon': [[0, 3], [7, 3], [7, 5], [0, 5]]},
          {'label': 'cargroup', 'polygon': [[1, 1], [4, 1], [4, 4], [1, 4]]},
          {'label': 'person', 'polygon': [[3, 0], [5, 0], [5, 2], [3, 2]],
           'deleted': 1},
          {'label': 'license plate', 'polygon': [[2, 2], [3, 2], [3, 3],
                                                 [2, 3]]},
          {'label': 'sky', 'polygon': [[6, 0], [7, 0], [7, 1], [6, 1]]},
      ]}


def test_cityscapes_polygon_rasterisation():
  got = convert.rasterize_cityscapes_polygons(_tiny_polygons())
  want = np.full((6, 8), 255, np.uint8)
  want[3:6, 0:8] = 0          # road
  want[1:5, 1:5] = 13         # cargroup -> car, drawn over the road
  want[0:2, 6:8] = 10         # sky; deleted person and license plate skipped
  np.testing.assert_array_equal(got, want)
  ids = convert.rasterize_cityscapes_polygons(_tiny_polygons(), 'ids')
  assert ids[0, 0] == 0 and ids[4, 0] == 7 and ids[2, 2] == 26
  with pytest.raises(ValueError, match='not a Cityscapes label'):
    convert.rasterize_cityscapes_polygons(
        {'imgHeight': 2, 'imgWidth': 2,
         'objects': [{'label': 'dragon', 'polygon': [[0, 0], [1, 1], [0, 1]]}]})


def test_cityscapes_script(tmp_path):
  root = tmp_path / 'cityscapes'
  rng = np.random.default_rng(3)
  names = {'train': ['aachen_000000_000019', 'aachen_000001_000019',
                     'bochum_000000_000313'],
           'val': ['frankfurt_000000_000294']}
  label_ids = rng.choice([0, 7, 8, 11, 26, 33], size=(6, 8)).astype(np.uint8)
  for folder, stems in names.items():
    for k, stem in enumerate(stems):
      city = stem.split('_')[0]
      _write(str(root / 'leftImg8bit' / folder / city /
                 (stem + '_leftImg8bit.png')),
             _png(rng.integers(0, 256, (6, 8, 3))))
      gt = root / 'gtFine' / folder / city
      if folder == 'train' and k == 0:    # ready-made trainIds
        _write(str(gt / (stem + '_gtFine_labelTrainIds.png')),
               _png(convert.cityscapes_label_ids_to_train_ids(label_ids)))
      elif folder == 'train' and k == 1:  # polygons only
        _write(str(gt / (stem + '_gtFine_polygons.json')),
               json.dumps(_tiny_polygons()).encode())
      else:                               # labelIds only
        _write(str(gt / (stem + '_gtFine_labelIds.png')), _png(label_ids))
  out = tmp_path / 'rec'
  run = _run_script('build_cityscapes_data.py',
                    '--cityscapes_root=%s' % root, '--output_dir=%s' % out)
  assert run.returncode == 0, run.stderr
  assert 'written=3 skipped=0 shards=10 counts=1,1,1,0,0,0,0,0,0,0' in run.stdout
  assert 'split=val_fine written=1' in run.stdout
  _, recs = _read_records(str(out), 'train_fine')
  assert [r[2].filename.numpy().decode() for r in recs] == names['train']
  train_ids = convert.cityscapes_label_ids_to_train_ids(label_ids)
  np.testing.assert_array_equal(recs[0][2].label.numpy()[..., 0], train_ids)
  np.testing.assert_array_equal(
      recs[1][2].label.numpy()[..., 0],
      convert.rasterize_cityscapes_polygons(_tiny_polygons()))
  np.testing.assert_array_equal(recs[2][2].label.numpy()[..., 0], train_ids)
  # The created trainIds files are saved beside the sources.
  created = root / 'gtFine/train/bochum/bochum_000000_000313_gtFine_labelTrainIds.png'
  np.testing.assert_array_equal(
      tf.io.decode_png(created.read_bytes()).numpy()[..., 0], train_ids)


def test_voc_script_with_sbd_train_aug(tmp_path):
  scipy_io = pytest.importorskip('scipy.io')
  voc = tmp_path / 'VOCdevkit' / 'VOC2012'
  sbd = tmp_path / 'benchmark_RELEASE' / 'dataset'
  rng = np.random.default_rng(4)
  voc_train, voc_val = ['2007_000032', '2007_000039'], ['2007_000033']
  sbd_train, sbd_val = ['2008_000002', '2007_000033'], ['2008_000003',
                                                         '2007_000032']
  labels = {}
  for name in sorted(set(voc_train + voc_val + sbd_train + sbd_val)):
    _write(str(voc / 'JPEGImages' / (name + '.jpg')),
           _jpeg(rng.integers(0, 256, (H, W, 3))))
    label = rng.integers(0, 21, (H, W)).astype(np.uint8)
    if name in voc_train + voc_val:
      label[0] = 255
      # Palette PNGs, converted by the remove_gt_colormap script below.
      _write(str(voc / 'SegmentationClass' / (name + '.png')),
             _palette_png(label))
    else:
      os.makedirs(sbd / 'cls', exist_ok=True)
      scipy_io.savemat(str(sbd / 'cls' / (name + '.mat')),
                       {'GTcls': {'Segmentation': label,
                                  'Boundaries': np.zeros(1)}})
    labels[name] = label
  lists = voc / 'ImageSets' / 'Segmentation'
  os.makedirs(lists)
  (lists / 'train.txt').write_text('\n'.join(voc_train) + '\n')
  (lists / 'val.txt').write_text('\n'.join(voc_val) + '\n')
  (lists / 'trainval.txt').write_text('\n'.join(voc_train + voc_val) + '\n')
  (sbd / 'train.txt').write_text('\n'.join(sbd_train) + '\n')
  (sbd / 'val.txt').write_text('\n'.join(sbd_val) + '\n')

  raw = voc / 'SegmentationClassRaw'
  run = _run_script('remove_gt_colormap.py',
                    '--original_gt_folder=%s' % (voc / 'SegmentationClass'),
                    '--output_dir=%s' % raw)
  assert run.returncode == 0, run.stderr
  assert 'summary: written=3 skipped=0' in run.stdout

  out = tmp_path / 'rec'
  run = _run_script('build_voc2012_data.py',
                    '--image_folder=%s' % (voc / 'JPEGImages'),
                    '--semantic_segmentation_folder=%s' % raw,
                    '--list_folder=%s' % lists, '--output_dir=%s' % out,
                    '--sbd_dir=%s' % sbd)
  assert run.returncode == 0, run.stderr
  for split, n in (('train', 2), ('val', 1), ('trainval', 3), ('train_aug', 4)):
    assert 'split=%s written=%d skipped=0 shards=4' % (split, n) in run.stdout
  assert 'not the usual 10582' in run.stderr
  _, recs = _read_records(str(out), 'train_aug')
  # (SBD train + SBD val + VOC train) - VOC val, sorted.
  assert [r[2].filename.numpy().decode() for r in recs] == [
      '2007_000032', '2007_000039', '2008_000002', '2008_000003']
  for _, rawf, dec in recs:
    name = dec.filename.numpy().decode()
    assert rawf['image/format'].bytes_list.value[0] == b'jpeg'
    np.testing.assert_array_equal(dec.label.numpy()[..., 0], labels[name])
    np.testing.assert_array_equal(
        dec.classes_present, sorted(set(np.unique(labels[name])) - {255}))


def test_palette_png_to_indices(tmp_path):
  rng = np.random.default_rng(6)
  indices = rng.integers(0, 22, (H, W)).astype(np.uint8)
  indices[0, :5] = 255
  np.testing.assert_array_equal(
      convert.palette_png_to_indices(_palette_png(indices)), indices)
  small = rng.integers(0, 16, (H, W)).astype(np.uint8)
  np.testing.assert_array_equal(
      convert.palette_png_to_indices(_palette_png(small, bit_depth=4)), small)
  # What a decoder sees is the colours, not the indices.
  assert tf.io.decode_png(_palette_png(indices)).shape[-1] == 3
  with pytest.raises(ValueError, match='not palette or grey'):
    convert.palette_png_to_indices(_png(rng.integers(0, 256, (H, W, 3))))
  np.testing.assert_array_equal(convert.palette_png_to_indices(_png(small)),
                                small)


def test_ade20k_script(tmp_path):
  rng = np.random.default_rng(7)
  base = tmp_path / 'ADEChallengeData2016'
  for folder, n in (('training', 5), ('validation', 2)):
    for i in range(n):
      name = 'ADE_%s_%08d' % ('train' if folder == 'training' else 'val', i)
      grey = i == 0   # ADE20K has some grey JPEGs
      _write(str(base / 'images' / folder / (name + '.jpg')),
             _jpeg(rng.integers(0, 256, (H, W, 1 if grey else 3))))
      _write(str(base / 'annotations' / folder / (name + '.png')),
             _png(rng.integers(0, 151, (H, W))))
  out = tmp_path / 'rec'
  args = ['--train_image_folder=%s' % (base / 'images/training'),
          '--train_image_label_folder=%s' % (base / 'annotations/training'),
          '--val_image_folder=%s' % (base / 'images/validation'),
          '--val_image_label_folder=%s' % (base / 'annotations/validation'),
          '--output_dir=%s' % out]
  run = _run_script('build_ade20k_data.py', *args)
  assert run.returncode == 0, run.stderr
  assert 'split=train written=5 skipped=0 shards=4 counts=2,2,1,0' in run.stdout
  assert 'split=val written=2' in run.stdout
  _, recs = _read_records(str(out), 'train')
  assert sorted(r[2].filename.numpy().decode() for r in recs) == [
      'ADE_train_%08d' % i for i in range(5)]
  for _, _, dec in recs:   # 0 is the ignore label: never a present class
    assert 0 not in dec.classes_present.numpy().tolist()
    assert dec.image.shape[-1] == 3
