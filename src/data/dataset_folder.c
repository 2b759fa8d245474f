/*
 * dataset_folder.c — a folder of class sub-folders of PNG/JPEG images.
 *
 * Design
 *   DIR/<class>/<image>.{png,jpg,jpeg} (extension case-insensitive).  Classes are the
 *   sub-folder names sorted bytewise (strcmp: the same order under every locale), images
 *   within a class likewise, so a folder always loads in the same order.  Names starting
 *   with '.' are skipped, as are files with other extensions and anything nested deeper
 *   (the layout of torchvision's ImageFolder, minus recursion).
 *
 *   Every image is resized on load (bilinear, half-pixel centres, rounded) to size x
 *   size — non-square images are squashed, as torchvision's Resize((s, s)) does; size 0
 *   takes the first image's size, which must then be square.  Channels: an image is
 *   decoded to grey (1) or RGB (3) (alpha dropped, see image_decode.c); if every image
 *   of the folder is grey the dataset has 1 channel, otherwise 3 and grey images are
 *   copied into all three.
 *
 *   Errors: a folder with no class sub-folders or no images, a class sub-folder with no
 *   images (training split), or any file that does not decode (named in the message).
 *   A test split gets the training split's class list (gn__folder_load's class_dirs), so
 *   a class's label is the same in both; its sub-folders must be among those classes.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "data/data_internal.h"

void gn__free_names(char **names, int count)
{
    if (!names)
        return;
    for (int i = 0; i < count; i++)
        free(names[i]);
    free(names);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static char *path_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", a, b);
    return p;
}

static int is_image_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && dot != name && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
}

/* Sorted entries of dir: sub-folders (want_dirs) or image files (!want_dirs). */
static int list_dir(const char *dir, int want_dirs, char ***names, int *count, gn_error *err)
{
    *names = NULL;
    *count = 0;
    DIR *dd = opendir(dir);
    if (!dd)
        return gn_error_set(err, "%s: cannot open folder: %s", dir, strerror(errno));
    int cap = 0, n = 0, rc = 0;
    char **v = NULL;
    struct dirent *e;
    while ((e = readdir(dd))) {
        if (e->d_name[0] == '.')
            continue;
        if (!want_dirs && !is_image_name(e->d_name))
            continue;
        char *full = path_join(dir, e->d_name);
        struct stat st;
        if (!full) {
            rc = gn_error_set(err, "%s: out of memory", dir);
            break;
        }
        int ok = stat(full, &st) == 0 && (want_dirs ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode));
        free(full);
        if (!ok)
            continue;
        if (n == cap) {
            int ncap = cap ? cap * 2 : 16;
            char **nv = realloc(v, (size_t)ncap * sizeof *nv);
            if (!nv) {
                rc = gn_error_set(err, "%s: out of memory", dir);
                break;
            }
            v = nv, cap = ncap;
        }
        if (!(v[n] = strdup(e->d_name))) {
            rc = gn_error_set(err, "%s: out of memory", dir);
            break;
        }
        n++;
    }
    closedir(dd);
    if (rc) {
        gn__free_names(v, n);
        return -1;
    }
    if (n > 1)
        qsort(v, (size_t)n, sizeof *v, cmp_str);
    *names = v;
    *count = n;
    return 0;
}

int gn__folder_classes(const char *dir, char ***names, int *count, gn_error *err)
{
    return list_dir(dir, 1, names, count, err);
}

typedef struct {
    char *path;
    int label;
} item;

