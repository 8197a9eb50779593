import pytest

from training import recipe as recipes
from training.cli import zoo_order
from training.models import build_model, make_config

from .conftest import tiny_recipe


def test_zoo_recipes_parse_and_build() -> None:
    order = zoo_order(recipes.zoo())
    names = [r.name for r in order]
    assert {"font", "font-denoise", "font-vae"} <= set(names)
    # font-denoise compares itself with font, so font is built first.
    assert names.index("font") < names.index("font-denoise")
    for r in order:
        # conv models need H and W divisible by their strides: try them on 28x28 images
        conv = r.architecture.startswith("conv") or r.architecture == "stacked_conv"
        shape = (28, 28) if conv else (7, 5)
        model = build_model(r.architecture, make_config(r.architecture, r.arch_options), shape)
        assert model.shape == shape
    denoise = recipes.load("font-denoise")
    assert denoise.noise is not None and denoise.noise.kind == "bitflip"
    assert denoise.evaluate.targets["wrong_pixels_denoised_p0.10"] == "<= 0.2"


def test_unknown_keys_are_errors() -> None:
    with pytest.raises(ValueError, match="unknown key"):
        tiny_recipe(training={"lr": 0.01, "learning_rate": 0.1})
    with pytest.raises(ValueError, match="unknown key"):
        tiny_recipe(epochz=3)
    with pytest.raises(ValueError, match="unknown option"):
        make_config("dense_ae", {"latent_dim": 2, "widths": [3]})
    with pytest.raises(KeyError, match="unknown architecture"):
        make_config("transformer", {})


def test_overrides() -> None:
    r = tiny_recipe().with_overrides(seed=3, epochs=5)
    assert (r.seed, r.epochs) == (3, 5)
