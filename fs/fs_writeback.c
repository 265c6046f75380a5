/*
 * fs_writeback.c -- the kernel's writeback cache on a lakefs mount: its
 * dirty-page limit, and the barrier that has the kernel write back a
 * view's dirty pages before a state of it is cut.
 *
 * With FUSE's writeback cache (fs_init) a write lands in the kernel's page
 * cache and reaches the daemon later: in the background, and at the
 * latest when its file is fsynced or closed (the kernel's FUSE flush
 * writes back and waits).  The writer does not wait for a round trip
 * through the daemon: a time-travel view's recovery evicts ~165,000 dirty
 * 8 KiB buffers for 1 GiB of WAL, each a synchronous FUSE write without it
 * (11.3 s to the first answer; 7.6 s with it, native 6.3: stop 34).
 *
 * The dirty-page limit.  The kernel holds every FUSE mount to a strict
 * share of the dirty-page budget (a FUSE server it does not trust must not
 * pin the machine's memory), and a writer past it waits for writeback:
 * fio 8 KiB random writes lost 14-20% with it, nothing without it.  lakefs
 * is mounted by root and trusted like a disk's driver, so its mount gets
 * the budget a disk gets: strict_limit 0 in /sys/class/bdi/DEV/ (Linux
 * 6.2 on).  Where that cannot be done the limit stays: slower, not wrong.
 *
 * The barrier.  What the daemon holds is then no longer every write the
 * server made, in its order, but what a machine's crash would leave: what
 * was fsynced or closed, and some of the rest.  PostgreSQL with fsync on
 * (its default) is built for that; without fsync (initdb, which syncs
 * every file only at its end, global/pg_control before pg_wal/) a state
 * cut at its checkpoint could name a checkpoint record its pg_wal/ did
 * not hold yet.  So before a state that is to serve as a base for time
 * travel or as a branch point is cut (fs_view.c: a checkpoint seen, a
 * branch's checkpoint asked for), the daemon has the kernel write back the
 * view's dirty pages and waits for them.  Only files open for writing can
 * have any (a close writes back), so the daemon counts them here (open,
 * create, release) and fsyncs each: syncfs(2) would not do, the kernel
 * does not wait for FUSE writeback in it (FUSE superblocks are marked
 * SB_I_NO_DATA_INTEGRITY).  The daemon reaches its own files without a
 * path: open_by_handle_at(2) with the handle the kernel gives a FUSE inode
 * (FILEID_INO64_GEN: the node id in two 32-bit halves and the generation,
 * always 0 here), relative to a descriptor of a detached clone of the
 * mount (open_tree(2), OPEN_TREE_CLONE): one of the mount itself would
 * make an umount meanwhile fail with EBUSY, while the clone keeps the
 * mount's superblock, and so the daemon, only until it is closed.  The
 * clone must be the daemon's own mount (its device, read from mountinfo
 * at mount time): something mounted over the mount point later is not.
 * The barrier runs in a child process the daemon forks (only system calls
 * in it, none of the daemon's descriptors): a thread of the daemon itself
 * must never wait on its own mount, because a close's FUSE flush waits
 * for its answer uninterruptibly, and a daemon killed (kill -9) while one
 * of its threads does cannot end: its /dev/fuse descriptor stays open
 * with that thread, so the kernel never aborts the connection (seen in
 * t52).  The child holds no /dev/fuse descriptor: were the daemon killed,
 * the connection ends and so do the child's requests.  The fsyncs of the
 * barrier's process need no journal sync (fs_writeback_own): their writes
 * are applied, and the cut that follows stores them.
 *
 * Both need root (CAP_SYS_ADMIN for open_tree, CAP_DAC_READ_SEARCH for
 * open_by_handle_at); a daemon that is not root runs without the
 * writeback cache.  The barrier waits for FUSE requests: it must not be
 * called from a request's handler, or with anything held that one needs.
 *
 * The WAL bypasses the cache (fs_writeback_bypass_*).  The WAL observer
 * (fs/pg/pg_wal.c) takes a segment's writes as PostgreSQL's WAL writer
 * makes them: in LSN order, each stamped with the time it arrives, the
 * highest LSN written being where the branch's WAL ends.  The kernel's
 * writeback sends a file's dirty pages as concurrent requests in any
 * order (bulk loads without a commit's fsync left holes of up to 1 MiB
 * below the highest LSN written, seven in a `pgbench -i -s 5`), so a
 * state cut then recorded a WAL end whose WAL it lacked: a branch made at
 * a moment after it copied the WAL from that end on and replayed into the
 * hole (t90 on s3://, once in three suite runs).  And a segment recycled
 * (renamed ahead) with dirty pages would have them archived under its new
 * name.  So a segment opened for writing, and any file created in
 * pg_wal/, is opened with direct I/O: its writes reach the daemon at once
 * and in order, as without the cache; PostgreSQL fsyncs its WAL at every
 * commit, so that costs no round trip the cache saved.  Reads of the WAL
 * (recovery, a walsender) stay cached: the kernel drops cached pages a
 * direct write overwrites (Linux 6.18 here; tests/e2e/t21 checks it).
 */
