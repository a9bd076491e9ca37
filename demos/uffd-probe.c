/* SPDX-License-Identifier: MIT */
/*
 * uffd-probe - what this kernel offers userfaultfd and what that means for
 * libuffd: the first thing to run on a new machine.
 *
 *   uffd-probe [--json] [--no-measure]
 *
 * Everything comes from uffd_probe() (features, ioctls per memory type,
 * the open method, the native zero page, THP, huge pages, sysctls) plus a
 * few facts only this command needs (who we are, /dev/userfaultfd's
 * permissions, whether io_uring may be used), and, unless --no-measure,
 * the cost of a native first touch measured now.  The pager table
 * follows what each pager's source does when a feature is missing
 * (pagers/prezero.c, pagers/file.c).
 *
 * Exit: 0 when userfaultfd can be used, 1 when it cannot (everything else
 * is still printed), 2 on bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <liburing.h>
#include <libuffd.h>

#define ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))

#define TOUCH_SIZE	(16u << 20)
#define TOUCH_REPS	5

static const char *prog = "uffd-probe";

/* ------------------------------------------------------------------ */
/* Facts beyond uffd_probe()                                          */
/* ------------------------------------------------------------------ */

struct facts {
	struct uffd_probe	p;
	int			probe_ret;
	char			error[256];	/* uffd_last_error() */
	char			line[512];	/* uffd_probe_format TEXT */
	char			json[4096];	/* ... JSON */
	bool			usable;
	uid_t			uid;
	int			cap_sys_ptrace;	/* -1: unknown */
	int			seccomp;	/* /proc/self/status, -1 */
	bool			dev_exists;
	struct stat		dev_st;
	int			uring_errno;	/* 0: a ring can be set up */
	long			uring_disabled;	/* the sysctl, -1: absent */
	bool			measured;
	double			write_ns, read_ns;	/* per page */
};

