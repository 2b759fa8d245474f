/*
 * fuzz_hub.c — the model hub's index hub.json (gn_hub_load, src/hub/hub_index.c), as
 * `gpunas hub list` / `hub pick` read it; its records are model.json objects.
 *
 * Feeds: the input as HUB/hub.json in a scratch folder.
 * Asserts:
 *   - failure: the hub is left empty and the error is one non-empty line;
 *   - success, per model: a folder-safe name (non-empty, no '/', not starting with
 *     '.'), latency > 0, test top-1 in [0, 1], the record is a JSON object, the folder
 *     is HUB/NAME;
 *   - gn_hub_pick for a few budgets returns a model within the budget (never a
 *     less accurate one than another model that fits) or -1 with a reason;
 *   - round trip: gn_hub_write_index then gn_hub_load gives the same models (name,
 *     record, dropped reason), in any order;
 *   - gn_hub_mark_front: sorted by latency, and the models kept on the front have
 *     strictly increasing accuracy.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "gpunas/hub.h"

static void check_models(const gn_hub *h)
{
    for (int i = 0; i < h->n; i++) {
        const gn_hub_model *m = &h->models[i];
        FZ_CHECK(m->name[0] && !strchr(m->name, '/') && m->name[0] != '.', "model %d name '%s'", i, m->name);
        FZ_CHECK(m->latency_ms > 0 && m->test_top1 >= 0 && m->test_top1 <= 1, "model %d latency/accuracy", i);
        FZ_CHECK(m->record && m->folder, "model %d record/folder", i);
        json_t *o = json_loads(m->record, 0, NULL);
        FZ_CHECK(json_is_object(o), "model %d record is not a JSON object", i);
        json_decref(o);
        size_t dl = strlen(h->dir);
        FZ_CHECK(strncmp(m->folder, h->dir, dl) == 0 && m->folder[dl] == '/', "model %d folder '%s'", i, m->folder);
    }
}

static void check_pick(const gn_hub *h, double budget)
{
    char why[256] = "";
    int k = gn_hub_pick(h, budget, NULL, why, sizeof why);
    if (k < 0) {
        FZ_CHECK(why[0] && !strchr(why, '\n'), "no reason for an empty pick");
        for (int i = 0; i < h->n; i++)
            FZ_CHECK(!(h->models[i].latency_ms <= budget), "model %d fits but nothing was picked", i);
        return;
    }
    FZ_CHECK(k < h->n && h->models[k].latency_ms <= budget, "pick %d", k);
    for (int i = 0; i < h->n; i++)
        FZ_CHECK(!(h->models[i].latency_ms <= budget && h->models[i].test_top1 > h->models[k].test_top1),
                 "model %d fits and is more accurate than the pick", i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (256u << 10))
        return 0;
    char path[512];
    fz_path(path, sizeof path, "hub.json");
    fz_write_file(path, data, size);
    gn_hub h;
    gn_error err = {{0}};
    if (gn_hub_load(fz_dir(), false, &h, &err) != 0) {
        fz_check_error(&err);
        FZ_CHECK(h.n == 0 && h.models == NULL && h.dir == NULL, "failed load left a hub");
        return 0;
    }
    check_models(&h);
    check_pick(&h, 0);
    check_pick(&h, 1e300);
    for (int i = 0; i < h.n && i < 4; i++)
        check_pick(&h, h.models[i].latency_ms);

    FZ_CHECK(gn_hub_write_index(&h, &err) == 0, "write_index: %s", err.msg);
    gn_hub g;
    FZ_CHECK(gn_hub_load(fz_dir(), false, &g, &err) == 0, "reload of the written index: %s", err.msg);
    FZ_CHECK(g.n == h.n, "round trip: %d models, was %d", g.n, h.n);
    char *used = calloc((size_t)h.n + 1, 1);
    FZ_CHECK(used != NULL, "out of memory");
    for (int i = 0; i < g.n; i++) {
        int found = 0;
        for (int j = 0; j < h.n && !found; j++)
            if (!used[j] && !strcmp(g.models[i].name, h.models[j].name) &&
                !strcmp(g.models[i].record, h.models[j].record) && !strcmp(g.models[i].dropped, h.models[j].dropped))
                used[j] = 1, found = 1;
        FZ_CHECK(found, "round trip: model %d ('%s') has no counterpart", i, g.models[i].name);
    }
    free(used);
    gn_hub_free(&g);

    gn_hub_mark_front(&h);
    double best = -1;
    for (int i = 0; i < h.n; i++) {
        FZ_CHECK(i == 0 || h.models[i - 1].latency_ms <= h.models[i].latency_ms, "front: not sorted at %d", i);
        if (!h.models[i].dropped[0]) {
            FZ_CHECK(h.models[i].test_top1 > best, "front: model %d is not more accurate than a faster one", i);
            best = h.models[i].test_top1;
        }
    }
    gn_hub_free(&h);
    return 0;
}
