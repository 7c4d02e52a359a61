import keras
import pytest
from keras import layers, ops

from saunetv2_lib.complexity import layer_cost
from saunetv2_lib.models.costs import (
    dense_cost,
    depthwise_cost,
    layer_norm_flops,
    layer_profiler_flops,
    matmul_cost,
    profiler_flops,
)

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="the profiler needs the TensorFlow backend"
)
SHAPE = (1, 6, 10, 8)  # 480 values, 60 rows of 8 channels


@pytest.mark.parametrize(("center", "scale"), [(True, True), (False, False), (True, False)])
def test_layer_norm_rule_equals_the_profiler(center, scale):
    layer = layers.LayerNormalization(center=center, scale=scale)
    layer.build(SHAPE)
    assert layer_profiler_flops(layer, [SHAPE]) == layer_norm_flops(480, 8, center, scale)
    assert layer_cost(layer, [SHAPE], SHAPE) == (layer_norm_flops(480, 8, center, scale), 0)


def test_layer_norm_counter_refuses_other_axes():
    layer = layers.LayerNormalization(axis=1)
    layer.build(SHAPE)
    with pytest.raises(NotImplementedError, match="last-axis"):
        layer_cost(layer, [SHAPE], SHAPE)


@pytest.mark.parametrize("bias", [True, False])
def test_dense_and_depthwise_rules(bias):
    dense = layers.Dense(5, use_bias=bias)
    dense.build(SHAPE)
    assert layer_profiler_flops(dense, [SHAPE]) == dense_cost(8, 5, 60, bias)[0]
    depthwise = layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", use_bias=bias)
    depthwise.build(SHAPE)
    assert layer_profiler_flops(depthwise, [SHAPE]) == depthwise_cost(3, 8, 2, 60, bias)[0]
    assert depthwise_cost(3, 8, 2, 60, bias)[1] == 9 * 16 * 60


def test_batched_matmul_softmax_and_free_ops():
    flops = profiler_flops(
        lambda a, b: ops.softmax(ops.matmul(a, b), axis=-1), [(2, 3, 7, 4), (2, 3, 4, 5)]
    )
    outputs = 2 * 3 * 7 * 5
    assert flops == matmul_cost(4, outputs)[0] + 5 * outputs
    # exp, softplus, ReLU, sigmoid, einsum, transpose and reshape carry no profiler cost.
    free = profiler_flops(
        lambda x: ops.reshape(
            ops.transpose(ops.exp(ops.softplus(ops.relu(ops.sigmoid(x)))), (0, 2, 1)), (-1,)
        ),
        [(2, 3, 4)],
    )
    assert free == 0
    # A broadcast einsum stays an (unregistered) Einsum op: why the layers use matmul instead.
    einsum = profiler_flops(lambda a, b: ops.einsum("bhwc,hcd->bhwd", a, b), [SHAPE, (6, 8, 3)])
    assert einsum == 0


def test_bilinear_upsampling_is_free():
    layer = layers.UpSampling2D(2, interpolation="bilinear")
    assert layer_profiler_flops(layer, [SHAPE]) == 0
    assert layer_cost(layer, [SHAPE], (1, 12, 20, 8)) == (0, 0)
