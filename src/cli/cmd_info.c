/*
 * cmd_info.c — `gpunas info CONFIG.json [--res R] [--classes N] [--in-ch C]
 *                [--same-pad] [--space NAME|FILE] [--json]` and `gpunas format CONFIG.json [-o OUT]`.
 *
 * info prints one row per JSON layer (type, stage, input/output shape, kernel, stride,
 * expansion, hidden width, activation, SE width, residual, params, MACs) and totals;
 * --json prints the same as one JSON object for machines.  --space also says whether
 * the config is a member of a search space (gn_space_encode_arch: its encoding, or the
 * first layer and field that do not fit); either answer exits 0.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "gpunas/arch.h"
#include "gpunas/space.h"

static const char *thousands(long long v, char *buf, size_t n)
{
    char raw[32];
    snprintf(raw, sizeof raw, "%lld", v < 0 ? -v : v);
    size_t len = strlen(raw), o = 0;
    if (v < 0 && o + 1 < n)
        buf[o++] = '-';
    for (size_t i = 0; i < len && o + 2 < n; i++) {
        if (i && (len - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = raw[i];
    }
    buf[o] = 0;
    return buf;
}

static void print_table(const gn_arch *a)
{
    printf("%s: GPUNet %s family, input %dx%dx%d, %d layers%s\n", a->source, a->distill ? "distill" : "standard",
           a->layers[1].in_ch, a->resolution, a->resolution, a->n_layers,
           a->same_pad_fix ? " (stride-2 fused_irb with same padding)" : "");
    printf("%3s %-10s %5s %-15s %-15s %2s %2s %6s %5s %-5s %4s %3s %12s %15s\n", "#", "type", "stage", "input",
           "output", "k", "s", "exp", "mid", "act", "se", "res", "params", "MACs");
    for (int i = 1; i < a->n_layers; i++) {
        const gn_layer *L = &a->layers[i];
        char in[32], out[32], exp[16] = "-", mid[16] = "-", se[16] = "-", stage[16] = "-", p[32], m[32];
        snprintf(in, sizeof in, "%dx%dx%d", L->in_c, L->in_h, L->in_w);
        snprintf(out, sizeof out, "%dx%dx%d", L->out_c, L->out_h, L->out_w);
        if (L->type == GN_LAYER_IRB || L->type == GN_LAYER_FUSED_IRB) {
            snprintf(exp, sizeof exp, "%g", L->expansion);
            snprintf(mid, sizeof mid, "%d", L->mid_ch);
        } else if (L->tail_mid) {
            snprintf(mid, sizeof mid, "%d", L->tail_mid);
        }
        if (L->se_ch)
            snprintf(se, sizeof se, "%d", L->se_ch);
        if (L->stage_set)
            snprintf(stage, sizeof stage, "%d", L->stage);
        printf("%3d %-10s %5s %-15s %-15s %2d %2d %6s %5s %-5s %4s %3s %12s %15s\n", i,
               gn_layer_type_name(L->type), stage, in, out, L->kernel, L->stride, exp, mid, gn_act_name(L->act), se,
               L->residual ? "yes" : "-", thousands(L->params, p, sizeof p), thousands(L->macs, m, sizeof m));
    }
    char p[32], m[32];
    printf("total: %s params, %s MACs (%.3f GMACs) at %dx%d\n", thousands(a->params, p, sizeof p),
           thousands(a->macs, m, sizeof m), a->macs / 1e9, a->resolution, a->resolution);
}

/* Membership of a in a space: *member, and the encoding text or the reason (malloc'd). */
typedef struct {
    char name[128];   /* the space's name */
    bool member;
    char *text;       /* encoding ("1,0,2,...") or the reason it does not fit */
} space_fit;

