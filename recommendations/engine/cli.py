"""Command line: ``python -m recommendations.engine evaluate ...``.

::

    python -m recommendations.engine evaluate --data ml-100k|synthetic|PATH \\
        --models pop,ease,itemknn,sasrec,lightgcn [--protocol loo|temporal] \\
        [--seeds 1,2,3] [--profile quick|full] [--device cpu|cuda] \\
        [--ties random|random:SEED|item] --out results.json [--dump-scores DIR]

``--data`` takes a MovieLens name (loaded through the sources of
:func:`~recommendations.engine.data.movielens.load_movielens`), a MovieLens
folder, a CSV file ``user_id,item_id,rating,timestamp``, or ``synthetic``.
``--ties`` orders a user's events with equal timestamps (every command):
a seeded random order by default (seed 0; ``random:SEED`` for another), the
item-id order only with ``item`` (for comparison with peer figures); see
:mod:`recommendations.engine.data.ordering`.
The options above are a stable interface used by benchmark scripts.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from recommendations.engine.ensemble.fitting import fit_ensemble_weights
from recommendations.engine.errors import EngineError
from recommendations.engine.evaluation.ablation import (
    ablation_study,
    merge_reports,
    write_report,
)
from recommendations.engine.evaluation.runner import evaluate_models, markdown_report
from recommendations.engine.jsonable import to_jsonable
from recommendations.engine.models.registry import model_names

logger = logging.getLogger("recommendations.engine.cli")


def _names(value: str) -> list[str]:
    return [m.strip() for m in value.split(",") if m.strip()]


def cmd_evaluate(args: argparse.Namespace) -> dict[str, Any]:
    out = evaluate_models(
        args.data,
        _names(args.models),
        protocol=args.protocol,
        seeds=[int(s) for s in args.seeds.split(",")],
        profile=args.profile,
        device=args.device,
        dump_scores_to=Path(args.dump_scores) if args.dump_scores else None,
        ensemble_members=(
            tuple(m for m in args.ensemble_members.split(",") if m)
            if args.ensemble_members
            else None
        ),
        ties=args.ties,
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(to_jsonable(out), indent=2))
    logger.info("wrote %s", args.out)
    return out


def cmd_debias(args: argparse.Namespace) -> dict[str, Any]:
    out = fit_ensemble_weights(
        args.data,
        members=[m for m in (args.members or "").split(",") if m] or None,
        profile=args.profile,
        seed=args.seed,
        device=args.device,
        objective=args.objective,
        save_model=args.save_model,
        ties=args.ties,
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    logger.info("wrote %s: %s", args.out, out["weights"])
    return out


def cmd_ablation(args: argparse.Namespace) -> dict[str, Any]:
    results = ablation_study(
        args.data,
        _names(args.models),
        seeds=[int(s) for s in args.seeds.split(",")],
        profile=args.profile,
        device=args.device,
        save_ensemble=Path(args.save_ensemble) if args.save_ensemble else None,
        ties=args.ties,
    )
    results["command"] = " ".join(
        ["--data", args.data, "--models", args.models, "--seeds", args.seeds,
         "--profile", args.profile, "--ties", args.ties]
    )  # fmt: skip
    write_report(results, Path(args.out))
    logger.info("wrote %s", args.out)
    return results


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m recommendations.engine")
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("evaluate", help="train and evaluate models on one split")
    ev.add_argument("--data", required=True, help="ml-100k | synthetic | folder | CSV")
    ev.add_argument(
        "--models",
        default="pop,ease,itemknn,sasrec,lightgcn",
        help=f"comma-separated, from: {','.join(model_names())}",
    )
    ev.add_argument("--protocol", choices=("loo", "temporal"), default="loo")
    ev.add_argument("--seeds", default="1,2,3")
    ev.add_argument("--profile", choices=("quick", "full"), default="quick")
    ev.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ev.add_argument("--out", required=True, help="results.json to write")
    ev.add_argument(
        "--dump-scores",
        default=None,
        metavar="DIR",
        help="write each model's test score matrix (first seed)",
    )
    ev.add_argument(
        "--ensemble-members",
        default=None,
        help="members of `ensemble` (default: the six neural models); members "
        "also listed in --models are trained once and reused",
    )
    ev.add_argument("-v", "--verbose", action="store_true")
    de = sub.add_parser(
        "debias", help="train the ensemble's members and choose their weights"
    )
    de.add_argument("--data", required=True, help="ml-100k | synthetic | folder | CSV")
    de.add_argument("--members", default=None, help="comma-separated member models")
    de.add_argument("--profile", choices=("quick", "full"), default="quick")
    de.add_argument("--seed", type=int, default=1)
    de.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    de.add_argument(
        "--objective", choices=("dr", "ips", "snips", "ndcg"), default="ndcg"
    )
    de.add_argument("--out", required=True, help="weights JSON to write")
    de.add_argument("--save-model", default=None, metavar="DIR")
    ab = sub.add_parser("ablation", help="members, ensemble and leave-one-out report")
    ab.add_argument("--data", required=True, help="ml-100k | synthetic | folder | CSV")
    ab.add_argument(
        "--models", default="sasrec,lightgcn,kan,neural_ode,hyperbolic,diffusion",
        help="the ensemble's members",
    )  # fmt: skip
    ab.add_argument("--seeds", default="1,2,3")
    ab.add_argument("--profile", choices=("quick", "full"), default="quick")
    ab.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ab.add_argument(
        "--out", required=True, help="Markdown report (PNG + JSON beside it)"
    )
    ab.add_argument(
        "--save-ensemble",
        default=None,
        metavar="DIR",
        help="save the first seed's DR-weighted ensemble (members included)",
    )
    for command in (ev, de, ab):
        command.add_argument(
            "--ties",
            default="random",
            help="order of a user's same-second events: random (seeded, seed 0), "
            "random:SEED, or item (the item-id order of peer figures)",
        )
    mg = sub.add_parser(
        "ablation-merge", help="one ablation report from runs of other seeds"
    )
    mg.add_argument("reports", nargs="+", help="ablation reports (.md) to merge")
    mg.add_argument("--out", required=True, help="Markdown report to write")
    rep = sub.add_parser("report", help="print results.json files as Markdown tables")
    rep.add_argument("results", nargs="+")  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.command == "evaluate":
            cmd_evaluate(args)
        elif args.command == "debias":
            cmd_debias(args)
        elif args.command == "ablation":
            cmd_ablation(args)
        elif args.command == "ablation-merge":
            write_report(merge_reports([Path(p) for p in args.reports]), Path(args.out))
        elif args.command == "report":
            for path in args.results:
                sys.stdout.write(f"\n{path}\n\n")
                sys.stdout.write(
                    markdown_report(json.loads(Path(path).read_text())) + "\n"
                )
    except EngineError as exc:
        logger.error("%s", exc)
        return 2
    return 0
