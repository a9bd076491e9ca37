/* SPDX-License-Identifier: MIT */
/*
 * snapshot-restore - checkpoint a process's memory to a file, then
 * restore it lazily in a fresh process with the file pager, as VM
 * snapshot resume and CRIU lazy-pages do.
 *
 *   snapshot-restore [demo] [options]   the whole story, in three processes:
 *     1. "make": a process fills --size of memory (1 GiB) with a pattern,
 *        one quarter of the pages left zero, and
 *     2. writes it to a snapshot file (zero pages as holes);
 *     3. "restore": a fresh process (fork + exec of this program) maps an
 *        empty region, serves it from the file with the file pager,
 *        touches and verifies every byte, and prints time to first byte,
 *        total time, pages read and pages zero-mapped.
 *   snapshot-restore make|restore [options]   one step by itself
 *   snapshot-restore bench [options]          the "restore" experiment
 *                                             (bench-restore.c; --help)
 *
 * --store memcached:servers=H:P;H:P...[,namespace=NS][,replicas=N] puts
 * a memcached pool between steps 2 and 3: the snapshot file is pushed
 * into it (as uffd-snapshot push does; "push" is that step by itself)
 * and the restore reads it from there with the memcached pager.  With
 * no servers=, the demo starts three of its own on loopback ports
 * (demos/mc-servers.c) and stops them at the end.
 */
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

#include <libuffd.h>

#include "bench-restore.h"
#include "mc-servers.h"
#include "snapshot-push.h"

#define DEFAULT_ARGS	"readahead=16,prefetch=1"

static struct {
	const char	*file;
	const char	*size_s;
	uint64_t	size;
	const char	*args;
	const char	*order;
	const char	*pin;
	const char	*store;		/* NULL: the file itself */
	bool		keep, warm, json;
} o = {
	.file = "/tmp/snapshot.img",
	.size_s = "1G",
	.size = 1ull << 30,
	.args = DEFAULT_ARGS,
	.order = "seq",
	.pin = "same",
};

static void usage(FILE *f, const char *prog)
{
	fprintf(f,
"usage: %s [demo|make|push|restore] [options]\n"
"       %s bench [--help]\n"
"Checkpoint memory to a snapshot file, then restore it lazily in a fresh\n"
"process with the file pager and verify every byte.\n"
"  --file PATH   snapshot file (default /tmp/snapshot.img)\n"
"  --size N      memory size, K/M/G suffix (default 1G)\n"
"  --args A      file pager arguments (default " DEFAULT_ARGS ")\n"
"  --order O     restore touch order: seq or random (default seq)\n"
"  --pin P       same (app and handler on CPU 0; default), split, none\n"
"  --warm        restore from the page cache (default: drop it first)\n"
"  --store S     file (default), or memcached:servers=H:P;H:P...[,namespace=NS]\n"
"                [,replicas=N]: push the snapshot to a pool and restore from\n"
"                it with the memcached pager (no servers=: three of its own)\n"
"  --keep        keep the snapshot file (demo)\n"
"  --json        restore's result as one JSON object\n", prog, prog);
}

/* ------------------------------------------------------- make */

static int cmd_make(void)
{
	char why[256];
	uint64_t t0 = restore_now_ns();

	printf("[make %d] filling %llu MiB (a quarter of the pages zero) "
	       "and writing %s\n", (int)getpid(),
	       (unsigned long long)(o.size >> 20), o.file);
	fflush(stdout);
	if (restore_image_make(o.file, o.size, why, sizeof(why))) {
		fprintf(stderr, "make: %s\n", why);
		return 1;
	}
	printf("[make %d] snapshot written in %.0f ms\n", (int)getpid(),
	       (double)(restore_now_ns() - t0) / 1e6);
	return 0;
}

/* ------------------------------------------------------- restore */