static int check_space(const char *arg, const gn_arch *a, space_fit *f)
{
    gn_error err;
    gn_space *s = NULL;
    memset(f, 0, sizeof *f);
    int rc = gn_space_builtin_text(arg) ? gn_space_builtin(arg, &s, &err) : gn_space_load(arg, &s, &err);
    if (rc) {
        cli_error("info", "%s", err.msg);
        return -1;
    }
    int x[GN_ENC_MAX_DIMS];
    f->member = gn_space_encode_arch(s, a, x, &err) == 0;
    f->text = f->member ? gn_space_encode_to_string(s, x) : strdup(err.msg);
    snprintf(f->name, sizeof f->name, "%s", gn_space_name(s));
    gn_space_free(s);
    return f->text ? 0 : -1;
}

static int print_json(const gn_arch *a, const space_fit *sf)
{
    json_t *root = json_object(), *layers = json_array();
    json_object_set_new(root, "source", json_string(a->source));
    json_object_set_new(root, "distill", json_boolean(a->distill));
    json_object_set_new(root, "resolution", json_integer(a->resolution));
    json_object_set_new(root, "in_channels", json_integer(a->layers[1].in_ch));
    json_object_set_new(root, "num_classes", json_integer(a->layers[a->n_layers - 1].num_classes));
    json_object_set_new(root, "same_pad_fix", json_boolean(a->same_pad_fix));
    json_object_set_new(root, "params", json_integer(a->params));
    json_object_set_new(root, "macs", json_integer(a->macs));
    for (int i = 1; i < a->n_layers; i++) {
        const gn_layer *L = &a->layers[i];
        json_t *o = json_object();
        json_object_set_new(o, "index", json_integer(i));
        json_object_set_new(o, "layer_type", json_string(gn_layer_type_name(L->type)));
        if (L->stage_set)
            json_object_set_new(o, "stage", json_integer(L->stage));
        json_object_set_new(o, "input", json_pack("[iii]", L->in_c, L->in_h, L->in_w));
        json_object_set_new(o, "output", json_pack("[iii]", L->out_c, L->out_h, L->out_w));
        json_object_set_new(o, "kernel_size", json_integer(L->kernel));
        json_object_set_new(o, "stride", json_integer(L->stride));
        json_object_set_new(o, "padding", json_integer(L->pad));
        if (L->type == GN_LAYER_IRB || L->type == GN_LAYER_FUSED_IRB) {
            json_object_set_new(o, "expansion", json_real(L->expansion));
            json_object_set_new(o, "mid_channels", json_integer(L->mid_ch));
        }
        if (L->tail_mid)
            json_object_set_new(o, "mid_channels", json_integer(L->tail_mid));
        json_object_set_new(o, "act", json_string(gn_act_name(L->act)));
        json_object_set_new(o, "se_channels", json_integer(L->se_ch));
        json_object_set_new(o, "residual", json_boolean(L->residual));
        json_object_set_new(o, "bn_eps", json_real(L->bn_eps));
        json_object_set_new(o, "drop_path", json_real(L->drop_path));
        json_object_set_new(o, "params", json_integer(L->params));
        json_object_set_new(o, "macs", json_integer(L->macs));
        json_array_append_new(layers, o);
    }
    json_object_set_new(root, "layers", layers);
    if (sf)
        json_object_set_new(root, "space",
                            json_pack("{s:s, s:b, s:s?, s:s?}", "name", sf->name, "member", sf->member, "encoding",
                                      sf->member ? sf->text : NULL, "reason", sf->member ? NULL : sf->text));
    return cli_puts_json(root, 10);
}

/* Options shared by info and format. */
typedef struct {
    const char *config, *out, *space;
    int res, classes, in_ch;
    bool json, same_pad;
} opts;

