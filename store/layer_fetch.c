/*
 * layer_fetch.c -- fetching layer blocks into the block cache: one fetch
 * of a block at a time, read-ahead of sequential readers, and warming.
 *
 * A block is fetched by one thread at a time: while it is on the in-flight
 * list, a reader that needs it waits for that fetch and then finds it in
 * the cache (a prefetch skips it), so concurrent readers of one block, e.g.
 * FUSE threads serving neighbouring parts of one kernel read-ahead, do not
 * download it twice.
 *
 * Read-ahead.  One ranged get per block costs a round trip per ~64 KiB,
 * which on S3 limits a sequential reader to a few MB/s.  A PostgreSQL
 * sequential scan reads consecutive pages of a relation, which are
 * consecutive keys and so consecutive blocks of a layer.  Each layer tracks
 * a few sequential runs (RA_STREAMS): a read of block B continues the run
 * that last read B - 1 if it enters B at its first key, as a reader going
 * through consecutive keys does.  When a run has read RA_RUN blocks, it
 * queues prefetches of the next RA_FIRST blocks; each further block doubles
 * its window, up to the limit set by layer_readahead_set (RA_DEFAULT blocks
 * unless set; 0 turns read-ahead off), and the run keeps that many blocks
 * past the reader cached or queued.  Once a run's window is open, any read
 * within RA_BATCH blocks of it belongs to it: the kernel's read-ahead
 * reaches the daemon as several reads served by concurrent threads, out of
 * order and entering blocks anywhere, which would otherwise each start a
 * run of their own.  A read that continues no run replaces the least
 * recently used run and prefetches nothing.  Random reads almost never
 * prefetch: it would take RA_RUN - 1 of them in a row each landing on the
 * first key of the block after a recent one.
 *
 * Cost model of the prefetch requests: an S3 server's cost is per request
 * at these sizes (a local Ceph RGW on 2 cores serves ~1,000 ranged GETs a
 * second whether they ask 64 KiB or several times that; 1 MiB GETs run at
 * 800+ MB/s), and a real bucket adds 10-50 ms to each.  So a run queues its
 * window in jobs of up to RA_BATCH consecutive blocks (~1 MiB), each one
 * os_get_ranges: one ranged get for the blocks not already cached, which
 * the disk cache (objcache.c) still keeps as the same per-block ranges a
 * reader asks for.  A run tops its window up a slice at a time (ra_batch),
 * not a block each time the reader moves on, so jobs stay large; and a
 * reader that needs a block of a job still queued runs that job itself
 * (ra_take) instead of fetching the one block and splitting the job's range.
 * Throughput is then at most the bytes in flight per round trip.
 *
 * RA_WORKERS threads, started at the first prefetch, take jobs from a
 * bounded queue (RA_QUEUE; a job that does not fit is left out, and the run
 * tries it again at the reader's next block) and load blocks in parallel
 * (the S3 backend runs concurrent calls on separate connections) through
 * the reader's checks: checksum, decompression, block cache.  Prefetch
 * errors are silent: the reader then fetches the block itself and reports.
 * A job points at its layer without holding it, so a
 * queued prefetch never keeps a layer open: layer_close drops the layer's
 * queued jobs and waits for its running ones (one get each), after which no
 * prefetch touches the layer or its object store.  Read-ahead is on for
 * every backend: on file:// it still overlaps reads, checksums and
 * decompression of the blocks ahead with the reader's work.
 */
#include "layer_impl.h"
#include "layer_format.h"
#include "../util/crc32c.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

typedef struct fetch {            /* a block being fetched by some thread */
    struct fetch *next;
    const char *id;               /* layer identity (the fetcher's layer's) */
    uint64_t hash;
    size_t blockno;
} fetch;

typedef struct ra_job {           /* a queued prefetch */
    layer *l;
    size_t b, n;                  /* blocks [b, b + n), n <= RA_BATCH */
} ra_job;

