/*
 * A box process's confinement (boxes.h, mk_box_sandbox;
 * docs/internals/box-process.md, "Privilege separation"), in the order
 * OpenSSH's sandboxed children take it: the state directory made the
 * working directory while the process may still reach it; the user of its
 * own (groups dropped, then gid, then uid, each checked to hold); no new
 * privileges; not dumpable; then the file system narrowed to the state
 * directory (Landlock, where the kernel has it) and the system calls to
 * what a box needs (a seccomp allow list: no exec, no new process, no new
 * socket, no ptrace, no privilege change, nothing else).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/landlock.h>
#include <seccomp.h>

#include "box/box_int.h"

/* Landlock through its system calls (glibc has no wrappers). */
static int ll_create(const struct landlock_ruleset_attr *a, size_t n, unsigned flags)
{
	return (int)syscall(SYS_landlock_create_ruleset, a, n, flags);
}

static int ll_add(int fd, enum landlock_rule_type t, const void *attr, unsigned flags)
{
	return (int)syscall(SYS_landlock_add_rule, fd, t, attr, flags);
}

static int ll_restrict(int fd, unsigned flags)
{
	return (int)syscall(SYS_landlock_restrict_self, fd, flags);
}

/*
 * The file system narrowed to dir: every access Landlock ABI 1 governs is
 * refused outside it. 1 when in force, 0 when the kernel has no Landlock
 * (said in why), -1 on failure.
 */
static int landlock_to(const char *dir, char *why, size_t cap)
{
	const __u64 all = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE |
	                  LANDLOCK_ACCESS_FS_READ_DIR | LANDLOCK_ACCESS_FS_REMOVE_DIR |
	                  LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_CHAR |
	                  LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK |
	                  LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_SYM;
	struct landlock_ruleset_attr ra = { .handled_access_fs = all };
	struct landlock_path_beneath_attr pb = {
		/* the state: read, write, make and remove its files (the sealed
		 * write's temporary file and rename), never execute */
		.allowed_access = LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE |
		                  LANDLOCK_ACCESS_FS_READ_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |
		                  LANDLOCK_ACCESS_FS_MAKE_REG,
	};
	int rs, r = -1;

	if ((rs = ll_create(&ra, sizeof(ra), 0)) < 0) {
		if (errno == ENOSYS || errno == EOPNOTSUPP) {
			snprintf(why, cap, "this kernel has no Landlock: files are confined by the user and mode only");
			return 0;
		}
		snprintf(why, cap, "Landlock: %s", strerror(errno));
		return -1;
	}
	if ((pb.parent_fd = open(dir, O_PATH | O_CLOEXEC)) < 0) {
		snprintf(why, cap, "cannot open %s (%s)", dir, strerror(errno));
		goto out;
	}
	if (ll_add(rs, LANDLOCK_RULE_PATH_BENEATH, &pb, 0) != 0 || ll_restrict(rs, 0) != 0) {
		snprintf(why, cap, "Landlock: %s", strerror(errno));
		goto out;
	}
	r = 1;
out:
	if (pb.parent_fd >= 0)
		close(pb.parent_fd);
	close(rs);
	return r;
}

/*
 * The system calls a box uses, the only ones it is allowed (an allow list:
 * any other is refused with EPERM, so that a refusal is seen, not a killed
 * process): memory; files through the descriptors and paths Landlock leaves
 * it (its state folder); its accepted connections (no new socket, no
 * connect, no bind); the clock, randomness, signals and threads; exit. Not
 * allowed: exec, a new process (clone without CLONE_THREAD, fork, clone3),
 * ptrace, identity and privilege changes, mounts, modules, and every other.
 * prctl only to read or clear the dumpable flag; ioctl only TCGETS (isatty).
 * Measured with strace on the demo's confined boxes (Release); the list
 * holds more, for the sanitizer build's runtime and rarer paths.
 */
