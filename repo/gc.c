/*
 * gc.c -- garbage collection over a whole repository (see gc.h for what is
 * kept and why that is safe).
 *
 * One listing of branches/ gives every manifest, layer, lease and pin; the
 * manifests are then read (all of them: their commit times decide what the
 * window keeps), the kept ones' layers collected into a sorted array, and
 * deletions go manifests first, pins re-read, layers last.  Work is one
 * GET per manifest and one batched DELETE per thousand objects; memory is
 * the listing and the manifests.
 */
#include "gc.h"
#include "../store/branch.h"
#include "../store/manifest.h"
#include "../store/lease.h"
#include "../store/store.h"
#include "../util/failpoint.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define GC_DELETE_BATCH 1000
#define GC_SETTINGS_RETENTION "settings/retention/"

typedef struct gbranch {
    char name[BRANCH_NAME_MAX + 1];
    manifest *gens;               /* its manifests, ascending generation (gen 0: vanished meanwhile) */
    size_t ngens, capgens;
    uint8_t *keep;                /* per generation: kept */
    int leased;                   /* branches/NAME/lease exists: a mount is live (or crashed) */
    int has_meta;                 /* branches/NAME/branch exists */
} gbranch;

typedef struct keysize {
    const char *key;
    uint64_t size;
} keysize;

typedef struct gc_state {
    objstore *os;
    const gc_options *o;
    gc_report *r;
    char **keys;                  /* the listing of branches/ */
    size_t nkeys;
    gbranch *b;
    size_t nb, capb;
    keysize *named;               /* layers a kept generation names (sorted, may repeat) */
    size_t nnamed, capnamed;
    keysize *sizes;               /* every layer any loaded manifest names, with its size (sorted) */
    size_t nsizes;
} gc_state;

/* Array P of *CAP elements of SIZE bytes, N of them used, with room for
 * one more (moved, *CAP grown, if it had none); NULL if out of memory (P is
 * then left as it was). */
static void *gc_grow(void *p, size_t n, size_t *cap, size_t size)
{
    if (n < *cap) return p;
    size_t ncap = *cap ? 2 * *cap : 16;
    void *np = realloc(p, ncap * size);
    if (np) *cap = ncap;
    return np;
}

/* Branch NAME's entry, created if new; NULL if out of memory. */
static gbranch *gc_branch(gc_state *s, const char *name)
{
    for (size_t i = s->nb; i-- > 0;)
        if (!strcmp(s->b[i].name, name)) return &s->b[i];
    gbranch *nb = gc_grow(s->b, s->nb, &s->capb, sizeof *s->b);
    if (!nb) return NULL;
    s->b = nb;
    gbranch *b = &s->b[s->nb++];
    memset(b, 0, sizeof *b);
    snprintf(b->name, sizeof b->name, "%s", name);
    return b;
}

static int keysize_cmp(const void *a, const void *b)
{
    return strcmp(((const keysize *)a)->key, ((const keysize *)b)->key);
}

/* The entry of KEY in the sorted array A of N, or NULL. */
static keysize *keysize_find(keysize *a, size_t n, const char *key)
{
    keysize k = { key, 0 };
    return n ? bsearch(&k, a, n, sizeof *a, keysize_cmp) : NULL;
}

/* Add the layers of M to the named set (unsorted until gc_sort_named). */
static int gc_name_layers(gc_state *s, const manifest *m)
{
    for (size_t i = 0; i < m->nlayers; i++) {
        keysize *nn = gc_grow(s->named, s->nnamed, &s->capnamed, sizeof *s->named);
        if (!nn) return -ENOMEM;
        s->named = nn;
        s->named[s->nnamed++] = (keysize){ m->layers[i].key, m->layers[i].size };
    }
    return 0;
}

/* Read every branch's manifests; -errno with ERR on one that cannot be read. */
static int gc_load(gc_state *s, char *err, size_t errlen)
{
    char name[BRANCH_NAME_MAX + 1];
    for (size_t i = 0; i < s->nkeys; i++) {
        const char *rest = branch_key_split(s->keys[i], name);
        uint64_t gen;
        if (!rest) continue;
        gbranch *b = gc_branch(s, name);
        if (!b) return -ENOMEM;
        if (!strcmp(rest, "lease")) b->leased = 1;
        else if (!strcmp(rest, "branch")) b->has_meta = 1;
        else if (!manifest_key_gen(name, s->keys[i], &gen)) {
            manifest *ng = gc_grow(b->gens, b->ngens, &b->capgens, sizeof *b->gens);
            if (!ng) return -ENOMEM;
            b->gens = ng;
            int rc = manifest_load(s->os, name, gen, &b->gens[b->ngens]);
            if (rc == -ENOENT) continue;            /* deleted since the listing */
            if (rc) {
                snprintf(err, errlen, "manifest generation %" PRIu64 " of branch '%s' cannot be read (%s); "
                         "nothing was deleted: run lakefs fsck", gen, name, strerror(-rc));
                return rc;
            }
            b->ngens++;
        }
    }
    return 0;                     /* the listing is sorted: generations come ascending */
}

