/*
 * A box process's confinement (boxes.h, mk_box_sandbox;
 * docs/internals/box-process.md, "Privilege separation"), in the order
 * OpenSSH's sandboxed children take it: the state directory made the
 * working directory while the process may still reach it; the user of its
 * own (groups dropped, then gid, then uid, each checked to hold); no new
 * privileges; not dumpable; then the file system narrowed to the state
 * directory (Landlock, where the kernel has it) and the system calls to
 * what a box needs (a seccomp filter: no exec, no new process, no new
 * socket, no ptrace, no privilege change).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
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

/* The system calls a box has no use for, refused with EPERM (so that a
 * refusal is seen, not a killed process): exec, a new process (clone
 * without CLONE_THREAD, fork, vfork, clone3), a new socket or connection,
 * ptrace and reading another's memory, privilege and identity changes,
 * mounts, modules, reboot. */
static int seccomp_deny(char *why, size_t cap)
{
	static const int denied[] = {
		SCMP_SYS(execve),        SCMP_SYS(execveat),       SCMP_SYS(fork),         SCMP_SYS(vfork),
		SCMP_SYS(clone3),        SCMP_SYS(socket),         SCMP_SYS(socketpair),   SCMP_SYS(connect),
		SCMP_SYS(bind),          SCMP_SYS(listen),         SCMP_SYS(ptrace),       SCMP_SYS(process_vm_readv),
		SCMP_SYS(process_vm_writev), SCMP_SYS(setuid),     SCMP_SYS(setgid),       SCMP_SYS(setreuid),
		SCMP_SYS(setregid),      SCMP_SYS(setresuid),      SCMP_SYS(setresgid),    SCMP_SYS(setgroups),
		SCMP_SYS(setfsuid),      SCMP_SYS(setfsgid),       SCMP_SYS(capset),       SCMP_SYS(mount),
		SCMP_SYS(umount2),       SCMP_SYS(chroot),         SCMP_SYS(pivot_root),   SCMP_SYS(init_module),
		SCMP_SYS(finit_module),  SCMP_SYS(delete_module),  SCMP_SYS(kexec_load),   SCMP_SYS(reboot),
		SCMP_SYS(unshare),       SCMP_SYS(setns),          SCMP_SYS(personality),  SCMP_SYS(bpf),
		SCMP_SYS(perf_event_open), SCMP_SYS(userfaultfd), SCMP_SYS(keyctl),      SCMP_SYS(add_key),
		SCMP_SYS(request_key),
	};
	scmp_filter_ctx f = seccomp_init(SCMP_ACT_ALLOW);
	int rc = 0;

	if (f == NULL) {
		snprintf(why, cap, "seccomp: cannot make a filter");
		return -1;
	}
	for (size_t i = 0; i < MK_ARRAY_LEN(denied) && rc == 0; i++)
		rc = seccomp_rule_add(f, SCMP_ACT_ERRNO(EPERM), denied[i], 0);
	/* clone makes a thread (CLONE_THREAD) or a process: only threads */
	if (rc == 0)
		rc = seccomp_rule_add(f, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
		                      SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0));
	if (rc == 0)
		rc = seccomp_load(f);
	seccomp_release(f);
	if (rc != 0) {
		snprintf(why, cap, "seccomp: %s", strerror(-rc));
		return -1;
	}
	return 0;
}

enum mk_err mk_box_sandbox(const char *dir, uid_t uid, gid_t gid, char *why, size_t cap)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	int ll;

	why[0] = '\0';
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
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
		snprintf(why, cap, "prctl: %s", strerror(errno));
		return MK_ERR_IO;
	}
	if ((ll = landlock_to(".", why, cap)) < 0 || seccomp_deny(why, cap) != 0)
		return MK_ERR_IO;
	return MK_OK;
}
