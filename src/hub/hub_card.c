/*
 * hub_card.c — a hub model's card (README.md in its folder): what it is, how well it
 * does on which data, how fast on what, how it was trained, where it came from, and
 * how to use the files.  Everything is read from the model's record (model.json,
 * written by hub_build.c) and its arch, so a card never says what the record does not.
 */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub/hub_internal.h"

typedef struct {
    char *s;
    size_t n, cap;
    int oom;
} sbuf;

static void put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = 1;
            return;
        }
        if (b->s && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        size_t nc = (b->cap ? b->cap : 4096) * 2 + (size_t)k;
        char *ns = realloc(b->s, nc);
        if (!ns) {
            b->oom = 1;
            return;
        }
        b->s = ns;
        b->cap = nc;
    }
}

static double num(json_t *r, const char *path)
{
    json_t *x = gn__hub_json_path(r, path);
    return x && json_is_number(x) ? json_number_value(x) : NAN;
}

static const char *str(json_t *r, const char *path)
{
    json_t *x = gn__hub_json_path(r, path);
    return x && json_is_string(x) ? json_string_value(x) : "?";
}

static void arch_table(sbuf *b, const gn_arch *a)
{
    put(b, "| # | layer | stage | input | output | k | s | e | act | SE | residual | params | MACs |\n");
    put(b, "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (int i = 1; i < a->n_layers; i++) {
        const gn_layer *L = &a->layers[i];
        char e[32] = "";
        if (L->expansion > 0)
            snprintf(e, sizeof e, "%g", L->expansion);
        char k[16] = "", s[16] = "", st[16] = "";
        if (L->stage_set)
            snprintf(st, sizeof st, "%d", L->stage);
        if (L->kernel > 0)
            snprintf(k, sizeof k, "%d", L->kernel);
        if (L->stride > 0)
            snprintf(s, sizeof s, "%d", L->stride);
        put(b, "| %d | %s | %s | %dx%dx%d | %dx%dx%d | %s | %s | %s | %s | %s | %s | %lld | %lld |\n", i,
            gn_layer_type_name(L->type), st, L->in_c, L->in_h, L->in_w, L->out_c,
            L->out_h, L->out_w, k, s, e, gn_act_name(L->act), L->se_ch > 0 ? "yes" : "", L->residual ? "yes" : "",
            (long long)L->params, (long long)L->macs);
    }
}