/* How long, in seconds, a time slot of the window of RETENTION_S is: one
 * generation is kept per slot beyond the grace period (gc.h). */
static int64_t gc_slot_s(int64_t retention_s)
{
    int64_t slot = retention_s / GC_SLOTS;
    if (slot < GC_GRACE_S) slot = GC_GRACE_S;
    return slot > GC_SLOT_MAX_S ? GC_SLOT_MAX_S : slot;
}

/* Decide which generations of every branch stay (gc.h). */
static int gc_decide(gc_state *s, int64_t now)
{
    int64_t cutoff = now - s->o->retention_s;
    int64_t grace = s->o->retention_s < GC_GRACE_S ? s->o->retention_s : GC_GRACE_S;
    int64_t slot = gc_slot_s(s->o->retention_s);
    for (size_t i = 0; i < s->nb; i++) {
        gbranch *b = &s->b[i];
        if (!b->ngens) continue;
        if (!(b->keep = calloc(b->ngens, 1))) return -ENOMEM;
        size_t base = SIZE_MAX;
        for (size_t g = 0; g < b->ngens; g++) {
            int64_t made = (int64_t)b->gens[g].time;
            int64_t superseded = g + 1 < b->ngens ? (int64_t)b->gens[g + 1].time : INT64_MAX;
            if (s->o->keep_all || superseded >= now - grace) b->keep[g] = 1;   /* a reader may hold it */
            else if (made >= cutoff && made / slot != superseded / slot) b->keep[g] = 1;   /* newest of its slot */
            if (made < cutoff) base = g;
        }
        if (base != SIZE_MAX) b->keep[base] = 1;    /* the window's base */
        b->keep[b->ngens - 1] = 1;                 /* the newest, always */
    }
    return 0;
}

/* Keep the generations pinned by live holders (and delete dead pins when
 * DELETE_DEAD); a pinned generation already deleted is left so. */
static int gc_pins(gc_state *s, int delete_dead)
{
    for (size_t i = 0; i < s->nb; i++) {
        gbranch *b = &s->b[i];
        char prefix[128], **pins;
        size_t np;
        snprintf(prefix, sizeof prefix, "branches/%s/pins/", b->name);
        int rc = os_list(s->os, prefix, &pins, &np);
        if (rc) return rc;
        for (size_t p = 0; p < np; p++) {
            const char *g = pins[p] + strlen(prefix);
            uint64_t gen = strtoull(g, NULL, 10);
            lease_info h;
            if (lease_holder_read(s->os, pins[p], &h)) continue;   /* gone meanwhile */
            if (h.local && !h.alive) {
                if (delete_dead && !s->o->dry_run && !os_delete(s->os, pins[p])) s->r->pins_dead++;
                continue;
            }
            for (size_t k = 0; k < b->ngens; k++)
                if (b->gens[k].gen == gen) b->keep[k] = 1;
        }
        os_list_free(pins, np);
    }
    return 0;
}

/* The sorted set of layers the kept generations name. */
static int gc_collect_named(gc_state *s)
{
    s->nnamed = 0;
    for (size_t i = 0; i < s->nb; i++)
        for (size_t g = 0; g < s->b[i].ngens; g++)
            if (s->b[i].keep[g]) {
                int rc = gc_name_layers(s, &s->b[i].gens[g]);
                if (rc) return rc;
            }
    if (s->nnamed) qsort(s->named, s->nnamed, sizeof *s->named, keysize_cmp);
    return 0;
}

/* Every layer any loaded manifest names, with its size (sorted). */
static int gc_collect_sizes(gc_state *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nb; i++)
        for (size_t g = 0; g < s->b[i].ngens; g++) n += s->b[i].gens[g].nlayers;
    if (!(s->sizes = malloc((n ? n : 1) * sizeof *s->sizes))) return -ENOMEM;
    for (size_t i = 0; i < s->nb; i++)
        for (size_t g = 0; g < s->b[i].ngens; g++)
            for (size_t l = 0; l < s->b[i].gens[g].nlayers; l++)
                s->sizes[s->nsizes++] = (keysize){ s->b[i].gens[g].layers[l].key, s->b[i].gens[g].layers[l].size };
    if (s->nsizes) qsort(s->sizes, s->nsizes, sizeof *s->sizes, keysize_cmp);
    return 0;
}

