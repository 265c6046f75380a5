/*
 * faultproxy -- a fault-injecting HTTP/1.1 proxy in front of an S3 server,
 * for the object-store fault tests (tests/e2e/t75_s3_faults.sh).
 *
 *   faultproxy [-p PORT] [-c CONTROL] [-s STATS] [-l LOG] UPSTREAM_HOST:PORT
 *
 * Listens on 127.0.0.1:PORT (default: a free port) and prints the port on
 * stdout, one line, once it accepts connections.  Each client connection
 * carries one request: its headers and its Content-Length body are read
 * (lakefs never sends chunked bodies), then, by the settings in CONTROL as
 * they are at that moment (the file is read again for every request):
 *
 *   down 1          the connection is closed at once, no answer (a dead server)
 *   fail503 F       a fraction F (0..1) of requests get "503 Slow Down" with an
 *                   S3 XML error body, never reaching the server
 *   delay_ms N      the request waits N ms before it is forwarded ...
 *   delay_fraction F  ... for a fraction F of requests (default 1)
 *
 * and otherwise it is forwarded unchanged on a new upstream connection
 * (the Host header included: SigV4 signs it), except that "Connection:
 * close" replaces any Connection/Keep-Alive header, and the whole answer
 * is relayed until the server closes.  Then the client connection is
 * closed; lakefs's libcurl simply reconnects.  An upstream that cannot be
 * reached (the server stopped) also gets the client connection closed
 * without an answer.
 *
 * Counters (requests, forwarded, fail503, delayed, refused, upstream_errors)
 * are written to STATS as "name value" lines (replaced atomically) by a
 * writer thread as soon as they change -- a moment after each request, not
 * under the lock the requests take -- so a test can check that faults were
 * really injected, and
 * printed on stderr at SIGTERM/SIGINT, which ends the proxy after the
 * requests in flight are cut off.
 *
 * For benchmarks (tools/bench_s3.sh) STATS also has what the client asked
 * for: requests by kind (get, list -- a GET of a bucket with a list-type,
 * prefix or delimiter query --, put, head, delete, post), bytes_down (answer
 * bytes relayed to the client) and bytes_up (request bodies), and how
 * parallel they were: busy_ms (wall time with at least one request in
 * flight, counted from its head read to its answer relayed, delay
 * included), request_ms (the sum of every request's own time) and
 * max_inflight.  request_ms / busy_ms is the mean number of requests in
 * flight while any was: 1.0 means strictly one after the other.  A
 * reader takes two snapshots and subtracts.
 *
 * LOG, if given, gets a line per request when its answer has been relayed:
 * "START_MS DURATION_MS INFLIGHT STATUS METHOD TARGET" (START_MS since the
 * proxy started; INFLIGHT: requests in flight when it began, itself
 * included; STATUS: the answer's HTTP status, 0 if none),
 * to see which requests a phase makes one after the other.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FP_MAX_CONNS 256          /* connections served at once */
#define FP_MAX_HEADER 65536       /* bytes of request headers */
#define FP_IO_TIMEOUT_MS 120000   /* a silent peer for this long is dropped */
#define FP_BUF 65536

/* Fault settings, as read from the control file. */
typedef struct fp_settings {
    int down;
    double fail503;
    long delay_ms;
    double delay_fraction;
} fp_settings;

/* Counters, written to the stats file. */
typedef struct fp_counters {
    unsigned long long requests, forwarded, fail503, delayed, refused, upstream_errors;
    unsigned long long get, list, put, head, del, post;   /* requests by kind */
    unsigned long long bytes_down, bytes_up;
    unsigned long long busy_ns, request_ns, max_inflight;
} fp_counters;

