/*
 * builtin_spaces.c — the JSON text of spaces/gpunet.json and spaces/fmnist.json,
 * embedded so that `gpunas` has its built-in spaces from any directory.
 *
 * Generated from the files (keep them the user-facing copies): each line L of a file
 * becomes the C string "L\n" with backslashes and double quotes escaped.
 * tests/test_space.c checks that this text equals the files byte for byte, so an edit
 * of a spaces/ file that is not carried over here fails the tests.
 */
#include <string.h>

#include "gpunas/space.h"

static const char gpunet_json[] =
    "{\n"
    "  \"name\": \"gpunet\",\n"
    "  \"note\": \"GPUNet search space, paper Table 1 (docs/gpunet.md 1.1). Stage 0 is the GPUNet prologue, a fixed 3x3 stride-2 conv in the released format, so its kernel is 3 only (Table 1 lists [3, 5]). Only the first layer of stages 2, 3, 4 and 6 has stride 2. Expansion [2, 6] is taken as the integers 2..6. Stages 5 and 7 may have 0 layers.\",\n"
    "  \"in_channels\": 3,\n"
    "  \"classes\": 1000,\n"
    "  \"resolutions\": {\"min\": 224, \"max\": 512, \"step\": 32},\n"
    "  \"stages\": [\n"
    "    {\"stage\": 0, \"type\": \"head\", \"stride\": 2, \"kernel\": [3], \"layers\": [1],\n"
    "     \"act\": [\"relu\", \"swish\"], \"filters\": {\"min\": 24, \"max\": 32, \"step\": 8}},\n"
    "    {\"stage\": 1, \"type\": \"conv\", \"stride\": 1, \"kernel\": [3, 5], \"layers\": {\"min\": 1, \"max\": 4},\n"
    "     \"act\": [\"relu\", \"swish\"], \"filters\": {\"min\": 24, \"max\": 32, \"step\": 8}},\n"
    "    {\"stage\": 2, \"type\": \"fused_irb\", \"stride\": 2, \"stride_first_only\": true, \"kernel\": [3, 5],\n"
    "     \"layers\": {\"min\": 1, \"max\": 8}, \"act\": [\"relu\", \"swish\"], \"expansion\": {\"min\": 2, \"max\": 6},\n"
    "     \"filters\": {\"min\": 32, \"max\": 80, \"step\": 16}, \"se\": [false, true]},\n"
    "    {\"stage\": 3, \"type\": \"fused_irb\", \"stride\": 2, \"stride_first_only\": true, \"kernel\": [3, 5],\n"
    "     \"layers\": {\"min\": 1, \"max\": 8}, \"act\": [\"relu\", \"swish\"], \"expansion\": {\"min\": 2, \"max\": 6},\n"
    "     \"filters\": {\"min\": 48, \"max\": 112, \"step\": 16}, \"se\": [false, true]},\n"
    "    {\"stage\": 4, \"type\": \"irb\", \"stride\": 2, \"stride_first_only\": true, \"kernel\": [3, 5],\n"
    "     \"layers\": {\"min\": 1, \"max\": 10}, \"act\": [\"relu\", \"swish\"], \"expansion\": {\"min\": 2, \"max\": 6},\n"
    "     \"filters\": {\"min\": 96, \"max\": 192, \"step\": 16}, \"se\": [false, true]},\n"
    "    {\"stage\": 5, \"type\": \"irb\", \"stride\": 1, \"kernel\": [3, 5],\n"
    "     \"layers\": {\"min\": 0, \"max\": 15}, \"act\": [\"relu\", \"swish\"], \"expansion\": {\"min\": 2, \"max\": 6},\n"
    "     \"filters\": {\"min\": 112, \"max\": 224, \"step\": 16}, \"se\": [false, true]},\n"
    "    {\"stage\": 6, \"type\": \"irb\", \"stride\": 2, \"stride_first_only\": true, \"kernel\": [3, 5],\n"
    "     \"layers\": {\"min\": 1, \"max\": 15}, \"act\": [\"relu\", \"swish\"], \"expansion\": {\"min\": 2, \"max\": 6},\n"
    "     \"filters\": {\"min\": 128, \"max\": 416, \"step\": 32}, \"se\": [false, true]},\n"
    "    {\"stage\": 7, \"type\": \"irb\", \"stride\": 1, \"kernel\": [3, 5],\n"
    "     \"layers\": {\"min\": 0, \"max\": 15}, \"act\": [\"relu\", \"swish\"], \"expansion\": {\"min\": 2, \"max\": 6},\n"
    "     \"filters\": {\"min\": 256, \"max\": 832, \"step\": 64}, \"se\": [false, true]}\n"
    "  ],\n"
    "  \"tail\": {\"filters\": [1792], \"note\": \"stage 8: conv1x1 to 1792, pooling, FC\"}\n"
    "}\n";