static int cmd_restore(void)
{
	struct uffd_ctx_opts co = { .size = sizeof(co), .handler_cpu = -1 };
	struct uffd_region_opts ro = {
		.size = sizeof(ro), .type = LIBUFFD_MEM_ANON, .len = o.size,
	};
	uint64_t pages = o.size / RESTORE_PAGE, t0, t1, t2, i, bad = 0;
	int app_cpu = -1, ret, cache = -1;
	struct uffd_region *r = NULL;
	struct uffd_ctx *ctx = NULL;
	uint32_t *order = NULL;
	struct uffd_stats st;
	char spec[1024], why[256] = "";
	const char *base;

	if (!strcmp(o.pin, "same")) {
		app_cpu = co.handler_cpu = 0;
		co.flags |= LIBUFFD_CTX_PIN_HANDLER;
	} else if (!strcmp(o.pin, "split")) {
		app_cpu = 0;
		co.handler_cpu = 1;
		co.flags |= LIBUFFD_CTX_PIN_HANDLER;
	} else if (strcmp(o.pin, "none")) {
		fprintf(stderr, "--pin: same, split or none\n");
		return 2;
	}
	if (!strcmp(o.order, "random")) {
		order = restore_page_order(pages, 88172645463325252ull);
		if (!order)
			return 1;
	} else if (strcmp(o.order, "seq")) {
		fprintf(stderr, "--order: seq or random\n");
		return 2;
	}
	if (o.store) {
		/* the pool's pager takes the store's own arguments */
		snprintf(spec, sizeof(spec), "%s,%s", o.store, o.args);
	} else {
		if (!o.warm)
			cache = restore_drop_cache(o.file, why, sizeof(why));
		snprintf(spec, sizeof(spec), "file:path=%s,%s", o.file,
			 o.args);
	}
	ro.pager = spec;

	/* the restore starts with an empty address space of the right size */
	t0 = restore_now_ns();
	ret = uffd_ctx_create(&ctx, &co);
	if (!ret)
		ret = uffd_region_create(ctx, &ro, &r);
	if (!ret)
		ret = uffd_ctx_start(ctx);
	if (ret) {
		fprintf(stderr, "restore: %s: %s (%s)\n", spec, strerror(-ret),
			uffd_last_error());
		uffd_ctx_destroy(ctx);
		free(order);
		return 1;
	}
	/* after start: the prefetch thread must not inherit the pin */
	restore_pin_self(app_cpu);
	base = uffd_region_addr(r);
	(void)*(const volatile uint8_t *)(base + (order ? order[0] : 0) *
					  RESTORE_PAGE);
	t1 = restore_now_ns();
	for (i = 0; i < pages; i++) {
		uint64_t p = order ? order[i] : i;

		bad += !restore_page_ok(base + p * RESTORE_PAGE, p);
	}
	t2 = restore_now_ns();
	uffd_ctx_stop(ctx);	/* prefetch thread joined: all counted */
	uffd_region_stats(r, &st, sizeof(st));
	uffd_ctx_destroy(ctx);
	free(order);
	restore_pin_self(-1);

	if (o.json) {
		printf("{\"pid\":%d,\"size_bytes\":%llu,\"pages\":%llu,"
		       "\"pager\":\"%s\",\"order\":\"%s\",\"pin\":\"%s\","
		       "\"cache\":\"%s\",\"first_byte_us\":%.1f,"
		       "\"total_ms\":%.1f,\"pages_read\":%llu,"
		       "\"pages_zero\":%llu,\"faults\":%llu,"
		       "\"p50_us\":%llu,\"p99_us\":%llu,"
		       "\"helper_cpu_ms\":%.1f,\"bad_pages\":%llu}\n",
		       (int)getpid(), (unsigned long long)o.size,
		       (unsigned long long)pages, spec, o.order, o.pin,
		       o.store ? "none" : o.warm ? "warm" : cache == 1 ? "dropped" :
		       cache == 0 ? "file-dropped" : "warm",
		       (double)(t1 - t0) / 1e3, (double)(t2 - t0) / 1e6,
		       (unsigned long long)st.pages_copy,
		       (unsigned long long)st.pages_zero,
		       (unsigned long long)(st.faults_read + st.faults_write),
		       (unsigned long long)uffd_stats_quantile_us(&st, 0.5),
		       (unsigned long long)uffd_stats_quantile_us(&st, 0.99),
		       (double)st.helper_cpu_ns / 1e6,
		       (unsigned long long)bad);
		return bad ? 1 : 0;
	}
	printf("[restore %d] %s, touched %s, placement %s "
	       "(app CPU %d, handler CPU %d)\n", (int)getpid(), spec,
	       o.order, o.pin, app_cpu, co.handler_cpu);
	if (o.store)
		printf("[restore %d] from the pool, no file\n", (int)getpid());
	else if (o.warm)
		printf("[restore %d] page cache: kept (--warm)\n",
		       (int)getpid());
	else
		printf("[restore %d] page cache: %s\n", (int)getpid(),
		       cache == 1 ? "dropped (vm.drop_caches)" :
		       cache == 0 ? "file dropped (POSIX_FADV_DONTNEED)" :
		       why);
	printf("[restore %d] time to first byte  %10.1f us\n", (int)getpid(),
	       (double)(t1 - t0) / 1e3);
	printf("[restore %d] total (all verified) %9.1f ms  (%.0f ns/page)\n",
	       (int)getpid(), (double)(t2 - t0) / 1e6,
	       (double)(t2 - t0) / (double)pages);
	printf("[restore %d] pages read (copied)  %10llu\n", (int)getpid(),
	       (unsigned long long)st.pages_copy);
	printf("[restore %d] pages zero-mapped    %10llu\n", (int)getpid(),
	       (unsigned long long)st.pages_zero);
	printf("[restore %d] faults %llu, service p50 %llu us, p99 %llu us, "
	       "prefetch CPU %.0f ms, poisoned %llu\n", (int)getpid(),
	       (unsigned long long)(st.faults_read + st.faults_write),
	       (unsigned long long)uffd_stats_quantile_us(&st, 0.5),
	       (unsigned long long)uffd_stats_quantile_us(&st, 0.99),
	       (double)st.helper_cpu_ns / 1e6,
	       (unsigned long long)st.poisoned);
	printf("[restore %d] verified %llu pages: %s\n", (int)getpid(),
	       (unsigned long long)pages,
	       bad ? "MISMATCH" : "every byte matches");
	if (bad)
		printf("[restore %d] %llu pages differ\n", (int)getpid(),
		       (unsigned long long)bad);
	return bad ? 1 : 0;
}

