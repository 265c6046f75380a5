/*
 * ackclient -- records every acknowledged commit, for crash tests.
 *
 *   ackclient CONNINFO OUTFILE [MAX]
 *
 * Creates table ack(id bigint primary key, payload text) if needed, then
 * inserts rows with increasing id (continuing after max(id)), one autocommit
 * INSERT each. After each commit PostgreSQL acknowledged, appends "ID\n" to
 * OUTFILE with one write(). Stops after MAX rows (default: never) with exit
 * status 0; exits 1 on the first error (e.g. the server went away).
 *
 * The check after a crash: every id in OUTFILE is in the table, with
 * payload = md5(id::text).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int exec_ok(PGconn *c, const char *sql, ExecStatusType want)
{
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == want;
    if (!ok)
        fprintf(stderr, "ackclient: %s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    return ok;
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: ackclient CONNINFO OUTFILE [MAX]\n");
        return 2;
    }
    long long max = argc == 4 ? atoll(argv[3]) : -1;

    int out = open(argv[2], O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (out < 0) {
        fprintf(stderr, "ackclient: %s: %s\n", argv[2], strerror(errno));
        return 1;
    }
    PGconn *c = PQconnectdb(argv[1]);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "ackclient: connect: %s", PQerrorMessage(c));
        PQfinish(c);
        close(out);
        return 1;
    }
    int rc = 1;
    if (!exec_ok(c, "SET client_min_messages = warning", PGRES_COMMAND_OK) ||
        !exec_ok(c, "CREATE TABLE IF NOT EXISTS ack (id bigint PRIMARY KEY, payload text NOT NULL)",
                 PGRES_COMMAND_OK))
        goto done;

    PGresult *r = PQexec(c, "SELECT coalesce(max(id), 0) FROM ack");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "ackclient: max(id): %s", PQerrorMessage(c));
        PQclear(r);
        goto done;
    }
    long long id = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);

    for (long long n = 0; max < 0 || n < max; n++) {
        char idbuf[32];
        id++;
        snprintf(idbuf, sizeof idbuf, "%lld", id);
        const char *params[1] = {idbuf};
        r = PQexecParams(c, "INSERT INTO ack VALUES ($1::bigint, md5($1::text))",
                         1, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            fprintf(stderr, "ackclient: insert %lld: %s", id, PQerrorMessage(c));
            PQclear(r);
            goto done;
        }
        PQclear(r);
        /* acknowledged: record it (a single write, so a line is never torn
         * by a kill of this process between two writes) */
        char line[40];
        int len = snprintf(line, sizeof line, "%lld\n", id);
        if (write(out, line, (size_t)len) != len) {
            fprintf(stderr, "ackclient: write %s: %s\n", argv[2], strerror(errno));
            goto done;
        }
    }
    rc = 0;
done:
    PQfinish(c);
    close(out);
    return rc;
}