static const struct { const char *name; size_t off; } fp_fields[] = {
#define FP_FIELD(f) { #f, offsetof(fp_counters, f) }
    FP_FIELD(requests), FP_FIELD(forwarded), FP_FIELD(fail503), FP_FIELD(delayed), FP_FIELD(refused),
    FP_FIELD(upstream_errors), FP_FIELD(get), FP_FIELD(list), FP_FIELD(put), FP_FIELD(head),
    { "delete", offsetof(fp_counters, del) }, FP_FIELD(post), FP_FIELD(bytes_down), FP_FIELD(bytes_up),
    { "busy_ms", offsetof(fp_counters, busy_ns) }, { "request_ms", offsetof(fp_counters, request_ns) },
    FP_FIELD(max_inflight),
#undef FP_FIELD
};
#define FP_NFIELDS (sizeof fp_fields / sizeof fp_fields[0])

/* One client connection, served by its own thread. */
typedef struct fp_conn {
    int fd;                       /* client socket, -1: slot free */
    pthread_t thread;
    int done;                     /* the thread finished (joinable) */
} fp_conn;

static const char *ctl_path, *stats_path;
static FILE *req_log;             /* -l: a line per request (mu held to write) */
static pthread_cond_t stats_cv = PTHREAD_COND_INITIALIZER;  /* with mu: the counters changed */
static int stats_dirty, stats_done;  /* (mu) */
static unsigned long long started_ns;
static char up_host[256], up_port[16];
static volatile sig_atomic_t stopping;
static int wake_pipe[2] = { -1, -1 };   /* the signal handler wakes the accept loop */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;  /* guards everything below */
static pthread_cond_t conn_cv = PTHREAD_COND_INITIALIZER;
static fp_counters counters;
static unsigned long long inflight;     /* requests between head read and answer relayed */
static unsigned long long busy_since;   /* when inflight last went from 0 to 1 (ns) */
static fp_conn conns[FP_MAX_CONNS];
static unsigned long long rng_state;
static char last_ctl_error[256];

/* Signal handler: ask the accept loop to stop. */
static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
    if (wake_pipe[1] >= 0) {
        int saved = errno;
        ssize_t w = write(wake_pipe[1], "x", 1);
        (void)w;
        errno = saved;
    }
}

/* A uniform random number in [0, 1) (mu held). */
static double rand01_locked(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / (double)(1ULL << 53);
}

/* Parse a fraction in [0, 1] from S into *OUT; 0 on success, -1 if malformed. */
static int parse_fraction(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0.0 && v <= 1.0)) return -1;
    *out = v;
    return 0;
}

/* Parse a non-negative integer from S into *OUT; 0 on success, -1 if malformed. */
static int parse_count(const char *s, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < 0) return -1;
    *out = v;
    return 0;
}

/* Read the control file into *S (defaults: no faults); a malformed line is
 * reported once on stderr and ignored; a missing file means no faults. */
static void read_settings(fp_settings *s)
{
    *s = (fp_settings){ .down = 0, .fail503 = 0.0, .delay_ms = 0, .delay_fraction = 1.0 };
    if (!ctl_path) return;
    FILE *f = fopen(ctl_path, "r");
    if (!f) return;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        char key[64], val[128];
        if (line[0] == '#' || line[strspn(line, " \t")] == 0) continue;
        int ok = sscanf(line, "%63s %127s", key, val) == 2;
        long n = 0;
        if (ok && !strcmp(key, "down")) {
            ok = !parse_count(val, &n) && n <= 1;
            if (ok) s->down = (int)n;
        } else if (ok && !strcmp(key, "fail503")) ok = !parse_fraction(val, &s->fail503);
        else if (ok && !strcmp(key, "delay_ms")) ok = !parse_count(val, &s->delay_ms);
        else if (ok && !strcmp(key, "delay_fraction")) ok = !parse_fraction(val, &s->delay_fraction);
        else ok = 0;
        if (!ok) {
            pthread_mutex_lock(&mu);
            if (strcmp(last_ctl_error, line)) {
                snprintf(last_ctl_error, sizeof last_ctl_error, "%s", line);
                fprintf(stderr, "faultproxy: %s: ignoring malformed line '%s'\n", ctl_path, line);
            }
            pthread_mutex_unlock(&mu);
        }
    }
    fclose(f);
}

/* Monotonic nanoseconds. */
static unsigned long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

/* Write the counters C to F as "name value" pairs, each followed by SEP
 * but the last (then a newline); the *_ns counters in milliseconds. */
