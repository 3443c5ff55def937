"""Hugging Face processors with and without their video processors.

``transformers`` 5.x builds the video processors of Qwen2-VL, LLaVA-OneVision, SmolVLM and
InternVL only where torchvision is installed, and ``AutoProcessor.from_pretrained`` fails on a
checkpoint saved without one. vlm-focus explains images, so it needs neither: with torchvision
the full processor is loaded (the fast, torchvision-backed image processor included), and a
checkpoint without a video processor still loads image-only; without torchvision the image-only
processor is always used.

Example::

    processor = load_processor("Qwen/Qwen2.5-VL-3B-Instruct", "Qwen2_5_VLProcessor")
"""

from __future__ import annotations

from typing import Any


def image_only(processor_cls: type) -> Any:
    """``processor_cls`` without its video processor: a subclass of the same name whose
    attribute list drops ``video_processor`` (saving it writes the original class name)."""

    class ImageOnly(processor_cls):
        @classmethod
        def get_attributes(cls) -> list[str]:
            return [a for a in super().get_attributes() if a != "video_processor"]

    ImageOnly.__name__ = ImageOnly.__qualname__ = processor_cls.__name__
    return ImageOnly


def has_torchvision() -> bool:
    from transformers.utils import is_torchvision_available

    return bool(is_torchvision_available())


def load_processor(path: str, class_name: str, trust_remote_code: bool = False, fallback: Any = None) -> Any:
    """The checkpoint's processor: ``AutoProcessor`` where torchvision is installed, falling back
    to the image-only ``class_name`` (or the given ``fallback`` class) when the checkpoint has no
    video processor config or torchvision is missing."""
    import transformers
    from transformers import AutoProcessor

    image_cls = fallback if fallback is not None else image_only(getattr(transformers, class_name))
    if has_torchvision():
        try:
            return AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
        except OSError as e:
            if "video processor" not in str(e):
                raise
    return image_cls.from_pretrained(path)


def build_processor(
    processor_cls: type,
    image_processor: str,
    image_kwargs: dict,
    video_processor: str | None = None,
    video_kwargs: dict | None = None,
    fallback: type | None = None,
    fast: bool | None = None,
    **kwargs: Any,
) -> Any:
    """A new processor as hub checkpoints are saved: with torchvision, the fast image processor
    ``image_processor`` (a ``transformers`` class name; the PIL one ``<name>Pil`` if ``fast`` is
    False) and the video processor; without, the PIL image processor and no video processor
    (``fallback``: the processor class to use then, default ``image_only(processor_cls)``).
    Used by the training scripts and the tests' tiny models."""
    import transformers

    tv = has_torchvision()
    use_fast = tv and fast is not False
    ip = getattr(transformers, image_processor if use_fast else image_processor + "Pil")(**image_kwargs)
    if tv:
        extra = {}
        if video_processor is not None:
            extra["video_processor"] = getattr(transformers, video_processor)(**(video_kwargs or {}))
        return processor_cls(image_processor=ip, **extra, **kwargs)
    cls = fallback or (image_only(processor_cls) if video_processor is not None else processor_cls)
    return cls(image_processor=ip, **kwargs)
