"""The reference-structure iGOS (benchmarks/reference_structure.py) computes what ours does, so
that benchmarks/speed.py compares the organisation of the passes and nothing else."""

import importlib.util
from pathlib import Path

import torch

from vlm_focus.methods import Target, get_method
from vlm_focus.methods.igos import integrated_mask_gradient

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "reference_structure.py"
spec = importlib.util.spec_from_file_location("reference_structure", PATH)
assert spec is not None and spec.loader is not None
reference = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reference)


class CountingScorer:
    """A smooth, non-linear 2-token 'model' of the pixels; counts the images per call."""

    batch_size = 4

    def __init__(self, h: int = 12, w: int = 12):
        gen = torch.Generator().manual_seed(1)
        self.weight = torch.randn(2, 3, h, w, generator=gen)
        self.calls: list[int] = []

    def __call__(self, pixels):
        self.calls.append(int(pixels.shape[0]))
        z = torch.einsum("bchw,tchw->bt", pixels, self.weight) / pixels[0].numel()
        return torch.nn.functional.logsigmoid(4 * z + torch.tanh(pixels.mean((1, 2, 3)))[:, None])


def toy():
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(3, 12, 12, generator=gen)
    base = torch.rand(3, 12, 12, generator=gen) * 0.2
    mask = torch.rand(1, 1, 4, 4, generator=gen)
    return image, base, mask


def test_reference_gradient_equals_ours_with_noise_and_one_image_per_pass():
    image, base, mask = toy()
    ours_scorer, ref_scorer = CountingScorer(), CountingScorer()
    steps = 6
    for start, end in ((image, base), (base, image)):
        g_ours, f_ours = integrated_mask_gradient(
            Target(ours_scorer, [0, 1]), start, end, mask, steps, 0.05, torch.Generator().manual_seed(3), 8
        )
        g_ref, f_ref = reference.reference_mask_gradient(
            Target(ref_scorer, [0, 1]), start, end, mask, steps, 0.05, torch.Generator().manual_seed(3)
        )
        torch.testing.assert_close(g_ref, g_ours, rtol=1e-5, atol=1e-7)
        assert abs(f_ref - f_ours) < 1e-5
        assert float(g_ours.abs().max()) > 0
    assert ours_scorer.calls == [steps, steps]  # one batch per integral
    assert ref_scorer.calls == [1] * (2 * steps)  # one image per forward pass


def test_reference_gradient_equals_ours_over_several_batches_without_noise():
    image, base, mask = toy()
    gen = torch.Generator()
    g_ours, _ = integrated_mask_gradient(Target(CountingScorer(), [1]), image, base, mask, 7, 0.0, gen, 3)
    g_ref, _ = reference.reference_mask_gradient(
        Target(CountingScorer(), [1]), image, base, mask, 7, 0.0, gen
    )
    torch.testing.assert_close(g_ref, g_ours, rtol=1e-5, atol=1e-7)


def test_reference_method_gives_our_map_and_passes():
    image, base, _ = toy()
    small = dict(size=4, iterations=3, ig_iter=5)
    for preset in ("converging", "paper"):
        ours_scorer, ref_scorer = CountingScorer(), CountingScorer()
        method = get_method("igos++", preset=preset, **small)
        heat = method.explain(Target(ours_scorer, [0]), image, base)
        ref = reference.ReferenceIGOS(preset=preset, **small).explain(Target(ref_scorer, [0]), image, base)
        torch.testing.assert_close(ref, heat, rtol=1e-4, atol=1e-5)
        # converging: the superpixel start replaces the first iteration
        start = method.trace[0]["passes"] if preset == "converging" else 0
        iterations = small["iterations"] - (preset == "converging")
        assert sum(ref_scorer.calls) == sum(ours_scorer.calls) == start + iterations * 5 * 2
        assert set(ref_scorer.calls) == {1}


def test_reference_two_mask_method_gives_our_map_in_four_single_image_calls():
    image, base, _ = toy()
    small = dict(size=4, iterations=2, ig_iter=5, batch_size=8)
    ours_scorer, ref_scorer = CountingScorer(), CountingScorer()
    heat = get_method("igos2", **small).explain(Target(ours_scorer, [0]), image, base)
    ref = reference.ReferenceIGOS2(**small).explain(Target(ref_scorer, [0]), image, base)
    torch.testing.assert_close(ref, heat, rtol=1e-4, atol=1e-5)
    assert sum(ref_scorer.calls) == sum(ours_scorer.calls) == 2 * 5 * 4
    assert set(ref_scorer.calls) == {1} and ours_scorer.calls == [5] * 8
