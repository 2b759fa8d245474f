/*
 * lat_reference.c — the reference network every latency measurement can be paired
 * with (gn_lat_measure_paired; the reasons are in gpunas/latency.h, "Reference").
 *
 * One fixed network, compiled in so every gpunas build on every machine times the
 * same thing: a 28x28x1 Fashion-MNIST-sized GPUNet (conv head, one conv, one
 * Fused-IRB, two IRBs with SE and swish in one of them, the tail): 2.87 MMACs,
 * 61k parameters — every module kind the search spaces use, small enough to cost
 * little next to a candidate (0.1 ms at 1 thread on the development VM).  The same
 * text is bench/nets/fmnist-tiny.json.
 */
#include "gpunas/latency.h"

static const char reference_json[] =
    "[{\"layer_type\": \"data\", \"img_resolution\": 28, \"distill\": false},\n"
    " {\"layer_type\": \"head\", \"num_in_channels\": 1, \"num_out_channels\": 24, \"act\": \"relu\"},\n"
    " {\"layer_type\": \"conv\", \"num_in_channels\": 24, \"num_out_channels\": 24, \"stride\": 1,\n"
    "  \"kernel_size\": 3, \"act\": \"relu\", \"stage\": 1},\n"
    " {\"layer_type\": \"fused_irb\", \"num_in_channels\": 24, \"num_out_channels\": 32, \"stride\": 2,\n"
    "  \"expansion\": 2, \"kernel_size\": 3, \"act\": \"relu\", \"use_se\": false, \"stage\": 2},\n"
    " {\"layer_type\": \"irb\", \"num_in_channels\": 32, \"num_out_channels\": 48, \"stride\": 1,\n"
    "  \"expansion\": 3, \"kernel_size\": 3, \"act\": \"swish\", \"use_se\": true, \"stage\": 4},\n"
    " {\"layer_type\": \"irb\", \"num_in_channels\": 48, \"num_out_channels\": 64, \"stride\": 1,\n"
    "  \"expansion\": 3, \"kernel_size\": 3, \"act\": \"relu\", \"use_se\": false, \"stage\": 5},\n"
    " {\"layer_type\": \"tail\", \"num_in_channels\": 64, \"num_out_channels\": 192, \"num_classes\": 10}]\n";

int gn_lat_reference_arch(gn_arch **out, gn_error *err)
{
    return gn_arch_parse(reference_json, "(reference network)", out, err);
}
