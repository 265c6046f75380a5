/*
 * gc.h -- garbage collection: removing the manifests and layers that no
 * state within reach needs, and the repository's retention setting.
 *
 * What is kept, for every branch: its newest generation; every generation
 * that was the newest within the grace period (the last GC_GRACE_S
 * seconds, or the whole window if that is shorter); older ones within the
 * retention window thinned out to one per time slot (a slot is an eighth
 * of the window, at least the grace period and at most GC_SLOT_MAX_S;
 * slots are fixed in time, so each run keeps the same ones): time travel
 * starts from the newest kept generation before its target and replays
 * the WAL from there, so a slot bounds the replay, while every generation
 * between would keep layers that compaction replaced within minutes; the
 * newest generation made before the window (the base for a point at the
 * window's start); every generation a live reader has pinned (a mounted
 * time-travel view, store_open_snapshot).  Every layer one of those names,
 * whichever branch wrote it, is kept (a fork names its parent's layers);
 * every other layer and manifest is deleted.  A branch point needs nothing
 * more: a fork's first generation is a copy naming the parent's layers.
 *
 * Why that is safe against what runs meanwhile:
 *  - A writer (flush or compaction) uploads a layer before the generation
 *    naming it is committed.  A layer's key names the mount that wrote it
 *    (its session: store_layer_key_parse); one no manifest names at all is
 *    deleted only if its branch has since committed a generation of a later
 *    session, or its own session is over (the branch is not leased).  So a
 *    live mount's uploads are never taken from under it; a crashed or
 *    fenced mount's are, once the branch has moved on.  (A layer that only
 *    generations outside the window name was committed, so it is not in
 *    flight: the layers a live mount's compactions replaced are freed while
 *    it runs.)
 *  - A reader that loaded a generation without pinning it (a fork copying
 *    it, a daemon opening its layers, a read in flight on the layers a
 *    commit just replaced, time travel looking for its base before it pins
 *    it) loaded it while it was the newest, and holds it for less than
 *    the grace period: a generation is deleted only once it has not been
 *    the newest for the grace period.  Readers that hold a generation
 *    longer pin it.  (A search for a base whose generation goes meanwhile
 *    finds it gone and searches again.)
 *  - Pins: a view writes its pin, then loads the manifest.  The collector
 *    deletes manifests first, then lists the pins again and keeps the
 *    layers of every pinned generation, and deletes layers last.  A view
 *    whose load came after the manifest's deletion fails (the point is
 *    outside the window anyway); one whose load came before had pinned
 *    before that, so the second listing sees its pin.
 *  - A crash of the collector at any point leaves only garbage that the
 *    next run deletes: manifests go before the layers they name, and the
 *    newest generation of a branch is never deleted.
 *  - A manifest that cannot be read or decoded stops the run before any
 *    deletion: the layers it names are unknown (lakefs fsck reports it).
 *  - Start-up keys (branches/NAME/hot/GEN, store_hot.c): a mount reads only
 *    those of its branch's newest manifest, and a clean close deletes the
 *    ones it started from; a mount that crashed leaves them for good.  So
 *    those of generations older than the branch's newest are deleted; a
 *    newer one may be a closing mount's, written before its manifest.
 */
#ifndef LAKEFS_GC_H
#define LAKEFS_GC_H

#include <stdint.h>
#include <stdio.h>
#include "../objstore/objstore.h"

#define GC_RETENTION_DEFAULT (7 * 86400)   /* seconds, unless the repository sets one */
#define GC_GRACE_S 60                      /* an unpinned reader holds a generation less than this */
#define GC_SLOTS 8                         /* slots per window, past the grace period */
#define GC_SLOT_MAX_S 900                  /* ... each at most this long: the replay a view may need */

typedef struct gc_options {
    int64_t retention_s;          /* the window, seconds (>= 0) */
    int dry_run;                  /* report, delete nothing */
    int keep_all;                 /* keep every generation: remove only what none names (fsck --repair) */
    int list;                     /* print each layer freed ("orphan KEY" with keep_all) */
    FILE *out;                    /* one line per branch and a summary (or NULL) */
    int64_t now;                  /* the clock, seconds since the epoch (0: time(NULL); tests set it) */
} gc_options;

typedef struct gc_report {
    uint64_t gens_kept, gens_freed;          /* manifests */
    uint64_t layers_kept, layers_freed;      /* layer objects */
    uint64_t bytes_kept, bytes_freed;        /* of those layers */
    uint64_t layers_in_flight;               /* unnamed, but maybe a live mount's upload: kept */
    uint64_t pins_dead;                      /* pins of processes gone (deleted) */
    uint64_t hot_freed;                      /* start-up key objects of old generations */
} gc_report;

/* Collect the garbage of the repository OS as described above.  0, or
 * -errno with a one-line reason in ERR (nothing deleted if a manifest is
 * unreadable). */
int gc_run(objstore *os, const gc_options *o, gc_report *r, char *err, size_t errlen);

/* The repository's retention setting (lakefs config set retention=...),
 * seconds, into *SECONDS: GC_RETENTION_DEFAULT if never set. */
int gc_retention_get(objstore *os, int64_t *seconds);
/* Set it (a new settings object; the newest one counts). */
int gc_retention_set(objstore *os, int64_t seconds);

#endif
