/* SPDX-License-Identifier: MIT */
/*
 * uffd-snapshot - move snapshots between processes, files and page
 * stores.  One command so far:
 *
 *   uffd-snapshot push --store SPEC FILE
 *   uffd-snapshot push --store SPEC --pid PID --range START-END
 *
 * push writes a snapshot file, or a live process's region (read with
 * process_vm_readv), into a page store, page i of the snapshot as store
 * page i: typically a memcached pool,
 *
 *   uffd-snapshot push --store 'memcached:servers=h1:11211;h2:11211,namespace=vm1' mem.img
 *
 * from which the memcached pager restores it lazily in another process
 * ("memcached:servers=...,namespace=vm1" as a region's pager spec).
 * Zero pages take no space in such a pool: they are deleted rather than
 * stored, so that pushing again over a namespace leaves nothing stale.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libuffd.h>

#include "snapshot-push.h"

static void usage(FILE *fp)
{
	fprintf(fp,
"Usage: uffd-snapshot push --store SPEC FILE\n"
"       uffd-snapshot push --store SPEC --pid PID --range START-END\n"
"Write a snapshot file, or a region of a running process, into a page\n"
"store: page i of the snapshot becomes store page i.  Zero pages are not\n"
"stored (a memcached pool deletes them).\n"
"  -s, --store SPEC   e.g. 'memcached:servers=H:P;H:P,namespace=NS[,replicas=N]'\n"
"                     or file:path=P\n"
"  -p, --pid PID      read the region from process PID (process_vm_readv)\n"
"  -r, --range A-B    its range, hex as in /proc/PID/maps (page aligned)\n"
"  -j, --json         the result as one JSON object\n"
"  -h, --help         this text\n");
}

static int parse_range(const char *s, uint64_t *addr, uint64_t *len)
{
	unsigned long long a, b;
	long ps = sysconf(_SC_PAGESIZE);
	char *end;

	errno = 0;
	a = strtoull(s, &end, 16);
	if (errno || end == s || *end != '-')
		return -1;
	s = end + 1;
	b = strtoull(s, &end, 16);
	if (errno || end == s || *end || b <= a || a % (unsigned long)ps ||
	    b % (unsigned long)ps)
		return -1;
	*addr = a;
	*len = b - a;
	return 0;
}

static int cmd_push(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "store", required_argument, NULL, 's' },
		{ "pid", required_argument, NULL, 'p' },
		{ "range", required_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *spec = NULL, *what;
	uint64_t addr = 0, len = 0;
	struct push_result r;
	bool json = false, range = false;
	char why[512] = "";
	long pid = 0;
	int c, ret;

	optind = 1;
	while ((c = getopt_long(argc, argv, "s:p:r:jh", opts, NULL)) != -1) {
		switch (c) {
		case 's': spec = optarg; break;
		case 'p':
			pid = strtol(optarg, NULL, 10);
			if (pid <= 0) {
				fprintf(stderr, "uffd-snapshot: bad --pid %s\n",
					optarg);
				return 2;
			}
			break;
		case 'r':
			if (parse_range(optarg, &addr, &len)) {
				fprintf(stderr, "uffd-snapshot: bad --range %s "
					"(START-END, hex, page aligned)\n",
					optarg);
				return 2;
			}
			range = true;
			break;
		case 'j': json = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!spec || (!pid) != (!range) || (pid && optind != argc) ||
	    (!pid && optind + 1 != argc)) {
		usage(stderr);
		return 2;
	}
	if (pid) {
		what = "process";
		ret = snapshot_push_process(spec, (pid_t)pid, addr, len, &r,
					    why, sizeof(why));
	} else {
		what = argv[optind];
		ret = snapshot_push_file(spec, what, 0, &r, why,
					 sizeof(why));
	}
	if (ret < 0) {
		fprintf(stderr, "uffd-snapshot: push: %s\n", why);
		return 1;
	}
	if (json) {
		printf("{\"pushed\":\"%s\",\"pid\":%ld,\"pages\":%llu,"
		       "\"stored\":%llu,\"zero\":%llu,\"ms\":%.1f}\n",
		       pid ? "process" : "file", pid,
		       (unsigned long long)r.pages,
		       (unsigned long long)r.stored,
		       (unsigned long long)r.zero, (double)r.ns / 1e6);
		return 0;
	}
	if (pid)
		printf("pushed process %ld %#llx-%#llx", pid,
		       (unsigned long long)addr,
		       (unsigned long long)(addr + len));
	else
		printf("pushed %s", what);
	printf(": %llu pages, %llu stored, %llu zero (not stored), "
	       "%.0f ms, %.0f MiB/s\n", (unsigned long long)r.pages,
	       (unsigned long long)r.stored, (unsigned long long)r.zero,
	       (double)r.ns / 1e6,
	       (double)(r.pages * (uint64_t)sysconf(_SC_PAGESIZE)) /
	       1048576.0 / ((double)r.ns / 1e9));
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "push"))
		return cmd_push(argc - 1, argv + 1);
	fprintf(stderr, "uffd-snapshot: unknown command \"%s\"\n", argv[1]);
	usage(stderr);
	return 2;
}
