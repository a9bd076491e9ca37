/* SPDX-License-Identifier: MIT */
/*
 * Firecracker's page-fault handler protocol (uffd_handover_recv_firecracker
 * and uffd-serve --protocol firecracker).
 *
 * A peer process does what Firecracker does on snapshot load with
 * mem_backend "Uffd": it maps two guest regions anonymously, makes a
 * userfaultfd with EVENT_REMOVE (O_CLOEXEC | O_NONBLOCK, not user-mode
 * only), registers both for missing faults, connects to the handler's
 * socket, sends in one sendmsg the JSON array Firecracker's serde writes
 * with the userfaultfd attached, and closes the socket.  Then it runs its
 * "guest": every page read against the memory file (from two vCPU-like
 * threads, and from the kernel through write(2)), balloon discards
 * (MADV_DONTNEED) before and after touching that must read zeros, in
 * base pages or 2 MiB hugetlb pages; or a wait while the test kills the
 * handler (the peer must die of SIGKILL, not hang), stops it, or makes
 * a page unreadable.  Two such peers are served at once.
 *
 * Also: the handshake refused over a socketpair for each kind of bad
 * message (nothing kept, a reason given), and refused by the daemon with
 * one line on stderr and the peer not served.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <linux/userfaultfd.h>

#include "helpers.h"
#include "mc-servers.h"

#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW	_IO(0xAA, 0x00)
#endif

/* The snapshot: two guest regions, back to back in the memory file. */
#define R0_BYTES	(6u << 20)
#define R1_BYTES	(2u << 20)
#define IMG_BYTES	(R0_BYTES + R1_BYTES)
#define HOLE_PAGE	100		/* 16 pages never written: a hole */
#define HOLE_PAGES	16
/* in base pages: discarded before first touch; written, discarded, touched */
#define GONE0		40
#define GONE1		50
#define REDO0		10
#define REDO1		30
#define HUGE		(2u << 20)
#define WAIT_MS		5000

static char img_path[4096];
static uint8_t *img;			/* what the memory file holds */

/* ---- the memory file ---- */

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	return x;
}

/*
 * Distinct data in every page, every fifth page all zeros, a hole; one
 * page that ends in a single nonzero byte (a lazy zero check would call
 * it a zero page).
 */
static void make_image(void)
{
	const char *dir = getenv("TMPDIR");
	size_t ps = page_size(), p, i;
	int fd;

	img = calloc(1, IMG_BYTES);
	if (!img)
		exit(TEST_EXIT_HARD_ERROR);
	for (p = 0; p < IMG_BYTES / ps; p++) {
		if (p % 5 == 0 ||
		    (p >= HOLE_PAGE && p < HOLE_PAGE + HOLE_PAGES))
			continue;
		for (i = 0; i < ps; i += 8) {
			uint64_t v = mix(p * ps + i + 1);

			memcpy(img + p * ps + i, &v, 8);
		}
	}
	memset(img + 7 * ps, 0, ps);
	img[8 * ps - 1] = 1;
	snprintf(img_path, sizeof(img_path), "%s/libuffd-fc-XXXXXX",
		 dir ? dir : "/tmp");
	fd = mkstemp(img_path);
	if (fd < 0 || ftruncate(fd, IMG_BYTES) < 0) {
		fprintf(stderr, "ERROR: memory file %s: %s\n", img_path,
			strerror(errno));
		exit(TEST_EXIT_HARD_ERROR);
	}
	/* written around the hole, which stays one */
	if (pwrite(fd, img, HOLE_PAGE * ps, 0) != (ssize_t)(HOLE_PAGE * ps) ||
	    pwrite(fd, img + (HOLE_PAGE + HOLE_PAGES) * ps,
		   IMG_BYTES - (HOLE_PAGE + HOLE_PAGES) * ps,
		   (off_t)((HOLE_PAGE + HOLE_PAGES) * ps)) !=
	    (ssize_t)(IMG_BYTES - (HOLE_PAGE + HOLE_PAGES) * ps)) {
		fprintf(stderr, "ERROR: writing %s\n", img_path);
		exit(TEST_EXIT_HARD_ERROR);
	}
	close(fd);
}

/* ---- the peer: what Firecracker does ---- */

enum json_kind {
	J_BOTH,		/* page_size and page_size_kib, as Firecracker 1.7+ */
	J_KIB,		/* page_size_kib only, as older ones */
	J_TRUNCATED,	/* the closing ']' missing */
	J_BAD_OFFSET,	/* the second region's offset off by a page */
};

enum fd_kind { FD_UFFD, FD_PIPE };

enum scenario {
	S_GUEST,	/* touch, verify, balloon; exit 0 when all is right */
	S_HOLD,		/* touch some, say 'R', wait for a byte, touch all */
	S_TOUCH,	/* touch page 0, then say 'T' */
	S_EIO,		/* touch pages up to EIO_PAGE */
};

#define EIO_PAGE	20

struct peer_opts {
	enum json_kind	json;
	enum fd_kind	fd;
	enum scenario	scen;
	size_t		size[2];
	bool		huge;	/* guest memory in 2 MiB hugetlb pages */
};

struct peer {
	pid_t	pid;
	int	res;		/* what the peer says */
	int	ctl;		/* what we tell it */
	int	uffd;		/* its descriptor number, once sent */
};

static struct sockaddr_un srv_addr;
static socklen_t srv_len;

