"""Pieces shared by the zoo training scripts: tokenizer, chat template, batches, schedule.

Any ``transformers`` vision-language architecture can reuse them: the scripts differ only
in the config, the processor and how the vision tower is pre-trained.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from vlm_focus.data.shapes import QTYPES, answer_correct, make_sample, vocabulary_corpus

SPECIAL = ["<unk>", "<s>", "</s>", "<pad>", "<image>"]
PROMPT_WORDS = ["USER: ", "ASSISTANT:", "\n", " "]

# LLaVA-1.5 style: "USER: <image>\n{question} ASSISTANT: {answer}</s>"
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}USER: "
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}<image>\n{% endif %}{% endfor %}"
    "{% for c in message['content'] %}{% if c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %} "
    "{% else %}ASSISTANT: {% for c in message['content'] %}{% if c['type'] == 'text' %}"
    "{{ c['text'] }}{% endif %}{% endfor %}</s>{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)

QTYPE_WEIGHTS = {"color": 0.2, "shape": 0.2, "count": 0.3, "exist": 0.3}


def build_tokenizer(vocab_size: int = 400) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on the scene templates (any text still encodes)."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Answers follow "ASSISTANT:" and a space, so learn the words with a leading space too.
    lines = vocabulary_corpus()
    corpus = (lines + [" " + line for line in lines]) * 4 + PROMPT_WORDS * 50
    tok.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        extra_special_tokens={"image_token": "<image>"},
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def prompt_text(question: str) -> str:
    return f"USER: <image>\n{question} ASSISTANT:"


def sample_stream(
    seed: int, start: int, batch: int, size: int, rng: np.random.Generator, weights: dict | None = None
):
    """A batch of samples with question types drawn by ``weights`` (default ``QTYPE_WEIGHTS``)."""
    w = weights or QTYPE_WEIGHTS
    kinds = rng.choice(list(w), size=batch, p=np.array(list(w.values())) / sum(w.values()))
    return [make_sample(seed, start + i, str(k), size=size) for i, k in enumerate(kinds)]


def uninformative(sample, rng: np.random.Generator):
    """The sample with its image replaced by the blur baseline (no visual evidence) and its
    answer by the answer for a random key word of the same kind: it teaches the model that
    an image without visual information leaves the answer open (a uniform guess), instead
    of letting it guess from the blurred image's mean colour."""
    from dataclasses import replace

    from vlm_focus.baselines import make_baseline
    from vlm_focus.data.shapes import COLORS, NUMBER_WORDS, SHAPES
    from vlm_focus.images import tensor_to_pil, to_tensor

    image = tensor_to_pil(make_baseline("blur", to_tensor(sample.image)))
    words = sample.question.rstrip("?").split()
    pick = lambda xs: xs[int(rng.integers(len(xs)))]  # noqa: E731
    if sample.qtype == "color":
        key = pick(list(COLORS))
        answer = f"The {words[-1]} is {key}."
    elif sample.qtype == "shape":
        key = pick(list(SHAPES))
        answer = f"The {words[4]} object is a {key}."
    elif sample.qtype == "count":
        shape, n = words[2][:-1], int(rng.integers(len(NUMBER_WORDS)))
        key = NUMBER_WORDS[n]
        answer = (
            f"There are no {shape}s."
            if n == 0
            else f"There is one {shape}."
            if n == 1
            else f"There are {key} {shape}s."
        )
    else:
        color, shape = words[3], words[4]
        key = pick(["Yes", "No"])
        answer = f"Yes, there is a {color} {shape}." if key == "Yes" else f"No, there is no {color} {shape}."
    return replace(sample, image=image, answer=answer, key=key)


def lm_batch(processor, samples, device="cpu") -> dict[str, torch.Tensor]:
    """Processor inputs with labels on the answer tokens (and the end token) only."""
    prompts = [prompt_text(s.question) for s in samples]
    full = [p + " " + s.answer + processor.tokenizer.eos_token for p, s in zip(prompts, samples)]
    enc = processor(text=full, images=[s.image for s in samples], return_tensors="pt", padding=True)
    tok = processor.tokenizer
    image_id = tok.convert_tokens_to_ids("<image>")
    n_image = int((enc["input_ids"][0] == image_id).sum())
    labels = enc["input_ids"].clone()
    labels[enc["attention_mask"] == 0] = -100
    for i, p in enumerate(prompts):
        labels[i, : len(tok(p, add_special_tokens=False)["input_ids"]) - 1 + n_image] = -100
    enc["labels"] = labels
    return {k: v.to(device) for k, v in enc.items()}


def cosine_lr(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def quick_accuracy(model, processor, seed: int, n: int, size: int, min_objects: int = 2) -> dict[str, float]:
    """Greedy answers on ``n`` fresh scenes per question type, judged by the key word."""
    model.eval()
    out = {}
    tok = processor.tokenizer
    for q in QTYPES:
        samples = [make_sample(seed, i, q, size=size, min_objects=min_objects) for i in range(n)]
        hits = 0
        for chunk in range(0, n, 50):
            part = samples[chunk : chunk + 50]
            enc = processor(
                text=[prompt_text(s.question) for s in part],
                images=[s.image for s in part],
                return_tensors="pt",
                padding=True,
            )
            gen = model.generate(**enc, max_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id)
            texts = tok.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
            hits += sum(answer_correct(t, s) for t, s in zip(texts, part))
        out[q] = hits / n
    model.train()
    return out


class Timer:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.start