typedef struct ra_ring {          /* a bounded FIFO of jobs */
    ra_job job[RA_QUEUE];
    size_t head, len;             /* oldest job, jobs queued */
} ra_ring;

/* ra_mu guards the in-flight list, the job queue, the workers and every
 * layer's ra_busy; ra_done is broadcast when a fetch or a job ends. */
static pthread_mutex_t ra_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ra_done = PTHREAD_COND_INITIALIZER;
static pthread_cond_t ra_wake = PTHREAD_COND_INITIALIZER;  /* a job queued */
static fetch *inflight;           /* blocks being fetched */
static ra_ring ra_reads;          /* read-ahead jobs: served first */
static ra_ring ra_warms;          /* warming jobs (layer_warm) */
static int ra_warming;            /* workers running a warming job */
static int ra_workers;            /* prefetch threads started */
static layer *ra_running[RA_WORKERS];  /* the layer each worker prefetches from now */
static atomic_size_t ra_max = RA_DEFAULT;  /* largest window; 0: off */
static atomic_uint_fast64_t ra_prefetched, ra_hits;  /* layer_readahead_stats */

/* Take R's oldest job off it (R not empty; ra_mu held). */
static ra_job ring_pop(ra_ring *r)
{
    ra_job j = r->job[r->head];

    r->head = (r->head + 1) % RA_QUEUE;
    r->len--;
    return j;
}

/* Take the job of R that covers block B of L off R into *J; 1 if there was
 * one (ra_mu held). */
static int ring_take(ra_ring *r, const layer *l, size_t b, ra_job *j)
{
    size_t i;

    for (i = 0; i < r->len; i++) {
        ra_job *q = &r->job[(r->head + i) % RA_QUEUE];
        if (q->l == l && q->b <= b && b < q->b + q->n)
            break;
    }
    if (i == r->len)
        return 0;
    *j = r->job[(r->head + i) % RA_QUEUE];
    for (; i + 1 < r->len; i++)   /* close the gap it leaves */
        r->job[(r->head + i) % RA_QUEUE] = r->job[(r->head + i + 1) % RA_QUEUE];
    r->len--;
    return 1;
}

/* Drop every job of L from R (ra_mu held). */
static void ring_drop(ra_ring *r, const layer *l)
{
    size_t n = 0;

    for (size_t i = 0; i < r->len; i++) {
        ra_job j = r->job[(r->head + i) % RA_QUEUE];
        if (j.l != l)
            r->job[(r->head + n++) % RA_QUEUE] = j;
    }
    r->len = n;
}

/* The fetch of F's block under way, or NULL (ra_mu held). */
static fetch *fetch_find_locked(const fetch *f)
{
    fetch *o;

    for (o = inflight; o; o = o->next)
        if (o->hash == f->hash && o->blockno == f->blockno &&
            strcmp(o->id, f->id) == 0)
            break;
    return o;
}

/* Put F on the in-flight list and return 1, unless its block is being
 * fetched already: then return 0 (ra_mu held). */
static int fetch_claim_locked(fetch *f)
{
    if (fetch_find_locked(f))
        return 0;
    f->next = inflight;
    inflight = f;
    return 1;
}

/* fetch_claim_locked; but a 0 only once the fetch under way has ended. */
static int fetch_claim(fetch *f)
{
    int claimed;

    pthread_mutex_lock(&ra_mu);
    claimed = fetch_claim_locked(f);
    while (!claimed && fetch_find_locked(f))
        pthread_cond_wait(&ra_done, &ra_mu);
    pthread_mutex_unlock(&ra_mu);
    return claimed;
}

/* Take F off the in-flight list (ra_mu held; the caller wakes waiters). */
static void fetch_end_locked(fetch *f)
{
    fetch **pp;

    for (pp = &inflight; *pp != f; pp = &(*pp)->next)
        ;
    *pp = f->next;
}