static void print_counters(FILE *f, const fp_counters *c, const char *sep)
{
    for (size_t i = 0; i < FP_NFIELDS; i++) {
        unsigned long long v = *(const unsigned long long *)((const char *)c + fp_fields[i].off);
        if (strstr(fp_fields[i].name, "_ms")) v /= 1000000;
        fprintf(f, "%s %llu%s", fp_fields[i].name, v, i + 1 < FP_NFIELDS ? sep : "\n");
    }
}

/* Replace the stats file with the current counters (mu held); busy_ms
 * includes the time of requests still in flight. */
/* Write counters C to STATS (replaced atomically). */
static void write_stats(const fp_counters *c)
{
    if (!stats_path) return;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", stats_path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "faultproxy: cannot write %s: %s\n", tmp, strerror(errno));
        return;
    }
    print_counters(f, c, "\n");
    if (fclose(f) != 0 || rename(tmp, stats_path) != 0)
        fprintf(stderr, "faultproxy: cannot replace %s: %s\n", stats_path, strerror(errno));
}

/* The counters as of now (mu held). */
static fp_counters counters_now_locked(void)
{
    fp_counters c = counters;
    if (inflight) c.busy_ns += now_ns() - busy_since;
    return c;
}

/* The counters changed (mu held): the stats writer writes them out.  A
 * file written under mu after every request serialised the proxy (two
 * file replacements per request on a slow disk: about 20 MB/s through it);
 * the writer coalesces what changed while it wrote. */
static void write_stats_locked(void)
{
    stats_dirty = 1;
    pthread_cond_signal(&stats_cv);
}

/* Thread body: write the stats file whenever the counters changed, until
 * the proxy stops (main writes the last one). */