int gn__folder_load(const char *dir, int size, const char *const *class_dirs, int nclass, gn_dataset **out,
                    gn_error *err)
{
    *out = NULL;
    char **own = NULL, **sub = NULL;
    int nown = 0, nsub = 0, rc = -1;
    item *items = NULL;
    int nitems = 0, capitems = 0;
    uint8_t *buf = NULL, *chan = NULL;
    gn__resize_axis ay = {0}, ax = {0};

    if (list_dir(dir, 1, &sub, &nsub, err))
        return -1;
    if (!class_dirs) {
        if (nsub == 0) {
            gn_error_set(err, "%s: empty folder: no class sub-folders", dir);
            goto done;
        }
        own = sub, nown = nsub;
        sub = NULL, nsub = 0;
        class_dirs = (const char *const *)own;
        nclass = nown;
    } else {
        for (int i = 0; i < nsub; i++) {
            int found = 0;
            for (int k = 0; k < nclass && !found; k++)
                found = !strcmp(sub[i], class_dirs[k]);
            if (!found) {
                gn_error_set(err, "%s: sub-folder '%s' is not one of the %d training classes", dir, sub[i], nclass);
                goto done;
            }
        }
    }
    for (int k = 0; k < nclass; k++) {
        char *cdir = path_join(dir, class_dirs[k]);
        if (!cdir) {
            gn_error_set(err, "%s: out of memory", dir);
            goto done;
        }
        struct stat st;
        if (own == NULL && (stat(cdir, &st) != 0 || !S_ISDIR(st.st_mode))) {
            free(cdir); /* test split without this class */
            continue;
        }
        char **files = NULL;
        int nfiles = 0;
        if (list_dir(cdir, 0, &files, &nfiles, err)) {
            free(cdir);
            goto done;
        }
        if (nfiles == 0 && own) {
            gn_error_set(err, "%s: class folder has no PNG or JPEG images", cdir);
            free(cdir);
            goto done;
        }
        for (int i = 0; i < nfiles; i++) {
            if (nitems == capitems) {
                int ncap = capitems ? capitems * 2 : 64;
                item *ni = realloc(items, (size_t)ncap * sizeof *ni);
                if (!ni) {
                    gn__free_names(files, nfiles);
                    free(cdir);
                    gn_error_set(err, "%s: out of memory", dir);
                    goto done;
                }
                items = ni, capitems = ncap;
            }
            items[nitems].path = path_join(cdir, files[i]);
            items[nitems].label = k;
            if (!items[nitems].path) {
                gn__free_names(files, nfiles);
                free(cdir);
                gn_error_set(err, "%s: out of memory", dir);
                goto done;
            }
            nitems++;
        }
        gn__free_names(files, nfiles);
        free(cdir);
    }
    if (nitems == 0) {
        gn_error_set(err, "%s: empty folder: no PNG or JPEG images in its class sub-folders", dir);
        goto done;
    }

    size_t plane = 0, slot = 0;
    int rin_h = -1, rin_w = -1; /* size the resize tables were made for */
    chan = malloc((size_t)nitems);
    if (!chan) {
        gn_error_set(err, "%s: out of memory", dir);
        goto done;
    }
    for (int i = 0; i < nitems; i++) {
        uint8_t *px = NULL;
        int c, h, w;
        if (gn__image_decode(items[i].path, &px, &c, &h, &w, err))
            goto done;
        if (i == 0) {
            if (size == 0) {
                if (h != w) {
                    free(px);
                    gn_error_set(err, "%s: first image is %dx%d, not square: give an image size", items[i].path, w,
                                 h);
                    goto done;
                }
                size = h;
            }
            plane = (size_t)size * (size_t)size;
            slot = 3 * plane;
            buf = malloc(slot * (size_t)nitems);
            if (!buf) {
                free(px);
                gn_error_set(err, "%s: out of memory for %d images of %dx%d", dir, nitems, size, size);
                goto done;
            }
        }
        uint8_t *dst = buf + slot * (size_t)i;
        chan[i] = (uint8_t)c;
        if (h == size && w == size) {
            memcpy(dst, px, plane * (size_t)c);
        } else {
            if (h != rin_h || w != rin_w) {
                gn__resize_axis_free(&ay);
                gn__resize_axis_free(&ax);
                if (gn__resize_axis_init(&ay, h, size, err) || gn__resize_axis_init(&ax, w, size, err)) {
                    free(px);
                    goto done;
                }
                rin_h = h, rin_w = w;
            }
            for (int ch = 0; ch < c; ch++)
                gn__resize_plane_u8(px + (size_t)ch * h * w, w, &ay, &ax, dst + (size_t)ch * plane);
        }
        free(px);
    }
    int all_grey = 1;
    for (int i = 0; i < nitems; i++)
        all_grey &= chan[i] == 1;
    int c = all_grey ? 1 : 3;
    for (int i = 0; i < nitems; i++) {
        uint8_t *src = buf + slot * (size_t)i;
        if (all_grey) {
            memmove(buf + plane * (size_t)i, src, plane);
        } else if (chan[i] == 1) {
            memcpy(src + plane, src, plane);
            memcpy(src + 2 * plane, src, plane);
        }
    }
    if (all_grey) {
        uint8_t *nb = realloc(buf, plane * (size_t)nitems);
        if (nb)
            buf = nb;
    }
    gn_dataset *d = gn__dataset_new(nitems, c, size, size, nclass, buf, dir, err);
    buf = NULL;
    if (!d)
        goto done;
    for (int i = 0; i < nitems; i++)
        d->labels[i] = items[i].label;
    if (gn__dataset_set_names(d, class_dirs, nclass, err)) {
        gn_dataset_free(d);
        goto done;
    }
    gn__dataset_stats(d);
    *out = d;
    rc = 0;
done:
    for (int i = 0; i < nitems; i++)
        free(items[i].path);
    free(items);
    free(buf);
    free(chan);
    gn__resize_axis_free(&ay);
    gn__resize_axis_free(&ax);
    gn__free_names(own, nown);
    gn__free_names(sub, nsub);
    return rc;
}

int gn_dataset_load_folder(const char *dir, int size, gn_dataset **out, gn_error *err)
{
    if (!out)
        return gn_error_set(err, "folder load: NULL output");
    *out = NULL;
    if (!dir)
        return gn_error_set(err, "folder load: NULL folder");
    if (size < 0 || size > 4096)
        return gn_error_set(err, "%s: image size %d out of range [0, 4096]", dir, size);
    return gn__folder_load(dir, size, NULL, 0, out, err);
}
