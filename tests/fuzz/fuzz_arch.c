/*
 * fuzz_arch.c — GPUNet config JSON (gn_arch_parse, gpunas/arch.h).
 *
 * Feeds: the input as the text of a config (NUL-terminated copy; inputs over 64 KiB
 * are skipped, as no config is near that and big inputs only slow the fuzzer).
 * Asserts:
 *   - failure: *out is NULL and the error is one non-empty line;
 *   - success: the resolved arch is consistent — data first, head second, tail last,
 *     each layer's input shape is the previous layer's output shape, shapes and
 *     widths positive, the tail ends at num_classes x 1 x 1, per-layer params / MACs
 *     are >= 0 and sum to the totals;
 *   - round trip: gn_arch_to_json re-parses to the same arch (every field as written
 *     and every derived field) and serialises to the same text again;
 *   - every layer has a module name and a latency-table key (gn_lat_key);
 *   - a failing override (gn_arch_set_resolution) leaves the arch as it was.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "gpunas/arch.h"
#include "gpunas/latprofile.h"

static void check_resolved(const gn_arch *a)
{
    FZ_CHECK(a->n_layers >= 3, "%d layers", a->n_layers);
    FZ_CHECK(a->resolution >= 1, "resolution %d", a->resolution);
    FZ_CHECK(a->layers[0].type == GN_LAYER_DATA, "layer 0 is %d", a->layers[0].type);
    FZ_CHECK(a->layers[1].type == GN_LAYER_HEAD || a->layers[1].type == GN_LAYER_HEAD_LARGE, "layer 1 is %d",
             a->layers[1].type);
    const gn_layer *T = &a->layers[a->n_layers - 1];
    FZ_CHECK(T->type == GN_LAYER_TAIL, "last layer is %d", T->type);
    FZ_CHECK(T->out_c == T->num_classes && T->out_h == 1 && T->out_w == 1, "tail output %dx%dx%d, classes %d",
             T->out_c, T->out_h, T->out_w, T->num_classes);
    int64_t params = 0, macs = 0;
    for (int i = 1; i < a->n_layers; i++) {
        const gn_layer *L = &a->layers[i], *P = &a->layers[i - 1];
        if (i == 1)
            FZ_CHECK(L->in_c == L->in_ch && L->in_h == a->resolution && L->in_w == a->resolution,
                     "layer 1 input %dx%dx%d", L->in_c, L->in_h, L->in_w);
        else
            FZ_CHECK(L->in_c == P->out_c && L->in_h == P->out_h && L->in_w == P->out_w,
                     "layer %d input %dx%dx%d, previous output %dx%dx%d", i, L->in_c, L->in_h, L->in_w, P->out_c,
                     P->out_h, P->out_w);
        FZ_CHECK(L->out_c >= 1 && L->out_h >= 1 && L->out_w >= 1, "layer %d output %dx%dx%d", i, L->out_c,
                 L->out_h, L->out_w);
        FZ_CHECK(L->params >= 0 && L->macs >= 0, "layer %d params %lld macs %lld", i, (long long)L->params,
                 (long long)L->macs);
        if (L->type == GN_LAYER_IRB || L->type == GN_LAYER_FUSED_IRB)
            FZ_CHECK(L->mid_ch >= 1, "layer %d hidden width %d", i, L->mid_ch);
        FZ_CHECK(!L->use_se || L->se_ch >= 1, "layer %d SE width %d", i, L->se_ch);
        params += L->params;
        macs += L->macs;
    }
    FZ_CHECK(params == a->params && macs == a->macs, "sums %lld/%lld, totals %lld/%lld", (long long)params,
             (long long)macs, (long long)a->params, (long long)a->macs);
}

static void check_same(const gn_arch *a, const gn_arch *b)
{
    FZ_CHECK(a->n_layers == b->n_layers && a->resolution == b->resolution && a->distill == b->distill,
             "round trip: %d/%d layers, resolution %d/%d", a->n_layers, b->n_layers, a->resolution, b->resolution);
    FZ_CHECK(a->params == b->params && a->macs == b->macs, "round trip: params/MACs differ");
    for (int i = 0; i < a->n_layers; i++) {
        const gn_layer *x = &a->layers[i], *y = &b->layers[i];
        FZ_CHECK(x->type == y->type && x->in_ch == y->in_ch && x->out_ch == y->out_ch && x->stride == y->stride &&
                     x->kernel == y->kernel && x->expansion == y->expansion &&
                     x->expansion_is_int == y->expansion_is_int && x->act == y->act && x->act_set == y->act_set &&
                     x->use_se == y->use_se && x->use_se_set == y->use_se_set && x->stage == y->stage &&
                     x->stage_set == y->stage_set && x->groups == y->groups && x->groups_set == y->groups_set &&
                     x->num_classes == y->num_classes,
                 "round trip: layer %d fields differ", i);
        FZ_CHECK(x->mid_ch == y->mid_ch && x->se_ch == y->se_ch && x->pad == y->pad && x->residual == y->residual &&
                     x->out_c == y->out_c && x->out_h == y->out_h && x->out_w == y->out_w &&
                     x->params == y->params && x->macs == y->macs,
                 "round trip: layer %d derived values differ", i);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (64u << 10))
        return 0;
    char *text = fz_text(data, size);
    gn_arch *a = (gn_arch *)1;
    gn_error err = {{0}};
    if (gn_arch_parse(text, "fuzz.json", &a, &err) != 0) {
        FZ_CHECK(a == NULL, "failed parse left an arch");
        fz_check_error(&err);
        free(text);
        return 0;
    }
    free(text);
    check_resolved(a);

    char *j1 = gn_arch_to_json(a, &err);
    FZ_CHECK(j1 != NULL, "gn_arch_to_json: %s", err.msg);
    gn_arch *b = NULL;
    FZ_CHECK(gn_arch_parse(j1, "roundtrip.json", &b, &err) == 0, "re-parse of the writer's output: %s\n%s", err.msg,
             j1);
    check_same(a, b);
    char *j2 = gn_arch_to_json(b, &err);
    FZ_CHECK(j2 != NULL && strcmp(j1, j2) == 0, "second serialisation differs");
    free(j1);
    free(j2);
    gn_arch_free(b);

    for (int i = 1; i < a->n_layers; i++) {
        char name[256], key[GN_LAT_KEY_MAX];
        FZ_CHECK(gn_arch_module_name(a, i, name, sizeof name) == 0, "layer %d has no module name", i);
        if (gn_lat_key(a, i, 1, key, sizeof key, &err) != 0)
            fz_check_error(&err);
    }

    /* an override that fails leaves the arch as it was */
    int64_t params = a->params, macs = a->macs;
    int res = a->resolution;
    int try_res = res > 1 ? res / 2 : 2;
    if (gn_arch_set_resolution(a, try_res, &err) != 0) {
        fz_check_error(&err);
        FZ_CHECK(a->resolution == res && a->params == params && a->macs == macs, "failed override changed the arch");
    } else {
        check_resolved(a);
    }
    gn_arch_free(a);
    return 0;
}
