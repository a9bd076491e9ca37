/* SPDX-License-Identifier: MIT */
/*
 * Memcached servers of one's own (mc-servers.h): fork + exec of the
 * memcached binary on ports the kernel just handed out, and a plain
 * socket to ask each for its stats, independent of libmemcached.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "mc-servers.h"

#define START_TRIES	5
#define ACCEPT_WAIT_MS	5000

const char *mc_servers_binary(void)
{
	static const char *const dirs[] = { "/usr/bin", "/usr/sbin",
					    "/usr/local/bin" };
	static char found[4096];
	const char *env = getenv("MEMCACHED"), *path = getenv("PATH");
	size_t i;

	if (env && *env)
		return access(env, X_OK) ? NULL : env;
	while (path && *path) {
		const char *end = strchr(path, ':');
		size_t n = end ? (size_t)(end - path) : strlen(path);

		if (n && n + 11 < sizeof(found)) {
			snprintf(found, sizeof(found), "%.*s/memcached",
				 (int)n, path);
			if (!access(found, X_OK))
				return found;
		}
		path = end ? end + 1 : NULL;
	}
	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(found, sizeof(found), "%s/memcached", dirs[i]);
		if (!access(found, X_OK))
			return found;
	}
	return NULL;
}

/* A loopback port nobody listens on right now (the kernel's choice). */
static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

	if (fd < 0)
		return -1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (!bind(fd, (struct sockaddr *)&a, sizeof(a)) &&
	    !getsockname(fd, (struct sockaddr *)&a, &len))
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static int dial(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -1;
	}
	return fd;
}

static pid_t spawn(const char *bin, int port, unsigned int mem_mb)
{
	char p[16], m[16];
	pid_t pid;

	snprintf(p, sizeof(p), "%d", port);
	snprintf(m, sizeof(m), "%u", mem_mb);
	pid = fork();
	if (pid)
		return pid;
	/* never outlive whoever started it */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1)
		_exit(1);
	{
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		if (null >= 0) {
			dup2(null, STDIN_FILENO);
			dup2(null, STDOUT_FILENO);
		}
	}
	/*
	 * -R 1024: a connection's requests served per event, 20 by default,
	 * after which memcached yields; a window's multi-get is one request
	 * per key (256 keys of 4 KiB from one server: about 3.6 us a key
	 * with 20, 2.6 with 1024, interleaved runs here).
	 */
	if (geteuid() == 0)	/* memcached refuses root without -u */
		execl(bin, "memcached", "-l", "127.0.0.1", "-p", p, "-U", "0",
		      "-m", m, "-M", "-R", "1024", "-u", "root", (char *)NULL);
	else
		execl(bin, "memcached", "-l", "127.0.0.1", "-p", p, "-U", "0",
		      "-m", m, "-M", "-R", "1024", (char *)NULL);
	_exit(127);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Wait until server @i accepts: 0, or -1 if it died or never did. */
static int await(struct mc_servers *s, unsigned int i)
{
	uint64_t end = now_ms() + ACCEPT_WAIT_MS;
	struct timespec ts = { .tv_nsec = 5 * 1000 * 1000 };

	while (now_ms() < end) {
		int fd = dial(s->port[i]), status;

		if (fd >= 0) {
			close(fd);
			return 0;
		}
		if (waitpid(s->pid[i], &status, WNOHANG) == s->pid[i]) {
			s->pid[i] = 0;	/* the port was taken meanwhile */
			return -1;
		}
		nanosleep(&ts, NULL);
	}
	return -1;
}

int mc_servers_start(struct mc_servers *s, unsigned int n,
		     unsigned int mem_mb, char *why, size_t len)
{
	const char *bin = mc_servers_binary();
	unsigned int i, t;
	size_t used = 0;

	memset(s, 0, sizeof(*s));
	if (!bin) {
		snprintf(why, len, "no memcached binary (PATH, /usr/bin, "
			 "$MEMCACHED): apt-get install memcached");
		return -ENOENT;
	}
	if (!n || n > MC_SERVERS_MAX) {
		snprintf(why, len, "1 to %d servers", MC_SERVERS_MAX);
		return -EINVAL;
	}
	for (i = 0; i < n; i++) {
		for (t = 0; t < START_TRIES; t++) {
			s->port[i] = free_port();
			if (s->port[i] < 0)
				continue;
			s->pid[i] = spawn(bin, s->port[i], mem_mb);
			s->n = i + 1;
			if (s->pid[i] < 0) {
				s->pid[i] = 0;
				continue;
			}
			if (!await(s, i))
				break;
			mc_servers_kill(s, i);
		}
		if (t == START_TRIES) {
			snprintf(why, len, "%s would not start on a free "
				 "loopback port (%d tries)", bin, START_TRIES);
			mc_servers_stop(s);
			return -EIO;
		}
		used += (size_t)snprintf(s->list + used, sizeof(s->list) - used,
					 "%s127.0.0.1:%d", i ? ";" : "",
					 s->port[i]);
	}
	return 0;
}

