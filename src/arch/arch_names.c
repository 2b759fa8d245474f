/*
 * arch_names.c — the module name NVIDIA's builder gives each JSON layer, so that
 * gpunas's tensor names are NVIDIA's state-dict keys (docs: README "Weights").
 *
 * NVIDIA DeepLearningExamples, PyTorch/Classification/GPUNet/models/gpunet_builder.py
 * adds every layer to `GPUNet.network = nn.Sequential()` with add_module(name, ...):
 *
 *   standard family (_get_model): a counter is incremented for every JSON entry
 *   (the data entry included) BEFORE the name is made, so entry I is counted I+1:
 *     head                 "head: {I+1}"
 *     conv/irb/fused_irb   "stage: {stage} layer{I+1}"
 *     tail                 " layer{I+1}"        (a leading space, as released)
 *   distill family (_get_distill_model), the same counter:
 *     head, head_large     "head:"
 *     irb                  "stage: {stage} irb{I+1}"
 *     fused_irb            "stage: {stage} fused_irb{I+1}"
 *     tail                 "tail:"
 *
 * The state-dict key prefix is then "network." + name + ".".  NVIDIA's builder
 * reads layerConfig["stage"] unconditionally; gpunas also builds layers without a
 * "stage" key and names them with Python's str(None), "stage: None layer{I+1}",
 * so the rule stays total.  The distill family has exactly one head and one tail
 * (gn_arch_parse enforces it), so its constant names never collide.
 */
#include <stdio.h>

#include "gpunas/arch.h"

int gn_arch_module_name(const gn_arch *a, int i, char *buf, size_t cap)
{
    if (i <= 0 || i >= a->n_layers)
        return -1;
    const gn_layer *L = &a->layers[i];
    char stage[16];
    if (L->stage_set)
        snprintf(stage, sizeof stage, "%d", L->stage);
    else
        snprintf(stage, sizeof stage, "None");
    int n;
    switch (L->type) {
    case GN_LAYER_HEAD:
    case GN_LAYER_HEAD_LARGE:
        n = a->distill ? snprintf(buf, cap, "network.head:") : snprintf(buf, cap, "network.head: %d", i + 1);
        break;
    case GN_LAYER_TAIL:
        n = a->distill ? snprintf(buf, cap, "network.tail:") : snprintf(buf, cap, "network. layer%d", i + 1);
        break;
    case GN_LAYER_CONV:
        n = snprintf(buf, cap, "network.stage: %s layer%d", stage, i + 1);
        break;
    case GN_LAYER_IRB:
        n = snprintf(buf, cap, "network.stage: %s %s%d", stage, a->distill ? "irb" : "layer", i + 1);
        break;
    case GN_LAYER_FUSED_IRB:
        n = snprintf(buf, cap, "network.stage: %s %s%d", stage, a->distill ? "fused_irb" : "layer", i + 1);
        break;
    default:
        return -1;
    }
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}
