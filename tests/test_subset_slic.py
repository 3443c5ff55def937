"""``subset`` with scikit-image's SLIC superpixels (scikit-image is a core dependency)."""

import pytest
import torch
from fakes import FnScorer

from vlm_focus.methods import Target, get_method
from vlm_focus.methods.regions import have_skimage, slic_regions

pytestmark = pytest.mark.skipif(not have_skimage(), reason="scikit-image does not import")

# A grey 48 x 48 image with a red disc at rows/cols 10..22 (centre 16, 16), radius 6.
yy, xx = torch.meshgrid(torch.arange(48), torch.arange(48), indexing="ij")
DISC = (yy - 16) ** 2 + (xx - 16) ** 2 <= 36
IMAGE = torch.full((3, 48, 48), 0.6)
IMAGE[:, DISC] = torch.tensor([0.9, 0.1, 0.1])[:, None]
BASE = torch.zeros(3, 48, 48)


def test_slic_regions_follow_the_object_edges():
    labels = slic_regions(IMAGE, 16, 10.0)
    assert labels.shape == (48, 48) and sorted(labels.unique().tolist()) == list(range(int(labels.max()) + 1))
    # The disc is one superpixel, or a few that do not leak onto the background.
    inside = labels[DISC].unique()
    leak = torch.isin(labels[~DISC], inside).float().mean()
    assert len(inside) <= 2 and float(leak) < 0.05


def test_subset_with_slic_puts_its_heat_on_the_object():
    """``f`` = the redness of the disc's pixels: the first region chosen is the disc."""

    def fn(p):
        return (p[:, 0, DISC] - p[:, 1, DISC]).mean(-1)

    method = get_method("subset", segments="slic", n_regions=16, budget=4)
    heat = method.explain(Target(FnScorer(fn), [0]), IMAGE, BASE)
    assert float(heat[DISC].mean()) > 0.9 and float(heat[~DISC].mean()) < 0.2
    assert method.last_passes > 0