static int parse_opts(const char *cmd, int argc, char **argv, opts *o, bool allow_out)
{
    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--res") == 0) {
            if (cli_parse_int(cmd, a, i + 1 < argc ? argv[++i] : NULL, 1, 16384, &o->res))
                return -1;
        } else if (strcmp(a, "--classes") == 0) {
            if (cli_parse_int(cmd, a, i + 1 < argc ? argv[++i] : NULL, 1, 1000000, &o->classes))
                return -1;
        } else if (strcmp(a, "--in-ch") == 0) {
            if (cli_parse_int(cmd, a, i + 1 < argc ? argv[++i] : NULL, 1, 65536, &o->in_ch))
                return -1;
        } else if (strcmp(a, "--same-pad") == 0) {
            o->same_pad = true;
        } else if (strcmp(a, "--json") == 0 && !allow_out) {
            o->json = true;
        } else if (strcmp(a, "--space") == 0 && !allow_out) {
            if (i + 1 >= argc) {
                cli_error(cmd, "option %s: missing value", a);
                return -1;
            }
            o->space = argv[++i];
        } else if ((strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) && allow_out) {
            if (i + 1 >= argc) {
                cli_error(cmd, "option %s: missing value", a);
                return -1;
            }
            o->out = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            cli_error(cmd, "unknown option '%s'", a);
            return -1;
        } else if (!o->config) {
            o->config = a;
        } else {
            cli_error(cmd, "unexpected argument '%s'", a);
            return -1;
        }
    }
    if (!o->config) {
        cli_error(cmd, "missing CONFIG.json argument");
        return -1;
    }
    return 0;
}

static gn_arch *load_with_opts(const char *cmd, const opts *o)
{
    gn_error err;
    gn_arch *a;
    if (gn_arch_load(o->config, &a, &err)) {
        cli_error(cmd, "%s", err.msg);
        return NULL;
    }
    a->same_pad_fix = o->same_pad;
    if ((o->in_ch && gn_arch_set_in_channels(a, o->in_ch, &err)) ||
        (o->classes && gn_arch_set_classes(a, o->classes, &err)) || (o->res && gn_arch_set_resolution(a, o->res, &err)) ||
        gn_arch_resolve(a, &err)) {
        cli_error(cmd, "%s", err.msg);
        gn_arch_free(a);
        return NULL;
    }
    return a;
}

static const char *info_usage =
    "usage: gpunas info CONFIG.json [--res R] [--classes N] [--in-ch C] [--same-pad]\n"
    "                   [--space NAME|FILE] [--json]\n"
    "  --res R       input resolution (default: the data layer's img_resolution)\n"
    "  --classes N   classifier width (default: the tail's num_classes)\n"
    "  --in-ch C     input channels (default: the head's num_in_channels)\n"
    "  --same-pad    stride-2 fused_irb convs use (k-1)/2 padding, not the released 0\n"
    "  --space S     also say whether the config is a member of search space S (fmnist,\n"
    "                gpunet or a space file): its encoding, or the first layer and field\n"
    "                that do not fit (exit 0 either way)\n"
    "  --json        machine-readable output\n";

int cmd_info(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(info_usage, stdout);
        return 0;
    }
    opts o;
    if (parse_opts("info", argc, argv, &o, false))
        return 2;
    gn_arch *a = load_with_opts("info", &o);
    if (!a)
        return 1;
    space_fit sf;
    if (o.space && check_space(o.space, a, &sf)) {
        gn_arch_free(a);
        return 1;
    }
    int rc = 0;
    if (o.json) {
        rc = print_json(a, o.space ? &sf : NULL) ? 1 : 0;
    } else {
        print_table(a);
        if (o.space && sf.member)
            printf("space %s: member, encoding %s\n", sf.name, sf.text);
        else if (o.space)
            printf("space %s: not a member: %s\n", sf.name, sf.text);
    }
    if (o.space)
        free(sf.text);
    gn_arch_free(a);
    return rc;
}

int cmd_format(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs("usage: gpunas format CONFIG.json [-o OUT.json] [--res R] [--classes N] [--in-ch C]\n"
              "  writes the config in the canonical layout (to stdout without -o)\n",
              stdout);
        return 0;
    }
    opts o;
    if (parse_opts("format", argc, argv, &o, true))
        return 2;
    gn_arch *a = load_with_opts("format", &o);
    if (!a)
        return 1;
    gn_error err;
    int rc = 0;
    if (o.out) {
        if (gn_arch_save(a, o.out, &err)) {
            cli_error("format", "%s", err.msg);
            rc = 1;
        }
    } else {
        char *s = gn_arch_to_json(a, &err);
        fputs(s, stdout);
        free(s);
    }
    gn_arch_free(a);
    return rc;
}
