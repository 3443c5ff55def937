"""Grad-CAM (Selvaraju et al., ICCV 2017) on a vision-encoder layer, for the score ``f``.

``heat = ReLU(sum_c w_c A_c)`` with ``A`` the layer's output activations on the patch grid
and ``w_c`` the gradient ``df/dA_c`` averaged over the patch tokens (global average pooling
in the original); ``f`` is the summed log-probability of the selected answer tokens (paper
Eq. 7), as the paper applies Grad-CAM in Sec. 4.3 (last vision layer).

Where we differ from the original / the paper:

- a transformer layer's tokens play the role of the conv feature map's positions; the
  class/register tokens are dropped (``adapter.patch_tokens``) and the rest mapped onto the
  image by ``adapter.patches_to_pixels``. Where the encoder sees several views of the image
  (OneVision's crops and base image, Idefics3's crops and global image, InternVL's tiles and
  thumbnail) the gradient is averaged over the tokens of all views, and each view's map is
  put back on the part of the image it shows and the views are added;
- ``layer`` picks any of ``adapter.vision_layers()`` (default -1, the last layer whose
  output reaches the language model: for LLaVA-1.5, which reads its image features from
  the second-to-last vision layer, that one). A layer that does not reach ``f`` raises
  :class:`MethodError`.

Example::

    lens = vlm_focus.load("shapes-llava", method="gradcam", layer=-1)
"""

from __future__ import annotations

import torch

from ..errors import InputError, MethodError
from .base import Method, Target, register_method
from .hooks import capture_outputs, hook_point, require_adapter, to_heatmap, vision_layers


def gradcam_patches(
    target: Target, pixels: torch.Tensor, layer: torch.nn.Module, method: str = "gradcam"
) -> torch.Tensor:
    """Grad-CAM values ``[P]`` of one layer, one per patch token, before normalisation."""
    adapter = target.adapter
    x = pixels[None].detach().clone().requires_grad_(True)
    with torch.enable_grad(), capture_outputs([layer]) as outs:
        score = target.f(x).sum()
    calls = outs[0]
    if len(calls) != 1 or not isinstance(calls[0], torch.Tensor):
        raise MethodError(f"{method}: the layer ran {len(calls)} times; one image pass is needed")
    act = calls[0]
    if not act.requires_grad:
        raise MethodError(f"{method}: the layer's output does not depend on the image")
    (grad,) = torch.autograd.grad(score, act, allow_unused=True)
    if grad is None:
        raise MethodError(
            f"{method}: this vision layer does not reach the answer score (the model reads its image "
            "features from an earlier layer); choose an earlier one, e.g. layer=-2"
        )
    # The adapter maps the layer's output (with or without a batch axis, crops included)
    # to the patch tokens of the one image on its grid.
    a = hook_point(method, adapter, "patch_tokens", act.detach())
    g = hook_point(method, adapter, "patch_tokens", grad)
    if a.shape[0] != 1:
        raise MethodError(f"{method}: expected the patch tokens of one image, got {a.shape[0]}")
    a, g = a[0].float(), g[0].float()  # [P, D]
    weights = g.mean(0)  # global average pooling of the gradient, per channel
    return torch.relu(a @ weights)


@register_method("gradcam")
class GradCAM(Method):
    """Grad-CAM at ``layer`` of the adapter's vision layers."""

    @classmethod
    def defaults(cls) -> dict:
        return {"layer": -1}

    def explain(self, target: Target, pixels: torch.Tensor, baseline: torch.Tensor) -> torch.Tensor:
        adapter = require_adapter(target, self.name)
        layers = vision_layers(adapter, self.name)
        index = self.options["layer"]
        if not isinstance(index, int) or not -len(layers) <= index < len(layers):
            raise InputError(
                f"gradcam: layer must be an int in [-{len(layers)}, {len(layers) - 1}], got {index!r}"
            )
        cam = gradcam_patches(target, pixels, layers[index], self.name)
        return to_heatmap(adapter, cam, pixels, self.name)
