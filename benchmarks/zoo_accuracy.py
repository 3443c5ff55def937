"""Accuracy and image dependence of a zoo model on fresh synthetic scenes.

For each question type, ``--n`` scenes from a seed never used in training (colour and
shape questions on scenes of 2-4 objects), greedy answers judged by their key word. Then,
on ``--llr-n`` samples per type, the mean log-likelihood ratio (log P with the image -
log P with the blur baseline) of the key tokens and of the filler tokens ("the", "is",
".", ...).

    python benchmarks/zoo_accuracy.py --model shapes-llava --n 500
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

import vlm_focus
from vlm_focus.baselines import make_baseline
from vlm_focus.data.shapes import QTYPES, answer_correct, make_sample
from vlm_focus.images import to_tensor
from vlm_focus.tokens import is_filler

EVAL_SEED = 2026  # training uses seeds 0 and 1


def batched_answers(adapter, samples, batch: int = 50) -> list[str]:
    proc, tok = adapter.processor, adapter.tokenizer
    out = []
    for i in range(0, len(samples), batch):
        part = samples[i : i + batch]
        enc = proc(
            text=[adapter.prompt(s.question) for s in part],
            images=[s.image for s in part],
            return_tensors="pt",
            padding=True,
        )
        with torch.no_grad():
            gen = adapter.model.generate(
                **enc, max_new_tokens=16, do_sample=False, pad_token_id=tok.pad_token_id
            )
        out += [
            t.strip() for t in tok.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        ]
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="shapes-llava")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--llr-n", type=int, default=100)
    ap.add_argument("--seed", type=int, default=EVAL_SEED)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    adapter = vlm_focus.load(args.model, device="cpu").adapter
    t0 = time.perf_counter()
    result: dict = {"model": args.model, "seed": args.seed, "n": args.n, "accuracy": {}, "llr": {}}
    for q in QTYPES:
        lo = 2 if q in ("color", "shape") else 1
        samples = [make_sample(args.seed, i, q, min_objects=lo) for i in range(args.n)]
        answers = batched_answers(adapter, samples)
        result["accuracy"][q] = float(np.mean([answer_correct(a, s) for a, s in zip(answers, samples)]))
    key_llr, filler_llr, per_type = [], [], {}
    for q in QTYPES:
        start = len(key_llr)
        for i in tqdm(range(args.llr_n), desc=f"LLR {q}", leave=False, disable=None):
            s = make_sample(args.seed + 1, i, q, min_objects=2 if q in ("color", "shape") else 1)
            pixels = to_tensor(s.image)
            ids = adapter.generate(pixels, s.question, max_new_tokens=16)
            tokens = adapter.decode_tokens(ids)
            scorer = adapter.scorer(pixels, s.question, ids)
            with torch.no_grad():
                lp = scorer(torch.stack([pixels, make_baseline("blur", pixels)]))
            llr = (lp[0] - lp[1]).tolist()
            for t, v in zip(tokens, llr):
                if t.strip().lower() == s.key.lower() and not (q == "count" and s.key == "no"):
                    key_llr.append(v)
                elif is_filler(t) and t.strip().lower() not in ("no", "one"):
                    filler_llr.append(v)
        mine = np.array(key_llr[start:])
        per_type[q] = {"key_mean": float(mine.mean()), "key_share_above_1": float((mine > 1.0).mean())}
    result["llr"] = {
        "key_mean": float(np.mean(key_llr)),
        "key_share_above_1": float(np.mean(np.array(key_llr) > 1.0)),
        "filler_mean": float(np.mean(filler_llr)),
        "filler_share_above_1": float(np.mean(np.array(filler_llr) > 1.0)),
        "n_key": len(key_llr),
        "n_filler": len(filler_llr),
        "per_qtype": per_type,
    }
    result["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
