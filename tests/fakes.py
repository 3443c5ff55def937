"""Small fakes shared by the tests."""

from vlm_focus.explanation import Explanation


def red_answer(question: str, heatmap=None) -> Explanation:
    """What a fake lens returns: the answer "The x is red." whose token " red" depends on the
    image (LLR 4) and is explained by ``heatmap``; without a heatmap no token is selected
    (the answer does not depend on the image) and there are no scores."""
    depends = heatmap is not None
    return Explanation(
        model="fake",
        method="fake",
        question=question,
        answer="The x is red.",
        tokens=["The", " red"],
        token_ids=[1, 2],
        logprob=[-1.0, -1.0],
        logprob_baseline=[-1.0, -5.0],
        llr=[0.0, 4.0],
        selected=[1] if depends else [],
        alpha=1.0,
        heatmap=heatmap,
        scores={"deletion": 0.25, "insertion": 0.75} if depends else {},
    )


class FnScorer:
    """A scorer from any function of pixels ``[B, 3, H, W] -> [B]`` (one 'token')."""

    batch_size = 2

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, pixels):
        return self.fn(pixels)[:, None]
