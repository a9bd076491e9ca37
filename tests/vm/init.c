/* SPDX-License-Identifier: MIT */
/*
 * init for the test VM (.ci/vm-suite): PID 1 of a small initramfs that
 * holds the test programs, the demos they run and their shared libraries.
 *
 * It mounts what the tests read (proc, sysfs, devtmpfs for
 * /dev/userfaultfd, tmpfs on /dev/shm), puts /tmp on a disk, runs every
 * program named in /tests/list one after the other with a time limit, and
 * powers off.  It is built statically so that it needs nothing from the
 * image.
 *
 * /tmp is the ext4 filesystem the host made on the VM's one virtio disk
 * (/dev/vda), as on a machine with /tmp on disk: tmpfs refuses O_DIRECT
 * before Linux 6.6, and the tests would skip what reads with it.  A stock
 * kernel has the drivers as modules: the host packs them, dependencies
 * first, into /lib/modules/<release>/ with their order in vm-modules, and
 * init loads them with finit_module().  When a step fails (no module list,
 * as for a kernel built without modules; a module refused; no disk; the
 * mount refused) init says so in a VM-NOTE line and mounts tmpfs instead.
 *
 * On the console (ttyS0) it prints lines for the host to parse:
 *
 *   VM-KERNEL <uname -r>
 *   VM-HYPERVISOR <CPUID signature>, VM-CMDLINE <the kernel's>
 *   VM-FACTS <the first line of uffd-probe>
 *   VM-TMP <what /tmp is, and whether it takes O_DIRECT>
 *   VM-NOTE <something the host should show>
 *   VM-START <prog>
 *   VM-SKIPLINE <prog>: <a line of its output that starts with "SKIP">
 *   VM-RESULT <prog> PASS|SKIP|FAIL|ERROR|TIMEOUT <seconds> <how it ended>
 *   VM-LOG-BEGIN <prog> / VM-LOG-END <prog>   the tail of a failing log
 *   VM-DONE <programs run>
 *
 * The whole output of every program goes to ttyS1 when the host gave the
 * VM a second serial port.
 *
 * Settings come from the kernel command line, which hands "name=value"
 * words it does not know to init as environment variables:
 * VM_PROG_TIMEOUT (seconds per program, default 600), VM_ONLY (a
 * comma-separated list of programs to run instead of all of them), and
 * CK_*, UFFD_* and LIBUFFD_* variables, which the tests get.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>

#define LIST		"/tests/list"
#define LOGDIR		"/tmp/vm-logs"
#define TAIL_LINES	80
#define MAX_PROGS	128
#define TMP_DISK	"/dev/vda"	/* the host gives the VM one disk */
#define TMP_FS		"ext4"
#define MOD_DIR		"/lib/modules"
#define MOD_LIST	"vm-modules"	/* module names, in load order */
#define DISK_WAIT_S	10

static FILE *con;		/* ttyS0, the console the host parses */
static FILE *full;		/* ttyS1 if present: every program's output */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void mnt(const char *src, const char *dst, const char *type,
		const char *opts)
{
	mkdir(dst, 0755);
	if (mount(src, dst, type, 0, opts) && errno != EBUSY)
		fprintf(con, "VM-WARN mount %s on %s: %s\n", type, dst,
			strerror(errno));
}

/* Wait up to @secs for @path to appear (devtmpfs adds disks' nodes). */
static bool wait_for(const char *path, double secs)
{
	struct timespec tick = { 0, 20 * 1000 * 1000 };
	double t0 = now_s();

	while (access(path, F_OK)) {
		if (now_s() - t0 >= secs)
			return false;
		nanosleep(&tick, NULL);
	}
	return true;
}

/*
 * Load the modules that MOD_DIR/<release>/MOD_LIST names, in its order.
 * Returns how many were loaded; 0 with @why set when there is no list (a
 * kernel without modules has none: its drivers may be built in); -1 with
 * @why set when one fails, after which the disk is not tried.
 */
static int load_modules(const char *release, char *why, size_t len)
{
	char dir[128], path[512], name[128];
	int fd, err, n = 0;
	FILE *f;

	snprintf(dir, sizeof(dir), MOD_DIR "/%s", release);
	snprintf(path, sizeof(path), "%s/" MOD_LIST, dir);
	f = fopen(path, "r");
	if (!f) {
		snprintf(why, len, "no %s (%s): no modules loaded", path,
			 strerror(errno));
		return 0;
	}
	while (fscanf(f, "%127s", name) == 1) {
		snprintf(path, sizeof(path), "%s/%s.ko", dir, name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			snprintf(why, len, "open %s: %s", path,
				 strerror(errno));
			n = -1;
			break;
		}
		/* the host decompressed them: no MODULE_INIT_* flags */
		err = syscall(SYS_finit_module, fd, "", 0) ? errno : 0;
		close(fd);
		if (err && err != EEXIST) {
			snprintf(why, len, "finit_module %s: %s", path,
				 strerror(err));
			n = -1;
			break;
		}
		n++;
	}
	fclose(f);
	return n;
}