/* ------------------------------------------------------- push */

static int cmd_push(void)
{
	struct push_result r;
	char why[512];

	if (!o.store) {
		fprintf(stderr, "push: --store memcached:... is needed\n");
		return 2;
	}
	printf("[push %d] %s into %s\n", (int)getpid(), o.file, o.store);
	fflush(stdout);
	if (snapshot_push_file(o.store, o.file, o.size, &r, why,
			       sizeof(why))) {
		fprintf(stderr, "push: %s\n", why);
		return 1;
	}
	printf("[push %d] %llu pages: %llu stored, %llu zero (not stored), "
	       "%.0f ms\n", (int)getpid(), (unsigned long long)r.pages,
	       (unsigned long long)r.stored, (unsigned long long)r.zero,
	       (double)r.ns / 1e6);
	return 0;
}

/*
 * --store memcached without servers=: three servers of our own, and the
 * spec with them and a namespace filled in (in @buf).
 */
static struct mc_servers own;

static int store_resolve(char *buf, size_t len)
{
	const char *args;
	char why[256];

	if (!o.store || !strcmp(o.store, "file")) {
		o.store = NULL;
		return 0;
	}
	if (strncmp(o.store, "memcached", 9) ||
	    (o.store[9] && o.store[9] != ':')) {
		fprintf(stderr, "--store: file or memcached:...\n");
		return 2;
	}
	args = o.store[9] ? o.store + 10 : "";
	if (!strstr(args, "servers=")) {
		/* the pool must hold it all: 1 GiB and more per server */
		unsigned int mb = (unsigned int)(o.size >> 20) / 3 * 2 + 256;

		if (mc_servers_start(&own, 3, mb, why, sizeof(why))) {
			fprintf(stderr, "memcached: %s\n", why);
			return 1;
		}
		printf("[demo %d] three memcached servers of our own: %s\n",
		       (int)getpid(), own.list);
	}
	snprintf(buf, len, "memcached:%s%s%s%s", args,
		 strstr(args, "servers=") ? "" : *args ? ",servers=" :
		 "servers=", strstr(args, "servers=") ? "" : own.list,
		 strstr(args, "namespace=") ? "" :
		 ",namespace=snapshot-restore");
	o.store = buf;
	return 0;
}

