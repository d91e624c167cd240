"""Install a trained run as a shipped model: ``models/<name>.{safetensors,onnx}`` + sums.

    python scripts/ship_model.py runs/default [--models-dir models]              # single-frame default
    python scripts/ship_model.py runs/temporal --name temporal                    # temporal model
    python scripts/ship_model.py runs/fill --weights last                         # the run's last weights

Copies the run's best ``model.safetensors`` (or, with ``--weights last``, the weights of its last
checkpoint: the end of the one-cycle schedule, when the validation set is too small to pick by) (adding the run's config and metrics to its
``filmclean.info`` metadata), exports ONNX with the parity check, writes ``SHA256SUMS`` and prints
the sizes. The model card (``models/README.md``) is written by hand from ``filmclean evaluate``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--models-dir", type=Path, default=Path(__file__).resolve().parent.parent / "models")
    ap.add_argument(
        "--name",
        choices=["default", "temporal"],
        default="default",
        help="default: the single-frame default model; temporal: the model for reels and sequences",
    )
    ap.add_argument(
        "--weights",
        choices=["best", "last"],
        default="best",
        help="best: the run's model.safetensors (best validation SSIM); last: its last checkpoint",
    )
    args = ap.parse_args()

    from filmclean.modelfile import load_torch_network, save_model, sha256_file
    from filmclean.onnx_export import export_onnx

    net, spec = load_torch_network(args.run_dir / "model.safetensors")
    state = json.loads((args.run_dir / "state.json").read_text()) if (args.run_dir / "state.json").is_file() else {}
    info = dict(spec.info)
    if args.weights == "last":
        from filmclean.train.loop import network_from_checkpoint

        net, _, _ = network_from_checkpoint(args.run_dir / "checkpoint.safetensors")
        last = [
            json.loads(line) for line in (args.run_dir / "metrics.jsonl").read_text().splitlines() if '"valid"' in line
        ]
        training = dict(info.get("training", {}))
        if last:  # describe the last epoch, not the best one
            training.update(
                epoch=last[-1]["epoch"],
                step=last[-1]["step"],
                valid_ssim=last[-1]["ssim"],
                valid_input_ssim=last[-1]["input_ssim"],
            )
        info["training"] = training
    info["training_run"] = {
        "config": json.loads((args.run_dir / "config.json").read_text()),
        "weights": args.weights,
        "best": state.get("best"),
        "step": state.get("step"),
    }
    out = args.models_dir
    out.mkdir(parents=True, exist_ok=True)
    st = save_model(net, spec.arch, spec.config, out / f"{args.name}.safetensors", info=info)
    res = export_onnx(st, out / f"{args.name}.onnx")
    shipped = [f"{stem}.{ext}" for stem in ("default", "temporal") for ext in ("safetensors", "onnx")]
    names = [n for n in shipped if (out / n).is_file()]
    (out / "SHA256SUMS").write_text("".join(f"{sha256_file(out / n)}  {n}\n" for n in names))
    total = sum((out / n).stat().st_size for n in names)
    print(f"shipped {spec.arch} to {out}: {total / 1e6:.1f} MB, ONNX vs torch max diff {res['max_abs_diff']:.2e}")


if __name__ == "__main__":
    main()