static const char fmnist_json[] =
    "{\n"
    "  \"name\": \"fmnist\",\n"
    "  \"note\": \"Default space for Fashion-MNIST-sized inputs (1 channel, 10 classes): the GPUNet layout scaled down (three stride-2 steps: 32 -> 16 -> 7 -> 4 at resolution 32, as configs/fmnist-small.json, which is a member). Stages 1, 3 and 5 may have 0 layers.\",\n"
    "  \"in_channels\": 1,\n"
    "  \"classes\": 10,\n"
    "  \"resolutions\": [28, 32],\n"
    "  \"stages\": [\n"
    "    {\"stage\": 0, \"type\": \"head\", \"act\": [\"relu\", \"swish\"], \"filters\": {\"min\": 16, \"max\": 32, \"step\": 8}},\n"
    "    {\"stage\": 1, \"type\": \"conv\", \"stride\": 1, \"kernel\": [3, 5], \"layers\": {\"min\": 0, \"max\": 2},\n"
    "     \"act\": [\"relu\", \"swish\"], \"filters\": {\"min\": 16, \"max\": 32, \"step\": 8}},\n"
    "    {\"stage\": 2, \"type\": \"fused_irb\", \"stride\": 2, \"kernel\": [3, 5], \"layers\": {\"min\": 1, \"max\": 3},\n"
    "     \"act\": [\"relu\", \"swish\"], \"expansion\": [2, 3, 4, 6], \"filters\": {\"min\": 24, \"max\": 48, \"step\": 8},\n"
    "     \"se\": [false, true]},\n"
    "    {\"stage\": 3, \"type\": \"fused_irb\", \"stride\": 1, \"kernel\": [3, 5], \"layers\": {\"min\": 0, \"max\": 2},\n"
    "     \"act\": [\"relu\", \"swish\"], \"expansion\": [2, 3, 4, 6], \"filters\": {\"min\": 32, \"max\": 64, \"step\": 16},\n"
    "     \"se\": [false, true]},\n"
    "    {\"stage\": 4, \"type\": \"irb\", \"stride\": 2, \"kernel\": [3, 5], \"layers\": {\"min\": 1, \"max\": 3},\n"
    "     \"act\": [\"relu\", \"swish\"], \"expansion\": [2, 3, 4, 6], \"filters\": {\"min\": 48, \"max\": 96, \"step\": 16},\n"
    "     \"se\": [false, true]},\n"
    "    {\"stage\": 5, \"type\": \"irb\", \"stride\": 1, \"kernel\": [3, 5], \"layers\": {\"min\": 0, \"max\": 3},\n"
    "     \"act\": [\"relu\", \"swish\"], \"expansion\": [2, 3, 4, 6], \"filters\": {\"min\": 64, \"max\": 128, \"step\": 32},\n"
    "     \"se\": [false, true]}\n"
    "  ],\n"
    "  \"tail\": {\"filters\": [256]}\n"
    "}\n";

const char *gn_space_builtin_text(const char *name)
{
    if (!name)
        return NULL;
    if (strcmp(name, "gpunet") == 0)
        return gpunet_json;
    if (strcmp(name, "fmnist") == 0)
        return fmnist_json;
    return NULL;
}