char *gn__hub_card_markdown(json_t *r, const gn_arch *a, gn_error *err)
{
    sbuf b = {0};
    const char *name = str(r, "name");
    put(&b, "# %s\n\n", name);
    put(&b,
        "A GPUNet-style network found by `gpunas search` in latency tier %d (<= %.4g ms) and trained "
        "in full by `gpunas hub build`: **%.2f%% test top-1** on %s at **%.4f ms** batch-1 latency on "
        "%s.\n\n",
        (int)num(r, "search.tier"), num(r, "search.tier_max_ms"), 100 * num(r, "accuracy.test_top1"),
        str(r, "task.dataset"), num(r, "latency.median_ms"), str(r, "latency.device"));

    put(&b, "## Files\n\n");
    put(&b, "| file | what |\n|---|---|\n");
    put(&b, "| `config.json` | GPUNet JSON config (%d-channel %dx%d input, %d classes) |\n", (int)num(r, "task.in_channels"),
        (int)num(r, "task.resolution"), (int)num(r, "task.resolution"), (int)num(r, "task.classes"));
    put(&b, "| `model.safetensors` | NVIDIA's GPUNet state dict: float32 weights, BN running statistics and "
            "`num_batches_tracked`, keyed exactly as NVIDIA's PyTorch builder names them (its "
            "`model.load_state_dict(safetensors.torch.load_file(...))` takes it as is) |\n");
    put(&b, "| `model.onnx` | ONNX opset %d, input `input` [1,%d,%d,%d] float32, output `logits` [1,%d]; BatchNorm "
            "folded into the convolutions |\n",
        (int)num(r, "export.onnx_opset"), (int)num(r, "task.in_channels"), (int)num(r, "task.resolution"),
        (int)num(r, "task.resolution"), (int)num(r, "task.classes"));
    put(&b, "| `model.json` | this card's numbers, machine-readable (the hub's `hub.json` lists them) |\n\n");
    put(&b, "Use:\n\n    gpunas predict config.json --weights model.safetensors IMAGE.png\n"
            "    gpunas latency config.json --threads %d\n\n",
        (int)num(r, "latency.threads"));
    put(&b, "Inputs are %dx%d pixels scaled to [0, 1] and normalised with the data set's mean and standard "
            "deviation (%s), exactly as `gpunas eval` does.\n\n",
        (int)num(r, "task.resolution"), (int)num(r, "task.resolution"), str(r, "task.normalisation"));

    put(&b, "## Accuracy\n\n");
    put(&b, "| split | images | top-1 | top-5 |\n|---|---|---|---|\n");
    put(&b, "| %s test | %d | %.2f%% | %.2f%% |\n", str(r, "task.dataset"), (int)num(r, "accuracy.test_images"),
        100 * num(r, "accuracy.test_top1"), 100 * num(r, "accuracy.test_top5"));
    if (num(r, "accuracy.val_top1") >= 0)
        put(&b, "| validation (held-out training images, split seed %d) | %d | %.2f%% | |\n",
            (int)num(r, "accuracy.val_split_seed"), (int)num(r, "accuracy.val_images"),
            100 * num(r, "accuracy.val_top1"));
    put(&b, "| search proxy (1 short training, validation split) | | %.2f%% | |\n\n",
        100 * num(r, "accuracy.proxy_val_top1"));

    put(&b, "## Latency\n\n");
    put(&b, "Batch 1, FP32, %s: **median %.4f ms**, p10 %.4f ms, p90 %.4f ms (spread p90/p10 %.2fx), %d timed "
            "runs.\n\n",
        str(r, "latency.runtime"), num(r, "latency.median_ms"), num(r, "latency.p10_ms"), num(r, "latency.p90_ms"),
        num(r, "latency.p90_ms") / num(r, "latency.p10_ms"), (int)num(r, "latency.runs"));
    put(&b, "- Device: %s (%s); %d intra-op thread(s), %d pinned one per CPU.\n", str(r, "latency.device"),
        str(r, "latency.cpu_model"), (int)num(r, "latency.threads"), (int)num(r, "latency.pinned"));
    put(&b, "- Method: %s. The model was timed interleaved with gpunas's built-in reference network; the "
            "latency is the median ratio to the reference (%.3f, per-round range %.3f-%.3f) times the "
            "reference's baseline of the search (%.4f ms), the frame the search's tiers are in. The raw "
            "median of this measurement was %.4f ms (the reference's own median then: %.4f ms).\n",
        str(r, "latency.method"), num(r, "latency.ratio"), num(r, "latency.ratio_lo"), num(r, "latency.ratio_hi"),
        num(r, "latency.reference_baseline_ms"), num(r, "latency.raw_median_ms"), num(r, "latency.reference_ms"));
    put(&b, "- Measured %s.\n", str(r, "latency.measured_at"));
    json_t *bs = json_object_get(r, "latency_batches");
    if (bs && json_array_size(bs) > 0) {
        put(&b, "\nOther batch sizes (raw medians of this machine at that moment, same threads):\n\n");
        put(&b, "| batch | median ms | p10 ms | p90 ms | ms per image |\n|---|---|---|---|---|\n");
        size_t i;
        json_t *o;
        json_array_foreach(bs, i, o)
        {
            double bt = num(o, "batch"), md = num(o, "median_ms");
            put(&b, "| %d | %.4f | %.4f | %.4f | %.4f |\n", (int)bt, md, num(o, "p10_ms"), num(o, "p90_ms"), md / bt);
        }
    }
    put(&b, "\n");

    put(&b, "## Architecture\n\n");
    put(&b, "%lld parameters, %lld MACs at %dx%d (%d JSON layers).\n\n", (long long)num(r, "arch.params"),
        (long long)num(r, "arch.macs"), (int)num(r, "task.resolution"), (int)num(r, "task.resolution"),
        a->n_layers - 1);
    arch_table(&b, a);
    put(&b, "\n");

    put(&b, "## Training\n\n");
    put(&b, "%d epochs on %d training images (the rest of the training split held out for validation), "
            "%.0f s on this machine. Recipe: `%s`.",
        (int)num(r, "training.epochs"), (int)num(r, "training.train_images"), num(r, "training.seconds"),
        str(r, "training.summary"));
    json_t *teacher = gn__hub_json_path(r, "training.teacher");
    if (teacher && json_is_string(teacher))
        put(&b, " Distilled from the teacher `%s` (loss: cross-entropy + KL to the teacher's softmax).",
            json_string_value(teacher));
    put(&b, "\n\n");

    put(&b, "## Where it came from\n\n");
    put(&b, "Search store `%s`, trial %d (rank %d of its tier by the search's proxy score), proposed by the `%s` "
            "optimizer; tier %d holds latencies in (%.4g, %.4g] ms. Encoding `%s`.\n",
        str(r, "search.store"), (int)num(r, "search.trial_id"), (int)num(r, "search.rank"), str(r, "search.optimizer"),
        (int)num(r, "search.tier"), num(r, "search.tier_min_ms"), num(r, "search.tier_max_ms"),
        str(r, "search.encoding"));
    put(&b, "Built %s by gpunas %s.\n", str(r, "created_at"), str(r, "gpunas_version"));
    if (b.oom) {
        free(b.s);
        gn_error_set(err, "model card: out of memory");
        return NULL;
    }
    return b.s;
}