/* Take F off the in-flight list and wake the threads waiting for it. */
static void fetch_end(fetch *f)
{
    pthread_mutex_lock(&ra_mu);
    fetch_end_locked(f);
    pthread_cond_broadcast(&ra_done);
    pthread_mutex_unlock(&ra_mu);
}

/* Verify and decompress block B (HASH) of L from BUF (GOT bytes, freed
 * here) into the cache and *OUT, which the caller releases; -EIO on any
 * defect, logged unless PREFETCH. */
static int block_decode(layer *l, size_t b, uint64_t hash, int prefetch,
                        void *buf, size_t got, cblock **out)
{
    const lblock *lb = &l->blocks[b];
    size_t r;
    cblock *c;

    if (got != lb->clen || crc32c(0, buf, got) != lb->crc) {
        if (!prefetch)
            fprintf(stderr, "lakefs: layer %s block %zu: %s\n", l->name, b,
                    got != lb->clen ? "short read" : "checksum mismatch");
        free(buf);
        return -EIO;
    }
    c = malloc(sizeof(*c) + lb->rawlen);
    if (!c || !(c->id = strdup(l->id))) {
        free(c);
        free(buf);
        return -ENOMEM;
    }
    r = ZSTD_decompress(c->data, lb->rawlen, buf, got);
    free(buf);
    if (ZSTD_isError(r) || r != lb->rawlen ||
        lread_block_check(l, b, c->data, lb->rawlen) < 0) {
        if (!prefetch)
            fprintf(stderr, "lakefs: layer %s block %zu: malformed block\n",
                    l->name, b);
        free(c->id);
        free(c);
        return -EIO;
    }
    c->hnext = c->prev = c->next = NULL;
    c->hash = hash;
    c->blockno = b;
    c->refs = 1;
    atomic_init(&c->prefetched, prefetch);
    c->len = lb->rawlen;
    lcache_insert(&c);
    *out = c;
    return 0;
}

/* Get, verify and decompress block B (HASH) of L into the cache and *OUT,
 * which the caller releases; -EIO on any defect, logged. */
static int block_fetch(layer *l, size_t b, uint64_t hash, cblock **out)
{
    const lblock *lb = &l->blocks[b];
    void *buf = NULL;
    size_t got = 0;
    int rc;

    rc = os_get(l->os, l->name, lb->off, lb->clen, &buf, &got);
    if (rc < 0) {
        fprintf(stderr, "lakefs: layer %s block %zu: %s\n", l->name, b,
                strerror(-rc));
        return -EIO;
    }
    return block_decode(l, b, hash, 0, buf, got, out);
}

static int ra_take(layer *l, size_t b);

/* Block B of L, from the cache or fetched, into *OUT, which the caller
 * releases with lcache_release; -EIO on any defect.  A reader waits for a
 * fetch of the block already under way, runs a queued prefetch of it
 * itself, and counts its first read of a prefetched block.  The cache is
 * looked at again once the block is claimed: a fetch that ended between
 * the first look and the claim has cached it, and fetching it again would
 * cost a second get of the same bytes. */
int lfetch_block(layer *l, size_t b, cblock **out)
{
    fetch f = { NULL, l->id, lcache_hash(l->id, b), b };
    int claimed = 0, rc;

    for (;;) {
        if ((*out = lcache_lookup(l->id, f.hash, b)) != NULL) {
            if (claimed)
                fetch_end(&f);
            if (atomic_exchange(&(*out)->prefetched, 0))
                atomic_fetch_add(&ra_hits, 1);
            return 0;
        }
        if (claimed)
            break;
        if (ra_take(l, b))
            continue;
        claimed = fetch_claim(&f);
    }
    rc = block_fetch(l, b, f.hash, out);
    fetch_end(&f);
    return rc;
}

/* ---- read-ahead ---- */