/* 1 if unnamed layer KEY may be a live mount's upload not yet committed. */
static int gc_in_flight(gc_state *s, const char *key)
{
    char owner[BRANCH_NAME_MAX + 1];
    uint64_t session;
    if (store_layer_key_parse(key, owner, sizeof owner, &session)) return 1;   /* unknown form: keep */
    gbranch *b = NULL;
    for (size_t i = 0; i < s->nb && !b; i++)
        if (!strcmp(s->b[i].name, owner)) b = &s->b[i];
    if (!b) return 0;                             /* a deleted branch's */
    if (!b->ngens) return b->has_meta;            /* being created: its first layer */
    const manifest *newest = &b->gens[b->ngens - 1];
    return session > newest->session || (session == newest->session && b->leased);
}

/* Delete the N keys KEYS in batches; 0 or -errno. */
static int gc_delete(gc_state *s, char **keys, size_t n)
{
    for (size_t i = 0; i < n; i += GC_DELETE_BATCH) {
        size_t k = n - i < GC_DELETE_BATCH ? n - i : GC_DELETE_BATCH;
        int rc = os_delete_many(s->os, (const char *const *)keys + i, k);
        if (rc) return rc;
    }
    return 0;
}

/* Format BYTES for people. */
static const char *gc_bytes(uint64_t bytes, char *buf, size_t len)
{
    if (bytes >= (1ull << 30)) snprintf(buf, len, "%.2f GiB", (double)bytes / (1 << 30));
    else if (bytes >= (1ull << 20)) snprintf(buf, len, "%.1f MiB", (double)bytes / (1 << 20));
    else snprintf(buf, len, "%.1f KiB", (double)bytes / 1024);
    return buf;
}

int gc_run(objstore *os, const gc_options *o, gc_report *r, char *err, size_t errlen)
{
    gc_state s = { .os = os, .o = o, .r = r };
    char **del = NULL;
    size_t ndel = 0;
    memset(r, 0, sizeof *r);
    err[0] = 0;
    int rc = os_list(os, "branches/", &s.keys, &s.nkeys);
    if (rc) { snprintf(err, errlen, "cannot list the repository %s: %s", os_url(os), strerror(-rc)); return rc; }
    if ((rc = gc_load(&s, err, errlen))) goto out;
    if ((rc = gc_decide(&s, o->now ? o->now : (int64_t)time(NULL))) || (rc = gc_pins(&s, 0)) || (rc = gc_collect_sizes(&s)))
        goto fail;
    if (!(del = malloc((s.nkeys ? s.nkeys : 1) * sizeof *del))) { rc = -ENOMEM; goto fail; }

    /* 1. manifests outside the window (never a branch's newest) */
    for (size_t i = 0; i < s.nb; i++) {
        gbranch *b = &s.b[i];
        size_t freed = 0, kept = 0;
        ndel = 0;
        for (size_t g = 0; g < b->ngens; g++) {
            if (b->keep[g]) { kept++; continue; }
            char key[160];
            snprintf(key, sizeof key, "branches/%s/manifest/%020" PRIu64, b->name, b->gens[g].gen);
            if (!(del[ndel++] = strdup(key))) { rc = -ENOMEM; goto fail; }
            freed++;
        }
        if (!o->dry_run && ndel && (rc = gc_delete(&s, del, ndel))) {
            snprintf(err, errlen, "deleting old manifests of branch '%s' failed: %s; run lakefs gc again", b->name,
                     strerror(-rc));
            goto out;
        }
        for (size_t k = 0; k < ndel; k++) free(del[k]);
        ndel = 0;
        r->gens_kept += kept;
        r->gens_freed += freed;
        if (o->out && b->ngens && !o->keep_all)
            fprintf(o->out, "branch %s: %zu generation%s kept (%" PRIu64 "..%" PRIu64 "), %zu %s\n", b->name, kept,
                    kept == 1 ? "" : "s", b->gens[0].gen, b->gens[b->ngens - 1].gen, freed,
                    o->dry_run ? "to free" : "freed");
    }
    /* 2. pins again: a view that pinned meanwhile keeps its layers */
    if (!o->dry_run && (rc = failpoint("gc-manifests-deleted"))) goto fail;
    if ((rc = gc_pins(&s, 1)) || (rc = gc_collect_named(&s))) goto fail;

    /* 3. layers no kept generation names, unless a live mount may be uploading them */
    for (size_t i = 0; i < s.nkeys; i++) {
        char owner[BRANCH_NAME_MAX + 1];
        const char *rest = branch_key_split(s.keys[i], owner);
        if (!rest || strncmp(rest, "layers/", 7)) continue;
        keysize *named = keysize_find(s.named, s.nnamed, s.keys[i]);
        keysize *sized = named ? named : keysize_find(s.sizes, s.nsizes, s.keys[i]);
        uint64_t size = 0;
        if (sized) size = sized->size;
        else if (os_head(os, s.keys[i], &size)) size = 0;
        /* a layer some manifest named was committed once: never in flight */
        if (named || (!sized && gc_in_flight(&s, s.keys[i]))) {
            r->layers_kept++;
            r->bytes_kept += size;
            if (!named) r->layers_in_flight++;
            continue;
        }
        del[ndel++] = s.keys[i];
        if (o->list && o->out) fprintf(o->out, "%s %s (%" PRIu64 " bytes)\n", o->keep_all ? "orphan" : "free", s.keys[i], size);
        r->layers_freed++;
        r->bytes_freed += size;
    }
    if (!o->dry_run && ndel && (rc = gc_delete(&s, del, ndel))) {
        snprintf(err, errlen, "deleting unused layers failed: %s; run lakefs gc again", strerror(-rc));
        ndel = 0;
        goto out;
    }
    ndel = 0;

    /* 4. start-up keys of generations older than their branch's newest */
    for (size_t i = 0; i < s.nkeys && !o->keep_all; i++) {
        char owner[BRANCH_NAME_MAX + 1];
        uint64_t gen;
        if (!branch_key_split(s.keys[i], owner) || store_hot_key_gen(owner, s.keys[i], &gen)) continue;
        gbranch *b = gc_branch(&s, owner);
        if (!b || !b->ngens || gen >= b->gens[b->ngens - 1].gen) continue;
        del[ndel++] = s.keys[i];
        r->hot_freed++;
    }
    if (!o->dry_run && ndel && (rc = gc_delete(&s, del, ndel))) {
        snprintf(err, errlen, "deleting old start-up keys failed: %s; run lakefs gc again", strerror(-rc));
        ndel = 0;
        goto out;
    }
    ndel = 0;
    if (o->out && !o->keep_all) {
        char kb[32], fb[32];
        fprintf(o->out, "gc: retention %" PRId64 " s; %" PRIu64 " layers kept (%s, %" PRIu64 " in flight), %" PRIu64
                " layers %s (%s), %" PRIu64 " manifests %s\n", o->retention_s, r->layers_kept,
                gc_bytes(r->bytes_kept, kb, sizeof kb), r->layers_in_flight, r->layers_freed,
                o->dry_run ? "to free" : "freed", gc_bytes(r->bytes_freed, fb, sizeof fb), r->gens_freed,
                o->dry_run ? "to free" : "freed");
    }
    goto out;
fail:
    if (!err[0]) snprintf(err, errlen, "garbage collection failed: %s", strerror(-rc));
out:
    for (size_t k = 0; del && k < ndel; k++) free(del[k]);
    free(del);
    for (size_t i = 0; i < s.nb; i++) {
        for (size_t g = 0; g < s.b[i].ngens; g++) manifest_free(&s.b[i].gens[g]);
        free(s.b[i].gens);
        free(s.b[i].keep);
    }
    free(s.b);
    free(s.named);
    free(s.sizes);
    os_list_free(s.keys, s.nkeys);
    return rc;
}

