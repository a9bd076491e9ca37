/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: uffd_handover_recv over a real socketpair.
 *
 * Input: byte 0 says what travels with the message: bits 0-2 how many
 * descriptors (0-7), bit 3 whether the first is a userfaultfd (else a
 * pipe), bit 4 a stream socket instead of a datagram one, bits 5-7 the
 * receiver's capacity (1, 2, 4, ... 64, 64); the rest is sent as one
 * message.  Checked: accepted only with exactly one userfaultfd and a
 * message luffd_handover_parse accepts, a good message refused for its
 * descriptors only is -EBADF (-EPROTO past the 4 recv has room for); a
 * refusal keeps no descriptor
 * (the lowest free descriptor number is what it was) and gives a reason.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)							\
	do {								\
		if (!(x)) {						\
			fprintf(stderr, "%s:%d: check failed: %s\n",	\
				__FILE__, __LINE__, #x);		\
			abort();					\
		}							\
	} while (0)

static int uffd = -1, pipefd[2] = { -1, -1 };

static int lowest_free_fd(void)
{
	int fd = dup(0);

	CHECK(fd >= 0);
	close(fd);
	return fd;
}

static void setup(void)
{
	struct uffdio_api api = { .api = UFFD_API };

	if (pipefd[0] >= 0)
		return;
	CHECK(pipe2(pipefd, O_CLOEXEC) == 0);
	uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
	if (uffd >= 0 && ioctl(uffd, UFFDIO_API, &api)) {
		close(uffd);
		uffd = -1;
	}
	if (uffd < 0)
		fprintf(stderr, "fuzz-handover-recv: no userfaultfd (%s): "
			"only refusals are exercised\n", strerror(errno));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned caps[8] = { 1, 2, 4, 8, 16, 32, 64, 64 };
	struct uffd_handover_range r[LIBUFFD_HANDOVER_MAX];
	union {
		struct cmsghdr	align;
		char		b[CMSG_SPACE(7 * sizeof(int))];
	} ctl;
	struct iovec iov;
	struct msghdr msg = { 0 };
	struct cmsghdr *cm;
	int sv[2], fds[7], nfds, got = -1, ret, pret, low, i;
	unsigned cap, n, pn;
	uint64_t feat;
	bool with_uffd;

	if (size < 1)
		return 0;
	setup();
	nfds = data[0] & 7;
	with_uffd = (data[0] & 8) && uffd >= 0;
	cap = caps[data[0] >> 5];
	data++;
	size--;
	if (!size && !(data[-1] & 16))
		return 0;	/* an empty datagram is no message at all */
	CHECK(socketpair(AF_UNIX, (data[-1] & 16) ? SOCK_STREAM :
			 SOCK_SEQPACKET, 0, sv) == 0);
	low = lowest_free_fd();
	for (i = 0; i < nfds; i++)
		fds[i] = i == 0 && with_uffd ? uffd : pipefd[i & 1];
	iov.iov_base = (void *)data;
	iov.iov_len = size;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (nfds) {
		memset(&ctl, 0, sizeof(ctl));
		msg.msg_control = ctl.b;
		msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
	}
	if (size && sendmsg(sv[0], &msg, MSG_NOSIGNAL) != (ssize_t)size)
		goto out;	/* too big for one datagram: nothing to test */
	close(sv[0]);	/* an empty stream reads as the peer gone */
	sv[0] = -1;
	low = lowest_free_fd();
	n = cap;
	luffd_clear_error();
	ret = uffd_handover_recv(sv[1], &got, &feat, r, &n);
	pn = cap;
	pret = luffd_handover_parse(data, size, NULL, r, &pn);
	if (ret == 0) {
		CHECK(with_uffd && nfds == 1 && pret == 0 && pn == n);
		CHECK(got >= 0 && got != uffd);
		CHECK(fcntl(got, F_GETFD) == FD_CLOEXEC);
		close(got);
	} else {
		CHECK(got == -1);
		CHECK(*uffd_last_error());
		CHECK(n == cap);
		CHECK(ret == -EPROTO || ret == -EBADF || ret == -ECONNRESET);
		/* room for 4 descriptors: more is a truncated message */
		if (pret == 0 && nfds > 4)
			CHECK(ret == -EPROTO);
		else if (pret == 0)
			CHECK(ret == -EBADF);
		if (!size)
			CHECK(ret == -ECONNRESET);
	}
	CHECK(lowest_free_fd() == low);
out:
	if (sv[0] >= 0)
		close(sv[0]);
	close(sv[1]);
	return 0;
}