static void server_name(const char *tag)
{
	int n;

	memset(&srv_addr, 0, sizeof(srv_addr));
	srv_addr.sun_family = AF_UNIX;
	n = snprintf(srv_addr.sun_path + 1, sizeof(srv_addr.sun_path) - 1,
		     "libuffd-fc-%s-%d", tag, (int)getpid());
	srv_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

/* The JSON of @kind for regions at @base of @size bytes, @ps pages. */
static size_t fc_json(char *buf, size_t len, enum json_kind kind,
		      const uint64_t base[2], const size_t size[2], size_t ps)
{
	size_t off = 0;
	uint64_t foff = 0;
	int i;

	off += (size_t)snprintf(buf + off, len - off, "[");
	for (i = 0; i < 2; i++) {
		uint64_t o = foff + (kind == J_BAD_OFFSET && i ? ps : 0);

		off += (size_t)snprintf(buf + off, len - off,
			"%s{\"base_host_virt_addr\":%llu,\"size\":%zu,"
			"\"offset\":%llu", i ? "," : "",
			(unsigned long long)base[i], size[i],
			(unsigned long long)o);
		if (kind == J_KIB)
			off += (size_t)snprintf(buf + off, len - off,
						",\"page_size_kib\":%zu}", ps);
		else
			off += (size_t)snprintf(buf + off, len - off,
						",\"page_size\":%zu,"
						"\"page_size_kib\":%zu}",
						ps, ps);
		foff += size[i];
	}
	if (kind != J_TRUNCATED)
		off += (size_t)snprintf(buf + off, len - off, "]");
	return off;
}

/* Firecracker's userfaultfd: /dev/userfaultfd first, then the syscall. */
static int fc_uffd(void)
{
	struct uffdio_api api = { .api = UFFD_API,
				  .features = UFFD_FEATURE_EVENT_REMOVE };
	int dev, fd = -1;

	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev >= 0) {
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
		close(dev);
	}
	if (fd < 0)
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 || ioctl(fd, UFFDIO_API, &api) < 0)
		return -1;
	return fd;
}

