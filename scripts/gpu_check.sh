#!/usr/bin/env bash
# The checks that need an NVIDIA GPU, in at most 8 minutes on one GPU; prints one table at the end.
#
#   scripts/gpu_check.sh            # logs and results in runs/gpu_check/ (OUT=... to change)
#
# The measurements first, so that a lease that ends early still has them:
# 1. scripts/benchmark.py on CUDA: the atari100k update in bf16 (train.precision auto) and the world
#    model's forward/backward                                                          <= 90 s
# 2. Breakout, atari100k preset, a short run of scripts/train_agent.py: agent steps/s while training
#                                                                                      <= 140 s
# 3. host syncs in one agent update on CUDA (torch.cuda sync debug mode)               <= 45 s
# 4. the suite's CUDA tests (pytest -m cuda: placement, bf16 autocast, atari100k on CUDA against
#    CPU fp32, torchrun over NCCL with one process)                                    <= 150 s
# 5. the atari100k update in fp32                                                      <= 60 s
# Each step has its own timeout; a failed or timed-out step is reported and the others still run.
# Without a CUDA device it says so and exits 2 (nothing here assumes a GPU elsewhere).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
command -v "$PY" >/dev/null || PY=python3
OUT=${OUT:-runs/gpu_check}
BREAKOUT_STEPS=${BREAKOUT_STEPS:-1500}  # 1,000 warm-up + 500 trained agent steps (about 250 updates)

if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check.sh: torch sees no CUDA device; these checks need an NVIDIA GPU" >&2
    exit 2
fi
rm -rf "$OUT" && mkdir -p "$OUT"

ROWS=()  # "name|status|seconds"
run_step() {  # run_step NAME TIMEOUT_S COMMAND...: output in $OUT/NAME.log
    local name=$1 limit=$2 start rc status
    shift 2
    echo "== $name (up to ${limit} s): $*"
    start=$(date +%s)
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    rc=$?
    case $rc in
        0) status=ok ;;
        124) status="timeout (${limit} s)" ;;
        *) status="failed (exit $rc)" ;;
    esac
    ROWS+=("$name|$status|$(( $(date +%s) - start ))")
    tail -n 3 "$OUT/$name.log"
}

run_step benchmark_bf16 90 "$PY" scripts/benchmark.py --device cuda --only update --only world_model \
    --wm-presets atari100k --repeats 3 --warmup 1 --out "$OUT/benchmark_bf16"
run_step breakout 140 "$PY" scripts/train_agent.py --env Breakout --preset atari100k --steps "$BREAKOUT_STEPS" \
    --no-progress --logdir "$OUT/breakout" --set train.warmup_steps=1000 --set eval.every=0 \
    --set eval.episodes=2 --set eval.max_steps=2000 --set log.scalars_every=250
run_step host_syncs 45 "$PY" - <<'EOF'
import warnings

import torch

from aime.agent.agent import Agent
from aime.config import load_config
from aime.runtime.replay import random_replay

buffer = random_replay(24, streams=4, num_actions=4)
agent = Agent(load_config(["atari100k"], ["train.batch_size=4", "train.seq_len=16"]), 4, device="cuda")
batch = buffer.sample(4, 16)
agent.train_step(batch)  # the first update creates the optimisers' state
torch.cuda.synchronize()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    torch.cuda.set_sync_debug_mode("warn")
    agent.train_step(batch)
    torch.cuda.set_sync_debug_mode("default")
# the debug mode's own notice ("a prototype feature ...") is not a sync
syncs = [str(w.message).splitlines()[0] for w in caught if "called a synchronizing" in str(w.message)]
for line in sorted(set(syncs)):
    print("  sync:", line)
print(f"RESULT {len(syncs)} host syncs in one atari100k update (precision {agent.precision}, fused optimisers)")
EOF
run_step cuda_tests 150 "$PY" -m pytest -q -rs -m cuda tests
run_step benchmark_fp32 60 "$PY" scripts/benchmark.py --device cuda --only update --wm-presets atari100k \
    --repeats 3 --warmup 1 --set train.precision=fp32 --out "$OUT/benchmark_fp32"

"$PY" - "$OUT" "${ROWS[@]}" <<'EOF'
"""The table: one row per step, with what it found."""
import json
import re
import sys
from pathlib import Path

out, rows = Path(sys.argv[1]), [r.split("|") for r in sys.argv[2:]]


def text(name):
    path = out / f"{name}.log"
    return path.read_text(errors="replace") if path.is_file() else ""


def update_seconds(folder):
    path = out / folder / "benchmark.json"
    if not path.is_file():
        return None
    found = []
    def walk(node):
        if isinstance(node, dict):
            if node.get("unit") == "s/update" and "behaviour part" not in str(node.get("item", "")):
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(json.loads(path.read_text()))
    return found


def result(name):
    log = text(name)
    if name == "cuda_tests":
        lines = [line for line in log.splitlines() if re.search(r"\d+ (passed|failed|skipped)", line)]
        return lines[-1].strip("= ") if lines else "no pytest summary"
    if name == "host_syncs":
        match = re.search(r"RESULT (.*)", log)
        return match.group(1) if match else "no result"
    if name.startswith("benchmark"):
        rows = update_seconds(name)
        if not rows:
            return "no benchmark.json"
        return "; ".join(f"{r['item'].split(' (')[0]}: {r['value']} s/update" for r in rows)
    if name == "breakout":
        done = re.search(r"^(done|stopped|crashed).*$", log, re.M)
        metrics = out / "breakout" / "metrics.jsonl"
        rates = []
        if metrics.is_file():
            for line in metrics.read_text().splitlines():
                row = json.loads(line)
                if row.get("charts/updates_per_second"):
                    rates.append((row["charts/updates_per_second"], row.get("charts/SPS", float("nan"))))
        rate = f"; {rates[-1][0]:.2f} updates/s and {rates[-1][1]:.1f} agent steps/s at the end" if rates else ""
        return (done.group(0) if done else "no end summary") + rate
    return ""


print("\n| check | status | seconds | result |\n| --- | --- | ---: | --- |")
for name, status, seconds in rows:
    print(f"| {name} | {status} | {seconds} | {result(name)} |")
bf16, fp32 = update_seconds("benchmark_bf16"), update_seconds("benchmark_fp32")
if bf16 and fp32:
    first = lambda rows: next(r["value"] for r in rows if r["item"].startswith("Agent.train_step"))  # noqa: E731
    print(f"| bf16 / fp32 update time | - | - | {first(bf16) / first(fp32):.2f} |")
print(f"\nlogs: {out}/<check>.log; benchmark tables: {out}/benchmark_*/benchmark.md")
sys.exit(0 if all(status == "ok" for _, status, _ in rows) else 1)
EOF