/*
 * The loopback interface up (the kernel gives it 127.0.0.1 then): the
 * memcached tests start servers of their own on it.  A VM-NOTE when it
 * cannot be: a kernel without IPv4.
 */
static void loopback_up(void)
{
	struct ifreq ifr = { .ifr_name = "lo" };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		fprintf(con, "VM-NOTE no loopback: socket(AF_INET): %s\n",
			strerror(errno));
		return;
	}
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) ||
	    (ifr.ifr_flags |= IFF_UP, ioctl(fd, SIOCSIFFLAGS, &ifr)))
		fprintf(con, "VM-NOTE no loopback: lo: %s\n",
			strerror(errno));
	close(fd);
}

/* Whether a file in /tmp opens with O_DIRECT, as the tests will ask. */
static const char *direct_io(void)
{
	char f[] = "/tmp/.vm-direct-XXXXXX";
	int fd = mkstemp(f), err;

	if (fd < 0)
		return "O_DIRECT not tried (mkstemp failed)";
	close(fd);
	fd = open(f, O_RDONLY | O_DIRECT | O_CLOEXEC);
	err = errno;
	unlink(f);
	if (fd < 0)
		return err == EINVAL ? "O_DIRECT refused (EINVAL)" :
				       "O_DIRECT refused";
	close(fd);
	return "O_DIRECT opens";
}

/*
 * /tmp on TMP_DISK, or on tmpfs when a step fails; each failure is said
 * in a VM-NOTE line, what /tmp became in the VM-TMP line.
 */
static void setup_tmp(const char *release)
{
	char why[640] = "";
	int n = load_modules(release, why, sizeof(why));

	if (n < 0)
		goto fallback;
	if (why[0])
		fprintf(con, "VM-NOTE %s\n", why);
	/* built-in drivers probed the disk before init ran: no wait */
	if (!wait_for(TMP_DISK, n > 0 ? DISK_WAIT_S : 0)) {
		if (n > 0)
			snprintf(why, sizeof(why), "no %s %d s after loading "
				 "%d modules", TMP_DISK, DISK_WAIT_S, n);
		else
			snprintf(why, sizeof(why), "no %s (no virtio disk "
				 "driver built in)", TMP_DISK);
		goto fallback;
	}
	mkdir("/tmp", 01777);
	/* a fresh image: its inode tables read as zeros already */
	if (mount(TMP_DISK, "/tmp", TMP_FS, 0, "noinit_itable")) {
		snprintf(why, sizeof(why), "mount %s %s on /tmp: %s", TMP_FS,
			 TMP_DISK, strerror(errno));
		goto fallback;
	}
	/* as tmpfs's mode=1777; the filesystem's root is 0755 */
	chmod("/tmp", 01777);
	fprintf(con, "VM-TMP %s on %s, %s\n", TMP_FS, TMP_DISK, direct_io());
	return;

fallback:
	fprintf(con, "VM-NOTE /tmp is tmpfs, not %s on %s: %s\n", TMP_FS,
		TMP_DISK, why);
	mnt("tmpfs", "/tmp", "tmpfs", "mode=1777");
	fprintf(con, "VM-TMP tmpfs (fallback), %s\n", direct_io());
}

/* Reopen 0, 1 and 2 on the console once devtmpfs provides it. */
static void open_console(void)
{
	int fd = open("/dev/console", O_RDWR | O_NOCTTY);

	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	con = fdopen(dup(1), "w");
	if (!con)
		con = stdout;
	setvbuf(con, NULL, _IOLBF, 0);
	/* ttyS1 exists whether or not the host connected it: check */
	fd = open("/dev/ttyS1", O_WRONLY | O_NOCTTY | O_NONBLOCK);
	if (fd >= 0) {
		full = fdopen(fd, "w");
		if (full)
			setvbuf(full, NULL, _IOFBF, 1 << 16);
	}
}

static void power_off(void)
{
	fflush(NULL);
	sync();
	reboot(RB_POWER_OFF);
	/* not reached; a panic with panic=-1 would reboot, -no-reboot stops */
	for (;;)
		pause();
}

