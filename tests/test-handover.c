/* SPDX-License-Identifier: MIT */
/*
 * Handing a userfaultfd over a Unix socket: a real round trip with the
 * uffd-serve daemon in another process, and refusal of bad messages, wrong
 * versions and peers of another uid, with nothing kept.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "helpers.h"

struct wire {
	uint32_t	magic, version, nranges, hdr_size;
	uint64_t	features;
	struct uffd_handover_range r[2];
};

static socklen_t abstract_addr(struct sockaddr_un *sun, const char *tag)
{
	int n;

	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	n = snprintf(sun->sun_path + 1, sizeof(sun->sun_path) - 1,
		     "libuffd-test-%s-%d", tag, (int)getpid());
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
}

/* Send @len bytes of @buf with descriptor @fd (-1: none). */
static void send_raw(int sock, const void *buf, size_t len, int fd)
{
	union {
		struct cmsghdr	align;
		char		b[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;

	if (fd >= 0) {
		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.b;
		msg.msg_controllen = sizeof(ctl.b);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	ck_assert_int_eq(sendmsg(sock, &msg, 0), (ssize_t)len);
}

static void good_wire(struct wire *w, unsigned n)
{
	memset(w, 0, sizeof(*w));
	w->magic = LIBUFFD_HANDOVER_MAGIC;
	w->version = LIBUFFD_HANDOVER_VERSION;
	w->nranges = n;
	w->hdr_size = 24;
	w->r[0].base = 1ull << 30;
	w->r[0].len = 16 * page_size();
	w->r[0].page_size = page_size();
	w->r[1] = w->r[0];
	w->r[1].base += 1ull << 24;
}

/* recv on the other end of a socketpair; returns its result. */
static int try_recv(const struct wire *w, size_t len, int fd)
{
	struct uffd_handover_range r[LIBUFFD_HANDOVER_MAX];
	struct uffd_handover_range before[LIBUFFD_HANDOVER_MAX];
	unsigned n = LIBUFFD_HANDOVER_MAX;
	int sv[2], got = -1, ret, fds;

	memset(r, 0xa5, sizeof(r));
	memcpy(before, r, sizeof(r));
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
	send_raw(sv[0], w, len, fd);
	fds = count_fds();
	clear_last_error();
	ret = uffd_handover_recv(sv[1], &got, NULL, r, &n);
	if (ret < 0) {
		/* refused: nothing kept, a reason given */
		ck_assert_int_eq(count_fds(), fds);
		ck_assert_int_eq(got, -1);
		ck_assert_str_ne(uffd_last_error(), "");
		/* not even the ranges before a bad one are written */
		ck_assert_uint_eq(n, LIBUFFD_HANDOVER_MAX);
		ck_assert(!memcmp(r, before, sizeof(r)));
	} else {
		ck_assert_int_eq(count_fds(), fds + 1);
		ck_assert_uint_eq(n, w->nranges);
		ck_assert_uint_eq(r[0].len, w->r[0].len);
		close(got);
	}
	close(sv[0]);
	close(sv[1]);
	return ret;
}

static int raw_uffd(void)
{
	struct uffd_ctx *c;
	int fd;

	ck_assert_int_eq(uffd_ctx_create(&c, NULL), 0);
	fd = dup(uffd_ctx_fd(c));
	uffd_ctx_destroy(c);
	return fd;
}

START_TEST(recv_good)
{
	struct wire w;
	int fd = raw_uffd();

	good_wire(&w, 2);
	ck_assert_int_eq(try_recv(&w, 24 + 2 * 32, fd), 0);
	close(fd);
}
END_TEST

START_TEST(recv_bad_messages)
{
	struct wire w;
	int fd = raw_uffd();
	int pipefd[2];

	good_wire(&w, 1);
	w.magic ^= 1;
	ck_assert_int_eq(try_recv(&w, 24 + 32, fd), -EPROTO);
	good_wire(&w, 1);
	w.version = 2;
	ck_assert_int_eq(try_recv(&w, 24 + 32, fd), -EPROTO);
	ck_assert_ptr_nonnull(strstr(uffd_last_error(), "version"));
	good_wire(&w, 1);
	ck_assert_int_eq(try_recv(&w, 10, fd), -EPROTO);	/* short */
	good_wire(&w, 2);
	ck_assert_int_eq(try_recv(&w, 24 + 32, fd), -EPROTO);	/* count */
	good_wire(&w, 1);
	w.nranges = 0;
	ck_assert_int_eq(try_recv(&w, 24, fd), -EPROTO);
	good_wire(&w, 1);
	w.r[0].base += 1;					/* unaligned */
	ck_assert_int_eq(try_recv(&w, 24 + 32, fd), -EPROTO);
	good_wire(&w, 1);
	w.r[0].page_size = 3000;
	ck_assert_int_eq(try_recv(&w, 24 + 32, fd), -EPROTO);
	good_wire(&w, 2);
	w.r[1].len = 0;			/* a bad range after a good one */
	ck_assert_int_eq(try_recv(&w, 24 + 2 * 32, fd), -EPROTO);
	good_wire(&w, 1);
	ck_assert_int_eq(try_recv(&w, 24 + 32, -1), -EBADF);	/* no fd */
	ck_assert_int_eq(pipe(pipefd), 0);
	ck_assert_int_eq(try_recv(&w, 24 + 32, pipefd[0]), -EBADF);
	close(pipefd[0]);
	close(pipefd[1]);
	close(fd);
}
END_TEST

START_TEST(recv_bad_args)
{
	struct uffd_handover_range r[1];
	unsigned n = 0;
	int fd;

	ck_assert_int_eq(uffd_handover_recv(-1, &fd, NULL, r, &n), -EINVAL);
	ck_assert_int_eq(uffd_handover_send(-1, 0, 0, r, 1), -EINVAL);
	ck_assert_int_eq(uffd_handover_send(0, 0, 0, r, 0), -EINVAL);
	ck_assert_int_eq(uffd_handover_send(0, 0, 0, r,
					    LIBUFFD_HANDOVER_MAX + 1), -EINVAL);
}
END_TEST

/* A peer of another uid is refused, and its descriptor is not kept. */
START_TEST(recv_wrong_uid)
{
	struct uffd_handover_range r[4];
	struct sockaddr_un sun;
	socklen_t alen = abstract_addr(&sun, "uid");
	unsigned n = 4;
	int lfd, conn, got = -1, fds, status;
	pid_t pid;

	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(lfd, 0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sun, alen), 0);
	ck_assert_int_eq(listen(lfd, 1), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct wire w;
		int s, fd = raw_uffd();

		if (setgid(65534) || setuid(65534))
			_exit(3);
		s = socket(AF_UNIX, SOCK_STREAM, 0);
		if (connect(s, (struct sockaddr *)&sun, alen))
			_exit(4);
		good_wire(&w, 1);
		send_raw(s, &w, 24 + 32, fd);
		_exit(0);
	}
	conn = accept(lfd, NULL, NULL);
	ck_assert_int_ge(conn, 0);
	fds = count_fds();
	ck_assert_int_eq(uffd_handover_recv(conn, &got, NULL, r, &n), -EPERM);
	ck_assert_int_eq(count_fds(), fds);
	ck_assert_int_eq(got, -1);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	close(conn);
	close(lfd);
}
END_TEST

/* Start demos/uffd-serve; returns its pid once it listens. */
static pid_t start_daemon(const char *sock, const char *spec)
{
	const char *dir = getenv("LIBUFFD_DEMOS");
	char path[4096], line[256];
	int pfd[2];
	pid_t pid;
	FILE *f;

	snprintf(path, sizeof(path), "%s/uffd-serve", dir ? dir : "demos");
	ck_assert_msg(access(path, X_OK) == 0, "no %s (set LIBUFFD_DEMOS)",
		      path);
	ck_assert_int_eq(pipe(pfd), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(pfd[1], 1);
		close(pfd[0]);
		execl(path, path, "--socket", sock, "--pager", spec, "--once",
		      (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	f = fdopen(pfd[0], "r");
	ck_assert_ptr_nonnull(fgets(line, sizeof(line), f));
	ck_assert_ptr_nonnull(strstr(line, "listening"));
	fclose(f);
	return pid;
}

/*
 * The round trip of the issue: this process registers a region, hands the
 * uffd to the daemon, and touches its memory; the daemon's pager
 * (prealloc:batch=4, so that its work shows in pagemap) serves it.
 */
START_TEST(daemon_round_trip)
{
	struct uffd_ctx *c;
	struct uffd_region *r;
	struct uffd_handover_range hr;
	struct sockaddr_un sun;
	socklen_t alen = abstract_addr(&sun, "serve");
	char name[108], ack;
	size_t ps = page_size();
	uint8_t *p;
	int s, status, i;
	pid_t pid;

	memcpy(name, sun.sun_path, sizeof(name));
	name[0] = '@';
	pid = start_daemon(name, "prealloc:batch=4");

	ck_assert_int_eq(uffd_ctx_create(&c, NULL), 0);
	ck_assert_int_eq(make_region(c, LIBUFFD_MEM_ANON, 32, NULL, &r), 0);
	p = uffd_region_addr(r);
	hr.base = (uint64_t)(uintptr_t)p;
	hr.len = 32 * ps;
	hr.file_offset = 0;
	hr.page_size = ps;
	s = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_eq(connect(s, (struct sockaddr *)&sun, alen), 0);
	ck_assert_int_eq(uffd_handover_send(s, uffd_ctx_fd(c),
					    uffd_ctx_features(c), &hr, 1), 0);
	ck_assert_int_eq(read(s, &ack, 1), 1);
	ck_assert_int_eq(ack, '+');

	/* our own context never started: every fault is the daemon's */
	poke(p + 5 * ps, 0x55);
	ck_assert_uint_eq(peek(p + 5 * ps), 0x55);
	ck_assert_int_eq(present_pages(p + 4 * ps, 4 * ps), 4);
	ck_assert_int_eq(present_pages(p + 8 * ps, 4 * ps), 0);
	for (i = 16; i < 32; i++)
		ck_assert_uint_eq(peek(p + i * ps), 0);
	ck_assert_int_eq(uffd_fdinfo_pending(uffd_ctx_fd(c)), 0);

	close(s);	/* done: the daemon lets go and exits (--once) */
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	ck_assert_uint_eq(peek(p + 5 * ps), 0x55);
	uffd_ctx_destroy(c);
}
END_TEST

static Suite *handover_suite(void)
{
	Suite *s = suite_create("handover");
	TCase *tc = add_tcase(s, "messages", NULL, NULL);

	tcase_add_test(tc, recv_good);
	tcase_add_test(tc, recv_bad_messages);
	tcase_add_test(tc, recv_bad_args);
	tcase_add_test(tc, recv_wrong_uid);

	tc = add_tcase(s, "daemon", NULL, NULL);
	tcase_add_test(tc, daemon_round_trip);
	return s;
}

int main(void)
{
	require_kernel(LIBUFFD_FEATURE_EVENT_UNMAP, 0);
	signal(SIGPIPE, SIG_IGN);
	return run_suite(handover_suite());
}
