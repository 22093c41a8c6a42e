"""Train the reader's answerability head: the probability that a window holds the answer, learned on "not here".

The span reader's encoder stays as it is (fine-tuning 12 layers runs at ~3 windows/s on 2 cores); a small head
reads what the encoder already computes for each window (answerability_features in qa/read.py: the [CLS] state,
the states the start and end distributions point at, the span-versus-[CLS] logits) and is trained on SQuAD 2.0
train's crowd-written unanswerable questions against their own paragraph, SQuAD 1.1-style questions the reader
never saw with and without their answer, and their paragraphs with the answer's sentences cut out.

    python -m train.answerability reader --out qa/data/reader        # the reader ONNX with its hidden output
    python -m train.answerability features --out train/runs/answerability --questions 12000 --unanswerable 24000
    python -m train.answerability fit --out train/runs/answerability --export qa/data/reader
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from index.chunk import split_sentences  # noqa: E402
from qa.read import HEAD_FILE, READER_DIR, Reader  # noqa: E402
from train.reader import (DATA_DIR, cut_negative, make_examples, read_questions, read_unanswerable,  # noqa: E402
                          unanswerable_examples)

HIDDEN = "/bert/encoder/layer.11/output/LayerNorm/LayerNormalization_output_0"
SEEN_QUESTIONS = 102_000  # the span reader trained on the first 102,000 shuffled questions (MODEL_CARD.md)


def add_hidden_output(source: Path, target: Path) -> None:
    """The reader ONNX with the encoder's last hidden states as a third output, `hidden` (same weights)."""
    import onnx

    model = onnx.load(str(source))
    if all(o.name != "hidden" for o in model.graph.output):
        model.graph.node.append(onnx.helper.make_node("Identity", [HIDDEN], ["hidden"], name="hidden_identity"))
        model.graph.output.append(onnx.helper.make_tensor_value_info("hidden", onnx.TensorProto.FLOAT,
                                                                     ["batch", "tokens", 384]))
    tmp = target.with_suffix(".tmp")
    onnx.save(model, str(tmp))
    tmp.replace(target)


def windows(args) -> tuple[list, np.ndarray, list[str]]:
    """The training windows (question, passage, label) and each one's kind."""
    rows = read_questions(Path(args.data))
    random.Random(args.seed).shuffle(rows)
    fresh = rows[SEEN_QUESTIONS:][:args.questions]
    examples = make_examples(fresh, args.seed + 20, negative_rate=0.5)
    kinds = ["answerable" if e.start >= 0 else "lookalike" for e in examples]
    rng = random.Random(args.seed + 21)
    for row in fresh:
        if rng.random() < 0.4:
            cut = cut_negative(row, split_sentences(row["context"]) or [(0, len(row["context"]))], rng)
            if cut is not None:
                examples.append(cut)
                kinds.append("cut")
    unanswerable = read_unanswerable(Path(args.data))
    random.Random(args.seed + 22).shuffle(unanswerable)
    more = unanswerable_examples(unanswerable[:args.unanswerable], args.seed + 23)
    examples += more
    kinds += ["unanswerable"] * len(more)
    order = list(range(len(examples)))
    random.Random(args.seed + 24).shuffle(order)  # every part holds every kind: a partial run can be fitted
    examples, kinds = [examples[i] for i in order], [kinds[i] for i in order]
    labels = np.array([1.0 if e.start >= 0 else 0.0 for e in examples], dtype=np.float32)
    return examples, labels, kinds


def features(args) -> None:
    """Read every window with the reader and store its answerability features (resumable in parts)."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    examples, labels, kinds = windows(args)
    reader = Reader(Path(args.reader), head=False)
    print(f"{len(examples)} windows ({int(labels.sum())} answerable)", flush=True)
    part = 2000
    pool = ThreadPoolExecutor(max_workers=args.threads)
    t0 = time.time()
    for first in range(0, len(examples), part):
        path = out / f"part-{first // part:04d}.npz"
        if path.exists():
            continue
        chunk = examples[first:first + part]

        def one(ex):
            sents = split_sentences(ex.passage) or [(0, len(ex.passage))]
            return reader.window_features(reader.question_ids(ex.question), ex.passage, sents)
        x = np.stack(list(pool.map(one, chunk)))
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, x=x, y=labels[first:first + part], kind=np.array(kinds[first:first + part]))
        tmp.replace(path)
        done = first + len(chunk)
        print(json.dumps({"windows": done, "of": len(examples), "per_s": round(done / (time.time() - t0), 1)}),
              flush=True)


def load_features(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    parts = sorted(folder.glob("part-*.npz"))
    data = [np.load(p, allow_pickle=False) for p in parts]
    return (np.concatenate([d["x"] for d in data]), np.concatenate([d["y"] for d in data]),
            np.concatenate([d["kind"] for d in data]))


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (the chance a random positive outscores a random negative)."""
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    ranks[order] = np.arange(1, len(scores) + 1)
    pos = labels > 0.5
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / max(1, n_pos * n_neg))


