/*
 * fsck.c -- the repository check of fsck.h.
 *
 * Layers are verified once each, however many manifests name them, each
 * read in one get and every block checked (layer_verify); a fork's layers are
 * its parent's, so a repository with many branches costs little more than
 * its distinct data.  Orphans are found by a dry run of garbage collection
 * that keeps every generation, so fsck and gc never disagree on what is
 * unused; --repair is that run for real, refused while anything is damaged
 * (a damaged manifest could name layers that look orphaned).
 */
#include "fsck.h"
#include "../store/branch.h"
#include "gc.h"
#include "../store/layer.h"
#include "../store/manifest.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

typedef struct named {
    char *key;                    /* layer object */
    uint64_t size;                /* as the manifest says */
    char *by;                     /* the first manifest naming it */
} named;

/* By layer, then by the manifest naming it (branch, then generation:
 * manifest keys are zero-padded). */
static int named_cmp(const void *a, const void *b)
{
    const named *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : strcmp(x->by, y->by);
}

/* Print who names the missing layer NM[0..N): "generations 6-9, 12 of
 * main, 1 of dev". */
static void print_namers(FILE *out, const named *nm, size_t n)
{
    char branch[BRANCH_NAME_MAX + 1], prev[BRANCH_NAME_MAX + 1] = "";
    uint64_t gen, first = 0, last = 0;
    for (size_t i = 0; i <= n; i++) {
        int more = i < n && branch_key_split(nm[i].by, branch) && !manifest_key_gen(branch, nm[i].by, &gen);
        if (more && !strcmp(branch, prev) && gen == last + 1) { last = gen; continue; }
        if (prev[0]) {            /* close the range FIRST..LAST of PREV */
            if (first == last) fprintf(out, "%" PRIu64, first);
            else fprintf(out, "%" PRIu64 "-%" PRIu64, first, last);
            if (!more || strcmp(branch, prev)) fprintf(out, " of %s%s", prev, more ? "; " : "");
            else fprintf(out, ", ");
        }
        if (!more) break;
        if (strcmp(branch, prev)) fprintf(out, "generations ");
        snprintf(prev, sizeof prev, "%s", branch);
        first = last = gen;
    }
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int fsck_run(objstore *os, int repair, FILE *out, fsck_report *r, char *err, size_t errlen)
{
    char **keys = NULL;
    size_t nkeys = 0, nn = 0, cap = 0;
    named *nm = NULL;
    memset(r, 0, sizeof *r);
    int rc = os_list(os, "branches/", &keys, &nkeys);
    if (rc) { snprintf(err, errlen, "cannot list the repository %s: %s", os_url(os), strerror(-rc)); return rc; }

    /* every manifest: decoded (CRC), its layers collected */
    for (size_t i = 0; i < nkeys && !rc; i++) {
        char branch[BRANCH_NAME_MAX + 1];
        const char *rest = branch_key_split(keys[i], branch);
        uint64_t gen;
        if (!rest) continue;
        if (!strcmp(rest, "branch")) {
            branch_meta meta;
            int mrc = branch_meta_load(os, branch, &meta);
            if (mrc && mrc != -ENOENT) {
                fprintf(out, "DAMAGED %s: branch metadata cannot be read (%s)\n", keys[i], strerror(-mrc));
                r->damaged++;
            } else if (!mrc && meta.parent[0]) {
                manifest pm;
                int prc = manifest_load_latest(os, meta.parent, &pm);
                if (prc == -ENOENT) {
                    fprintf(out, "DAMAGED %s: its parent branch '%s' is gone\n", keys[i], meta.parent);
                    r->damaged++;
                } else if (!prc) {
                    manifest_free(&pm);
                }
            }
            continue;
        }
        if (manifest_key_gen(branch, keys[i], &gen)) continue;
        manifest m;
        int lrc = manifest_load(os, branch, gen, &m);
        if (lrc == -ENOENT) continue;             /* removed meanwhile (gc) */
        r->manifests++;
        if (lrc) {
            fprintf(out, "DAMAGED %s: manifest cannot be read or fails its checksum (%s)\n", keys[i], strerror(-lrc));
            r->damaged++;
            continue;
        }
        for (size_t l = 0; l < m.nlayers && !rc; l++) {
            if (nn == cap) {
                size_t ncap = cap ? 2 * cap : 256;
                named *n2 = realloc(nm, ncap * sizeof *n2);
                if (!n2) { rc = -ENOMEM; break; }
                nm = n2;
                cap = ncap;
            }
            nm[nn] = (named){ strdup(m.layers[l].key), m.layers[l].size, keys[i] };
            if (!nm[nn].key) rc = -ENOMEM;
            else nn++;
        }
        manifest_free(&m);
    }
    if (rc) { snprintf(err, errlen, "out of memory"); goto out; }
    if (nn) qsort(nm, nn, sizeof *nm, named_cmp);

    /* every named layer once: present, of the named size, every block sound */
    for (size_t i = 0; i < nn; i++) {
        if (i && !strcmp(nm[i].key, nm[i - 1].key)) continue;
        if (!bsearch(&nm[i].key, keys, nkeys, sizeof *keys, str_cmp)) {
            size_t n = 1;
            while (i + n < nn && !strcmp(nm[i + n].key, nm[i].key)) n++;
            fprintf(out, "DAMAGED %s: layer is missing (%" PRIu64 " bytes); the states that need it are lost: ",
                    nm[i].key, nm[i].size);
            print_namers(out, nm + i, n);
            fputc('\n', out);
            r->damaged++;
            continue;
        }
        uint64_t entries = 0, size = 0;
        int lrc = os_head(os, nm[i].key, &size);
        if (!lrc && size != nm[i].size) {
            fprintf(out, "DAMAGED %s: %" PRIu64 " bytes, but %s says %" PRIu64 "\n", nm[i].key, size, nm[i].by,
                    nm[i].size);
            r->damaged++;
            continue;
        }
        if (!lrc) lrc = layer_verify(os, nm[i].key, &entries);
        if (lrc) {
            fprintf(out, "DAMAGED %s: layer cannot be read or fails its checksums (%s)\n", nm[i].key, strerror(-lrc));
            r->damaged++;
            continue;
        }
        r->layers++;
        r->bytes += nm[i].size;
    }

    /* orphans: what gc would remove keeping every generation */
    gc_options o = { .keep_all = 1, .dry_run = !repair || r->damaged, .list = 1, .out = out };
    gc_report g;
    char gerr[600];
    if (!r->damaged && (rc = gc_run(os, &o, &g, gerr, sizeof gerr))) {
        snprintf(err, errlen, "%s", gerr);
        goto out;
    }
    if (!r->damaged) {
        r->orphans = g.layers_freed;
        r->orphan_bytes = g.bytes_freed;
    }
    fprintf(out, "fsck: %" PRIu64 " manifests, %" PRIu64 " layers (%" PRIu64 " bytes) verified; %" PRIu64
            " damaged; %" PRIu64 " orphaned layers (%" PRIu64 " bytes)%s\n", r->manifests, r->layers, r->bytes,
            r->damaged, r->orphans, r->orphan_bytes,
            r->damaged ? ", orphans not looked for while anything is damaged"
            : r->orphans ? (repair ? ", removed" : "; lakefs fsck --repair removes them") : "");
out:
    for (size_t i = 0; i < nn; i++) free(nm[i].key);
    free(nm);
    os_list_free(keys, nkeys);
    return rc;
}
