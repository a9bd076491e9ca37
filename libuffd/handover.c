/* SPDX-License-Identifier: MIT */
/*
 * Handing a userfaultfd over a Unix socket: what a VM monitor or a
 * restorer does to let a separate handler process serve its memory.
 */
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "internal.h"

struct wire_hdr {
	uint32_t	magic;
	uint32_t	version;
	uint32_t	nranges;
	uint32_t	hdr_size;
	uint64_t	features;
};

#define WIRE_MAX	(sizeof(struct wire_hdr) + \
			 LIBUFFD_HANDOVER_MAX * sizeof(struct uffd_handover_range))

LUFFD_API int uffd_handover_send(int sock, int uffd, uint64_t features,
				 const struct uffd_handover_range *ranges,
				 unsigned n)
{
	unsigned char buf[WIRE_MAX];
	struct wire_hdr h = {
		.magic = LIBUFFD_HANDOVER_MAGIC,
		.version = LIBUFFD_HANDOVER_VERSION,
		.nranges = n,
		.hdr_size = sizeof(struct wire_hdr),
		.features = features,
	};
	union {
		struct cmsghdr	align;
		char		buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov;
	struct msghdr msg = { 0 };
	struct cmsghdr *cm;
	size_t len;
	ssize_t sent;

	if (sock < 0 || uffd < 0 || !ranges || n == 0 ||
	    n > LIBUFFD_HANDOVER_MAX)
		return luffd_fail(-EINVAL, "handover: bad arguments");
	len = sizeof(h) + n * sizeof(*ranges);
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), ranges, n * sizeof(*ranges));
	iov.iov_base = buf;
	iov.iov_len = len;
	memset(&ctl, 0, sizeof(ctl));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = ctl.buf;
	msg.msg_controllen = sizeof(ctl.buf);
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &uffd, sizeof(int));
	sent = sendmsg(sock, &msg, MSG_NOSIGNAL);
	if (sent < 0)
		return luffd_fail(-errno, "handover: sendmsg: %s",
				  strerror(errno));
	if ((size_t)sent != len)
		return luffd_fail(-EIO, "handover: short send");
	return 0;
}

LUFFD_API int uffd_handover_recv(int sock, int *uffd, uint64_t *features,
				 struct uffd_handover_range *ranges,
				 unsigned *n)
{
	unsigned char buf[WIRE_MAX + 1];
	union {
		struct cmsghdr	align;
		char		buf[CMSG_SPACE(4 * sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct msghdr msg = { 0 };
	struct cmsghdr *cm;
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	struct wire_hdr h;
	uint64_t uf, ui;
	int fds[4], nfds = 0, ret, i;
	ssize_t got;

	if (sock < 0 || !uffd || !ranges || !n || *n == 0)
		return luffd_fail(-EINVAL, "handover: bad arguments");
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = ctl.buf;
	msg.msg_controllen = sizeof(ctl.buf);
	got = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	if (got < 0)
		return luffd_fail(-errno, "handover: recvmsg: %s",
				  strerror(errno));
	for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		for (i = 0; (size_t)i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int) &&
		     nfds < 4; i++)
			memcpy(&fds[nfds++], CMSG_DATA(cm) + i * sizeof(int),
			       sizeof(int));
	}
	if (got == 0) {
		ret = luffd_fail(-ECONNRESET, "handover: peer closed");
		goto refuse;
	}
	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0) {
		ret = luffd_fail(-errno, "handover: SO_PEERCRED: %s",
				 strerror(errno));
		goto refuse;
	}
	if (cred.uid != getuid()) {
		ret = luffd_fail(-EPERM, "handover: peer uid %u is not ours (%u)",
				 (unsigned)cred.uid, (unsigned)getuid());
		goto refuse;
	}
	if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		ret = luffd_fail(-EPROTO, "handover: message truncated");
		goto refuse;
	}
	if ((size_t)got < sizeof(h)) {
		ret = luffd_fail(-EPROTO, "handover: %zd bytes, no header", got);
		goto refuse;
	}
	memcpy(&h, buf, sizeof(h));
	if (h.magic != LIBUFFD_HANDOVER_MAGIC) {
		ret = luffd_fail(-EPROTO, "handover: bad magic %#x", h.magic);
		goto refuse;
	}
	if (h.version != LIBUFFD_HANDOVER_VERSION) {
		ret = luffd_fail(-EPROTO, "handover: version %u, expected %u",
				 h.version, LIBUFFD_HANDOVER_VERSION);
		goto refuse;
	}
	if (h.hdr_size != sizeof(h) || h.nranges == 0 ||
	    h.nranges > LIBUFFD_HANDOVER_MAX ||
	    (size_t)got != sizeof(h) + h.nranges * sizeof(*ranges)) {
		ret = luffd_fail(-EPROTO, "handover: bad sizes (%zd bytes, "
				 "%u ranges)", got, h.nranges);
		goto refuse;
	}
	if (h.nranges > *n) {
		ret = luffd_fail(-EPROTO, "handover: %u ranges, room for %u",
				 h.nranges, *n);
		goto refuse;
	}
	if (nfds != 1 || luffd_fdinfo_api(fds[0], &uf, &ui) < 0) {
		ret = luffd_fail(-EBADF, "handover: need exactly one "
				 "userfaultfd, got %d descriptors", nfds);
		goto refuse;
	}
	for (i = 0; i < (int)h.nranges; i++) {
		struct uffd_handover_range rg;

		memcpy(&rg, buf + sizeof(h) + i * sizeof(rg), sizeof(rg));
		if (!rg.len || !rg.page_size ||
		    (rg.page_size & (rg.page_size - 1)) ||
		    (rg.base | rg.len) & (rg.page_size - 1) ||
		    rg.base + rg.len < rg.base) {
			ret = luffd_fail(-EPROTO, "handover: range %d is bad", i);
			goto refuse;
		}
		ranges[i] = rg;
	}
	*uffd = fds[0];
	*n = h.nranges;
	if (features)
		*features = h.features;
	return 0;
refuse:
	for (i = 0; i < nfds; i++)
		close(fds[i]);
	return ret;
}
