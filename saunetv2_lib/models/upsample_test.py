import keras
import numpy as np
import pytest
from skimage.transform import resize

from saunetv2_lib.models.costs import profiler_flops
from saunetv2_lib.models.upsample import bilinear_upsample, bilinear_upsample_flops


@pytest.mark.parametrize("factor", [1, 2, 3, 4, 8])
def test_matches_skimage_and_keras_bilinear_resize(factor):
    x = np.random.default_rng(factor).normal(size=(2, 5, 7, 3)).astype("float32")
    got = keras.ops.convert_to_numpy(bilinear_upsample(x, factor))
    assert got.shape == (2, 5 * factor, 7 * factor, 3)
    expected = np.stack(
        [resize(image, (5 * factor, 7 * factor, 3), order=1, mode="edge") for image in x]
    )
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    keras_resize = keras.ops.image.resize(x, (5 * factor, 7 * factor), interpolation="bilinear")
    np.testing.assert_allclose(got, keras.ops.convert_to_numpy(keras_resize), atol=1e-5)


def test_unknown_sizes_work_under_tensorflow_tracing():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("unknown trace-time sizes are a TensorFlow case")
    import tensorflow as tf

    spec = tf.TensorSpec([None, None, None, 3], tf.float32)
    upsample = tf.function(lambda x: bilinear_upsample(x, 4), input_signature=[spec])
    x = np.random.default_rng(0).normal(size=(1, 3, 6, 3)).astype("float32")
    np.testing.assert_allclose(
        upsample(x).numpy(), keras.ops.convert_to_numpy(bilinear_upsample(x, 4)), atol=1e-6
    )


def test_refuses_non_positive_factors():
    with pytest.raises(ValueError, match="positive"):
        bilinear_upsample(np.zeros((1, 2, 2, 1), "float32"), 0)


@pytest.mark.parametrize("factor", [2, 3, 8])
def test_flops_equal_the_tf_profiler(factor):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the profiler needs the TensorFlow backend")
    flops = profiler_flops(lambda x: bilinear_upsample(x, factor), [(1, 4, 6, 5)])
    assert flops == bilinear_upsample_flops(4, 6, 5, factor)
