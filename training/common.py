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


def chat_prompt(processor, question: str) -> str:
    """The question in the processor's chat template, ready for the answer."""
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True)


def lm_batch(processor, samples, device="cpu") -> dict[str, torch.Tensor]:
    """Processor inputs with labels on the answer tokens (and the end token) only.

    The answer follows the prompt after a space, which the byte-level tokenizer keeps
    with the answer's first word, so the answer's tokens are the last ones of each row
    (right padding) whatever the processor expanded the image placeholder into."""
    tok = processor.tokenizer
    if tok.padding_side != "right":
        raise ValueError("lm_batch needs right padding")
    answers = [" " + s.answer + tok.eos_token for s in samples]
    full = [chat_prompt(processor, s.question) + a for s, a in zip(samples, answers)]
    enc = processor(text=full, images=[s.image for s in samples], return_tensors="pt", padding=True)
    labels = torch.full_like(enc["input_ids"], -100)
    for i, a in enumerate(answers):
        end = int(enc["attention_mask"][i].sum())
        n = len(tok(a, add_special_tokens=False)["input_ids"])
        labels[i, end - n : end] = enc["input_ids"][i, end - n : end]
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
                text=[chat_prompt(processor, s.question) for s in part],
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


# ----- the parts every zoo training script shares ---------------------------------------
def scene_seed(seed: int) -> int:
    """Scene-generator seed of the training run ``seed`` (and ``+ 1`` for its vision stage);
    evaluation uses seeds 999 and 2026, far from these."""
    return 2 * seed


SCENE_SIZE = 64  # scenes are drawn at 64 px; the processors resize them to the model's input


def language_model_shape(tok) -> dict:
    """Config arguments of every zoo model's language model: ``shapes-llava``'s shape (4 layers
    x 192, 4 heads, tied embeddings), with the tokenizer's size and special ids. The other zoo
    models start from ``shapes-llava``'s language model, so they must share this shape."""
    return dict(
        hidden_size=192,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=len(tok),
        max_position_embeddings=256,
        rms_norm_eps=1e-6,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=tok.bos_token_id,
        tie_word_embeddings=True,
    )


def add_training_args(ap) -> None:
    """Command-line options of the joint (question/answer) stage, the same in every script."""
    from pathlib import Path

    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--vision-steps", type=int, default=800)
    ap.add_argument("--vision-batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--eval-n", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--seed",
        type=int,
        default=0,
        help="initialisation, training scenes and their order (0: the shipped zoo models)",
    )
    ap.add_argument(
        "--continue-from",
        type=Path,
        default=None,
        help="continue the joint stage from this saved model (no vision stage)",
    )
    ap.add_argument("--data-offset", type=int, default=0, help="first training sample index (fresh data)")
    ap.add_argument(
        "--uninformative",
        type=float,
        default=0.0,
        help="share of samples shown with the blur baseline and a random answer",
    )
    ap.add_argument("--weights", default=None, help="question-type mix, e.g. color=1,shape=1,count=2,exist=3")
    ap.add_argument(
        "--stop-after",
        type=int,
        default=None,
        help="end the joint stage after this step (a prefix of the --steps schedule)",
    )


def parse_weights(text: str | None) -> dict[str, float] | None:
    return {k: float(v) for k, v in (kv.split("=") for kv in text.split(","))} if text else None


def make_logger(out):
    """``log(msg)``: print and append to ``out/training_log.txt``."""
    out.mkdir(parents=True, exist_ok=True)
    log_file = (out / "training_log.txt").open("w")

    def log(msg: str) -> None:
        print(msg, flush=True)
        log_file.write(msg + "\n")
        log_file.flush()

    return log


def pretrain_patches(encode, params: list, dim: int, grid: int, args, log) -> None:
    """Pre-train a vision encoder to label every cell of a ``grid`` x ``grid`` partition of
    the scene with the colour+shape class of the object covering it (a supervised stand-in
    for CLIP pre-training: tiny encoders trained only through the language model learn
    colour quickly but not shape binding).

    ``encode(samples) -> [B, grid * grid, dim]`` features, row-major; ``params`` are trained
    with a linear classification head that is thrown away afterwards, for
    ``args.vision_steps`` steps of ``args.vision_batch`` scenes of run ``args.seed``."""
    from vlm_focus.data.shapes import COLORS, SHAPES, patch_labels

    steps, batch, seed = args.vision_steps, args.vision_batch, args.seed
    n_classes = 1 + len(COLORS) * len(SHAPES)
    head = torch.nn.Linear(dim, n_classes)
    params = list(params) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=2e-3, weight_decay=0.01)
    rng = np.random.default_rng(2 + 2 * seed)
    # Background cells dominate; weight object cells up so binding is learnt.
    weight = torch.ones(n_classes)
    weight[0] = 0.2
    timer = Timer()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, steps, 2e-3, 100)
        samples = sample_stream(scene_seed(seed) + 1, step * batch, batch, SCENE_SIZE, rng)
        labels = torch.from_numpy(np.stack([patch_labels(s.objects, grid) for s in samples])).long()
        logits = head(encode(samples)).reshape(-1, n_classes)
        loss = torch.nn.functional.cross_entropy(logits, labels.reshape(-1), weight=weight)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            fg = labels.reshape(-1) > 0
            acc = (logits.argmax(-1)[fg] == labels.reshape(-1)[fg]).float().mean()
            log(
                f"vision step {step} loss {loss.item():.3f} object-patch acc {acc.item():.3f} t={timer():.0f}s"
            )


