"""Small fakes shared by the tests."""


class FnScorer:
    """A scorer from any function of pixels ``[B, 3, H, W] -> [B]`` (one 'token')."""

    batch_size = 2

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, pixels):
        return self.fn(pixels)[:, None]