/* ---- the retention setting: settings/retention/NNNNNNNNNNNNNNNNNNNN ---- */

int gc_retention_get(objstore *os, int64_t *seconds)
{
    char **keys;
    size_t n;
    *seconds = GC_RETENTION_DEFAULT;
    int rc = os_list(os, GC_SETTINGS_RETENTION, &keys, &n);
    if (rc) return rc;
    if (n) {
        void *buf;
        size_t len;
        if (!(rc = os_get(os, keys[n - 1], 0, UINT64_MAX, &buf, &len))) {
            char text[32];
            char *end;
            snprintf(text, sizeof text, "%.*s", (int)(len < sizeof text - 1 ? len : sizeof text - 1), (char *)buf);
            long long v = strtoll(text, &end, 10);
            if (end == text || *end != '\n' || v < 0) rc = -EINVAL;
            else *seconds = v;
            free(buf);
        }
    }
    os_list_free(keys, n);
    return rc;
}

int gc_retention_set(objstore *os, int64_t seconds)
{
    char **keys, key[64], body[32];
    size_t n;
    if (seconds < 0) return -EINVAL;
    int blen = snprintf(body, sizeof body, "%" PRId64 "\n", seconds);
    for (int attempt = 0; attempt < 8; attempt++) {
        int rc = os_list(os, GC_SETTINGS_RETENTION, &keys, &n);
        if (rc) return rc;
        uint64_t next = n ? strtoull(keys[n - 1] + strlen(GC_SETTINGS_RETENTION), NULL, 10) + 1 : 1;
        os_list_free(keys, n);
        snprintf(key, sizeof key, GC_SETTINGS_RETENTION "%020" PRIu64, next);
        rc = os_put_if_absent(os, key, body, (size_t)blen);
        if (rc != -EEXIST) return rc;             /* else someone set it meanwhile: after theirs */
    }
    return -EBUSY;
}