static void *stats_writer(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    while (!stats_done) {
        if (!stats_dirty) {
            pthread_cond_wait(&stats_cv, &mu);
            continue;
        }
        stats_dirty = 0;
        fp_counters c = counters_now_locked();
        pthread_mutex_unlock(&mu);
        write_stats(&c);
        pthread_mutex_lock(&mu);
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

/* Add one to the counter at FIELD and write the stats file. */
static void count(unsigned long long *field)
{
    pthread_mutex_lock(&mu);
    (*field)++;
    write_stats_locked();
    pthread_mutex_unlock(&mu);
}

/* Wait until FD is ready for EVENTS; 1 when ready, 0 on timeout or stop. */
static int wait_fd(int fd, short events)
{
    struct pollfd p = { fd, events, 0 };
    for (int waited = 0; waited < FP_IO_TIMEOUT_MS && !stopping; waited += 500) {
        int n = poll(&p, 1, 500);
        if (n > 0) return 1;
        if (n < 0 && errno != EINTR) return 0;
    }
    return 0;
}

/* Read up to N bytes from FD into BUF; bytes read, 0 at EOF, -1 on error or timeout. */
static ssize_t read_some(int fd, void *buf, size_t n)
{
    for (;;) {
        if (!wait_fd(fd, POLLIN)) return -1;
        ssize_t r = read(fd, buf, n);
        if (r >= 0) return r;
        if (errno != EINTR && errno != EAGAIN) return -1;
    }
}

/* Write all N bytes of BUF to FD; 0 on success, -1 on error or timeout. */
static int write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        if (!wait_fd(fd, POLLOUT)) return -1;
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Sleep MS milliseconds, in slices, returning early when stopping. */
static void sleep_ms(long ms)
{
    while (ms > 0 && !stopping) {
        long step = ms < 20 ? ms : 20;
        struct timespec ts = { 0, step * 1000000L };
        nanosleep(&ts, NULL);
        ms -= step;
    }
}

/* 1 if header line LINE (LEN bytes, no CRLF) is named NAME (case-insensitive). */
static int header_is(const char *line, size_t len, const char *name)
{
    size_t nl = strlen(name);
    return len > nl && line[nl] == ':' && !strncasecmp(line, name, nl);
}

/* The parsed head of one request. */
typedef struct fp_request {
    char *head;                   /* request line and headers, CRLF CRLF at the end */
    size_t head_len;
    char *extra;                  /* body bytes read together with the head */
    size_t extra_len;
    unsigned long long body_len;  /* Content-Length (0 if none) */
    int is_head;                  /* method HEAD: answers carry no body */
} fp_request;

/* Read one request head from FD into R; 0 on success, -1 on EOF, error or a
 * request this proxy does not handle (chunked bodies). */
static int read_request_head(int fd, fp_request *r)
{
    char *buf = malloc(FP_MAX_HEADER + 1);
    size_t len = 0;
    char *end = NULL;
    if (!buf) return -1;
    while (!end) {
        if (len == FP_MAX_HEADER) goto fail;
        ssize_t n = read_some(fd, buf + len, FP_MAX_HEADER - len);
        if (n <= 0) goto fail;
        len += (size_t)n;
        buf[len] = 0;             /* the string functions below stop here at the latest */
        end = memmem(buf, len, "\r\n\r\n", 4);
    }
    r->head_len = (size_t)(end - buf) + 4;
    if (memchr(buf, 0, r->head_len)) {
        fprintf(stderr, "faultproxy: NUL byte in request headers\n");
        goto fail;
    }
    r->head = buf;
    r->extra = buf + r->head_len;
    r->extra_len = len - r->head_len;
    r->body_len = 0;
    r->is_head = !strncmp(buf, "HEAD ", 5);
    for (char *line = strstr(buf, "\r\n") + 2; line < end;) {
        char *eol = strstr(line, "\r\n");
        size_t ll = (size_t)(eol - line);
        if (header_is(line, ll, "Content-Length")) {
            r->body_len = strtoull(line + 15, NULL, 10);
        } else if (header_is(line, ll, "Transfer-Encoding")) {
            fprintf(stderr, "faultproxy: chunked request bodies are not supported\n");
            goto fail;
        }
        line = eol + 2;
    }
    if (r->extra_len > r->body_len) {  /* pipelined requests: not sent by libcurl here */
        fprintf(stderr, "faultproxy: bytes after the request body: pipelining is not supported\n");
        goto fail;
    }
    return 0;
fail:
    free(buf);
    r->head = NULL;
    return -1;
}

/* Read and drop the rest of R's body from FD; 0 on success, -1 on error. */
static int drain_body(int fd, const fp_request *r)
{
    char buf[FP_BUF];
    unsigned long long left = r->body_len - r->extra_len;
    while (left > 0) {
        ssize_t n = read_some(fd, buf, left < sizeof buf ? (size_t)left : sizeof buf);
        if (n <= 0) return -1;
        left -= (unsigned long long)n;
    }
    return 0;
}

/* Answer R on FD with "503 Slow Down" and an S3 error body. */
static void reply_503(int fd, const fp_request *r, unsigned long long id)
{
    char body[512], head[512];
    int bl = snprintf(body, sizeof body,
                      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                      "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message>"
                      "<RequestId>faultproxy-%llu</RequestId></Error>\n", id);
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n"
                      "Content-Length: %d\r\nConnection: close\r\n\r\n", bl);
    if (write_all(fd, head, (size_t)hl) == 0 && !r->is_head)
        write_all(fd, body, (size_t)bl);
}

/* A new connection to the upstream server; -1 if it cannot be reached. */
static int connect_upstream(void)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *ai, *a;
    if (getaddrinfo(up_host, up_port, &hints, &ai) != 0) return -1;
    int fd = -1;
    for (a = ai; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

/* Send R's head to UP with Connection/Keep-Alive headers replaced by
 * "Connection: close", everything else (Host included) unchanged. */
static int send_head(int up, const fp_request *r)
{
    char *out = malloc(r->head_len + 32);
    size_t ol = 0;
    if (!out) return -1;
    char *end = r->head + r->head_len - 2;          /* the final empty line */
    for (char *line = r->head; line < end;) {
        char *eol = strstr(line, "\r\n") + 2;
        size_t ll = (size_t)(eol - line) - 2;
        if (!header_is(line, ll, "Connection") && !header_is(line, ll, "Keep-Alive") &&
            !header_is(line, ll, "Proxy-Connection")) {
            memcpy(out + ol, line, (size_t)(eol - line));
            ol += (size_t)(eol - line);
        }
        line = eol;
    }
    memcpy(out + ol, "Connection: close\r\n\r\n", 21);
    ol += 21;
    int rc = write_all(up, out, ol);
    free(out);
    return rc;
}

/* Forward R (head read, body still on CLIENT) to a new upstream connection
 * and relay the whole answer back (*RELAYED: its bytes, *STATUS: its HTTP
 * status); 0 on success, -1 on any failure. */
static int forward(int client, const fp_request *r, unsigned long long *relayed, int *status)
{
    int up = connect_upstream();
    if (up < 0) return -1;
    char *buf = malloc(FP_BUF);
    int rc = -1;
    if (!buf || send_head(up, r) || write_all(up, r->extra, r->extra_len)) goto out;
    for (unsigned long long left = r->body_len - r->extra_len; left > 0;) {
        ssize_t n = read_some(client, buf, left < FP_BUF ? (size_t)left : FP_BUF);
        if (n <= 0 || write_all(up, buf, (size_t)n)) goto out;
        left -= (unsigned long long)n;
    }
    for (;;) {                    /* the answer, until the server closes */
        ssize_t n = read_some(up, buf, FP_BUF);
        if (n < 0) goto out;
        if (n == 0) break;
        if (*relayed == 0 && n >= 12 && !memcmp(buf, "HTTP/1.", 7)) *status = atoi(buf + 9);
        if (write_all(client, buf, (size_t)n)) goto out;
        *relayed += (unsigned long long)n;
    }
    rc = *relayed > 0 ? 0 : -1;   /* nothing at all: the server went away */
out:
    free(buf);
    close(up);
    return rc;
}

/* The counter of R's kind (mu held). */
static unsigned long long *kind_locked(const fp_request *r)
{
    const char *sp = memchr(r->head, ' ', r->head_len);
    size_t ml = sp ? (size_t)(sp - r->head) : 0;
    if (ml == 3 && !memcmp(r->head, "GET", 3)) {
        const char *eol = memchr(r->head, '\r', r->head_len), *q = memchr(r->head, '?', r->head_len);
        int listing = q && q < eol && (memmem(q, (size_t)(eol - q), "list-type=", 10) ||
                                       memmem(q, (size_t)(eol - q), "prefix=", 7) ||
                                       memmem(q, (size_t)(eol - q), "delimiter=", 10));
        return listing ? &counters.list : &counters.get;
    }
    if (ml == 3 && !memcmp(r->head, "PUT", 3)) return &counters.put;
    if (ml == 4 && !memcmp(r->head, "HEAD", 4)) return &counters.head;
    if (ml == 6 && !memcmp(r->head, "DELETE", 6)) return &counters.del;
    if (ml == 4 && !memcmp(r->head, "POST", 4)) return &counters.post;
    return NULL;
}

/* Request R arrived (its head read): count it by kind and as in flight;
 * *START its time, *WITH the requests in flight then, itself included. */
static void request_begins(const fp_request *r, unsigned long long *start, unsigned long long *with)
{
    pthread_mutex_lock(&mu);
    unsigned long long *kind = kind_locked(r);
    if (kind) (*kind)++;
    *start = now_ns();
    if (inflight++ == 0) busy_since = *start;
    if (inflight > counters.max_inflight) counters.max_inflight = inflight;
    *with = inflight;
    pthread_mutex_unlock(&mu);
}

/* Request R, which began at START with WITH in flight, ended with HTTP
 * STATUS (0: none), UP body bytes sent on and DOWN answer bytes relayed. */
static void request_ends(const fp_request *r, unsigned long long start, unsigned long long with,
                         unsigned long long up, unsigned long long down, int status)
{
    pthread_mutex_lock(&mu);
    unsigned long long end = now_ns();
    if (req_log) {
        const char *eol = memchr(r->head, '\r', r->head_len);
        const char *sp = memchr(r->head, ' ', r->head_len);
        const char *target = sp ? sp + 1 : r->head;
        const char *tend = eol ? eol : r->head + r->head_len;
        const char *vsp = memrchr(target, ' ', (size_t)(tend - target));
        if (vsp) tend = vsp;      /* drop " HTTP/1.1" */
        fprintf(req_log, "%llu %llu %llu %d %.*s %.*s\n", (start - started_ns) / 1000000, (end - start) / 1000000,
                with, status, (int)(sp ? sp - r->head : 0), r->head, (int)(tend - target), target);
        fflush(req_log);
    }
    counters.request_ns += end - start;
    if (--inflight == 0) counters.busy_ns += end - busy_since;
    counters.bytes_up += up;
    counters.bytes_down += down;
    write_stats_locked();
    pthread_mutex_unlock(&mu);
}

/* Serve one request on connection C, applying the current fault settings. */
static void serve(fp_conn *c)
{
    fp_settings s;
    read_settings(&s);
    if (s.down) {                 /* a dead server: no answer at all */
        count(&counters.refused);
        return;
    }
    fp_request r;
    unsigned long long start, with, down = 0;
    int status = 0;
    if (read_request_head(c->fd, &r)) return;
    request_begins(&r, &start, &with);
    read_settings(&s);            /* as they are now the request is here */
    pthread_mutex_lock(&mu);
    unsigned long long id = ++counters.requests;
    int fail = s.fail503 > 0 && rand01_locked() < s.fail503;
    int delay = !fail && s.delay_ms > 0 && rand01_locked() < s.delay_fraction;
    pthread_mutex_unlock(&mu);
    if (s.down) {
        count(&counters.refused);
    } else if (fail) {
        status = 503;
        if (drain_body(c->fd, &r) == 0) reply_503(c->fd, &r, id);
        count(&counters.fail503);
    } else {
        if (delay) {
            sleep_ms(s.delay_ms);
            count(&counters.delayed);
        }
        if (forward(c->fd, &r, &down, &status) == 0) count(&counters.forwarded);
        else count(&counters.upstream_errors);
    }
    request_ends(&r, start, with, r.body_len, down, status);
    free(r.head);
}

/* Connection thread: serve, close, mark the slot finished. */
static void *conn_main(void *arg)
{
    fp_conn *c = arg;
    serve(c);
    pthread_mutex_lock(&mu);
    close(c->fd);
    c->fd = -1;
    c->done = 1;
    pthread_cond_broadcast(&conn_cv);
    pthread_mutex_unlock(&mu);
    return NULL;
}

/* Join finished connection threads, freeing their slots (mu held). */
static void reap_locked(void)
{
    for (int i = 0; i < FP_MAX_CONNS; i++) {
        if (conns[i].done) {
            pthread_join(conns[i].thread, NULL);
            conns[i].done = 0;
        }
    }
}

/* Start a thread for client FD, or close FD if every slot is busy. */
static void start_conn(int fd)
{
    pthread_mutex_lock(&mu);
    reap_locked();
    fp_conn *c = NULL;
    for (int i = 0; i < FP_MAX_CONNS && !c; i++)
        if (conns[i].fd < 0 && !conns[i].done) c = &conns[i];
    if (c) {
        c->fd = fd;
        if (pthread_create(&c->thread, NULL, conn_main, c) != 0) {
            fprintf(stderr, "faultproxy: cannot start a connection thread\n");
            c->fd = -1;
            c = NULL;
        }
    }
    pthread_mutex_unlock(&mu);
    if (!c) close(fd);
}

/* Cut off every connection in flight and wait for its thread. */
static void stop_conns(void)
{
    pthread_mutex_lock(&mu);
    for (int i = 0; i < FP_MAX_CONNS; i++)
        if (conns[i].fd >= 0) shutdown(conns[i].fd, SHUT_RDWR);
    for (;;) {
        reap_locked();
        int busy = 0;
        for (int i = 0; i < FP_MAX_CONNS; i++) busy |= conns[i].fd >= 0;
        if (!busy) break;
        pthread_cond_wait(&conn_cv, &mu);
    }
    pthread_mutex_unlock(&mu);
}

/* Split "HOST:PORT" (the last ':' separates) into up_host and up_port; 0 or -1. */
static int parse_upstream(const char *s)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || !colon[1] || (size_t)(colon - s) >= sizeof up_host ||
        strlen(colon + 1) >= sizeof up_port)
        return -1;
    snprintf(up_host, sizeof up_host, "%.*s", (int)(colon - s), s);
    snprintf(up_port, sizeof up_port, "%s", colon + 1);
    return 0;
}