/* Send @len bytes with @n descriptors as SCM_RIGHTS, in one sendmsg. */
static int send_fds(int sock, const char *buf, size_t len, const int *fds,
		    int n)
{
	union {
		struct cmsghdr	align;
		char		b[CMSG_SPACE(2 * sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;

	if (n) {
		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.b;
		msg.msg_controllen = CMSG_SPACE(n * sizeof(int));
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(n * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, n * sizeof(int));
	}
	return sendmsg(sock, &msg, 0) == (ssize_t)len ? 0 : -1;
}

static uint8_t *guest[2];
static size_t guest_len[2];
/* the balloon's ranges, in base pages: whole guest pages */
static size_t gone0 = GONE0, gone1 = GONE1, redo0 = REDO0, redo1 = REDO1;
static int mismatches;

/* Region @r page @p must read as the file, or as zeros when @zero. */
static void verify_page(int r, size_t p, bool zero)
{
	size_t ps = page_size();
	const uint8_t *want = img + (r ? R0_BYTES : 0) + p * ps;
	const uint8_t *got = guest[r] + p * ps;
	size_t i;

	for (i = 0; i < ps; i++)
		if (got[i] != (zero ? 0 : want[i]))
			break;
	if (i < ps) {
		fprintf(stderr, "peer: region %d page %zu byte %zu: %#x, "
			"expected %#x\n", r, p, i, got[i],
			zero ? 0 : want[i]);
		__atomic_add_fetch(&mismatches, 1, __ATOMIC_RELAXED);
	}
}

static bool discarded_first(int r, size_t p)
{
	return r == 0 && p >= gone0 && p < gone1;
}

/* A vCPU: every other page of both regions, from @arg's parity. */
static void *vcpu(void *arg)
{
	size_t ps = page_size(), p, t = (size_t)(uintptr_t)arg;
	int r;

	for (r = 0; r < 2; r++)
		for (p = t; p < guest_len[r] / ps; p += 2)
			verify_page(r, p, discarded_first(r, p));
	return NULL;
}

/* The guest's life with a handler that serves it. */
static int run_guest(void)
{
	size_t ps = page_size(), i;
	pthread_t t[2];
	uint8_t buf[65536];
	int pfd[2];

	/* the kernel reads guest memory (as KVM does): faults served too */
	if (pipe(pfd) < 0)
		return 10;
	for (i = 0; i < 4; i++) {
		if (write(pfd[1], guest[1] + i * ps, ps) != (ssize_t)ps ||
		    read(pfd[0], buf, ps) != (ssize_t)ps)
			return 11;
		if (memcmp(buf, img + R0_BYTES + i * ps, ps)) {
			fprintf(stderr, "peer: write(2) of region 1 page %zu "
				"differs from the file\n", i);
			return 12;
		}
	}
	/* a balloon inflated before the guest touched those pages */
	if (madvise(guest[0] + gone0 * ps, (gone1 - gone0) * ps,
		    MADV_DONTNEED) < 0)
		return 13;
	for (i = 0; i < 2; i++)
		if (pthread_create(&t[i], NULL, vcpu, (void *)(uintptr_t)i))
			return 14;
	for (i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	/* written, given to the balloon, touched again: zeros */
	memset(guest[0] + redo0 * ps, 0x5a, (redo1 - redo0) * ps);
	if (madvise(guest[0] + redo0 * ps, (redo1 - redo0) * ps,
		    MADV_DONTNEED) < 0)
		return 15;
	for (i = redo0; i < redo1; i++)
		verify_page(0, i, true);
	/* and memory as ever after that */
	guest[0][redo0 * ps] = 7;
	if (guest[0][redo0 * ps] != 7)
		return 16;
	return __atomic_load_n(&mismatches, __ATOMIC_RELAXED) ? 20 : 0;
}

static void say(int fd, char c)
{
	if (write(fd, &c, 1) != 1)
		_exit(30);
}

static void __attribute__((noreturn))
peer_main(const struct peer_opts *o, int res, int ctl)
{
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	uint64_t base[2];
	char json[1024], c;
	int uffd, sock, pfd[2], sent, r;
	size_t ps = page_size(), gps = o->huge ? HUGE : ps, p;
	/* hugetlb: reserved at mmap, so that no fill finds the pool empty */
	int flags = MAP_PRIVATE | MAP_ANONYMOUS |
		    (o->huge ? MAP_HUGETLB : MAP_NORESERVE);

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (o->huge) {
		gone0 = HUGE / ps;
		gone1 = 2 * HUGE / ps;
		redo0 = gone1;
		redo1 = 3 * HUGE / ps;
	}
	uffd = fc_uffd();
	if (uffd < 0)
		_exit(2);
	for (r = 0; r < 2; r++) {
		guest_len[r] = o->size[r];
		guest[r] = mmap(NULL, o->size[r], PROT_READ | PROT_WRITE,
				flags, -1, 0);
		if (guest[r] == MAP_FAILED)
			_exit(3);
		base[r] = (uint64_t)(uintptr_t)guest[r];
		reg.range.start = base[r];
		reg.range.len = o->size[r];
		if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0)
			_exit(4);
	}
	sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock < 0 || connect(sock, (struct sockaddr *)&srv_addr,
				srv_len) < 0)
		_exit(5);
	if (o->fd == FD_PIPE && pipe(pfd) < 0)
		_exit(6);
	sent = o->fd == FD_PIPE ? pfd[0] : uffd;
	if (send_fds(sock, json, fc_json(json, sizeof(json), o->json, base,
					 o->size, gps), &sent, 1) < 0)
		_exit(7);
	close(sock);	/* as Firecracker does: nothing else is said */
	say(res, 'S');
	if (write(res, &uffd, sizeof(uffd)) != sizeof(uffd))
		_exit(8);
	switch (o->scen) {
	case S_GUEST:
		_exit(run_guest());
	case S_HOLD:
		for (p = 0; p < 64; p++)
			verify_page(0, p, false);
		say(res, __atomic_load_n(&mismatches, __ATOMIC_RELAXED) ?
		    'M' : 'R');
		if (read(ctl, &c, 1) < 0)
			_exit(31);
		for (p = 0; p < guest_len[1] / ps; p++)
			verify_page(1, p, false);
		_exit(0);
	case S_TOUCH:
		verify_page(0, 1, false);
		say(res, 'T');
		_exit(0);
	case S_EIO:
		for (p = 0; p <= EIO_PAGE; p++)
			verify_page(0, p, false);
		_exit(0);
	}
	_exit(1);
}

static void peer_start(struct peer *pe, const struct peer_opts *o)
{
	int res[2], ctl[2];
	char c;

	ck_assert_int_eq(pipe2(res, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(ctl, O_CLOEXEC), 0);
	pe->pid = fork();
	ck_assert_int_ge(pe->pid, 0);
	if (pe->pid == 0) {
		close(res[0]);
		close(ctl[1]);
		peer_main(o, res[1], ctl[0]);
	}
	close(res[1]);
	close(ctl[0]);
	pe->res = res[0];
	pe->ctl = ctl[1];
	/* the handshake is out: its descriptor number follows */
	ck_assert_int_eq(read(pe->res, &c, 1), 1);
	ck_assert_int_eq(c, 'S');
	ck_assert_int_eq(read(pe->res, &pe->uffd, sizeof(pe->uffd)),
			 sizeof(pe->uffd));
}

/* The next thing the peer says, or 0 if it says nothing for @ms. */
static char peer_says(const struct peer *pe, int ms)
{
	struct pollfd p = { .fd = pe->res, .events = POLLIN };
	char c = 0;

	if (poll(&p, 1, ms) == 1 && read(pe->res, &c, 1) != 1)
		c = 0;
	return c;
}

/* waitpid bounded by @ms: 0 and *status, or -ETIMEDOUT. */
static int wait_exit(pid_t pid, int ms, int *status)
{
	uint64_t end = now_ns() + (uint64_t)ms * 1000000;

	while (now_ns() < end) {
		pid_t r = waitpid(pid, status, WNOHANG);

		ck_assert_int_ge(r, 0);
		if (r == pid)
			return 0;
		sleep_us(2000);
	}
	return -ETIMEDOUT;
}

static void peer_end(struct peer *pe)
{
	close(pe->res);
	close(pe->ctl);
}

/* Faults waiting unread on the peer's userfaultfd. */
static long peer_pending(const struct peer *pe)
{
	char path[64], line[128];
	long n = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", (int)pe->pid,
		 pe->uffd);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "pending: %ld", &n) == 1)
			break;
	fclose(f);
	return n;
}