#include "fs_impl.h"
#include "../util/mountinfo.h"

#include <linux/mount.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

#define FUSE_HANDLE_TYPE 0x81     /* FILEID_INO64_GEN: what FUSE's encode_fh gives a file */

int fs_writeback_setup(fs_mount *m, const char *mountpoint, char *why, size_t whylen)
{
    char dev[32], path[128];
    unsigned major, minor;
    *why = 0;
    if (geteuid() != 0) {
        snprintf(why, whylen, "the daemon is not root (the write-back barrier needs it)");
        return -EPERM;
    }
    int rc = mountinfo_device("/proc/self/mountinfo", mountpoint, dev, sizeof dev);
    if (!rc && sscanf(dev, "%u:%u", &major, &minor) != 2) rc = -EINVAL;
    if (rc) {
        snprintf(why, whylen, "cannot find the mount's device in /proc/self/mountinfo: %s", strerror(-rc));
        return rc;
    }
    m->wb_mountpoint = strdup(mountpoint);
    if (!m->wb_mountpoint) return -ENOMEM;
    m->wb_dev = makedev(major, minor);
    m->writeback = 1;
    snprintf(path, sizeof path, "/sys/class/bdi/%s/strict_limit", dev);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    rc = fd < 0 ? -errno : write(fd, "0\n", 2) == 2 ? 0 : -errno;
    if (fd >= 0 && close(fd) && !rc) rc = -errno;
    if (rc)
        snprintf(why, whylen, "the kernel's strict dirty-page limit for FUSE stays on (%s: %s; it needs Linux 6.2): "
                 "writes may wait for writeback", path, strerror(-rc));
    return 0;
}

/* The bucket of FUSE inode INO in the table of files open for writing. */
static size_t writer_bucket(fuse_ino_t ino)
{
    return (size_t)((ino * 0x9E3779B97F4A7C15ull) >> 54) % FS_WRITER_BUCKETS;
}

int fs_writeback_bypass_open(fs_mount *m, const fs_ref *r, int flags)
{
    if (!m->writeback || !r->v || (r->sino & ARCH_BIT)) return 0;
    return (flags & O_ACCMODE) != O_RDONLY && pg_wal_is_segment(r->v->wal, r->sino) > 0;
}

int fs_writeback_bypass_create(fs_mount *m, const fs_ref *dir)
{
    uint64_t waldir;
    if (!m->writeback || !dir->v || (dir->sino & ARCH_BIT)) return 0;
    return !pg_wal_dir(dir->st, &waldir) && waldir == dir->sino;
}

void fs_writeback_track(fs_mount *m, fuse_ino_t ino, int flags, int delta)
{
    if (!m->writeback || (flags & O_ACCMODE) == O_RDONLY) return;   /* set before serving, never changed */
    size_t b = writer_bucket(ino);
    pthread_mutex_lock(&m->writers_mu);
    fs_writer **p = &m->writers[b];
    while (*p && (*p)->ino != ino) p = &(*p)->next;
    if (!*p && delta > 0 && (*p = calloc(1, sizeof **p))) (*p)->ino = ino;
    if (*p && ((*p)->opens += delta) <= 0) {
        fs_writer *gone = *p;
        *p = gone->next;
        free(gone);
    }
    pthread_mutex_unlock(&m->writers_mu);
}