/* The hypervisor's CPUID signature: "KVMKVMKVM", "TCGTCGTCGTCG"... */
static void hypervisor(char *out, size_t len)
{
	unsigned int a, b, c, d, sig[3];

	snprintf(out, len, "none");
	__cpuid(1, a, b, c, d);
	if (!(c & (1u << 31)))
		return;
	__cpuid(0x40000000, a, sig[0], sig[1], sig[2]);
	snprintf(out, len, "%.12s", (char *)sig);
}

/* Save the variables to pass on (@save), or put them back. */
static void keep_env(bool save)
{
	static const char *const prefixes[] = { "CK_", "UFFD_", "LIBUFFD_" };
	static char *kept[32];
	static int n;
	extern char **environ;
	char **e;
	size_t i;

	if (!save) {
		while (n > 0)
			putenv(kept[--n]);
		return;
	}
	for (e = environ; *e && n < 32; e++)
		for (i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
			if (!strncmp(*e, prefixes[i], strlen(prefixes[i])))
				kept[n++] = strdup(*e);
}

static bool wanted(const char *prog, const char *only)
{
	size_t n = strlen(prog);
	const char *p = only;

	if (!only || !*only)
		return true;
	while ((p = strstr(p, prog))) {
		if ((p == only || p[-1] == ',') && (p[n] == ',' || !p[n]))
			return true;
		p += n;
	}
	return false;
}

/*
 * Print the lines of @log that start with "SKIP", copy the whole log to
 * ttyS1, and remember the last "SKIP:" line as the program's reason.
 */
static void scan_log(const char *prog, const char *log, char *reason,
		     size_t len)
{
	char line[1024];
	FILE *f = fopen(log, "r");

	reason[0] = '\0';
	if (!f)
		return;
	if (full)
		fprintf(full, "==== %s\n", prog);
	while (fgets(line, sizeof(line), f)) {
		if (full)
			fputs(line, full);
		if (strncmp(line, "SKIP", 4))
			continue;
		line[strcspn(line, "\n")] = '\0';
		fprintf(con, "VM-SKIPLINE %s: %s\n", prog, line);
		if (!strncmp(line, "SKIP:", 5))
			snprintf(reason, len, "%s",
				 line + 5 + (line[5] == ' '));
	}
	if (full)
		fflush(full);
	fclose(f);
}

static void print_tail(const char *prog, const char *log)
{
	static char lines[TAIL_LINES][512];
	char line[512];
	long n = 0, i;
	FILE *f = fopen(log, "r");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		memcpy(lines[n++ % TAIL_LINES], line, sizeof(line));
	fclose(f);
	fprintf(con, "VM-LOG-BEGIN %s\n", prog);
	for (i = n > TAIL_LINES ? n - TAIL_LINES : 0; i < n; i++)
		fputs(lines[i % TAIL_LINES], con);
	fprintf(con, "VM-LOG-END %s\n", prog);
}

/*
 * Kill whatever a program left behind: from PID 1, kill(-1) reaches
 * every process but init.  Returns how many were reaped.
 */
static int kill_leftovers(void)
{
	int n = 0;

	if (kill(-1, SIGKILL) && errno == ESRCH)
		return 0;
	while (waitpid(-1, NULL, 0) > 0)
		n++;
	return n;
}

/*
 * The first line of uffd-probe: the facts that say what kind of kernel
 * this is (does a native read map the zero page?), so that the summary
 * shows what the suite ran on, and a stage can insist on it.
 */
static void facts(void)
{
	char line[1024] = "";
	int pfd[2], status;
	ssize_t got = 0, n;
	pid_t pid;

	if (pipe(pfd))
		return;
	pid = fork();
	if (pid == 0) {
		dup2(pfd[1], STDOUT_FILENO);
		close(pfd[0]);
		execl("/demos/uffd-probe", "uffd-probe", "--no-measure",
		      (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	while (pid > 0 && got < (ssize_t)sizeof(line) - 1 &&
	       (n = read(pfd[0], line + got, sizeof(line) - 1 - got)) > 0)
		got += n;
	close(pfd[0]);
	if (pid > 0)
		waitpid(pid, &status, 0);
	line[got] = '\0';
	fprintf(con, "VM-FACTS %.*s\n", (int)strcspn(line, "\n"), line);
}

static void run_one(const char *prog, int timeout_s)
{
	char path[256], log[256], reason[512], how[64];
	const char *verdict;
	double t0, dt;
	int status = 0, left, fd;
	bool timed_out = false;
	pid_t pid, r;

	snprintf(path, sizeof(path), "/tests/%s", prog);
	snprintf(log, sizeof(log), LOGDIR "/%s.log", prog);
	fprintf(con, "VM-START %s\n", prog);
	t0 = now_s();
	pid = fork();
	if (pid < 0) {
		fprintf(con, "VM-RESULT %s ERROR 0 fork: %s\n", prog,
			strerror(errno));
		return;
	}
	if (!pid) {
		setsid();
		fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		fd = open("/dev/null", O_RDONLY);
		if (fd >= 0) {
			dup2(fd, 0);
			close(fd);
		}
		if (chdir("/tmp"))
			_exit(126);
		execl(path, path, (char *)NULL);
		fprintf(stderr, "exec %s: %s\n", path, strerror(errno));
		_exit(127);
	}
	/* Reap everything that dies meanwhile (init adopts orphans). */
	for (;;) {
		struct timespec tick = { 0, 20 * 1000 * 1000 };

		r = waitpid(-1, &status, WNOHANG);
		if (r == pid)
			break;
		if (r > 0)
			continue;
		if (now_s() - t0 > timeout_s) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			timed_out = true;
			break;
		}
		nanosleep(&tick, NULL);
	}
	dt = now_s() - t0;
	left = kill_leftovers();

	if (timed_out) {
		verdict = "TIMEOUT";
		snprintf(how, sizeof(how), "killed after %d s", timeout_s);
	} else if (WIFSIGNALED(status)) {
		verdict = "FAIL";
		snprintf(how, sizeof(how), "signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	} else {
		int code = WEXITSTATUS(status);

		verdict = code == 0 ? "PASS" : code == 77 ? "SKIP" :
			  code == 99 ? "ERROR" : "FAIL";
		snprintf(how, sizeof(how), "exit %d", code);
	}
	scan_log(prog, log, reason, sizeof(reason));
	if (left)
		fprintf(con, "VM-NOTE %s left %d process(es) running: killed\n",
			prog, left);
	if (strcmp(verdict, "PASS") && strcmp(verdict, "SKIP"))
		print_tail(prog, log);
	fprintf(con, "VM-RESULT %s %s %.1f %s%s%s\n", prog, verdict, dt, how,
		!strcmp(verdict, "SKIP") && reason[0] ? ": " : "",
		!strcmp(verdict, "SKIP") ? reason : "");
}

int main(void)
{
	const char *only = getenv("VM_ONLY");
	const char *to = getenv("VM_PROG_TIMEOUT");
	char progs[MAX_PROGS][64], line[1024];
	int timeout_s = to ? atoi(to) : 600, n = 0, ran = 0, i;
	struct utsname u;
	FILE *f;

	mnt("devtmpfs", "/dev", "devtmpfs", NULL);
	open_console();
	mnt("proc", "/proc", "proc", NULL);
	mnt("sysfs", "/sys", "sysfs", NULL);
	mnt("tmpfs", "/dev/shm", "tmpfs", "mode=1777");
	if (timeout_s <= 0)
		timeout_s = 600;

	/*
	 * The tests' environment: what "make check" would give them, plus
	 * the Check, UFFD_ and LIBUFFD_ settings from the kernel command
	 * line (e.g. CK_RUN_CASE=sigbus).
	 */
	keep_env(true);
	clearenv();
	keep_env(false);
	setenv("PATH", "/bin:/usr/bin", 1);
	setenv("HOME", "/root", 1);
	setenv("TMPDIR", "/tmp", 1);
	setenv("LIBUFFD_DEMOS", "/demos", 0);
	mkdir("/root", 0700);

	uname(&u);
	fprintf(con, "VM-KERNEL %s\n", u.release);
	hypervisor(line, sizeof(line));
	fprintf(con, "VM-HYPERVISOR %s\n", line);
	f = fopen("/proc/cmdline", "r");
	if (f) {
		if (fgets(line, sizeof(line), f))
			fprintf(con, "VM-CMDLINE %.*s\n",
				(int)strcspn(line, "\n"), line);
		fclose(f);
	}
	setup_tmp(u.release);
	loopback_up();
	facts();
	mkdir(LOGDIR, 0755);
	f = fopen(LIST, "r");
	if (!f) {
		fprintf(con, "VM-ERROR no %s\n", LIST);
		power_off();
	}
	while (n < MAX_PROGS && fscanf(f, "%63s", progs[n]) == 1)
		n++;
	fclose(f);
	for (i = 0; i < n; i++) {
		if (!wanted(progs[i], only))
			continue;
		run_one(progs[i], timeout_s);
		ran++;
	}
	fprintf(con, "VM-DONE %d\n", ran);
	power_off();
	return 0;
}
