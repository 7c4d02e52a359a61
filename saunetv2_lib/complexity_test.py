import json

import keras
import pytest

from saunetv2_lib import paper
from saunetv2_lib.cli import main
from saunetv2_lib.complexity import (
    layer_costs,
    model_complexity,
    register_counter,
    tf_profiler_flops,
)
from saunetv2_lib.models import MODELS, complexity_table, get_model

# The paper's GFLOPs at 592x592 (spec 2.1-2.2; the BN/ReLU row from the architecture ablation).
PAPER_GFLOPS = {
    name: paper.registered_model_complexity(name)[1]
    for name in ("sa_unet_v2", "sa_unet", "sa_unet_bn_relu", "unet", "attention_unet")
}


@pytest.mark.parametrize("name", list(PAPER_GFLOPS))
def test_reproduces_the_papers_gflops_at_592(name):
    row = model_complexity(get_model(name, (592, 592, 3)), measure_file=False)
    assert row["gflops"] == pytest.approx(PAPER_GFLOPS[name], rel=0.005)


# SA-UMamba profiles for 40 s at 592 px; its counter meets the profiler at 40 and 64 px in
# models/sa_umamba_test.py, so the full-size check runs with the slow checks.
@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n == "sa_umamba" else n for n in MODELS],
)
def test_analytic_count_equals_the_tf_profiler_exactly(name):
    pytest.importorskip("tensorflow")
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the profiler cross-check needs the TensorFlow backend")
    model = get_model(name, (96, 96, 3))
    analytic = round(model_complexity(model, measure_file=False)["gflops"] * 1e9)
    assert analytic == tf_profiler_flops(model, (96, 96, 3))


def test_sa_unet_v2_true_macs_and_size():
    row = model_complexity(get_model("sa_unet_v2", (592, 592, 3)))
    # Convolution MACs by hand: encoder, bottleneck, decoder, heads and attention convolutions.
    hw = [592**2, 296**2, 148**2, 74**2]
    conv = [(3, 16, 0), (16, 16, 0), (16, 32, 1), (32, 32, 1), (32, 48, 2), (48, 48, 2)]
    conv += [(48, 64, 3), (64, 64, 3), (96, 48, 2), (48, 48, 2), (64, 32, 1), (32, 32, 1)]
    conv += [(32, 16, 0), (16, 16, 0)]
    macs = sum(9 * cin * cout * hw[level] for cin, cout, level in conv)
    macs += sum(
        9 * cin * cout * hw[level] for cin, cout, level in [(64, 48, 3), (48, 32, 2), (32, 16, 1)]
    )
    macs += 16 * hw[0] + sum(49 * 2 * hw[level] for level in (3, 2, 1, 0))
    assert row["gmacs"] == pytest.approx(macs / 1e9, rel=1e-12)
    assert row["weights_mb"] == pytest.approx(260_521 * 4 / 1e6)
    assert 1.0 < row["weights_file_mb"] < 1.4  # the paper's "1.2 MB"


def test_layer_rows_sum_to_the_total():
    model = get_model("sa_unet_v2", (64, 64, 3))
    rows = layer_costs(model)
    assert sum(r["params"] for r in rows) == 260_521
    assert {r["type"] for r in rows} >= {
        "ConvNormAct",
        "CrossScaleSpatialAttention",
        "Conv2DTranspose",
    }


def test_unknown_layers_are_refused_with_a_hint():
    class Mystery(keras.layers.Dense):
        pass

    inputs = keras.Input((8,))
    model = keras.Model(inputs, Mystery(2)(inputs))
    register_counter  # noqa: B018 - the remedy named in the message
    with pytest.raises(NotImplementedError, match="register"):
        layer_costs(model)


def test_complexity_cli_json(capsys):
    assert main(["complexity", "--models", "sa_unet_v2,sa_unet", "--size", "592", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in rows] == ["sa_unet_v2", "sa_unet"]
    assert {"model", "params", "gflops", "gmacs", "weights_mb"} <= set(rows[0])
    assert rows[0]["params"] == 260_521
    assert round(rows[0]["gflops"], 2) == 21.19 and round(rows[1]["gflops"], 2) == 26.54


def test_complexity_table_at_another_size_has_no_paper_figure():
    (row,) = complexity_table(["sa_unet_v2"], size=704)
    assert row["paper_gflops"] is None
    assert row["gflops"] == pytest.approx(21.19 * (704 / 592) ** 2, rel=0.01)


def test_models_cli_lists_the_registry(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in MODELS)
