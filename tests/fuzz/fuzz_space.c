/*
 * fuzz_space.c — search-space JSON (gn_space_parse, gpunas/space.h).
 *
 * Feeds: the input as the text of a space file (inputs over 64 KiB skipped).
 * Asserts:
 *   - failure: *out is NULL and the error is one non-empty line;
 *   - success: the encoding has 0..GN_ENC_MAX_DIMS dimensions, each with >= 2 choices
 *     and a name; the space's size is >= 1;
 *   - members: the all-zero member, the all-last member and a few drawn at random
 *     (rng seeded from the input) and by mutation pass gn_space_check and decode to a
 *     valid arch — the load-time corner check promises that every member is a valid
 *     network; the decoded arch encodes back to the canonical member
 *     (gn_space_encode_arch), and the text form round-trips (encode_to_string ->
 *     parse_string); describe gives a string.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "gpunas/encoding.h"
#include "gpunas/rng.h"
#include "gpunas/space.h"

static void check_member(const gn_space *s, const int *x)
{
    const gn_enc_desc *d = gn_space_desc(s);
    gn_error err = {{0}};
    FZ_CHECK(gn_space_check(s, x, &err) == 0, "member refused: %s", err.msg);
    gn_arch *a = NULL;
    FZ_CHECK(gn_space_decode(s, x, &a, &err) == 0, "member does not decode: %s", err.msg);
    int y[GN_ENC_MAX_DIMS], z[GN_ENC_MAX_DIMS];
    gn_space_canonical(s, x, y);
    FZ_CHECK(gn_space_encode_arch(s, a, z, &err) == 0, "decoded member does not encode: %s", err.msg);
    FZ_CHECK(d->ndims == 0 || memcmp(y, z, sizeof(int) * (size_t)d->ndims) == 0,
             "encode(decode(x)) is not canonical(x)");
    gn_arch_free(a);

    char *t = gn_space_encode_to_string(s, x);
    FZ_CHECK(t != NULL, "encode_to_string");
    FZ_CHECK(gn_space_parse_string(s, t, z, &err) == 0, "parse_string('%s'): %s", t, err.msg);
    FZ_CHECK(d->ndims == 0 || memcmp(x, z, sizeof(int) * (size_t)d->ndims) == 0, "text form does not round-trip");
    free(t);
    char *desc = gn_space_describe(s, x);
    FZ_CHECK(desc != NULL && desc[0], "describe");
    free(desc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (64u << 10))
        return 0;
    char *text = fz_text(data, size);
    gn_space *s = (gn_space *)1;
    gn_error err = {{0}};
    int rc = gn_space_parse(text, "fuzz.json", &s, &err);
    free(text);
    if (rc != 0) {
        FZ_CHECK(s == NULL, "failed parse left a space");
        fz_check_error(&err);
        return 0;
    }
    const gn_enc_desc *d = gn_space_desc(s);
    FZ_CHECK(d->ndims >= 0 && d->ndims <= GN_ENC_MAX_DIMS, "%d dimensions", d->ndims);
    for (int i = 0; i < d->ndims; i++) {
        FZ_CHECK(d->card[i] >= 2, "dimension %d has %d choices", i, d->card[i]);
        const char *n = gn_space_dim_name(s, i);
        FZ_CHECK(n && n[0] && strcmp(n, "?"), "dimension %d has no name", i);
    }
    FZ_CHECK(gn_space_size(s) >= 1, "size %g", gn_space_size(s));
    FZ_CHECK(gn_space_name(s) && gn_space_name(s)[0], "no name");

    int x[GN_ENC_MAX_DIMS] = {0};
    check_member(s, x);
    for (int i = 0; i < d->ndims; i++)
        x[i] = d->card[i] - 1;
    check_member(s, x);

    uint64_t seed = 1469598103934665603ull;
    for (size_t i = 0; i < size; i++)
        seed = (seed ^ data[i]) * 1099511628211ull;
    gn_rng r;
    gn_rng_seed(&r, seed);
    for (int k = 0; k < 3; k++) {
        gn_space_sample_random(s, &r, x);
        check_member(s, x);
        int y[GN_ENC_MAX_DIMS];
        gn_space_mutate(s, &r, x, y, 0.3);
        check_member(s, y);
    }
    gn_space_free(s);
    return 0;
}