static int seccomp_allow(char *why, size_t cap)
{
	static const int allowed[] = {
		/* memory */
		SCMP_SYS(brk), SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(mprotect),
		SCMP_SYS(madvise), SCMP_SYS(mlock), SCMP_SYS(mlock2), SCMP_SYS(munlock), SCMP_SYS(mincore),
		/* files (Landlock decides which) */
		SCMP_SYS(openat), SCMP_SYS(open), SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev),
		SCMP_SYS(pread64), SCMP_SYS(pwrite64), SCMP_SYS(close), SCMP_SYS(newfstatat), SCMP_SYS(fstat),
		SCMP_SYS(stat), SCMP_SYS(lstat), SCMP_SYS(statx), SCMP_SYS(lseek), SCMP_SYS(fsync), SCMP_SYS(fdatasync),
		SCMP_SYS(fchmod), SCMP_SYS(rename), SCMP_SYS(renameat), SCMP_SYS(renameat2), SCMP_SYS(unlink),
		SCMP_SYS(unlinkat), SCMP_SYS(flock), SCMP_SYS(fcntl), SCMP_SYS(getdents64), SCMP_SYS(ftruncate),
		SCMP_SYS(readlink), SCMP_SYS(readlinkat), SCMP_SYS(getcwd), SCMP_SYS(dup), SCMP_SYS(dup3),
		/* its connections */
		SCMP_SYS(accept), SCMP_SYS(accept4), SCMP_SYS(recvmsg), SCMP_SYS(sendmsg), SCMP_SYS(recvfrom),
		SCMP_SYS(sendto), SCMP_SYS(shutdown), SCMP_SYS(getsockopt), SCMP_SYS(poll), SCMP_SYS(ppoll),
		/* clock, randomness, sleep */
		SCMP_SYS(clock_gettime), SCMP_SYS(gettimeofday), SCMP_SYS(time), SCMP_SYS(nanosleep),
		SCMP_SYS(clock_nanosleep), SCMP_SYS(getrandom),
		/* itself: ids, signals, threads, limits, exit */
		SCMP_SYS(getpid), SCMP_SYS(gettid), SCMP_SYS(getppid), SCMP_SYS(getuid), SCMP_SYS(geteuid),
		SCMP_SYS(getgid), SCMP_SYS(getegid), SCMP_SYS(getresuid), SCMP_SYS(getresgid),
		SCMP_SYS(rt_sigaction), SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigreturn), SCMP_SYS(sigaltstack),
		SCMP_SYS(tgkill), SCMP_SYS(kill), SCMP_SYS(futex), SCMP_SYS(sched_yield), SCMP_SYS(sched_getaffinity),
		SCMP_SYS(set_robust_list), SCMP_SYS(rseq), SCMP_SYS(getrlimit), SCMP_SYS(prlimit64), SCMP_SYS(uname),
		SCMP_SYS(sysinfo), SCMP_SYS(exit), SCMP_SYS(exit_group), SCMP_SYS(restart_syscall),
	};
	scmp_filter_ctx f = seccomp_init(SCMP_ACT_ERRNO(EPERM));
	int rc = 0;

	if (f == NULL) {
		snprintf(why, cap, "seccomp: cannot make a filter");
		return -1;
	}
	for (size_t i = 0; i < MK_ARRAY_LEN(allowed) && rc == 0; i++)
		rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, allowed[i], 0);
	/* a thread, never a process */
	if (rc == 0)
		rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
		                      SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
	/* the dumpable flag read, or cleared; nothing else of prctl */
	if (rc == 0)
		rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1, SCMP_A0(SCMP_CMP_EQ, PR_GET_DUMPABLE, 0));
	if (rc == 0)
		rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 2, SCMP_A0(SCMP_CMP_EQ, PR_SET_DUMPABLE, 0),
		                      SCMP_A1(SCMP_CMP_EQ, 0, 0));
	if (rc == 0)
		rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_EQ, TCGETS, 0));
	if (rc == 0)
		rc = seccomp_load(f);
	seccomp_release(f);
	if (rc != 0) {
		snprintf(why, cap, "seccomp: %s", strerror(-rc));
		return -1;
	}
	return 0;
}

/* The test build's switch (MK_TEST_HOOKS, never in Release),
 * MK_BOX_TEST_DUMPABLE: 1 keeps a box process dumpable, so that the
 * core-dump test sees what its core would hold; 2 also leaves its anonymous
 * memory and Brass's and Tin's key cache (src/box/verify.c) in the core, so
 * that the test shows its search finds keys. 0 without the switch. */
int box_test_dumpable(void)
{
#ifdef MK_TEST_HOOKS
	const char *v = getenv("MK_BOX_TEST_DUMPABLE");

	if (v != NULL && (strcmp(v, "1") == 0 || strcmp(v, "2") == 0))
		return v[0] - '0';
#endif
	return 0;
}

