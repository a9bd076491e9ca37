/* SPDX-License-Identifier: MIT */
/*
 * Opening a userfaultfd and the UFFDIO_API handshake.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

#include "internal.h"

static const char *const feature_names[] = {
	[0] = "PAGEFAULT_FLAG_WP",
	[1] = "EVENT_FORK",
	[2] = "EVENT_REMAP",
	[3] = "EVENT_REMOVE",
	[4] = "MISSING_HUGETLBFS",
	[5] = "MISSING_SHMEM",
	[6] = "EVENT_UNMAP",
	[7] = "SIGBUS",
	[8] = "THREAD_ID",
	[9] = "MINOR_HUGETLBFS",
	[10] = "MINOR_SHMEM",
	[11] = "EXACT_ADDRESS",
	[12] = "WP_HUGETLBFS_SHMEM",
	[13] = "WP_UNPOPULATED",
	[14] = "POISON",
	[15] = "WP_ASYNC",
	[16] = "MOVE",
};

LUFFD_API const char *uffd_feature_name(unsigned int bit)
{
	if (bit >= LUFFD_ARRAY_SIZE(feature_names))
		return NULL;
	return feature_names[bit];
}

/*
 * /dev/userfaultfd first: it is governed by file permissions rather than
 * vm.unprivileged_userfaultfd, so it works for more users.  Always
 * O_NONBLOCK: poll() on a blocking userfaultfd reports POLLERR.
 */
int luffd_open_uffd(unsigned int ctx_flags, int *method)
{
	int flags = O_CLOEXEC | O_NONBLOCK;
	int dev_err = 0;
	int fd;

	if (!(ctx_flags & LIBUFFD_CTX_NO_DEV)) {
		int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);

		if (dev >= 0) {
			fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
			dev_err = fd < 0 ? errno : 0;
			close(dev);
			if (fd >= 0) {
				*method = LIBUFFD_OPEN_DEV;
				return fd;
			}
		} else {
			dev_err = errno;
		}
	}
	fd = (int)syscall(SYS_userfaultfd, flags);
	if (fd < 0) {
		int err = errno;

		return luffd_fail(-err, "userfaultfd: %s (/dev/userfaultfd: %s)",
				  strerror(err),
				  dev_err ? strerror(dev_err) : "not tried");
	}
	*method = LIBUFFD_OPEN_SYSCALL;
	return fd;
}

int luffd_api(int fd, uint64_t features, uint64_t *features_out,
	      uint64_t *ioctls_out)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };

	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		int err = errno;

		return luffd_fail(-err, "UFFDIO_API(features=%#llx): %s",
				  (unsigned long long)features, strerror(err));
	}
	if (features_out)
		*features_out = api.features;
	if (ioctls_out)
		*ioctls_out = api.ioctls;
	return 0;
}

/*
 * fdinfo of a userfaultfd ends with "API:\t<api>:<features>:<ioctls>":
 * the only way to learn what a descriptor made elsewhere has enabled.
 */
int luffd_fdinfo_api(int fd, uint64_t *features, uint64_t *ioctls)
{
	char path[64], line[256];
	unsigned long long api, feat, ioc;
	bool is_uffd = false, found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "re");
	if (!f)
		return luffd_fail(-EBADF, "fd %d: %s", fd, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "pending:", 8))
			is_uffd = true;
		if (sscanf(line, "API:\t%llx:%llx:%llx", &api, &feat, &ioc) == 3)
			found = true;
	}
	fclose(f);
	if (!is_uffd || !found)
		return luffd_fail(-EBADF, "fd %d is not a userfaultfd", fd);
	*features = feat;
	*ioctls = ioc;
	return 0;
}

LUFFD_API int uffd_probe(struct uffd_probe *out)
{
	struct uffd_probe p = { 0 };
	int fd, ret;

	if (!out || out->size == 0)
		return luffd_fail(-EINVAL, "uffd_probe: NULL or size 0");
	fd = luffd_open_uffd(0, &p.open_method);
	if (fd < 0)
		return fd;
	/* features 0: the reply lists everything the kernel supports */
	ret = luffd_api(fd, 0, &p.features, &p.ioctls);
	close(fd);
	if (ret < 0)
		return ret;
	p.size = out->size;
	memcpy(out, &p, LUFFD_MIN(out->size, sizeof(p)));
	return 0;
}
