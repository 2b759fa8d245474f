#!/bin/bash
cd /work/main
echo "# start $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)"
.venv/bin/python bench/onnx_vs_gpunas.py configs/fmnist-small.json --res 32 --threads 1,2 --reps 3 --duration 5 --peak
.venv/bin/python bench/onnx_vs_gpunas.py configs/gpunet/gpunet-0.json --res 224 --threads 1,2 --reps 3 --duration 5 --peak
build/bench/fma_peak 2>&1 | tail -3
bash bench/nn_bench.sh build 1
bash bench/nn_bench.sh build 2
echo "# RSS: GPUNet-0 @224 training batch 16, 2 threads"
/usr/bin/time -f 'gpunas maxrss_kb %M' build/bench/nn_bench configs/gpunet/gpunet-0.json --res 224 --batch 16 --iters 3 --threads 2
/usr/bin/time -f 'pytorch maxrss_kb %M' /usr/bin/python3 bench/nn_bench_pytorch.py configs/gpunet/gpunet-0.json --res 224 --batch 16 --iters 3 --threads 2
build/bench/nn_bench configs/fmnist-small.json --batch 64 --iters 40 --threads 1 --ab-fusion
build/bench/nn_bench configs/fmnist-small.json --batch 64 --iters 40 --threads 2 --ab-fusion
build/bench/nn_bench configs/gpunet/gpunet-0.json --res 224 --batch 16 --iters 6 --threads 2 --ab-fusion
echo "# end $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)"