enum mk_err box_keep_out_of_dumps(char *why, size_t cap)
{
	static int done;
	int fd, n, dumpable = box_test_dumpable();

	if (done)
		return MK_OK;
	if (dumpable < 2) {
		/* 0x10: of the mappings, only the ELF headers of mapped files */
		if ((fd = open("/proc/self/coredump_filter", O_WRONLY | O_CLOEXEC)) < 0) {
			snprintf(why, cap, "cannot open /proc/self/coredump_filter (%s)", strerror(errno));
			return MK_ERR_IO;
		}
		n = (int)write(fd, "0x10\n", 5);
		if (n != 5 || close(fd) != 0) {
			snprintf(why, cap, "cannot write /proc/self/coredump_filter (%s)", strerror(errno));
			return MK_ERR_IO;
		}
	}
	if (dumpable == 0 && prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
		snprintf(why, cap, "prctl: %s", strerror(errno));
		return MK_ERR_IO;
	}
	done = 1;
	return MK_OK;
}

/* Whether this process may lock all its memory without bound: it holds
 * CAP_IPC_LOCK (bit 14 of CapEff in /proc/self/status), or its memory lock
 * limit is infinite. */
static int lock_unbounded(void)
{
	struct rlimit rl;
	char line[128];
	unsigned long long eff = 0;
	int found = 0;
	FILE *f;

	if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur == RLIM_INFINITY)
		return 1;
	if ((f = fopen("/proc/self/status", "re")) == NULL)
		return 0;
	while (!found && fgets(line, sizeof(line), f) != NULL)
		found = sscanf(line, "CapEff: %llx", &eff) == 1;
	fclose(f);
	return found && (eff >> 14 & 1);
}

/* The token keys' cipher contexts, with their key schedules, are on
 * OpenSSL's heap (mk_cmac_key), which the box cannot mark page by page:
 * where nothing bounds it, the whole process is locked, each page as it is
 * first touched (now and later), so that no key leaves memory for swap.
 * Elsewhere (an unprivileged user under a finite limit, which would make
 * later allocations fail once reached) only the key cache is
 * (docs/internals/box-process.md). Best effort: 1 when locked. */
static int lock_memory(void)
{
	/* the system call itself: a sanitizer's mlockall is a no-op (it would
	 * lock the shadow memory), and the test build is the one the tests
	 * check this with */
	return lock_unbounded() && syscall(SYS_mlockall, MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) == 0;
}

enum mk_err mk_box_sandbox(const char *dir, uid_t uid, gid_t gid, char *why, size_t cap)
{
	enum mk_err e;
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	int ll;

	why[0] = '\0';
	/* while its /proc files are its own (a user change makes them root's) */
	if ((e = box_keep_out_of_dumps(why, cap)) != MK_OK)
		return e;
	/* the state directory as the working directory: reached now, while
	 * the path may run through folders the box's user cannot enter */
	if (dir == NULL || chdir(dir) != 0) {
		snprintf(why, cap, "cannot enter %s (%s)", dir != NULL ? dir : "-", strerror(errno));
		return MK_ERR_IO;
	}
	if (uid != (uid_t)-1 && geteuid() == 0) {
		if (setgroups(0, NULL) != 0 || setresgid(gid, gid, gid) != 0 || setresuid(uid, uid, uid) != 0) {
			snprintf(why, cap, "cannot become user %ld:%ld (%s)", (long)uid, (long)gid, strerror(errno));
			return MK_ERR_IO;
		}
		/* and cannot come back */
		if (getresuid(&ru, &eu, &su) != 0 || getresgid(&rg, &eg, &sg) != 0 || ru != uid || eu != uid ||
		    su != uid || rg != gid || eg != gid || sg != gid || setuid(0) == 0) {
			snprintf(why, cap, "the user change to %ld:%ld did not hold", (long)uid, (long)gid);
			return MK_ERR_IO;
		}
	}
	/* as the user it runs as, whose capabilities and limit then hold */
	(void)lock_memory();
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		snprintf(why, cap, "prctl: %s", strerror(errno));
		return MK_ERR_IO;
	}
	if ((ll = landlock_to(".", why, cap)) < 0 || seccomp_allow(why, cap) != 0)
		return MK_ERR_IO;
	return MK_OK;
}
