/* SPDX-License-Identifier: MIT */
/*
 * uffd-run: run an unmodified, dynamically linked program with its
 * anonymous memory paged by libuffd, as perf stat or numactl wrap one.
 *
 *   uffd-run [--pager SPEC] [--min-size SIZE] [--delivery thread|sigbus]
 *            [--stats text|json] [--stats-file FILE] [--strict] [--native]
 *            -- COMMAND [ARGS...]
 *
 * Everything is checked before COMMAND starts: a bad spec or option is
 * exit 2; so is an unusable userfaultfd with --strict (without it COMMAND
 * runs unpaged after one warning).  The work is done by
 * libuffd-preload.so in COMMAND's processes (see libuffd/preload.c and
 * docs/uffd-run.md); this program sets it up, waits, adds up the
 * statistics each process image wrote, and ends as COMMAND ended.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libuffd.h>

#ifndef PRELOAD_DIR
#define PRELOAD_DIR "/usr/local/lib/libuffd"
#endif
#define PRELOAD_NAME "libuffd-preload.so"

#define NFIELDS (sizeof(struct uffd_stats) / sizeof(uint64_t))

static struct {
	const char	*pager;
	unsigned long long min_size;
	const char	*delivery;
	const char	*stats;		/* NULL, "text" or "json" */
	const char	*stats_file;
	bool		strict, native;
} opt = { .pager = "zero", .min_size = 1u << 20, .delivery = "thread" };

static pid_t child = -1;

static void usage(FILE *fp)
{
	fprintf(fp,
"usage: uffd-run [OPTIONS] -- COMMAND [ARGS...]\n"
"Run COMMAND with every private anonymous mapping of at least --min-size\n"
"(mmap, and the malloc family's large requests) paged by libuffd.\n"
"  --pager SPEC       pager spec, e.g. prealloc:batch=64,read=fill "
"(default zero)\n"
"  --min-size SIZE    smallest mapping paged, K/M/G suffixes (default 1M)\n"
"  --delivery MODE    thread (default) or sigbus\n"
"  --stats text|json  print the statistics of the whole run at the end\n"
"  --stats-file FILE  write them to FILE instead of stderr (json unless\n"
"                     --stats text)\n"
"  --strict           exit 2 instead of running unpaged when userfaultfd\n"
"                     cannot be used\n"
"  --native           run COMMAND the same way but unpaged (a baseline)\n"
"Exit status: COMMAND's (killed by a signal: the same signal); 2 for a\n"
"usage error, a bad spec or --strict; 126/127 when COMMAND cannot run.\n");
}