/* Listen on 127.0.0.1:PORT (0: any free port); the socket, or -1. */
static int listen_on(int port, int *bound)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 128) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) < 0) {
        close(fd);
        return -1;
    }
    *bound = ntohs(a.sin_port);
    return fd;
}

/* Print the usage line and return exit status 2. */
static int usage(void)
{
    fprintf(stderr, "usage: faultproxy [-p PORT] [-c CONTROL] [-s STATS] [-l LOG] UPSTREAM_HOST:PORT\n");
    return 2;
}

int main(int argc, char **argv)
{
    int port = 0, opt;
    while ((opt = getopt(argc, argv, "p:c:s:l:")) != -1) {
        switch (opt) {
        case 'p': port = atoi(optarg); break;
        case 'c': ctl_path = optarg; break;
        case 's': stats_path = optarg; break;
        case 'l':
            if (!(req_log = fopen(optarg, "a"))) {
                fprintf(stderr, "faultproxy: cannot open %s: %s\n", optarg, strerror(errno));
                return 1;
            }
            break;
        default: return usage();
        }
    }
    if (optind != argc - 1 || port < 0 || port > 65535) return usage();
    if (parse_upstream(argv[optind])) {
        fprintf(stderr, "faultproxy: upstream '%s' is not HOST:PORT\n", argv[optind]);
        return 2;
    }
    for (int i = 0; i < FP_MAX_CONNS; i++) conns[i].fd = -1;
    started_ns = now_ns();
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    rng_state = ((unsigned long long)now.tv_nsec << 20) ^ (unsigned long long)getpid() ^ 0x9E3779B97F4A7C15ull;

    if (pipe2(wake_pipe, O_CLOEXEC) < 0) {
        fprintf(stderr, "faultproxy: pipe: %s\n", strerror(errno));
        return 1;
    }
    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int bound = 0, lfd = listen_on(port, &bound);
    if (lfd < 0) {
        fprintf(stderr, "faultproxy: cannot listen on 127.0.0.1:%d: %s\n", port, strerror(errno));
        return 1;
    }
    pthread_mutex_lock(&mu);
    fp_counters first = counters_now_locked();
    pthread_mutex_unlock(&mu);
    write_stats(&first);
    pthread_t writer;
    if (pthread_create(&writer, NULL, stats_writer, NULL) != 0) {
        fprintf(stderr, "faultproxy: cannot start the stats writer\n");
        return 1;
    }
    printf("%d\n", bound);
    fflush(stdout);
    fprintf(stderr, "faultproxy: 127.0.0.1:%d -> %s:%s\n", bound, up_host, up_port);

    while (!stopping) {
        struct pollfd p[2] = { { lfd, POLLIN, 0 }, { wake_pipe[0], POLLIN, 0 } };
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            fprintf(stderr, "faultproxy: poll: %s\n", strerror(errno));
            break;
        }
        if (!(p[0].revents & POLLIN)) continue;
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) continue;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        start_conn(fd);
    }
    close(lfd);
    stop_conns();
    pthread_mutex_lock(&mu);
    stats_done = 1;
    pthread_cond_signal(&stats_cv);
    pthread_mutex_unlock(&mu);
    pthread_join(writer, NULL);
    pthread_mutex_lock(&mu);
    fp_counters c = counters_now_locked();
    pthread_mutex_unlock(&mu);
    write_stats(&c);
    fprintf(stderr, "faultproxy: stopped: ");
    print_counters(stderr, &c, ", ");
    close(wake_pipe[0]);
    close(wake_pipe[1]);
    if (req_log) fclose(req_log);
    return 0;
}
