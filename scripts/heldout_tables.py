"""Score models on every damage generator at 256 px and at full size, and print one Markdown table.

Per kind, the table gives the share of visible damage left untouched and, in brackets, the stricter
share still visibly damaged after restoration. Runs ``filmclean evaluate`` once per (size, damage) setting and gathers the reports:

- ``heldout``: the held-out generator (never used for training), part of its artefacts real shapes
  from the held-out sprites; at 256 px, drawn on the whole image and scored on ``--crops`` crops;
- ``sprites``: the same generator with every artefact a held-out sprite;
- ``film``: the film-damage detectors' training generator (``train/filmdamage.py``, default
  parameters), drawn and cropped like ``heldout``;
- ``stored``: the older training generator (dustify's pairs at 256 px, ``synth.dustify`` at full
  size), the one the first shipped models learnt from.

Example (the model card's tables)::

    python -m filmclean.train.corpus data/corpus
    filmclean dustify data/corpus -o data/pairs --sizes 256
    python scripts/heldout_tables.py --corpus data/corpus --pairs data/pairs --split test \\
        --model identity --model oracle --model default -o heldout_tables/

``--names a,b,c`` scores those images instead of the test split (model selection on a training
run's validation images).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

KINDS = ("dust", "dirt", "hair", "scratch")
DAMAGES = ("heldout", "sprites", "film", "stored")


def run_setting(args: argparse.Namespace, size: str, damage: str, out: Path) -> dict:
    """One ``filmclean evaluate`` run. At 256 px the held-out damage is drawn on whole images and
    ``--crops`` crops of each are scored (scan-scale damage); the training generator's 256-px pairs
    are dustify's."""
    if size == "full":
        cmd = [sys.executable, "-m", "filmclean", "evaluate", "--pairs", str(args.corpus), "--size", "full"]
    elif damage == "stored":
        cmd = [sys.executable, "-m", "filmclean", "evaluate", "--pairs", str(args.pairs), "--size", size]
    else:
        cmd = [sys.executable, "-m", "filmclean", "evaluate", "--pairs", str(args.corpus), "--size", "full"]
        cmd += ["--crops", str(args.crops), "--crop-size", size]
    cmd += ["--damage", damage, "--no-lpips", "--no-figures", "-q", "-o", str(out)]
    cmd += ["--names", args.names] if args.names else ["--split", args.split]
    for model in args.model:
        cmd += ["--model", model]
    cmd += args.extra
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return json.loads((out / "report.json").read_text())


def row(setting: str, model: dict) -> str:
    s = model["summary"]
    kinds = s.get("per_kind") or {}
    missed = [
        f"{100 * kinds[k]['missed_share']['mean']:.0f} ({100 * kinds[k]['unrepaired_share']['mean']:.0f})"
        if kinds.get(k, {}).get("images")
        else "—"
        for k in KINDS
    ]
    return (
        f"| {setting} | {model['name']} | {s['ssim_damaged_in']['mean']:.3f} | {s['worse']}/{s['n']} "
        f"| {s['ssim_clean_in']['mean']:.4f} | {s['ssim_clean_in']['min']:.4f} | {s['clean_below_floor']}/{s['n']} "
        f"| {' / '.join(missed)} | {100 * s['false_share']['mean']:.1f} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, required=True, help="folder of full-size clean images (test_list.txt)")
    ap.add_argument("--pairs", type=Path, required=True, help="dustify pairs with a 256/ folder")
    ap.add_argument("--split", default="test", choices=["test", "all"])
    ap.add_argument("--names", default=None, help="comma-separated image names instead of the split")
    ap.add_argument("--model", action="append", required=True, help="as filmclean evaluate --model (repeatable)")
    ap.add_argument("--sizes", default="256,full")
    ap.add_argument("--crops", type=int, default=8, help="crops per image at 256 px (held-out damage)")
    ap.add_argument("--damages", default=",".join(DAMAGES))
    ap.add_argument("-o", "--output", type=Path, required=True, help="folder for the reports and tables.md")
    ap.add_argument("extra", nargs="*", help="further filmclean evaluate options, after --")
    args = ap.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    lines = [
        "| setting | model | SSIM dmg→ | worse | clean→ mean | clean→ min | clean < 0.998 "
        "| untouched (unrepaired) % dust / dirt / hair / scratch | false % |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for size in args.sizes.split(","):
        for damage in args.damages.split(","):
            report = run_setting(args, size, damage, args.output / f"{size}-{damage}")
            for model in report["models"]:
                lines.append(row(f"{size} px, {damage}" if size != "full" else f"full, {damage}", model))
            print(lines[-1], file=sys.stderr, flush=True)
    table = "\n".join(lines) + "\n"
    (args.output / "tables.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
