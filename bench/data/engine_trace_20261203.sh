#!/bin/bash
# issue 21: where the time goes, by oneDNN primitive (bench/onednn_trace.py), with the
# background studies paused (kill -STOP) for the duration. Output: engine_trace_20261203.txt
cd /work/main
B=build/bench
echo "# start $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg) build $(git rev-parse --short HEAD)"
P1=$($B/fma_peak | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["peaks"][0]["gflops"])')
P2=$($B/fma_peak | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["peaks"][1]["gflops"])')
echo "# peak 1 thread $P1 GFLOP/s, 2 threads $P2"
for T in 1 2; do
  P=$([ $T = 1 ] && echo $P1 || echo $P2)
  echo "## fmnist-small training, batch 64, $T thread(s): 3 warm-up + 10 steps"
  $B/nn_bench configs/fmnist-small.json --batch 64 --iters 10 --threads $T --infer-only >/dev/null
  W=$($B/nn_bench configs/fmnist-small.json --batch 64 --iters 20 --threads $T | sed -n 's/.*train_step_ms=\([0-9.]*\).*/\1/p')
  ONEDNN_VERBOSE=1 $B/nn_bench configs/fmnist-small.json --batch 64 --iters 10 --threads $T 2>&1 | sed '/^engine=.*batch=64/q' | python3 bench/onednn_trace.py --steps 13 --phase train --peak $P --wall-ms $W
  echo "## fmnist-small batch-1 inference, $T thread(s): 110 inferences"
  W=$($B/nn_bench configs/fmnist-small.json --iters 40 --threads $T --infer-only | sed -n 's/.*infer_ms_median=\([0-9.]*\).*/\1/p')
  ONEDNN_VERBOSE=1 $B/nn_bench configs/fmnist-small.json --iters 20 --threads $T --infer-only 2>&1 | python3 bench/onednn_trace.py --steps 110 --peak $P --wall-ms $W
  echo "## GPUNet-0 @224 training, batch 16, $T thread(s): 3 warm-up + 2 steps"
  W=$($B/nn_bench configs/gpunet/gpunet-0.json --res 224 --batch 16 --iters 3 --threads $T | sed -n 's/.*train_step_ms=\([0-9.]*\).*/\1/p')
  ONEDNN_VERBOSE=1 $B/nn_bench configs/gpunet/gpunet-0.json --res 224 --batch 16 --iters 2 --threads $T 2>&1 | sed '/^engine=.*batch=16/q' | python3 bench/onednn_trace.py --steps 5 --phase train --peak $P --wall-ms $W
  echo "## GPUNet-0 @224 batch-1 inference, $T thread(s): 60 inferences"
  W=$($B/nn_bench configs/gpunet/gpunet-0.json --res 224 --iters 10 --threads $T --infer-only | sed -n 's/.*infer_ms_median=\([0-9.]*\).*/\1/p')
  ONEDNN_VERBOSE=1 $B/nn_bench configs/gpunet/gpunet-0.json --res 224 --iters 10 --threads $T --infer-only 2>&1 | python3 bench/onednn_trace.py --steps 60 --peak $P --wall-ms $W
done
echo "# end $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)"