static void die2(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void die2(const char *fmt, ...)
{
	va_list ap;

	fputs("uffd-run: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static int parse_size(const char *s, unsigned long long *out)
{
	unsigned long long v, mul = 1;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -1;
	switch (*end) {
	case 'k': case 'K': mul = 1ull << 10; end++; break;
	case 'm': case 'M': mul = 1ull << 20; end++; break;
	case 'g': case 'G': mul = 1ull << 30; end++; break;
	}
	if (*end == 'i' && end[1] == 'B')
		end += 2;
	else if (*end == 'B')
		end++;
	if (*end || (v && mul > ULLONG_MAX / v))
		return -1;
	*out = v * mul;
	return 0;
}

/* ------------------------------------------------------- the preload */

static bool readable(const char *path)
{
	return access(path, R_OK) == 0;
}

/*
 * LIBUFFD_PRELOAD, else next to this program in a build tree (demos/ or
 * demos/.libs/ beside libuffd/), else where it was installed.
 */
static const char *find_preload(char *buf, size_t len)
{
	static const char *const rel[] = {
		"/../libuffd/", "/../../libuffd/",
	};
	const char *env = getenv("LIBUFFD_PRELOAD");
	char exe[PATH_MAX], *dir;
	ssize_t n;
	size_t i;

	if (env && *env)
		return env;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		dir = dirname(exe);
		for (i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
			snprintf(buf, len, "%s%s%s", dir, rel[i],
				 PRELOAD_NAME);
			if (readable(buf)) {
				char *real = realpath(buf, NULL);

				if (real) {
					snprintf(buf, len, "%s", real);
					free(real);
				}
				return buf;
			}
		}
	}
	snprintf(buf, len, "%s/%s", PRELOAD_DIR, PRELOAD_NAME);
	return readable(buf) ? buf : NULL;
}

/* Can this process page at all?  The same context the preload makes. */
static int uffd_usable(char *why, size_t len)
{
	struct uffd_ctx_opts o = { .size = sizeof(o) };
	struct uffd_ctx *c;
	int ret;

	if (!strcmp(opt.delivery, "sigbus"))
		o.delivery = LIBUFFD_DELIVER_SIGBUS;
	else
		o.features = LIBUFFD_FEATURE_EVENT_FORK;
	ret = uffd_ctx_create(&c, &o);
	if (ret < 0) {
		snprintf(why, len, "%s", uffd_last_error());
		return ret;
	}
	uffd_ctx_destroy(c);
	return 0;
}

/* @cmd as execvp would find it, into @buf; NULL when not found. */
static const char *which(const char *cmd, char *buf, size_t len)
{
	const char *path = getenv("PATH"), *p, *e;

	if (strchr(cmd, '/'))
		return cmd;
	for (p = path ? path : "/bin:/usr/bin"; *p; p = *e ? e + 1 : e) {
		e = strchrnul(p, ':');
		snprintf(buf, len, "%.*s/%s", (int)(e - p), p, cmd);
		if (access(buf, X_OK) == 0)
			return buf;
	}
	return NULL;
}

/*
 * A static ELF program has no loader to preload into: say so rather than
 * let a run look paged.  Scripts and unreadable files are not judged.
 */
static bool statically_linked(const char *cmd)
{
	char buf[PATH_MAX];
	const char *path = which(cmd, buf, sizeof(buf));
	Elf64_Ehdr eh;
	Elf64_Phdr ph;
	bool interp = false;
	int fd, i;

	if (!path || (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return false;
	if (pread(fd, &eh, sizeof(eh), 0) != sizeof(eh) ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_phentsize != sizeof(ph)) {
		close(fd);
		return false;
	}
	for (i = 0; i < eh.e_phnum && !interp; i++) {
		if (pread(fd, &ph, sizeof(ph),
			  (off_t)(eh.e_phoff + (uint64_t)i * sizeof(ph))) !=
		    sizeof(ph))
			break;
		interp = ph.p_type == PT_INTERP;
	}
	close(fd);
	return i == eh.e_phnum && !interp;
}

/* ----------------------------------------------------------- statistics */

struct tally {
	unsigned long	processes, paged_processes;
	uint64_t	regions, bytes;
	uint64_t	v[NFIELDS];
};

struct line {
	long			pid;
	unsigned long long	image, regions, bytes;
	uint64_t		v[NFIELDS];
};

static int parse_line(char *s, struct line *l)
{
	unsigned long long nf, x;
	char *end;
	size_t i;

	memset(l, 0, sizeof(*l));
	if (sscanf(s, "L1 %ld %llu %llu %llu %llu", &l->pid, &l->image,
		   &l->regions, &l->bytes, &nf) != 5)
		return -1;
	for (i = 0; i < 6; i++) {
		s = strchr(s, ' ');
		if (!s)
			return i == 5 && nf == 0 ? 0 : -1;
		s++;
	}
	s--;
	for (i = 0; i < nf; i++) {
		errno = 0;
		x = strtoull(s, &end, 10);
		if (end == s || errno)
			return -1;
		if (i < NFIELDS)
			l->v[i] = x;
		s = end;
	}
	return 0;
}

/* Each (pid, image)'s last line counts: they are cumulative. */
static void tally_file(const char *path, struct tally *t)
{
	struct line *lines = NULL, l;
	size_t n = 0, i, k;
	char buf[4096];
	FILE *fp = fopen(path, "r");

	memset(t, 0, sizeof(*t));
	if (!fp)
		return;
	while (fgets(buf, sizeof(buf), fp)) {
		struct line *nl;

		if (parse_line(buf, &l) < 0)
			continue;
		for (i = 0; i < n; i++)
			if (lines[i].pid == l.pid && lines[i].image == l.image)
				break;
		if (i == n) {
			nl = realloc(lines, (n + 1) * sizeof(*nl));
			if (!nl)
				break;
			lines = nl;
			n++;
		}
		lines[i] = l;
	}
	fclose(fp);
	for (i = 0; i < n; i++) {
		t->processes++;
		if (lines[i].regions)
			t->paged_processes++;
		t->regions += lines[i].regions;
		t->bytes += lines[i].bytes;
		for (k = 0; k < NFIELDS; k++)
			t->v[k] += lines[i].v[k];
	}
	free(lines);
}

static void json_string(FILE *fp, const char *s)
{
	fputc('"', fp);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(fp, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(fp, "\\u%04x", *s);
		else
			fputc(*s, fp);
	}
	fputc('"', fp);
}

static int report(const struct tally *t, bool paged)
{
	struct uffd_stats st;
	bool json = opt.stats ? !strcmp(opt.stats, "json") : true;
	FILE *fp = stderr;
	char *buf;
	int n;

	memcpy(&st, t->v, sizeof(st));
	n = uffd_stats_format(&st, json ? LIBUFFD_FMT_JSON : LIBUFFD_FMT_TEXT,
			      NULL, 0);
	buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
	if (!buf || uffd_stats_format(&st, json ? LIBUFFD_FMT_JSON :
				      LIBUFFD_FMT_TEXT, buf,
				      (size_t)n + 1) < 0) {
		free(buf);
		return -1;
	}
	if (opt.stats_file) {
		fp = fopen(opt.stats_file, "w");
		if (!fp) {
			fprintf(stderr, "uffd-run: %s: %s\n", opt.stats_file,
				strerror(errno));
			free(buf);
			return -1;
		}
	}
	if (json) {
		fputs("{\"pager\":", fp);
		json_string(fp, opt.pager);
		fprintf(fp, ",\"delivery\":\"%s\",\"min_size\":%llu,"
			"\"paged\":%s,\"processes\":%lu,"
			"\"paged_processes\":%lu,\"regions\":%" PRIu64
			",\"bytes_paged\":%" PRIu64 ",\"stats\":%s}\n",
			opt.delivery, opt.min_size, paged ? "true" : "false",
			t->processes, t->paged_processes, t->regions, t->bytes,
			buf);
	} else {
		fprintf(fp, "uffd-run: pager %s, %s delivery, %s; %lu "
			"process%s (%lu paging), %" PRIu64 " region%s, "
			"%.1f MiB paged\n%s",
			opt.pager, opt.delivery,
			paged ? "paged" : "NOT paged", t->processes,
			t->processes == 1 ? "" : "es", t->paged_processes,
			t->regions,
			t->regions == 1 ? "" : "s",
			(double)t->bytes / (1 << 20), buf);
	}
	free(buf);
	if (fp != stderr && fclose(fp)) {
		fprintf(stderr, "uffd-run: %s: %s\n", opt.stats_file,
			strerror(errno));
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------- running */

static void relay(int sig)
{
	if (child > 0)
		kill(child, sig);
}

static void set_env(const char *preload, const char *stats_path)
{
	const char *old = getenv("LD_PRELOAD");
	char num[32], *v;

	if (old && *old) {
		if (asprintf(&v, "%s:%s", preload, old) < 0)
			die2("out of memory");
	} else {
		v = strdup(preload);
	}
	if (!v || setenv("LD_PRELOAD", v, 1))
		die2("setenv: %s", strerror(errno));
	free(v);
	snprintf(num, sizeof(num), "%llu", opt.min_size);
	if (setenv("LIBUFFD_RUN_PAGER", opt.pager, 1) ||
	    setenv("LIBUFFD_RUN_MIN_SIZE", num, 1) ||
	    setenv("LIBUFFD_RUN_DELIVERY", opt.delivery, 1) ||
	    (stats_path && setenv("LIBUFFD_RUN_STATS", stats_path, 1)))
		die2("setenv: %s", strerror(errno));
}

/* End as COMMAND ended: the same exit status, or the same signal. */
static void exit_like(int status)
{
	struct rlimit no_core = { 0, 0 };
	int sig;

	if (WIFEXITED(status))
		exit(WEXITSTATUS(status));
	sig = WTERMSIG(status);
	fflush(NULL);
	setrlimit(RLIMIT_CORE, &no_core);	/* COMMAND dumped its own */
	signal(sig, SIG_DFL);
	sigprocmask(SIG_SETMASK, &(sigset_t){ 0 }, NULL);
	kill(getpid(), sig);
	exit(128 + sig);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "pager",	required_argument, NULL, 'p' },
		{ "min-size",	required_argument, NULL, 'm' },
		{ "delivery",	required_argument, NULL, 'd' },
		{ "stats",	required_argument, NULL, 's' },
		{ "stats-file",	required_argument, NULL, 'f' },
		{ "strict",	no_argument,	   NULL, 'S' },
		{ "native",	no_argument,	   NULL, 'n' },
		{ "help",	no_argument,	   NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	char preload_buf[PATH_MAX], why[256], stats_path[64] = "", name[64];
	const struct uffd_pager_ops *ops;
	const char *preload = NULL;
	struct sigaction sa;
	struct tally t;
	bool paged = false, usable;
	int c, status, ret;

	while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		switch (c) {
		case 'p': opt.pager = optarg; break;
		case 'm':
			if (parse_size(optarg, &opt.min_size) < 0 ||
			    !opt.min_size)
				die2("bad --min-size '%s'", optarg);
			break;
		case 'd':
			if (strcmp(optarg, "thread") &&
			    strcmp(optarg, "sigbus"))
				die2("bad --delivery '%s': thread or sigbus",
				     optarg);
			opt.delivery = optarg;
			break;
		case 's':
			if (strcmp(optarg, "text") && strcmp(optarg, "json"))
				die2("bad --stats '%s': text or json", optarg);
			opt.stats = optarg;
			break;
		case 'f': opt.stats_file = optarg; break;
		case 'S': opt.strict = true; break;
		case 'n': opt.native = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	/*
	 * The spec's syntax and pager name are checked without a
	 * userfaultfd, its values by the pager's init on a scratch region,
	 * which needs one: without it, only what can be checked is.
	 */
	usable = uffd_usable(why, sizeof(why)) == 0;
	ret = uffd_pager_spec_check(opt.pager, 0);
	if (ret < 0 && (usable || ret == -EINVAL))
		die2("bad --pager '%s': %s", opt.pager, uffd_last_error());
	snprintf(name, sizeof(name), "%.*s",
		 (int)strcspn(opt.pager, ":"), opt.pager);
	ops = uffd_pager_find(name);
	if (!strcmp(opt.delivery, "sigbus") && ops &&
	    !(ops->flags & LIBUFFD_PAGER_CONCURRENT))
		die2("pager %s cannot serve faults in SIGBUS mode: use "
		     "--delivery thread", ops->name);

	if (!opt.native) {
		preload = find_preload(preload_buf, sizeof(preload_buf));
		if (!preload)
			die2("cannot find %s (set LIBUFFD_PRELOAD)",
			     PRELOAD_NAME);
		if (usable) {
			paged = true;
		} else if (opt.strict) {
			die2("userfaultfd unusable (%s): not starting %s "
			     "(--strict)", why, argv[optind]);
		} else {
			fprintf(stderr, "uffd-run: userfaultfd unusable (%s): "
				"running %s unpaged\n", why, argv[optind]);
		}
	}
	if (paged && statically_linked(argv[optind]))
		fprintf(stderr, "uffd-run: %s is statically linked: nothing "
			"it maps will be paged\n", argv[optind]);
	if (opt.stats || opt.stats_file) {
		const char *tmp = getenv("TMPDIR");
		int fd;

		snprintf(stats_path, sizeof(stats_path), "%s/uffd-run.XXXXXX",
			 tmp && strlen(tmp) < 40 ? tmp : "/tmp");
		fd = mkstemp(stats_path);
		if (fd < 0)
			die2("%s: %s", stats_path, strerror(errno));
		close(fd);
	}
	if (paged)
		set_env(preload, *stats_path ? stats_path : NULL);

	/* the terminal's SIGINT reaches COMMAND itself; relay the others */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGQUIT, &sa, NULL);
	sa.sa_handler = relay;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	fflush(NULL);
	child = fork();
	if (child < 0)
		die2("fork: %s", strerror(errno));
	if (child == 0) {
		signal(SIGINT, SIG_DFL);
		signal(SIGQUIT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		execvp(argv[optind], &argv[optind]);
		fprintf(stderr, "uffd-run: %s: %s\n", argv[optind],
			strerror(errno));
		_exit(errno == ENOENT ? 127 : 126);
	}
	while (waitpid(child, &status, 0) < 0)
		if (errno != EINTR)
			die2("waitpid: %s", strerror(errno));
	if (*stats_path) {
		tally_file(stats_path, &t);
		unlink(stats_path);
		report(&t, paged);
	}
	exit_like(status);
	return 0;
}
