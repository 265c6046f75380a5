/*
 * journal_remote.h -- the branch journal in the object store, for
 * durability=remote: fsync returns once the synced batches are an object.
 *
 * Each mount of a branch is a session, numbered by the manifest generation
 * it committed when it opened.  On every sync the session uploads the
 * batches committed since its last upload as one segment object,
 * branches/NAME/journal/SESSION/FIRST (both 20-digit decimals), so a
 * session's segments form a chain: each starts at the seq after the
 * previous one's last.  Segments are created with put-if-absent, and the
 * chain is what makes takeover safe: the next session folds the chain into
 * its own state and then puts a fence marker under the name the old
 * session's next segment would take.  From then on the old session's
 * upload fails (-EEXIST, fenced), so it can never acknowledge a sync whose
 * batches the new session did not see.
 *
 * Segment object: a 64-byte header (magic "LKJSEG01", kind, first, last,
 * session, fencer, payload length, CRC-32C of header and payload) and, for
 * a data segment, the batches FIRST..LAST, each as u32 length + payload
 * (the journal payload of store.c, which starts with its seq).
 */
#ifndef LAKEFS_JOURNAL_REMOTE_H
#define LAKEFS_JOURNAL_REMOTE_H

#include <stddef.h>
#include <stdint.h>
#include "../objstore/objstore.h"

/* Called for each batch payload of a claimed chain, oldest first. */
typedef int (*jremote_apply_fn)(void *arg, const uint8_t *batch, size_t len);

/* Upload batches FIRST..LAST of SESSION (RECS: LEN bytes of u32 length +
 * payload records).  0; -ESTALE if another session fenced this name; or
 * -EEXIST with *TAKEN_LAST set if an earlier attempt of ours already
 * stored batches FIRST..*TAKEN_LAST there; or -errno. */
int jremote_put(objstore *os, const char *branch, uint64_t session, uint64_t first,
                uint64_t last, const void *recs, size_t len, uint64_t *taken_last);

/* Take over SESSION's chain from seq FROM: hand every batch with seq >=
 * FROM to FN in order, then fence the chain's end for FENCER, so that
 * SESSION can never add to it.  *END gets the last seq handed over (FROM-1
 * if none). */
int jremote_claim(objstore *os, const char *branch, uint64_t session, uint64_t from,
                  uint64_t fencer, jremote_apply_fn fn, void *arg, uint64_t *end);

/* Delete SESSION's data segments whose batches are all <= UPTO (fence
 * markers stay: they must outlive the session they fence). */
int jremote_trim(objstore *os, const char *branch, uint64_t session, uint64_t upto);

/* Encode a segment object into a malloc'd *OUT (exposed for tests). */
int jremote_encode(int fence, uint64_t session, uint64_t first, uint64_t last,
                   uint64_t fencer, const void *recs, size_t len, void **out, size_t *outlen);
/* Check a segment object; on success *FENCE, *FIRST, *LAST and the
 * records (*RECS, *RECLEN, pointing into BUF) are set; -EIO on any defect. */
int jremote_decode(const void *buf, size_t len, int *fence, uint64_t *first, uint64_t *last,
                   const uint8_t **recs, size_t *reclen);

#endif