/* Wait (bounded) until the peer's fault is queued; returns pending. */
static long wait_peer_pending(const struct peer *pe)
{
	uint64_t end = now_ns() + (uint64_t)WAIT_MS * 1000000;
	long n;

	while ((n = peer_pending(pe)) == 0 && now_ns() < end)
		sleep_us(1000);
	return n;
}

/* ---- the daemon ---- */

struct daemon {
	pid_t	pid;
	int	err;		/* a memfd holding its stderr */
};

static void daemon_start(struct daemon *d, const char *source, bool once)
{
	const char *dir = getenv("LIBUFFD_DEMOS");
	char path[4096], name[sizeof(srv_addr.sun_path)], line[256];
	int out[2];
	FILE *f;

	snprintf(path, sizeof(path), "%s/uffd-serve", dir ? dir : "demos");
	ck_assert_msg(access(path, X_OK) == 0, "no %s (set LIBUFFD_DEMOS)",
		      path);
	memcpy(name, srv_addr.sun_path, sizeof(name));
	name[0] = '@';
	d->err = memfd_create("uffd-serve-stderr", MFD_CLOEXEC);
	ck_assert_int_ge(d->err, 0);
	ck_assert_int_eq(pipe(out), 0);
	d->pid = fork();
	ck_assert_int_ge(d->pid, 0);
	if (d->pid == 0) {
		/* a test that fails half way leaves no daemon behind */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(out[1], STDOUT_FILENO);
		dup2(d->err, STDERR_FILENO);
		close(out[0]);
		execl(path, path, "--socket", name, "--protocol",
		      "firecracker", "--source", source,
		      once ? "--once" : NULL, (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	f = fdopen(out[0], "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(line, sizeof(line), f));
	ck_assert_ptr_nonnull(strstr(line, "listening"));
	fclose(f);
}

/* What the daemon wrote on stderr so far (static buffer). */
static const char *daemon_err(const struct daemon *d)
{
	static char buf[8192];
	ssize_t n = pread(d->err, buf, sizeof(buf) - 1, 0);

	ck_assert_int_ge(n, 0);
	buf[n] = '\0';
	return buf;
}

/* Wait until the daemon's stderr has @n lines; returns them. */
static const char *daemon_lines(const struct daemon *d, int n)
{
	uint64_t end = now_ns() + (uint64_t)WAIT_MS * 1000000;
	const char *s;

	while ((s = daemon_err(d)), count_lines(s) < n && now_ns() < end)
		sleep_us(2000);
	ck_assert_msg(count_lines(s) == n, "expected %d lines on the "
		      "daemon's stderr, got:\n%s", n, s);
	return s;
}

/* Stop the daemon (SIGTERM) and return its exit status. */
static int daemon_stop(struct daemon *d)
{
	int status;

	kill(d->pid, SIGTERM);
	ck_assert_int_eq(wait_exit(d->pid, WAIT_MS, &status), 0);
	ck_assert(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static const struct peer_opts guest_both = {
	.json = J_BOTH, .fd = FD_UFFD, .scen = S_GUEST,
	.size = { R0_BYTES, R1_BYTES },
};

/* A whole guest life, served: the peer exits 0, and so does the daemon. */
static void serve_one(const struct peer_opts *o, const char *source)
{
	struct daemon d;
	struct peer pe;
	int status;

	server_name("one");
	daemon_start(&d, source, true);
	peer_start(&pe, o);
	ck_assert_int_eq(wait_exit(pe.pid, 20000, &status), 0);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "peer: status %#x; daemon said:\n%s", status,
		      daemon_err(&d));
	/* --once: the daemon lets go when its peer is gone */
	ck_assert_int_eq(wait_exit(d.pid, WAIT_MS, &status), 0);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	ck_assert_str_eq(daemon_err(&d), "");
	peer_end(&pe);
	close(d.err);
}

/*
 * A whole guest life each: page_size and page_size_kib as Firecracker
 * 1.7+ sends them; page_size_kib only, as older ones do (with a full
 * pager spec as the source); guest memory in 2 MiB hugetlb pages
 * (huge_pages "2M": page_size 2097152, faults and fills of whole huge
 * pages, the balloon discarding whole huge pages), last, as the machine
 * may have none to give.
 */
static const struct {
	enum json_kind	json;
	bool		huge;
	const char	*pre, *post;	/* the source: pre PATH post */
} serve_cases[] = {
	{ J_BOTH, false, "file:", "" },
	{ J_KIB, false, "file:path=", ",readahead=4" },
	{ J_BOTH, true, "file:", "" },
};

START_TEST(serve_guest)
{
	struct peer_opts o = guest_both;
	char src[4200];

	o.json = serve_cases[_i].json;
	o.huge = serve_cases[_i].huge;
	snprintf(src, sizeof(src), "%s%s%s", serve_cases[_i].pre, img_path,
		 serve_cases[_i].post);
	serve_one(&o, src);
}
END_TEST

/*
 * Served from a memcached pool instead of the file: the memory file
 * pushed whole (uffd-snapshot push) to three servers of the test's own,
 * and each guest region paged from its offset in it (the daemon appends
 * offset=, as for a file).  The same guest life: every page against the
 * file, the balloon's discards reading zeros.
 */
START_TEST(serve_guest_from_pool)
{
	const char *dir = getenv("LIBUFFD_DEMOS");
	struct mc_servers mc;
	char why[256], path[4096], src[1024];
	const char *args[5];
	struct result res;

	if (!uffd_store_find("memcached")) {
		skip_case("serve_guest_from_pool", "libuffd was built "
			  "without libmemcached");
		return;
	}
	if (!mc_servers_binary()) {
		skip_case("serve_guest_from_pool", "no memcached binary");
		return;
	}
	ck_assert_msg(!mc_servers_start(&mc, 3, 64, why, sizeof(why)),
		      "memcached: %s", why);
	snprintf(src, sizeof(src), "memcached:servers=%s,namespace=fc-%d",
		 mc.list, (int)getpid());
	snprintf(path, sizeof(path), "%s/uffd-snapshot", dir ? dir : "demos");
	args[0] = "push";
	args[1] = "--store";
	args[2] = src;
	args[3] = img_path;
	args[4] = NULL;
	run_program(&res, path, args, 60, 0, NULL, NULL);
	ck_assert_msg(res.status == 0, "uffd-snapshot push: exit %d: %s",
		      res.status, res.err);
	result_free(&res);
	serve_one(&guest_both, src);
	mc_servers_stop(&mc);
}
END_TEST

/* Two Firecrackers at once, each served from its own context. */
START_TEST(serve_two_peers)
{
	struct daemon d;
	struct peer pe[2];
	char src[4200];
	int status, i;

	server_name("two");
	snprintf(src, sizeof(src), "file:%s", img_path);
	daemon_start(&d, src, false);
	for (i = 0; i < 2; i++)
		peer_start(&pe[i], &guest_both);
	for (i = 0; i < 2; i++) {
		ck_assert_int_eq(wait_exit(pe[i].pid, 20000, &status), 0);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
			      "peer %d: status %#x", i, status);
		peer_end(&pe[i]);
	}
	ck_assert_int_eq(daemon_stop(&d), 0);
	ck_assert_str_eq(daemon_err(&d), "");
	close(d.err);
}
END_TEST

/* Children of @pid named @comm. */
static int children_named(pid_t pid, const char *comm)
{
	char path[64], buf[4096], c[64];
	int n = 0, off = 0, k;
	long child;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid,
		 (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	while (sscanf(buf + off, "%ld%n", &child, &k) == 1) {
		off += k;
		snprintf(path, sizeof(path), "/proc/%ld/comm", child);
		f = fopen(path, "re");
		if (f && fgets(c, sizeof(c), f) && !strncmp(c, comm,
							    strlen(comm)))
			n++;
		if (f)
			fclose(f);
	}
	return n;
}

/*
 * The handler is SIGKILLed while the guest runs: its watchdog kills the
 * guest, which would otherwise wait for ever on its next fault, and then
 * goes itself (this test reaps it: it is the subreaper of what the
 * daemon leaves).
 */
START_TEST(handler_killed_peer_killed)
{
	struct peer_opts o = guest_both;
	struct daemon d;
	struct peer pe;
	char src[4200];
	int status, reaped = 0;
	uint64_t end;
	pid_t w;

	ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	server_name("kill");
	snprintf(src, sizeof(src), "file:%s", img_path);
	daemon_start(&d, src, false);
	o.scen = S_HOLD;
	peer_start(&pe, &o);
	ck_assert_int_eq(peer_says(&pe, WAIT_MS), 'R');	/* served so far */
	/* its watchdog: forked before serving, named once it runs */
	end = now_ns() + (uint64_t)WAIT_MS * 1000000;
	while (children_named(d.pid, "uffd-serve-wd") == 0 && now_ns() < end)
		sleep_us(1000);
	ck_assert_int_eq(children_named(d.pid, "uffd-serve-wd"), 1);

	kill(d.pid, SIGKILL);
	ck_assert_int_eq(wait_exit(d.pid, WAIT_MS, &status), 0);
	ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	/* touch the rest, unless the watchdog was quicker (EPIPE) */
	ck_assert(write(pe.ctl, "g", 1) == 1 || errno == EPIPE);
	ck_assert_msg(wait_exit(pe.pid, WAIT_MS, &status) == 0,
		      "the peer still lives %d ms after its handler died",
		      WAIT_MS);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		      "peer: status %#x", status);
	/* the watchdog, orphaned to us, exited too */
	while ((w = waitpid(-1, &status, __WALL)) > 0) {
		ck_assert(WIFEXITED(status));
		reaped++;
	}
	ck_assert_int_eq(errno, ECHILD);
	ck_assert_int_eq(reaped, 1);
	ck_assert_str_eq(daemon_err(&d), "");
	peer_end(&pe);
	close(d.err);
}
END_TEST

/* Stopped with SIGTERM while its peer runs: the peer is killed, said once. */
START_TEST(handler_stops_peer_killed)
{
	struct peer_opts o = guest_both;
	struct daemon d;
	struct peer pe;
	char src[4200];
	int status;

	server_name("stop");
	snprintf(src, sizeof(src), "file:%s", img_path);
	daemon_start(&d, src, false);
	o.scen = S_HOLD;
	peer_start(&pe, &o);
	ck_assert_int_eq(peer_says(&pe, WAIT_MS), 'R');
	ck_assert_int_eq(daemon_stop(&d), 0);
	ck_assert_int_eq(wait_exit(pe.pid, WAIT_MS, &status), 0);
	ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	ck_assert_ptr_nonnull(strstr(daemon_lines(&d, 1), "stopping"));
	peer_end(&pe);
	close(d.err);
}
END_TEST

/* A page the file cannot give: the peer is killed, not left frozen. */
START_TEST(page_error_peer_killed)
{
	struct peer_opts o = guest_both;
	struct daemon d;
	struct peer pe;
	char src[4200];
	int status;

	server_name("eio");
	snprintf(src, sizeof(src), "file:path=%s,inject_eio=%d", img_path,
		 EIO_PAGE);
	daemon_start(&d, src, true);
	o.scen = S_EIO;
	peer_start(&pe, &o);
	ck_assert_int_eq(wait_exit(pe.pid, WAIT_MS, &status), 0);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
		      "peer: status %#x", status);
	ck_assert_ptr_nonnull(strstr(daemon_lines(&d, 1),
				     "could not be served"));
	ck_assert_int_eq(wait_exit(d.pid, WAIT_MS, &status), 0);
	peer_end(&pe);
	close(d.err);
}
END_TEST

/*
 * Refused handshakes: one line each, naming the fault; the peer, still
 * alive, is not served (its fault stays unread on its userfaultfd) and
 * not killed.
 */
START_TEST(daemon_refuses)
{
	static const struct {
		const char	*name;
		struct peer_opts o;
		const char	*why;
	} cases[] = {
		{ "bad JSON", { J_TRUNCATED, FD_UFFD, S_TOUCH,
				{ R0_BYTES, R1_BYTES }, false },
		  "message ends" },
		{ "offsets", { J_BAD_OFFSET, FD_UFFD, S_TOUCH,
			       { R0_BYTES, R1_BYTES }, false }, "offset" },
		{ "a pipe", { J_BOTH, FD_PIPE, S_TOUCH,
			      { R0_BYTES, R1_BYTES }, false },
		  "not a userfaultfd" },
		{ "file size", { J_BOTH, FD_UFFD, S_TOUCH,
				 { R0_BYTES, 2 * R1_BYTES }, false },
		  "memory file" },
	};
	struct daemon d;
	struct peer pe;
	char src[4200];
	const char *err, *line, *end;
	int status, i, k;

	server_name("refuse");
	snprintf(src, sizeof(src), "file:%s", img_path);
	daemon_start(&d, src, false);
	for (i = 0; i < (int)ARRAY_SIZE(cases); i++) {
		peer_start(&pe, &cases[i].o);
		err = daemon_lines(&d, i + 1);
		for (line = err, k = 0; k < i; k++)
			line = strchr(line, '\n') + 1;
		end = strchr(line, '\n');
		ck_assert_msg(!strncmp(line, "uffd-serve: refused: ", 21) &&
			      memmem(line, (size_t)(end - line), cases[i].why,
				     strlen(cases[i].why)), "%s: %s",
			      cases[i].name, line);
		/* the peer's touch waits, unread: nothing was served */
		ck_assert_int_eq(wait_peer_pending(&pe), 1);
		ck_assert_int_eq(peer_says(&pe, 200), 0);
		ck_assert_int_eq(peer_pending(&pe), 1);
		/* and the peer lives: a refusal kills nobody */
		ck_assert_int_eq(waitpid(pe.pid, &status, WNOHANG), 0);
		kill(pe.pid, SIGKILL);
		ck_assert_int_eq(wait_exit(pe.pid, WAIT_MS, &status), 0);
		peer_end(&pe);
	}
	ck_assert_int_eq(daemon_stop(&d), 1);	/* some were refused */
	daemon_lines(&d, ARRAY_SIZE(cases));	/* and nothing else said */
	close(d.err);
}
END_TEST

/* ---- the handshake over a socketpair ---- */

struct msg_case {
	const char	*name;
	const char	*json;		/* NULL: the good two-region one */
	int		fd;		/* what goes with it */
	int		ret;
	const char	*why;
};

enum { F_UFFD, F_NONE, F_PIPE, F_TWO, F_NO_API, F_NO_REMOVE };

static int raw_uffd(uint64_t features, bool api)
{
	struct uffdio_api a = { .api = UFFD_API, .features = features };
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	ck_assert_int_ge(fd, 0);
	if (api)
		ck_assert_int_eq(ioctl(fd, UFFDIO_API, &a), 0);
	return fd;
}

/* Send @c over a socketpair and receive it; check what is kept. */
static void try_case(const struct msg_case *c)
{
	static const uint64_t base[2] = { 1ull << 32, 1ull << 33 };
	static const size_t size[2] = { R0_BYTES, R1_BYTES };
	struct uffd_handover_range r[4], before[4];
	char json[1024];
	const char *msg = c->json;
	int sv[2], fds[2], nfds = 1, got = -1, pidfd = -1, nopen, ret, i;
	unsigned n = 4;

	if (!msg) {
		fc_json(json, sizeof(json), J_BOTH, base, size, page_size());
		msg = json;
	}
	switch (c->fd) {
	case F_NONE: nfds = 0; break;
	case F_PIPE: ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
		close(fds[1]); break;
	case F_TWO: fds[0] = raw_uffd(UFFD_FEATURE_EVENT_REMOVE, true);
		fds[1] = dup(fds[0]); nfds = 2; break;
	case F_NO_API: fds[0] = raw_uffd(0, false); break;
	case F_NO_REMOVE: fds[0] = raw_uffd(0, true); break;
	default: fds[0] = raw_uffd(UFFD_FEATURE_EVENT_REMOVE, true); break;
	}
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
				    sv), 0);
	ck_assert_int_eq(send_fds(sv[0], msg, strlen(msg), fds, nfds), 0);
	for (i = 0; i < nfds; i++)
		close(fds[i]);
	close(sv[0]);		/* as Firecracker does */
	memset(r, 0xa5, sizeof(r));
	memcpy(before, r, sizeof(r));
	nopen = count_fds();
	clear_last_error();
	ret = uffd_handover_recv_firecracker(sv[1], &got, r, &n, &pidfd);
	ck_assert_msg(ret == c->ret, "%s: %d (%s), expected %d", c->name, ret,
		      uffd_last_error(), c->ret);
	if (ret < 0) {
		ck_assert_int_eq(count_fds(), nopen);
		ck_assert_int_eq(got, -1);
		ck_assert_int_eq(pidfd, -1);
		ck_assert_uint_eq(n, 4);
		ck_assert(!memcmp(r, before, sizeof(r)));
		ck_assert_msg(strstr(uffd_last_error(), c->why), "%s: %s",
			      c->name, uffd_last_error());
	} else {
		/* the uffd and a pidfd of the peer: this very process */
		ck_assert_int_eq(count_fds(), nopen + 2);
		ck_assert_int_eq(uffd_fdinfo_pending(got), 0);
		ck_assert_int_eq(syscall(SYS_pidfd_send_signal, pidfd, 0,
					 NULL, 0), 0);
		close(got);
		close(pidfd);
	}
	close(sv[1]);
}

START_TEST(handshake_good)
{
	static const struct msg_case c = { "good", NULL, F_UFFD, 0, "" };
	static const uint64_t base[2] = { 1ull << 32, 1ull << 33 };
	static const size_t size[2] = { R0_BYTES, R1_BYTES };
	struct uffd_handover_range r[2];
	char json[1024];
	unsigned n = 2;
	int sv[2], fd = raw_uffd(UFFD_FEATURE_EVENT_REMOVE, true), got, kind;

	try_case(&c);
	/* both kinds of page size give the same ranges */
	for (kind = J_BOTH; kind <= J_KIB; kind++) {
		ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		ck_assert_int_eq(send_fds(sv[0], json,
					  fc_json(json, sizeof(json), kind,
						  base, size, page_size()),
					  &fd, 1), 0);
		n = 2;
		ck_assert_int_eq(uffd_handover_recv_firecracker(sv[1], &got,
								r, &n, NULL),
				 0);
		ck_assert_uint_eq(n, 2);
		ck_assert_uint_eq(r[0].base, base[0]);
		ck_assert_uint_eq(r[0].len, R0_BYTES);
		ck_assert_uint_eq(r[0].file_offset, 0);
		ck_assert_uint_eq(r[0].page_size, page_size());
		ck_assert_uint_eq(r[1].base, base[1]);
		ck_assert_uint_eq(r[1].len, R1_BYTES);
		ck_assert_uint_eq(r[1].file_offset, R0_BYTES);
		ck_assert_uint_eq(r[1].page_size, page_size());
		close(got);
		close(sv[0]);
		close(sv[1]);
	}
	close(fd);
}
END_TEST

START_TEST(handshake_refused)
{
	static const struct msg_case cases[] = {
		{ "empty", "[]", F_UFFD, -EPROTO, "no regions" },
		{ "not JSON", "hello", F_UFFD, -EPROTO, "expected '['" },
		{ "object", "{\"base_host_virt_addr\":4096}", F_UFFD,
		  -EPROTO, "expected '['" },
		{ "trailing", "[{\"base_host_virt_addr\":1073741824,"
		  "\"size\":4096,\"offset\":0,\"page_size\":4096}]]",
		  F_UFFD, -EPROTO, "bytes after" },
		{ "unknown field", "[{\"base_host_virt_addr\":1073741824,"
		  "\"size\":4096,\"offset\":0,\"page_size\":4096,"
		  "\"prot\":3}]", F_UFFD, -EPROTO, "unknown field \"prot\"" },
		{ "missing", "[{\"base_host_virt_addr\":1073741824,"
		  "\"offset\":0,\"page_size\":4096}]", F_UFFD, -EPROTO,
		  "no \"size\"" },
		{ "no page size", "[{\"base_host_virt_addr\":1073741824,"
		  "\"size\":4096,\"offset\":0}]", F_UFFD, -EPROTO,
		  "no page_size" },
		{ "twice", "[{\"base_host_virt_addr\":1073741824,"
		  "\"size\":4096,\"size\":4096,\"offset\":0,"
		  "\"page_size\":4096}]", F_UFFD, -EPROTO, "twice" },
		{ "sizes disagree", "[{\"base_host_virt_addr\":1073741824,"
		  "\"size\":4096,\"offset\":0,\"page_size\":4096,"
		  "\"page_size_kib\":4}]", F_UFFD, -EPROTO,
		  "page_size_kib 4" },
		{ "not a power of two", "[{\"base_host_virt_addr\":"
		  "1073741824,\"size\":12288,\"offset\":0,"
		  "\"page_size\":6144}]", F_UFFD, -EPROTO, "page size 6144" },
		{ "not whole pages", "[{\"base_host_virt_addr\":1073741824,"
		  "\"size\":6000,\"offset\":0,\"page_size\":4096}]", F_UFFD,
		  -EPROTO, "whole" },
		{ "first offset", "[{\"base_host_virt_addr\":1073741824,"
		  "\"size\":4096,\"offset\":4096,\"page_size\":4096}]",
		  F_UFFD, -EPROTO, "offset 4096, expected 0" },
		{ "offsets", "[{\"base_host_virt_addr\":1073741824,"
		  "\"size\":8192,\"offset\":0,\"page_size\":4096},"
		  "{\"base_host_virt_addr\":2147483648,\"size\":4096,"
		  "\"offset\":4096,\"page_size\":4096}]", F_UFFD, -EPROTO,
		  "offset 4096, expected 8192" },
		{ "overlap", "[{\"base_host_virt_addr\":1073741824,"
		  "\"size\":8192,\"offset\":0,\"page_size\":4096},"
		  "{\"base_host_virt_addr\":1073745920,\"size\":4096,"
		  "\"offset\":8192,\"page_size\":4096}]", F_UFFD, -EPROTO,
		  "overlap" },
		{ "negative", "[{\"base_host_virt_addr\":-4096,\"size\":4096,"
		  "\"offset\":0,\"page_size\":4096}]", F_UFFD, -EPROTO,
		  "unsigned integer" },
		{ "float", "[{\"base_host_virt_addr\":1e9,\"size\":4096,"
		  "\"offset\":0,\"page_size\":4096}]", F_UFFD, -EPROTO,
		  "not an integer" },
		{ "65 bits", "[{\"base_host_virt_addr\":18446744073709551616,"
		  "\"size\":4096,\"offset\":0,\"page_size\":4096}]", F_UFFD,
		  -EPROTO, "64 bits" },
		{ "no fd", NULL, F_NONE, -EBADF, "got 0" },
		{ "two fds", NULL, F_TWO, -EBADF, "got 2" },
		{ "a pipe", NULL, F_PIPE, -EBADF, "not a userfaultfd" },
		{ "no UFFDIO_API", NULL, F_NO_API, -EPROTO, "UFFDIO_API" },
		{ "no EVENT_REMOVE", NULL, F_NO_REMOVE, -EPROTO,
		  "EVENT_REMOVE" },
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cases); i++)
		try_case(&cases[i]);
}
END_TEST