void mc_servers_kill(struct mc_servers *s, unsigned int i)
{
	if (i >= s->n || s->pid[i] <= 0)
		return;
	kill(s->pid[i], SIGKILL);
	while (waitpid(s->pid[i], NULL, 0) < 0 && errno == EINTR)
		;
	s->pid[i] = 0;
}

void mc_servers_stop(struct mc_servers *s)
{
	unsigned int i;

	for (i = 0; i < s->n; i++) {
		mc_servers_kill(s, i);
		s->pid[i] = 0;	/* someone else's too: forgotten */
	}
}

long long mc_servers_stat(const struct mc_servers *s, unsigned int i,
			  const char *name)
{
	char buf[8192], want[96];
	size_t used = 0;
	long long v = -1;
	int fd;

	if (i >= s->n || !s->pid[i])
		return -1;
	fd = dial(s->port[i]);
	if (fd < 0)
		return -1;
	if (write(fd, "stats\r\n", 7) != 7)
		goto out;
	/* the text protocol: "STAT name value" lines, then "END" */
	while (used < sizeof(buf) - 1) {
		ssize_t got = read(fd, buf + used, sizeof(buf) - 1 - used);

		if (got <= 0)
			goto out;
		used += (size_t)got;
		buf[used] = '\0';
		if (strstr(buf, "\r\nEND\r\n") || !strncmp(buf, "END\r\n", 5))
			break;
	}
	snprintf(want, sizeof(want), "STAT %s ", name);
	{
		const char *at = strstr(buf, want);

		if (at)
			v = strtoll(at + strlen(want), NULL, 10);
	}
out:
	close(fd);
	return v;
}

int mc_servers_flush(const struct mc_servers *s)
{
	char buf[64];
	size_t used;
	unsigned int i;
	int fd, ret = 0;

	for (i = 0; i < s->n; i++) {
		if (s->pid[i] <= 0)
			continue;
		fd = dial(s->port[i]);
		if (fd < 0)
			return -EIO;
		used = 0;
		if (write(fd, "flush_all\r\n", 11) != 11)
			ret = -EIO;
		/* "OK\r\n" once every item is gone */
		while (!ret && used < sizeof(buf) - 1) {
			ssize_t got = read(fd, buf + used,
					   sizeof(buf) - 1 - used);

			if (got <= 0) {
				ret = -EIO;
				break;
			}
			used += (size_t)got;
			buf[used] = '\0';
			if (strstr(buf, "\r\n"))
				break;
		}
		if (!ret && strncmp(buf, "OK\r\n", 4))
			ret = -EIO;
		close(fd);
		if (ret)
			return ret;
	}
	return 0;
}

int mc_servers_attach(struct mc_servers *s, const char *list, char *why,
		      size_t len)
{
	const char *at = list;
	unsigned int n = 0;
	int fd;

	memset(s, 0, sizeof(*s));
	while (*at) {
		char *end;
		long port;

		if (n == MC_SERVERS_MAX) {
			snprintf(why, len, "more than %d servers in \"%s\"",
				 MC_SERVERS_MAX, list);
			return -EINVAL;
		}
		if (strncmp(at, "127.0.0.1:", 10)) {
			snprintf(why, len, "\"%s\": not 127.0.0.1:PORT;...",
				 list);
			return -EINVAL;
		}
		errno = 0;
		port = strtol(at + 10, &end, 10);
		if (errno || end == at + 10 || port < 1 || port > 65535 ||
		    (*end && *end != ';')) {
			snprintf(why, len, "\"%s\": bad port", list);
			return -EINVAL;
		}
		fd = dial((int)port);
		if (fd < 0) {
			snprintf(why, len, "127.0.0.1:%ld: %s", port,
				 strerror(errno));
			return -ECONNREFUSED;
		}
		close(fd);
		s->port[n] = (int)port;
		s->pid[n++] = -1;	/* never killed by us */
		at = *end ? end + 1 : end;
	}
	if (!n) {
		snprintf(why, len, "no server in \"%s\"", list);
		return -EINVAL;
	}
	s->n = n;
	snprintf(s->list, sizeof(s->list), "%s", list);
	return 0;
}