static long read_long(const char *path)
{
	FILE *f = fopen(path, "re");
	long v = -1;

	if (!f)
		return -1;
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

/* CapEff and Seccomp from /proc/self/status. */
static void read_status(struct facts *f)
{
	FILE *fp = fopen("/proc/self/status", "re");
	unsigned long long caps;
	char line[256];
	int v;

	f->cap_sys_ptrace = -1;
	f->seccomp = -1;
	if (!fp)
		return;
	while (fgets(line, sizeof(line), fp)) {
		if (sscanf(line, "CapEff: %llx", &caps) == 1)
			f->cap_sys_ptrace = !!(caps & (1ULL << 19));
		else if (sscanf(line, "Seccomp: %d", &v) == 1)
			f->seccomp = v;
	}
	fclose(fp);
}

/* The file pager's default engine needs a ring; seccomp may refuse it. */
static void probe_uring(struct facts *f)
{
	struct io_uring ring;
	int ret;

	f->uring_disabled = read_long("/proc/sys/kernel/io_uring_disabled");
	ret = io_uring_queue_init(4, &ring, 0);
	f->uring_errno = ret < 0 ? -ret : 0;
	if (!ret)
		io_uring_queue_exit(&ring);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The measured code: no ASan shadow accesses (their faults would count). */
static __attribute__((no_sanitize_address, noinline))
void touch_write(volatile uint8_t *p, size_t len, size_t ps)
{
	size_t i;

	for (i = 0; i < len; i += ps)
		p[i] = 1;
}

static __attribute__((no_sanitize_address, noinline))
void touch_read(volatile const uint8_t *p, size_t len, size_t ps)
{
	size_t i;

	for (i = 0; i < len; i += ps)
		(void)p[i];
}

/* ns per page of one first touch of fresh memory; < 0 on failure. */
static double first_touch(bool write)
{
	size_t ps = (size_t)sysconf(_SC_PAGESIZE);
	uint64_t t0, t1;
	uint8_t *p;

	p = mmap(NULL, TOUCH_SIZE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -1;
	/* 4 KiB pages: THP would make this a different measurement */
	madvise(p, TOUCH_SIZE, MADV_NOHUGEPAGE);
	t0 = now_ns();
	if (write)
		touch_write(p, TOUCH_SIZE, ps);
	else
		touch_read(p, TOUCH_SIZE, ps);
	t1 = now_ns();
	munmap(p, TOUCH_SIZE);
	return (double)(t1 - t0) / (double)(TOUCH_SIZE / ps);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/*
 * Median of TOUCH_REPS first writes and first reads, interleaved, after
 * one warm-up write: a VM's first use of memory is slower than later ones.
 */
static void measure(struct facts *f)
{
	double w[TOUCH_REPS], r[TOUCH_REPS];
	int i;

	if (first_touch(true) < 0)
		return;
	for (i = 0; i < TOUCH_REPS; i++) {
		w[i] = first_touch(true);
		r[i] = first_touch(false);
		if (w[i] < 0 || r[i] < 0)
			return;
	}
	qsort(w, TOUCH_REPS, sizeof(w[0]), cmp_double);
	qsort(r, TOUCH_REPS, sizeof(r[0]), cmp_double);
	f->write_ns = w[TOUCH_REPS / 2];
	f->read_ns = r[TOUCH_REPS / 2];
	f->measured = true;
}

static void gather(struct facts *f, bool do_measure)
{
	memset(f, 0, sizeof(*f));
	f->p.size = sizeof(f->p);
	f->probe_ret = uffd_probe(&f->p);
	f->usable = f->probe_ret == 0;
	snprintf(f->error, sizeof(f->error), "%s",
		 f->usable ? "" : uffd_last_error());
	uffd_probe_format(&f->p, LIBUFFD_FMT_TEXT, f->line, sizeof(f->line));
	uffd_probe_format(&f->p, LIBUFFD_FMT_JSON, f->json, sizeof(f->json));
	f->uid = getuid();
	read_status(f);
	f->dev_exists = !stat("/dev/userfaultfd", &f->dev_st);
	probe_uring(f);
	if (do_measure)
		measure(f);
}

/* ------------------------------------------------------------------ */
/* What the facts mean                                                */
/* ------------------------------------------------------------------ */

static bool has_feature(const struct facts *f, uint64_t bit)
{
	return f->usable && (f->p.features & bit);
}

static bool reg_has(const struct facts *f, int type, uint64_t ioctls)
{
	return f->usable && (f->p.reg_ioctls[type] & ioctls) == ioctls;
}

static const char *errno_name(int err)
{
	static const struct {
		int		err;
		const char	*name;
	} names[] = {
		{ EPERM, "EPERM" }, { ENOENT, "ENOENT" }, { EACCES, "EACCES" },
		{ ENOSYS, "ENOSYS" }, { EINVAL, "EINVAL" },
		{ ENOMEM, "ENOMEM" }, { ENODEV, "ENODEV" },
		{ EOPNOTSUPP, "EOPNOTSUPP" }, { EBUSY, "EBUSY" },
		{ ENOTTY, "ENOTTY" }, { EMFILE, "EMFILE" },
	};
	static char buf[16];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(names); i++)
		if (names[i].err == err)
			return names[i].name;
	snprintf(buf, sizeof(buf), "errno %d", err);
	return buf;
}

/* One line of the pager and delivery tables. */
struct verdict {
	const char	*name;
	const char	*status;	/* "ok", "fallback", "no", ... */
	int		sigbus;		/* pagers: CONCURRENT; -1: n/a */
	char		why[200];
};

#define WHY(v, ...)	snprintf((v)->why, sizeof((v)->why), __VA_ARGS__)

static void pager_verdict(const struct facts *f,
			  const struct uffd_pager_ops *ops, struct verdict *v)
{
	const uint64_t cz = LIBUFFD_IOCTL_COPY | LIBUFFD_IOCTL_ZEROPAGE;

	v->name = ops->name;
	v->sigbus = ops->version >= 2 &&
		    (ops->flags & LIBUFFD_PAGER_CONCURRENT);
	v->status = "ok";
	if (!f->usable) {
		v->status = "no";
		WHY(v, "userfaultfd unusable here");
		return;
	}
	if (!reg_has(f, LIBUFFD_MEM_ANON, cz)) {
		v->status = "no";
		WHY(v, "no UFFDIO_COPY/ZEROPAGE on anonymous memory");
		return;
	}
	if (!strcmp(ops->name, "zero")) {
		WHY(v, "reads ZEROPAGE, writes COPY a zeroed page");
	} else if (!strcmp(ops->name, "prealloc")) {
		WHY(v, "ZEROPAGE/COPY of N pages, one wake");
	} else if (!strcmp(ops->name, "hugezero")) {
		WHY(v, "ZEROPAGE/COPY of whole 2 MiB extents");
	} else if (!strcmp(ops->name, "prezero")) {
		if (has_feature(f, LIBUFFD_FEATURE_MOVE) &&
		    reg_has(f, LIBUFFD_MEM_ANON, LIBUFFD_IOCTL_MOVE)) {
			WHY(v, "writes MOVE pages in from a pre-zeroed pool "
			    "(anon; memfd and hugetlb copy zeros)");
		} else {
			v->status = "fallback";
			WHY(v, "no UFFDIO_MOVE (6.8): writes copy zeros, "
			    "no pool");
		}
	} else if (!strcmp(ops->name, "file")) {
		if (!f->uring_errno) {
			WHY(v, "io_uring works (engine=uring)");
		} else {
			v->status = "pread only";
			if (f->uring_disabled > 0)
				WHY(v, "io_uring refused: %s "
				    "(kernel.io_uring_disabled=%ld): use "
				    "file:engine=pread",
				    errno_name(f->uring_errno),
				    f->uring_disabled);
			else
				WHY(v, "io_uring refused: %s (seccomp, or an "
				    "old kernel): use file:engine=pread",
				    errno_name(f->uring_errno));
		}
	} else if (!strcmp(ops->name, "evict")) {
		/* write-protect faults: thread delivery only */
		v->sigbus = false;
		if (has_feature(f, LIBUFFD_FEATURE_MOVE) &&
		    reg_has(f, LIBUFFD_MEM_ANON, LIBUFFD_IOCTL_MOVE |
			    LIBUFFD_IOCTL_WRITEPROTECT)) {
			WHY(v, "MOVE takes pages out, write-protect finds "
			    "the dirty ones (anon only)");
		} else {
			v->status = "no";
			WHY(v, "needs UFFDIO_MOVE (6.8) and write-protect "
			    "on anonymous memory");
		}
	} else if (!strcmp(ops->name, "memcached")) {
		/* not in SIGBUS delivery: libmemcached allocates */
		WHY(v, "the file pager's reading from a memcached pool "
		    "(servers=, namespace=)");
	} else {
		v->status = "?";
		WHY(v, "a pager uffd-probe knows nothing of");
	}
}

enum { D_THREAD, D_SIGBUS, D_FAILURE, D_FORK, D_MEMFD, D_HUGETLB, D_N };

static void delivery_verdict(const struct facts *f, int what,
			     struct verdict *v)
{
	const struct uffd_probe *p = &f->p;
	const uint64_t copy = LIBUFFD_IOCTL_COPY;

	v->sigbus = -1;
	v->status = "ok";
	if (!f->usable && what != D_HUGETLB) {
		static const char *const names[] = {
			"thread", "sigbus", "failures", "fork", "memfd",
		};

		v->name = names[what];
		v->status = "no";
		WHY(v, "userfaultfd unusable here");
		return;
	}
	switch (what) {
	case D_THREAD:
		v->name = "thread";
		WHY(v, "handler threads read fault messages (always)");
		break;
	case D_SIGBUS:
		v->name = "sigbus";
		if (has_feature(f, LIBUFFD_FEATURE_SIGBUS)) {
			WHY(v, "faulting thread serves itself; read(2), "
			    "O_DIRECT, MADV_POPULATE into a region: EFAULT");
		} else {
			v->status = "no";
			WHY(v, "needs SIGBUS (4.14)");
		}
		break;
	case D_FAILURE:
		v->name = "failures";
		if (has_feature(f, LIBUFFD_FEATURE_POISON)) {
			WHY(v, "a failing pager's page is poisoned (POISON, "
			    "6.6): the toucher gets SIGBUS");
		} else if (has_feature(f, LIBUFFD_FEATURE_THREAD_ID)) {
			v->status = "fallback";
			WHY(v, "no POISON (6.6): SIGBUS is queued to the "
			    "faulting thread (THREAD_ID)");
		} else {
			v->status = "no";
			WHY(v, "neither POISON (6.6) nor THREAD_ID (4.14) "
			    "to signal the toucher");
		}
		break;
	case D_FORK:
		v->name = "fork";
		if (has_feature(f, LIBUFFD_FEATURE_EVENT_FORK)) {
			WHY(v, "opt-in EVENT_FORK: children served by child "
			    "contexts");
		} else {
			v->status = "no";
			WHY(v, "needs EVENT_FORK (4.11): a child loses its "
			    "registration");
		}
		break;
	case D_MEMFD:
		v->name = "memfd";
		if (has_feature(f, LIBUFFD_FEATURE_MISSING_SHMEM) &&
		    reg_has(f, LIBUFFD_MEM_MEMFD, copy)) {
			WHY(v, "MISSING_SHMEM regions");
		} else {
			v->status = "no";
			WHY(v, "needs MISSING_SHMEM (4.11)%s%s",
			    p->reg_errno[LIBUFFD_MEM_MEMFD] ? ": " : "",
			    p->reg_errno[LIBUFFD_MEM_MEMFD] ?
			    errno_name(p->reg_errno[LIBUFFD_MEM_MEMFD]) : "");
		}
		break;
	default:
		v->name = "hugetlb";
		if (!f->usable) {
			v->status = "no";
			WHY(v, "userfaultfd unusable here");
		} else if (!has_feature(f, LIBUFFD_FEATURE_MISSING_HUGETLBFS) ||
			   !reg_has(f, LIBUFFD_MEM_HUGETLB, copy)) {
			v->status = "no";
			WHY(v, "needs MISSING_HUGETLBFS (4.11)%s%s",
			    p->reg_errno[LIBUFFD_MEM_HUGETLB] ? ": " : "",
			    p->reg_errno[LIBUFFD_MEM_HUGETLB] ?
			    errno_name(p->reg_errno[LIBUFFD_MEM_HUGETLB]) :
			    "");
		} else if (p->huge_pages_free <= 0) {
			v->status = "no";
			WHY(v, "no free huge pages (vm.nr_hugepages=%lld): "
			    "regions get ENOMEM",
			    (long long)p->huge_pages_total);
		} else {
			WHY(v, "%lld free huge pages; zeros are copied (no "
			    "ZEROPAGE)", (long long)p->huge_pages_free);
		}
		break;
	}
}

/* ------------------------------------------------------------------ */
/* Text                                                               */
/* ------------------------------------------------------------------ */

static const char *const ioctl_names[] = {
	"REGISTER", "UNREGISTER", "WAKE", "COPY", "ZEROPAGE", "MOVE",
	"WRITEPROTECT", "CONTINUE", "POISON",
};

static void print_ioctls(FILE *out, uint64_t ioctls)
{
	const char *sep = "";
	unsigned int i;

	for (i = 0; i < 64; i++) {
		if (!(ioctls & (1ULL << i)))
			continue;
		if (i == 63)
			fprintf(out, "%sAPI", sep);
		else if (i < ARRAY_SIZE(ioctl_names))
			fprintf(out, "%s%s", sep, ioctl_names[i]);
		else
			fprintf(out, "%sbit%u", sep, i);
		sep = " ";
	}
}

/* Why /dev/userfaultfd can or cannot be used. */
static void why_dev(const struct facts *f, char *buf, size_t len)
{
	int err = f->p.dev_errno;

	if (!err)
		snprintf(buf, len, "works (mode %03o, uid %u, gid %u)",
			 f->dev_exists ? (unsigned)(f->dev_st.st_mode & 0777) :
			 0, f->dev_exists ? (unsigned)f->dev_st.st_uid : 0,
			 f->dev_exists ? (unsigned)f->dev_st.st_gid : 0);
	else if (err == ENOENT)
		snprintf(buf, len, "absent (Linux 6.1 added it)");
	else if (err == EACCES && f->dev_exists)
		snprintf(buf, len, "EACCES: mode %03o, uid %u, gid %u; you "
			 "are uid %u (it needs read and write)",
			 (unsigned)(f->dev_st.st_mode & 0777),
			 (unsigned)f->dev_st.st_uid,
			 (unsigned)f->dev_st.st_gid, (unsigned)f->uid);
	else
		snprintf(buf, len, "%s (%s)", errno_name(err), strerror(err));
}

static void why_syscall(const struct facts *f, char *buf, size_t len)
{
	int err = f->p.syscall_errno;

	if (!err)
		snprintf(buf, len, "works");
	else if (err == ENOSYS)
		snprintf(buf, len, "ENOSYS: kernel without userfaultfd");
	else if (err == EPERM && f->p.unprivileged_userfaultfd == 0 &&
		 f->cap_sys_ptrace == 0)
		snprintf(buf, len, "EPERM: vm.unprivileged_userfaultfd=0 and "
			 "no CAP_SYS_PTRACE (only UFFD_USER_MODE_ONLY would "
			 "be allowed, which libuffd does not use)");
	else if (err == EPERM && f->seccomp == 2)
		snprintf(buf, len, "EPERM: a seccomp filter is active");
	else
		snprintf(buf, len, "%s (%s)", errno_name(err), strerror(err));
}

#define WIDTH	79

/* @prefix, then @text word-wrapped at WIDTH under its own first column. */
static void wrap(const char *prefix, const char *text)
{
	size_t indent = strlen(prefix), col = indent, n;
	const char *w = text, *end;

	fputs(prefix, stdout);
	while (*w) {
		end = strchr(w, ' ');
		n = end ? (size_t)(end - w) : strlen(w);
		if (col > indent && col + 1 + n > WIDTH) {
			printf("\n%*s", (int)indent, "");
			col = indent;
		} else if (col > indent) {
			putchar(' ');
			col++;
		}
		fwrite(w, 1, n, stdout);
		col += n;
		w += n;
		while (*w == ' ')
			w++;
	}
	putchar('\n');
}

/* "  name              text", wrapped */
static void item(const char *name, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void item(const char *name, const char *fmt, ...)
{
	char prefix[64], text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	snprintf(prefix, sizeof(prefix), "  %-17s ", name);
	wrap(prefix, text);
}

static void print_size(char *buf, size_t len, uint64_t bytes)
{
	unsigned int shift = bytes >= (1ULL << 30) ? 30 :
			     bytes >= (1ULL << 20) ? 20 : 10;

	snprintf(buf, len, "%llu %ciB", (unsigned long long)(bytes >> shift),
		 shift == 30 ? 'G' : shift == 20 ? 'M' : 'K');
}

static void print_text(const struct facts *f)
{
	const struct uffd_probe *p = &f->p;
	const struct uffd_pager_ops *const *list = uffd_pager_list();
	static const char *const mem[] = { "anon", "memfd", "hugetlb" };
	static const char *const thp[] = { "never", "madvise", "always" };
	char why[256], prefix[64], hps[32];
	unsigned int i, n = 0, nf;
	struct verdict v;
	int t;

	/* one line, as uffd-bench's reports begin: grep finds it whole */
	printf("%s\n\n", f->line);

	printf("userfaultfd: %s\n", !f->usable ? "UNUSABLE" :
	       p->open_method == LIBUFFD_OPEN_DEV ?
	       "usable, through /dev/userfaultfd" :
	       "usable, through userfaultfd(2)");
	why_dev(f, why, sizeof(why));
	item("/dev/userfaultfd", "%s", why);
	why_syscall(f, why, sizeof(why));
	item("userfaultfd(2)", "%s", why);
	item("you", "uid %u, CAP_SYS_PTRACE %s; vm.unprivileged_userfaultfd"
	     "=%s", (unsigned)f->uid, f->cap_sys_ptrace < 0 ? "?" :
	     f->cap_sys_ptrace ? "yes" : "no",
	     p->unprivileged_userfaultfd < 0 ? "(absent)" :
	     p->unprivileged_userfaultfd ? "1" : "0");

	for (nf = 0; uffd_feature_name(nf); nf++)
		n += !!(p->features & (1ULL << nf));
	if (!f->usable)
		printf("features: unknown (no userfaultfd to ask)\n");
	else
		printf("features: %u of %u (with the release that added "
		       "each)\n", n, nf);
	for (i = 0; f->usable && i < nf; i++) {
		const char *has = p->features & (1ULL << i) ? "yes" : "NO";

		if (i % 2)
			printf("     %-18s %-4s %s\n", uffd_feature_name(i),
			       uffd_feature_since(i), has);
		else
			printf("  %-18s %-4s %s%s", uffd_feature_name(i),
			       uffd_feature_since(i), has,
			       i + 1 == nf ? "\n" : has[2] ? "" : " ");
	}
	if (f->usable) {
		printf("ioctls on a registered range:\n");
		for (t = 0; t < LIBUFFD_PROBE_MEM_TYPES; t++) {
			printf("  %-17s ", mem[t]);
			if (p->reg_ioctls[t])
				print_ioctls(stdout, p->reg_ioctls[t]);
			else
				printf("cannot register: %s",
				       errno_name(p->reg_errno[t]));
			putchar('\n');
		}
	}

	printf("memory:\n");
	item("native read fault", "%s", p->native_zero_page > 0 ?
	     "maps the shared zero page: no Rss; seed 000 takes 2 faults "
	     "per page natively" : p->native_zero_page == 0 ?
	     "allocates a page (no zero page): Rss grows; seed 000 takes 1 "
	     "fault per page natively, the zero pager still 2" :
	     "could not be told");
	if (p->thp_enabled < 0)
		item("THP", "absent");
	else
		item("THP", "enabled=%s, use_zero_page=%d%s",
		     thp[p->thp_enabled], p->thp_zero_page,
		     p->thp_zero_page > 0 ? " (reads map the huge zero page)"
		     : "");
	print_size(hps, sizeof(hps), p->huge_page_size);
	if (!p->huge_page_size)
		item("huge pages", "no hugetlb");
	else
		item("huge pages", "%s: %lld (vm.nr_hugepages), %lld free, "
		     "%lld reserved", hps, (long long)p->huge_pages_total,
		     (long long)p->huge_pages_free,
		     (long long)p->huge_pages_rsvd);
	if (f->measured)
		item("first touch", "write %.0f ns/page, read %.0f ns/page "
		     "(measured now: %u MiB of fresh 4 KiB pages, median of "
		     "%d)", f->write_ns, f->read_ns, TOUCH_SIZE >> 20,
		     TOUCH_REPS);

	printf("%-19s %-10s %-7s%s\n", "pagers:", "status", "sigbus", "why");
	for (i = 0; list[i]; i++) {
		pager_verdict(f, list[i], &v);
		snprintf(prefix, sizeof(prefix), "  %-17s %-10s %-7s", v.name,
			 v.status, v.sigbus ? "yes" : "no");
		wrap(prefix, v.why);
	}
	printf("%-19s %s\n", "delivery, regions:", "status");
	for (t = 0; t < D_N; t++) {
		delivery_verdict(f, t, &v);
		snprintf(prefix, sizeof(prefix), "  %-17s %-10s ", v.name,
			 v.status);
		wrap(prefix, v.why);
	}
}

/* ------------------------------------------------------------------ */
/* JSON                                                               */
/* ------------------------------------------------------------------ */

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void json_verdict(const struct verdict *v, bool first)
{
	printf("%s{\"name\":", first ? "" : ",");
	json_str(v->name);
	printf(",\"status\":");
	json_str(v->status);
	if (v->sigbus >= 0)
		printf(",\"sigbus\":%s", v->sigbus ? "true" : "false");
	printf(",\"why\":");
	json_str(v->why);
	putchar('}');
}

static void print_json(const struct facts *f)
{
	const struct uffd_pager_ops *const *list = uffd_pager_list();
	struct verdict v;
	char why[256];
	unsigned int i;
	int t;

	printf("{\"facts\":");
	json_str(f->line);
	printf(",\"probe\":%s,\"error\":", f->json);
	if (f->usable)
		printf("null");
	else
		json_str(f->error);
	printf(",\"uid\":%u", (unsigned)f->uid);
	printf(",\"cap_sys_ptrace\":%s", f->cap_sys_ptrace < 0 ? "null" :
	       f->cap_sys_ptrace ? "true" : "false");
	why_dev(f, why, sizeof(why));
	printf(",\"dev_userfaultfd\":");
	json_str(why);
	why_syscall(f, why, sizeof(why));
	printf(",\"syscall_userfaultfd\":");
	json_str(why);
	printf(",\"io_uring_errno\":%d", f->uring_errno);
	if (f->uring_disabled >= 0)
		printf(",\"io_uring_disabled\":%ld", f->uring_disabled);
	else
		printf(",\"io_uring_disabled\":null");
	printf(",\"features\":[");
	for (i = 0; uffd_feature_name(i); i++) {
		printf("%s{\"name\":\"%s\",\"since\":\"%s\",\"present\":%s}",
		       i ? "," : "", uffd_feature_name(i),
		       uffd_feature_since(i), !f->usable ? "null" :
		       f->p.features & (1ULL << i) ? "true" : "false");
	}
	printf("],\"pagers\":[");
	for (i = 0; list[i]; i++) {
		pager_verdict(f, list[i], &v);
		json_verdict(&v, i == 0);
	}
	printf("],\"delivery\":[");
	for (t = 0; t < D_N; t++) {
		delivery_verdict(f, t, &v);
		json_verdict(&v, t == 0);
	}
	printf("],\"first_touch\":");
	if (f->measured)
		printf("{\"measured_now\":true,\"size_bytes\":%u,\"reps\":%d,"
		       "\"write_ns_per_page\":%.1f,\"read_ns_per_page\":%.1f}",
		       TOUCH_SIZE, TOUCH_REPS, f->write_ns, f->read_ns);
	else
		printf("null");
	printf("}\n");
}

/* ------------------------------------------------------------------ */

static void usage(FILE *fp)
{
	fprintf(fp,
"Usage: %s [--json] [--no-measure]\n"
"What this kernel offers userfaultfd and what it means for libuffd: the\n"
"open method, features and ioctls, the native zero page, THP and huge\n"
"pages, vm.unprivileged_userfaultfd, and which pagers and delivery modes\n"
"run here, fall back, or cannot run, each with the reason.\n"
"  -j, --json        one JSON object instead of text\n"
"  -n, --no-measure  skip the native first-touch timing (under a second)\n"
"  -h, --help        this text\n"
"Exit: 0 userfaultfd usable, 1 unusable (the rest is still printed),\n"
"2 bad usage.\n", prog);
}

static void __attribute__((noreturn)) bad_usage(const char *fmt,
						const char *arg)
{
	fprintf(stderr, "%s: ", prog);
	fprintf(stderr, fmt, arg);
	fprintf(stderr, " (see --help)\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json",       no_argument, NULL, 'j' },
		{ "no-measure", no_argument, NULL, 'n' },
		{ "help",       no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	bool json = false, do_measure = true;
	struct facts *f;
	char opt[3] = "-?";
	int c, status;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "jnh", longopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'n':
			do_measure = false;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			if (optopt) {
				opt[1] = (char)optopt;
				bad_usage("unknown option '%s'", opt);
			}
			bad_usage("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		bad_usage("unexpected argument '%s'", argv[optind]);

	f = calloc(1, sizeof(*f));
	if (!f) {
		fprintf(stderr, "%s: out of memory\n", prog);
		return 1;
	}
	gather(f, do_measure);
	if (json)
		print_json(f);
	else
		print_text(f);
	status = f->usable ? 0 : 1;
	if (!f->usable && !json)
		fprintf(stderr, "%s: userfaultfd cannot be used here: %s\n",
			prog, f->error);
	free(f);
	if (fflush(stdout))
		return 1;
	return status;
}