/* Room for fewer regions than sent, and bad arguments. */
START_TEST(handshake_limits)
{
	static const uint64_t base[2] = { 1ull << 32, 1ull << 33 };
	static const size_t size[2] = { R0_BYTES, R1_BYTES };
	struct uffd_handover_range r[2];
	char json[1024];
	unsigned n = 1;
	int sv[2], fd = raw_uffd(UFFD_FEATURE_EVENT_REMOVE, true), got = -1;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_int_eq(send_fds(sv[0], json,
				  fc_json(json, sizeof(json), J_BOTH, base,
					  size, page_size()), &fd, 1), 0);
	ck_assert_int_eq(uffd_handover_recv_firecracker(sv[1], &got, r, &n,
							NULL), -EPROTO);
	ck_assert_ptr_nonnull(strstr(uffd_last_error(), "room for 1"));
	ck_assert_int_eq(got, -1);
	n = 0;
	ck_assert_int_eq(uffd_handover_recv_firecracker(sv[1], &got, r, &n,
							NULL), -EINVAL);
	n = 2;
	ck_assert_int_eq(uffd_handover_recv_firecracker(-1, &got, r, &n,
							NULL), -EINVAL);
	ck_assert_int_eq(uffd_handover_recv_firecracker(sv[1], NULL, r, &n,
							NULL), -EINVAL);
	/* the peer closed without a word */
	close(sv[0]);
	ck_assert_int_eq(uffd_handover_recv_firecracker(sv[1], &got, r, &n,
							NULL), -ECONNRESET);
	close(sv[1]);
	close(fd);
}
END_TEST

