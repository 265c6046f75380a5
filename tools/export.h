/*
 * export.h -- `lakefs export`: tables of a branch at a point, published as
 * Delta Lake tables (issue 7; see export.c).
 */
#ifndef LAKEFS_EXPORT_H
#define LAKEFS_EXPORT_H

/* The export command (ARGV[0] is "export"); returns the exit status. */
int export_main(int argc, char **argv);

#endif