def fit(args) -> None:
    """Fit the head (standardised features -> one hidden layer -> logit) on 90% of the windows, report the rest."""
    import torch

    x, y, kind = load_features(Path(args.out))
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(y))
    n_val = len(y) // 10
    val, tr = order[:n_val], order[n_val:]
    mean, std = x[tr].mean(0), x[tr].std(0) + 1e-6
    xt = torch.tensor((x - mean) / std, dtype=torch.float32)
    yt = torch.tensor(y)
    torch.manual_seed(args.seed)
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], args.hidden), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                              torch.nn.Linear(args.hidden, 1))
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    pos_weight = torch.tensor((1 - y[tr].mean()) / max(y[tr].mean(), 1e-6))  # balanced classes
    best, best_state = 1e9, None
    for epoch in range(args.epochs):
        net.train()
        perm = torch.tensor(rng.permutation(tr))
        for i in range(0, len(perm), 256):
            idx = perm[i:i + 256]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(xt[idx]).squeeze(1), yt[idx],
                                                                        pos_weight=pos_weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            logits = net(xt[val]).squeeze(1)
            vloss = torch.nn.functional.binary_cross_entropy_with_logits(logits, yt[val], pos_weight=pos_weight).item()
        print(json.dumps({"epoch": epoch, "val_loss": round(vloss, 4), "val_auc": round(auc(logits.numpy(), y[val]), 4)}),
              flush=True)
        if vloss < best:
            best, best_state = vloss, {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    net.eval()
    with torch.no_grad():
        logits = net(xt[val]).squeeze(1).numpy()
    for k in sorted(set(kind[val].tolist())):
        m = kind[val] == k
        print(f"  {k:12} {m.sum():6d} windows  accuracy {((logits[m] > 0) == (y[val][m] > 0.5)).mean():.3f}")
    margin = x[val][:, -1]  # the span-versus-[CLS] margin alone, for comparison
    hard = np.isin(kind[val], ["answerable", "unanswerable"])
    print(f"  AUC: head {auc(logits, y[val]):.4f} (answerable vs SQuAD 2.0 unanswerable {auc(logits[hard], y[val][hard]):.4f}); "
          f"margin alone {auc(margin, y[val]):.4f} ({auc(margin[hard], y[val][hard]):.4f})")
    if args.export:
        target = Path(args.export) / HEAD_FILE
        w = {k: v.numpy().astype(np.float32) for k, v in net.state_dict().items()}
        tmp = target.with_suffix(".tmp.npz")
        np.savez(tmp, mean=mean.astype(np.float32), std=std.astype(np.float32), w1=w["0.weight"].T.copy(),
                 b1=w["0.bias"], w2=w["3.weight"].T.copy()[:, 0], b2=w["3.bias"])
        tmp.replace(target)
        print(f"wrote {target}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("reader", help="write the reader ONNX with its hidden output")
    r.add_argument("--source", default=str(READER_DIR / "spans.onnx"))
    r.add_argument("--out", default=str(READER_DIR))
    f = sub.add_parser("features", help="read the training windows and store their features")
    f.add_argument("--out", required=True)
    f.add_argument("--data", default=str(DATA_DIR))
    f.add_argument("--reader", default=str(READER_DIR))
    f.add_argument("--questions", type=int, default=12000)
    f.add_argument("--unanswerable", type=int, default=24000)
    f.add_argument("--threads", type=int, default=2)
    f.add_argument("--seed", type=int, default=13)
    t = sub.add_parser("fit", help="fit the head on the stored features")
    t.add_argument("--out", required=True)
    t.add_argument("--export", default=None, help="write the head into this reader folder")
    t.add_argument("--hidden", type=int, default=256)
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--weight-decay", type=float, default=0.05)
    t.add_argument("--lr", type=float, default=3e-4)
    t.add_argument("--seed", type=int, default=13)
    args = p.parse_args(argv)
    if args.command == "reader":
        add_hidden_output(Path(args.source), Path(args.out) / "model.onnx")
    elif args.command == "features":
        features(args)
    else:
        fit(args)


if __name__ == "__main__":
    main()