static Suite *firecracker_suite(void)
{
	Suite *s = suite_create("firecracker");
	TCase *tc = add_tcase(s, "handshake", NULL, NULL);
	bool huge;

	tcase_add_test(tc, handshake_good);
	tcase_add_test(tc, handshake_refused);
	tcase_add_test(tc, handshake_limits);

	tc = add_tcase(s, "daemon", NULL, NULL);
	/* the hugetlb peer reserves its 4 huge pages when it maps them */
	huge = meminfo_value("HugePages_Free") >= IMG_BYTES / HUGE;
	if (!huge)
		skip_case("serve_guest (hugetlb)", "fewer than %u huge pages "
			  "free", IMG_BYTES / HUGE);
	tcase_add_loop_test(tc, serve_guest, 0,
			    (int)ARRAY_SIZE(serve_cases) - !huge);
	tcase_add_test(tc, serve_two_peers);
	tcase_add_test(tc, serve_guest_from_pool);
	tcase_add_test(tc, handler_killed_peer_killed);
	tcase_add_test(tc, handler_stops_peer_killed);
	tcase_add_test(tc, page_error_peer_killed);
	tcase_add_test(tc, daemon_refuses);
	return s;
}

int main(void)
{
	int fd, ret;

	require_kernel(LIBUFFD_FEATURE_EVENT_REMOVE, 0);
	/* Firecracker's userfaultfd is not user-mode only: kernel faults */
	fd = fc_uffd();
	if (fd < 0) {
		fprintf(stderr, "SKIP: no userfaultfd that kernel accesses "
			"fault on (%s): vm.unprivileged_userfaultfd or "
			"/dev/userfaultfd access needed\n", strerror(errno));
		return TEST_EXIT_SKIP;
	}
	close(fd);
	signal(SIGPIPE, SIG_IGN);
	make_image();
	ret = run_suite(firecracker_suite());
	unlink(img_path);
	return ret;
}
