"""How far do the pipeline's metrics move between CPUs? Measured by emulating other
instruction sets and thread counts on this machine.

Two runs on one machine are bit-identical, but float32 training and feature extraction
(torch/oneDNN, MKL, OpenBLAS, faiss) take other code paths on other CPUs: vector widths
change the order of reductions, and the training of a CNN amplifies the last-bit
differences. This benchmark rebuilds the default targets in a fresh clone of a commit
under each emulated configuration and records every gated metric:

    python benchmarks/bench_isa_spread.py run --config avx2 [--commit HEAD] [--targets demo ...]
    python benchmarks/bench_isa_spread.py summarize

`run` clones the commit into ../isa-<config> (beside the project, so ../shared is the
same), runs `snakemake --cores N` there with the configuration's environment, and copies
the metrics files to benchmarks/results/isa_spread/<config>/. It resumes: rerunning it
continues the Snakemake run in the same clone. `summarize` adds the committed metrics
of the commit (the machine that made them is another real CPU) and writes, per
experiment and metric, the spread = max - min over every configuration holding that
metric: benchmarks/results/isa_spread.{json,md}. `pseudosup update-baselines --spread
benchmarks/results/isa_spread.json` turns it into the gate's tolerances.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
OUT = HERE / "results" / "isa_spread"

# Environment of each emulated configuration. ATEN_CPU_CAPABILITY picks ATen's vectorised
# kernels, ONEDNN_MAX_CPU_ISA the JIT convolution/matmul kernels, MKL_ENABLE_INSTRUCTIONS
# MKL's code path, OPENBLAS_CORETYPE numpy's BLAS kernels, FAISS_SIMD_LEVEL the SIMD
# level faiss dispatches to (its wheel is one library with dynamic dispatch, so the older
# FAISS_OPT_LEVEL does nothing). `cores` is Snakemake's --cores (the job thread count).
CONFIGS = {
    "native": {"env": {}, "cores": 2},
    "avx2": {"env": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2",
                     "MKL_ENABLE_INSTRUCTIONS": "AVX2", "OPENBLAS_CORETYPE": "Haswell",
                     "FAISS_SIMD_LEVEL": "AVX2"}, "cores": 2},
    "sse": {"env": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41",
                    "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "OPENBLAS_CORETYPE": "Nehalem",
                    "FAISS_SIMD_LEVEL": "NONE"}, "cores": 2},
    "threads1": {"env": {}, "cores": 1},
    # only ATEN_CPU_CAPABILITY, as CI is asked to pass with it set
    "aten-avx2": {"env": {"ATEN_CPU_CAPABILITY": "avx2"}, "cores": 2},
}


def clone(commit: str, dest: Path) -> None:
    if dest.exists():  # resuming: the clone must hold the commit the results will name
        head = subprocess.run(["git", "-C", str(dest), "rev-parse", "HEAD"], check=True, capture_output=True,
                              text=True).stdout.strip()
        if head != commit:
            sys.exit(f"{dest} holds {head[:10]}, not {commit[:10]}: remove it or pass --commit {head[:10]}")
        return
    subprocess.run(["git", "clone", "-q", str(PROJECT), str(dest)], check=True)
    subprocess.run(["git", "-C", str(dest), "checkout", "-q", commit], check=True)


def probe(env: dict) -> dict:
    """What the emulated environment really dispatches to (checked, not assumed)."""
    code = ("import json, torch, faiss, numpy; "
            "print(json.dumps({'torch_capability': torch.backends.cpu.get_cpu_capability(), "
            "'faiss_simd_level': faiss.SIMDConfig.get_level_name()}))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def metrics_targets(targets: list[str]) -> list[str]:
    return [f"results/metrics/{t}.json" for t in targets]


def run(args) -> int:
    cfg = CONFIGS[args.config]
    commit = subprocess.run(["git", "-C", str(PROJECT), "rev-parse", args.commit], check=True,
                            capture_output=True, text=True).stdout.strip()
    work = PROJECT.parent / f"isa-{args.config}"
    clone(commit, work)
    env = {**os.environ, **cfg["env"], "PYTHONPATH": str(work / "src")}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    dispatched = probe(env)
    cmd = ["snakemake", "--cores", str(cfg["cores"]), "--rerun-incomplete",
           *(metrics_targets(args.targets) if args.targets else [])]
    print(f"[{args.config}] {dispatched} in {work}: {' '.join(cmd)}", flush=True)
    t0 = time.time()
    rc = 0 if args.collect else subprocess.run(cmd, cwd=work, env=env).returncode
    wall = time.time() - t0
    if rc != 0:
        print(f"[{args.config}] snakemake failed (exit {rc}); rerun to resume", file=sys.stderr)
        return rc
    dest = OUT / args.config
    dest.mkdir(parents=True, exist_ok=True)
    for m in sorted((work / "results" / "metrics").glob("*.json")):
        if _made_here(work, m):
            shutil.copy(m, dest / m.name)
    info = {"config": args.config, "env": cfg["env"], "cores": cfg["cores"], "commit": commit,
            "dispatched": dispatched, "cpu": cpu_model(), "wall_seconds_this_call": round(wall, 1),
            "targets": args.targets or "default", "date": time.strftime("%Y-%m-%d %H:%M"),
            "experiments": sorted(m.stem for m in (work / "results" / "metrics").glob("*.json")
                                  if _made_here(work, m))}
    if args.collect:  # an unfinished run: keep only the experiments it completed
        for m in dest.glob("*.json"):
            if m.stem not in info["experiments"] and m.name != "config.json":
                m.unlink()
    (dest / "config.json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"[{args.config}] done in {wall:.0f} s -> {dest}")
    return 0


def _made_here(work: Path, metrics: Path) -> bool:
    """A metrics file this run wrote (newer than the clone's checkout), not the committed
    copy the clone started with; its content may equal the committed one."""
    return metrics.stat().st_mtime > (work / "Snakefile").stat().st_mtime + 1


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def load_configs() -> dict[str, dict[str, dict]]:
    """{config: {experiment: metrics}} of every recorded configuration."""
    out = {}
    for d in sorted(p for p in OUT.iterdir() if p.is_dir()):
        out[d.name] = {m.stem: json.loads(m.read_text()) for m in d.glob("*.json") if m.name != "config.json"}
    return out


def committed(commit: str) -> dict[str, dict]:
    """The metrics files committed at `commit` (made on the machine of an earlier session)."""
    names = subprocess.run(["git", "-C", str(PROJECT), "ls-tree", "--name-only", commit, "results/metrics/"],
                           check=True, capture_output=True, text=True).stdout.split()
    out = {}
    for n in names:
        text = subprocess.run(["git", "-C", str(PROJECT), "show", f"{commit}:{n}"], check=True,
                              capture_output=True, text=True).stdout
        out[Path(n).stem] = json.loads(text)
    return out


def summarize(args) -> int:
    sys.path.insert(0, str(PROJECT / "src"))
    from pseudosup.gate import flatten

    configs = load_configs()
    configs[f"committed@{args.commit[:7]}"] = committed(args.commit)
    values: dict[str, dict[str, dict[str, float]]] = {}
    for cfg, exps in configs.items():
        for exp, metrics in exps.items():
            for name, v in flatten(metrics).items():
                values.setdefault(exp, {}).setdefault(name, {})[cfg] = v
    # a spread needs two configurations: experiments only one of them holds are left out
    spread = {exp: {n: max(v.values()) - min(v.values()) for n, v in ms.items()}
              for exp, ms in values.items() if max(len(v) for v in ms.values()) > 1}
    rec = {"configs": {c: _config_info(c) for c in configs}, "experiments": spread, "values": values}
    (HERE / "results" / "isa_spread.json").write_text(json.dumps(rec, indent=1) + "\n")
    (HERE / "results" / "isa_spread.md").write_text(markdown(rec))
    print(markdown(rec))
    return 0


def _config_info(name: str) -> dict:
    p = OUT / name / "config.json"
    return json.loads(p.read_text()) if p.exists() else {"config": name, "env": "the machine of that session"}


def markdown(rec: dict) -> str:
    lines = ["### Cross-CPU spread of the gated metrics", "",
             "Configurations: " + "; ".join(
                 f"`{c}` ({', '.join(f'{k}={v}' for k, v in i['env'].items()) or 'no overrides'}"
                 f"{', cores ' + str(i['cores']) if 'cores' in i else ''}"
                 f"{', commit ' + i['commit'][:7] if 'commit' in i else ''}"
                 f"{', ' + ' '.join(i['targets']) if isinstance(i.get('targets'), list) else ''})"
                 if isinstance(i.get("env"), dict)
                 else f"`{c}` ({i['env']})" for c, i in rec["configs"].items()), "",
             "| experiment | feature | metrics | configs | bit-identical | max spread | median spread |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for exp, ms in sorted(rec["experiments"].items()):
        by_feat: dict[str, list[tuple[str, float]]] = {}
        for n, s in ms.items():
            by_feat.setdefault(n.split("/")[0] if not n.startswith("mining/") else "mining", []).append((n, s))
        for feat, rows in sorted(by_feat.items()):
            s = sorted(v for _, v in rows)
            n_cfg = max(len(rec["values"][exp][n]) for n, _ in rows)
            lines.append(f"| {exp} | {feat} | {len(s)} | {n_cfg} | {sum(v == 0 for v in s)} | "
                         f"{_num(s[-1])} | {_num(s[len(s) // 2])} |")
    return "\n".join(lines) + "\n"


def _num(v: float) -> str:
    """4 decimals; a difference below that is shown as such, not as 0.0000."""
    return "0" if v == 0 else f"{v:.4f}" if v >= 5e-5 else f"{v:.1e}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="rebuild the targets under one emulated configuration")
    r.add_argument("--config", choices=sorted(CONFIGS), required=True)
    r.add_argument("--commit", default="HEAD")
    r.add_argument("--targets", nargs="*", default=[], help="experiments (default: params targets)")
    r.add_argument("--collect", action="store_true",
                   help="do not run: record the experiments an unfinished run has completed")
    s = sub.add_parser("summarize", help="spread per metric over the recorded configurations")
    s.add_argument("--commit", required=True, help="the commit the runs were made from (its committed metrics count)")
    args = ap.parse_args()
    return run(args) if args.cmd == "run" else summarize(args)


if __name__ == "__main__":
    sys.exit(main())