def copy_language_model(language_model: torch.nn.Module, source, log) -> None:
    """Start ``language_model`` from the language model of the saved zoo model ``source``:
    same-named tensors are copied (the embedding's first rows when the new tokenizer only
    appends tokens); biases the source lacks (Qwen2's q/k/v) start at zero, so the copy
    computes what the source computed."""
    from transformers import AutoModelForImageTextToText

    src = AutoModelForImageTextToText.from_pretrained(source).model.language_model.state_dict()
    own = language_model.state_dict()
    for k, v in src.items():
        if k not in own:
            raise ValueError(f"{source}: tensor {k} has no counterpart in the new language model")
        if own[k].shape == v.shape:
            own[k] = v
        elif k.endswith("embed_tokens.weight") and own[k].shape[1:] == v.shape[1:] and len(own[k]) > len(v):
            own[k][: len(v)] = v
        else:
            raise ValueError(f"{source}: {k} has shape {tuple(v.shape)}, expected {tuple(own[k].shape)}")
    for k in own.keys() - src.keys():
        if not k.endswith("bias"):
            raise ValueError(f"{source}: no tensor for {k}")
        own[k].zero_()
    language_model.load_state_dict(own)
    log(f"language model initialised from {source} ({len(src)} tensors)")


def train_joint(model, processor, trainable: list, args, log, timer: Timer) -> None:
    """The question/answer stage: loss on the answer tokens, AdamW with a cosine schedule,
    a checkpoint and quick accuracy every 1000 steps."""
    opt = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=0.01)
    rng = np.random.default_rng(3 + 2 * args.seed)
    weights = parse_weights(args.weights)
    model.train()
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, args.steps, args.lr, 50 if args.continue_from else 200)
        samples = sample_stream(
            scene_seed(args.seed), args.data_offset + step * args.batch, args.batch, SCENE_SIZE, rng, weights
        )
        if args.uninformative:
            samples = [uninformative(s, rng) if rng.random() < args.uninformative else s for s in samples]
        loss = model(**lm_batch(processor, samples)).loss
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at step {step}")
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        if step % 100 == 0 or step == args.steps - 1:
            log(f"joint step {step} loss {loss.item():.4f} t={timer():.0f}s")
        if args.eval_n and step and step % 1000 == 0:
            log(f"accuracy at step {step}: {quick_accuracy(model, processor, 999, args.eval_n, SCENE_SIZE)}")
            model.save_pretrained(args.out)  # a usable checkpoint if the run is stopped
            processor.save_pretrained(args.out)
        if args.stop_after is not None and step >= args.stop_after:
            log(f"stopped after step {step} of the {args.steps}-step schedule")
            break


def train_and_finish(model, processor, args, log, timer: Timer, vision_seconds: float, **extra) -> None:
    """The joint stage on every parameter that still requires a gradient (the scripts freeze
    their vision side first), then :func:`finish`; the generation config gets the
    tokenizer's end and padding ids."""
    tok = processor.tokenizer
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    train_joint(model, processor, [p for p in model.parameters() if p.requires_grad], args, log, timer)
    finish(model, processor, args, log, timer, vision_seconds, **extra)


def finish(model, processor, args, log, timer: Timer, vision_seconds: float, **extra) -> None:
    """Quick accuracy, ``save_pretrained`` of model and processor, and ``training.json``
    (parameters, times, arguments, and the record of the run continued from)."""
    import json

    total = timer()
    model.eval()
    acc = quick_accuracy(model, processor, 999, args.eval_n, SCENE_SIZE) if args.eval_n else {}
    log(f"final quick accuracy (seed 999, {args.eval_n}/type): {acc}")
    model.save_pretrained(args.out)
    processor.save_pretrained(args.out)
    info = {
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_seconds": round(total, 1),
        "vision_seconds": round(vision_seconds, 1),
        "torch_threads": args.threads,
        "quick_accuracy": acc,
        "args": {k: str(v) for k, v in vars(args).items()},
        "train_seed": args.seed,
        **extra,
    }
    if args.continue_from:
        previous = args.continue_from / "training.json"
        info["continued_from"] = (
            json.loads(previous.read_text()) if previous.exists() else str(args.continue_from)
        )
    (args.out / "training.json").write_text(json.dumps(info, indent=2))
    log(json.dumps(info))


def extend_tokenizer(
    added: list[str],
    chat_template: str,
    extra_special_tokens: dict[str, str],
    bos_token: str = "<s>",
    eos_token: str = "</s>",
) -> PreTrainedTokenizerFast:
    """:func:`build_tokenizer` with the special tokens ``added`` appended (earlier ids
    unchanged, so a language model trained with the base tokenizer still fits) and the
    named special tokens a family's processor reads (``image_token``, ...)."""
    from tokenizers import AddedToken

    backend = build_tokenizer().backend_tokenizer
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in added])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=bos_token,
        eos_token=eos_token,
        pad_token="<pad>",
        unk_token="<unk>",
        extra_special_tokens=extra_special_tokens,
    )
    tok.chat_template = chat_template
    return tok


def start_run(ap, argv: list[str] | None):
    """Parse the arguments, set the torch threads, open the log: ``(args, log, timer)``."""
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    return args, make_logger(args.out), Timer()