/* Load the blocks of [FROM, FROM + N) of L that are neither cached nor
 * being fetched, each run of consecutive ones with one os_get_ranges
 * (N <= RA_BATCH); errors are left to the reader to meet and report.
 * Called and returns with ra_mu held, which it drops around the gets: the
 * caller has taken the job off the queue under it, so the first run's
 * blocks are claimed before a reader could find them neither queued nor
 * in flight and fetch one alone, splitting the run. */
static void ra_prefetch_locked(layer *l, size_t from, size_t n)
{
    fetch f[RA_BATCH];
    uint32_t lens[RA_BATCH];
    void *bufs[RA_BATCH];
    size_t b = from, end = from + n, run, i;
    cblock *c;

    while (b < end) {
        for (run = 0; b + run < end; run++) {
            f[run] = (fetch){ NULL, l->id, lcache_hash(l->id, b + run), b + run };
            if (!lcache_wants(l->id, f[run].hash, b + run) ||
                !fetch_claim_locked(&f[run]))
                break;
            lens[run] = l->blocks[b + run].clen;
        }
        if (run > 0) {
            pthread_mutex_unlock(&ra_mu);
            if (os_get_ranges(l->os, l->name, l->blocks[b].off, lens, run, bufs) == 0)
                for (i = 0; i < run; i++)
                    if (block_decode(l, b + i, f[i].hash, 1, bufs[i], lens[i], &c) == 0) {
                        lcache_release(c);
                        atomic_fetch_add(&ra_prefetched, 1);
                    }
            pthread_mutex_lock(&ra_mu);
            for (i = 0; i < run; i++)
                fetch_end_locked(&f[i]);
            pthread_cond_broadcast(&ra_done);
        }
        b += run + 1;             /* past the run and the block ending it */
    }
}

/* If a queued prefetch job of L covers block B, take it off the queue and
 * run it in this thread (a reader that caught up with the read-ahead: one
 * get of the job's blocks, not one of B alone that would split the job's
 * range in two); 1 if it did. */
static int ra_take(layer *l, size_t b)
{
    ra_job j;
    int found;

    pthread_mutex_lock(&ra_mu);
    found = ring_take(&ra_reads, l, b, &j) || ring_take(&ra_warms, l, b, &j);
    if (found) {
        l->ra_busy++;
        ra_prefetch_locked(l, j.b, j.n);
        l->ra_busy--;
        pthread_cond_broadcast(&ra_done);
    }
    pthread_mutex_unlock(&ra_mu);
    return found;
}

/* A warming job may start: one is queued and fewer than RA_WARMERS run
 * (ra_mu held). */
static int ra_warm_ready_locked(void)
{
    return ra_warms.len > 0 && ra_warming < RA_WARMERS;
}

/* Prefetch thread number ARG: load queued blocks, forever; read-ahead
 * first, a warming job only when no read-ahead job waits. */
static void *ra_worker(void *arg)
{
    size_t me = (size_t)(uintptr_t)arg;
    pthread_mutex_lock(&ra_mu);
    for (;;) {
        ra_job j;
        int warm;

        while (ra_reads.len == 0 && !ra_warm_ready_locked())
            pthread_cond_wait(&ra_wake, &ra_mu);
        warm = ra_reads.len == 0;
        j = ring_pop(warm ? &ra_warms : &ra_reads);
        ra_warming += warm;
        j.l->ra_busy++;
        ra_running[me] = j.l;
        ra_prefetch_locked(j.l, j.b, j.n);
        ra_running[me] = NULL;
        j.l->ra_busy--;
        ra_warming -= warm;
        if (warm && ra_warm_ready_locked())
            pthread_cond_signal(&ra_wake);
        pthread_cond_broadcast(&ra_done);  /* for lfetch_forget, layer_warm */
    }
    return NULL;
}

/* fork(): the locks are taken around it, so that the child gets them in a
 * consistent state; the child has none of the prefetch threads, so it
 * forgets their jobs and fetches and starts threads of its own. */
static void ra_fork_prepare(void)
{
    pthread_mutex_lock(&ra_mu);
    lcache_lock();
}