/* ------------------------------------------------------- demo */

static int run_self(const char *self, const char *cmd)
{
	char *argv[20];
	int n = 0, status;
	pid_t pid;

	argv[n++] = (char *)self;
	argv[n++] = (char *)cmd;
	argv[n++] = "--file";
	argv[n++] = (char *)o.file;
	argv[n++] = "--size";
	argv[n++] = (char *)o.size_s;
	argv[n++] = "--args";
	argv[n++] = (char *)o.args;
	argv[n++] = "--order";
	argv[n++] = (char *)o.order;
	argv[n++] = "--pin";
	argv[n++] = (char *)o.pin;
	if (o.warm)
		argv[n++] = "--warm";
	if (o.json)
		argv[n++] = "--json";
	if (o.store) {
		argv[n++] = "--store";
		argv[n++] = (char *)o.store;
	}
	argv[n] = NULL;
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		perror("fork");
		return 1;
	}
	if (pid == 0) {
		execv(self, argv);
		perror("exec");
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0) {
		perror("waitpid");
		return 1;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

static int cmd_demo(void)
{
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	int ret;

	if (n < 0) {
		perror("readlink /proc/self/exe");
		return 1;
	}
	self[n] = '\0';
	ret = run_self(self, "make");
	if (!ret && o.store)
		ret = run_self(self, "push");
	if (!ret)
		ret = run_self(self, "restore");
	if (!o.keep)
		unlink(o.file);
	mc_servers_stop(&own);
	return ret;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "file", required_argument, NULL, 'f' },
		{ "size", required_argument, NULL, 's' },
		{ "args", required_argument, NULL, 'a' },
		{ "order", required_argument, NULL, 'o' },
		{ "pin", required_argument, NULL, 'p' },
		{ "keep", no_argument, NULL, 'k' },
		{ "warm", no_argument, NULL, 'w' },
		{ "json", no_argument, NULL, 'j' },
		{ "store", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd = "demo";
	char store[2048];
	int c, ret;

	if (argc > 1 && argv[1][0] != '-') {
		cmd = argv[1];
		if (!strcmp(cmd, "bench"))
			return bench_restore(argc - 1, argv + 1);
		argc--;
		argv++;
	}
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'f': o.file = optarg; break;
		case 's':
			o.size_s = optarg;
			if (restore_parse_size(optarg, &o.size)) {
				fprintf(stderr, "bad --size %s\n", optarg);
				return 2;
			}
			break;
		case 'a': o.args = optarg; break;
		case 'o': o.order = optarg; break;
		case 'p': o.pin = optarg; break;
		case 'k': o.keep = true; break;
		case 'w': o.warm = true; break;
		case 'j': o.json = true; break;
		case 'S': o.store = optarg; break;
		case 'h': usage(stdout, argv[0]); return 0;
		default: usage(stderr, argv[0]); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr, argv[0]);
		return 2;
	}
	/* only the demo starts servers: the steps get servers= from it */
	if (!strcmp(cmd, "demo") || (o.store && strstr(o.store, "servers="))) {
		ret = store_resolve(store, sizeof(store));
		if (ret)
			return ret;
	} else if (o.store && strcmp(o.store, "file")) {
		fprintf(stderr, "--store memcached: servers= is needed for "
			"one step by itself\n");
		return 2;
	} else {
		o.store = NULL;
	}
	if (!strcmp(cmd, "demo"))
		return cmd_demo();
	if (!strcmp(cmd, "make"))
		return cmd_make();
	if (!strcmp(cmd, "push"))
		return cmd_push();
	if (!strcmp(cmd, "restore"))
		return cmd_restore();
	fprintf(stderr, "unknown command \"%s\"\n", cmd);
	usage(stderr, argv[0]);
	return 2;
}