/* The FUSE inodes of view ID open for writing now, into a new *INOS. */
static int writers_of(fs_mount *m, uint32_t id, fuse_ino_t **inos, size_t *n)
{
    size_t cap = 0;
    *inos = NULL;
    *n = 0;
    pthread_mutex_lock(&m->writers_mu);
    for (size_t b = 0; b < FS_WRITER_BUCKETS; b++)
        for (fs_writer *w = m->writers[b]; w; w = w->next) {
            if (w->ino >> VIEW_SHIFT != id) continue;
            if (*n == cap) {
                fuse_ino_t *grown = realloc(*inos, (cap = cap ? 2 * cap : 16) * sizeof *grown);
                if (!grown) { pthread_mutex_unlock(&m->writers_mu); free(*inos); *inos = NULL; return -ENOMEM; }
                *inos = grown;
            }
            (*inos)[(*n)++] = w->ino;
        }
    pthread_mutex_unlock(&m->writers_mu);
    return 0;
}

/* The barrier's process: only system calls, it is a child of a threaded
 * process.  Waits for a byte on descriptor 0 (its pid is known to the
 * daemon then), opens a detached clone of the mount at MOUNTPOINT, checks
 * that it is DEV, and fsyncs the FUSE inodes INOS[0..N) through it (an
 * inode the kernel has forgotten was closed: written back).  Never
 * returns: exits 0 or with an errno. */
static void barrier_child(const char *mountpoint, dev_t dev, const fuse_ino_t *inos, size_t n)
{
    char go;
    if (read(0, &go, 1) != 1) _exit(ECANCELED);
    int clone = (int)syscall(SYS_open_tree, AT_FDCWD, mountpoint, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    if (clone < 0) _exit(errno);
    int root = openat(clone, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct stat st;
    if (root < 0 || fstat(root, &st)) _exit(errno);
    if (st.st_dev != dev) _exit(ESTALE);    /* another filesystem is mounted over ours */
    for (size_t i = 0; i < n; i++) {
        union {
            struct file_handle fh;
            char bytes[sizeof(struct file_handle) + 12];
        } h;
        uint32_t words[3] = { (uint32_t)(inos[i] >> 32), (uint32_t)inos[i], 0 };
        h.fh.handle_bytes = sizeof words;
        h.fh.handle_type = FUSE_HANDLE_TYPE;
        memcpy(h.fh.f_handle, words, sizeof words);
        int fd = open_by_handle_at(root, &h.fh, O_RDONLY | O_CLOEXEC);
        if (fd < 0 && errno != ESTALE && errno != ENOENT) _exit(errno);
        if (fd >= 0 && fsync(fd)) _exit(errno);
        if (fd >= 0) close(fd);
    }
    _exit(0);
}

int fs_writeback_barrier(fs_mount *m, uint32_t id)
{
    fuse_ino_t *inos;
    size_t n;
    int go[2], rc = writers_of(m, id, &inos, &n);
    if (rc || !n) return rc;
    pthread_mutex_lock(&m->barrier_mu);   /* one at a time: the daemon knows its pid */
    if (pipe2(go, O_CLOEXEC)) {
        rc = -errno;
        goto out;
    }
    pid_t pid = _Fork();
    if (pid == 0) {
        /* the child keeps no descriptor of /dev/fuse: were the daemon
         * killed, its connection must end, and the child's requests too */
        if (dup2(go[0], 0) < 0) _exit(errno);
        syscall(SYS_close_range, 1u, ~0u, 0u);
        barrier_child(m->wb_mountpoint, m->wb_dev, inos, n);
    }
    if (pid < 0) {
        rc = -errno;
    } else {
        __atomic_store_n(&m->barrier_pid, pid, __ATOMIC_RELEASE);
        if (write(go[1], "g", 1) != 1) rc = -errno;   /* the child then reads EOF and gives up */
    }
    close(go[0]);
    close(go[1]);
    if (pid > 0) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        __atomic_store_n(&m->barrier_pid, 0, __ATOMIC_RELEASE);
        if (!rc) rc = WIFEXITED(status) ? -WEXITSTATUS(status) : -EIO;
    }
out:
    pthread_mutex_unlock(&m->barrier_mu);
    free(inos);
    return rc;
}

int fs_writeback_own(fs_mount *m, fuse_req_t req)
{
    pid_t pid = __atomic_load_n(&m->barrier_pid, __ATOMIC_ACQUIRE);
    return pid > 0 && fuse_req_ctx(req)->pid == pid;
}

void fs_writeback_free(fs_mount *m)
{
    for (size_t b = 0; b < FS_WRITER_BUCKETS; b++)
        while (m->writers[b]) {
            fs_writer *w = m->writers[b];
            m->writers[b] = w->next;
            free(w);
        }
    free(m->wb_mountpoint);
    m->wb_mountpoint = NULL;
    m->writeback = 0;
}