static void ra_fork_parent(void)
{
    lcache_unlock();
    pthread_mutex_unlock(&ra_mu);
}

static void ra_fork_child(void)
{
    for (size_t i = 0; i < RA_WORKERS; i++)
        if (ra_running[i]) {
            ra_running[i]->ra_busy--;
            ra_running[i] = NULL;
        }
    ra_workers = ra_warming = 0;
    ra_reads.len = ra_warms.len = 0;
    inflight = NULL;              /* fetches of threads that are not here */
    pthread_cond_init(&ra_wake, NULL);
    pthread_cond_init(&ra_done, NULL);
    lcache_unlock();
    pthread_mutex_unlock(&ra_mu);
}

static void ra_atfork(void)
{
    pthread_atfork(ra_fork_prepare, ra_fork_parent, ra_fork_child);
}

/* Start the prefetch threads, with every signal blocked as libfuse's own
 * workers have them (ra_mu held); returns how many run. */
static int ra_start(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    sigset_t all, old;
    pthread_t t;

    pthread_once(&once, ra_atfork);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    while (ra_workers < RA_WORKERS &&
           pthread_create(&t, NULL, ra_worker, (void *)(uintptr_t)ra_workers) == 0) {
        pthread_detach(t);
        ra_workers++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return ra_workers;
}

/* Queue the job of blocks [B, B + N) of L on R for a prefetch thread
 * (ra_mu held, room in R). */
static void ra_push_locked(ra_ring *r, layer *l, size_t b, size_t n)
{
    r->job[(r->head + r->len++) % RA_QUEUE] = (ra_job){ l, b, n };
    pthread_cond_signal(&ra_wake);
}

/* Queue prefetches of the blocks in [FROM, TO) of L, RA_BATCH at most to
 * a job; returns the first block left out for want of queue room (else TO). */
static size_t ra_submit(layer *l, size_t from, size_t to)
{
    size_t b;

    pthread_mutex_lock(&ra_mu);
    for (b = from; b < to && ra_reads.len < RA_QUEUE && (ra_workers || ra_start());) {
        size_t n = to - b < RA_BATCH ? to - b : RA_BATCH;
        ra_push_locked(&ra_reads, l, b, n);
        b += n;
    }
    pthread_mutex_unlock(&ra_mu);
    return b;
}

/* Blocks a run with WINDOW blocks ahead queues at once: a slice of the
 * window up to RA_BATCH, so that its jobs become few large gets, not one
 * get per block the reader moves on. */
static size_t ra_batch(size_t window)
{
    return window / 2 < RA_BATCH ? (window / 2 ? window / 2 : 1) : RA_BATCH;
}

/* 1 if a read of block B (entered at its first key: AT_START) belongs to
 * run S: it reads S's last block again, or the next one from its start; or
 * S is established (its window open) and B lies within RA_BATCH blocks of
 * where S stands, as the reads of concurrent FUSE threads serving one
 * kernel read-ahead do, arriving out of order and entering blocks anywhere
 * (without that slack each of them would start a run of its own and reset
 * the window). */
static int ra_continues(const ra_stream *s, size_t b, int at_start)
{
    if (s->next == b + 1 || (b && at_start && s->next == b))
        return 1;
    return s->window && s->next && b + RA_BATCH >= s->next &&
           b < s->next + RA_BATCH;
}

/* Note a read of block B of L that enters it at KEY (NULL: at its start):
 * once it makes a sequential run RA_RUN blocks long, keep the run's window
 * of blocks past B cached or queued. */
void lfetch_note_read(layer *l, size_t b, const uint8_t *key, size_t klen)
{
    size_t max = atomic_load(&ra_max), to;
    ra_stream *s = NULL;
    int at_start;

    if (max == 0)
        return;
    at_start = !key || layer_keycmp(key, klen, l->blocks[b].first,
                                    l->blocks[b].firstlen) <= 0;
    pthread_mutex_lock(&l->ra_lock);
    for (int i = 0; i < RA_STREAMS && !s; i++)
        if (ra_continues(&l->ra[i], b, at_start))
            s = &l->ra[i];
    if (!s) {                     /* a new run replaces the oldest */
        s = &l->ra[0];
        for (int i = 1; i < RA_STREAMS; i++)
            if (l->ra[i].used < s->used)
                s = &l->ra[i];
        *s = (ra_stream){ b + 1, 1, b + 1, 0, 0 };
    } else if (b >= s->next) {    /* the run goes on */
        s->next = b + 1;
        if (++s->len >= RA_RUN) { /* widen the window, top it up */
            s->window = !s->window ? RA_FIRST :
                        s->window > max / 2 ? max : s->window * 2;
            if (s->window > max)
                s->window = max;
            if (s->end < b + 1)
                s->end = b + 1;
            to = s->window < l->nblocks - b - 1 ? b + 1 + s->window : l->nblocks;
            if (s->end < to && (to - s->end >= ra_batch(s->window) || to == l->nblocks))
                s->end = ra_submit(l, s->end, to);
        }
    }
    s->used = ++l->ra_clock;
    pthread_mutex_unlock(&l->ra_lock);
}

/* Drop L's queued prefetches and wait for its running ones to end. */
void lfetch_forget(layer *l)
{
    pthread_mutex_lock(&ra_mu);
    ring_drop(&ra_reads, l);
    ring_drop(&ra_warms, l);
    while (l->ra_busy)
        pthread_cond_wait(&ra_done, &ra_mu);
    pthread_mutex_unlock(&ra_mu);
}

/* Keep up to BLOCKS blocks read ahead of a sequential reader; 0: off. */
void layer_readahead_set(size_t blocks)
{
    atomic_store(&ra_max, blocks);
}

/* A snapshot of the read-ahead counters. */
void layer_readahead_stats(layer_ra_counters *out)
{
    out->prefetched = atomic_load(&ra_prefetched);
    out->hits = atomic_load(&ra_hits);
}

/* qsort order of block numbers. */
static int cmp_blockno(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

/* Cost model: the keys a server read first at its last start are spread
 * over a few files, mostly their first pages, so many fall in the same or
 * adjacent blocks; one get per key (as a reader would do) costs a request
 * and a cache file each, where runs of blocks cost one of each per run.
 * Warming is a guess and readers are not: its jobs wait in a queue of
 * their own that the workers serve only when no read-ahead job waits, and
 * at most RA_WARMERS at once, so a sequential reader's window never queues
 * behind them and keeps most of the object store's concurrency. */
void layer_warm(layer *l, const uint8_t *const *keys, const size_t *lens,
                size_t n, uint64_t *budget)
{
    size_t *bs = malloc((n ? n : 1) * sizeof(*bs)), nb = 0, i;

    if (!bs)
        return;
    for (i = 0; i < n; i++)
        if (layer_may_hold(l, keys[i], lens[i]))
            bs[nb++] = (size_t)lread_block_find(l, keys[i], lens[i]);
    qsort(bs, nb, sizeof(*bs), cmp_blockno);
    pthread_mutex_lock(&ra_mu);
    for (i = 0; i < nb && *budget > 0 && (ra_workers || ra_start());) {
        size_t from = bs[i], to = from + 1;
        uint64_t bytes = l->blocks[from].clen;
        for (i++; i < nb && bs[i] <= to && to - from < RA_BATCH && bytes < *budget; i++)
            if (bs[i] == to)
                bytes += l->blocks[to++].clen;
        while (i < nb && bs[i] < to)  /* the run's last block again */
            i++;
        while (ra_warms.len >= RA_QUEUE)
            pthread_cond_wait(&ra_done, &ra_mu);
        ra_push_locked(&ra_warms, l, from, to - from);
        *budget -= bytes < *budget ? bytes : *budget;
    }
    pthread_mutex_unlock(&ra_mu);
    free(bs);
}
