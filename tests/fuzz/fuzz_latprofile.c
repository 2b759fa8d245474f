/*
 * fuzz_latprofile.c — device latency profile JSON (gn_lat_profile_parse,
 * gpunas/latprofile.h), as `gpunas search --profile` and `hub pick --device` read it.
 *
 * Feeds: the input as the text of a profile (inputs over 256 KiB skipped).
 * Asserts:
 *   - failure: the profile is left empty and the error is one non-empty line;
 *   - success: batch >= 1, entries sorted by key without duplicates, each found by
 *     gn_lat_profile_find, every key starting with its type and ending with the batch;
 *   - round trip: gn_lat_profile_save -> gn_lat_profile_load succeeds with the same
 *     entries, and saving the reloaded profile writes the same text (the writer
 *     rounds reals to 12 digits; 12-digit decimals survive a trip through double);
 *   - prediction for a fixed small network (fuzz_util.h) through the table and the
 *     fallback: either a result or a one-line error, never a crash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "gpunas/arch.h"
#include "gpunas/latprofile.h"

static gn_arch *small_arch(void)
{
    static gn_arch *a;
    if (!a) {
        gn_error err;
        FZ_CHECK(gn_arch_parse(fz_small_arch_json(), "small.json", &a, &err) == 0, "%s", err.msg);
    }
    return a;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (256u << 10))
        return 0;
    char *text = fz_text(data, size);
    gn_lat_profile p;
    gn_error err = {{0}};
    int rc = gn_lat_profile_parse(text, "fuzz.json", &p, &err);
    free(text);
    if (rc != 0) {
        fz_check_error(&err);
        FZ_CHECK(p.n_entries == 0 && p.entries == NULL, "failed parse left %d entries", p.n_entries);
        return 0;
    }
    FZ_CHECK(p.batch >= 1, "batch %d", p.batch);
    char bq[32];
    snprintf(bq, sizeof bq, "|b=%d", p.batch);
    for (int i = 0; i < p.n_entries; i++) {
        const gn_lat_entry *e = &p.entries[i];
        FZ_CHECK(i == 0 || strcmp(p.entries[i - 1].key, e->key) < 0, "entries %d and %d out of order", i - 1, i);
        FZ_CHECK(gn_lat_profile_find(&p, e->key) == e, "entry %d not found by its key", i);
        const char *tn = gn_layer_type_name(e->type);
        size_t tl = strlen(tn), kl = strlen(e->key), bl = strlen(bq);
        FZ_CHECK(strncmp(e->key, tn, tl) == 0 && e->key[tl] == '|', "entry %d key/type", i);
        FZ_CHECK(kl >= bl && strcmp(e->key + kl - bl, bq) == 0, "entry %d batch", i);
        FZ_CHECK(e->ms > 0 && e->cv >= 0 && e->gflop > 0 && e->mb > 0, "entry %d values", i);
    }

    char pa[512], pb[512];
    fz_path(pa, sizeof pa, "profile-a.json");
    fz_path(pb, sizeof pb, "profile-b.json");
    FZ_CHECK(gn_lat_profile_save(&p, pa, &err) == 0, "save: %s", err.msg);
    gn_lat_profile q;
    FZ_CHECK(gn_lat_profile_load(pa, &q, &err) == 0, "reload of the writer's output: %s", err.msg);
    FZ_CHECK(q.n_entries == p.n_entries && q.batch == p.batch && q.calibrated == p.calibrated &&
                 q.evaluated == p.evaluated,
             "reloaded profile differs");
    for (int i = 0; i < p.n_entries; i++)
        FZ_CHECK(strcmp(p.entries[i].key, q.entries[i].key) == 0 && p.entries[i].type == q.entries[i].type,
                 "reloaded entry %d differs", i);
    FZ_CHECK(gn_lat_profile_save(&q, pb, &err) == 0, "save: %s", err.msg);
    char *ta = fz_read_file(pa, NULL), *tb = fz_read_file(pb, NULL);
    FZ_CHECK(ta && tb, "cannot read the saved profiles");
    FZ_CHECK(strcmp(ta, tb) == 0, "saving the reloaded profile writes other text:\n%s\n---\n%s", ta, tb);
    free(ta);
    free(tb);
    gn_lat_profile_free(&q);

    const gn_arch *a = small_arch();
    double sums[GN_LAT_NTYPES], ms;
    int missing = -1;
    if (gn_lat_table_sums(&p, a, sums, &missing, &err) != 0)
        fz_check_error(&err);
    else
        FZ_CHECK(missing >= 0 && missing <= a->n_layers, "missing %d", missing);
    if (gn_lat_predict(&p, a, &ms, &missing, &err) != 0)
        fz_check_error(&err);
    gn_lat_profile_free(&p);
    return 0;
}
